#!/usr/bin/env bash
# End-to-end test of storage faults: tests/e2e_storage.sh BIN_DIR DATA_DIR
#
# 1. Damage: a one-validator node publishes a few hundred tenders; with the
#    node stopped, 64 bytes of its records file (data/records.dat) are
#    flipped. `tenderd check` must exit non-zero naming the first bad
#    height, and the restarted node must answer status but refuse (an error,
#    not an answer) the damaged block and an export over it.
# 2. A full disk: a node whose home is on an 8 MiB tmpfs publishes with
#    --wait until the disk fills. Publishing must then be refused with an
#    error (not hang, not be accepted), the log must say why at error level,
#    the node must keep answering status, and after it is stopped and the
#    filesystem grown, `tenderd check` passes and every tender acknowledged
#    (committed, publish --wait answered) before is there. (Publishing again
#    is the consensus driver's part: a lone validator that decided a block it
#    could not write waits for block sync.)
#    Part 2 needs root (mount); without it, it is skipped with a message.
# Fails fast: prints the step, the last command's output and the daemon log tail.
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
WAIT_S=${TD_E2E_WAIT:-20} # seconds to wait for the daemon to answer or to stop

for b in "$TENDERD" "$TENDERCTL"; do
	[[ -x "$b" ]] || { echo "e2e_storage: $b is missing or not executable" >&2; exit 1; }
done

TMP=$(mktemp -d /tmp/td-sto.XXXXXX) || exit 1
H=""
SOCK=""
LOG="$TMP/tenderd.log"
PID=""
MNT=""
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
	if [[ -n "$MNT" ]]; then
		umount "$MNT" 2>/dev/null || umount -l "$MNT" 2>/dev/null
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

ok() {
	ctl "$@"
	((RC == 0)) || fail "tenderctl $* exited $RC, expected 0"
}

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

daemon_stop() {
	local i
	kill -TERM "$PID" 2>/dev/null
	for ((i = 0; i < WAIT_S * 10; i++)); do
		kill -0 "$PID" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$PID" 2>/dev/null && fail "tenderd still running $WAIT_S s after SIGTERM"
	wait "$PID" 2>/dev/null
	PID=""
}

# tender_file FILE OCID PAD: the Jeju sample under OCID with a description of PAD bytes.
tender_file() {
	"$PY" - "$SAMPLES/tender-jeju.json" "$1" "$2" "$3" <<'EOF' || fail "could not write $1"
import json, random, string, sys
from decimal import Decimal
t = json.load(open(sys.argv[1]), parse_float=Decimal)
t["ocid"] = sys.argv[3]
t["id"] = sys.argv[3] + "-r1"
t["tender"]["id"] = sys.argv[3] + "-t"
r = random.Random(sys.argv[3])
t["description"] = "".join(r.choice(string.ascii_letters) for _ in range(int(sys.argv[4])))
class E(json.JSONEncoder):
    def default(self, o):
        return float(o)
open(sys.argv[2], "w").write(json.dumps(t, cls=E))
EOF
}

# publish_many N FIRST PAD: publishes N tenders ocds-kr2020-sto-FIRST.. through tenderctl, no --wait.
publish_many() {
	"$PY" - "$TENDERCTL" "$SOCK" "$SAMPLES/tender-jeju.json" "$1" "$2" "$3" <<'EOF' >"$OUT" 2>"$ERR"
import json, random, string, subprocess, sys
ctl, sock, sample, n, first, pad = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
from decimal import Decimal
t = json.load(open(sample), parse_float=Decimal)
class E(json.JSONEncoder):
    def default(self, o):
        return float(o)
for i in range(first, first + n):
    ocid = "ocds-kr2020-sto-%06d" % i
    t["ocid"] = ocid
    t["id"] = ocid + "-r1"
    t["tender"]["id"] = ocid + "-t"
    r = random.Random(i)
    t["description"] = "".join(r.choice(string.ascii_letters) for _ in range(pad))
    p = subprocess.run([ctl, "--socket", sock, "publish", "tender", "-"], input=json.dumps(t, cls=E).encode(),
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        print("publish %s exited %d: %s" % (ocid, p.returncode, p.stderr.decode()))
        sys.exit(1)
EOF
	RC=$?
	((RC == 0)) || fail "publishing $1 tenders failed"
}

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

# ================================================================ 1. damage
step "a node with 300 tenders"
H="$TMP/home"
SOCK="$H/tenderd.sock"
timeout 30 "$TENDERD" init --home "$H" --name "Storage test" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd init exited $RC"
daemon_start
publish_many 300 0 2000
wait_records 300
ok status
HEIGHT=$(val 'd["height"]')
daemon_stop
# once more, so LevelDB turns its log into a table file at open
daemon_start
daemon_stop

step "tenderd check on an intact store"
timeout 120 "$TENDERD" check --home "$H" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd check exited $RC on an intact store"
grep -q "intact" "$OUT" || fail "tenderd check does not say the store is intact"

# A quarter into the records file: record bytes live there, a block's in order, so the
# damage lands in the records of one early block (LevelDB's tables hold only small keys,
# where damage may hit many blocks' headers at once).
step "flip 64 bytes a quarter into the records file"
RECS="$H/data/records.dat"
[[ -s "$RECS" ]] || fail "no records file $RECS"
"$PY" - "$RECS" <<'EOF' || fail "could not damage $RECS"
import sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
mid = len(d) // 4
for i in range(mid, mid + 64):
    d[i] ^= 0xff
open(p, "wb").write(d)
EOF

step "tenderd check names the first bad height"
timeout 120 "$TENDERD" check --home "$H" >"$OUT" 2>"$ERR"
RC=$?
((RC != 0)) || fail "tenderd check exited 0 on a damaged store"
((RC != 124)) || fail "tenderd check did not finish"
grep -q "damaged" "$OUT" || fail "tenderd check does not say the store is damaged"
BAD=$(sed -n 's/.*first bad height \([0-9][0-9]*\).*/\1/p' "$OUT" | head -n 1)
[[ -n "$BAD" ]] || fail "tenderd check does not name the first bad height"
((BAD >= 1 && BAD <= HEIGHT)) || fail "bad height $BAD is not a block of the chain (1..$HEIGHT)"
grep -qi "resync" "$OUT" || fail "tenderd check does not say how to recover"
echo "    $(grep damaged "$OUT")"

step "the node starts, answers, and refuses the damaged block $BAD"
daemon_start
ok status
ctl block "$BAD"
((RC == 1)) || fail "tenderd served damaged block $BAD (tenderctl exited $RC)"
grep -qi "store error\|corrupt\|i/o" "$ERR" || fail "the refusal does not name the store"
ctl export --from "$BAD" --to "$BAD"
((RC == 1)) || fail "tenderd exported damaged block $BAD (tenderctl exited $RC)"
OTHER=1
((BAD == 1)) && OTHER=$HEIGHT
if ((OTHER != BAD)); then
	ok block "$OTHER"
fi
ok status
grep -q "error.*block $BAD" "$LOG" || fail "the log does not name block $BAD at error level"
daemon_stop

# ================================================================ 2. full disk
step "a node on an 8 MiB tmpfs"
MNT="$TMP/small"
mkdir -p "$MNT"
if ! mount -t tmpfs -o size=8m tmpfs "$MNT" 2>"$ERR"; then
	MNT=""
	echo "--- SKIP full disk: cannot mount a tmpfs ($(cat "$ERR")); needs root"
	echo "e2e_storage: damage checks passed (full disk skipped)"
	exit 0
fi
H="$MNT/home"
SOCK="$TMP/small.sock"
: >"$LOG"
timeout 30 "$TENDERD" init --home "$H" --name "Full disk" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd init on the tmpfs exited $RC"
"$PY" - "$H/config.ini" "$SOCK" <<'EOF' || fail "could not set the socket path"
import sys
p = sys.argv[1]
s = open(p).read().replace("socket = tenderd.sock", "socket = " + sys.argv[2])
open(p, "w").write(s)
EOF
daemon_start

step "publish with --wait until the disk is full"
ACKED="$TMP/acked"
: >"$ACKED"
REFUSED=""
for ((i = 0; i < 2000; i++)); do
	ocid=$(printf "ocds-kr2020-full-%05d" "$i")
	tender_file "$TMP/t.json" "$ocid" 20000
	timeout 60 "$TENDERCTL" --socket "$SOCK" --timeout 15 publish tender "$TMP/t.json" --wait >"$OUT" 2>"$ERR"
	RC=$?
	((RC != 124)) || fail "publish did not finish within 60 s"
	if ((RC == 0)); then
		echo "$ocid" >>"$ACKED"
		continue
	fi
	REFUSED="$ocid"
	break
done
[[ -n "$REFUSED" ]] || fail "2000 tenders of 20 KB fitted on an 8 MiB disk"
NACK=$(wc -l <"$ACKED")
((NACK >= 10)) || fail "only $NACK tenders were committed before the disk filled"
echo "    $NACK tenders committed, then $REFUSED: exit $RC: $(head -c 300 "$ERR")"

step "further publishes are refused with an error naming the store"
REFUSAL=""
for ((j = 0; j < 5; j++)); do
	tender_file "$TMP/t.json" "ocds-kr2020-after-$j" 100
	ctl --timeout 15 publish tender "$TMP/t.json"
	if ((RC == 1)); then
		REFUSAL=$(cat "$ERR")
		break
	fi
	sleep 1
done
[[ -n "$REFUSAL" ]] || fail "a publish after the disk filled was not refused (exit $RC)"
grep -qi "store" "$ERR" || fail "the refusal does not name the store: $REFUSAL"
echo "    refused: $(head -c 300 "$ERR")"
ok status
grep -Eq " error .*(No space left|store)" "$LOG" || fail "the log does not say why at error level"
grep -q "No space left on device" "$LOG" || fail "the log does not name the full disk"

step "stop, grow the filesystem, restart: nothing acknowledged is lost"
daemon_stop
mount -o remount,size=64m "$MNT" || fail "could not grow the tmpfs"
timeout 120 "$TENDERD" check --home "$H" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd check exited $RC after the full disk"
daemon_start
while read -r ocid; do
	ok get "$ocid"
done <"$ACKED"
ok status
N=$(val 'd["records"]')
((N >= NACK)) || fail "the node holds $N records, $NACK were acknowledged"
H2=$(val 'd["height"]')
((H2 >= NACK)) || fail "the node is at height $H2, below the $NACK blocks acknowledged"

step "the lone validator commits again after the restart (its consensus log resumes the height)"
tender_file "$TMP/t.json" "ocds-kr2020-after-full" 2000
ok --timeout 15 publish tender "$TMP/t.json" --wait
ok get "ocds-kr2020-after-full"
daemon_stop
umount "$MNT" || fail "could not unmount $MNT"
MNT=""
echo "e2e_storage: all checks passed"
