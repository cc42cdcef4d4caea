#!/usr/bin/env bash
# Local infrastructure without Docker: Apache Kafka (KRaft, from Maven Central,
# run on the JDK), FerretDB 1.x on SQLite (built with `go install`), and the
# Zipkin trace UI (server jar from Maven Central).
#
#   deploy/local/infra.sh install          resolve jars, build FerretDB (idempotent)
#   deploy/local/infra.sh start|stop|status
#
# Everything lives under .local/ (git-ignored). Servers run in their own session (setsid), so
# they outlive the shell or job that started them until `stop`. An endpoint that is already set
# in the environment is used as it is and nothing local is started for it:
#   KAFKA_BOOTSTRAP_SERVERS, MONGODB_URI, OTEL_EXPORTER_OTLP_ENDPOINT / ZIPKIN_ENDPOINT
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
LOCAL="$ROOT/.local"
KAFKA_HOME="$LOCAL/kafka"
# Where a broker keeps its data, logs and pid; a second, disposable broker (tests) uses another.
KAFKA_STATE="${LOCAL_KAFKA_STATE:-$KAFKA_HOME}"
FERRET_HOME="$LOCAL/ferretdb"
ZIPKIN_HOME="$LOCAL/zipkin"
FERRETDB_VERSION="v1.24.2"
FERRET_PATCHES="$ROOT/deploy/local/ferretdb"
# SQLite's durability for the local store: in WAL mode `normal` survives a crash of FerretDB
# or of any client (what the tests exercise) and may lose the last commits only on a power
# loss or OS crash; `full` also syncs every commit (about half the write throughput here).
FERRETDB_SQLITE_SYNCHRONOUS="${LOCAL_FERRETDB_SYNCHRONOUS:-normal}"
# SQLite pragmas that do not touch durability (space-separated; set it empty for SQLite's defaults):
# statement journals in memory (a grouped insert's journal outgrew 64 KiB and spilled to a
# temporary file, created, written and deleted per command: ~8 % of FerretDB's CPU in a booking
# run) and reads through mmap instead of a pread per page.
FERRETDB_SQLITE_PRAGMAS="${LOCAL_FERRETDB_SQLITE_PRAGMAS-temp_store(memory) mmap_size(268435456)}"
# Go's collector for FerretDB: its live heap is small (tens of MB) and it allocates per document
# read, so the default GOGC=100 spent a quarter of its CPU collecting; 400 costs ~100 MB more.
FERRETDB_GOGC="${LOCAL_FERRETDB_GOGC:-400}"
KAFKA_PORT="${LOCAL_KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${LOCAL_KAFKA_CONTROLLER_PORT:-9093}"
MONGO_PORT="${LOCAL_MONGO_PORT:-27017}"
ZIPKIN_PORT="${LOCAL_ZIPKIN_PORT:-9411}"

log() { printf '[infra] %s\n' "$*" >&2; }

wants_kafka() { [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; }
wants_store() { [ -z "${MONGODB_URI:-}" ]; }
wants_traces() { [ -z "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" ] && [ -z "${ZIPKIN_ENDPOINT:-}" ]; }

install() {
  mkdir -p "$LOCAL"
  if wants_kafka || wants_traces; then
    if [ ! -f "$KAFKA_HOME/libs/.resolved" ] || [ ! -f "$ZIPKIN_HOME/zipkin-server.jar" ] \
       || [ "$ROOT/deploy/local/pom.xml" -nt "$KAFKA_HOME/libs/.resolved" ]; then
      log "resolving Kafka broker and Zipkin jars from Maven Central"
      rm -rf "$KAFKA_HOME/libs"
      (cd "$ROOT/deploy/local" && mvn -q -B dependency:copy-dependencies@kafka-libs dependency:copy@zipkin)
      touch "$KAFKA_HOME/libs/.resolved"
    fi
  fi
  if wants_store && [ "$(cat "$FERRET_HOME/bin/.build" 2>/dev/null)" != "$(ferretdb_build_id)" ]; then
    log "building FerretDB $FERRETDB_VERSION with go install (takes a few minutes once)"
    mkdir -p "$FERRET_HOME/bin"
    # A plain `go install ...@version` builds a binary that panics at start: FerretDB
    # embeds build/version/version.txt, which its release tooling generates. So fetch
    # the module through the Go module proxy, add that one file, apply the project's
    # patches (deploy/local/ferretdb/*.patch, each says why), and `go install` it.
    local src patch
    src="$(go mod download -json "github.com/FerretDB/FerretDB@$FERRETDB_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
    rm -rf "$FERRET_HOME/src" && cp -r "$src" "$FERRET_HOME/src" && chmod -R u+w "$FERRET_HOME/src"
    echo "$FERRETDB_VERSION" >"$FERRET_HOME/src/build/version/version.txt"
    for patch in "$FERRET_PATCHES"/*.patch; do
      git -C "$FERRET_HOME/src" apply --verbose "$patch" 2>&1 | sed 's/^/[infra]   /' >&2
    done
    (cd "$FERRET_HOME/src" && GOBIN="$FERRET_HOME/bin" GOFLAGS=-mod=mod go install ./cmd/ferretdb)
    ferretdb_build_id >"$FERRET_HOME/bin/.build"
  fi
}

# The version and the patches a built binary came from: a change to either rebuilds it.
ferretdb_build_id() { { echo "$FERRETDB_VERSION"; cat "$FERRET_PATCHES"/*.patch; } | sha256sum | cut -c1-16; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() { # host port seconds name
  local i
  for ((i = 0; i < $3 * 5; i++)); do
    if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  log "$4 did not open $1:$2 within $3 s; see its log under .local/"
  return 1
}

start_kafka() {
  local props="$KAFKA_STATE/server.properties"
  if pid_alive "$KAFKA_STATE/kafka.pid"; then log "kafka already running"; return; fi
  mkdir -p "$KAFKA_STATE/logs"
  sed -e "s#@DATA@#$KAFKA_STATE/data#" -e "s#@PORT@#$KAFKA_PORT#" \
      -e "s#@CONTROLLER_PORT@#$KAFKA_CONTROLLER_PORT#" \
      "$ROOT/deploy/local/kafka/server.properties" > "$props"
  local cp="$KAFKA_HOME/libs/*"
  local jvm=(java -Xms256m -Xmx1g -XX:+UseG1GC
             -Dlog4j2.configurationFile="$ROOT/deploy/local/kafka/log4j2.properties"
             -Dkafka.logs.dir="$KAFKA_STATE/logs" -cp "$cp")
  if [ ! -f "$KAFKA_STATE/data/meta.properties" ]; then
    local cluster_id
    cluster_id="$("${jvm[@]}" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)"
    log "formatting KRaft storage (cluster $cluster_id)"
    "${jvm[@]}" kafka.tools.StorageTool format -t "$cluster_id" -c "$props" >"$KAFKA_STATE/logs/format.log" 2>&1
  fi
  setsid nohup "${jvm[@]}" kafka.Kafka "$props" >"$KAFKA_STATE/logs/stdout.log" 2>&1 &
  echo $! >"$KAFKA_STATE/kafka.pid"
  wait_port 127.0.0.1 "$KAFKA_PORT" 90 kafka
  log "kafka up on 127.0.0.1:$KAFKA_PORT (pid $(cat "$KAFKA_STATE/kafka.pid"))"
}

start_ferretdb() {
  if pid_alive "$FERRET_HOME/ferretdb.pid"; then log "ferretdb already running"; return; fi
  mkdir -p "$FERRET_HOME/data" "$FERRET_HOME/state"
  local url="file:$FERRET_HOME/data/?_pragma=synchronous($FERRETDB_SQLITE_SYNCHRONOUS)" pragma
  for pragma in $FERRETDB_SQLITE_PRAGMAS; do url+="&_pragma=$pragma"; done
  GOGC="$FERRETDB_GOGC" setsid nohup "$FERRET_HOME/bin/ferretdb" --handler=sqlite --sqlite-url="$url" \
        --state-dir="$FERRET_HOME/state" --listen-addr="127.0.0.1:$MONGO_PORT" \
        --debug-addr="${LOCAL_FERRETDB_DEBUG_ADDR:--}" --telemetry=disable --log-level=WARN \
        >>"$FERRET_HOME/ferretdb.log" 2>&1 &
  echo $! >"$FERRET_HOME/ferretdb.pid"
  wait_port 127.0.0.1 "$MONGO_PORT" 30 ferretdb
  log "ferretdb up on 127.0.0.1:$MONGO_PORT (pid $(cat "$FERRET_HOME/ferretdb.pid"))"
}

start_zipkin() {
  if pid_alive "$ZIPKIN_HOME/zipkin.pid"; then log "zipkin already running"; return; fi
  # The in-memory store holds about 4 KB of heap per span. 100k spans (~400 MB) keep its live set
  # far below the 2 GB heap; at 300k the heap filled and GC took a core for seconds at a time.
  # The serial collector: a pause takes one core, not both (G1's parallel pauses of 100-490 ms took
  # both from the services), and costs less CPU in all. Its longer pauses only delay ingestion.
  QUERY_PORT="$ZIPKIN_PORT" STORAGE_TYPE=mem MEM_MAX_SPANS=100000 \
    setsid nohup java -Xms256m -Xmx2g -XX:+UseSerialGC -jar "$ZIPKIN_HOME/zipkin-server.jar" \
    >"$ZIPKIN_HOME/zipkin.log" 2>&1 &
  echo $! >"$ZIPKIN_HOME/zipkin.pid"
  wait_port 127.0.0.1 "$ZIPKIN_PORT" 90 zipkin
  log "zipkin up: http://127.0.0.1:$ZIPKIN_PORT/zipkin/"
}

stop_one() { # pidfile name
  if pid_alive "$1"; then
    local pid; pid="$(cat "$1")"
    kill "$pid"
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { log "$2 did not stop in 30 s; killing"; kill -9 "$pid"; }
    log "$2 stopped"
  fi
  rm -f "$1"
}

status_one() { # pidfile name wanted
  if [ "$3" != yes ]; then echo "$2: external (from environment)";
  elif pid_alive "$1"; then echo "$2: running (pid $(cat "$1"))";
  else echo "$2: stopped"; fi
}

yn() { if "$@"; then echo yes; else echo no; fi; }

case "${1:-}" in
  install) install ;;
  start)
    install
    if wants_kafka; then start_kafka; fi
    if wants_store; then start_ferretdb; fi
    if wants_traces; then start_zipkin; fi
    ;;
  start-kafka) start_kafka ;;
  stop-kafka) stop_one "$KAFKA_STATE/kafka.pid" kafka ;;
  kill-kafka) # abrupt crash, for failure tests
    if pid_alive "$KAFKA_STATE/kafka.pid"; then kill -9 "$(cat "$KAFKA_STATE/kafka.pid")"; fi
    rm -f "$KAFKA_STATE/kafka.pid" ;;
  stop)
    stop_one "$ZIPKIN_HOME/zipkin.pid" zipkin
    stop_one "$FERRET_HOME/ferretdb.pid" ferretdb
    stop_one "$KAFKA_STATE/kafka.pid" kafka
    ;;
  status)
    status_one "$KAFKA_STATE/kafka.pid" kafka "$(yn wants_kafka)"
    status_one "$FERRET_HOME/ferretdb.pid" ferretdb "$(yn wants_store)"
    status_one "$ZIPKIN_HOME/zipkin.pid" zipkin "$(yn wants_traces)"
    ;;
  clean) "$0" stop; rm -rf "$KAFKA_STATE/data" "$FERRET_HOME/data" "$FERRET_HOME/state" ;;
  *) echo "usage: $0 install|start|stop|status|clean|start-kafka|stop-kafka|kill-kafka" >&2; exit 2 ;;
esac
