#!/usr/bin/env bash
# Measures a node's memory under pipelined requests held behind a pending one (not part of
# the suite): tests/rpc_pipeline_rss.sh BIN_DIR DATA_DIR [REQUESTS]
# Starts a one-validator node with the sample tenders, then one client sends a tender.watch
# (an answer that never completes) followed by REQUESTS (default 200,000) tender.get
# requests on the same connection, as fast as the socket takes them, without reading.
# Every answer is held behind the watch; the node must stop reading from that client at its
# cap (RPC_HELD_MAX, RPC_PENDING_MAX) instead of growing. Prints the node's RSS before,
# its peak while the client pushes for 20 s, how many requests the socket accepted, and
# whether a status on another connection is still answered.
set -uo pipefail
if (($# < 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR [REQUESTS]" >&2
	exit 2
fi
BIN=$(cd "$1" && pwd)
DATA=$(cd "$2" && pwd)
N=${3:-200000}
TMP=$(mktemp -d /tmp/td-pipe.XXXXXX)
H="$TMP/home"
PID=""
cleanup() {
	[[ -n "$PID" ]] && kill -9 "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$TMP"
}
trap cleanup EXIT
"$BIN/tenderd" init --home "$H" --name "Jeju Special Self-Governing Province" >/dev/null || exit 1
"$BIN/tenderd" run --home "$H" >"$TMP/log" 2>&1 &
PID=$!
for ((i = 0; i < 100; i++)); do
	"$BIN/tenderctl" --socket "$H/tenderd.sock" status >/dev/null 2>&1 && break
	sleep 0.1
done
"$BIN/tenderctl" --socket "$H/tenderd.sock" publish tender "$DATA/samples/tender-jeju.json" --wait >/dev/null ||
	{ echo "publish failed"; exit 1; }
rss() { awk '/VmRSS/ { print $2 }' "/proc/$PID/status"; }
BEFORE=$(rss)
/usr/bin/python3 - "$H/tenderd.sock" "$N" "$PID" "$BIN/tenderctl" <<'PY'
import socket, sys, time, subprocess
path, n, pid, ctl = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def rss():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(path)
s.setblocking(False)
s.sendall(b'{"jsonrpc":"2.0","id":0,"method":"tender.watch","params":{}}\n')
req = b'{"jsonrpc":"2.0","id":1,"method":"tender.get","params":{"ocid":"ocds-kr2020-jeju-0001"}}\n'
buf = req * n
sent, peak, t0 = 0, 0, time.time()
while time.time() - t0 < 20 and sent < len(buf):
    try:
        sent += s.send(buf[sent:sent + 65536])
    except BlockingIOError:
        time.sleep(0.05)
    peak = max(peak, rss())
t1 = time.time()
st = subprocess.run([ctl, "--socket", path, "--timeout", "5", "status"], capture_output=True)
lat = time.time() - t1
print(f"requests accepted by the socket: {sent // len(req)} of {n} in {t1 - t0:.1f} s")
print(f"peak RSS while pushing: {peak} kB")
print(f"status on another connection: exit {st.returncode} in {lat * 1000:.0f} ms")
PY
echo "RSS before: $BEFORE kB, after: $(rss) kB"
