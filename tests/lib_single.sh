# Shared by end-to-end tests of one real tenderd node: source it after setting NAME_OF_TEST;
# it takes BIN_DIR DATA_DIR from "$@". Gives a temporary home $H (socket $SOCK, log $LOG),
# step/fail/ctl/ok/refused/check/val, single_init (tenderd init), daemon_start, stop_term,
# wait_records and variant (a copy of the Jeju tender under another ocid), and
# a cleanup that kills the daemon and removes everything. Fails fast: prints the step, the
# last command's output and the daemon log tail. Needs bash, coreutils and python3.
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
NAME="Jeju Special Self-Governing Province"

for b in "$TENDERD" "$TENDERCTL"; do
	[[ -x "$b" ]] || { echo "$NAME_OF_TEST: $b is missing or not executable" >&2; exit 1; }
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

# check: runs the python assertions in $CHECK on the JSON in $OUT, bound to d (floats as Decimal).
check() {
	"$PY" - "$OUT" "$@" >"$TMP/check.out" 2>&1 <<PYCHECK
import json, re, sys
from decimal import Decimal
with open(sys.argv[1]) as f:
    d = json.load(f, parse_float=Decimal)
HEX64 = re.compile(r'^[0-9a-f]{64}\$')
def hex64(s): return isinstance(s, str) and HEX64.match(s) is not None
def items(d): return d['tenders'] if isinstance(d, dict) else d
$CHECK
PYCHECK
	local rc=$?
	if ((rc != 0)); then
		cat "$TMP/check.out" >&2
		fail "assertion failed on the output of the last command"
	fi
}

# val PYTHON-EXPR: a field of the JSON in $OUT (bound to d), printed.
val() {
	"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); v=$1; print(v if not isinstance(v,(dict,list)) else json.dumps(v))" "$OUT" ||
		fail "could not read $1 from the output"
}

# single_init [HOME]: a one-validator chain's home (default $H) named $NAME, ocid prefix ocds-kr2020.
single_init() {
	local home=${1:-$H}
	timeout 30 "$TENDERD" init --home "$home" --name "$NAME" --ocid-prefix ocds-kr2020 >"$OUT" 2>"$ERR"
	RC=$?
	((RC == 0)) || fail "tenderd init exited $RC"
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

stop_term() {
	local i
	kill -TERM "$PID"
	for ((i = 0; i < WAIT_S * 10; i++)); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$PID" 2>/dev/null && fail "tenderd still running $WAIT_S s after SIGTERM"
	wait "$PID"
	RC=$?
	((RC == 0)) || fail "tenderd exited $RC after SIGTERM, expected 0"
	PID=""
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
	"$PY" - "$SAMPLES/tender-jeju.json" "$1" "$2" <<PYVARIANT || fail "could not write $1"
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
PYVARIANT
}
