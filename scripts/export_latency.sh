#!/usr/bin/env bash
# Measures how a node answers `status` while a large ledger.export streams:
#   scripts/export_latency.sh [--records N] [--bin DIR] [--also-bin DIR] [--keep]
#
#   --records N     records to fill the ledger with (default 50000)
#   --bin DIR       tenderd, tenderctl and tenderd-loadgen to use (default build/bin)
#   --also-bin DIR  run the same measurement again on the same ledger with the tenderd of
#                   DIR (an older build, for a before/after comparison)
#   --keep          keep the temporary directory
#
# Creates a one-validator node in a temporary directory, fills it with tenderd-loadgen
# (as scripts/bench.sh drives it), stops and restarts it, then on one connection sends
# ledger.export (all blocks) and reads the answer, while on another connection it sends
# `status` every 50 ms until the export has been read. Prints, per binary, one line:
#   export_latency: bin=... records=... export_bytes=... export_s=... status_n=...
#                   status_max_ms=... status_p99_ms=... peak_rss_mb=... target=OK|MISS
# (target: status answered within 100 ms). Peak RSS is VmHWM of the node, reset just
# before the export (/proc/PID/clear_refs) where the kernel allows it. Not a test: the
# figures depend on the machine.
set -uo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RECORDS=50000
BIN="$root/build/bin"
ALSO=""
KEEP=0
while (($# > 0)); do
	case "$1" in
	--records) RECORDS=${2:?}; shift ;;
	--bin) BIN=$(cd "${2:?}" && pwd) || exit 3; shift ;;
	--also-bin) ALSO=$(cd "${2:?}" && pwd) || exit 3; shift ;;
	--keep) KEEP=1 ;;
	-h | --help) sed -n '2,19s/^# \{0,1\}//p' "$0"; exit 0 ;;
	*) echo "export_latency.sh: unknown argument '$1'" >&2; exit 3 ;;
	esac
	shift
done
for b in tenderd tenderctl tenderd-loadgen; do
	[[ -x "$BIN/$b" ]] || { echo "export_latency.sh: $BIN/$b is missing (build first)" >&2; exit 1; }
done
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3

TMP=$(mktemp -d /tmp/td-explat.XXXXXX) || exit 1
H="$TMP/home"
SOCK="$H/tenderd.sock"
PID=""
cleanup() {
	if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
		kill "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	((KEEP)) && echo "kept $TMP" || rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

start() { # start BIN_DIR LOG
	"$1/tenderd" run --home "$H" >>"$2" 2>&1 &
	PID=$!
	for _ in $(seq 1 200); do
		"$BIN/tenderctl" --socket "$SOCK" status >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	echo "export_latency.sh: the node did not start (see $2)" >&2
	exit 1
}
stop() {
	kill "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=""
}

"$BIN/tenderd" init --home "$H" --name "Export latency agency" >/dev/null || exit 1
start "$BIN" "$TMP/fill.log"
echo "filling the ledger with $RECORDS records..." >&2
"$BIN/tenderd-loadgen" publish --sockets "$SOCK" --count "$RECORDS" --size 700 --pipeline 64 --run explat \
	--no-track --timeout 1200 >"$TMP/loadgen.out" 2>&1 || { cat "$TMP/loadgen.out" >&2; exit 1; }
"$BIN/tenderd-loadgen" wait --socket "$SOCK" --records "$RECORDS" --timeout 600 >/dev/null 2>&1 ||
	{ echo "export_latency.sh: the records did not commit" >&2; exit 1; }
stop

measure() { # measure BIN_DIR
	start "$1" "$TMP/run.log"
	echo 5 >"/proc/$PID/clear_refs" 2>/dev/null || true
	"$PY" - "$SOCK" "$PID" "$1" <<'PYEOF'
import json, socket, sys, threading, time
sock, pid, binp = sys.argv[1], sys.argv[2], sys.argv[3]

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    return s

done = threading.Event()
result = {}

def export():
    s = conn()
    t0 = time.monotonic()
    s.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ledger.export","params":{}}\n')
    buf = bytearray()
    while not buf.endswith(b"\n"):
        chunk = s.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
    result["s"] = time.monotonic() - t0
    result["bytes"] = len(buf)
    ans = json.loads(buf)
    result["releases"] = len(ans.get("result", {}).get("releases", []))
    result["error"] = ans.get("error")
    done.set()

th = threading.Thread(target=export)
s = conn()
f = s.makefile("rb")
th.start()
lat = []
i = 0
while not done.is_set():
    i += 1
    t0 = time.monotonic()
    s.sendall(b'{"jsonrpc":"2.0","id":%d,"method":"status"}\n' % i)
    line = f.readline()
    lat.append((time.monotonic() - t0) * 1000)
    json.loads(line)
    time.sleep(max(0, 0.05 - (time.monotonic() - t0)))
th.join()
rss = 0
with open("/proc/%s/status" % pid) as st:
    for l in st:
        if l.startswith("VmHWM:"):
            rss = int(l.split()[1]) / 1024
lat.sort()
p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else 0
mx = lat[-1] if lat else 0
print("export_latency: bin=%s records=%d export_bytes=%d export_s=%.2f status_n=%d status_max_ms=%.1f "
      "status_p99_ms=%.1f peak_rss_mb=%.1f target=%s%s" % (
      binp, result.get("releases", 0), result.get("bytes", 0), result.get("s", 0), len(lat), mx, p99, rss,
      "OK" if mx <= 100 else "MISS", " error=%s" % result["error"] if result.get("error") else ""))
PYEOF
	stop
}

measure "$BIN"
[[ -n "$ALSO" ]] && measure "$ALSO"
exit 0
