#!/usr/bin/env bash
# End-to-end test of ledger.export: tests/e2e_export.sh BIN_DIR DATA_DIR
#
# Starts a real one-validator tenderd, publishes the sample releases (tenders, an
# amendment, an award, a cancellation) and more tenders over several blocks, then
# checks over the socket that ledger.export (release and record packages, whole
# chain and sub-ranges) answers one line with the request's id that validates against
# the OCDS 1.1 package schemas (tests/ocds_validate.py), that another connection is
# served while an export streams, that a client leaving mid-export leaves the node
# serving, that a batch refuses ledger.export and that empty ranges are -32002. Then
# export --format csv: tenders whose titles hold quotes, commas, LF, CRLF and CR come out
# as RFC 4180 rows (a header, CRLF line ends, quoted fields with doubled quotes) that
# Python's csv reader reads back as the node's tender.list.
# With TD_EXPORT_OLD_BIN=DIR (a tenderd built before exports were streamed), the
# same ledger is exported by that binary too and the answers must be identical bytes.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
BIN=$(cd "$1" && pwd) || exit 2
DATA=$(cd "$2" && pwd) || exit 2
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
S="$DATA/samples"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
OLD=${TD_EXPORT_OLD_BIN:-}

TMP=$(mktemp -d /tmp/td-e2ex.XXXXXX) || exit 1
H="$TMP/home"
SOCK="$H/tenderd.sock"
LOG="$TMP/tenderd.log"
PID=""
cleanup() {
	if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then
		kill -9 "$PID" 2>/dev/null
		wait "$PID" 2>/dev/null
	fi
	rm -rf "$TMP"
}
trap cleanup EXIT
fail() {
	echo "FAIL: $*" >&2
	tail -n 30 "$LOG" >&2
	exit 1
}
start() {
	"$1/tenderd" run --home "$H" >>"$LOG" 2>&1 &
	PID=$!
	for _ in $(seq 1 200); do
		"$BIN/tenderctl" --socket "$SOCK" status >/dev/null 2>&1 && return 0
		sleep 0.05
	done
	fail "tenderd did not start"
}
stop() {
	kill "$PID" 2>/dev/null
	wait "$PID" 2>/dev/null
	PID=""
}
ctl() { timeout 30 "$BIN/tenderctl" --socket "$SOCK" "$@" >"$TMP/out" 2>&1 || fail "tenderctl $* ($(cat "$TMP/out"))"; }

"$BIN/tenderd" init --home "$H" --name "Export agency" >/dev/null || fail init
start "$BIN"
echo "--- publishing"
ctl publish tender "$S/tender-jeju.json" --wait
ctl publish tender "$S/tender-sejong.json" --wait
ctl amend ocds-kr2020-jeju-0001 "$S/amend-jeju.json" --wait
ctl publish award "$S/award-jeju.json" --wait
ctl cancel ocds-kr2020-sj-0001 --reason "no budget" --wait
ctl publish tender "$S/tender-kisa.json" --wait
for i in $(seq 1 40); do
	printf '{"ocid": "ocds-kr2020-gen-%04d", "tender": {"id": "gen-%d", "title": "Generated %d", "status": "active", "value": {"amount": %d.50, "currency": "KRW"}}}' \
		"$i" "$i" "$i" "$((1000 + i))" >"$TMP/gen.json"
	w=""
	((i % 10 == 0)) && w=--wait
	ctl publish tender "$TMP/gen.json" $w
done

# export.py SOCK OUTDIR: the exports, saved as answer lines; the checks that need the node live.
cat >"$TMP/export.py" <<'PYEOF'
import json, socket, sys, time
sock, out, mode = sys.argv[1], sys.argv[2], sys.argv[3]
def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); s.settimeout(30); s.connect(sock); return s
def ask(s, line):
    s.sendall(line.encode() + b"\n")
    buf = bytearray()
    while not buf.endswith(b"\n"):
        k = s.recv(1 << 20)
        if not k: raise SystemExit("connection closed mid-answer: %r" % bytes(buf[-200:]))
        buf += k
    return bytes(buf)
s = conn()
top = json.loads(ask(s, '{"jsonrpc":"2.0","id":0,"method":"status"}'))["result"]["height"]
cases = [("all-rel", {}), ("all-rec", {"records": True}), ("mid-rel", {"from": 3, "to": top - 1}),
         ("mid-rec", {"from": 3, "to": top - 1, "records": True}), ("one-rec", {"from": top, "to": top, "records": True})]
for i, (name, params) in enumerate(cases):
    ans = ask(s, json.dumps({"jsonrpc": "2.0", "id": "x%d" % i, "method": "ledger.export", "params": params}))
    open("%s/%s.line" % (out, name), "wb").write(ans)
if mode != "full":
    sys.exit(0)
for name, params in cases:
    d = json.loads(open("%s/%s.line" % (out, name), "rb").read())
    assert set(d) == {"jsonrpc", "id", "result"}, d.keys()
    json.dump(d["result"], open("%s/%s.json" % (out, name), "w"))
# another connection is served while an export streams; the exporting client leaves mid-answer
a = conn()
a.sendall(b'{"jsonrpc":"2.0","id":1,"method":"ledger.export","params":{"records":true}}\n')
b = conn()
st = json.loads(ask(b, '{"jsonrpc":"2.0","id":2,"method":"status"}'))
assert st["id"] == 2 and st["result"]["height"] == top
a.recv(100)
a.close()
time.sleep(0.2)
# a batch refuses it; ranges without releases are -32002
r = json.loads(ask(b, '[{"jsonrpc":"2.0","id":3,"method":"ledger.export"}]'))
assert r[0]["error"]["code"] == -32600, r
r = json.loads(ask(b, '{"jsonrpc":"2.0","id":4,"method":"ledger.export","params":{"from":%d}}' % (top + 1)))
assert r["error"]["code"] == -32002, r
st = json.loads(ask(b, '{"jsonrpc":"2.0","id":5,"method":"status"}'))
assert st["id"] == 5
print("ok: %d blocks" % top)
PYEOF
echo "--- exporting"
mkdir -p "$TMP/new" "$TMP/old"
"$PY" "$TMP/export.py" "$SOCK" "$TMP/new" full || fail "export checks"
for name in all-rel mid-rel; do
	"$PY" "$HERE/ocds_validate.py" "$DATA/ocds" release "$TMP/new/$name.json" || fail "$name does not validate"
done
for name in all-rec mid-rec one-rec; do
	"$PY" "$HERE/ocds_validate.py" "$DATA/ocds" record "$TMP/new/$name.json" || fail "$name does not validate"
done
echo "--- export --format csv (RFC 4180)"
# Titles with a double quote, commas, LF, CRLF, a lone CR and UTF-8, and an amount with its exact text.
i=0
for title in 'Said \"fast\", then \"cheap\"' 'Roads, bridges, tunnels' 'Line one\nline two' \
	'Windows\r\nline' 'Lone\rCR' '제주 \"전기차\", 배터리' '\"\"' 'plain'; do
	i=$((i + 1))
	printf '{"ocid": "ocds-kr2020-csv-%02d", "tender": {"id": "csv-%d", "title": "%s", "status": "active", "value": {"amount": 1%02d.10, "currency": "EUR"}, "tenderPeriod": {"startDate": "2020-05-0%dT09:00:00+09:00"}}}' \
		"$i" "$i" "$title" "$i" "$i" >"$TMP/csv.json"
	ctl publish tender "$TMP/csv.json" --wait
done
ctl export --format csv --out "$TMP/tenders.csv"
[[ ! -s "$TMP/out" ]] || fail "export --format csv --out also printed to stdout"
timeout 30 "$BIN/tenderctl" --socket "$SOCK" export --format csv >"$TMP/tenders-stdout.csv" || fail "export --format csv"
cmp -s "$TMP/tenders.csv" "$TMP/tenders-stdout.csv" || fail "export --format csv: --out and stdout differ"
timeout 30 "$BIN/tenderctl" --socket "$SOCK" call tender.list '{"limit": 1000}' >"$TMP/list.json" || fail "tender.list"
"$PY" - "$TMP/tenders.csv" "$TMP/list.json" <<'PYEOF' || fail "the CSV is not the tender list in RFC 4180"
import csv, io, json, sys
from decimal import Decimal
raw = open(sys.argv[1], "rb").read()
tenders = json.load(open(sys.argv[2]), parse_float=Decimal)["tenders"]
# Every record ends with CRLF; a bare LF or CR appears only inside a quoted field.
assert raw.startswith(b"ocid,title,status,agency,amount,currency,date\r\n"), raw[:80]
assert raw.endswith(b"\r\n")
assert b'"Said ""fast"", then ""cheap"""' in raw, "quotes not doubled inside a quoted field"
assert b',"Roads, bridges, tunnels",' in raw
assert b',"Line one\nline two",' in raw and b',"Windows\r\nline",' in raw and b',"Lone\rCR",' in raw
assert b',plain,active,' in raw, "a field without a special character is quoted"
assert b',"""""",' in raw, "a title of two quotes"
rows = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline=""), strict=True))
assert rows[0] == ["ocid", "title", "status", "agency", "amount", "currency", "date"], rows[0]
assert len(rows) == len(tenders) + 1, (len(rows), len(tenders))
for row, t in zip(rows[1:], tenders):
    period = t.get("tenderPeriod", {})
    want = [t["ocid"], t.get("title", ""), t.get("status", ""), t.get("agency_name", t.get("agency", "")),
            str(t.get("value", {}).get("amount", "")), t.get("value", {}).get("currency", ""),
            period.get("startDate", t.get("date", ""))]
    assert row == want, (row, want)
byocid = {r[0]: r for r in rows[1:]}
assert byocid["ocds-kr2020-csv-01"][1] == 'Said "fast", then "cheap"'
assert byocid["ocds-kr2020-csv-04"][1] == "Windows\r\nline"
assert byocid["ocds-kr2020-csv-06"][1] == '제주 "전기차", 배터리'
assert byocid["ocds-kr2020-csv-07"][1] == '""'
assert byocid["ocds-kr2020-csv-03"][4:] == ["103.10", "EUR", "2020-05-03T09:00:00+09:00"]
print("ok: %d tenders" % len(tenders))
PYEOF
for args in "export --format csv --records" "export --format csv --from 1" "export --format xml"; do
	# shellcheck disable=SC2086 # split on purpose
	timeout 30 "$BIN/tenderctl" --socket "$SOCK" $args >/dev/null 2>&1
	rc=$?
	((rc == 3)) || fail "tenderctl $args exited $rc, expected 3"
done

kill -0 "$PID" || fail "tenderd died"
stop
if [[ -n "$OLD" ]]; then
	echo "--- the same exports from $OLD/tenderd"
	start "$OLD"
	"$PY" "$TMP/export.py" "$SOCK" "$TMP/old" bytes || fail "old exports"
	stop
	for name in all-rel all-rec mid-rel mid-rec one-rec; do
		cmp "$TMP/old/$name.line" "$TMP/new/$name.line" || fail "$name: streamed answer differs from the old one"
	done
	echo "identical bytes: $(wc -c <"$TMP/new/all-rel.line") + $(wc -c <"$TMP/new/all-rec.line") bytes (all-rel, all-rec) and three sub-ranges"
fi
echo "e2e_export: ok"
