#!/usr/bin/env bash
# End-to-end test of a one-validator chain: tests/e2e_single.sh BIN_DIR DATA_DIR
#
# Starts a real tenderd in a temporary home and drives it through tenderctl
# (and a raw socket for malformed input): init, key file permissions, status,
# publishing the sample tenders, exact amounts, queries, refusals and their
# exit codes, a kill -9 with restart, and a clean SIGTERM shutdown.
# Fails fast: prints the step, the last command's output and the daemon log tail.
# Needs bash, coreutils and python3 (for JSON assertions); no jq.
NAME_OF_TEST=e2e_single
# shellcheck source=tests/lib_single.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_single.sh"

JEJU=ocds-kr2020-jeju-0001
NAME="Jeju Special Self-Governing Province"

# ---------------------------------------------------------------- init
step "tenderd init"
timeout 30 "$TENDERD" init --home "$H" --name "$NAME" --ocid-prefix ocds-kr2020 >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd init exited $RC"
for f in node.key config.ini genesis.json; do
	[[ -f "$H/$f" ]] || fail "init did not create $H/$f"
done
mode=$(stat -c %a "$H/node.key")
[[ "$mode" == 600 ]] || fail "node.key has mode $mode, expected 600"
cp "$H/genesis.json" "$OUT"
CHECK='
assert d["chain_id"] == "tenderd-local", d["chain_id"]
assert d["ocid_prefix"] == "ocds-kr2020", d["ocid_prefix"]
assert len(d["validators"]) == 1, d["validators"]
assert d["validators"][0]["name"] == "Jeju Special Self-Governing Province", d["validators"][0]
assert hex64(d["validators"][0]["pub_key"]), d["validators"][0]
' check
VALIDATOR=$(val 'd["validators"][0]["pub_key"]')

step "tenderd run refuses a node.key readable by others"
chmod 644 "$H/node.key"
timeout "$WAIT_S" "$TENDERD" run --home "$H" >"$OUT" 2>"$ERR"
RC=$?
((RC != 124)) || fail "tenderd started with a 0644 node.key (still running after $WAIT_S s)"
((RC != 0)) || fail "tenderd run exited 0 with a 0644 node.key"
grep -q 'node\.key' "$ERR" || fail "stderr does not name node.key"
grep -Eqi 'permission|mode|0?644' "$ERR" || fail "stderr does not mention the key file permissions"
[[ ! -S "$SOCK" ]] || fail "a refused start left a socket behind"
chmod 600 "$H/node.key"

# ---------------------------------------------------------------- start
step "tenderd run"
daemon_start
mode=$(stat -c %a "$SOCK")
(((8#$mode & 7) == 0)) || fail "socket mode $mode gives access to others"

step "status on a fresh chain"
ok status
CHECK='
assert d["chain_id"] == "tenderd-local", d
assert d["height"] == 0, d
assert d["records"] == 0, d
assert "mempool" in d, d
assert isinstance(d["peers"], list), d
assert isinstance(d["validators"], list) and len(d["validators"]) == 1, d
' check

step "TENDERD_SOCKET selects the socket"
TENDERD_SOCKET="$SOCK" timeout 30 "$TENDERCTL" status >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderctl status with TENDERD_SOCKET exited $RC"
CHECK='assert d["height"] == 0, d' check

# ---------------------------------------------------------------- publish
step "publish tender-jeju --wait"
ok publish tender "$SAMPLES/tender-jeju.json" --wait
CHECK='
assert hex64(d["id"]), d
assert d["ocid"] == "ocds-kr2020-jeju-0001", d
assert isinstance(d["height"], int) and d["height"] >= 1, d
' check
JEJU_ID=$(val 'd["id"]')
JEJU_H=$(val 'd["height"]')

step "publish four more tenders without --wait"
for s in kisa private gangwon sejong; do
	ok publish tender "$SAMPLES/tender-$s.json"
	CHECK='assert hex64(d["id"]) and d["ocid"].startswith("ocds-kr2020-"), d' check
done
wait_records 5

# ---------------------------------------------------------------- queries
step "get $JEJU"
ok get "$JEJU"
grep -q '712500000\.50' "$OUT" || fail "the output does not hold the exact amount text 712500000.50"
CHECK='
assert str(d["compiled"]["tender"]["value"]["amount"]) == "712500000.50", d["compiled"]["tender"]["value"]
assert d["compiled"]["ocid"] == "ocds-kr2020-jeju-0001", d["compiled"].get("ocid")
r = d["releases"]
assert len(r) == 1, r
assert r[0]["record_id"] == sys.argv[2], (r[0]["record_id"], sys.argv[2])
assert r[0]["height"] == int(sys.argv[3]), r[0]
assert "time" in r[0], r[0]
assert r[0]["agency"] == sys.argv[4], (r[0]["agency"], sys.argv[4])
' check "$JEJU_ID" "$JEJU_H" "$VALIDATOR"

step "list"
ok list
CHECK='
t = items(d)
assert len(t) == 5, t
ocids = [x["ocid"] for x in t]
assert sorted(ocids) == sorted(["ocds-kr2020-jeju-0001", "ocds-kr2020-kisa-0001", "ocds-kr2020-kisa-0002",
                                "ocds-kr2020-gw-0001", "ocds-kr2020-sj-0001"]), ocids
assert ocids[-1] == "ocds-kr2020-jeju-0001", ocids
hs = [x["height"] for x in t]
assert hs == sorted(hs, reverse=True), hs
' check

step "list --limit 2"
ok list --limit 2
CHECK='
t = items(d)
assert len(t) == 2, t
if isinstance(d, dict) and "next_cursor" in d:
    assert d["next_cursor"] is not None, d
' check

step "block $JEJU_H (holds the Jeju tender)"
ok block "$JEJU_H"
CHECK='
assert d["height"] == int(sys.argv[2]), d
assert hex64(d["hash"]), d
assert hex64(d["prev_hash"]), d
assert d["proposer"] == sys.argv[4], (d["proposer"], sys.argv[4])
assert sys.argv[3] in d["records"], d["records"]
c = d["commit"]
assert c["height"] == d["height"] and c["block_hash"] == d["hash"], c
assert len(c["signatures"]) == 1, c
' check "$JEJU_H" "$JEJU_ID" "$VALIDATOR"

step "block 1"
ok block 1
CHECK='
assert d["height"] == 1, d
assert hex64(d["hash"]), d
assert d["prev_hash"] == "0" * 64, d["prev_hash"]
assert hex64(d["proposer"]), d
assert isinstance(d["records"], list), d
assert len(d["commit"]["signatures"]) == 1, d["commit"]
' check

# ---------------------------------------------------------------- refusals
step "publishing the same tender again is refused"
refused 1 publish tender "$SAMPLES/tender-jeju.json"
grep -q "$JEJU" "$ERR" || fail "stderr does not name the duplicate ocid $JEJU"

step "an invalid JSON file is refused"
printf '{"ocid": "ocds-kr2020-bad-0001", "tender": {"id": "x",\n' >"$TMP/broken.json"
refused 1 publish tender "$TMP/broken.json"

step "a negative amount is refused"
EDIT='t["tender"]["value"]["amount"] = Decimal("-5")' variant "$TMP/negative.json" ocds-kr2020-neg-0001
grep -q -- '-5' "$TMP/negative.json" || fail "the negative sample was not written"
refused 1 publish tender "$TMP/negative.json"
grep -q 'tender\.value\.amount' "$ERR" || fail "stderr does not name tender.value.amount"

step "an unknown tender status is refused"
EDIT='t["tender"]["status"] = "bogus"' variant "$TMP/status.json" ocds-kr2020-st-0001
refused 1 publish tender "$TMP/status.json"
grep -q 'tender\.status' "$ERR" || fail "stderr does not name tender.status"

step "unknown tender and block"
refused 1 get ocds-kr2020-nope
refused 1 block 999

step "usage errors exit 3"
refused 3 frobnicate
refused 3 publish tender

step "an unreachable socket exits 2"
timeout 30 "$TENDERCTL" --socket "$TMP/nothing.sock" status >"$OUT" 2>"$ERR"
RC=$?
((RC == 2)) || fail "tenderctl on a missing socket exited $RC, expected 2"
# A socket file nobody listens on (bound, then the listener went away).
"$PY" -c 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$TMP/dead.sock" ||
	fail "could not create $TMP/dead.sock"
timeout 30 "$TENDERCTL" --socket "$TMP/dead.sock" status >"$OUT" 2>"$ERR"
RC=$?
((RC == 2)) || fail "tenderctl on a socket with no listener exited $RC, expected 2"

step "garbage on the socket gets a JSON-RPC error"
"$PY" - "$SOCK" >"$OUT" 2>"$ERR" <<'EOF'
import json, socket, sys

def ask(line):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(sys.argv[1])
    s.sendall(line)
    buf = b""
    while b"\n" not in buf:
        c = s.recv(65536)
        if not c:
            break
        buf += c
    s.close()
    assert b"\n" in buf, "no answer line: %r" % buf
    return json.loads(buf.split(b"\n")[0])

d = ask(b"this is not json {{{\n")
assert d.get("jsonrpc") == "2.0", d
assert d["error"]["code"] == -32700, d
assert d.get("id") is None, d
d = ask(b'{"jsonrpc":"2.0","id":7,"method":"no.such.method","params":{}}\n')
assert d["id"] == 7 and d["error"]["code"] == -32601, d
d = ask(b'{"jsonrpc":"2.0","id":8,"method":"status","params":{}}\n')
assert d["id"] == 8 and d["result"]["records"] == 5, d
print("ok")
EOF
RC=$?
((RC == 0)) || fail "raw socket exchange failed"
kill -0 "$PID" 2>/dev/null || fail "tenderd died after malformed input"
ok status

# ---------------------------------------------------------------- award
step "publish award-jeju --wait"
ok publish award "$SAMPLES/award-jeju.json" --wait
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-jeju-0001" and d["height"] >= 1, d' check
ok get "$JEJU"
grep -q '712500000\.50' "$OUT" || fail "the award lost the exact tender amount text"
CHECK='
assert len(d["releases"]) == 2, d["releases"]
a = d["compiled"]["awards"]
assert len(a) == 1 and str(a[0]["value"]["amount"]) == "698000000", a
' check
wait_records 6

# ---------------------------------------------------------------- crash
step "kill -9 right after a --wait publish"
EDIT='' variant "$TMP/crash.json" ocds-kr2020-crash-0001
ok publish tender "$TMP/crash.json" --wait
{
	kill -9 "$PID"
	wait "$PID"
} 2>/dev/null
PID=""
CRASH_ID=$(val 'd["id"]')
CRASH_H=$(val 'd["height"]')

step "restart after kill -9"
echo "--- restart after kill -9" >>"$LOG"
daemon_start
ok status
CHECK='
assert d["height"] == int(sys.argv[2]), (d["height"], sys.argv[2])
assert d["records"] == 7, d
' check "$CRASH_H"
ok get ocds-kr2020-crash-0001
CHECK='
assert d["releases"][0]["record_id"] == sys.argv[2], d["releases"]
assert d["releases"][0]["height"] == int(sys.argv[3]), d["releases"]
' check "$CRASH_ID" "$CRASH_H"
ok get "$JEJU"
grep -q '712500000\.50' "$OUT" || fail "the exact amount text did not survive the restart"

# ---------------------------------------------------------------- idle clients
step "256 idle socket clients do not lock a new one out"
"$PY" - "$SOCK" "$TENDERCTL" <<'PY' || fail "a client was locked out by idle connections"
import socket, subprocess, sys, time
held = []
for i in range(256):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sys.argv[1])
    held.append(s)
time.sleep(1.5)  # idle longer than RPC_EVICT_IDLE_MS
r = subprocess.run([sys.argv[2], "--socket", sys.argv[1], "--timeout", "5", "status"], capture_output=True)
sys.exit(r.returncode)
PY
grep -q "client table full (256): closing the client idle longest" "$LOG" || fail "no log line about making room"

# ---------------------------------------------------------------- audit
step "the log names the uid and pid behind each publish"
grep -Eq "published tender [^ ]+ for ocds-kr2020-jeju-0001 \(record [0-9a-f]{64}\) from uid $(id -u) pid [0-9]+" "$LOG" ||
	fail "no 'published ... from uid $(id -u) pid N' line for the Jeju tender in the log"

# ---------------------------------------------------------------- sign state
step "a store with blocks and no sign_state.json is refused"
{
	kill -9 "$PID"
	wait "$PID"
} 2>/dev/null
PID=""
[[ -f "$H/sign_state.json" ]] || fail "no sign_state.json in the home after blocks were signed"
mv "$H/sign_state.json" "$TMP/sign_state.saved"
timeout 30 "$TENDERD" run --home "$H" >"$OUT" 2>"$ERR"
RC=$?
((RC == 1)) || fail "tenderd run exited $RC without sign_state.json, expected 1"
grep -q "sign_state.json is missing but the store holds" "$ERR" ||
	fail "the refusal does not say the sign state is missing"
grep -q -- "--accept-missing-sign-state" "$ERR" || fail "the refusal does not name --accept-missing-sign-state"
[[ ! -e "$H/sign_state.json" ]] || fail "a refused start wrote a sign state"

step "--accept-missing-sign-state starts, and the node commits again"
"$TENDERD" run --home "$H" --accept-missing-sign-state >>"$LOG" 2>&1 &
PID=$!
for ((i = 0; i < WAIT_S * 10; i++)); do
	[[ -S "$SOCK" ]] && timeout 5 "$TENDERCTL" --socket "$SOCK" status >"$OUT" 2>"$ERR" && break
	sleep 0.1
done
EDIT='' variant "$TMP/after-ss.json" ocds-kr2020-signstate-0001
ok publish tender "$TMP/after-ss.json" --wait
[[ -f "$H/sign_state.json" ]] || fail "no sign_state.json written after --accept-missing-sign-state"
grep -q "was missing: starting with an empty sign state" "$LOG" || fail "the start did not warn about the missing sign state"

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
[[ ! -e "$SOCK" ]] || fail "the socket file is still there after shutdown"

echo "e2e_single: all steps passed"
