#!/usr/bin/env bash
# Official letters end to end (docs/BENCHMARKS.md, "Evidence log"): a
# trusted sender of kind official (`egov`) submits 1 KiB letters over 16
# implicit-TLS submission connections, each letter to the next of 16
# subscribers with consent (vouched: a bare certificate per subscriber),
# to a freshly started `serve --evidence-key`. Prints abox-bench's
# summary, whose "server CPU" line is the figure the evidence budget is
# judged by.
#
#   make build && cmd/abox-bench/scripts/official.sh DATADIR [ABOX_BINARY] [KIND]
#
# KIND is official (the default) or billing (a second sender, `telecom`:
# no evidence, no consent check). ABOX_BINARY (default this checkout's
# bin/abox) lets the same data directory be served by another build, for
# an alternating comparison: DATADIR is made once, on the first run, and
# reused. N letters a run (default 9600). Ports 2725, 2728 and 2780 must
# be free.
set -euo pipefail
D=$1
ROOT=$(cd "$(dirname "$0")/../../.." && pwd)
A=${2:-$ROOT/bin/abox}
KIND=${3:-official}
N=${N:-9600}
B=$ROOT/bin
PW='correct horse battery staple'
if [[ ! -f $D/ready ]]; then
  rm -rf "$D" "$D.key"
  mkdir -p "$D"
  cat > "$D/abox.toml" <<T
argon2-memory-kib = 64
argon2-iterations = 1
log-level = "error"
T
  "$A" notice keygen "$D.key" --public-out "$D.pub" >/dev/null
  "$A" --data "$D" domain add example.kz >/dev/null
  "$A" --data "$D" class set standard --received-per-day 0 >/dev/null
  for i in $(seq 1 16); do
    echo "$PW" | "$A" --data "$D" user add "reader$i@example.kz" --phone "+7701000$(printf %04d "$i")" --password-stdin >/dev/null
    # A valid IIN (check digit as consent.IINCheckDigit computes it).
    iin=$(python3 -c '
import sys
first = "9001013%04d" % int(sys.argv[1])
def s(w0): return sum(int(first[i]) * ((w0 + i - 1) % 11 + 1) for i in range(11)) % 11
d = s(1) if s(1) != 10 else s(3)
print(first + str(d))' "$((i * 7))")
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
      -subj "/CN=Reader $i/serialNumber=IIN$iin" -days 30 -out "$D/reader$i.pem" 2>/dev/null
    "$A" --data "$D" user consent "reader$i@example.kz" --certificate "$D/reader$i.pem" >/dev/null
  done
  echo "$PW" | "$A" --data "$D" sender add egov --kind official --from notices@egov.kz --password-stdin >/dev/null
  echo "$PW" | "$A" --data "$D" sender add telecom --kind billing --from bills@telecom.kz --password-stdin >/dev/null
  touch "$D/ready"
fi
sender=egov from=notices@egov.kz
if [[ $KIND == billing ]]; then sender=telecom from=bills@telecom.kz; fi
"$A" --data "$D" serve --hostname mx.example.kz --listen-smtp 127.0.0.1:2725 --listen-submission "" \
  --listen-submissions 127.0.0.1:2728 --listen-imap "" --listen-imaps "" --listen-http 127.0.0.1:2780 --listen-https "" \
  --outbound=false --evidence-key "$D.key" > "$D/serve.log" 2>&1 &
SRV=$!
trap 'kill $SRV 2>/dev/null || true; wait $SRV 2>/dev/null || true' EXIT
for _ in $(seq 50); do
  curl -sf 127.0.0.1:2780/metrics >/dev/null && break
  sleep 0.1
done
to=$(seq -f 'reader%g@example.kz' 1 16 | paste -sd,)
cpu() { awk '{print $14 + $15}' "/proc/$SRV/stat"; }
cpu0=$(cpu)
"$B/abox-bench" smtp -addr 127.0.0.1:2728 -tls -auth "$sender:$PW" -from "$from" -header-from "$from" \
  -to "$to" -size 1024 -conns 16 -per-conn $((N / 16)) -count "$N" -duration 10m | sed -n 1,2p
cpu1=$(cpu)
echo "server CPU: $(( (cpu1 - cpu0) * 1000000 / $(getconf CLK_TCK) / N )) µs per letter ($KIND, $N letters)"
