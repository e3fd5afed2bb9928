#!/usr/bin/env bash
# End-to-end test of membership by vote: tests/e2e_governance.sh BIN_DIR DATA_DIR
#
# A four-validator testnet changes its parties by proposals and approvals on chain
# (tenderctl propose / approve), each new agency with a home of its own made by
# `tenderd init --genesis` and known to the others only by its identity file:
#   1. a member is voted in, starts, syncs and publishes;
#   2. a validator is voted in (4 -> 5): blocks then carry at least 4 of 5 signatures,
#      the newcomer's among them;
#   3. a validator is voted out (5 -> 4): no later commit holds its signature and its
#      publish is refused;
#   4. a validator's key is replaced: the old node stops, a new home with the new key
#      syncs from genesis and signs in the same place;
#   5. an observer is voted in, follows from genesis and refuses publish;
#   6. a validator wiped and synced from genesis crosses every change and ends on the
#      same hash as the others; `tenderctl validators --at` shows each set; a tender proof
#      from blocks of the genesis set verifies, one from a later set is refused clearly.
# With root and `ip netns` (as in CI), each agency's node runs in its own network namespace
# at its own address (tests/lib_netns.sh), every node dialing every other address; else all
# run on loopback ports (also with TD_E2E_LOOPBACK=1).
# Fails fast with the step, the last command's output and every node's log tail.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
# shellcheck source=tests/lib_netns.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_netns.sh"
NETNS=0
if [[ -z "${TD_E2E_LOOPBACK:-}" ]] && ((EUID == 0)) && command -v ip >/dev/null &&
	ip netns add "$NS_PREFIX-probe" 2>/dev/null; then
	ip netns del "$NS_PREFIX-probe"
	NETNS=1
fi
tn_init e2e_governance "$1" "$2"
((NETNS)) && ns_traps
T0=$SECONDS

tn_create 4 kr-gov
declare -a PUB
for i in 0 1 2 3; do
	PUB[i]=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pub_key"])' "$NET/node$i/node.key")
done
SEQ=0
NODES=8 # 4 genesis validators and 4 newcomers: node4 .. node7 of the testnet
if ((NETNS)); then
	ns_create "$NODES"
	note "each node in its own network namespace (10.77.0.1 .. 10.77.0.$NODES)"
else
	note "no root or ip netns: the nodes run on loopback ports"
fi

# addr I: the p2p address of node I.
addr() {
	if ((NETNS)); then echo "$(ns_ip "$1"):$NS_PORT"; else echo "127.0.0.1:$((NET_PORT + $1))"; fi
}

# start I: starts node I (in its namespace, dialing every other node's address).
start() {
	if ((NETNS)); then
		ns_start "$1"
	else
		tn_start "$1"
	fi
}

# newcomer I NAME: node I's home on the chain (init --genesis), dialing the genesis validators
# (on loopback) or every node (in namespaces); writes its identity to node<I>.id.json;
# sets NEW_PUB and NEW_ID.
newcomer() {
	local i=$1 name=$2 dir="$NET/node$1" peers="" j
	timeout 30 "$TENDERD" init --home "$dir" --name "$name" --genesis "$NET/node0/genesis.json" >"$OUT" 2>"$ERR" ||
		fail "tenderd init --genesis for $name failed"
	if ((!NETNS)); then
		port_free $((NET_PORT + i)) || fail "port $((NET_PORT + i)) is taken"
		sed -i "/^\[p2p\]/,/^\[/ s|^listen = .*|listen = $(addr "$i")|" "$dir/config.ini"
		for j in 0 1 2 3; do peers+="${peers:+\\n\\t}${PUB[$j]}@$(addr "$j")"; done
		sed -i "s|^peers =.*|peers = $peers|" "$dir/config.ini"
	fi
	NEW_ID="$NET/node$i.id.json"
	timeout 30 "$TENDERD" id --home "$dir" --address "$(addr "$i")" >"$NEW_ID" 2>"$ERR" ||
		fail "tenderd id for $name failed"
	NEW_PUB=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["pub_key"])' "$NEW_ID")
}

# vote NODE ARGS... -- APPROVERS...: NODE proposes ARGS (waiting for the commit), each approver
# approves; sets PROP (its record id) and EFFECT (the height it takes effect at).
vote() {
	local by=$1 args=() a
	shift
	while [[ $1 != -- ]]; do
		args+=("$1")
		shift
	done
	shift
	ok "$by" propose "${args[@]}" --wait --rationale "e2e step $SEQ"
	PROP=$(val 'd["id"]')
	for a in "$@"; do
		ctl "$a" approve "$PROP" --wait
		((RC == 0)) || grep -q "decided" "$ERR" || fail "approval by $a of $PROP failed: $(cat "$ERR")"
	done
	ok "$by" proposals
	CHECK='
p = [x for x in d["proposals"] if x["id"] == sys.argv[2]][0]
assert p["status"] == "decided", p
' check "$PROP"
	EFFECT=$(val '[x for x in d["proposals"] if x["id"] == "'"$PROP"'"][0]["effect_height"]')
	note "proposal ${args[*]:0:1} decided, takes effect at height $EFFECT"
}

# advance NODE H: publishes tenders on NODE until the chain is at height H or more.
advance() {
	local node=$1 h=$2 cur
	for ((k = 0; k < 20; k++)); do
		cur=$(sval "$node" 'd["height"]')
		((cur >= h)) && return 0
		SEQ=$((SEQ + 1))
		variant "ocds-kr2020-gov-$SEQ" "$TN_DIR/v$SEQ.json"
		ok "$node" publish tender "$TN_DIR/v$SEQ.json" --wait
	done
	fail "the chain did not reach height $h"
}

# signers NODE H: the pub_keys that signed block H's commit, one per line.
signers() {
	ok "$1" block "$2"
	val '"\n".join(s["pub_key"] for s in d["commit"]["signatures"])'
}

# connected_at_least K NODE: NODE shows K or more connected peers.
connected_at_least() {
	ctl "$2" status
	((RC == 0)) && (($(val 'len([p for p in d["peers"] if p.get("state") == "connected"])') >= $1))
}

step "a four-validator testnet"
for i in 0 1 2 3; do start "$i"; done
wait_until 30 "the four nodes did not connect" connected_all 3 0 1 2 3
ok 0 publish tender "$SAMPLES/tender-jeju.json" --wait

# ---------------------------------------------------------------- 1. a member
step "a member is voted in, syncs and publishes"
M=4
newcomer "$M" "Busan Metropolitan City"
M_PUB=$NEW_PUB
start "$M"
grep -q "is no validator, member or observer of chain kr-gov" "$NET/node$M/tenderd.log" ||
	fail "the member-to-be does not say it waits"
vote 0 add-member "$NEW_ID" -- 1 2
advance 0 "$EFFECT"
wait_until 60 "the member did not connect once voted in" connected_at_least 4 "$M"
wait_agree 30 0 1 2 3 "$M"
ok "$M" publish tender "$SAMPLES/tender-kisa.json" --wait
wait_until 30 "the member's tender did not reach validator 3" has_all ocds-kr2020-kisa-0001 3
ok 3 get ocds-kr2020-kisa-0001
CHECK='assert d["releases"][0]["agency"] == sys.argv[2], d' check "$M_PUB"
ok 0 members
CHECK='assert [x["pub_key"] for x in d["members"]] == [sys.argv[2]], d' check "$M_PUB"

# ---------------------------------------------------------------- 2. a validator voted in
step "a validator is voted in (4 -> 5); blocks then need 4 of 5 signatures"
V=5
newcomer "$V" "Daegu Metropolitan City"
V_PUB=$NEW_PUB
start "$V"
vote 1 add-validator "$NEW_ID" -- 2 3
advance 0 "$EFFECT"
ok 0 validators --at "$EFFECT"
CHECK='
assert len(d["validators"]) == 5 and d["validators"][4]["pub_key"] == sys.argv[2], d
' check "$V_PUB"
wait_until 60 "the new validator did not connect" connected_at_least 4 "$V"
wait_agree 60 0 1 2 3 "$V"
seen_new=0
for ((k = 0; k < 8 && seen_new == 0; k++)); do
	advance 0 $(($(sval 0 'd["height"]') + 1))
	H=$(sval 0 'd["height"]')
	n=$(signers 0 "$H" | wc -l)
	((n >= 4)) || fail "block $H after the set grew to 5 carries $n signatures"
	signers 0 "$H" | grep -qx "$V_PUB" && seen_new=1
done
((seen_new == 1)) || fail "the new validator's signature never appeared in a commit"
ok "$V" status
CHECK='assert d["node"]["role"] == "validator" and d["node"]["validator"] is True, d["node"]' check

# ---------------------------------------------------------------- 3. a validator voted out
step "validator 3 is voted out (5 -> 4): its signature leaves the commits, its publish is refused"
vote 0 remove "${PUB[3]}" -- 1 2 "$V"
advance 0 "$EFFECT"
advance 0 $((EFFECT + 3))
wait_agree 30 0 1 2 "$V"
H=$(sval 0 'd["height"]')
for ((h = EFFECT; h <= H; h++)); do
	signers 0 "$h" | grep -qx "${PUB[3]}" && fail "block $h (after the removal at $EFFECT) holds validator 3's signature"
done
ctl 3 publish tender "$SAMPLES/tender-sejong.json"
((RC == 1)) || fail "the removed validator's publish exited $RC, expected 1"
ok 0 validators
CHECK='assert len(d["validators"]) == 4 and sys.argv[2] not in [x["pub_key"] for x in d["validators"]], d' check "${PUB[3]}"
tn_stop 3

# ---------------------------------------------------------------- 4. a key replaced
step "validator 1's key is replaced; a new home with the new key takes its place"
K=6
newcomer "$K" "$(sval 1 'd["node"]["name"]')"
K_PUB=$NEW_PUB
vote 0 replace-key "${PUB[1]}" "$NEW_ID" -- 1 2 "$V"
advance 0 "$EFFECT"
tn_stop 1
start "$K"
wait_agree 60 0 2 "$V" "$K"
seen_k=0
for ((k = 0; k < 8 && seen_k == 0; k++)); do
	advance 0 $(($(sval 0 'd["height"]') + 1))
	H=$(sval 0 'd["height"]')
	signers 0 "$H" | grep -qx "${PUB[1]}" && fail "block $H holds the replaced key's signature"
	signers 0 "$H" | grep -qx "$K_PUB" && seen_k=1
done
((seen_k == 1)) || fail "the new key never signed a commit"
ok 0 validators
CHECK='
v = d["validators"]
assert v[1]["pub_key"] == sys.argv[2], ("the new key is not in the old place", v)
' check "$K_PUB"

# ---------------------------------------------------------------- 5. an observer
step "an observer is voted in, follows from genesis and refuses publish"
O=7
newcomer "$O" "Board of Audit and Inspection"
vote 2 add-observer "$NEW_ID" -- 0 "$V" "$K"
advance 0 "$EFFECT"
start "$O"
wait_agree 60 0 2 "$V" "$K" "$O"
ok "$O" get ocds-kr2020-kisa-0001
ok "$O" list
ctl "$O" publish tender "$SAMPLES/tender-sejong.json"
((RC == 1)) && grep -q "observer" "$ERR" || fail "the observer's publish was not refused clearly"

# ---------------------------------------------------------------- 6. a wiped node
step "validator 2 wiped and synced from genesis crosses every change to the same hash"
TOP=$(sval 0 'd["height"]')
tn_stop 2
rm -rf "$NET/node2/data" "$NET/node2/consensus.wal"
start 2
wait_agree 60 0 2 "$V" "$K" "$O" "$M"
MIN_SIGS=3 all_blocks_identical "$AGREE_H" 0 2
ok 2 validators --at 1
CHECK='assert len(d["validators"]) == 4, d' check
ok 2 proposals
CHECK='
st = [x["status"] for x in d["proposals"]]
assert st == ["decided"] * 5, st
' check
step "proofs: one from blocks of the genesis set verifies offline; one from a later set is refused clearly"
ok 0 proof ocds-kr2020-jeju-0001 --out "$TN_DIR/jeju.proof.json"
ok 0 verify "$TN_DIR/jeju.proof.json" --genesis "$NET/node0/genesis.json"
ctl 0 proof "ocds-kr2020-gov-$SEQ"
((RC == 1)) && grep -q "proofs do not carry validator set changes" "$ERR" ||
	fail "a proof across a set change was not refused clearly ($RC): $(cat "$ERR")"
note "after $AGREE_H blocks: five changes decided, every node on one hash"

no_sanitizer_reports
tn_stop_all
note "passed in $((SECONDS - T0)) s"
