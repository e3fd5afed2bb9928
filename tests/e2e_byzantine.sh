#!/usr/bin/env bash
# End-to-end attacks by a byzantine validator: tests/e2e_byzantine.sh BIN_DIR DATA_DIR
#
# A 4-validator testnet runs nodes 0-2 only; node3's key is the byzantine one,
# held by tenderd-byzpeer (tests/byzpeer.c: the real transport and encoders,
# real signatures). 3 honest of 4 is still more than two thirds. For each
# attack the byzpeer runs against nodes 0-2 for ATTACK_S seconds while records
# are published on them; after it ends every published record must commit on
# nodes 0-2 within COMMIT_S seconds, with one height and last block hash, and
# no honest node may have crashed. A table of attack, messages sent, records
# published and committed, and seconds to commit after the attack ends.
# Skips (exit 0) when BIN_DIR has no tenderd-byzpeer.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
BYZ="$1/tenderd-byzpeer"
if [[ ! -x "$BYZ" ]]; then
	echo "e2e_byzantine: SKIP: $BYZ is missing (build the tenderd-byzpeer target)"
	exit 0
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_byzantine "$1" "$2"
T0=$SECONDS
HONEST=(0 1 2)
ATTACKS=(precommit-flood far-proposals next-height-proposals equivocate replay-hello)
ATTACK_S=${TD_BYZ_SECONDS:-8} # each attack's length
RECORDS=${TD_BYZ_RECORDS:-4}  # records published during each attack
COMMIT_S=${TD_BYZ_COMMIT_S:-10}

# now: seconds since the epoch, with fractions.
now() {
	echo "${EPOCHREALTIME:-$(date +%s.%N)}"
}

# elapsed FROM: seconds since FROM (from now), one decimal.
elapsed() {
	"$PY" -c 'import sys; print("%.1f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$(now)"
}

# honest_alive: fails if a node of HONEST is no longer running.
honest_alive() {
	local i
	for i in "${HONEST[@]}"; do
		tn_alive "$i" || fail "node$i crashed (or exited) during or after the attack"
	done
}

# committed_count OCID...: sets NCOMMITTED to how many OCIDs every honest node holds.
committed_count() {
	local o i ok_all
	NCOMMITTED=0
	for o in "$@"; do
		ok_all=1
		for i in "${HONEST[@]}"; do
			ctl "$i" get "$o"
			((RC == 0)) || { ok_all=0; break; }
		done
		((ok_all)) && NCOMMITTED=$((NCOMMITTED + 1))
	done
}

# all_committed N OCID...: every OCID is on every honest node.
all_committed() {
	local n=$1
	shift
	committed_count "$@"
	((NCOMMITTED == n))
}

TABLE=()
print_table() {
	printf '%-22s %10s %10s %10s %12s\n' attack messages published committed commit_after
	local row
	for row in "${TABLE[@]}"; do
		# shellcheck disable=SC2086 # a row is five words
		printf '%-22s %10s %10s %10s %12s\n' $row
	done
}

step "create a 4-validator testnet and start nodes 0-2 (node3's key is the byzantine one)"
tn_create 4
for i in "${HONEST[@]}"; do tn_start "$i"; done
wait_until 30 "nodes 0-2 do not all show 2 connected peers" connected_all 2 "${HONEST[@]}"
TARGETS="127.0.0.1:$NET_PORT,127.0.0.1:$((NET_PORT + 1)),127.0.0.1:$((NET_PORT + 2))"

step "a first record commits on nodes 0-2 without node3"
ok 0 publish tender "$SAMPLES/tender-jeju.json" --wait
wait_until 30 "the first record did not reach nodes 0-2" has_all ocds-kr2020-jeju-0001 "${HONEST[@]}"
wait_agree 30 "${HONEST[@]}"

a_idx=0
for attack in "${ATTACKS[@]}"; do
	a_idx=$((a_idx + 1))
	step "attack $attack for $ATTACK_S s while $RECORDS records are published on nodes 0-2"
	BOUT="$TN_DIR/byz-$attack.out"
	BERR="$TN_DIR/byz-$attack.err"
	"$BYZ" --home "$NET/node3" --connect "$TARGETS" --attack "$attack" --seconds "$ATTACK_S" >"$BOUT" 2>"$BERR" &
	bpid=$!
	: >>"$BERR"
	# The attack starts once the byzpeer holds all three connections (replay-hello: at once).
	for ((k = 0; k < 200; k++)); do
		grep -q 'peers connected\|attack replay-hello' "$BERR" && break
		kill -0 "$bpid" 2>/dev/null || break
		sleep 0.1
	done
	OCIDS=()
	for ((k = 1; k <= RECORDS; k++)); do
		sleep "$("$PY" -c "print($ATTACK_S / ($RECORDS + 1))")"
		o="ocds-kr2020-byz$a_idx-$k"
		variant "$o" "$TN_DIR/$o.json"
		ok "${HONEST[$(((k - 1) % 3))]}" publish tender "$TN_DIR/$o.json"
		OCIDS+=("$o")
	done
	wait "$bpid"
	brc=$?
	T_END=$(now)
	cat "$BERR" >&2
	cat "$BOUT"
	if ((brc != 0)); then
		cp "$BERR" "$ERR"
		cp "$BOUT" "$OUT"
		RC=$brc
		fail "tenderd-byzpeer --attack $attack exited $brc"
	fi
	MSGS=$(sed -n 's/.* frames=\([0-9]*\).*/\1/p' "$BOUT" | tail -n 1)
	honest_alive
	deadline=$((SECONDS + COMMIT_S))
	while ! all_committed "${#OCIDS[@]}" "${OCIDS[@]}"; do
		honest_alive
		if ((SECONDS >= deadline)); then
			TABLE+=("$attack ${MSGS:-?} ${#OCIDS[@]} $NCOMMITTED never")
			print_table
			fail "after $attack only $NCOMMITTED of ${#OCIDS[@]} records committed on nodes 0-2 within $COMMIT_S s:
$(heights "${HONEST[@]}")"
		fi
		sleep 0.2
	done
	AFTER=$(elapsed "$T_END")
	wait_agree "$COMMIT_S" "${HONEST[@]}"
	honest_alive
	note "$attack: ${MSGS:-?} messages, ${#OCIDS[@]} records committed ${AFTER} s after the attack, height $AGREE_H, last block ${AGREE_HASH:0:16}"
	if [[ "$attack" == equivocate ]]; then
		# Conflicting votes relayed between honest nodes are kept as evidence.
		nev=0
		for i in "${HONEST[@]}"; do
			ok "$i" status
			n=$(val 'len([e for e in d.get("evidence", []) if e["validator"] == 3])')
			nev=$((nev + n))
		done
		note "equivocate: $nev evidence entries against validator 3 on nodes 0-2"
		((nev > 0)) || fail "no honest node recorded evidence of node3's equivocation"
		# tenderctl evidence: both signed votes, for a third party to check.
		nfile=0
		for i in "${HONEST[@]}"; do
			ok "$i" evidence
			CHECK='
ev = d["evidence"]
assert d["count"] >= len(ev), d["count"]
for e in ev:
    assert e["validator"] == 3 and e["kind"] in ("duplicate-vote", "duplicate-proposal"), e
    if e["kind"] == "duplicate-vote":
        assert e["type"] in ("prevote", "precommit"), e
        assert e["a"]["value"] != e["b"]["value"], e
    else:
        assert (e["a"]["value"], e["a"]["valid_round"]) != (e["b"]["value"], e["b"]["valid_round"]), e
    assert e["a"] != e["b"] and len(e["a"]["signature"]) == 128 and len(e["b"]["signature"]) == 128, e
    assert len(e["evidence"]) > 200, e
' check
			n=$(val 'len(d["evidence"])')
			nfile=$((nfile + n))
		done
		note "equivocate: tenderctl evidence lists $nfile entries with both signed votes on nodes 0-2"
		((nfile > 0)) || fail "tenderctl evidence lists nothing after node3's equivocation"
	fi
	TABLE+=("$attack ${MSGS:-?} ${#OCIDS[@]} ${#OCIDS[@]} ${AFTER}s")
done

step "every block is identical on nodes 0-2 and carries at least 3 commit signatures"
MIN_SIGS=3 all_blocks_identical "$AGREE_H" "${HONEST[@]}"

step "blocks committed the evidence of node3's equivocation, each offence once"
committed=0
declare -A offence=()
for ((h = 1; h <= AGREE_H; h++)); do
	ok 0 block "$h"
	for ev in $(val '" ".join(d["evidence"])'); do
		[[ -z ${offence[$ev]:-} ]] || fail "block $h commits evidence already committed at height ${offence[$ev]}"
		offence[$ev]=$h
		committed=$((committed + 1))
	done
done
note "evidence items committed in blocks 1-$AGREE_H: $committed"
((committed > 0)) || fail "no block committed evidence of node3's equivocation"

step "SIGTERM stops nodes 0-2 (exit 0)"
tn_stop_all
no_sanitizer_reports

echo
print_table
echo "e2e_byzantine: all steps passed in $((SECONDS - T0)) s"
