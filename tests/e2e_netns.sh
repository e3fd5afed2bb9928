#!/usr/bin/env bash
# End-to-end faults on real processes over real links: tests/e2e_netns.sh BIN_DIR DATA_DIR
#
# 4 validators, each in its own Linux network namespace with its own address
# (10.77.0.1-4 on a bridge of this run); faults are blackhole routes, a token-bucket
# filter and kill -9. Each step prints one row of a table: the scenario, the records
# published in it, how many of them are committed on every node, the seconds the step
# took from its first publish, the seconds it took to converge after its last action
# (last publish, healed link or restarted victim): until every node holds every record
# published so far at one height and last block hash, with an empty mempool and not
# catching up, and whether the 4 then share that last block hash.
#
#   1. star: only node2 reaches the others (leaf-leaf pairs blackholed from the start);
#      the 5 samples published through the leaves commit everywhere
#   2. link 0-1 cut; 5 records published on node0 and node1 commit everywhere
#   3. link 1-3 flapping (cut/healed every 0.5 s for 10 s) under 10 publishes
#   4. kill -9 of a validator (3 times, 3 different random victims) in the middle of a
#      burst of publishes on a live node, then one more publish --wait: the records
#      published on the live nodes commit on the 3 of them; restarted, the victim
#      catches up to the same last block hash (converge counts from its restart)
#   5. one node's veth slowed (tbf 1 mbit, both directions) under 5 publishes
#   6. idle chain: after a last burst of publishes nothing more is published; every node
#      must reach the same height and hash (none left one block behind) and stay there
# Skips (exit 0) without root or ip netns. Fails fast with the step, the last command's
# output and every node's log tail.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
# shellcheck source=tests/lib_netns.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_netns.sh"
ns_require e2e_netns
tn_init e2e_netns "$1" "$2"
ns_traps
T0=$SECONDS
ALL=(0 1 2 3)
TN_CTL_TIMEOUT=30
IDS="$TN_DIR/ids"     # "ocid record_id" of every record published in this run
SC_IDS="$TN_DIR/sc"   # the same for the current scenario
: >"$IDS"
SEQ=0
ROWS=()
SC_MARK=""
fmtrow() { printf '%-26s %9s %9s %6s %9s %5s\n' "$@"; }
HEAD=$(fmtrow scenario published committed step converge same)
HEAD+=$'\n'$(fmtrow "" "" "on all 4" "(s)" "(s)" hash)

# scenario NAME: starts a table row.
scenario() {
	SC_NAME=$1
	SC_PUB=0
	SC_T0=""
	: >"$SC_IDS"
	step "$SC_NAME"
}

# pub NODE FILE [ARGS]: publishes a tender on NODE and records its id.
pub() {
	local n=$1 f=$2 line
	shift 2
	[[ -n "$SC_T0" ]] || SC_T0=$EPOCHREALTIME
	ok "$n" publish tender "$f" "$@"
	CHECK='assert hex64(d["id"]), d' check
	line=$(val '"%s %s" % (d["ocid"], d["id"])')
	[[ "$line" == ocds-* ]] || fail "no ocid and id in the answer of publish"
	echo "$line" >>"$IDS"
	echo "$line" >>"$SC_IDS"
	SC_PUB=$((SC_PUB + 1))
}

# newrec NODE [ARGS]: publishes a fresh variant of the Jeju tender on NODE.
newrec() {
	local n=$1
	shift
	SEQ=$((SEQ + 1))
	variant "$(printf 'ocds-kr2020-ns-%04d' "$SEQ")" "$TN_DIR/v.json"
	pub "$n" "$TN_DIR/v.json" "$@"
}

elapsed() {
	"$PY" -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$2"
}

row() {
	local r
	r=$(fmtrow "$SC_NAME" "$SC_PUB" "$1" "$2" "$3" "$4")
	ROWS+=("$r")
	echo "$r"
}

# converge SECS NODES...: waits until the nodes hold every record published so far and
# agree; prints the row (also when it gives up, then fails).
converge() {
	local secs=$1 deadline t t1
	shift
	t1=${SC_MARK:-$EPOCHREALTIME}
	SC_MARK=""
	deadline=$((SECONDS + secs))
	until ns_committed "$IDS" "$@"; do
		if ((SECONDS >= deadline)); then
			ns_committed "$SC_IDS" "$@"
			row "$NS_ON_ALL" "-" "-" "$NS_SAME"
			fail "nodes $* did not converge within $secs s ($NS_ON_ALL of $SC_PUB records of this step on all of them):
$(heights "$@")"
		fi
		sleep 0.2
	done
	t=$EPOCHREALTIME
	ns_committed "$SC_IDS" "$@" || fail "the records of this step are not on every node"
	((NS_ON_ALL == SC_PUB)) || fail "$NS_ON_ALL of $SC_PUB records committed on every node"
	row "$NS_ON_ALL" "$(elapsed "$SC_T0" "$t")" "$(elapsed "$t1" "$t")" "$NS_SAME"
}

# ---------------------------------------------------------------- setup
step "4 namespaces on bridge $NS_BRIDGE, a 4-node testnet"
tn_create 4
ns_create 4
note "namespaces $NS_PREFIX-0..3, bridge $NS_BRIDGE"

# ---------------------------------------------------------------- 1. star
scenario "star around node2"
LEAVES=(0 1 3)
for a in "${LEAVES[@]}"; do
	for b in "${LEAVES[@]}"; do ((a < b)) && ns_cut "$a" "$b"; done
done
for i in "${ALL[@]}"; do ns_start "$i"; done
wait_until 30 "node2 does not show 3 connected peers" connected_all 3 2
wait_until 30 "a leaf does not show its connection to node2" connected_all 1 "${LEAVES[@]}"
k=0
for f in tender-jeju tender-gangwon tender-kisa tender-sejong tender-private; do
	pub "${LEAVES[k % 3]}" "$SAMPLES/$f.json" --wait
	k=$((k + 1))
done
converge 30 "${ALL[@]}"
ns_heal_all

# ---------------------------------------------------------------- 2. one cut link
scenario "link 0-1 cut"
ns_cut 0 1
for k in 0 1 2 3 4; do newrec $((k % 2)) --wait; done
converge 30 "${ALL[@]}"
ns_heal 0 1

# ---------------------------------------------------------------- 3. flapping link
scenario "link 1-3 flapping 10 s"
ns_flap 1 3 10 0.5
for k in 0 1 2 3 4 5 6 7 8 9; do
	newrec $((k % 4))
	sleep 0.9 # pacing: spread the publishes over the flapping
done
ns_flap_wait
ns_heal 1 3
converge 30 "${ALL[@]}"

# ---------------------------------------------------------------- 3b. connections reset
# The blackholes above are shorter than TCP's retransmissions: the connection survives
# them. Here the connection itself is destroyed on both sides every 0.7 s, so node1 and
# node3 see it drop and redial over and over while records are published.
scenario "link 1-3 connections reset"
ns_resets 1 3 10 0.7
for k in 0 1 2 3 4 5 6 7 8 9; do
	newrec $((k % 4))
	sleep 0.9
done
ns_flap_wait
converge 30 "${ALL[@]}"
grep -q "disconnected" "$(home 1)/tenderd.log" || fail "node1 never saw its connection to node3 drop"

# ---------------------------------------------------------------- 4. kill -9
# burst NODE N: in the background, N publishes of fresh records on NODE, 0.1 s apart;
# answers in $TN_DIR/burst.K (K from 1), exit codes in $TN_DIR/burst.K.rc. Sets BURST_PID.
burst() {
	local n=$1 cnt=$2 k sock
	sock="$(home "$n")/tenderd.sock"
	for ((k = 1; k <= cnt; k++)); do
		SEQ=$((SEQ + 1))
		variant "$(printf 'ocds-kr2020-ns-%04d' "$SEQ")" "$TN_DIR/burst.$k.json"
	done
	rm -f "$TN_DIR"/burst.*.rc
	(
		for ((k = 1; k <= cnt; k++)); do
			timeout 30 "$TENDERCTL" --socket "$sock" publish tender "$TN_DIR/burst.$k.json" \
				>"$TN_DIR/burst.$k" 2>&1
			echo $? >"$TN_DIR/burst.$k.rc"
			sleep 0.1
		done
	) &
	BURST_PID=$!
}

# burst_ids N: every publish of the burst succeeded; adds their ids to the step's.
burst_ids() {
	local k line
	for ((k = 1; k <= $1; k++)); do
		cp "$TN_DIR/burst.$k" "$OUT"
		RC=$(cat "$TN_DIR/burst.$k.rc" 2>/dev/null)
		[[ "$RC" == 0 ]] || fail "publish $k of the burst exited ${RC:-?}"
		[[ -n "$SC_T0" ]] || SC_T0=$BURST_T0
		CHECK='assert hex64(d["id"]), d' check
		line=$(val '"%s %s" % (d["ocid"], d["id"])')
		echo "$line" >>"$IDS"
		echo "$line" >>"$SC_IDS"
		SC_PUB=$((SC_PUB + 1))
	done
}

mapfile -t VICTIMS < <(shuf -i 0-3 -n 3)
note "victims of kill -9: ${VICTIMS[*]}"
for r in 0 1 2; do
	v=${VICTIMS[r]}
	LIVE=()
	for i in "${ALL[@]}"; do ((i == v)) || LIVE+=("$i"); done
	scenario "kill -9 node$v ($((r + 1))/3)"
	BURST_T0=$EPOCHREALTIME
	burst "${LIVE[r]}" 6
	sleep 0.3 # timing, not an assertion: the kill lands in the middle of the burst
	tn_kill9 "$v"
	wait "$BURST_PID"
	burst_ids 6
	newrec "${LIVE[(r + 1) % 3]}" --wait
	wait_until 30 "the records published on live nodes did not commit on all of ${LIVE[*]}" \
		ns_committed "$IDS" "${LIVE[@]}"
	SC_MARK=$EPOCHREALTIME
	ns_start "$v"
	converge 60 "${ALL[@]}"
done

# ---------------------------------------------------------------- 5. slow link
S=$((RANDOM % 4))
scenario "node$S veth tbf 1mbit"
ns_slow "$S"
for k in 0 1 2 3 4; do
	newrec $(((S + k) % 4))
	sleep 0.3 # pacing
done
converge 30 "${ALL[@]}"
ns_fast "$S"

# ---------------------------------------------------------------- 6. idle
scenario "idle after last publish"
for k in 0 1 2; do newrec "$k"; done
converge 30 "${ALL[@]}"
agree "${ALL[@]}" || fail "the nodes disagree right after converging"
H=$AGREE_H
HASH=$AGREE_HASH
R=$(sval 0 'd["records"]')
# nothing is pending: for 2 s no node may move (no empty blocks, nobody still behind)
for ((k = 0; k < 8; k++)); do
	sleep 0.25
	for i in "${ALL[@]}"; do
		ok "$i" status
		CHECK='
assert d["height"] == int(sys.argv[2]) and d["last_block_hash"] == sys.argv[3], ("moved while idle", d["height"], d["last_block_hash"])
assert d["records"] == int(sys.argv[4]) and d["mempool"] == 0, ("records while idle", d["records"], d["mempool"])
' check "$H" "$HASH" "$R"
	done
done
note "idle at height $H, last block ${HASH:0:16}, $R records"

# ---------------------------------------------------------------- end
step "every node still running, then a clean stop"
for i in "${ALL[@]}"; do tn_alive "$i" || fail "node$i died"; done
tn_stop_all
no_sanitizer_reports
echo
echo "$HEAD"
printf '%s\n' "${ROWS[@]}"
note "ok in $((SECONDS - T0)) s"
