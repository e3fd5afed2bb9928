#!/usr/bin/env bash
# End-to-end test of forming a chain across machines: tests/e2e_consortium.sh BIN_DIR DATA_DIR
#
# Four agencies, each with a home of its own (made by `tenderd init`, with missing parent
# folders), on loopback ports:
#   1. each prints its identity with `tenderd id` (name, pub_key, address; never the key);
#   2. one agency runs `tenderd genesis create` over the four identity files; every agency
#      runs it again over the files in another order and gets the same bytes and hash, and
#      `tenderd genesis hash` of the file received gives that hash too; duplicates and
#      usage errors are refused;
#   3. each copies the agreed genesis over its home's genesis.json and lists the others as
#      PUBKEY@HOST:PORT; the four start, connect and a publish commits on all four;
#   4. a node started with another genesis is refused with a clear message, and starts
#      again with the agreed one;
#   5. a peer entry naming the wrong key is dropped with a log line naming both keys;
#   6. `tenderd init --genesis` makes a home on the chain whose new key is no validator:
#      init says so, and run says so too (the chain may name it later by a vote).
# Fails fast with the step, the last command's output and every node's log tail.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_consortium "$1" "$2"
T0=$SECONDS

NAMES=("Korea Internet & Security Agency" "Jeju Special Self-Governing Province"
	"Gangwon-do Provincial Government" "Sejong Special Self-Governing City")
GTIME=2026-03-01T00:00:00Z
ALL=(0 1 2 3)
declare -a H PORT PUB

# run_cmd OUTFILE CMD...: runs CMD with stdout in OUTFILE and stderr in $ERR; exit code in $RC.
run_cmd() {
	local out=$1
	shift
	timeout 30 "$@" >"$out" 2>"$ERR"
	RC=$?
	cp "$out" "$OUT" 2>/dev/null
}

# ---------------------------------------------------------------- 1. homes and identities
step "four agencies initialise their own homes"
for ((try = 0; try < 30; try++)); do
	base=$((20000 + RANDOM % 12000))
	port_free "$base" $((base + 1)) $((base + 2)) $((base + 3)) && break
done
((try < 30)) || fail "no free range of 4 ports found"
mkdir -p "$TN_DIR/ids"
for i in "${ALL[@]}"; do
	H[i]="$TN_DIR/agency$i/srv/tenderd" # parents do not exist yet
	PORT[i]=$((base + i))
	run_cmd "$TN_DIR/init$i.out" "$TENDERD" init --home "${H[$i]}" --name "${NAMES[$i]}"
	((RC == 0)) || fail "tenderd init --home ${H[$i]} exited $RC"
	[[ $(stat -c %a "${H[$i]}") == 700 ]] || fail "home ${H[$i]} is mode $(stat -c %a "${H[$i]}"), expected 700"
	sed -i "/^\[p2p\]/,/^\[/ s|^listen = .*|listen = 127.0.0.1:${PORT[$i]}|" "${H[$i]}/config.ini"
done

step "each prints its identity with tenderd id"
for i in "${ALL[@]}"; do
	run_cmd "$TN_DIR/ids/agency$i.json" "$TENDERD" id --home "${H[$i]}" --address "127.0.0.1:${PORT[$i]}"
	((RC == 0)) || fail "tenderd id --home ${H[$i]} exited $RC"
	CHECK='
key = json.load(open(sys.argv[2]))
assert sorted(d) == ["address", "name", "pub_key"], d
assert d["name"] == sys.argv[3], d
assert d["pub_key"] == key["pub_key"] and hex64(d["pub_key"]), d
assert d["address"] == sys.argv[4], d
assert key["secret_seed"] not in open(sys.argv[1]).read()
' check "${H[$i]}/node.key" "${NAMES[$i]}" "127.0.0.1:${PORT[$i]}"
	PUB[i]=$(val 'd["pub_key"]')
done
run_cmd "$TN_DIR/id-default.json" "$TENDERD" id --home "${H[0]}"
((RC == 0)) || fail "tenderd id without --address exited $RC"
CHECK='assert d["address"] == sys.argv[2], d' check "127.0.0.1:${PORT[0]}"
grep -q "pass --address" "$ERR" || fail "tenderd id with a loopback listen address does not suggest --address"
run_cmd "$TN_DIR/id-bad.json" "$TENDERD" id --home "${H[0]}" --address nowhere
((RC == 3)) || fail "tenderd id --address nowhere exited $RC, expected 3 (usage)"

# ---------------------------------------------------------------- 2. the genesis ceremony
step "agency 0 creates the genesis; every agency gets the same bytes and hash"
IDS=("$TN_DIR/ids/agency0.json" "$TN_DIR/ids/agency1.json" "$TN_DIR/ids/agency2.json" "$TN_DIR/ids/agency3.json")
GEN="$TN_DIR/genesis.json"
run_cmd "$GEN" "$TENDERD" genesis create --chain-id kr-procurement-2026 --ocid-prefix ocds-kr2020 \
	--genesis-time "$GTIME" "${IDS[@]}"
((RC == 0)) || fail "tenderd genesis create exited $RC"
HASH=$(sed -n 's/^genesis hash: \([0-9a-f]\{64\}\)$/\1/p' "$ERR")
[[ -n "$HASH" ]] || fail "genesis create printed no 'genesis hash: HEX' on stderr"
CHECK='
v = d["validators"]
assert d["chain_id"] == "kr-procurement-2026" and d["ocid_prefix"] == "ocds-kr2020", d
assert d["genesis_time"].startswith("2026-03-01T00:00:00"), d
assert len(v) == 4, v
keys = [x["pub_key"] for x in v]
assert keys == sorted(keys), ("not ordered by public key", keys)
assert sorted(x["name"] for x in v) == sorted(sys.argv[2:]), v
' check "${NAMES[@]}"
for i in 1 2 3; do
	# Each agency runs it over the files in its own order (rotated by i).
	order=("${IDS[@]:i}" "${IDS[@]:0:i}")
	run_cmd "$TN_DIR/genesis$i.json" "$TENDERD" genesis create --chain-id kr-procurement-2026 \
		--ocid-prefix ocds-kr2020 --genesis-time "$GTIME" "${order[@]}"
	((RC == 0)) || fail "genesis create at agency $i exited $RC"
	cmp -s "$GEN" "$TN_DIR/genesis$i.json" || fail "agency $i got other genesis bytes from the same identities"
	grep -qx "genesis hash: $HASH" "$ERR" || fail "agency $i got another genesis hash"
	run_cmd "$TN_DIR/hash$i" "$TENDERD" genesis hash "$GEN"
	((RC == 0)) && [[ $(cat "$TN_DIR/hash$i") == "$HASH" ]] || fail "tenderd genesis hash gives another hash"
done
note "genesis hash $HASH"

step "genesis create refuses duplicates and usage errors"
run_cmd "$TN_DIR/dup.json" "$TENDERD" genesis create --chain-id c --ocid-prefix ocds-kr2020 "${IDS[0]}" "${IDS[1]}" \
	"${IDS[0]}"
((RC == 1)) || fail "a duplicate identity file gave exit $RC, expected 1"
grep -q "duplicate key" "$ERR" && grep -q "${PUB[0]}" "$ERR" || fail "no clear duplicate-key message"
# Agency 1's identity with a new key: the same name under two keys.
sed "s/\"${PUB[1]}\"/\"$(printf '%064d' 7)\"/" "${IDS[1]}" >"$TN_DIR/samename.json"
run_cmd "$TN_DIR/dup.json" "$TENDERD" genesis create --chain-id c --ocid-prefix ocds-kr2020 "${IDS[1]}" \
	"$TN_DIR/samename.json"
((RC == 1)) || fail "a duplicate name gave exit $RC, expected 1"
grep -q "duplicate name" "$ERR" || fail "no clear duplicate-name message"
run_cmd "$TN_DIR/dup.json" "$TENDERD" genesis create --ocid-prefix ocds-kr2020 "${IDS[@]}"
((RC == 3)) || fail "genesis create without --chain-id exited $RC, expected 3"
run_cmd "$TN_DIR/dup.json" "$TENDERD" genesis create --chain-id c --ocid-prefix ocds-kr2020
((RC == 3)) || fail "genesis create without identity files exited $RC, expected 3"
run_cmd "$TN_DIR/dup.json" "$TENDERD" genesis create --chain-id c --ocid-prefix ocds-kr2020 --genesis-time yesterday \
	"${IDS[0]}"
((RC == 3)) || fail "genesis create with a bad --genesis-time exited $RC, expected 3"
run_cmd "$TN_DIR/dup.json" "$TENDERD" genesis create --chain-id c --ocid-prefix ocds-kr2020 "${H[0]}/node.key"
((RC == 1)) && grep -q "key file" "$ERR" || fail "a key file taken for an identity file was not refused clearly"

# ---------------------------------------------------------------- 3. adopt and run
step "agency 0 ran its one-validator chain before the genesis arrived (a store with no block)"
tn_start "${H[0]}"
tn_stop "${H[0]}"
[[ -d "${H[0]}/data" && -f "${H[0]}/sign_state.json" ]] || fail "agency 0's first start made no store or sign state"

step "each adopts the genesis and lists the others as PUBKEY@HOST:PORT"
for i in "${ALL[@]}"; do
	cp "$GEN" "${H[$i]}/genesis.json"
	peers=""
	for j in "${ALL[@]}"; do
		((j == i)) && continue
		peers+="${peers:+,}${PUB[$j]}@127.0.0.1:${PORT[$j]}"
	done
	# Three keyed entries pass config.ini's 200-byte line: one per continuation line.
	sed -i "s|^peers =.*|peers = ${peers//,/\\n\\t}|" "${H[$i]}/config.ini"
done

step "start the four nodes; they connect"
for i in "${ALL[@]}"; do tn_start "${H[$i]}"; done
wait_until 30 "the four nodes did not all connect to each other" connected_all 3 "${H[@]}"
for i in "${ALL[@]}"; do
	grep -q "hash $HASH" "${H[$i]}/tenderd.log" || fail "agency $i did not log the genesis hash $HASH"
done
grep -q "the store holds no block: it now follows genesis $HASH" "${H[0]}/tenderd.log" ||
	fail "agency 0's store did not take the agreed genesis (or did not log it)"

step "a publish on agency 2 commits on all four"
ok "${H[2]}" publish tender "$SAMPLES/tender-jeju.json" --wait
wait_until 30 "the tender did not reach every node" has_all ocds-kr2020-jeju-0001 "${H[@]}"
wait_agree 30 "${H[@]}"
MIN_SIGS=3 all_blocks_identical "$AGREE_H" "${H[@]}"
note "committed at height $AGREE_H on all four"

# ---------------------------------------------------------------- 4. another genesis
step "a node started with a different genesis is refused"
tn_stop "${H[3]}"
cp "${H[3]}/genesis.json" "$TN_DIR/agreed.json"
run_cmd "$TN_DIR/other.json" "$TENDERD" genesis create --chain-id kr-procurement-2026 --ocid-prefix ocds-kr2020 \
	--genesis-time 2026-03-02T00:00:00Z "${IDS[@]}"
((RC == 0)) || fail "genesis create of another genesis exited $RC"
OTHER_HASH=$(sed -n 's/^genesis hash: //p' "$ERR")
cp -f "$TN_DIR/other.json" "${H[3]}/genesis.json"
timeout 30 "$TENDERD" run --home "${H[3]}" >"$TN_DIR/refused.log" 2>&1
RC=$?
cp "$TN_DIR/refused.log" "$ERR"
((RC == 1)) || fail "tenderd run with another genesis exited $RC, expected 1"
grep -q "cannot change its genesis" "$TN_DIR/refused.log" || fail "no clear message refusing another genesis"
grep "cannot change its genesis" "$TN_DIR/refused.log" | grep -q "$HASH" || fail "the refusal does not name the store's genesis hash"
grep "cannot change its genesis" "$TN_DIR/refused.log" | grep -q "$OTHER_HASH" || fail "the refusal does not name the new genesis hash"
cp -f "$TN_DIR/agreed.json" "${H[3]}/genesis.json"

# ---------------------------------------------------------------- 5. a wrong key in a peer entry
step "a peer entry naming the wrong key is dropped with a log line"
# Agency 3 names agency 1's key at agency 0's address.
sed -i "s|${PUB[0]}@127.0.0.1:${PORT[0]}|${PUB[1]}@127.0.0.1:${PORT[0]}|" "${H[3]}/config.ini"
grep -q "${PUB[1]}@127.0.0.1:${PORT[0]}" "${H[3]}/config.ini" || fail "could not edit the peers of agency 3"
tn_start "${H[3]}"
wrong_key_logged() {
	grep "127.0.0.1:${PORT[0]}: wrong key" "${H[3]}/tenderd.log" | grep "${PUB[1]}" | grep -q "${PUB[0]}"
}
wait_until 20 "agency 3 did not log the wrong key at 127.0.0.1:${PORT[0]}" wrong_key_logged
note "$(grep -m1 'wrong key' "${H[3]}/tenderd.log" | cut -c1-200)..."
# Agency 0 dials agency 3 itself (its own entry is right), so the chain goes on with all four.
wait_until 30 "agency 3 did not rejoin" connected_all 3 "${H[3]}"
ok "${H[3]}" publish tender "$SAMPLES/tender-kisa.json" --wait
wait_agree 30 "${H[@]}"

# ---------------------------------------------------------------- 6. init --genesis
step "tenderd init --genesis: a home on the chain; its new key is no validator"
J="$TN_DIR/late/srv/tenderd"
run_cmd "$TN_DIR/join.out" "$TENDERD" init --home "$J" --name "Busan Metropolitan City" --genesis "$GEN"
((RC == 0)) || fail "tenderd init --genesis exited $RC"
grep -q "genesis hash $HASH" "$TN_DIR/join.out" || fail "init --genesis does not show the genesis hash"
grep -q "is not a validator, member or observer of chain kr-procurement-2026" "$ERR" ||
	fail "init --genesis does not say the key is no party of the chain"
[[ $("$TENDERD" genesis hash "$J/genesis.json") == "$HASH" ]] || fail "the joined home has another genesis"
run_cmd "$TN_DIR/join2.out" "$TENDERD" init --home "$J" --name X --genesis "$GEN" --chain-id y
((RC == 3)) || fail "init --genesis with --chain-id exited $RC, expected 3"
sed -i "/^\[p2p\]/,/^\[/ s|^listen = .*|listen = 127.0.0.1:0|" "$J/config.ini"
tn_start "$J"
grep -q "is no validator, member or observer of chain kr-procurement-2026" "$J/tenderd.log" ||
	fail "a home whose key the chain does not name does not say so"
tn_stop "$J"

tn_stop_all
note "passed in $((SECONDS - T0)) s"
