#!/usr/bin/env bash
# End-to-end test of record fates: tests/e2e_record.sh BIN_DIR DATA_DIR
#
# Starts a real one-validator tenderd in a temporary home and asks it through
# tenderctl record (JSON-RPC record.status) what became of records: the id a
# publish answers, then committed with the height of its block (also after a
# SIGTERM restart and after a kill -9 restart), an id never seen (unknown,
# saying why), a bad id (usage, exit 3), bad params through call (-32602,
# exit 1) and no node (exit 2). Pending and dropped records are covered by
# tests/test_api_record.c, where the test controls when blocks are made.
# Fails fast: prints the step, the last command's output and the daemon log tail.
# Needs bash, coreutils and python3 (for JSON assertions); no jq.
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

for b in "$TENDERD" "$TENDERCTL"; do
	[[ -x "$b" ]] || { echo "e2e_record: $b is missing or not executable" >&2; exit 1; }
done

# A short path: a Unix socket path must fit in 108 bytes.
TMP=$(mktemp -d /tmp/td-e2e.XXXXXX) || exit 1
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
	timeout 30 "$TENDERCTL" --socket "$SOCK" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC != 124)) || fail "tenderctl $* did not finish within 30 s"
}

# ok ARGS...: ctl that must succeed.
ok() {
	ctl "$@"
	((RC == 0)) || fail "tenderctl $* exited $RC, expected 0"
}

# refused CODE ARGS...: ctl that must exit with CODE.
refused() {
	local want=$1
	shift
	ctl "$@"
	((RC == want)) || fail "tenderctl $* exited $RC, expected $want"
}

# check PYTHON: runs assertions on the JSON in $OUT, bound to d (floats as Decimal, exact).
check() {
	"$PY" - "$OUT" "$@" >"$TMP/check.out" 2>&1 <<EOF
import json, re, sys
from decimal import Decimal
with open(sys.argv[1]) as f:
    d = json.load(f, parse_float=Decimal)
HEX64 = re.compile(r'^[0-9a-f]{64}\$')
def hex64(s): return isinstance(s, str) and HEX64.match(s) is not None
def items(d): return d['tenders'] if isinstance(d, dict) else d
$CHECK
EOF
	local rc=$?
	if ((rc != 0)); then
		cat "$TMP/check.out" >&2
		fail "assertion failed on the output of the last command"
	fi
}

# jq-less field read: val PYTHON-EXPR (on d from $OUT), printed.
val() {
	"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); v=$1; print(v if not isinstance(v,(dict,list)) else json.dumps(v))" "$OUT" ||
		fail "could not read $1 from the output"
}

daemon_start() {
	"$TENDERD" run --home "$H" >>"$LOG" 2>&1 &
	PID=$!
	local i
	for ((i = 0; i < WAIT_S * 10; i++)); do
		kill -0 "$PID" 2>/dev/null || { wait "$PID"; RC=$?; fail "tenderd exited ($RC) while starting"; }
		if [[ -S "$SOCK" ]]; then
			timeout 5 "$TENDERCTL" --socket "$SOCK" status >"$OUT" 2>"$ERR" && return 0
		fi
		sleep 0.1
	done
	fail "tenderd did not answer on $SOCK within $WAIT_S s"
}

# wait_records N: polls status until records == N.
wait_records() {
	local i n=""
	for ((i = 0; i < WAIT_S * 10; i++)); do
		ok status
		n=$(val 'd["records"]')
		[[ "$n" == "$1" ]] && return 0
		sleep 0.1
	done
	fail "status.records is $n after $WAIT_S s, expected $1"
}

# tender FILE OCID: writes to FILE a copy of the Jeju tender under OCID, edited by python code in $EDIT (on t).
variant() {
	"$PY" - "$SAMPLES/tender-jeju.json" "$1" "$2" <<EOF || fail "could not write $1"
import json, sys
from decimal import Decimal
t = json.load(open(sys.argv[1]), parse_float=Decimal)
t["ocid"] = sys.argv[3]
t["tender"]["id"] = sys.argv[3] + "-t"
$EDIT
class E(json.JSONEncoder):
    def default(self, o):
        return float(o)
open(sys.argv[2], "w").write(json.dumps(t, cls=E))
EOF
}

NAME="Jeju Special Self-Governing Province"

stop_term() {
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
}

# committed_at ID HEIGHT: tenderctl record ID answers committed at HEIGHT.
committed_at() {
	ok record "$1"
	CHECK='
assert d == {"id": sys.argv[2], "status": "committed", "height": int(sys.argv[3])}, d
' check "$1" "$2"
}

step "tenderd init and run"
timeout 30 "$TENDERD" init --home "$H" --name "$NAME" --ocid-prefix ocds-kr2020 >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd init exited $RC"
daemon_start

step "publish answers the record id; record tells pending or committed, then committed at its height"
EDIT='' variant "$TMP/a.json" ocds-kr2020-rec-0001
ok publish tender "$TMP/a.json"
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-rec-0001" and "height" not in d, d' check
A=$(val 'd["id"]')
ok record "$A"
CHECK='
assert d["id"] == sys.argv[2], d
assert d["status"] in ("pending", "committed"), d
assert d["status"] == "pending" or d["height"] == 1, d
' check "$A"
wait_records 1
committed_at "$A" 1
ok get ocds-kr2020-rec-0001
CHECK='assert d["releases"][0]["record_id"] == sys.argv[2] and d["releases"][0]["height"] == 1, d' check "$A"

step "publish --wait: record gives the same height as the publish (an id in capitals too)"
EDIT='' variant "$TMP/b.json" ocds-kr2020-rec-0002
ok publish tender "$TMP/b.json" --wait
B=$(val 'd["id"]')
BH=$(val 'd["height"]')
((BH >= 2)) || fail "second record committed at height $BH"
committed_at "$B" "$BH"
committed_at "$A" 1
ok record "$(tr a-f A-F <<<"$B")"
CHECK='assert d == {"id": sys.argv[2], "status": "committed", "height": int(sys.argv[3])}, d' check "$B" "$BH"

step "an id never seen: unknown, exit 0, saying why"
NEVER=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
ok record "$NEVER"
CHECK='
assert d["id"] == sys.argv[2] and d["status"] == "unknown", d
assert "never seen" in d["message"] and "restart" in d["message"] and "4096" in d["message"], d
assert "height" not in d and "reason" not in d, d
' check "$NEVER"

step "bad ids and params"
refused 3 record 0011
grep -q "64 hex digits" "$ERR" || fail "the usage error does not say what an id is"
refused 3 record "${NEVER:0:63}g"
refused 3 record
refused 3 record "$A" "$B"
refused 1 call record.status '{"id": "xyz"}'
grep -q -- "-32602" "$ERR" || fail "bad id through call is not -32602"
grep -q "64 hex digits" "$ERR" || fail "the -32602 message does not say what an id is"
refused 1 call record.status '{}'
grep -q -- "-32602" "$ERR" && grep -q "id is missing" "$ERR" || fail "a missing id is not -32602 'id is missing'"
refused 1 call record.status '{"id": 7}'
grep -q -- "-32602" "$ERR" || fail "a number id is not -32602"

step "after a SIGTERM restart the records are still committed at their heights"
stop_term
echo "--- restart after SIGTERM" >>"$LOG"
daemon_start
committed_at "$A" 1
committed_at "$B" "$BH"

step "after a kill -9 right after a --wait publish, that record is committed at its height"
EDIT='' variant "$TMP/c.json" ocds-kr2020-rec-0003
ok publish tender "$TMP/c.json" --wait
C=$(val 'd["id"]')
CH=$(val 'd["height"]')
{
	kill -9 "$PID"
	wait "$PID"
} 2>/dev/null
PID=""
echo "--- restart after kill -9" >>"$LOG"
daemon_start
committed_at "$C" "$CH"
committed_at "$A" 1

step "no node: exit 2"
stop_term
refused 2 record "$A"

echo "e2e_record: all steps passed"
