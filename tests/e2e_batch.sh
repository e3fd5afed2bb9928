#!/usr/bin/env bash
# End-to-end test of JSON-RPC 2.0 batches: tests/e2e_batch.sh BIN_DIR DATA_DIR
#
# Starts a real one-validator tenderd in a temporary home, commits 100 blocks
# and sends every example of the JSON-RPC 2.0 specification's section 7 over
# the socket, with tenderd's methods in place of subtract and sum (status,
# block.get, tender.get, an unknown method, notifications), checking each
# answer as the specification gives it. Then: tender.watch refused inside a
# batch, a batch whose publish waits for its commit, the per-client pending
# cap, and `tenderctl call` with a batch. Last it prints the time of a batch
# of 100 block.get against 100 single requests on one connection (a
# measurement only: no assertion on the times).
# Needs bash, coreutils and python3; no jq.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
BIN=$(cd "$1" && pwd) || exit 2
DATA=$(cd "$2" && pwd) || exit 2
TENDERD="$BIN/tenderd"
TENDERCTL="$BIN/tenderctl"
SAMPLES="$DATA/samples"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
WAIT_S=${TD_E2E_WAIT:-10} # seconds to wait for the daemon to answer or to stop
BLOCKS=100                # blocks committed before the examples run

for b in "$TENDERD" "$TENDERCTL"; do
	[[ -x "$b" ]] || { echo "e2e_batch: $b is missing or not executable" >&2; exit 1; }
done

# A short path: a Unix socket path must fit in 108 bytes.
TMP=$(mktemp -d /tmp/td-e2eb.XXXXXX) || exit 1
H="$TMP/home"
SOCK="$H/tenderd.sock"
LOG="$TMP/tenderd.log"
PID=""
STEP="start"
OUT="$TMP/out"
ERR="$TMP/err"
RC=0
: >"$OUT"
: >"$ERR"
: >"$LOG"

cleanup() {
	if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
		{
			kill -9 "$PID"
			wait "$PID"
		} 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
	STEP="$*"
	echo "--- $STEP"
}

fail() {
	{
		echo
		echo "FAIL [$STEP]: $*"
		echo "--- last command (exit $RC) stdout:"
		head -c 4000 "$OUT"
		echo
		echo "--- stderr:"
		head -c 4000 "$ERR"
		echo
		echo "--- daemon log (tail):"
		tail -n 40 "$LOG"
	} >&2
	exit 1
}

# ctl ARGS...: runs tenderctl on the node's socket; stdout in $OUT, stderr in $ERR, exit code in $RC.
ctl() {
	timeout 60 "$TENDERCTL" --socket "$SOCK" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC != 124)) || fail "tenderctl $* did not finish within 60 s"
}

# expect_rc CODE ARGS...: ctl that must exit with CODE.
expect_rc() {
	local want=$1
	shift
	ctl "$@"
	((RC == want)) || fail "tenderctl $* exited $RC, expected $want"
}

# check PYTHON: runs assertions on the JSON in $OUT, bound to d.
check() {
	"$PY" - "$OUT" >"$TMP/check.out" 2>&1 <<EOF
import json, sys
from decimal import Decimal
with open(sys.argv[1]) as f:
    d = json.load(f, parse_float=Decimal)
$CHECK
EOF
	local rc=$?
	if ((rc != 0)); then
		cat "$TMP/check.out" >&2
		fail "assertion failed on the output of the last command"
	fi
}

# client.py: a JSON-RPC client on one connection, imported by the python steps below.
cat >"$TMP/client.py" <<'EOF'
import json, socket, time

class Client:
    """One connection; sends lines and reads answer lines (each a JSON value)."""
    def __init__(self, path, timeout=30):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(timeout)
        self.s.connect(path)
        self.buf = b""

    def send(self, line):
        if isinstance(line, str):
            line = line.encode()
        self.s.sendall(line if line.endswith(b"\n") else line + b"\n")

    def line(self):
        while b"\n" not in self.buf:
            c = self.s.recv(1 << 20)
            if not c:
                raise EOFError("connection closed; buffered %r" % self.buf[:200])
            self.buf += c
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)

    def ask(self, line):
        self.send(line)
        return self.line()

    def nothing_before(self, marker):
        """Answers come in request order: the next line must answer this status request."""
        d = self.ask(json.dumps({"jsonrpc": "2.0", "id": marker, "method": "status"}))
        assert isinstance(d, dict) and d.get("id") == marker and "result" in d, \
            "expected only the answer to %r, got %r" % (marker, d)

def match(got, want):
    """One answer against one expected answer: jsonrpc, id, and the result (a
    callable checks it) or the error code (messages are the server's own)."""
    if not isinstance(got, dict) or got.get("jsonrpc") != "2.0" or "id" not in got:
        return False
    if got["id"] != want["id"] or len(got) != 3:
        return False
    if "error" in want:
        e = got.get("error")
        return isinstance(e, dict) and e.get("code") == want["error"]["code"] and isinstance(e.get("message"), str)
    if "result" not in got:
        return False
    r = want["result"]
    return r(got["result"]) if callable(r) else got["result"] == r

def expect(got, want):
    """An answer as the specification gives it: one object, or an array of the same answers in any order."""
    if isinstance(want, dict):
        assert match(got, want), "got %r, expected %r" % (got, want)
        return
    assert isinstance(got, list) and len(got) == len(want), "got %r, expected %d answers" % (got, len(want))
    left = list(got)
    for w in want:
        for i, g in enumerate(left):
            if match(g, w):
                del left[i]
                break
        else:
            raise AssertionError("no answer like %r in %r" % (w, got))

def err(code, id=None):
    return {"jsonrpc": "2.0", "error": {"code": code, "message": "..."}, "id": id}

def ok(result, id):
    return {"jsonrpc": "2.0", "result": result, "id": id}
EOF

# py SCRIPT ARGS...: runs python with client.py importable and the socket as argv[1]; output in $OUT.
py() {
	PYTHONPATH="$TMP" timeout 120 "$PY" - "$SOCK" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC == 0)) || fail "python step failed"
}

# ---------------------------------------------------------------- start
step "tenderd init and run"
timeout 30 "$TENDERD" init --home "$H" --name "Jeju Special Self-Governing Province" >"$OUT" 2>"$ERR" ||
	fail "tenderd init failed"
"$TENDERD" run --home "$H" >>"$LOG" 2>&1 &
PID=$!
for ((i = 0; i < WAIT_S * 10; i++)); do
	kill -0 "$PID" 2>/dev/null || fail "tenderd exited while starting"
	[[ -S "$SOCK" ]] && timeout 5 "$TENDERCTL" --socket "$SOCK" status >"$OUT" 2>"$ERR" && break
	sleep 0.1
done
((i < WAIT_S * 10)) || fail "tenderd did not answer on $SOCK within $WAIT_S s"

step "commit $BLOCKS blocks (one tender each)"
py "$SAMPLES/tender-jeju.json" "$BLOCKS" <<'EOF'
import json, sys
from decimal import Decimal
from client import Client
c = Client(sys.argv[1])
t = json.load(open(sys.argv[2]), parse_float=Decimal)
class E(json.JSONEncoder):
    def default(self, o):
        return float(o)
for i in range(int(sys.argv[3])):
    t["ocid"] = "ocds-kr2020-batch-%04d" % i
    t["tender"]["id"] = "batch-%04d" % i
    d = c.ask(json.dumps({"jsonrpc": "2.0", "id": i, "method": "tender.publish",
                          "params": {"kind": "tender", "release": t, "wait": True}}, cls=E))
    assert d.get("id") == i and "result" in d, d
    assert d["result"]["height"] == i + 1, d
print("ok")
EOF

# ---------------------------------------------------------------- section 7
step "the examples of JSON-RPC 2.0 section 7, with tenderd's methods"
py <<'EOF'
import sys
from client import Client, expect, err, ok
c = Client(sys.argv[1])
def block1(r): return r["height"] == 1 and len(r["records"]) == 1
def status(r): return r["height"] >= 100 and r["records"] >= 100
def tender0(r): return r["ocid"] == "ocds-kr2020-batch-0000" and len(r["releases"]) == 1

# rpc call with positional parameters: tenderd's methods take named ones only (-32602)
expect(c.ask('{"jsonrpc": "2.0", "method": "block.get", "params": [1], "id": 1}'), err(-32602, 1))
expect(c.ask('{"jsonrpc": "2.0", "method": "block.get", "params": [2], "id": 2}'), err(-32602, 2))
# rpc call with named parameters
expect(c.ask('{"jsonrpc": "2.0", "method": "block.get", "params": {"height": 1}, "id": 3}'), ok(block1, 3))
expect(c.ask('{"jsonrpc": "2.0", "method": "status", "params": {}, "id": 4}'), ok(status, 4))
# a Notification
c.send('{"jsonrpc": "2.0", "method": "status", "params": {}}')
c.send('{"jsonrpc": "2.0", "method": "foobar"}')
c.nothing_before("after-notifications")
# rpc call of non-existent method
expect(c.ask('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}'), err(-32601, "1"))
# rpc call with invalid JSON
expect(c.ask('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]'), err(-32700))
# rpc call with invalid Request object
expect(c.ask('{"jsonrpc": "2.0", "method": 1, "params": "bar"}'), err(-32600))
# rpc call Batch, invalid JSON (one line: the socket frames by lines)
expect(c.ask('[{"jsonrpc": "2.0", "method": "block.get", "params": {"height": 1}, "id": "1"},'
             '{"jsonrpc": "2.0", "method"]'), err(-32700))
# rpc call with an empty Array
expect(c.ask('[]'), err(-32600))
# rpc call with an invalid Batch (but not empty)
expect(c.ask('[1]'), [err(-32600)])
# rpc call with invalid Batch
expect(c.ask('[1,2,3]'), [err(-32600), err(-32600), err(-32600)])
# rpc call Batch
expect(c.ask('[{"jsonrpc": "2.0", "method": "block.get", "params": {"height": 1}, "id": "1"},'
             '{"jsonrpc": "2.0", "method": "status", "params": {}},'
             '{"jsonrpc": "2.0", "method": "status", "params": {}, "id": "2"},'
             '{"foo": "boo"},'
             '{"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},'
             '{"jsonrpc": "2.0", "method": "tender.get", "params": {"ocid": "ocds-kr2020-batch-0000"}, "id": "9"},'
             '{"jsonrpc": "2.0", "method": "tender.get", "params": {"ocid": "ocds-kr2020-none"}, "id": "10"}]'),
       [ok(block1, "1"), ok(status, "2"), err(-32600), err(-32601, "5"), ok(tender0, "9"), err(-32002, "10")])
# rpc call Batch (all notifications): nothing is returned
c.send('[{"jsonrpc": "2.0", "method": "status", "params": {}},'
       '{"jsonrpc": "2.0", "method": "block.get", "params": {"height": 1}}]')
c.nothing_before("after-notification-batch")
print("ok")
EOF

# ---------------------------------------------------------------- watch, wait, caps
step "tender.watch inside a batch is refused; alone it streams"
py <<'EOF'
import sys
from client import Client, expect, err, ok
c = Client(sys.argv[1])
d = c.ask('[{"jsonrpc": "2.0", "method": "tender.watch", "params": {"from_height": 1}, "id": 1},'
          '{"jsonrpc": "2.0", "method": "block.get", "params": {"height": 2}, "id": 2}]')
expect(d, [err(-32600, 1), ok(lambda r: r["height"] == 2, 2)])
w = [a for a in d if a["id"] == 1][0]
assert "tender.watch" in w["error"]["message"] and "batch" in w["error"]["message"], w
# nothing streams on this connection: the next line answers the next request
c.nothing_before("no-stream")
d = c.ask('{"jsonrpc": "2.0", "method": "tender.watch", "params": {"from_height": 100}, "id": 3}')
assert d.get("method") == "tender.release" and d["params"]["height"] == 100, d
print("ok")
EOF

step "a batch with a publish that waits for its commit"
py "$SAMPLES/tender-kisa.json" <<'EOF'
import json, sys
from decimal import Decimal
from client import Client, expect, err, ok
c = Client(sys.argv[1])
t = json.load(open(sys.argv[2]), parse_float=Decimal)
class E(json.JSONEncoder):
    def default(self, o):
        return float(o)
batch = [
    {"jsonrpc": "2.0", "id": "p", "method": "tender.publish", "params": {"kind": "tender", "release": t, "wait": True}},
    {"jsonrpc": "2.0", "id": "b", "method": "block.get", "params": {"height": 100}},
    {"jsonrpc": "2.0", "method": "status", "params": {}},
]
d = c.ask(json.dumps(batch, cls=E))
expect(d, [ok(lambda r: r["height"] == 101 and r["ocid"] == t["ocid"], "p"), ok(lambda r: r["height"] == 100, "b")])
print("ok")
EOF

step "held behind a waiting publish, a client's requests reach the pending cap; all are answered"
py "$SAMPLES/tender-sejong.json" <<'EOF'
import json, sys, threading
from decimal import Decimal
from client import Client
c = Client(sys.argv[1])
t = json.load(open(sys.argv[2]), parse_float=Decimal)
class E(json.JSONEncoder):
    def default(self, o):
        return float(o)
# A publish that waits for its commit holds back every answer after it, so the
# 3 batches of 1000 block.get and 500 status behind it stay pending: the node
# stops reading at its cap and reads on once the commit lets the answers out.
lines = [json.dumps({"jsonrpc": "2.0", "id": "p", "method": "tender.publish",
                     "params": {"kind": "tender", "release": t, "wait": True}}, cls=E)]
for k in range(3):
    lines.append(json.dumps([{"jsonrpc": "2.0", "id": k * 1000 + i, "method": "block.get",
                              "params": {"height": 1 + i % 100}} for i in range(1000)]))
lines += [json.dumps({"jsonrpc": "2.0", "id": 3000 + i, "method": "status"}) for i in range(500)]
data = ("\n".join(lines) + "\n").encode()
th = threading.Thread(target=lambda: c.s.sendall(data))
th.start()
d = c.line()
assert d.get("id") == "p" and d["result"]["height"] == 102, d
for k in range(3):
    d = c.line()
    assert isinstance(d, list) and len(d) == 1000, (k, type(d))
    assert sorted(a["id"] for a in d) == list(range(k * 1000, k * 1000 + 1000))
    assert all(a["result"]["height"] == 1 + a["id"] % 100 for a in d)
for i in range(500):
    d = c.line()
    assert d["id"] == 3000 + i and "result" in d, d
th.join()
# over the batch cap: one error object
d = c.ask(json.dumps([{"jsonrpc": "2.0", "id": i, "method": "status"} for i in range(1001)]))
assert isinstance(d, dict) and d["error"]["code"] == -32600 and d["id"] is None, d
print("ok")
EOF
kill -0 "$PID" 2>/dev/null || fail "tenderd died"

# ---------------------------------------------------------------- tenderctl
step "tenderctl call with a batch prints the array of answers"
expect_rc 0 call '[{"jsonrpc":"2.0","id":1,"method":"block.get","params":{"height":1}},{"jsonrpc":"2.0","id":"s","method":"status"},{"jsonrpc":"2.0","method":"status"}]'
CHECK='
assert isinstance(d, list) and len(d) == 2, d
by = {a["id"]: a for a in d}
assert by[1]["result"]["height"] == 1, by[1]
assert by["s"]["result"]["height"] >= 102, by["s"]
' check

step "tenderctl call: a batch with errors exits 1 and still prints every answer"
expect_rc 1 call '[{"jsonrpc":"2.0","id":1,"method":"tender.get","params":{"ocid":"ocds-kr2020-none"}},{"jsonrpc":"2.0","id":2,"method":"block.get","params":{"height":2}},7]'
CHECK='
assert isinstance(d, list) and len(d) == 3, d
by = {a["id"]: a for a in d}
assert by[1]["error"]["code"] == -32002, by[1]
assert by[2]["result"]["height"] == 2, by[2]
assert by[None]["error"]["code"] == -32600, by[None]
' check
grep -q "1 of the 3\|2 of the 3" "$ERR" || fail "no summary of the errors on stderr"

step "tenderctl call: notifications only print nothing and exit 0"
expect_rc 0 call '[{"jsonrpc":"2.0","method":"status"},{"jsonrpc":"2.0","method":"block.get","params":{"height":1}}]'
[[ ! -s "$OUT" ]] || fail "a batch of notifications printed something"

step "tenderctl call: an empty batch exits 1 with -32600, a malformed one is a usage error"
expect_rc 1 call '[]'
grep -q -- "-32600" "$ERR" || fail "the -32600 error is not shown"
expect_rc 3 call '[{"jsonrpc":"2.0"'

# ---------------------------------------------------------------- measure
step "measure: a batch of 100 block.get against 100 single requests on one connection"
py "$BLOCKS" <<'EOF'
import json, sys, time
from client import Client
c = Client(sys.argv[1])
n = int(sys.argv[2])
single = [json.dumps({"jsonrpc": "2.0", "id": h, "method": "block.get", "params": {"height": h}})
          for h in range(1, n + 1)]
batch = json.dumps([json.loads(s) for s in single])
def run_singles():
    t = time.perf_counter()
    got = [c.ask(s) for s in single]
    return time.perf_counter() - t, got
def run_pipelined():
    t = time.perf_counter()
    c.send("\n".join(single))
    got = [c.line() for _ in single]
    return time.perf_counter() - t, got
def run_batch():
    t = time.perf_counter()
    got = c.ask(batch)
    return time.perf_counter() - t, got
# the same answers either way
ts, singles = run_singles()
tb, batched = run_batch()
tp, piped = run_pipelined()
assert sorted(batched, key=lambda a: a["id"]) == singles == piped
best_s = min(run_singles()[0] for _ in range(5))
best_p = min(run_pipelined()[0] for _ in range(5))
best_b = min(run_batch()[0] for _ in range(5))
print("e2e_batch: %d block.get on one connection, best of 5: one at a time %.2f ms, pipelined %.2f ms, "
      "one batch %.2f ms" % (n, best_s * 1e3, best_p * 1e3, best_b * 1e3))
EOF
cat "$OUT"

# ---------------------------------------------------------------- shutdown
step "SIGTERM stops the daemon cleanly"
kill -TERM "$PID"
for ((i = 0; i < WAIT_S * 10; i++)); do
	kill -0 "$PID" 2>/dev/null || break
	sleep 0.1
done
kill -0 "$PID" 2>/dev/null && fail "tenderd still running $WAIT_S s after SIGTERM"
wait "$PID"
RC=$?
PID=""
((RC == 0)) || fail "tenderd exited $RC after SIGTERM, expected 0"

echo "e2e_batch: all steps passed"
