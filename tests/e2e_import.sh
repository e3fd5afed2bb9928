#!/usr/bin/env bash
# End-to-end test of tenderctl import: tests/e2e_import.sh BIN_DIR DATA_DIR
#
# Generates (python3) a release package of 10,000 importable releases, shuffled: per
# ocid a tender, an amendment and an award or a cancellation, each with its own id and
# a 2019 date with a +09:00 zone, plus six to report: another publisher's ocid prefix,
# a planning, a contract and a tenderUpdate release, a release id the package repeats
# and a release the node's validation refuses. Against a real one-validator tenderd:
# - --dry-run reports them and publishes nothing;
# - the import publishes the 10,000 (its rate is printed: TD_IMPORT_RATE_OUT=FILE keeps
#   the summary), reports the six with their reasons and exits 1; the ledger then
#   holds exactly the package's releases with their ids and dates, each ocid's in date
#   order, amounts exact, and an exported block range validates as OCDS;
# - a second run and a second dry run skip the 10,000;
# - an import killed (kill -9) midway is resumed by a second run: what the first
#   committed is skipped, the rest imported, nothing twice;
# - on a terminal (script(1) gives one) the progress is a bar, else plain lines;
# - tender.publish keeps a valid "date" as written and refuses any other with -32602;
# - on a node whose mempool holds 40 records, an import of 600 is held back and retried;
# - the release packages of the sample lifecycles (DATA_DIR/merge) import with their ids
#   and dates, and the node compiles each as it compiled the original (*-node-compiled.json);
# - usage errors exit 3, a bad package 1, no node 2.
# Needs bash, coreutils, util-linux script and Debian's /usr/bin/python3 with
# python3-jsonschema.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
BIN=$(cd "$1" && pwd) || exit 2
DATA=$(cd "$2" && pwd) || exit 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TENDERD="$BIN/tenderd"
TENDERCTL="$BIN/tenderctl"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
WAIT_S=${TD_E2E_WAIT:-10}
N=10000

TMP=$(mktemp -d /tmp/td-e2ei.XXXXXX) || exit 1
H="$TMP/home"
SOCK="$H/tenderd.sock"
LOG="$TMP/tenderd.log"
OUT="$TMP/out"
ERR="$TMP/err"
PID=""
IPID=""
RC=0
STEP=start
: >"$OUT"
: >"$ERR"
: >"$LOG"

cleanup() {
	for p in "$IPID" "$PID"; do
		if [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null; then
			kill -9 "$p" 2>/dev/null
			wait "$p" 2>/dev/null
		fi
	done
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
		tail -c 3000 "$ERR"
		echo
		if [[ -s "$LOG" ]]; then
			echo "--- daemon log (tail):"
			tail -n 30 "$LOG"
		fi
	} >&2
	exit 1
}

# ctl ARGS...: tenderctl on the node's socket; stdout in $OUT, stderr in $ERR, exit code in $RC.
ctl() {
	timeout 240 "$TENDERCTL" --socket "$SOCK" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC != 124)) || fail "tenderctl $* did not finish within 240 s"
}

# expect CODE ARGS...: ctl, and the exit code must be CODE.
expect() {
	local want=$1
	shift
	ctl "$@"
	((RC == want)) || fail "tenderctl $* exited $RC, expected $want"
}

# summary NAME: the number on the summary line "NAME: N ..." of the last command.
summary() {
	sed -n "s/^$1: \([0-9]*\).*/\1/p" "$OUT" | head -n 1
}

# counts WOULD_OR_IMPORTED SKIPPED REFUSED: the last summary says so.
counts() {
	local first=imported
	grep -q '^dry run of' "$OUT" && first="would import"
	[[ "$(summary "$first")" == "$1" ]] || fail "$first: $(summary "$first"), expected $1"
	[[ "$(summary skipped)" == "$2" ]] || fail "skipped: $(summary skipped), expected $2"
	[[ "$(summary refused)" == "$3" ]] || fail "refused: $(summary refused), expected $3"
}

# records: the node's committed record count.
records() {
	timeout 30 "$TENDERCTL" --socket "$SOCK" status 2>/dev/null |
		"$PY" -c 'import json, sys; print(json.load(sys.stdin)["records"])'
}

for b in "$TENDERD" "$TENDERCTL"; do
	[[ -x "$b" ]] || fail "$b is missing or not executable"
done

# gen.py N NAME SEED: a release package of N importable releases of ocids
# ocds-kr2020-NAME-KKKKK (tender, amendment, then award, or every tenth a cancellation),
# shuffled; with "extras", the six releases to report.
cat >"$TMP/gen.py" <<'EOF'
import datetime, json, random, sys
n, name, seed, extras = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), len(sys.argv) > 4
zone = datetime.timezone(datetime.timedelta(hours=9))
base = 1546300800  # 2019-01-01T00:00:00Z
def iso(t):
    return datetime.datetime.fromtimestamp(t, zone).strftime("%Y-%m-%dT%H:%M:%S+09:00")
rels, k = [], 0
while len(rels) < n:
    ocid, t0 = "ocds-kr2020-%s-%05d" % (name, k), base + k * 600
    steps = [
        {"ocid": ocid, "id": ocid + "-t", "date": iso(t0), "tag": ["tender"], "initiationType": "tender",
         "tender": {"id": "T%d" % k, "title": "Imported tender %d" % k, "status": "active",
                    "value": {"amount": "@%d.50@" % (1000 + k), "currency": "KRW"},
                    "tenderPeriod": {"startDate": iso(t0), "endDate": iso(t0 + 86400 * 20)}}},
        {"ocid": ocid, "id": ocid + "-a", "date": iso(t0 + 86400 * 3), "tag": ["tenderAmendment"],
         "tender": {"tenderPeriod": {"endDate": iso(t0 + 86400 * 30)},
                    "amendments": [{"id": "am-%d" % k, "date": iso(t0 + 86400 * 3), "rationale": "more time",
                                    "amendsReleaseID": ocid + "-t", "releaseID": ocid + "-a"}]}},
    ]
    if k % 10 == 9:
        steps.append({"ocid": ocid, "id": ocid + "-c", "date": iso(t0 + 86400 * 40), "tag": ["tenderCancellation"],
                      "tender": {"status": "cancelled", "statusDetails": "no budget"}})
    else:
        steps.append({"ocid": ocid, "id": ocid + "-w", "date": iso(t0 + 86400 * 40), "tag": ["award"],
                      "awards": [{"id": "aw-%d" % k, "status": "active", "date": iso(t0 + 86400 * 40),
                                  "value": {"amount": 900 + k, "currency": "KRW"},
                                  "suppliers": [{"id": "S%d" % (k % 50), "name": "Supplier %d" % (k % 50)}]}]})
    rels += steps[:n - len(rels)]
    k += 1
if extras:
    p = "ocds-kr2020-%s" % name
    rels += [
        {"ocid": "ocds-zz9999-other-1", "id": "other-1", "date": iso(base + 50), "tag": ["tender"],
         "tender": {"id": "X", "title": "Another publisher's tender", "status": "active"}},
        {"ocid": p + "-plan", "id": "plan-1", "date": iso(base + 60), "tag": ["planning"],
         "planning": {"rationale": "next year"}},
        {"ocid": p + "-00000", "id": "contract-1", "date": iso(base + 86400 * 50), "tag": ["contract"],
         "contracts": [{"id": "c1", "awardID": "aw-0"}]},
        {"ocid": p + "-00001", "id": "update-1", "date": iso(base + 86400 * 5), "tag": ["tenderUpdate"],
         "tender": {"description": "an update without an amendment"}},
        {"ocid": p + "-00002", "id": p + "-00002-w", "date": iso(base + 86400 * 60), "tag": ["award"],
         "awards": [{"id": "aw-again", "status": "active"}]},
        {"ocid": p + "-bad", "id": "bad-1", "date": iso(base + 70), "tag": ["tender"],
         "tender": {"id": "B", "title": "Bad status", "status": "bogus"}},
    ]
random.Random(seed).shuffle(rels)
text = json.dumps({"uri": "https://example.org/old-system/2019.json", "version": "1.1",
                   "publishedDate": "2020-01-01T00:00:00Z", "publisher": {"name": "Old e-procurement system"},
                   "releases": rels}, ensure_ascii=False)
# amounts with their exact text (json.dumps would print a float)
print(text.replace('"@', "").replace('@"', ""))
EOF

# ---- offline -------------------------------------------------------------------

step "generate a package of $N releases (+6 to report)"
"$PY" "$TMP/gen.py" "$N" imp 7 extras >"$TMP/pkg.json" || fail "gen.py"
"$PY" -c 'import json, sys; d = json.load(open(sys.argv[1])); assert len(d["releases"]) == int(sys.argv[2]) + 6' \
	"$TMP/pkg.json" "$N" || fail "the package does not hold $N + 6 releases"

step "usage errors and bad packages (no node needed for these)"
SOCK="$TMP/no-node.sock"
expect 3 import
expect 3 import a.json b.json
expect 3 import --records "$TMP/pkg.json"
expect 1 import "$TMP/no-such.json"
echo '{"releases": 3}' >"$TMP/bad.json"
expect 1 import "$TMP/bad.json"
grep -q "not a release package" "$ERR" || fail "a package without a releases array is not named as such"
expect 2 import "$TMP/pkg.json"
expect 2 import --dry-run "$TMP/pkg.json"
expect 0 import --help
grep -q -- "--dry-run" "$OUT" || fail "import --help does not explain --dry-run"
SOCK="$H/tenderd.sock"

# ---- against a node ------------------------------------------------------------------

step "start a one-validator tenderd"
"$TENDERD" init --home "$H" --name "Import agency" >/dev/null 2>"$ERR" || fail "tenderd init"
"$TENDERD" run --home "$H" >>"$LOG" 2>&1 &
PID=$!
for ((i = 0; i < WAIT_S * 10; i++)); do
	kill -0 "$PID" 2>/dev/null || fail "tenderd exited while starting"
	[[ -S "$SOCK" ]] && timeout 5 "$TENDERCTL" --socket "$SOCK" status >/dev/null 2>&1 && break
	sleep 0.1
done
timeout 5 "$TENDERCTL" --socket "$SOCK" status >"$TMP/status.json" 2>"$ERR" || fail "tenderd does not answer"
# The chain's prefix (status's ocid_prefix) is checked before publishing: a dry run reports all six.
"$PY" -c 'import json, sys; sys.exit(0 if json.load(open(sys.argv[1])).get("ocid_prefix") == "ocds-kr2020" else 1)' \
	"$TMP/status.json" || fail "status does not give the chain's ocid_prefix"
DRY_REFUSED=6

step "--dry-run: reports, publishes nothing"
expect 1 import --dry-run "$TMP/pkg.json"
counts $((N + 6 - DRY_REFUSED)) 0 "$DRY_REFUSED"
grep -q "nothing published" "$OUT" || fail "the dry run does not say it published nothing"
grep -q "release plan-1 of ocds-kr2020-imp-plan: tag \[planning\]" "$OUT" || fail "the planning release is not reported"
grep -q "release contract-1 .*tag \[contract\]" "$OUT" || fail "the contract release is not reported"
grep -q "release update-1 .*tag \[tenderUpdate\]" "$OUT" || fail "the tenderUpdate release is not reported"
grep -q "release ocds-kr2020-imp-00002-w of ocds-kr2020-imp-00002: the package repeats release" "$OUT" ||
	fail "the repeated release id is not reported"
grep -q "release bad-1 .*invalid: tender.status: \"bogus\" is not in the tenderStatus code list" "$OUT" ||
	fail "the invalid release is not reported with the node's reason"
[[ "$(records)" == 0 ]] || fail "the dry run published something"

step "import $N releases"
expect 1 import "$TMP/pkg.json"
counts "$N" 0 6
grep -q "release other-1 of ocds-zz9999-other-1: .*prefix" "$OUT" || fail "the foreign prefix is not reported"
grep -q "release plan-1 of ocds-kr2020-imp-plan: tag \[planning\]" "$OUT" || fail "the planning release is not reported"
grep -q "^rate: [0-9]* releases/s" "$OUT" || fail "no rate in the summary"
grep -q "^import: $((N + 6))/$((N + 6)) releases done ($N imported, 0 skipped, 6 refused)" "$ERR" ||
	fail "no final plain progress line on stderr (not a terminal)"
! grep -q $'\r' "$ERR" || fail "a progress bar on stderr that is not a terminal"
cp "$OUT" "$TMP/summary"
[[ -n "${TD_IMPORT_RATE_OUT:-}" ]] && cp "$OUT" "$TD_IMPORT_RATE_OUT"
grep "^rate:" "$OUT"
[[ "$(records)" == "$N" ]] || fail "the ledger holds $(records) records, expected $N"

step "the ledger holds the package's releases: ids, dates, order, exact amounts"
expect 0 export --out "$TMP/ledger.json"
"$PY" - "$TMP/pkg.json" "$TMP/ledger.json" >"$TMP/check.out" 2>&1 <<'EOF' || { cat "$TMP/check.out" >&2; fail "the ledger and the package differ"; }
import collections, datetime, json, sys
from decimal import Decimal
pkg = json.load(open(sys.argv[1]), parse_float=Decimal)["releases"]
led = json.load(open(sys.argv[2]), parse_float=Decimal)["releases"]
want = {}
for r in sorted(pkg, key=lambda r: datetime.datetime.fromisoformat(r["date"])):
    if (r["ocid"].startswith("ocds-kr2020-imp-0") and r["id"] != "update-1" and
            r["tag"][0] in ("tender", "tenderAmendment", "tenderCancellation", "award")):
        want.setdefault((r["ocid"], r["id"]), r)  # a repeated id: the earliest is the one imported
assert len(want) == 10000, len(want)
got = {(r["ocid"], r["id"]): r for r in led}
assert len(got) == len(led) == 10000, (len(got), len(led))
assert set(got) == set(want), sorted(set(got) ^ set(want))[:5]
for key, r in got.items():
    w = want[key]
    assert r["date"] == w["date"], (key, r["date"], w["date"])
    assert r["tag"] == w["tag"], (key, r["tag"])
    if "tender" in w and "value" in w["tender"]:
        assert str(r["tender"]["value"]["amount"]) == str(w["tender"]["value"]["amount"]), key
    if "amendments" in w.get("tender", {}):
        assert r["tender"]["amendments"] == w["tender"]["amendments"], key
# each ocid's releases are on the ledger in date order
def t(s): return datetime.datetime.fromisoformat(s)
seen = collections.defaultdict(list)
for r in led:
    seen[r["ocid"]].append(t(r["date"]))
for ocid, dates in seen.items():
    assert dates == sorted(dates), ocid
print("ok: %d releases, %d ocids" % (len(led), len(seen)))
EOF
cat "$TMP/check.out"
expect 0 get ocds-kr2020-imp-00009
"$PY" - "$OUT" <<'EOF' || fail "tender ocds-kr2020-imp-00009 is not the package's"
import json, sys
from decimal import Decimal
d = json.load(open(sys.argv[1]), parse_float=Decimal)
assert [r["kind"] for r in d["releases"]] == ["tender", "tenderAmendment", "tenderCancellation"], d["releases"]
assert [r["release"]["id"] for r in d["releases"]] == ["ocds-kr2020-imp-00009-%s" % s for s in "tac"]
# the ledger's time is the block's, the release keeps its 2019 date
assert all(r["time"].startswith("20") and not r["time"].startswith("2019") for r in d["releases"])
assert d["compiled"]["tender"]["status"] == "cancelled"
assert d["compiled"]["date"] == d["releases"][-1]["release"]["date"]
assert str(d["compiled"]["tender"]["value"]["amount"]) == "1009.50"
EOF
expect 0 export --from 1 --to 3 --out "$TMP/part.json"
"$PY" "$HERE/ocds_validate.py" "$DATA/ocds" release "$TMP/part.json" >/dev/null || fail "an exported block range is not valid OCDS"

step "a second run skips the $N releases"
expect 1 import "$TMP/pkg.json"
counts 0 "$N" 6
[[ "$(records)" == "$N" ]] || fail "the second run published something"
expect 1 import --dry-run "$TMP/pkg.json"
counts $((6 - DRY_REFUSED)) "$N" "$DRY_REFUSED" # the foreign prefix too

step "an import killed midway is resumed by a second run"
M=3000
"$PY" "$TMP/gen.py" "$M" res 11 >"$TMP/res.json" || fail "gen.py res"
"$TENDERCTL" --socket "$SOCK" import "$TMP/res.json" >"$TMP/killed.out" 2>"$TMP/killed.err" &
IPID=$!
for ((i = 0; i < 2000; i++)); do
	n=$(records)
	((n >= N + 300)) && break
	sleep 0.01
done
{
	kill -9 "$IPID"
	wait "$IPID"
} 2>/dev/null
IPID=""
for ((i = 0; i < WAIT_S * 10; i++)); do # what the killed import had pooled commits
	timeout 30 "$TENDERCTL" --socket "$SOCK" status 2>/dev/null |
		"$PY" -c 'import json, sys; sys.exit(json.load(sys.stdin)["mempool"] != 0)' && break
	sleep 0.1
done
before=$(($(records) - N))
echo "committed before the second run: $before of $M"
expect 0 import "$TMP/res.json"
imported=$(summary imported)
skipped=$(summary skipped)
((imported + skipped == M)) || fail "imported $imported + skipped $skipped != $M"
((skipped == before)) || fail "skipped $skipped, but $before were on the ledger"
[[ "$(records)" == $((N + M)) ]] || fail "the ledger holds $(records) records, expected $((N + M)): something twice?"

step "a terminal gets a progress bar"
"$PY" "$TMP/gen.py" 300 tty 3 >"$TMP/tty.json" || fail "gen.py tty"
if command -v script >/dev/null; then
	timeout 120 script -qec "'$TENDERCTL' --socket '$SOCK' import '$TMP/tty.json'" /dev/null >"$TMP/tty.out" 2>&1 ||
		{ cat "$TMP/tty.out" >&2; fail "import on a terminal"; }
	grep -q $'\rimport \[##############################\] 300/300 ' "$TMP/tty.out" || { cat -A "$TMP/tty.out" | head >&2; fail "no full progress bar"; }
	grep -q " left" "$TMP/tty.out" || fail "the bar shows no time left"
	grep -q "^imported: 300" "$TMP/tty.out" || fail "no summary after the bar"
else
	echo "(script(1) missing: the bar is not checked)"
fi
[[ "$(records)" == $((N + M + 300)) ]] || fail "the terminal import did not publish its 300 releases"

step "tender.publish's date: kept as written when valid, -32602 otherwise"
REL='{"ocid": "ocds-kr2020-date-1", "id": "d-1", "tender": {"id": "D", "title": "Dated", "status": "active"}}'
for bad in '"2019-05-02"' '"2019-05-02T09:30:00"' '"2019-02-29T00:00:00Z"' '20190502' 'null'; do
	expect 1 call tender.publish "{\"kind\": \"tender\", \"release\": $REL, \"date\": $bad}"
	grep -q "date must be an ISO 8601 date-time with seconds and a zone .*(code -32602)" "$ERR" ||
		fail "date $bad: not refused as invalid params"
done
expect 0 call tender.publish "{\"kind\": \"tender\", \"release\": $REL, \"date\": \"2019-05-02T09:30:00.5-03:30\", \"wait\": true}"
expect 0 get ocds-kr2020-date-1
"$PY" - "$OUT" <<'EOF' || fail "the date given is not the release's"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["releases"][0]
assert r["release"]["date"] == "2019-05-02T09:30:00.5-03:30", r["release"]["date"]
assert r["release"]["id"] == "d-1" and not r["time"].startswith("2019"), r
EOF

step "a full mempool holds the import back, then it goes on"
kill "$PID"
wait "$PID" 2>/dev/null
PID=""
"$TENDERD" run --home "$H" --set mempool.max_records=40 >>"$LOG" 2>&1 &
PID=$!
for ((i = 0; i < WAIT_S * 10; i++)); do
	kill -0 "$PID" 2>/dev/null || fail "tenderd exited while starting"
	timeout 5 "$TENDERCTL" --socket "$SOCK" status >/dev/null 2>&1 && break
	sleep 0.1
done
before=$(records)
"$PY" "$TMP/gen.py" 600 full 5 >"$TMP/full.json" || fail "gen.py full"
expect 0 import "$TMP/full.json"
counts 600 0 0
grep -q "^mempool full: [1-9][0-9]* publishes sent again" "$OUT" || fail "the mempool never was full: nothing retried"
[[ "$(records)" == $((before + 600)) ]] || fail "the ledger holds $(records) records, expected $((before + 600))"

step "the sample lifecycles' release packages import as they were published"
for name in jeju kisa private gangwon sejong; do
	expect 0 import "$DATA/merge/$name-releases.json"
	want=$("$PY" -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["releases"]))' "$DATA/merge/$name-releases.json")
	counts "$want" 0 0
done
expect 0 export --records --out "$TMP/samples.json"
"$PY" - "$DATA/merge" "$TMP/samples.json" >"$TMP/check.out" 2>&1 <<'EOF' || { cat "$TMP/check.out" >&2; fail "an imported sample differs from the node's own"; }
import json, sys
from decimal import Decimal
m = sys.argv[1]
recs = {r["ocid"]: r for r in json.load(open(sys.argv[2]), parse_float=Decimal)["records"]}
for n in ("jeju", "kisa", "private", "gangwon", "sejong"):
    rels = json.load(open("%s/%s-releases.json" % (m, n)), parse_float=Decimal)["releases"]
    rec = recs[rels[0]["ocid"]]
    assert [(r["id"], r["date"]) for r in rec["releases"]] == [(r["id"], r["date"]) for r in rels], n
    got = rec["compiledRelease"]
    # The node points an amendment at the release it amends when the release does not (jeju's).
    for am in got.get("tender", {}).get("amendments", []):
        assert am.pop("amendsReleaseID") == rels[0]["id"] and am.pop("releaseID") == rels[1]["id"], am
    want = json.load(open("%s/%s-node-compiled.json" % (m, n)), parse_float=Decimal)
    assert got == want, "%s:\nnode    %s\nwanted  %s" % (n, json.dumps(got, default=str), json.dumps(want, default=str))
print("ok")
EOF

kill -0 "$PID" || fail "tenderd died"
echo "e2e_import: ok"
