#!/usr/bin/env bash
# End-to-end test of tenderctl compile: tests/e2e_compile.sh BIN_DIR DATA_DIR
#
# Offline (no node; --socket points nowhere): compiles the release package of every
# sample lifecycle (DATA_DIR/merge/<name>-releases.json) and checks the record package
# is the expected one byte for byte (<name>-record.json) and valid against the OCDS
# 1.1.5 record package schema (tests/ocds_validate.py); the same with --versioned for
# the Jeju lifecycle (jeju-versioned-record.json), whose versionedRelease is validated
# against the OCDS 1.1.5 versioned release schema (DATA_DIR/ocds), and a versioned
# release that is not (a value not in a list of versions) must fail that validation.
# Then a bare array of every release, shuffled (several ocids, from stdin), --out, and
# the refusals: a missing file, bad JSON, no releases, a release without a date
# (exit 1), bad usage (exit 3).
# Then against a real one-validator tenderd: publishes the Jeju and Sejong lifecycles,
# exports the release package and checks that compiling it offline gives the compiled
# releases the node itself answers (tenderctl export --records), but for their id (the
# node's is the latest release's, compile's "<ocid>-<date>").
# Needs bash, coreutils and Debian's /usr/bin/python3 with python3-jsonschema.
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
M="$DATA/merge"
S="$DATA/samples"
SCHEMAS="$DATA/ocds"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
WAIT_S=${TD_E2E_WAIT:-10}

TMP=$(mktemp -d /tmp/td-e2ec.XXXXXX) || exit 1
H="$TMP/home"
SOCK="$H/tenderd.sock"
LOG="$TMP/tenderd.log"
OUT="$TMP/out"
ERR="$TMP/err"
PID=""
RC=0
STEP=start
: >"$OUT"
: >"$ERR"
: >"$LOG"

cleanup() {
	if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
		kill -9 "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
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
		head -c 3000 "$OUT"
		echo
		echo "--- stderr:"
		head -c 3000 "$ERR"
		echo
		if [[ -s "$LOG" ]]; then
			echo "--- daemon log (tail):"
			tail -n 30 "$LOG"
		fi
	} >&2
	exit 1
}

# ctl ARGS...: tenderctl with a socket where no node listens; stdout in $OUT, stderr in $ERR.
ctl() {
	timeout 60 "$TENDERCTL" --socket "$TMP/no-node.sock" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC != 124)) || fail "tenderctl $* did not finish within 60 s"
}

ok() {
	ctl "$@"
	((RC == 0)) || fail "tenderctl $* exited $RC, expected 0"
}

refused() {
	local want=$1 says=$2
	shift 2
	ctl "$@"
	((RC == want)) || fail "tenderctl $* exited $RC, expected $want"
	grep -qF -- "$says" "$ERR" || fail "tenderctl $*: stderr does not say '$says'"
}

# valid FILE: a valid OCDS record package.
valid() {
	"$PY" "$HERE/ocds_validate.py" "$SCHEMAS" record "$1" >"$TMP/valid.out" 2>&1 ||
		{ cat "$TMP/valid.out" >&2; fail "$1 is not a valid record package"; }
}

# valid_versioned FILE: a valid OCDS record package whose versionedRelease validates against
# the versioned release schema (versioned-release-validation-schema.json, OCDS 1.1.5), the
# record package schema's own $ref, resolved to the local file; date-time and uri formats
# checked as tests/ocds_validate.py checks them.
valid_versioned() {
	"$PY" - "$HERE" "$SCHEMAS" "$1" >"$TMP/valid.out" 2>&1 <<'EOF' || { cat "$TMP/valid.out" >&2; fail "$1 is not a valid versioned record package"; }
import json, sys
from decimal import Decimal
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import ocds_validate
from jsonschema import Draft4Validator, RefResolver
d = Path(sys.argv[2])
names = ("release-schema.json", "record-package-schema.json", "versioned-release-validation-schema.json")
schemas = {f: json.loads((d / f).read_text(encoding="utf-8")) for f in names}
pkg = schemas["record-package-schema.json"]
ref = pkg["definitions"]["record"]["properties"]["versionedRelease"]["$ref"]
assert ref == schemas["versioned-release-validation-schema.json"]["id"], ref
store = {s["id"]: s for s in schemas.values()}
resolver = RefResolver.from_schema(pkg, store=store,
                                   handlers={"http": ocds_validate.no_remote, "https": ocds_validate.no_remote})
doc = json.load(open(sys.argv[3]), parse_float=Decimal)
errors = list(Draft4Validator(pkg, resolver=resolver, format_checker=ocds_validate.format_checker()).iter_errors(doc))
for e in errors:
    print("/".join(map(str, e.absolute_path)), e.message[:300])
assert doc["records"] and all("versionedRelease" in r and "compiledRelease" not in r for r in doc["records"])
sys.exit(1 if errors else 0)
EOF
}

for b in "$TENDERD" "$TENDERCTL"; do
	[[ -x "$b" ]] || fail "$b is missing or not executable"
done

# ---- offline -----------------------------------------------------------------

for name in jeju kisa private gangwon sejong; do
	step "compile $name (offline, no node)"
	ok compile "$M/$name-releases.json"
	cmp -s "$OUT" "$M/$name-record.json" || { diff "$M/$name-record.json" "$OUT" | head -40 >&2; fail "not the expected record package"; }
	valid "$OUT"
done

step "compile --versioned jeju"
ok compile --versioned "$M/jeju-releases.json"
cmp -s "$OUT" "$M/jeju-versioned-record.json" || { diff "$M/jeju-versioned-record.json" "$OUT" | head -40 >&2; fail "not the expected versioned record package"; }
grep -q '"value": 712500000.50' "$OUT" || fail "the amount lost its exact text"
valid_versioned "$OUT"
"$PY" - "$OUT" >"$TMP/broken.json" <<'EOF' || fail "could not break the versioned release"
import json, sys
from decimal import Decimal
d = json.load(open(sys.argv[1]), parse_float=Decimal)
d["records"][0]["versionedRelease"]["tender"]["title"] = "a value, not its versions"
json.dump(d, sys.stdout, default=str)
EOF
if (valid_versioned "$TMP/broken.json") >/dev/null 2>&1; then
	fail "a versionedRelease with an unversioned value passes the versioned release schema"
fi
grep -q "versionedRelease/tender/title" "$TMP/valid.out" || fail "the broken versioned release fails for another reason"

step "compile a bare array of every release, shuffled, from stdin, --out"
"$PY" - "$M" >"$TMP/all.json" <<'EOF' || fail "could not make the array"
import json, random, sys
rels = []
for n in ("jeju", "kisa", "private", "gangwon", "sejong"):
    rels += json.load(open("%s/%s-releases.json" % (sys.argv[1], n)))["releases"]
random.Random(7).shuffle(rels)
json.dump(rels, sys.stdout)
EOF
timeout 60 "$TENDERCTL" --socket "$TMP/no-node.sock" compile - --out "$TMP/all-record.json" <"$TMP/all.json" >"$OUT" 2>"$ERR"
RC=$?
((RC == 0)) || fail "compile - exited $RC"
[[ ! -s "$OUT" ]] || fail "compile --out also printed to stdout"
valid "$TMP/all-record.json"
"$PY" - "$M" "$TMP/all.json" "$TMP/all-record.json" >"$TMP/check.out" 2>&1 <<'EOF' || { cat "$TMP/check.out" >&2; fail "the records of the bare array"; }
import json, sys
from decimal import Decimal
m, rels, pkg = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]), parse_float=Decimal)
first = []
for r in rels:
    if r["ocid"] not in first:
        first.append(r["ocid"])
assert [r["ocid"] for r in pkg["records"]] == first, "records not in the order the ocids first appear"
assert pkg["publisher"] == {"name": "tenderctl compile"}, pkg["publisher"]
assert pkg["publishedDate"] == "2020-04-24T00:00:00.000Z", pkg["publishedDate"]
assert "packages" not in pkg
for n in ("jeju", "kisa", "private", "gangwon", "sejong"):
    want = json.load(open("%s/%s-record.json" % (m, n)), parse_float=Decimal)["records"][0]
    got = [r for r in pkg["records"] if r["ocid"] == want["ocid"]][0]
    assert got == want, "%s: not the record of its own package" % n
EOF

step "refusals"
refused 1 "no-such.json" compile "$TMP/no-such.json"
echo '{"releases": [' >"$TMP/bad.json"
refused 1 "invalid JSON" compile "$TMP/bad.json"
echo '{"uri": "https://example.org/p.json", "releases": []}' >"$TMP/empty.json"
refused 1 "non-empty \"releases\" array" compile "$TMP/empty.json"
echo '"text"' >"$TMP/text.json"
refused 1 "nor a non-empty array of releases" compile "$TMP/text.json"
echo '[{"ocid": "ocds-kr2020-x", "id": "1", "date": "2020-01-01T00:00:00Z"}, {"ocid": "ocds-kr2020-x", "id": "2"}]' >"$TMP/nodate.json"
refused 1 "release 1 (ocid ocds-kr2020-x): no date" compile "$TMP/nodate.json"
refused 3 "usage: compile" compile
refused 3 "usage: compile" compile a.json b.json
refused 3 "does not take the option --records" compile --records "$M/jeju-releases.json"
ok compile --help
grep -q "versionedRelease" "$OUT" || fail "compile --help does not explain --versioned"

# ---- against a node -----------------------------------------------------------

step "a node publishes the Jeju and Sejong lifecycles"
"$TENDERD" init --home "$H" --name "Jeju Special Self-Governing Province" >/dev/null 2>"$ERR" || fail "tenderd init"
"$TENDERD" run --home "$H" >>"$LOG" 2>&1 &
PID=$!
for ((i = 0; i < WAIT_S * 10; i++)); do
	kill -0 "$PID" 2>/dev/null || fail "tenderd exited while starting"
	[[ -S "$SOCK" ]] && timeout 5 "$TENDERCTL" --socket "$SOCK" status >/dev/null 2>&1 && break
	sleep 0.1
done
node() {
	timeout 60 "$TENDERCTL" --socket "$SOCK" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC == 0)) || fail "tenderctl $* exited $RC"
}
node publish tender "$S/tender-jeju.json" --wait
node publish tender "$S/tender-sejong.json" --wait
node amend ocds-kr2020-jeju-0001 "$S/amend-jeju.json" --wait
node publish award "$S/award-jeju.json" --wait
node cancel ocds-kr2020-sj-0001 --reason "Merged into the national food-safety pilot" --wait

step "compiling the node's release package offline gives the node's compiled releases"
node export --out "$TMP/node-releases.json"
node export --records --out "$TMP/node-records.json"
ok compile "$TMP/node-releases.json"
cp "$OUT" "$TMP/compiled.json"
valid "$TMP/compiled.json"
"$PY" - "$TMP/node-records.json" "$TMP/compiled.json" >"$TMP/check.out" 2>&1 <<'EOF' || { cat "$TMP/check.out" >&2; fail "compile and the node disagree"; }
import json, sys
from decimal import Decimal
node = {r["ocid"]: r["compiledRelease"] for r in json.load(open(sys.argv[1]), parse_float=Decimal)["records"]}
ours = {r["ocid"]: r["compiledRelease"] for r in json.load(open(sys.argv[2]), parse_float=Decimal)["records"]}
assert sorted(node) == sorted(ours) == ["ocds-kr2020-jeju-0001", "ocds-kr2020-sj-0001"], (sorted(node), sorted(ours))
for ocid in node:
    n, o = dict(node[ocid]), dict(ours[ocid])
    assert o["id"] == "%s-%s" % (ocid, o["date"]), o["id"]
    del n["id"], o["id"]
    assert n == o, "%s:\nnode    %s\ncompile %s" % (ocid, json.dumps(n, default=str), json.dumps(o, default=str))
assert ours["ocds-kr2020-sj-0001"]["tender"]["status"] == "cancelled"
assert ours["ocds-kr2020-jeju-0001"]["tender"]["tenderPeriod"]["endDate"] == "2020-04-10T18:00:00+09:00"
assert str(ours["ocds-kr2020-jeju-0001"]["tender"]["value"]["amount"]) == "712500000.50"
EOF
ok compile --versioned "$TMP/node-releases.json"
valid_versioned "$OUT"

echo "e2e_compile: ok"
