#!/usr/bin/env bash
# End-to-end test of the agency API: tests/e2e_lifecycle.sh BIN_DIR DATA_DIR
#
# Part 1 runs one real tenderd (tenderd init + tenderd run) and drives it through
# tenderctl and a raw socket: the Jeju lifecycle (publish, amend, award), the
# Sejong cancellation, every lifecycle refusal with its JSON-RPC code and rule,
# list filters, stable pagination and the table format, watch with resume after
# a disconnect, OCDS exports validated against the official schemas
# (tests/ocds_validate.py), socket robustness, help texts, startup log lines,
# SIGHUP log reopening and a clean stop (a watcher sees the node go: exit 2).
# Part 2 runs a 2-node testnet (tenderd testnet) for the rules that need two
# agencies: only the publishing agency may amend, cancel or award; list --agency.
# Fails fast with the step, the last command's output and the daemons' log tails.
# Needs bash 4, coreutils, /usr/bin/python3 with python3-jsonschema; no jq.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd) || exit 2
# shellcheck source=tests/lib_testnet.sh
. "$HERE/lib_testnet.sh"
tn_init e2e_lifecycle "$1" "$2"
SCHEMAS="$DATA/ocds"
VALIDATE="$HERE/ocds_validate.py"
PY=/usr/bin/python3
if ! "$PY" -c 'import jsonschema' 2>/dev/null; then
	echo "e2e_lifecycle: $PY with jsonschema is needed (scripts/setup.sh installs python3-jsonschema)" >&2
	exit 1
fi

T=$TN_DIR
H="$T/single"
SOCK="$H/tenderd.sock"
NAME="Jeju Special Self-Governing Province"
JEJU=ocds-kr2020-jeju-0001
SEJONG=ocds-kr2020-sj-0001
KISA=ocds-kr2020-kisa-0001
WATCH_PIDS=()

# Watchers are ours to stop too (before lib_testnet's cleanup removes the directory).
lifecycle_cleanup() {
	local p
	for p in "${WATCH_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	tn_cleanup
}
trap lifecycle_cleanup EXIT

# refused_with CODE RULE_REGEX NODE ARGS...: tenderctl must exit 1, and stderr must show
# the JSON-RPC error code (CODE: one code, or alternatives as a grep -E pattern such as
# -32602|-32002) and a message matching RULE_REGEX (grep -E).
refused_with() {
	local code=$1 rule=$2
	shift 2
	ctl "$@"
	((RC == 1)) || fail "tenderctl ${*:2} exited $RC, expected 1 (refused)"
	grep -Eq -- "\(code ($code)\)" "$ERR" || fail "stderr does not show code $code"
	grep -Eq -- "$rule" "$ERR" || fail "stderr does not name the rule /$rule/"
}

# jsonfile FILE: writes stdin to FILE (fragments written as text keep their exact numbers).
jsonfile() {
	cat >"$1" || fail "could not write $1"
	"$PY" -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" || fail "$1 is not valid JSON"
}

# records NODE: prints status.records of NODE.
records() {
	ok "$1" status
	val 'd["records"]'
}

# lines_with FILE TEXT N: true when FILE holds at least N lines containing TEXT.
lines_with() {
	local n
	n=$(grep -c -- "$2" "$1" 2>/dev/null)
	((${n:-0} >= $3))
}

# file_lines FILE N: true when FILE has at least N lines.
file_lines() {
	local n
	n=$(wc -l <"$1" 2>/dev/null)
	((${n:-0} >= $2))
}

# ================================================================ help texts (no node needed)
step "tenderctl --help and COMMAND --help"
timeout 10 "$TENDERCTL" --help >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderctl --help exited $RC"
for o in --socket --timeout --wait --reason --agency --status --category --method --since --until \
	--limit --cursor --with-cursor --format --from --to --records --out; do
	grep -q -- "$o" "$OUT" || fail "tenderctl --help does not mention $o"
done
cp "$OUT" "$T/help"
for c in status publish amend cancel get list watch export block call; do
	grep -Eq "^  $c( |$)" "$T/help" || fail "tenderctl --help does not list the command $c"
	timeout 10 "$TENDERCTL" "$c" --help >"$OUT" 2>"$ERR"
	RC=$?
	((RC == 0)) || fail "tenderctl $c --help exited $RC"
	grep -q "tenderctl.* $c" "$OUT" || fail "tenderctl $c --help does not show the usage of $c"
done
timeout 10 "$TENDERCTL" list --help >"$OUT" 2>"$ERR"
for o in --agency --status --category --method --since --until --limit --cursor --with-cursor --format \
	--socket --timeout; do
	grep -q -- "$o" "$OUT" || fail "tenderctl list --help does not mention $o"
done
timeout 10 "$TENDERCTL" watch --help >"$OUT" 2>"$ERR"
grep -q -- "--from" "$OUT" || fail "tenderctl watch --help does not mention --from"
grep -q "block_records" "$OUT" || fail "tenderctl watch --help does not explain the resume rule"
timeout 10 "$TENDERCTL" export --help >"$OUT" 2>"$ERR"
for o in --from --to --records --out; do
	grep -q -- "$o" "$OUT" || fail "tenderctl export --help does not mention $o"
done
step "usage errors exit 3"
for args in "list --wait" "list --format yaml" "watch --from x" "export --to -1" "status --reason x"; do
	# shellcheck disable=SC2086 # split on purpose
	timeout 10 "$TENDERCTL" --socket "$T/none.sock" $args >"$OUT" 2>"$ERR"
	RC=$?
	((RC == 3)) || fail "tenderctl $args exited $RC, expected 3"
done

# ================================================================ part 1: one node
step "tenderd init"
timeout 30 "$TENDERD" init --home "$H" --name "$NAME" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "tenderd init exited $RC"
cp "$H/genesis.json" "$OUT"
VALIDATOR=$(val 'd["validators"][0]["pub_key"]')
CHAIN=$(val 'd["chain_id"]')

step "tenderd run --log-file (startup lines name chain, validator, socket)"
tn_start "$H" --log-file "$H/tenderd.log"
grep -q -- "$CHAIN" "$H/tenderd.log" || fail "the startup log does not name the chain id $CHAIN"
grep -q -- "$VALIDATOR" "$H/tenderd.log" || fail "the startup log does not name the validator key $VALIDATOR"
grep -q -- "$SOCK" "$H/tenderd.log" || fail "the startup log does not name the socket $SOCK"

# ---------------------------------------------------------------- Jeju: publish, amend, award
step "publish tender-jeju --wait"
ok "$H" publish tender "$SAMPLES/tender-jeju.json" --wait
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-jeju-0001" and d["height"] >= 1 and d["release_id"], d' check
J1=$(val 'd["id"]')
J1H=$(val 'd["height"]')

step "amend $JEJU amend-jeju.json --wait"
ok "$H" amend "$JEJU" "$SAMPLES/amend-jeju.json" --wait
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-jeju-0001" and d["height"] >= 1, d' check
J2=$(val 'd["id"]')
J2H=$(val 'd["height"]')

step "publish award award-jeju.json --wait"
ok "$H" publish award "$SAMPLES/award-jeju.json" --wait
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-jeju-0001" and d["height"] >= 1, d' check
J3=$(val 'd["id"]')
J3H=$(val 'd["height"]')

step "get $JEJU: three releases in order, compiled release merged"
ok "$H" get "$JEJU"
grep -q '712500000\.50' "$OUT" || fail "get does not hold the exact amount text 712500000.50"
CHECK='
ids, hs, agency = sys.argv[2:5], [int(x) for x in sys.argv[5:8]], sys.argv[8]
r = d["releases"]
assert len(r) == 3, r
assert [x["record_id"] for x in r] == ids, ([x["record_id"] for x in r], ids)
assert [x["height"] for x in r] == hs, ([x["height"] for x in r], hs)
assert hs == sorted(hs), hs
for x in r:
    assert x["agency"] == agency, x
    assert isinstance(x.get("time"), (str, int)) and x["time"], x
    assert x["agency_name"] == "Jeju Special Self-Governing Province", x
assert [x["kind"] for x in r] == ["tender", "tenderAmendment", "award"], [x["kind"] for x in r]
assert [x["release"]["tag"] for x in r] == [["tender"], ["tenderAmendment"], ["award"]], [x["release"]["tag"] for x in r]
ids_rel = [x["release"]["id"] for x in r]
assert len(set(ids_rel)) == 3, ids_rel
am = r[1]["release"]["tender"]["amendments"]
assert len(am) == 1, am
assert am[0]["amendsReleaseID"] == ids_rel[0], (am[0], ids_rel)
assert am[0]["releaseID"] == ids_rel[1], (am[0], ids_rel)
assert am[0]["rationale"] == "Submission deadline extended at bidders'"'"' request", am[0]
c = d["compiled"]
assert c["ocid"] == "ocds-kr2020-jeju-0001", c
assert c["tag"] == ["compiled"], c["tag"]
t = c["tender"]
assert t["tenderPeriod"]["endDate"] == "2020-04-10T18:00:00+09:00", t["tenderPeriod"]
assert t["tenderPeriod"]["startDate"] == "2020-03-09T09:00:00+09:00", t["tenderPeriod"]
assert t["status"] == "active", t["status"]
assert str(t["value"]["amount"]) == "712500000.50", t["value"]
assert t["title"] == "Blockchain-based electric vehicle battery life-cycle management system", t["title"]
assert any(a.get("rationale", "").startswith("Submission deadline") for a in t.get("amendments", [])), t.get("amendments")
aw = c["awards"]
assert len(aw) == 1 and aw[0]["id"] == "jeju-2020-0001-a1", aw
assert str(aw[0]["value"]["amount"]) == "698000000" and aw[0]["value"]["currency"] == "KRW", aw[0]
assert aw[0]["suppliers"][0]["name"] == "LG CNS", aw[0]["suppliers"]
sup = [p for p in c.get("parties", []) if "supplier" in p.get("roles", [])]
assert len(sup) == 1 and sup[0]["name"] == "LG CNS" and sup[0]["id"] == aw[0]["suppliers"][0]["id"], c.get("parties")
assert c.get("buyer", {}).get("name") == "Jeju Special Self-Governing Province", c.get("buyer")
' check "$J1" "$J2" "$J3" "$J1H" "$J2H" "$J3H" "$VALIDATOR"

# ---------------------------------------------------------------- Sejong: publish, cancel
REASON="Budget moved to the Ministry of Food and Drug Safety's national pilot"
step "publish tender-sejong --wait, then cancel it --wait"
ok "$H" publish tender "$SAMPLES/tender-sejong.json" --wait
S1=$(val 'd["id"]')
ok "$H" cancel "$SEJONG" --reason "$REASON" --wait
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-sj-0001" and d["height"] >= 1, d' check
S2=$(val 'd["id"]')
ok "$H" get "$SEJONG"
CHECK='
r = d["releases"]
assert [x["record_id"] for x in r] == sys.argv[2:4], r
assert [x["kind"] for x in r] == ["tender", "tenderCancellation"], r
assert r[1]["release"]["tag"] == ["tenderCancellation"], r[1]["release"]
t = d["compiled"]["tender"]
assert t["status"] == "cancelled", t
assert t["statusDetails"] == sys.argv[4], t
assert t["title"].startswith("Blockchain-based food safety"), t
assert str(t["value"]["amount"]) == "850000000", t
' check "$S1" "$S2" "$REASON"

# ---------------------------------------------------------------- refusals
step "refused: an award of the cancelled Sejong tender"
jsonfile "$T/award-sejong.json" <<'EOF'
{"ocid": "ocds-kr2020-sj-0001",
 "awards": [{"id": "sj-2020-0001-a1", "status": "active", "value": {"amount": 800000000, "currency": "KRW"},
             "suppliers": [{"id": "KR-BRN-0000000001", "name": "Some Supplier"}]}]}
EOF
refused_with -32005 "$SEJONG.*cancelled|cancelled.*$SEJONG" "$H" publish award "$T/award-sejong.json" --wait

step "refused: an amendment of the cancelled Sejong tender"
refused_with -32005 "$SEJONG.*cancelled|cancelled.*$SEJONG" "$H" amend "$SEJONG" "$SAMPLES/amend-jeju.json" --wait

step "refused: cancelling the cancelled Sejong tender again"
refused_with -32005 "cancelled" "$H" cancel "$SEJONG" --reason "again" --wait

step "refused: a tender whose ocid is already on the ledger"
refused_with -32003 "$JEJU.*already exists|already.*$JEJU" "$H" publish tender "$SAMPLES/tender-jeju.json" --wait

step "refused: an amendment of an unknown ocid"
refused_with -32005 "ocds-kr2020-nope-0001.*(does not exist|no such|unknown)" "$H" \
	amend ocds-kr2020-nope-0001 "$SAMPLES/amend-jeju.json" --wait

step "refused: an award of an unknown ocid"
sed 's/ocds-kr2020-jeju-0001/ocds-kr2020-nope-0002/' "$SAMPLES/award-jeju.json" >"$T/award-nope.json"
refused_with -32005 "ocds-kr2020-nope-0002.*(does not exist|no such|unknown)" "$H" publish award "$T/award-nope.json" --wait

step "publish tender-kisa, amend it with an explicit release id"
ok "$H" publish tender "$SAMPLES/tender-kisa.json" --wait
jsonfile "$T/amend-kisa.json" <<'EOF'
{"id": "kisa-2020-0001-amend-1",
 "tender": {"description": "Selection of operators for ten blockchain pilot projects; briefing on 2020-02-10.",
            "amendments": [{"id": "kisa-amend-1", "date": "2020-02-07T10:00:00+09:00",
                            "rationale": "Briefing session added"}]}}
EOF
ok "$H" amend "$KISA" "$T/amend-kisa.json" --wait
CHECK='assert d["release_id"] == "kisa-2020-0001-amend-1", d' check

step "refused: the same release id again for the same ocid"
refused_with -32003 "kisa-2020-0001-amend-1.*already|already.*kisa-2020-0001-amend-1" "$H" \
	amend "$KISA" "$T/amend-kisa.json" --wait

step "refused: an amendment naming a release that does not exist (amendsReleaseID)"
jsonfile "$T/amend-kisa-bad.json" <<'EOF'
{"tender": {"description": "Another change",
            "amendments": [{"id": "kisa-amend-2", "amendsReleaseID": "kisa-no-such-release",
                            "rationale": "Points at a release that was never published"}]}}
EOF
refused_with -32005 "amendsReleaseID.*kisa-no-such-release|kisa-no-such-release.*(not|no )" "$H" \
	amend "$KISA" "$T/amend-kisa-bad.json" --wait

step "no refused record reached the ledger"
ok "$H" get "$KISA"
CHECK='
r = d["releases"]
assert [x["kind"] for x in r] == ["tender", "tenderAmendment"], r
am = r[1]["release"]["tender"]["amendments"][0]
assert am["amendsReleaseID"] == r[0]["release"]["id"], (am, r[0]["release"]["id"])
assert d["compiled"]["tender"]["description"].endswith("briefing on 2020-02-10."), d["compiled"]["tender"]
' check
ok "$H" get "$SEJONG"
CHECK='assert len(d["releases"]) == 2 and "awards" not in d["compiled"], d' check

# ---------------------------------------------------------------- list filters
step "publish the other samples and a goods tender with a Korean title"
ok "$H" publish tender "$SAMPLES/tender-private.json" --wait
ok "$H" publish tender "$SAMPLES/tender-gangwon.json" --wait
jsonfile "$T/tender-goods.json" <<'EOF'
{"ocid": "ocds-kr2020-jeju-0002",
 "tender": {"id": "jeju-2020-0002",
            "title": "제주 전기차 배터리 이력관리 시스템 서버 및 저장장치 구매 (물품)",
            "status": "active",
            "value": {"amount": 98765432.10, "currency": "KRW"},
            "procurementMethod": "open",
            "mainProcurementCategory": "goods",
            "tenderPeriod": {"startDate": "2020-04-06T14:00:00+09:00", "endDate": "2020-04-17T18:00:00+09:00"}}}
EOF
ok "$H" publish tender "$T/tender-goods.json" --wait
ALL6="$JEJU $SEJONG $KISA ocds-kr2020-kisa-0002 ocds-kr2020-gw-0001 ocds-kr2020-jeju-0002"

# list_is ARGS... -- OCIDS...: list ARGS (json) must hold exactly OCIDS (any order) in the
# documented order: newest first (first-release height descending), except that a list
# filtered only by --since/--until walks the date index: tender date descending, then height.
list_is() {
	local args=() want=() order=height a
	while (($#)) && [[ "$1" != "--" ]]; do
		args+=("$1")
		shift
	done
	shift
	want=("$@")
	for a in "${args[@]}"; do
		[[ "$a" == --since || "$a" == --until ]] && order="date"
	done
	for a in "${args[@]}"; do
		[[ "$a" == --agency || "$a" == --status || "$a" == --category || "$a" == --method ]] && order="height"
	done
	ok "$H" list "${args[@]}"
	CHECK='
from datetime import datetime
def instant(t):
    s = (t.get("tenderPeriod") or {}).get("startDate") or t["date"]
    return datetime.fromisoformat(s.replace("Z", "+00:00"))
got = [t["ocid"] for t in d]
order, want = sys.argv[2], sys.argv[3:]
assert sorted(got) == sorted(want), ("got", got, "want", sorted(want))
if order == "height":
    keys = [t["height"] for t in d]
else:
    keys = [(instant(t), t["height"]) for t in d]
assert keys == sorted(keys, reverse=True), ("not in " + order + " order, newest first", got, keys)
' check "$order" "${want[@]}"
}

step "list (all) and list --status"
# shellcheck disable=SC2086 # ocids hold no spaces
list_is -- $ALL6
list_is --status active -- "$JEJU" "$KISA" ocds-kr2020-kisa-0002 ocds-kr2020-gw-0001 ocds-kr2020-jeju-0002
list_is --status cancelled -- "$SEJONG"
list_is --status complete --

step "list --category, --method"
# shellcheck disable=SC2086
list_is --category services -- $JEJU $SEJONG $KISA ocds-kr2020-kisa-0002 ocds-kr2020-gw-0001
list_is --category goods -- ocds-kr2020-jeju-0002
list_is --method selective -- ocds-kr2020-kisa-0002
list_is --method open --category goods -- ocds-kr2020-jeju-0002
list_is --method selective --status cancelled --

step "list --agency (name, key; unknown agency refused)"
# shellcheck disable=SC2086
list_is --agency "$NAME" -- $ALL6
# shellcheck disable=SC2086
list_is --agency "$VALIDATOR" -- $ALL6
refused_with -32602 "agency" "$H" list --agency "Nobody at all"

step "list --since/--until (tender period start)"
# starts: kisa, kisa-0002 2020-02-03T09:00+09:00 (= 00:00Z); gangwon 03-02; jeju 03-09; sejong 03-16;
# goods 2020-04-06T14:00+09:00 (= 05:00Z)
list_is --since 2020-03-01 --until 2020-03-10 -- ocds-kr2020-gw-0001 "$JEJU"
list_is --since 2020-03-09T09:00:00+09:00 -- "$JEJU" "$SEJONG" ocds-kr2020-jeju-0002
list_is --since 2020-03-09T09:00:01+09:00 -- "$SEJONG" ocds-kr2020-jeju-0002
list_is --until 2020-02-28 -- "$KISA" ocds-kr2020-kisa-0002
list_is --since 2020-04-01 --category services --
step "list --until compares instants: 2020-02-03 (00:00Z) includes a start of 2020-02-03T09:00:00+09:00"
list_is --until 2020-02-03 -- "$KISA" ocds-kr2020-kisa-0002
list_is --until 2020-02-02T23:59:59Z --
step "list --until DATE includes the whole of that day (UTC); --since DATE starts at its beginning"
# shellcheck disable=SC2086
list_is --until 2020-04-06 -- $ALL6
list_is --since 2020-04-06 --until 2020-04-06 -- ocds-kr2020-jeju-0002
list_is --since 2020-04-07 --
refused_with -32602 "since|until|date" "$H" list --since "last tuesday"

step "list --format table"
ok "$H" list --format table
"$PY" - "$OUT" >"$T/check.out" 2>&1 <<'EOF' || { cat "$T/check.out" >&2; fail "the table is not as expected"; }
import sys, unicodedata
def width(s):
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
lines = open(sys.argv[1], encoding="utf-8").read().rstrip("\n").split("\n")
head = lines[0]
cols = ["OCID", "TITLE", "STATUS", "AGENCY", "VALUE", "DATE"]
assert head.split() == cols, head
assert len(lines) == 1 + 6, lines
starts = [head.index(c) for c in cols]
byocid = {}
for ln in lines[1:]:
    ocid = ln.split()[0]
    byocid[ocid] = ln
    # every cell starts at its header's column: the status is "active" or "cancelled" at STATUS
    for st in ("active", "cancelled"):
        i = ln.find("  " + st + "  ")
        if i >= 0:
            assert width(ln[:i + 2]) == starts[2], ("STATUS column misaligned", ln)
    assert "Jeju Special Self-Governing Province" in ln, ln
assert sorted(byocid) == sorted(["ocds-kr2020-jeju-0001", "ocds-kr2020-sj-0001", "ocds-kr2020-kisa-0001",
    "ocds-kr2020-kisa-0002", "ocds-kr2020-gw-0001", "ocds-kr2020-jeju-0002"]), byocid.keys()
j = byocid["ocds-kr2020-jeju-0001"]
assert "712500000.50 KRW" in j, j
assert "2020-03-09" in j, j
assert "Blockchain-based electric vehicle batte" in j, j
assert "management system" not in j, ("title not cut at about 40 columns", j)
assert "active" in j, j
assert "cancelled" in byocid["ocds-kr2020-sj-0001"], byocid["ocds-kr2020-sj-0001"]
g = byocid["ocds-kr2020-jeju-0002"]
assert "98765432.10 KRW" in g, g
assert "\u2026" in g and "제주 전기차" in g and "(물품)" not in g, ("Korean title not cut on a character", g)
# the AGENCY column starts at the same display column in every row (after a wide title)
for ln in lines[1:]:
    i = ln.index("Jeju Special")
    assert width(ln[:i]) == starts[3], ("AGENCY column misaligned", ln, width(ln[:i]), starts[3])
print("ok")
EOF

step "list --format table --limit 2 prints the next cursor on stderr"
ok "$H" list --format table --limit 2
[[ $(wc -l <"$OUT") == 3 ]] || fail "a 2-tender page is not a header and 2 lines"
grep -q -- '--cursor ' "$ERR" || fail "no next cursor hint on stderr"

# ---------------------------------------------------------------- pagination
step "list --limit 2 --cursor pages through everything exactly once (a publish in between)"
ok "$H" list
FULL=$(val '" ".join(t["ocid"] for t in d)')
CURSOR=""
: >"$T/pages"
PAGES=0
while :; do
	if [[ -z "$CURSOR" ]]; then
		ok "$H" list --limit 2 --with-cursor
	else
		ok "$H" list --limit 2 --with-cursor --cursor "$CURSOR"
	fi
	CHECK='assert isinstance(d["tenders"], list) and len(d["tenders"]) <= 2, d
assert d["next_cursor"] is None or isinstance(d["next_cursor"], str) and d["next_cursor"], d' check
	val '"\n".join(t["ocid"] for t in d["tenders"])' >>"$T/pages"
	CURSOR=$(val 'd["next_cursor"] or ""')
	PAGES=$((PAGES + 1))
	((PAGES < 10)) || fail "more than 10 pages for 6 tenders"
	if ((PAGES == 1)); then
		# A tender published after the first page must not shift the later pages.
		sed -e 's/ocds-kr2020-jeju-0001/ocds-kr2020-page-0001/' -e 's/"jeju-2020-0001"/"page-2020-0001"/' \
			"$SAMPLES/tender-jeju.json" >"$T/tender-page.json"
		ok "$H" publish tender "$T/tender-page.json" --wait
	fi
	[[ -n "$CURSOR" ]] || break
done
"$PY" - "$T/pages" "$FULL" >"$T/check.out" 2>&1 <<'EOF' || { cat "$T/check.out" >&2; fail "pagination repeated or skipped a tender"; }
import sys
got = [x for x in open(sys.argv[1]).read().split("\n") if x]
full = sys.argv[2].split()
assert got == full, ("pages", got, "unpaged", full)
print("ok")
EOF
((PAGES == 3 || PAGES == 4)) || fail "6 tenders in pages of 2 took $PAGES pages, expected 3 (or 4 with an empty last page)"

step "paging a filter: --status active --limit 2"
CURSOR=""
: >"$T/pages"
for ((i = 0; i < 10; i++)); do
	if [[ -z "$CURSOR" ]]; then
		ok "$H" list --status active --limit 2 --with-cursor
	else
		ok "$H" list --status active --limit 2 --with-cursor --cursor "$CURSOR"
	fi
	val '"\n".join(t["ocid"] + " " + t["status"] for t in d["tenders"])' >>"$T/pages"
	CURSOR=$(val 'd["next_cursor"] or ""')
	[[ -n "$CURSOR" ]] || break
done
"$PY" - "$T/pages" >"$T/check.out" 2>&1 <<'EOF' || { cat "$T/check.out" >&2; fail "filtered paging is wrong"; }
import sys
got = [x.split() for x in open(sys.argv[1]).read().split("\n") if x]
ocids = [g[0] for g in got]
assert all(g[1] == "active" for g in got), got
assert len(ocids) == len(set(ocids)) == 6, ocids  # 5 active samples + the page tender
assert "ocds-kr2020-sj-0001" not in ocids, ocids
print("ok")
EOF
refused_with -32602 "cursor" "$H" list --limit 2 --cursor "not-a-cursor"
refused_with -32602 "limit" "$H" list --limit 0

# ---------------------------------------------------------------- watch
# watch_check FILE...: every line is a release notification; (height, index) strictly increasing
# within each file; prints nothing, fails on a problem.
watch_lines_ok() {
	"$PY" - "$@" >"$T/check.out" 2>&1 <<'EOF' || { cat "$T/check.out" >&2; fail "watch output is malformed"; }
import json, sys, re
HEX = re.compile(r"^[0-9a-f]{64}$")
for name in sys.argv[1:]:
    prev = None
    for n, line in enumerate(open(name, encoding="utf-8")):
        d = json.loads(line)
        for k in ("height", "index", "block_records", "record_id", "ocid", "release_id", "kind", "time",
                  "agency", "agency_name", "release"):
            assert k in d, (name, n, k, d)
        assert HEX.match(d["record_id"]) and HEX.match(d["agency"]), d
        assert 0 <= d["index"] < d["block_records"], d
        assert d["release"]["ocid"] == d["ocid"] and d["release"]["id"] == d["release_id"], d
        key = (d["height"], d["index"])
        assert prev is None or key > prev, ("out of order", name, prev, key)
        prev = key
print("ok")
EOF
}

NREC=$(records "$H")
step "watch --from 1 replays all $NREC releases, then streams a new one"
"$TENDERCTL" --socket "$SOCK" watch --from 1 >"$T/w1" 2>"$T/w1.err" &
W1=$!
WATCH_PIDS+=("$W1")
wait_until 15 "watch --from 1 did not replay $NREC releases" file_lines "$T/w1" "$NREC"
grep -q '"amount":712500000.50' "$T/w1" || fail "the watch stream lost the exact amount text 712500000.50"
sed -e 's/ocds-kr2020-jeju-0001/ocds-kr2020-watch-0001/' -e 's/"jeju-2020-0001"/"watch-2020-0001"/' \
	"$SAMPLES/tender-jeju.json" >"$T/tender-w1.json"
ok "$H" publish tender "$T/tender-w1.json" --wait
wait_until 10 "the new tender did not arrive on the watch stream" lines_with "$T/w1" '"ocid":"ocds-kr2020-watch-0001"' 1
kill -0 "$W1" 2>/dev/null || fail "the watcher exited: $(cat "$T/w1.err")"
watch_lines_ok "$T/w1"

step "watch: SIGINT stops the watcher with exit 0"
kill -INT "$W1"
wait_until 5 "the watcher did not stop on SIGINT" bash -c "! kill -0 $W1 2>/dev/null"
wait "$W1"
RC=$?
WATCH_PIDS=()
((RC == 0)) || fail "watch exited $RC on SIGINT, expected 0 (stderr: $(cat "$T/w1.err"))"
[[ ! -s "$T/w1.err" ]] || fail "watch printed on stderr when interrupted: $(cat "$T/w1.err")"

step "publish two more while no watcher runs; a live watcher (no --from) sees only new blocks"
"$TENDERCTL" --socket "$SOCK" watch >"$T/w3" 2>"$T/w3.err" &
W3=$!
WATCH_PIDS+=("$W3")
sleep 0.3 # let the subscription reach the node before the next block
for k in 2 3; do
	sed -e "s/ocds-kr2020-jeju-0001/ocds-kr2020-watch-000$k/" -e "s/\"jeju-2020-0001\"/\"watch-2020-000$k\"/" \
		"$SAMPLES/tender-jeju.json" >"$T/tender-w$k.json"
	ok "$H" publish tender "$T/tender-w$k.json" --wait
done
wait_until 10 "the live watcher did not see both new tenders" lines_with "$T/w3" '"ocid":"ocds-kr2020-watch-000' 2
sleep 0.3
[[ $(wc -l <"$T/w3") == 2 ]] || fail "the live watcher printed $(wc -l <"$T/w3") lines, expected exactly the 2 new releases"
kill -INT "$W3"
wait "$W3"
WATCH_PIDS=()

step "watch: resume with --from per the resume rule; nothing missing, nothing repeated"
FROM=$("$PY" - "$T/w1" <<'EOF'
import json, sys
done = 0
for line in open(sys.argv[1]):
    d = json.loads(line)
    if d["index"] == d["block_records"] - 1:
        done = max(done, d["height"])
print(done + 1)
EOF
)
[[ "$FROM" =~ ^[0-9]+$ ]] || fail "could not compute the resume height"
NREC=$(records "$H")
"$TENDERCTL" --socket "$SOCK" watch --from "$FROM" >"$T/w2" 2>"$T/w2.err" &
W2=$!
WATCH_PIDS+=("$W2")
wait_until 10 "the resumed watcher did not reach the last tender" lines_with "$T/w2" '"ocid":"ocds-kr2020-watch-0003"' 1
sleep 0.3
watch_lines_ok "$T/w2"
ok "$H" status
TOP=$(val 'd["height"]')
: >"$T/chain-ids"
for ((h = 1; h <= TOP; h++)); do
	ok "$H" block "$h"
	val '"\n".join(d["records"])' >>"$T/chain-ids"
done
"$PY" - "$T/w1" "$T/w2" "$T/chain-ids" <<'EOF' >"$T/check.out" 2>&1 || { cat "$T/check.out" >&2; fail "watch resume missed or repeated a release"; }
import json, sys
a = [json.loads(l)["record_id"] for l in open(sys.argv[1])]
b = [json.loads(l)["record_id"] for l in open(sys.argv[2])]
chain = [x for x in open(sys.argv[3]).read().split() if x]
assert len(a) == len(set(a)), "repeat in the first stream"
assert not set(a) & set(b), ("repeated across the disconnect", set(a) & set(b))
assert a + b == chain, ("streams", len(a), len(b), "chain", len(chain), [x for x in chain if x not in a + b])
print("ok")
EOF
[[ $(($(wc -l <"$T/w1") + $(wc -l <"$T/w2"))) == "$NREC" ]] || fail "the two streams do not add up to $NREC records"
kill -INT "$W2"
wait "$W2"
RC=$?
WATCH_PIDS=()
((RC == 0)) || fail "the resumed watcher exited $RC on SIGINT, expected 0"

step "watch: an error answer for a bad from_height exits 1"
ctl "$H" --timeout 5 call tender.watch '{"from_height": "one"}'
((RC == 1)) || fail "tender.watch with a string from_height exited $RC, expected 1"
grep -q -- "(code -32602)" "$ERR" || fail "tender.watch with a bad from_height is not -32602"

# ---------------------------------------------------------------- export
step "export: a release package that validates against the OCDS schema"
ok "$H" export --out "$T/releases.json"
[[ ! -s "$OUT" ]] || fail "export --out printed the package on stdout too"
"$PY" "$VALIDATE" "$SCHEMAS" release "$T/releases.json" >"$OUT" 2>"$ERR" ||
	{ RC=$?; fail "the release package does not validate"; }
grep -q '712500000\.50' "$T/releases.json" || fail "the release package does not hold 712500000.50 verbatim"
cp "$T/releases.json" "$OUT"
CHECK='
r = d["releases"]
assert d["version"] == "1.1", d["version"]
assert len(r) == int(sys.argv[2]), (len(r), sys.argv[2])
assert [x["id"] for x in r if x["ocid"] == "ocds-kr2020-jeju-0001"][:1], r
tags = [x["tag"] for x in r if x["ocid"] == "ocds-kr2020-jeju-0001"]
assert tags == [["tender"], ["tenderAmendment"], ["award"]], tags
' check "$NREC"

step "export --records: a record package that validates, with compiled releases"
ok "$H" export --records --out "$T/records.json"
"$PY" "$VALIDATE" "$SCHEMAS" record "$T/records.json" >"$OUT" 2>"$ERR" ||
	{ RC=$?; fail "the record package does not validate"; }
grep -q '712500000\.50' "$T/records.json" || fail "the record package does not hold 712500000.50 verbatim"
cp "$T/records.json" "$OUT"
CHECK='
recs = {r["ocid"]: r for r in d["records"]}
assert len(recs) == len(d["records"]) == 10, sorted(recs)
j = recs["ocds-kr2020-jeju-0001"]
assert len(j["releases"]) == 3, j["releases"]
c = j["compiledRelease"]
assert c["tender"]["tenderPeriod"]["endDate"] == "2020-04-10T18:00:00+09:00", c["tender"]
assert str(c["tender"]["value"]["amount"]) == "712500000.50", c["tender"]["value"]
assert c["awards"][0]["suppliers"][0]["name"] == "LG CNS", c["awards"]
assert recs["ocds-kr2020-sj-0001"]["compiledRelease"]["tender"]["status"] == "cancelled"
' check

step "export --from/--to: only the releases of those blocks"
ok "$H" export --from "$J2H" --to "$J3H"
CHECK='
assert all(x["ocid"] == "ocds-kr2020-jeju-0001" for x in d["releases"]), ids
assert [x["tag"] for x in d["releases"]] == [["tenderAmendment"], ["award"]], [x["tag"] for x in d["releases"]]
' check "$J2H" "$J3H"
cp "$OUT" "$T/part.json"
"$PY" "$VALIDATE" "$SCHEMAS" release "$T/part.json" >"$OUT" 2>"$ERR" ||
	{ RC=$?; fail "the partial release package does not validate"; }
refused_with "-32602|-32002" "5|from|to|height|block" "$H" export --from 5 --to 3

step "the validator rejects a broken package (so the checks above can fail)"
sed 's/"tag": \[/"tag": ["notATag", /' "$T/releases.json" >"$T/broken.json"
"$PY" "$VALIDATE" "$SCHEMAS" release "$T/broken.json" >"$OUT" 2>"$ERR" &&
	fail "ocds_validate.py accepted a release with the tag notATag"
grep -q notATag "$ERR" || fail "ocds_validate.py did not name the bad tag"

# ---------------------------------------------------------------- socket robustness
step "20 concurrent tenderctl clients"
pids=()
for ((i = 0; i < 20; i++)); do
	timeout 30 "$TENDERCTL" --socket "$SOCK" status >"$T/par$i" 2>&1 &
	pids+=($!)
done
for i in "${!pids[@]}"; do
	wait "${pids[$i]}" || { cp "$T/par$i" "$OUT"; fail "concurrent client $i failed"; }
	grep -q '"chain_id"' "$T/par$i" || { cp "$T/par$i" "$OUT"; fail "concurrent client $i got no status"; }
done

step "raw socket: malformed line, unknown method, wrong params, oversize line; the node stays usable"
"$PY" - "$SOCK" >"$OUT" 2>"$ERR" <<'EOF'
import json, socket, sys

class Conn:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(10)
        self.s.connect(path)
        self.buf = b""
    def send(self, b):
        self.s.sendall(b)
    def line(self):
        while b"\n" not in self.buf:
            c = self.s.recv(65536)
            if not c:
                raise AssertionError("connection closed, buffered %r" % self.buf[:200])
            self.buf += c
        l, self.buf = self.buf.split(b"\n", 1)
        return json.loads(l)

path = sys.argv[1]
# A client that sends half a request and stalls must not block the others.
stall = Conn(path)
stall.send(b'{"jsonrpc":"2.0","id":1,"meth')

c = Conn(path)
c.send(b"this is not json {{{\n")
d = c.line()
assert d["jsonrpc"] == "2.0" and d["error"]["code"] == -32700 and d.get("id") is None, d
c.send(b'{"jsonrpc":"2.0","id":2,"method":"no.such.method","params":{}}\n')
d = c.line()
assert d["id"] == 2 and d["error"]["code"] == -32601, d
c.send(b'{"jsonrpc":"2.0","id":3,"method":"tender.get","params":{"ocid":5}}\n')
d = c.line()
assert d["id"] == 3 and d["error"]["code"] == -32602, d
c.send(b'{"jsonrpc":"2.0","id":4,"method":"tender.list","params":{"limit":"ten"}}\n')
d = c.line()
assert d["id"] == 4 and d["error"]["code"] == -32602, d
c.send(b'{"jsonrpc":"2.0","id":5,"method":"ledger.export","params":{"from":"x"}}\n')
d = c.line()
assert d["id"] == 5 and d["error"]["code"] == -32602, d
# A batch of three invalid entries: one -32600 per entry (JSON-RPC 2.0, section 7).
c.send(b'[1,2,3]\n')
d = c.line()
assert isinstance(d, list) and len(d) == 3 and all(a["id"] is None and a["error"]["code"] == -32600 for a in d), d
# Two requests in one write, answered in order on the same connection.
c.send(b'{"jsonrpc":"2.0","id":6,"method":"status","params":{}}\n{"jsonrpc":"2.0","id":7,"method":"tender.get","params":{"ocid":"ocds-kr2020-jeju-0001"}}\n')
d = c.line()
assert d["id"] == 6 and d["result"]["height"] >= 1, d
d = c.line()
assert d["id"] == 7 and d["result"]["ocid"] == "ocds-kr2020-jeju-0001", d

# A request line over the 1 MiB cap: an error answer, then the node serves new connections.
big = Conn(path)
try:
    big.send(b'{"jsonrpc":"2.0","id":9,"method":"status","params":{"pad":"' + b"x" * (1024 * 1024 + 10) + b'"}}\n')
except (BrokenPipeError, ConnectionResetError):
    pass
try:
    d = big.line()
    assert "error" in d, d
    print("oversize answered with", d["error"]["code"])
except (ConnectionResetError, AssertionError) as e:
    raise AssertionError("no JSON-RPC error for an oversize line: %s" % e)

c2 = Conn(path)
c2.send(b'{"jsonrpc":"2.0","id":10,"method":"status","params":{}}\n')
d = c2.line()
assert d["id"] == 10 and "result" in d, d
# The first connection still works after all of that.
c.send(b'{"jsonrpc":"2.0","id":11,"method":"status","params":{}}\n')
d = c.line()
assert d["id"] == 11 and "result" in d, d
stall.send(b'od":"status","params":{}}\n')
d = stall.line()
assert d["id"] == 1 and "result" in d, d
print("ok")
EOF
RC=$?
((RC == 0)) || fail "raw socket exchange failed"
tn_alive "$H" || fail "tenderd died after malformed input"

# ---------------------------------------------------------------- SIGHUP, shutdown
step "SIGHUP reopens the log file"
mv "$H/tenderd.log" "$H/tenderd.log.1"
tn_pid "$H"
kill -HUP "$TN_P"
wait_until 5 "no new log file after SIGHUP" test -f "$H/tenderd.log"
sed -e 's/ocds-kr2020-jeju-0001/ocds-kr2020-hup-0001/' -e 's/"jeju-2020-0001"/"hup-2020-0001"/' \
	"$SAMPLES/tender-jeju.json" >"$T/tender-hup.json"
ok "$H" publish tender "$T/tender-hup.json" --wait
HUPH=$(val 'd["height"]')
wait_until 5 "the reopened log does not show block $HUPH" grep -q "block $HUPH" "$H/tenderd.log"
tn_alive "$H" || fail "tenderd died on SIGHUP"

step "a watcher sees the node stop: exit 2"
"$TENDERCTL" --socket "$SOCK" watch >"$T/w4" 2>"$T/w4.err" &
W4=$!
WATCH_PIDS+=("$W4")
sleep 0.3
tn_stop "$H"
wait_until 10 "the watcher did not notice the node stopped" bash -c "! kill -0 $W4 2>/dev/null"
wait "$W4"
RC=$?
WATCH_PIDS=()
((RC == 2)) || fail "watch exited $RC when the node went away, expected 2 (stderr: $(cat "$T/w4.err"))"

# ================================================================ part 2: two agencies
step "2-node testnet: start"
tn_create 2
tn_start 0
tn_start 1 --log-format json
wait_until 30 "the two nodes did not connect" connected_all 1 0 1
ok 0 status
A0=$(val 'd["node"]["name"]')
K0=$(val 'd["node"]["pub_key"]')
ok 1 status
A1=$(val 'd["node"]["name"]')
K1=$(val 'd["node"]["pub_key"]')
[[ "$K0" != "$K1" ]] || fail "both nodes have the same key"
grep -q "127.0.0.1:$NET_PORT" "$NET/node0/tenderd.log" || fail "node0's startup log does not name its listen address"

step "node1 logs JSON lines (--log-format json)"
"$PY" - "$NET/node1/tenderd.log" "$NET/node1/tenderd.sock" >"$TN_DIR/check.out" 2>&1 <<'EOF' || { cat "$TN_DIR/check.out" >&2; fail "node1's log is not JSON lines"; }
import json, sys
n = 0
sock = False
for line in open(sys.argv[1]):
    if line.startswith("=== "):
        continue
    d = json.loads(line)
    assert "msg" in d and "level" in d, d
    sock = sock or sys.argv[2] in d["msg"]
    n += 1
assert n > 0 and sock, (n, sock)
print("ok")
EOF

step "node0 publishes a tender; it reaches node1"
sed -e 's/ocds-kr2020-jeju-0001/ocds-kr2020-two-0001/' -e 's/"jeju-2020-0001"/"two-2020-0001"/' \
	"$SAMPLES/tender-jeju.json" >"$T/tender-two.json"
ok 0 publish tender "$T/tender-two.json" --wait
wait_until 20 "node1 does not have node0's tender" has_all ocds-kr2020-two-0001 1

step "refused on node1: only the agency that published a tender may amend, cancel or award it"
RULE="only the (publishing )?agency|agency that published"
refused_with -32005 "$RULE" 1 amend ocds-kr2020-two-0001 "$SAMPLES/amend-jeju.json" --wait
refused_with -32005 "$RULE" 1 cancel ocds-kr2020-two-0001 --reason "not mine to cancel" --wait
sed 's/ocds-kr2020-jeju-0001/ocds-kr2020-two-0001/' "$SAMPLES/award-jeju.json" >"$T/award-two.json"
refused_with -32005 "$RULE" 1 publish award "$T/award-two.json" --wait

step "node0 (the publisher) may amend it; node1 sees the amendment"
ok 0 amend ocds-kr2020-two-0001 "$SAMPLES/amend-jeju.json" --wait
wait_until 20 "node1 does not see the amendment" bash -c \
	"'$TENDERCTL' --socket '$NET/node1/tenderd.sock' get ocds-kr2020-two-0001 | grep -q tenderAmendment"

step "list --agency on a chain of two agencies"
sed -e 's/ocds-kr2020-jeju-0001/ocds-kr2020-two-0002/' -e 's/"jeju-2020-0001"/"two-2020-0002"/' \
	"$SAMPLES/tender-jeju.json" >"$T/tender-two2.json"
ok 1 publish tender "$T/tender-two2.json" --wait
wait_until 20 "node0 does not have node1's tender" has_all ocds-kr2020-two-0002 0
for spec in "$A1 ocds-kr2020-two-0002" "$K1 ocds-kr2020-two-0002" "$A0 ocds-kr2020-two-0001" "$K0 ocds-kr2020-two-0001"; do
	who=${spec% *}
	only=${spec##* }
	ok 0 list --agency "$who"
	CHECK='assert [t["ocid"] for t in d] == [sys.argv[2]], ([t["ocid"] for t in d], sys.argv[2])' check "$only"
done
ok 0 list
CHECK='assert [t["ocid"] for t in d] == ["ocds-kr2020-two-0002", "ocds-kr2020-two-0001"], d' check

step "2-node testnet: clean stop"
tn_stop_all
no_sanitizer_reports

echo "e2e_lifecycle: all steps passed"
