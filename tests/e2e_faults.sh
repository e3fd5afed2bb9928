#!/usr/bin/env bash
# End-to-end fault tests of the consensus: tests/e2e_faults.sh BIN_DIR DATA_DIR
#
#   1. 4 validators, 2 of them frozen (SIGSTOP): a published record must not
#      commit (2 of 4 is no quorum) and the live pair must not fork; once they
#      are resumed (SIGCONT) the record commits everywhere
#   2. one validator killed (kill -9): the other three keep committing, also at
#      the heights where the dead one is the round-0 proposer, which then count
#      as missed proposals, each passed after timeout_propose_unreachable_ms
#      (the full propose timeout is set to a minute); the killed node catches
#      up after a restart
#   3. a separate 3-validator testnet: records published on each node reach all
#      three, which hold identical blocks committed by all three
# Fails fast with the step, the last command's output and every node's log tail.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_faults "$1" "$2"
T0=$SECONDS
ALL=(0 1 2 3)

# ---------------------------------------------------------------- 1. no quorum
step "create and start a 4-node testnet"
tn_create 4
tn_start_all
wait_until 30 "not every node shows 3 connected peers" connected_all 3 "${ALL[@]}"
declare -A PUB=()
for i in "${ALL[@]}"; do PUB[$i]=$(sval "$i" 'd["node"]["pub_key"]'); done

step "a first record commits on all 4"
ok 0 publish tender "$SAMPLES/tender-jeju.json" --wait
wait_until 30 "the first record did not reach every node" has_all ocds-kr2020-jeju-0001 "${ALL[@]}"
wait_agree 30 "${ALL[@]}"
H0=$AGREE_H
HASH0=$AGREE_HASH

step "SIGSTOP node2 and node3; a record published on node0 must not commit for 8 s"
tn_pause 2
tn_pause 3
variant ocds-kr2020-stop-0001 "$TN_DIR/stop.json"
ok 0 publish tender "$TN_DIR/stop.json"
CHECK='assert hex64(d["id"]), d' check
for ((k = 0; k < 16; k++)); do
	sleep 0.5
	for i in 0 1; do
		ok "$i" status
		CHECK='
assert d["height"] == int(sys.argv[2]), ("committed without quorum: height", d["height"], "expected", sys.argv[2])
assert d["last_block_hash"] == sys.argv[3], ("last block changed without quorum", d["last_block_hash"])
' check "$H0" "$HASH0"
		ctl "$i" get ocds-kr2020-stop-0001
		((RC == 1)) || fail "get of the uncommitted record on node$i exited $RC, expected 1 (not found)"
	done
done
ok 0 status
note "node0 after 8 s without quorum: $(val '"height=%s mempool=%s consensus=%s" % (d["height"], d["mempool"], d.get("consensus"))')"
ok 1 status
note "node1 after 8 s without quorum: $(val '"height=%s mempool=%s consensus=%s" % (d["height"], d["mempool"], d.get("consensus"))')"

step "SIGCONT node2 and node3: the record commits on all 4"
tn_resume 2
tn_resume 3
T_RESUME=$SECONDS
wait_until 60 "the record did not commit on every node after SIGCONT" has_all ocds-kr2020-stop-0001 "${ALL[@]}"
note "committed everywhere $((SECONDS - T_RESUME)) s after SIGCONT"
wait_agree 30 "${ALL[@]}"
((AGREE_H > H0)) || fail "height $AGREE_H is not above $H0"
MIN_SIGS=3 all_blocks_identical "$AGREE_H" "${ALL[@]}"

# ---------------------------------------------------------------- 2. dead validator
step "kill -9 node1; tenders published on node0, node2 and node3 --wait all commit"
ok 0 status
V1=$(val '[v["index"] for v in d["validators"] if v["pub_key"] == "'"${PUB[1]}"'"][0]')
NV=$(val 'len(d["validators"])')
HK=$(val 'd["height"]')
tn_kill9 1
LIVE=(0 2 3)
# A minute's propose timeout: node1's turns can only pass in time because
# its proposal is known to be unreachable (timeout_propose_unreachable_ms).
for i in "${LIVE[@]}"; do
	tn_stop "$i"
	tn_start "$i" --set consensus.timeout_propose_ms=60000 --set consensus.timeout_max_ms=60000
done
TN_CTL_TIMEOUT=20 # a publish --wait held up by a full propose timeout fails
n=0
for i in 0 2 3; do
	n=$((n + 1))
	variant "ocds-kr2020-dead-$n" "$TN_DIR/dead-$n.json"
	ok "$i" publish tender "$TN_DIR/dead-$n.json" --wait
	CHECK='assert d["height"] >= 1, d' check
	note "dead-$n published on node$i committed at height $(val 'd["height"]')"
done
# Keep going (at most 4 more) until a height whose round-0 proposer is node1 has committed.
turn_passed() {
	local top=$1 h
	for ((h = HK + 1; h <= top; h++)); do
		(((h % NV) == V1)) && return 0
	done
	return 1
}
ok 0 status
HT=$(val 'd["height"]')
while ! turn_passed "$HT" && ((n < 7)); do
	n=$((n + 1))
	variant "ocds-kr2020-dead-$n" "$TN_DIR/dead-$n.json"
	ok 0 publish tender "$TN_DIR/dead-$n.json" --wait
	ok 0 status
	HT=$(val 'd["height"]')
done
turn_passed "$HT" || fail "heights $((HK + 1))..$HT never reached node1's turn (validator $V1 of $NV)"
wait_until 30 "the tenders did not reach node0, node2, node3" has_all "ocds-kr2020-dead-$n" "${LIVE[@]}"
wait_agree 30 "${LIVE[@]}"

step "node1's turns were skipped: missed_proposals > 0 on node0, later rounds in the commits"
ok 0 status
MISSED=$(val '[v.get("missed_proposals") for v in d["validators"] if v["index"] == '"$V1"'][0]')
note "node0 reports missed_proposals=$MISSED for node1 (validator $V1) after heights $((HK + 1))..$HT"
CHECK='
v = [v for v in d["validators"] if v["index"] == int(sys.argv[2])][0]
assert isinstance(v.get("missed_proposals"), int) and v["missed_proposals"] > 0, v
' check "$V1"
for ((h = HK + 1; h <= HT; h++)); do
	(((h % NV) == V1)) || continue
	ok 0 block "$h"
	note "block $h (node1's turn at round 0): committed at round $(val 'd["commit"]["round"]'), proposer $(val 'd["proposer_name"]')"
	CHECK='
assert d["proposer"] != sys.argv[2], ("the dead node proposed block", d["height"])
assert d["commit"]["round"] >= 1, ("block at the dead proposer turn committed at round 0", d["commit"])
assert sys.argv[2] not in [s["pub_key"] for s in d["commit"]["signatures"]], ("the dead node signed", d["commit"])
assert len(d["commit"]["signatures"]) == 3, d["commit"]
' check "${PUB[1]}"
done

unset TN_CTL_TIMEOUT

step "restart node1: it catches up"
tn_start 1
wait_agree 60 "${ALL[@]}"
((AGREE_H == HT)) || fail "height $AGREE_H after node1's restart, expected $HT"
ok 1 get "ocds-kr2020-dead-$n"

step "SIGTERM stops the 4 nodes; restarted, they reconnect and commit at the next height"
tn_stop_all
tn_start_all
wait_until 30 "not every node shows 3 connected peers after the restart" connected_all 3 "${ALL[@]}"
variant ocds-kr2020-restart-0001 "$TN_DIR/restart.json"
ok 3 publish tender "$TN_DIR/restart.json" --wait
CHECK='assert d["height"] == int(sys.argv[2]) + 1, (d["height"], "expected", int(sys.argv[2]) + 1)' check "$HT"
wait_until 30 "the record did not reach every node" has_all ocds-kr2020-restart-0001 "${ALL[@]}"
wait_agree 30 "${ALL[@]}"
MIN_SIGS=3 all_blocks_identical "$AGREE_H" "${ALL[@]}"
for i in "${ALL[@]}"; do
	ok "$i" status
	CHECK='assert d.get("evidence", []) == [], ("evidence recorded among honest nodes", d.get("evidence"))' check
done
tn_stop_all

# ---------------------------------------------------------------- 3. three validators
step "a 3-node testnet: start and connect"
tn_create 3
THREE=(0 1 2)
tn_start_all
wait_until 30 "not every node of the 3-node testnet shows 2 connected peers" connected_all 2 "${THREE[@]}"

step "publish one tender on each of the 3 nodes"
ok 0 publish tender "$SAMPLES/tender-jeju.json"
ok 1 publish tender "$SAMPLES/tender-kisa.json"
ok 2 publish tender "$SAMPLES/tender-sejong.json"
wait_until 30 "the 3 records did not reach every node" records_all 3 "${THREE[@]}"
for i in "${THREE[@]}"; do
	ok "$i" list --limit 100
	CHECK='
t = items(d)
assert sorted(x["ocid"] for x in t) == sorted(sys.argv[2:]), [x["ocid"] for x in t]
' check ocds-kr2020-jeju-0001 ocds-kr2020-kisa-0001 ocds-kr2020-sj-0001
done
wait_agree 30 "${THREE[@]}"
note "3-node testnet at height $AGREE_H, last block $AGREE_HASH"
MIN_SIGS=3 all_blocks_identical "$AGREE_H" "${THREE[@]}"
ok 2 get ocds-kr2020-jeju-0001
grep -q '712500000\.50' "$OUT" || fail "node2 of the 3-node testnet lost the exact amount text 712500000.50"

step "SIGTERM stops the 3 nodes"
tn_stop_all

step "no sanitizer reports in the node logs"
no_sanitizer_reports

echo "e2e_faults: all steps passed in $((SECONDS - T0)) s"
