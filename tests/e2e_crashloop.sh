#!/usr/bin/env bash
# Restart safety under kill -9 (issue 13): tests/e2e_crashloop.sh BIN_DIR DATA_DIR
#
#   1. a one-validator node under a continuous publish load is killed with SIGKILL
#      at a random moment (0.1-1.5 s into the load) 12 times and restarted each time
#   2. a 4-validator testnet under load: a random validator (never the one killed
#      just before) is killed with SIGKILL 6 times and restarted each time
#
# After every restart: the node starts (no refusal, no consensus stop in its log),
# a fresh publish --wait on it commits within COMMIT_S seconds, the chain height
# never goes backwards, and every record whose publish --wait was acknowledged
# (with a height) is still there, on every node, with the same record id and block
# height; on the testnet every node ends on the same height and last block hash.
# Publishes that were in flight at a kill (started before it, not acknowledged) are
# counted as committed later, lost, or reported (the node answered an error) for
# the closing note; they never fail the test. Each iteration prints one line.
#
# Timeouts scale with TD_E2E_WAIT (default 20, as in lib_testnet.sh): COMMIT_S is
# TD_E2E_WAIT/4 for one node and TD_E2E_WAIT/2 on the testnet (5 s and 10 s), so a
# sanitizer build can run with TD_E2E_WAIT=60. TD_CRASH_SEED seeds the random
# delays and victims (printed at the start, for a replay of the same schedule).
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_crashloop "$1" "$2"
T0=$SECONDS

SEED=${TD_CRASH_SEED:-$((($$ * 7919 + $(date +%s)) % 32768))}
RANDOM=$SEED
note "seed $SEED (TD_CRASH_SEED=$SEED replays the same delays and victims)"

ITER_SINGLE=${TD_CRASH_ITER_SINGLE:-12}
ITER_NET=${TD_CRASH_ITER_NET:-6}
COMMIT_S1=$(((TN_WAIT + 3) / 4)) # a fresh commit after a one-node restart
COMMIT_S4=$(((TN_WAIT + 1) / 2)) # after a testnet restart (reconnect, catch up, commit)
PUB_TIMEOUT=$((TN_WAIT * 2))     # a load publish --wait that takes longer is stuck
# Log lines of a restarted node that mean it did not come back as a working validator.
FATAL_RE='refusing to (start|sign)|consensus stopped|signs nothing more|damaged|signed two different votes'

CHK="$TN_DIR/crashcheck.py"
cat >"$CHK" <<'EOF'
# crashcheck.py TENDERCTL acked PUBLOG CUTOFF SOCKET...
#   every acknowledged publish of PUBLOG is found on every SOCKET with its record id and
#   height; prints the count and the highest height acknowledged before the EPOCHREALTIME
#   CUTOFF; exit 1 (with the first mismatches) otherwise
# crashcheck.py TENDERCTL inflight PUBLOG KILLS SOCKET
#   classifies the publishes sent to the killed node that were in flight at each kill of
#   the file KILLS ("ITER TIME NODE" lines)
import json, subprocess, sys

tenderctl, mode, publog, extra = sys.argv[1:5]
socks = sys.argv[5:]

pubs = []
with open(publog) as f:
    for line in f:
        p = line.rstrip("\n").split(" ", 9)
        if len(p) < 9:
            continue  # a line cut by a killed writer
        pubs.append(dict(w=p[0], seq=p[1], ocid=p[2], node=p[3], t0=float(p[4]), t1=float(p[5]),
                         rc=int(p[6]), id=p[7], height=p[8], msg=p[9] if len(p) > 9 else ""))

def get_all(sock, ocids):
    """tender.get of every ocid in batches: {ocid: result or None}."""
    out = {}
    for i in range(0, len(ocids), 400):
        chunk = ocids[i:i + 400]
        batch = [{"jsonrpc": "2.0", "id": k, "method": "tender.get", "params": {"ocid": o}}
                 for k, o in enumerate(chunk)]
        r = subprocess.run([tenderctl, "--socket", sock, "--timeout", "30", "call", json.dumps(batch)],
                           capture_output=True, text=True, timeout=60)
        try:
            ans = json.loads(r.stdout)
        except ValueError:
            print("no answer from %s (exit %d): %s" % (sock, r.returncode, r.stderr.strip()[:300]))
            sys.exit(1)
        if isinstance(ans, dict):
            ans = [ans]
        for a in ans:
            out[chunk[a["id"]]] = a.get("result")
    return out

if mode == "acked":
    acked = [p for p in pubs if p["rc"] == 0]
    bad = []
    for s in socks:
        got = get_all(s, [p["ocid"] for p in acked])
        for p in acked:
            r = got.get(p["ocid"])
            if r is None:
                bad.append("%s: %s (acknowledged at height %s, record %s) not found" % (s, p["ocid"], p["height"], p["id"][:16]))
                continue
            rel = r["releases"][0]
            if rel["record_id"] != p["id"] or str(rel["height"]) != p["height"]:
                bad.append("%s: %s acknowledged as record %s at height %s, found record %s at height %s" %
                           (s, p["ocid"], p["id"][:16], p["height"], rel["record_id"][:16], rel["height"]))
    print(len(acked), max([int(p["height"]) for p in acked if p["t1"] <= float(extra)] or [0]))
    if bad:
        print("\n".join(bad[:20]))
        sys.exit(1)
    sys.exit(0)

# inflight
ks = []
with open(extra) as f:
    for line in f:
        k = line.split()
        ks.append((k[0], float(k[1]), k[2]))
inf = []
for it, kt, victim in ks:
    for p in pubs:
        if p["t0"] < kt <= p["t1"] and p["node"] == victim:
            inf.append((it, p))
got = get_all(socks[0], [p["ocid"] for _, p in inf if p["rc"] != 0])
n = dict(acked=0, committed=0, lost=0, reported=0)
ex = []
for it, p in inf:
    if p["rc"] == 0:
        n["acked"] += 1          # the answer raced the kill and won: checked with the acknowledged ones
    elif got.get(p["ocid"]) is not None:
        n["committed"] += 1      # the client saw the connection drop, the record was committed anyway
    elif p["rc"] == 1:
        n["reported"] += 1       # the node answered an error
        ex.append("kill %s: %s on node %s refused: %s" % (it, p["ocid"], p["node"], p["msg"][:160]))
    else:
        n["lost"] += 1           # dropped with the killed node before any block held it
print("%d publishes to the killed node in flight at %d kills: %d acknowledged anyway, %d committed later, %d lost, %d reported an error"
      % (len(inf), len(ks), n["acked"], n["committed"], n["lost"], n["reported"]))
for e in ex[:5]:
    print("  " + e)
EOF

# ---------------------------------------------------------------- the load
# publisher W PUBLOG NODE...: publishes new tenders (ocid ocds-kr2020-<phase>w<W>-<seq>) with
# --wait on a random NODE, one after another, until $STOPF exists; holds while $PAUSEF exists
# (and says which pause it obeys in $TN_DIR/idle.W). One line per publish in PUBLOG:
#   W SEQ OCID NODE T_START T_END RC RECORD_ID HEIGHT STDERR
publisher() {
	local w=$1 log=$2 seq=0 n ocid f h o e rc t0 t1 id ht msg
	shift 2
	local nodes=("$@")
	trap - EXIT
	trap 'exit 0' TERM
	o="$TN_DIR/pub$w.out"
	e="$TN_DIR/pub$w.err"
	while [[ ! -e "$STOPF" ]]; do
		if [[ -e "$PAUSEF" ]]; then
			# idle.W names the pause it obeys, so that a pause never takes an older one's word
			cp "$PAUSEF" "$TN_DIR/idle.$w.tmp" 2>/dev/null && mv -f "$TN_DIR/idle.$w.tmp" "$TN_DIR/idle.$w"
			sleep 0.02
			continue
		fi
		seq=$((seq + 1))
		n=${nodes[RANDOM % ${#nodes[@]}]}
		h=$(home "$n")
		ocid=$(printf 'ocds-kr2020-%sw%d-%05d' "$PHASE" "$w" "$seq")
		f="$TN_DIR/frag$w.json"
		sed -e "s/ocds-kr2020-jeju-0001/$ocid/" -e "s/\"jeju-2020-0001\"/\"$ocid-t\"/" "$SAMPLES/tender-jeju.json" >"$f"
		t0=$EPOCHREALTIME
		timeout "$PUB_TIMEOUT" "$TENDERCTL" --socket "$h/tenderd.sock" publish tender "$f" --wait >"$o" 2>"$e"
		rc=$?
		t1=$EPOCHREALTIME
		id=- ht=-
		if ((rc == 0)); then
			[[ "$(<"$o")" =~ \"id\":\ \"([0-9a-f]{64})\" ]] && id=${BASH_REMATCH[1]}
			[[ "$(<"$o")" =~ \"height\":\ ([0-9]+) ]] && ht=${BASH_REMATCH[1]}
			if [[ "$id" == - || "$ht" == - ]]; then
				rc=99 # acknowledged without an id or a height: reported as a failure below
			fi
		fi
		msg=$(head -c 300 "$e" | tr '\n' ' ')
		echo "$w $seq $ocid $n $t0 $t1 $rc $id $ht $msg" >>"$log"
		((rc == 0)) || sleep 0.05
	done
}

# load_start PHASE NWORKERS PUBLOG NODE...: starts the publishers (paused).
LOAD_PIDS=()
load_start() {
	local w nw=$2 log=$3
	PHASE=$1
	shift 3
	STOPF="$TN_DIR/stop.$PHASE"
	PAUSEF="$TN_DIR/pause.$PHASE"
	: >"$log"
	echo 0 >"$PAUSEF" # held from the start
	NWORK=$nw
	for ((w = 0; w < nw; w++)); do
		rm -f "$TN_DIR/idle.$w"
		publisher "$w" "$log" "$@" &
		LOAD_PIDS+=($!)
	done
	load_pause
}

load_resume() {
	rm -f "$PAUSEF"
}

# load_pause: holds the publishers and waits until none has a publish running.
PAUSE_GEN=0
load_pause() {
	local w deadline=$((SECONDS + PUB_TIMEOUT + 10))
	PAUSE_GEN=$((PAUSE_GEN + 1))
	echo "$PAUSE_GEN" >"$PAUSEF.tmp"
	mv -f "$PAUSEF.tmp" "$PAUSEF"
	for ((w = 0; w < NWORK; w++)); do
		while [[ "$(cat "$TN_DIR/idle.$w" 2>/dev/null)" != "$PAUSE_GEN" ]]; do
			((SECONDS < deadline)) || fail "publisher $w did not come back from its publish --wait within $((PUB_TIMEOUT + 10)) s"
			sleep 0.02
		done
	done
}

load_stop() {
	local p
	: >"$STOPF"
	for p in "${LOAD_PIDS[@]}"; do wait "$p"; done
	LOAD_PIDS=()
}

stop_load_on_exit() {
	local p
	[[ -n "${STOPF:-}" ]] && : >"$STOPF" 2>/dev/null
	for p in "${LOAD_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	tn_cleanup
}
trap stop_load_on_exit EXIT

# load_failures PUBLOG: fails on a load publish that hung (timeout) or was acknowledged
# without an id and a height.
load_failures() {
	local bad
	bad=$(awk '$7 == 124 || $7 == 99' "$1" | head -n 5)
	[[ -z "$bad" ]] || fail "load publishes that hung ($PUB_TIMEOUT s) or answered without id/height:
$bad"
}

# ---------------------------------------------------------------- helpers
# rand_delay LO_MS HI_MS: prints a random delay in seconds (for sleep).
rand_delay() {
	local ms=$(($1 + RANDOM % ($2 - $1 + 1)))
	printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# secs_since T: seconds (3 decimals) from EPOCHREALTIME T to now.
secs_since() {
	local a=${1/./} b=${EPOCHREALTIME/./}
	local us=$((10#$b - 10#$a))
	printf '%d.%03d' $((us / 1000000)) $(((us % 1000000) / 1000))
}

# height_of NODE: prints the node's height.
height_of() {
	sval "$1" 'd["height"]'
}

# restart_log_ok NODE: the log since the last start holds no line of $FATAL_RE.
restart_log_ok() {
	local h bad
	h=$(home "$1")
	bad=$(tac "$h/tenderd.log" | sed '/^=== start/q' | tac | grep -E "$FATAL_RE" | head -n 5)
	[[ -z "$bad" ]] || fail "the restarted node $h logged:
$bad"
}

# fresh_commit NODE OCID SECONDS: publish --wait on NODE must commit within SECONDS;
# sets FRESH_S (seconds taken) and FRESH_H (its height).
fresh_commit() {
	local n=$1 ocid=$2 t
	variant "$ocid" "$TN_DIR/fresh.json"
	t=$EPOCHREALTIME
	ctl "$n" --timeout "$3" publish tender "$TN_DIR/fresh.json" --wait
	FRESH_S=$(secs_since "$t")
	if ((RC != 0)); then
		local st
		st=$(heights "$n")
		fail "a publish --wait of $ocid on $(home "$n") after its restart did not commit within $3 s (tenderctl exit $RC); status now:
$st"
	fi
	FRESH_H=$(val 'd["height"]')
}

# acked_found PUBLOG CUTOFF NODE...: every acknowledged publish is found on every node; sets
# ACKED (their number) and ACK_TOP (the highest height acknowledged before EPOCHREALTIME CUTOFF).
acked_found() {
	local socks=() n r
	local log=$1 cut=$2
	shift 2
	for n in "$@"; do socks+=("$(home "$n")/tenderd.sock"); done
	r=$("$PY" "$CHK" "$TENDERCTL" acked "$log" "$cut" "${socks[@]}")
	if (($? != 0)); then
		echo "$r" >"$OUT"
		fail "acknowledged records missing or changed after the restart:
$(echo "$r" | tail -n +2)"
	fi
	ACKED=${r% *}
	ACK_TOP=${r#* }
}

# log_summary NODE...: counts of consensus-log tail cuts and warn/error lines in the logs.
log_summary() {
	local n h
	for n in "$@"; do
		h=$(home "$n")
		note "  ${h#"$TN_DIR"/}: $(grep -c 'a crash cut the last entry short' "$h/tenderd.log") torn consensus-log tails cut, $(grep -c '^[0-9TZ:.-]* warn' "$h/tenderd.log") warn and $(grep -c '^[0-9TZ:.-]* error' "$h/tenderd.log") error lines, $(grep -c '^=== kill -9' "$h/tenderd.log") kills"
	done
}

# check_stores NODE...: tenderd check on each stopped node's store.
check_stores() {
	local n h
	for n in "$@"; do
		h=$(home "$n")
		timeout 120 "$TENDERD" check --home "$h" >"$OUT" 2>"$ERR"
		RC=$?
		((RC == 0)) || fail "tenderd check --home $h exited $RC"
		grep -q 'store intact' "$OUT" "$ERR" || fail "tenderd check --home $h did not say 'store intact'"
	done
}

# ---------------------------------------------------------------- 1. one validator
step "one validator: init and start"
S1="$TN_DIR/single"
timeout 30 "$TENDERD" init --home "$S1" --name "Jeju Special Self-Governing Province" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd init exited $RC"
tn_start "$S1"
fresh_commit "$S1" ocds-kr2020-first-0001 "$COMMIT_S1"
PUB1="$TN_DIR/publog.1"
KILL1="$TN_DIR/kills.1"
: >"$KILL1"
load_start a 2 "$PUB1" "$S1"

step "one validator: $ITER_SINGLE kill -9 under load, restart, commit, every acknowledged record found"
T1=$SECONDS
MAXH=$FRESH_H
printf '%-5s %-13s %-15s %-21s %-6s %s\n' iter "height@kill" "height@restart" "first commit (s)" acked "all found" >"$TN_DIR/table.1"
for ((it = 1; it <= ITER_SINGLE; it++)); do
	load_resume
	sleep "$(rand_delay 100 1500)"
	HB=$(height_of "$S1")
	((HB >= MAXH)) || fail "height $HB before kill $it is below $MAXH, seen earlier"
	KT=$EPOCHREALTIME
	echo "$it $KT $S1" >>"$KILL1"
	tn_kill9 "$S1"
	tr=$EPOCHREALTIME
	tn_start "$S1"
	restart_log_ok "$S1"
	HA=$(height_of "$S1")
	((HA >= HB)) || fail "the chain went back: height $HA after restart $it, $HB before the kill"
	fresh_commit "$S1" "$(printf 'ocds-kr2020-fresha-%04d' "$it")" "$COMMIT_S1"
	FIRST_S=$(secs_since "$tr")
	load_pause
	load_failures "$PUB1"
	acked_found "$PUB1" "$KT" "$S1"
	((HA >= ACK_TOP)) || fail "height $HA after restart $it is below height $ACK_TOP, acknowledged before the kill"
	MAXH=$FRESH_H
	printf '%-5s %-13s %-15s %-21s %-6s %s\n' "$it" "$HB" "$HA" "$FIRST_S (publish $FRESH_S)" "$ACKED" yes | tee -a "$TN_DIR/table.1"
done
load_stop
load_failures "$PUB1"
acked_found "$PUB1" "$EPOCHREALTIME" "$S1"
step "one validator: the publishes in flight at the kills"
INFLIGHT1=$("$PY" "$CHK" "$TENDERCTL" inflight "$PUB1" "$KILL1" "$S1/tenderd.sock") || fail "could not classify the in-flight publishes: $INFLIGHT1"
note "$INFLIGHT1"
note "one validator: $ITER_SINGLE kills in $((SECONDS - T1)) s, $ACKED records acknowledged, $(wc -l <"$PUB1") publishes, height $MAXH"
tn_stop "$S1"
check_stores "$S1"
log_summary "$S1"

# ---------------------------------------------------------------- 2. four validators
step "4 validators: create, start, connect"
ALL=(0 1 2 3)
tn_create 4
tn_start_all
wait_until "$TN_WAIT" "not every node shows 3 connected peers" connected_all 3 "${ALL[@]}"
fresh_commit 0 ocds-kr2020-first-0002 "$COMMIT_S4"
PUB4="$TN_DIR/publog.4"
KILL4="$TN_DIR/kills.4"
: >"$KILL4"
load_start b 3 "$PUB4" "${ALL[@]}"

step "4 validators: $ITER_NET kill -9 of a random validator under load, restart, commit, agree"
T2=$SECONDS
declare -A NMAX=()
for i in "${ALL[@]}"; do NMAX[$i]=0; done
PREV=-1
printf '%-5s %-5s %-13s %-15s %-21s %-6s %-6s %s\n' iter node "height@kill" "height@restart" "first commit (s)" acked height "all found, same hash" >"$TN_DIR/table.4"
for ((it = 1; it <= ITER_NET; it++)); do
	load_resume
	sleep "$(rand_delay 100 1500)"
	V=$((RANDOM % 4))
	while ((V == PREV)); do V=$((RANDOM % 4)); done
	PREV=$V
	HB=$(height_of "$V")
	((HB >= ${NMAX[$V]})) || fail "node$V at height $HB before kill $it, below its ${NMAX[$V]} seen earlier"
	KT=$EPOCHREALTIME
	echo "$it $KT $V" >>"$KILL4"
	tn_kill9 "$V"
	sleep "$(rand_delay 0 800)" # the others go on meanwhile: the restarted one has to catch up
	tr=$EPOCHREALTIME
	tn_start "$V"
	restart_log_ok "$V"
	HA=$(height_of "$V")
	((HA >= HB)) || fail "node$V went back: height $HA after restart $it, $HB before the kill"
	fresh_commit "$V" "$(printf 'ocds-kr2020-freshb-%04d' "$it")" "$COMMIT_S4"
	FIRST_S=$(secs_since "$tr")
	load_pause
	load_failures "$PUB4"
	wait_agree "$TN_WAIT" "${ALL[@]}"
	for i in "${ALL[@]}"; do
		((AGREE_H >= ${NMAX[$i]})) || fail "node$i at height $AGREE_H after restart $it, below its ${NMAX[$i]} seen earlier"
		NMAX[$i]=$AGREE_H
	done
	acked_found "$PUB4" "$KT" "${ALL[@]}"
	((AGREE_H >= ACK_TOP)) || fail "agreed height $AGREE_H is below an acknowledged height $ACK_TOP"
	printf '%-5s %-5s %-13s %-15s %-21s %-6s %-6s %s\n' "$it" "node$V" "$HB" "$HA" "$FIRST_S (publish $FRESH_S)" "$ACKED" "$AGREE_H" "yes, ${AGREE_HASH:0:16}" | tee -a "$TN_DIR/table.4"
done
load_stop
load_failures "$PUB4"
wait_agree "$TN_WAIT" "${ALL[@]}"
acked_found "$PUB4" "$EPOCHREALTIME" "${ALL[@]}"
step "4 validators: the publishes in flight at the kills"
INFLIGHT4=$("$PY" "$CHK" "$TENDERCTL" inflight "$PUB4" "$KILL4" "$(home 0)/tenderd.sock") || fail "could not classify the in-flight publishes: $INFLIGHT4"
note "$INFLIGHT4"
note "4 validators: $ITER_NET kills in $((SECONDS - T2)) s, $ACKED records acknowledged, $(wc -l <"$PUB4") publishes, height $AGREE_H on all 4"
for i in "${ALL[@]}"; do
	ok "$i" status
	CHECK='assert d.get("evidence", []) == [], ("evidence among honest restarted nodes", d.get("evidence"))' check
done
tn_stop_all
check_stores "${ALL[@]}"
log_summary "${ALL[@]}"

step "no sanitizer reports in the node logs"
no_sanitizer_reports

echo
echo "one validator:"
cat "$TN_DIR/table.1"
echo "  $INFLIGHT1"
echo "4 validators:"
cat "$TN_DIR/table.4"
echo "  $INFLIGHT4"
echo "e2e_crashloop: all steps passed in $((SECONDS - T0)) s"
