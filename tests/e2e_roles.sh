#!/usr/bin/env bash
# End-to-end test of the roles of a chain's parties: tests/e2e_roles.sh BIN_DIR DATA_DIR
#
# Six agencies, each with a home of its own: four validators, a member (publishes, does not
# vote) and an observer (follows read-only), all named in one genesis made by
# `tenderd genesis create ... --member ID --observer ID`:
#   1. the genesis lists each role ordered by key, the same bytes from any order of the files;
#   2. the validators list each other as peers, the member and the observer list two
#      validators each and nobody lists them: they dial in and are let in by their keys;
#   3. a tender the member publishes commits on every validator, in blocks signed by
#      validators only; `tenderctl members` shows the roles and who is connected;
#   4. the observer, started after a few blocks, syncs from genesis to the same blocks,
#      answers get and list, follows new blocks, and refuses publish with a clear message;
#      its status says "observer" and it never votes;
#   5. a home whose key is no party of the chain runs (it may be voted in later), says so,
#      and every node refuses its connections.
# Fails fast with the step, the last command's output and every node's log tail.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_roles "$1" "$2"
T0=$SECONDS

NAMES=("Korea Internet & Security Agency" "Jeju Special Self-Governing Province"
	"Gangwon-do Provincial Government" "Sejong Special Self-Governing City"
	"Busan Metropolitan City" "Board of Audit and Inspection")
M=4 # the member
O=5 # the observer
VALS=(0 1 2 3)
ALL=(0 1 2 3 4 5)
declare -a H PORT PUB

# run_cmd OUTFILE CMD...: runs CMD with stdout in OUTFILE and stderr in $ERR; exit code in $RC.
run_cmd() {
	local out=$1
	shift
	timeout 30 "$@" >"$out" 2>"$ERR"
	RC=$?
	cp "$out" "$OUT" 2>/dev/null
}

# ---------------------------------------------------------------- 1. the genesis
step "six agencies initialise their homes and print their identities"
for ((try = 0; try < 30; try++)); do
	base=$((20000 + RANDOM % 12000))
	port_free $(seq "$base" $((base + 5))) && break
done
((try < 30)) || fail "no free range of 6 ports found"
mkdir -p "$TN_DIR/ids"
for i in "${ALL[@]}"; do
	H[i]="$TN_DIR/agency$i"
	PORT[i]=$((base + i))
	run_cmd "$TN_DIR/init$i.out" "$TENDERD" init --home "${H[$i]}" --name "${NAMES[$i]}"
	((RC == 0)) || fail "tenderd init --home ${H[$i]} exited $RC"
	sed -i "/^\[p2p\]/,/^\[/ s|^listen = .*|listen = 127.0.0.1:${PORT[$i]}|" "${H[$i]}/config.ini"
	run_cmd "$TN_DIR/ids/agency$i.json" "$TENDERD" id --home "${H[$i]}" --address "127.0.0.1:${PORT[$i]}"
	((RC == 0)) || fail "tenderd id --home ${H[$i]} exited $RC"
	PUB[i]=$(val 'd["pub_key"]')
done

step "genesis create with a member and an observer"
ID=("$TN_DIR"/ids/agency{0,1,2,3,4,5}.json)
GEN="$TN_DIR/genesis.json"
run_cmd "$GEN" "$TENDERD" genesis create --chain-id kr-roles --ocid-prefix ocds-kr2020 \
	--genesis-time 2026-03-01T00:00:00Z --member "${ID[4]}" --observer "${ID[5]}" "${ID[@]:0:4}"
((RC == 0)) || fail "tenderd genesis create with --member and --observer exited $RC"
HASH=$(sed -n 's/^genesis hash: \([0-9a-f]\{64\}\)$/\1/p' "$ERR")
CHECK='
v, m, o = d["validators"], d["members"], d["observers"]
assert [x["name"] for x in m] == [sys.argv[2]] and m[0]["pub_key"] == sys.argv[3], m
assert [x["name"] for x in o] == [sys.argv[4]] and o[0]["pub_key"] == sys.argv[5], o
keys = [x["pub_key"] for x in v]
assert len(v) == 4 and keys == sorted(keys), v
' check "${NAMES[$M]}" "${PUB[$M]}" "${NAMES[$O]}" "${PUB[$O]}"
# Another order of the same files, options after the validators: the same bytes.
run_cmd "$TN_DIR/genesis2.json" "$TENDERD" genesis create --chain-id kr-roles --ocid-prefix ocds-kr2020 \
	--genesis-time 2026-03-01T00:00:00Z "${ID[3]}" "${ID[1]}" --observer "${ID[5]}" "${ID[2]}" "${ID[0]}" \
	--member "${ID[4]}"
((RC == 0)) && cmp -s "$GEN" "$TN_DIR/genesis2.json" || fail "genesis create gave other bytes for another order"
run_cmd "$TN_DIR/bad.json" "$TENDERD" genesis create --chain-id kr-roles --ocid-prefix ocds-kr2020 \
	--member "${ID[4]}" --observer "${ID[5]}"
((RC == 3)) || fail "genesis create without a validator exited $RC, expected 3"
run_cmd "$TN_DIR/bad.json" "$TENDERD" genesis create --chain-id kr-roles --ocid-prefix ocds-kr2020 \
	--member "${ID[0]}" "${ID[@]:0:4}"
((RC == 1)) && grep -q "duplicate key" "$ERR" || fail "one identity as validator and member was not refused ($RC)"
note "genesis hash $HASH"

# ---------------------------------------------------------------- 2. peers and start
step "validators list each other; the member and the observer list two validators each"
peers_of() { # peers_of I J...: the PUBKEY@HOST:PORT entries of J... as config continuation lines
	local out="" j
	shift
	for j in "$@"; do out+="${out:+\\n\\t}${PUB[$j]}@127.0.0.1:${PORT[$j]}"; done
	printf '%s' "$out"
}
for i in "${ALL[@]}"; do
	cp "$GEN" "${H[$i]}/genesis.json"
	case $i in
	"$M") list=$(peers_of "$i" 0 1) ;;
	"$O") list=$(peers_of "$i" 2 3) ;;
	*) list=$(peers_of "$i" $(printf '%s\n' "${VALS[@]}" | grep -vx "$i")) ;;
	esac
	sed -i "s|^peers =.*|peers = $list|" "${H[$i]}/config.ini"
done
for i in "${VALS[@]}" "$M"; do tn_start "${H[$i]}"; done
wait_until 30 "the validators did not connect to each other and the member" connected_all 4 "${H[0]}" "${H[1]}"
wait_until 30 "the member did not connect to validators 0 and 1" connected_all 2 "${H[$M]}"
grep -q "peer ${NAMES[$M]} (member 4) connected" "${H[0]}/tenderd.log" ||
	fail "validator 0 did not log the member's connection with its role"
grep -q "member: ${NAMES[$M]}" "${H[$M]}/tenderd.log" || fail "the member's log does not name its role"

# ---------------------------------------------------------------- 3. the member publishes
step "the member publishes a tender; it commits on every validator"
ok "${H[$M]}" publish tender "$SAMPLES/tender-jeju.json" --wait
wait_until 30 "the member's tender did not reach every validator" has_all ocds-kr2020-jeju-0001 "${H[@]:0:4}"
ok "${H[2]}" get ocds-kr2020-jeju-0001
CHECK='
r = d["releases"][0]
assert r["agency"] == sys.argv[2] and r["agency_name"] == sys.argv[3], r
' check "${PUB[$M]}" "${NAMES[$M]}"
ok "${H[0]}" publish tender "$SAMPLES/tender-kisa.json" --wait
ok "${H[1]}" publish tender "$SAMPLES/tender-gangwon.json" --wait
wait_agree 30 "${H[@]:0:5}"
TOP=$AGREE_H
MIN_SIGS=3 all_blocks_identical "$TOP" "${H[@]:0:4}"
for ((h = 1; h <= TOP; h++)); do
	ok "${H[0]}" block "$h"
	CHECK='
keys = set(s["pub_key"] for s in d["commit"]["signatures"])
assert keys <= set(sys.argv[2:]), ("a commit signature from no validator", keys)
' check "${PUB[@]:0:4}"
done

step "tenderctl members shows the roles and who is connected"
ok "${H[0]}" members
CHECK='
assert sorted(x["pub_key"] for x in d["validators"]) == sorted(sys.argv[2:6]), d
assert [x["pub_key"] for x in d["members"]] == [sys.argv[6]], d
assert [x["pub_key"] for x in d["observers"]] == [sys.argv[7]], d
assert d["members"][0]["connected"] and not d["observers"][0]["connected"], d
me = [x for x in d["validators"] if x["self"]]
assert len(me) == 1 and me[0]["pub_key"] == sys.argv[2] and not me[0]["connected"], d
' check "${PUB[@]}"

# ---------------------------------------------------------------- 4. the observer
step "the observer, started late, syncs from genesis to the same blocks"
tn_start "${H[$O]}"
wait_until 30 "the observer did not connect to validators 2 and 3" connected_all 2 "${H[$O]}"
wait_agree 30 "${H[@]}"
MIN_SIGS=3 all_blocks_identical "$TOP" "${H[0]}" "${H[$O]}"
ok "${H[$O]}" status
CHECK='
n = d["node"]
assert n["role"] == "observer" and n["validator"] is False, n
' check
grep -q "observer: ${NAMES[$O]}" "${H[$O]}/tenderd.log" || fail "the observer's log does not name its role"

step "the observer answers get and list"
ok "${H[$O]}" get ocds-kr2020-jeju-0001
ok "${H[$O]}" list
CHECK='
got = sorted(t["ocid"] for t in items(d))
assert got == ["ocds-kr2020-gw-0001", "ocds-kr2020-jeju-0001", "ocds-kr2020-kisa-0001"], got
' check

step "the observer refuses publish with a clear message"
ctl "${H[$O]}" publish tender "$SAMPLES/tender-sejong.json"
((RC == 1)) || fail "publish on the observer exited $RC, expected 1 (refused)"
grep -q "observer" "$ERR" && grep -q "read-only" "$ERR" || fail "the observer's refusal does not say why: $(cat "$ERR")"

step "the observer follows new blocks"
ok "${H[$M]}" publish tender "$SAMPLES/tender-sejong.json" --wait
wait_until 30 "the observer did not follow the new block" has_all ocds-kr2020-sj-0001 "${H[$O]}"
wait_agree 30 "${H[@]}"
ok "${H[$O]}" block "$AGREE_H"
CHECK='
keys = set(s["pub_key"] for s in d["commit"]["signatures"])
assert sys.argv[2] not in keys and sys.argv[3] not in keys, ("the member or observer signed", keys)
' check "${PUB[$M]}" "${PUB[$O]}"

# ---------------------------------------------------------------- 5. a key the chain does not know
step "a home whose key is no party of the chain runs, says so, and is let in by nobody"
S="$TN_DIR/stranger"
run_cmd "$TN_DIR/stranger.out" "$TENDERD" init --home "$S" --name "Stranger" --genesis "$GEN"
((RC == 0)) || fail "tenderd init --genesis exited $RC"
sed -i "/^\[p2p\]/,/^\[/ s|^listen = .*|listen = 127.0.0.1:0|" "$S/config.ini"
sed -i "s|^peers =.*|peers = $(peers_of x 0)|" "$S/config.ini"
tn_start "$S"
grep -q "is no validator, member or observer of chain kr-roles" "$S/tenderd.log" ||
	fail "the stranger's log does not say its key is no party of the chain"
stranger_refused() { grep -q "unknown identity" "${H[0]}/tenderd.log"; }
wait_until 20 "validator 0 did not refuse the stranger's connection" stranger_refused
ctl "$S" publish tender "$SAMPLES/tender-sejong.json"
((RC == 1)) && grep -q "no validator or member" "$ERR" || fail "the stranger's publish was not refused clearly"
tn_stop "$S"

no_sanitizer_reports
tn_stop_all
note "passed in $((SECONDS - T0)) s"
