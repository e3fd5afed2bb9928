#!/usr/bin/env bash
# End-to-end test of tender proofs: tests/e2e_proof.sh BIN_DIR DATA_DIR
#
# On a real one-validator node: the Jeju lifecycle (tender, amendment, award) is
# published; `tenderctl proof` writes its proof; `tenderctl verify` checks it with the
# genesis alone, after the node is stopped (no socket), and says what was proven. The
# proof with one value changed (a hex digit of a record, a header, a commit, a path; a
# height; the ocid) is refused (exit 1), so is a proof checked against another chain's
# genesis (another home with the same chain id and prefix); usage errors exit 3.
NAME_OF_TEST=e2e_proof
# shellcheck source=tests/lib_single.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_single.sh"

step "init a one-validator chain and start it"
single_init
daemon_start

step "the Jeju lifecycle: tender, amendment, award, each committed"
# Three tenders at once: likely in one block, so the Jeju tender's path is not empty.
ok publish tender "$SAMPLES/tender-kisa.json"
ok publish tender "$SAMPLES/tender-jeju.json"
ok publish tender "$SAMPLES/tender-gangwon.json" --wait
ok amend ocds-kr2020-jeju-0001 "$SAMPLES/amend-jeju.json" --wait
ok publish award "$SAMPLES/award-jeju.json" --wait

step "tenderctl proof writes the proof"
ok proof ocds-kr2020-jeju-0001 --out "$TMP/proof.json"
OUT="$TMP/proof.json"
CHECK='
assert d["proof"] == "tenderd-tender-proof" and d["version"] == 1, d
assert d["ocid"] == "ocds-kr2020-jeju-0001" and hex64(d["genesis_hash"]), d
assert len(d["releases"]) == 3 and len(d["blocks"]) == 3, d
assert all(len(r["path"]) <= 32 and all(hex64(h) for h in r["path"]) for r in d["releases"]), d
assert [r["height"] for r in d["releases"]] == [b["height"] for b in d["blocks"]], d
' check
OUT="$TMP/out"
refused 1 proof ocds-kr2020-nobody-1
grep -q "no tender" "$ERR" || fail "an unknown ocid is not refused with a clear message"
refused 3 proof

step "export --proofs writes one proof per ocid next to the package"
mkdir "$TMP/proofs"
ok export --out "$TMP/pkg.json" --proofs "$TMP/proofs"
grep -q "3 proofs written" "$ERR" || fail "export --proofs does not say how many proofs it wrote"
for o in ocds-kr2020-jeju-0001 ocds-kr2020-kisa-0001 ocds-kr2020-gw-0001; do
	[[ -s "$TMP/proofs/$o.proof.json" ]] || fail "export --proofs wrote no proof of $o"
done
refused 3 export --format csv --proofs "$TMP/proofs"
stop_term

step "tenderctl verify checks it offline, with the genesis alone"
verify() {
	timeout 30 "$TENDERCTL" --socket "$TMP/no-such.sock" verify "$@" >"$OUT" 2>"$ERR"
	RC=$?
}
verify "$TMP/proof.json" --genesis "$H/genesis.json"
((RC == 0)) || fail "verify of a good proof exited $RC"
grep -q "^valid: release .* of ocds-kr2020-jeju-0001 (award), published by $NAME" "$OUT" ||
	fail "verify does not say what was proven"
grep -q "signed by 1 of 1 validators: $NAME" "$OUT" || fail "verify does not name the signers"
grep -q "the latest of the 3 releases in this proof" "$OUT" || fail "verify does not count the releases"
sed 's/^/  /' "$OUT"

step "one changed value anywhere is refused"
"$PY" - "$TMP/proof.json" "$TMP" <<'PYEOF' || fail "could not write the tampered proofs"
import json, sys
p = json.load(open(sys.argv[1]))
def flip(s, i):
    c = s[i]
    return s[:i] + ("1" if c == "0" else "0") + s[i + 1:]
cases = {
    "record": lambda q: q["releases"][1].__setitem__("record", flip(q["releases"][1]["record"], 200)),
    "header": lambda q: q["blocks"][0].__setitem__("header", flip(q["blocks"][0]["header"], 40)),
    "commit": lambda q: q["blocks"][2].__setitem__("commit", flip(q["blocks"][2]["commit"], 150)),
    "path": lambda q: [r["path"].__setitem__(0, flip(r["path"][0], 7)) for r in q["releases"] if r["path"]][:1] or
            q["releases"][0]["path"].append("00" * 32),
    "height": lambda q: q["releases"][2].__setitem__("height", q["releases"][2]["height"] + 1),
    "ocid": lambda q: q.__setitem__("ocid", "ocds-kr2020-jeju-0002"),
}
for name, f in cases.items():
    q = json.loads(json.dumps(p))
    f(q)
    json.dump(q, open("%s/bad-%s.json" % (sys.argv[2], name), "w"))
PYEOF
for c in record header commit path height ocid; do
	verify "$TMP/bad-$c.json" --genesis "$H/genesis.json"
	((RC == 1)) || fail "a proof with its $c changed: verify exited $RC, expected 1"
	grep -q "^REFUSED: " "$OUT" || fail "a proof with its $c changed: no REFUSED line"
	echo "  $c changed: $(head -c 150 "$OUT")"
done

step "a proof checked against another chain's genesis is refused"
single_init "$TMP/other"
verify "$TMP/proof.json" --genesis "$TMP/other/genesis.json"
((RC == 1)) || fail "verify against another genesis exited $RC, expected 1"
grep -q "another genesis" "$OUT" || fail "verify against another genesis does not say so"

step "every proof export wrote checks out offline"
for f in "$TMP"/proofs/*.proof.json; do
	verify "$f" --genesis "$H/genesis.json"
	((RC == 0)) || fail "verify of $f exited $RC"
done

step "usage errors exit 3"
verify "$TMP/proof.json"
((RC == 3)) || fail "verify without --genesis exited $RC, expected 3"
verify --genesis "$H/genesis.json"
((RC == 3)) || fail "verify without a file exited $RC, expected 3"
echo "e2e_proof: passed"
