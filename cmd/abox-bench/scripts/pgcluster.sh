#!/usr/bin/env bash
# A two-node abox cluster on PostgreSQL and SeaweedFS, all on this
# machine, for the distributed backend's benchmarks (docs/BENCHMARKS.md,
# "Distributed backend"):
#
#   make build && go build -o bin/abox-bench ./cmd/abox-bench
#   cmd/abox-bench/scripts/pgcluster.sh up    DIR   # PostgreSQL on 55600, weed's S3 on 55706, the database, alice@bench.kz
#   cmd/abox-bench/scripts/pgcluster.sh serve DIR   # nodes 1 and 2 (below)
#   cmd/abox-bench/scripts/pgcluster.sh stop  DIR   # the nodes
#   cmd/abox-bench/scripts/pgcluster.sh down  DIR   # the nodes, weed and PostgreSQL
#
# Node N listens on 127.0.0.1: SMTP 2N525, IMAP 2N143, IMAPS 2N993,
# HTTP 2N080 (node 1: 21525, 21993, ...). PostgreSQL keeps its defaults
# (fsync and synchronous_commit on): every 250 is durable in PostgreSQL
# and, for bodies over the inline limit, in the object store. The
# PostgreSQL binaries come from Debian's postgresql package
# (ABOX_PG_BIN overrides), weed from ABOX_WEED_BIN or ~/go/bin/weed
# (.ci/run builds it). Extra arguments to `serve` go to both nodes.
set -euo pipefail
mode=$1 D=$(realpath -m "$2"); shift 2
B=$(cd "$(dirname "$0")/../../.." && pwd)/bin
PGBIN=${ABOX_PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
WEED=${ABOX_WEED_BIN:-$HOME/go/bin/weed}
PW='correct horse battery staple'
DSN="postgres://abox@127.0.0.1:55600/abox?sslmode=disable"
as_pg() { if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi; }

node_conf() { # N
  local n=$1
  mkdir -p "$D/node$n"
  cat > "$D/node$n/abox.toml" <<T
store = "$DSN"
object-store-endpoint = "http://127.0.0.1:55706"
object-store-bucket = "abox"
object-store-access-key = "bench"
object-store-secret-key-file = "$D/s3-secret"
object-store-create-bucket = true
argon2-memory-kib = 1024
argon2-iterations = 1
log-level = "error"
T
}

case $mode in
up)
  mkdir -p "$D/pg" "$D/weed"
  if [[ $(id -u) == 0 ]]; then chown postgres "$D/pg"; fi
  if [[ ! -f $D/pg/data/PG_VERSION ]]; then
    as_pg "$PGBIN/initdb" -D "$D/pg/data" -U abox -A trust -E UTF8 --no-locale >/dev/null
  fi
  as_pg "$PGBIN/pg_ctl" -D "$D/pg/data" -l "$D/pg/log" -w \
    -o "-p 55600 -c listen_addresses=127.0.0.1 -c unix_socket_directories=$D/pg -c max_connections=300 -c shared_buffers=256MB" start >/dev/null
  psql -h 127.0.0.1 -p 55600 -U abox -d postgres -qc "CREATE DATABASE abox" 2>/dev/null || true
  echo '{"identities":[{"name":"bench","credentials":[{"accessKey":"bench","secretKey":"bench-secret"}],"actions":["Admin","Read","List","Tagging","Write"]}]}' > "$D/s3.json"
  echo bench-secret > "$D/s3-secret"
  setsid "$WEED" server -dir="$D/weed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -master.port=55700 -master.port.grpc=55701 \
    -volume.port=55702 -volume.port.grpc=55703 -filer -filer.port=55704 -filer.port.grpc=55705 \
    -s3 -s3.port=55706 -s3.port.grpc=55707 -s3.config="$D/s3.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.telemetry=false -master.volumeSizeLimitMB=256 -volume.max=0 > "$D/weed.log" 2>&1 &
  echo $! > "$D/weed.pid"
  for _ in $(seq 120); do curl -s -o /dev/null 127.0.0.1:55706 && break; sleep 0.5; done
  node_conf 1; node_conf 2
  for _ in $(seq 60); do
    "$B/abox" --data "$D/node1" domain add bench.kz >/dev/null 2>&1 && break
    "$B/abox" --data "$D/node1" domain list 2>/dev/null | grep -q bench.kz && break
    sleep 1
  done
  echo "$PW" | "$B/abox" --data "$D/node1" user add alice@bench.kz --phone +77010000001 --password-stdin >/dev/null 2>&1 || true
  "$B/abox" --data "$D/node1" class set standard --storage 0 --messages 0 --received-per-day 0 >/dev/null
  echo "$PW" > "$D/pass"
  echo "up: PostgreSQL 127.0.0.1:55600 (database abox), S3 127.0.0.1:55706 (bucket abox), alice@bench.kz (password in $D/pass)"
  ;;
serve)
  for n in 1 2; do
    "$B/abox" --data "$D/node$n" serve --hostname "node$n.bench.kz" \
      --listen-smtp "127.0.0.1:2${n}525" --listen-submission "" --listen-submissions "" \
      --listen-imap "127.0.0.1:2${n}143" --listen-imaps "127.0.0.1:2${n}993" \
      --listen-http "127.0.0.1:2${n}080" --listen-https "" "$@" > "$D/node$n/serve.log" 2>&1 &
    echo $! > "$D/node$n/pid"
  done
  for n in 1 2; do
    for _ in $(seq 100); do curl -s -o /dev/null "127.0.0.1:2${n}080/healthz" && break; sleep 0.2; done
  done
  echo "serving: node 1 pid $(cat "$D/node1/pid"), node 2 pid $(cat "$D/node2/pid")"
  ;;
stop)
  for n in 1 2; do
    if [[ -f $D/node$n/pid ]]; then kill "$(cat "$D/node$n/pid")" 2>/dev/null || true; rm -f "$D/node$n/pid"; fi
  done
  sleep 1
  ;;
down)
  "$0" stop "$D"
  if [[ -f $D/weed.pid ]]; then kill -- -"$(cat "$D/weed.pid")" 2>/dev/null || kill "$(cat "$D/weed.pid")" 2>/dev/null || true; rm -f "$D/weed.pid"; fi
  as_pg "$PGBIN/pg_ctl" -D "$D/pg/data" -m fast stop >/dev/null 2>&1 || true
  ;;
*)
  echo "usage: $0 up|serve|stop|down DIR" >&2; exit 2 ;;
esac
