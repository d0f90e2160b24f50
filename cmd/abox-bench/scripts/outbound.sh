#!/usr/bin/env bash
# Outbound benchmark (docs/BENCHMARKS.md, "Outbound mail"): a subscriber
# submits 4 KiB letters over 16 TLS connections to an address on another
# domain whose MX is `abox-bench sink`; abox DKIM-signs (RSA 2048),
# queues and sends them over up to 16 connections.
#
#   make build && cmd/abox-bench/scripts/outbound.sh e2e   DATADIR [serve flags]
#   make build && cmd/abox-bench/scripts/outbound.sh drain DATADIR N [serve flags]
#
# e2e:   submission for $DUR (default 10s) while the queue drains; prints the
#        submission rate, the sink's rates and the time until the queue is empty.
# drain: N letters are submitted while the sink is down (every first attempt
#        is deferred), then the sink starts and `abox queue retry --all`
#        flushes the queue: the rate at which abox sends signed, queued mail.
# Ports 2625-2628, 2680 and 5454 must be free. bin/ is this checkout's.
set -euo pipefail
mode=$1 D=$2; shift 2
N=0
if [[ $mode == drain ]]; then N=$1; shift; fi
B=$(cd "$(dirname "$0")/../../.." && pwd)/bin
PW='correct horse battery staple'
rm -rf "$D"; mkdir -p "$D"
cat > "$D/abox.toml" <<T
argon2-memory-kib = 1024
argon2-iterations = 1
log-level = "error"
T
"$B/abox" --data "$D" domain add bench.kz >/dev/null
echo "$PW" | "$B/abox" --data "$D" user add alice@bench.kz --phone +77010000001 --password-stdin >/dev/null
"$B/abox" --data "$D" class set standard --sent-per-day 0 --recipients-per-message 0 >/dev/null
"$B/abox" --data "$D" domain dkim bench.kz >/dev/null
SINK=
start_sink() { "$B/abox-bench" sink -listen 127.0.0.1:2626 -dns 127.0.0.1:5454 > "$D/sink.log" 2>&1 & SINK=$!; sleep 0.5; }
queued() { curl -s 127.0.0.1:2680/metrics | awk '/^abox_outbound_queue_entries /{print $2}'; }
received() { tail -1 "$D/sink.log" | awk '{print $3}'; }
"$B/abox" --data "$D" serve --hostname mx.bench.kz --listen-smtp 127.0.0.1:2625 --listen-submission 127.0.0.1:2627 \
  --listen-submissions 127.0.0.1:2628 --listen-imap "" --listen-imaps "" --listen-http 127.0.0.1:2680 --listen-https "" \
  --dns-resolver 127.0.0.1:5454 --outbound-port 2626 --outbound-hold-after -1 \
  --outbound-concurrency 16 --outbound-per-domain 16 "$@" > "$D/serve.log" 2>&1 &
SRV=$!
trap 'kill $SRV ${SINK:-} 2>/dev/null || true' EXIT
sleep 2
submit() {
  "$B/abox-bench" smtp -addr 127.0.0.1:2628 -tls -auth "alice@bench.kz:$PW" -from alice@bench.kz -header-from alice@bench.kz \
    -to x@remote.test -size 4096 -conns 16 "$@" -pid $SRV | sed -n 1,2p
}
if [[ $mode == e2e ]]; then
  start_sink
  t0=$(date +%s.%N)
  submit -duration "${DUR:-10s}"
else
  submit -count "$N" -duration 10m
  sleep 2 # the last first attempts (refused: the sink is down) are recorded
  echo "queued: $(queued)"
  start_sink
  cpu0=$(awk '{print $14+$15}' /proc/$SRV/stat)
  t0=$(date +%s.%N)
  "$B/abox" --data "$D" queue retry --all
fi
while [[ $(queued) != 0 ]]; do sleep 0.2; done
t1=$(date +%s.%N)
sleep 1.2
echo "sink received $(received); queue empty after $(echo "$t1 - $t0" | bc) s"
if [[ $mode == drain ]]; then
  cpu1=$(awk '{print $14+$15}' /proc/$SRV/stat)
  echo "drain: $(echo "scale=0; $N / ($t1 - $t0)" | bc) msg/s, server CPU $(echo "scale=3; ($cpu1 - $cpu0) * 10 / $N" | bc) ms per letter"
fi
grep -c connections "$D/sink.log" >/dev/null && echo "sink connections: $(tail -1 "$D/sink.log" | awk '{print $NF}')"
