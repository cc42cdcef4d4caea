# Two commands do everything on a fresh machine:
#   make run    the whole platform on local defaults (Kafka, FerretDB, Zipkin, four services, demo)
#   make test   install everything, start Kafka + FerretDB + Zipkin, run every test tier
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR):$(CURDIR)/gen/python

.PHONY: install infra infra-stop protos check-protos proto-baseline asyncapi check-asyncapi lint typecheck test test-unit run demo services stop bench token clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed
	deploy/local/infra.sh install

infra: install
	deploy/local/infra.sh start

infra-stop:
	deploy/local/infra.sh stop

# Regenerate Python code (+ .pyi stubs) from proto/.
# Generated into a scratch folder first, then swapped in whole.
protos: $(VENV)/.installed
	rm -rf gen/.python.new && mkdir -p gen/.python.new
	$(PY) -m grpc_tools.protoc -I proto --python_out=gen/.python.new --pyi_out=gen/.python.new \
		--grpc_python_out=gen/.python.new $$(find proto -name '*.proto' | sort)
	rm -rf gen/python && mv gen/.python.new gen/python

BUF := deploy/tools/node_modules/.bin/buf

$(BUF): deploy/tools/package.json deploy/tools/package-lock.json
	cd deploy/tools && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Fails when the generated code is not what proto/ produces, when a proto breaks
# the lint rules, or when it changes the API incompatibly with the released baseline.
check-protos: protos $(BUF)
	git diff --exit-code --stat -- gen/python
	test -z "$$(git status --porcelain -- gen/python)"
	cd proto && ../$(BUF) lint
	cd proto && ../$(BUF) breaking --against baseline.binpb

# Record the current protos as the released API that later changes must stay compatible with.
proto-baseline: $(BUF)
	cd proto && ../$(BUF) build -o baseline.binpb

PY_SOURCES := services tests partner demo deploy/k8s/tools

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)

typecheck: $(VENV)/.installed
	$(VENV)/bin/mypy $(PY_SOURCES)

# The partner-facing AsyncAPI document is generated from the topic declarations and protos.
asyncapi: $(VENV)/.installed
	$(PY) -m services.plumbing.ops.asyncapi

check-asyncapi: $(VENV)/.installed
	$(PY) -m services.plumbing.ops.asyncapi --check

test-unit: $(VENV)/.installed
	$(VENV)/bin/pytest -q tests/unit

test: infra
	$(MAKE) check-protos check-asyncapi lint typecheck
	$(VENV)/bin/pytest -q tests

services: infra
	$(PY) -m services.plumbing.launcher

# The whole platform on local defaults, then the simulated IOP day; Ctrl-C stops the services.
run: infra
	$(PY) -m services.plumbing.launcher --demo

# The same, stopping when the demo is done (what CI and scripts use).
demo: infra
	$(PY) -m services.plumbing.launcher --demo --exit

bench: infra
	$(PY) -m tests.bench.bus_bench

token: $(VENV)/.installed
	@$(PY) -m services.plumbing.auth mint --sub $${SUB:-local-dev} --role $${ROLE:-platform}

stop: infra-stop
