#!/usr/bin/env bash
# Validates the Kubernetes manifests against the real Kubernetes API schemas, offline.
#
#   deploy/k8s/validate.sh               validate deploy/k8s (what CI runs)
#   deploy/k8s/validate.sh PATH...       validate other files or folders instead
#
# 1. installs kubeconform with `go install` into .local/bin (once per version);
# 2. builds kubeconform's JSON schemas from the swagger.json of the k8s.io/kubernetes
#    module, fetched through the Go module proxy (GitHub, where kubeconform normally gets
#    them, is not needed), into .local/k8s-schemas (once per version and generator);
# 3. runs kubeconform -strict: unknown fields, wrong types, kinds with no schema all fail.
#
# kustomization.yaml is skipped by kind: every resource it lists is a plain file here and
# the kustomization only adds an image override, so validating the files is validating
# what `kubectl apply -k deploy/k8s` applies (tests/unit/test_k8s_manifests.py checks that).
#
# Needs: go (kubeconform v0.8.0 needs Go 1.26; an older go fetches that toolchain through the
# module proxy when GOTOOLCHAIN=auto, the default), python3 (standard library only).
# Network only on the first run, and only to the Go module proxy.
# Environment: K8S_SCHEMA_VERSION (default below), KUBECONFORM_VERSION, PYTHON.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
K8S_SCHEMA_VERSION="${K8S_SCHEMA_VERSION:-1.34.4}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.8.0}"
BIN_DIR="$ROOT/.local/bin"
SCHEMA_DIR="$ROOT/.local/k8s-schemas"
GENERATOR="$ROOT/deploy/k8s/tools/openapi2jsonschema.py"
KUBECONFORM="$BIN_DIR/kubeconform"

if [ -z "${PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "validate.sh: 'go' is not on PATH; it is needed to install kubeconform and fetch the Kubernetes API spec" >&2
  exit 2
fi

log() { echo "== $*" >&2; }

# --- 1. kubeconform -----------------------------------------------------------------------------
installed_version() { go version -m "$KUBECONFORM" 2>/dev/null | awk '$1 == "mod" {print $3}'; }
if [ ! -x "$KUBECONFORM" ] || [ "$(installed_version)" != "$KUBECONFORM_VERSION" ]; then
  log "installing kubeconform $KUBECONFORM_VERSION into .local/bin (go install)"
  mkdir -p "$BIN_DIR"
  GOBIN="$BIN_DIR" go install "github.com/yannh/kubeconform/cmd/kubeconform@$KUBECONFORM_VERSION"
fi

# --- 2. schemas ---------------------------------------------------------------------------------
# The stamp names the version and the generator's content, so a change to either regenerates.
generator_hash="$("$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:16])' "$GENERATOR")"
stamp_value="v$K8S_SCHEMA_VERSION $generator_hash"
stamp_file="$SCHEMA_DIR/.stamp-v$K8S_SCHEMA_VERSION"
if [ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp_value" ]; then
  log "fetching k8s.io/kubernetes@v$K8S_SCHEMA_VERSION from the Go module proxy"
  mkdir -p "$SCHEMA_DIR"
  module_json="$(cd "$SCHEMA_DIR" && go mod download -json "k8s.io/kubernetes@v$K8S_SCHEMA_VERSION")"
  module_zip="$(printf '%s' "$module_json" | "$PYTHON" -c 'import json, sys; print(json.load(sys.stdin)["Zip"])')"
  log "generating JSON schemas for Kubernetes v$K8S_SCHEMA_VERSION into .local/k8s-schemas"
  "$PYTHON" "$GENERATOR" --zip "$module_zip" --version "$K8S_SCHEMA_VERSION" --out "$SCHEMA_DIR" >&2
  printf '%s' "$stamp_value" >"$stamp_file"
fi

# --- 3. validate --------------------------------------------------------------------------------
if [ "$#" -eq 0 ]; then set -- "$ROOT/deploy/k8s"; fi
log "kubeconform -strict against Kubernetes v$K8S_SCHEMA_VERSION: $*"
exec "$KUBECONFORM" \
  -strict \
  -summary \
  -schema-location "$SCHEMA_DIR" \
  -kubernetes-version "$K8S_SCHEMA_VERSION" \
  -skip Kustomization \
  "$@"
