#!/usr/bin/env bash
# End-to-end test of the HTTP endpoint: tests/e2e_http.sh BIN_DIR DATA_DIR
#
# One validator first: [http] listen is off in a new home and refused when malformed
# or in use (naming the address); with it on, every route answers over real HTTP
# (curl): release pages (links.next, strong ETag, 304 on If-None-Match, a year's
# cache for a full page and revalidation for the last), the record package, the
# tender list with its filters and cursor, status, blocks, validators, /health and
# /metrics; packages validate against the OCDS schemas (tests/ocds_validate.py) and
# /metrics passes `promtool check metrics`. Bad requests: 404, 405 with Allow, 413,
# 431; the connection limit and the idle timeout. Then four validators: /health 200
# while peers are connected, 503 catching up on a node that was down and syncs, and 503
# naming the reason once the peers are gone, /metrics
# counts the peers, the explorer page in headless Chromium lists the sample tenders and
# shows a tender's amendment and award, and a real Prometheus scrapes all four (its
# query API shows the series).
# Needs curl, python3 with python3-jsonschema, promtool, prometheus and chromium
# (scripts/setup.sh).
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "$0")/lib_testnet.sh"
tn_init e2e_http "$1" "$2"
OCDS="$DATA/ocds"
VALIDATE="$(dirname "$0")/ocds_validate.py"
for t in curl promtool prometheus chromium; do
	command -v "$t" >/dev/null || fail "$t is missing (scripts/setup.sh installs it)"
done
[[ -x "$BIN/tenderd-loadgen" ]] || fail "$BIN/tenderd-loadgen is missing (built with the tree, bench/)"
HDR="$TN_DIR/headers"
BODY="$TN_DIR/body"
NAME0=""

# http_port NODE: the port the node's last start listened on for HTTP (from its log).
http_port() {
	local h line
	h=$(home "$1")
	line=$(grep -o 'http listening on 127\.0\.0\.1:[0-9]*' "$h/tenderd.log" | tail -n 1)
	[[ -n "$line" ]] || fail "$h/tenderd.log has no 'http listening on' line"
	echo "${line##*:}"
}

# get PORT PATH [CURL ARGS...]: body in $BODY (and $OUT), headers in $HDR, status in $CODE.
get() {
	local port=$1 path=$2
	shift 2
	rm -f "$BODY" "$HDR"
	CODE=$(curl -s --max-time 20 -o "$BODY" -D "$HDR" -w '%{http_code}' "$@" "http://127.0.0.1:$port$path")
	RC=$?
	touch "$BODY" "$HDR" # curl writes no file for an empty body
	cp "$BODY" "$OUT"
	((RC == 0)) || fail "curl $* http://127.0.0.1:$port$path failed ($RC)"
}

# expect CODE PORT PATH [CURL ARGS...]: get that must answer CODE.
expect() {
	local want=$1
	shift
	get "$@"
	[[ "$CODE" == "$want" ]] || fail "GET $2 answered $CODE, expected $want: $(head -c 300 "$BODY")"
}

# header NAME: the value of a response header in $HDR (empty if absent).
header() {
	grep -i "^$1:" "$HDR" | head -n 1 | cut -d: -f2- | sed -e 's/^ *//' -e 's/\r$//'
}

valid() {
	"$PY" "$VALIDATE" "$OCDS" "$1" "$BODY" >"$ERR" 2>&1 || {
		cat "$ERR" >&2
		fail "the $1 package from the last request is not valid OCDS"
	}
}

# ---------------------------------------------------------------- configuration
step "a new home has [http] listen empty (off); bad or busy addresses are refused by name"
tn_create 1
H0=$(home 0)
grep -A8 '^\[http\]' "$H0/config.ini" | grep -Eq '^listen =\s*$' || fail "config.ini of a new home has no empty [http] listen"
timeout 30 "$TENDERD" init --home "$TN_DIR/solo" --name "Sejong City" >"$OUT" 2>"$ERR" || fail "tenderd init failed"
grep -A8 '^\[http\]' "$TN_DIR/solo/config.ini" | grep -Eq '^listen =\s*$' || fail "tenderd init wrote an [http] listen"
timeout 10 "$TENDERD" run --home "$TN_DIR/solo" --set http.listen=localhost:80x >"$OUT" 2>"$ERR"
RC=$?
((RC != 0 && RC != 124)) || fail "tenderd run took http.listen=localhost:80x (exit $RC)"
grep -q 'http.listen' "$ERR" || fail "the refusal does not name http.listen"

tn_start 0
grep -q 'http listening' "$H0/tenderd.log" && fail "a node without [http] listen opened an HTTP endpoint"
tn_stop 0
tn_start 0 --set http.listen=127.0.0.1:0
P=$(http_port 0)
note "node0 serves HTTP on 127.0.0.1:$P"
timeout 10 "$TENDERD" run --home "$TN_DIR/solo" --set "http.listen=127.0.0.1:$P" >"$OUT" 2>"$ERR"
RC=$?
((RC != 0 && RC != 124)) || fail "a second node took the busy HTTP port $P (exit $RC)"
grep -q "127.0.0.1:$P" "$ERR" || fail "the refusal of a busy port does not name 127.0.0.1:$P"
grep -qi 'in use' "$ERR" || fail "the refusal of a busy port does not say it is in use"

# ---------------------------------------------------------------- a ledger of > 1 page
step "publish the samples and $((105)) more tenders, one block each"
ok 0 status
NAME0=$(val 'd["node"]["name"]')
OCID_PREFIX=$(grep -o '"ocid_prefix": *"[^"]*"' "$H0/genesis.json" | sed 's/.*"\([^"]*\)"$/\1/')
JEJU=ocds-kr2020-jeju-0001
[[ "$OCID_PREFIX" == ocds-kr2020 ]] || fail "unexpected ocid prefix $OCID_PREFIX"
ok 0 publish tender "$SAMPLES/tender-jeju.json" --wait
ok 0 amend "$JEJU" "$SAMPLES/amend-jeju.json" --wait
ok 0 publish award "$SAMPLES/award-jeju.json" --wait
for s in kisa sejong gangwon; do ok 0 publish tender "$SAMPLES/tender-$s.json" --wait; done
for ((i = 1; i <= 105; i++)); do
	o=$(printf 'ocds-kr2020-http-%04d' "$i")
	variant "$o" "$TN_DIR/v.json"
	ok 0 publish tender "$TN_DIR/v.json" --wait
done
ok 0 status
HEIGHT=$(val 'd["height"]')
RECORDS=$(val 'd["records"]')
((HEIGHT > 100)) || fail "height $HEIGHT after 111 publishes with --wait, expected more than 100"

# ---------------------------------------------------------------- /api/releases
step "GET /api/releases: the first page of $((100)) blocks, with links.next, a strong ETag and a year's cache"
expect 200 "$P" /api/releases
valid release
[[ "$(header Content-Type)" == application/json* ]] || fail "Content-Type is $(header Content-Type)"
ETAG1=$(header ETag)
[[ "$ETAG1" =~ ^\"[0-9a-f]{32}\"$ ]] || fail "ETag '$ETAG1' is not a strong quoted tag"
[[ "$(header Cache-Control)" == *max-age=31536000* ]] || fail "a full page has Cache-Control '$(header Cache-Control)'"
cp "$BODY" "$TN_DIR/page1.json"
ok 0 export --from 1 --to 100 --out "$TN_DIR/export1.json"
cp "$TN_DIR/page1.json" "$OUT"
CHECK='
exp = json.load(open(sys.argv[2]), parse_float=Decimal)
assert d["links"]["next"] == "http://127.0.0.1:%s/api/releases?from_height=101" % sys.argv[3], d["links"]
assert d["uri"] == "http://127.0.0.1:%s/api/releases?from_height=1" % sys.argv[3], d["uri"]
assert d["publisher"]["name"] == sys.argv[4], d["publisher"]
assert [r["id"] for r in d["releases"]] == [r["id"] for r in exp["releases"]], "the page is not blocks 1..100"
assert d["releases"] == exp["releases"], "the page releases differ from ledger.export of blocks 1..100"
assert d["publishedDate"] == exp["publishedDate"], (d["publishedDate"], exp["publishedDate"])
' check "$TN_DIR/export1.json" "$P" "$NAME0"
grep -q '"amount":712500000.50' "$BODY" || fail "the page does not carry the amount 712500000.50 as written"

step "If-None-Match: 304 for the page's tag (strong or weak, in a list), 200 for another"
expect 304 "$P" /api/releases -H "If-None-Match: $ETAG1"
[[ ! -s "$BODY" ]] || fail "a 304 answer has a body"
[[ "$(header ETag)" == "$ETAG1" ]] || fail "the 304 answer has ETag $(header ETag)"
expect 304 "$P" "/api/releases?from_height=1" -H "If-None-Match: \"0000\", W/$ETAG1"
expect 200 "$P" /api/releases -H 'If-None-Match: "00000000000000000000000000000000"'
cmp -s "$BODY" "$TN_DIR/page1.json" || fail "the same page answered different bytes"
expect 200 "$P" /api/releases -I
[[ "$(header ETag)" == "$ETAG1" ]] || fail "HEAD answers another ETag"

step "GET /api/releases?from_height=101: the last page, revalidated, without links.next until it is full"
expect 200 "$P" "/api/releases?from_height=101"
valid release
[[ "$(header Cache-Control)" == no-cache ]] || fail "the last page has Cache-Control '$(header Cache-Control)'"
ETAG2=$(header ETag)
CHECK='
assert "links" not in d, d.get("links")
assert len(d["releases"]) == int(sys.argv[2]) - 100, (len(d["releases"]), sys.argv[2])
' check "$HEIGHT"
variant ocds-kr2020-http-late "$TN_DIR/v.json"
ok 0 publish tender "$TN_DIR/v.json" --wait
expect 200 "$P" "/api/releases?from_height=101" -H "If-None-Match: $ETAG2"
[[ "$(header ETag)" != "$ETAG2" ]] || fail "the last page kept its ETag after a new block"
CHECK='assert d["releases"][-1]["ocid"] == "ocds-kr2020-http-late", d["releases"][-1]["ocid"]' check
expect 304 "$P" /api/releases -H "If-None-Match: $ETAG1"

step "/api/releases refusals: past the tip 404, not a number 400"
expect 404 "$P" "/api/releases?from_height=100000"
CHECK='assert d["error"]["code"] == 404 and "100000" in d["error"]["message"], d' check
expect 400 "$P" "/api/releases?from_height=abc"
expect 400 "$P" "/api/releases?from_height=-1"

# ---------------------------------------------------------------- /api/records
step "GET /api/records/$JEJU: a record package with the compiled release"
expect 200 "$P" "/api/records/$JEJU"
valid record
[[ -n "$(header ETag)" ]] || fail "the record package has no ETag"
CHECK='
assert len(d["records"]) == 1, d["records"]
r = d["records"][0]
assert r["ocid"] == "ocds-kr2020-jeju-0001", r["ocid"]
assert [x["tag"] for x in r["releases"]] == [["tender"], ["tenderAmendment"], ["award"]], [x["tag"] for x in r["releases"]]
c = r["compiledRelease"]
assert c["tag"] == ["compiled"], c["tag"]
assert c["tender"]["tenderPeriod"]["endDate"] == "2020-04-10T18:00:00+09:00", c["tender"]["tenderPeriod"]
assert len(c["tender"]["amendments"]) == 1, c["tender"].get("amendments")
assert c["awards"][0]["id"] == "jeju-2020-0001-a1", c["awards"]
assert c["tender"]["value"]["amount"] == Decimal("712500000.50"), c["tender"]["value"]
' check
ETAGR=$(header ETag)
expect 304 "$P" "/api/records/$JEJU" -H "If-None-Match: $ETAGR"
expect 404 "$P" /api/records/ocds-kr2020-nosuch-0001
CHECK='assert d["error"]["code"] == 404, d' check
expect 404 "$P" /api/records/

# ---------------------------------------------------------------- /api/tenders
step "GET /api/tenders: the socket's filters and cursor"
expect 200 "$P" "/api/tenders?limit=2"
CHECK='
assert len(d["tenders"]) == 2, d
assert d["tenders"][0]["ocid"] == "ocds-kr2020-http-late", d["tenders"][0]["ocid"]
assert d["next_cursor"], d
assert d["links"]["next"].startswith("http://127.0.0.1:%s/api/tenders?" % sys.argv[2]), d["links"]
' check "$P"
NEXT=$(val 'd["links"]["next"]')
FIRST=$(val '[t["ocid"] for t in d["tenders"]]')
expect 200 "$P" "${NEXT#http://127.0.0.1:"$P"}"
CHECK='
first = json.loads(sys.argv[2])
assert len(d["tenders"]) == 2 and not set(t["ocid"] for t in d["tenders"]) & set(first), (first, d["tenders"])
' check "$FIRST"
ok 0 list --limit 1000
SOCKET_ALL=$(val '[t["ocid"] for t in d]')
expect 200 "$P" "/api/tenders?limit=1000"
CHECK='assert [t["ocid"] for t in d["tenders"]] == json.loads(sys.argv[2]), "the list differs from tender.list"' check "$SOCKET_ALL"
AGENCY_Q=$("$PY" -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$NAME0")
expect 200 "$P" "/api/tenders?agency=$AGENCY_Q&category=services&limit=1000"
CHECK='assert d["tenders"] and all(t["agency_name"] == sys.argv[2] for t in d["tenders"]), d' check "$NAME0"
expect 200 "$P" "/api/tenders?status=nosuchstatus"
CHECK='assert d["tenders"] == [] and d["next_cursor"] is None and "links" not in d, d' check
expect 400 "$P" "/api/tenders?limit=0"
expect 400 "$P" "/api/tenders?limit=1001"
expect 400 "$P" "/api/tenders?cursor=zz"
expect 400 "$P" "/api/tenders?since=yesterday"
expect 400 "$P" "/api/tenders?agency=Nobody"

# ---------------------------------------------------------------- status, blocks, validators
step "GET /api/status, /api/blocks/{height}, /api/validators"
expect 200 "$P" /api/status
ok 0 status
cp "$OUT" "$TN_DIR/socket_status.json"
cp "$BODY" "$OUT"
CHECK='
s = json.load(open(sys.argv[2]))
for k in ("height", "last_block_hash", "records", "mempool", "chain_id"):
    assert d[k] == s[k], (k, d[k], s[k])
assert d["node"] == s["node"]["name"], d["node"]
assert d["health"] == "ok", d
' check "$TN_DIR/socket_status.json"
[[ "$(header Cache-Control)" == no-store ]] || fail "/api/status has Cache-Control '$(header Cache-Control)'"
ok 0 block 1
cp "$OUT" "$TN_DIR/block1.json"
expect 200 "$P" /api/blocks/1
[[ "$(header Cache-Control)" == *immutable* ]] || fail "a block has Cache-Control '$(header Cache-Control)'"
CHECK='
b = json.load(open(sys.argv[2]))
assert d["hash"] == b["hash"] and d["commit"] == b["commit"], "block 1 differs from block.get"
assert [r["ocid"] for r in d["releases"]] == ["ocds-kr2020-jeju-0001"], d["releases"]
assert d["releases"][0]["release"]["tag"] == ["tender"], d["releases"][0]
' check "$TN_DIR/block1.json"
expect 404 "$P" /api/blocks/0
expect 404 "$P" /api/blocks/99999999
expect 400 "$P" /api/blocks/one
expect 200 "$P" /api/validators
CHECK='
v = d["validators"]
assert len(v) == 1 and v[0]["name"] == sys.argv[2] and v[0]["self"] and v[0]["connected"], v
assert re.match(r"^[0-9a-f]{64}$", d["genesis_hash"]), d
' check "$NAME0"

# ---------------------------------------------------------------- /health and /metrics
step "/health of a one-validator chain: 200"
expect 200 "$P" /health
CHECK='assert d["status"] == "ok" and "reason" not in d, d' check

step "/metrics: Prometheus text that promtool accepts, with the node's numbers"
expect 200 "$P" /metrics
[[ "$(header Content-Type)" == "text/plain; version=0.0.4"* ]] || fail "/metrics Content-Type is $(header Content-Type)"
promtool check metrics <"$BODY" >"$ERR" 2>&1 || fail "promtool check metrics: $(cat "$ERR")"
ok 0 status
HEIGHT=$(val 'd["height"]')
RECORDS=$(val 'd["records"]')
metric() {
	grep -E "^$1 " "$BODY" | head -n 1 | awk '{print $2}'
}
[[ "$(metric tenderd_height)" == "$HEIGHT" ]] || fail "tenderd_height $(metric tenderd_height), status height $HEIGHT"
[[ "$(metric tenderd_records_committed_total)" == "$RECORDS" ]] || fail "tenderd_records_committed_total is not $RECORDS"
[[ "$(metric tenderd_mempool_records)" == 0 ]] || fail "tenderd_mempool_records is not 0"
[[ "$(metric tenderd_peers_connected)" == 0 ]] || fail "tenderd_peers_connected is not 0"
n=$(metric 'tenderd_http_requests_total\{route="releases",code="304"\}')
((n >= 3)) || fail "tenderd_http_requests_total{route=releases,code=304} is '$n', expected at least 3"
n=$(metric 'tenderd_http_request_duration_seconds_count\{route="records"\}')
((n >= 3)) || fail "tenderd_http_request_duration_seconds_count{route=records} is '$n'"
n=$(metric 'tenderd_http_page_cache_hits_total')
((n >= 1)) || fail "tenderd_http_page_cache_hits_total is '$n': the full page was not served from memory again"
n=$(metric 'tenderd_block_rounds_count')
((n >= 100)) || fail "tenderd_block_rounds_count is '$n': the blocks were not counted"
grep -q "^tenderd_missed_proposals_total{validator=\"$NAME0\"} 0$" "$BODY" || fail "no tenderd_missed_proposals_total for $NAME0"
# The consensus log's syncs and the socket's requests, by method ("other" for names it does not know).
n=$(metric 'tenderd_wal_fsync_seconds_count')
((n >= 1)) || fail "tenderd_wal_fsync_seconds_count is '$n': the consensus log's syncs were not timed"
# Every block this run applied, and only those, is timed (the node was started on an empty store).
n=$(metric 'tenderd_chain_apply_seconds_count')
[[ "$n" == "$HEIGHT" ]] || fail "tenderd_chain_apply_seconds_count is '$n', not the height $HEIGHT"
n=$(metric 'tenderd_store_write_seconds_count')
[[ "$n" == "$HEIGHT" ]] || fail "tenderd_store_write_seconds_count is '$n', not the height $HEIGHT"
n=$(metric 'tenderd_rpc_request_duration_seconds_count\{method="status"\}')
((n >= 1)) || fail "tenderd_rpc_request_duration_seconds_count{method=status} is '$n'"
n=$(metric 'tenderd_rpc_request_duration_seconds_count\{method="tender.publish"\}')
((n >= 1)) || fail "tenderd_rpc_request_duration_seconds_count{method=tender.publish} is '$n'"
grep -q '^tenderd_rpc_request_duration_seconds_count{method="other"} ' "$BODY" || fail "no method=\"other\" series"

# ---------------------------------------------------------------- bad requests and limits
step "unknown paths 404; other methods 405 with Allow; bodies 413; too many headers 431; malformed 400"
expect 404 "$P" /nosuch
expect 404 "$P" /api/releases/
for m in POST PUT DELETE PATCH; do
	expect 405 "$P" /api/status -X "$m"
	[[ "$(header Allow)" == "GET, HEAD" ]] || fail "$m answered Allow '$(header Allow)'"
done
expect 405 "$P" /api/status -X POST --data-binary '{"a":1}'
expect 413 "$P" /api/status -X GET --data-binary 'hello'
hs=()
for ((i = 0; i < 70; i++)); do hs+=(-H "X-Test-$i: $i"); done
expect 431 "$P" /api/status "${hs[@]}"
get "$P" /api/status -H "X-Big: $(head -c 40000 /dev/zero | tr '\0' a)"
[[ "$CODE" =~ ^4[0-9][0-9]$ ]] || fail "a 40 kB header answered $CODE, expected a 4xx"
"$PY" - "$P" >"$OUT" 2>"$ERR" <<'EOF' || fail "malformed requests: $(cat "$ERR")"
import socket, sys
port = int(sys.argv[1])
cases = [(b"GET /health HTTP/1.1\r\n\r\n", b"400"),                       # no Host
         (b"GET /health HTTP/1.1\r\nHost: x\r\nBad Header\r\n\r\n", b"400"),
         (b"GET /health HTTP/9.9\r\nHost: x\r\n\r\n", b"505")]
for req, want in cases:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    line = s.recv(4096).split(b"\r\n")[0]
    assert line.split(b" ")[1] == want, (req, line)
    s.close()
s = socket.create_connection(("127.0.0.1", port), timeout=5)
s.sendall(b"GARBAGE\r\n\r\n")
assert not s.recv(4096).startswith(b"HTTP/1.1 2"), "garbage was answered 2xx"
EOF
expect 200 "$P" /health

step "graceful stop: a download under way ends whole, and the node exits 0"
size=$(stat -c %s "$TN_DIR/page1.json")
curl -s --max-time 20 --limit-rate "$((size / 1024 + 1))k" -o "$TN_DIR/slow.json" "http://127.0.0.1:$P/api/releases" &
CURL=$!
sleep 0.3
tn_stop 0
wait "$CURL"
RC=$?
((RC == 0)) || fail "the download under way when the node stopped failed (curl $RC)"
cmp -s "$TN_DIR/slow.json" "$TN_DIR/page1.json" || fail "the download under way when the node stopped is not the whole page"
tn_start 0 --set http.listen=127.0.0.1:0
P=$(http_port 0)

step "connection limits (in all and per address) and idle timeout"
tn_stop 0
tn_start 0 --set http.listen=127.0.0.1:0 --set http.max_connections=2 --set http.timeout_s=1
P=$(http_port 0)
"$PY" - "$P" >"$OUT" 2>"$ERR" <<'EOF' || fail "connection limit or idle timeout: $(cat "$ERR")"
import socket, sys, time
port = int(sys.argv[1])
def conn():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s
def get(s):
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            return None
        data += chunk
    return data.split(b" ")[1]
a, b = conn(), conn()
assert get(a) == b"200" and get(b) == b"200", "two connections are served"
# a third waits (unaccepted) while two are open
c = conn()
c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
c.settimeout(0.7)
try:
    early = c.recv(1)
except socket.timeout:
    early = None
assert early is None, "a third connection over max_connections=2 was served at once: %r" % early
a.settimeout(10)
t0 = time.time()
assert a.recv(1) == b"", "an idle connection got data"
idle = time.time() - t0
assert idle < 5, "an idle connection was closed after %.1f s with timeout_s=1" % idle
c.settimeout(10)
data = b""
while b"\r\n\r\n" not in data:
    chunk = c.recv(4096)
    assert chunk, "the waiting connection was closed unanswered"
    data += chunk
assert data.split(b" ")[1] == b"200", data[:100]
print("ok: idle connection closed after %.1f s" % idle)
EOF
note "$(cat "$OUT")"
tn_stop 0
port_free "$P" || fail "port $P is still taken after a clean stop"
tn_start 0 --set http.listen=127.0.0.1:0 --set http.max_connections_per_ip=1
P=$(http_port 0)
"$PY" - "$P" >"$OUT" 2>"$ERR" <<'EOF' || fail "per-address connection limit: $(cat "$ERR")"
import socket, sys
port = int(sys.argv[1])
a = socket.create_connection(("127.0.0.1", port), timeout=5)
a.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
assert a.recv(4096).split(b" ")[1] == b"200", "the first connection is served"
b = socket.create_connection(("127.0.0.1", port), timeout=5)
try:
    b.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    got = b.recv(4096)
except (ConnectionResetError, BrokenPipeError):
    got = b""
assert got == b"", "a second connection from 127.0.0.1 over max_connections_per_ip=1 was served: %r" % got[:40]
a.close()
EOF
tn_stop 0

# ---------------------------------------------------------------- four validators
step "four validators with HTTP: /health 200 with peers, /metrics counts them"
tn_create 4
for ((i = 0; i < 4; i++)); do tn_start "$i" --set http.listen=127.0.0.1:0; done
declare -a PORTS
for ((i = 0; i < 4; i++)); do PORTS[i]=$(http_port "$i"); done
wait_until 30 "the four nodes did not connect" connected_all 3 0 1 2 3
healthy_all() {
	local i
	for ((i = 0; i < 4; i++)); do
		get "${PORTS[i]}" /health
		[[ "$CODE" == 200 ]] || return 1
	done
}
wait_until 30 "/health did not answer 200 on every node" healthy_all
variant ocds-kr2020-four-0001 "$TN_DIR/v.json"
ok 0 publish tender "$TN_DIR/v.json" --wait
wait_until 30 "the tender did not reach node3" has_all ocds-kr2020-four-0001 3
expect 200 "${PORTS[3]}" /api/records/ocds-kr2020-four-0001
valid record
expect 200 "${PORTS[2]}" /metrics
promtool check metrics <"$BODY" >"$ERR" 2>&1 || fail "promtool check metrics on node2: $(cat "$ERR")"
[[ "$(metric tenderd_peers_connected)" == 3 ]] || fail "node2 tenderd_peers_connected is $(metric tenderd_peers_connected)"
n=$(metric tenderd_p2p_sent_bytes_total)
((n > 0)) || fail "node2 tenderd_p2p_sent_bytes_total is '$n'"
expect 200 "${PORTS[1]}" /api/validators
CHECK='assert len(d["validators"]) == 4 and all(v["connected"] for v in d["validators"]), d' check

step "the explorer in headless Chromium: the sample tenders listed, a tender page with its amendment and award"
ok 0 publish tender "$SAMPLES/tender-jeju.json" --wait
ok 0 amend ocds-kr2020-jeju-0001 "$SAMPLES/amend-jeju.json" --wait
ok 0 publish award "$SAMPLES/award-jeju.json" --wait
ok 3 publish tender "$SAMPLES/tender-kisa.json" --wait
ok 0 publish tender "$SAMPLES/tender-sejong.json" --wait
wait_until 30 "the samples did not reach node3" has_all ocds-kr2020-sj-0001 3
expect 200 "${PORTS[3]}" /
[[ "$(header Content-Type)" == text/html* ]] || fail "/ has Content-Type $(header Content-Type)"
[[ -n "$(header Content-Security-Policy)" ]] || fail "the explorer page has no Content-Security-Policy"
expect 200 "${PORTS[3]}" /api/tenders/ocds-kr2020-jeju-0001
CHECK='assert [r["height"] for r in d["releases"]] == sorted(r["height"] for r in d["releases"]) and len(d["releases"]) == 3, d["releases"]' check
expect 404 "${PORTS[3]}" /api/tenders/ocds-kr2020-nosuch-0001
# dom URL FILE: the page's DOM once its scripts have run (Chromium's virtual time).
dom() {
	timeout 60 chromium --headless --no-sandbox --disable-gpu --user-data-dir="$TN_DIR/chromium" \
		--virtual-time-budget=10000 --dump-dom "$1" >"$2" 2>"$TN_DIR/chromium.log" ||
		fail "chromium --dump-dom $1 failed: $(tail -n 5 "$TN_DIR/chromium.log")"
}
dom "http://127.0.0.1:${PORTS[3]}/" "$TN_DIR/list.html"
"$PY" - "$TN_DIR/list.html" >"$ERR" 2>&1 <<'EOF' || fail "the explorer's tender list lacks the samples: $(cat "$ERR")"
import re, sys
html = open(sys.argv[1]).read()
main = html[html.index('<main'):html.index('</main>')]
rows = re.findall(r'<tr class="tender">(.*?)</tr>', main)
ocids = [re.search(r'#/tender/([^"]+)"', r).group(1) for r in rows]
for o in ("ocds-kr2020-jeju-0001", "ocds-kr2020-kisa-0001", "ocds-kr2020-sj-0001", "ocds-kr2020-four-0001"):
    assert o in ocids, (o, ocids)
assert "712,500,000.50 KRW" in main, "the Jeju amount is not shown exactly as published"
assert re.search(r'height <b id="height">\d+</b>', html), "no chain height in the header"
for v in ("Korea Internet &amp; Security Agency", "Jeju Special Self-Governing Province"):
    assert v in main, ("validator not listed", v)
EOF
dom "http://127.0.0.1:${PORTS[3]}/#/tender/ocds-kr2020-jeju-0001" "$TN_DIR/tender.html"
"$PY" - "$TN_DIR/tender.html" >"$ERR" 2>&1 <<'EOF' || fail "the explorer's tender page lacks its timeline: $(cat "$ERR")"
import re, sys
html = open(sys.argv[1]).read()
main = html[html.index('<main'):html.index('</main>')]
assert "Blockchain-based electric vehicle battery life-cycle management system" in main, "no title"
tags = re.findall(r'<span class="tag (\w+)">', main)
assert tags == ["tender", "tenderAmendment", "award"], tags
assert re.search(r"Amendment: Submission deadline extended at bidders(&#39;|')s? request", main), "no amendment"
assert "Award: EV battery life-cycle management system: main operator to LG CNS" in main, "no award"
assert "698,000,000 KRW" in main and "712,500,000.50 KRW" in main, "amounts not as published"
assert main.count("committed in round") == 3, "not every release names its block's commit"
EOF

step "a real Prometheus scrapes the four nodes"
PROM_PORT=""
for ((try = 0; try < 20; try++)); do
	p=$((33000 + RANDOM % 20000))
	port_free "$p" && PROM_PORT=$p && break
done
[[ -n "$PROM_PORT" ]] || fail "no free port for prometheus"
{
	echo "global: {scrape_interval: 1s, scrape_timeout: 1s}"
	echo "scrape_configs:"
	echo "  - job_name: tenderd"
	echo "    static_configs:"
	echo "      - targets: [$(printf '"127.0.0.1:%s",' "${PORTS[@]}" | sed 's/,$//')]"
} >"$TN_DIR/prometheus.yml"
prometheus --config.file="$TN_DIR/prometheus.yml" --storage.tsdb.path="$TN_DIR/prom" \
	--web.listen-address="127.0.0.1:$PROM_PORT" >"$TN_DIR/prometheus.log" 2>&1 &
PROM_PID=$!
trap 'kill "$PROM_PID" 2>/dev/null; wait "$PROM_PID" 2>/dev/null; tn_cleanup' EXIT
prom_has() {
	curl -s --max-time 5 -o "$OUT" "http://127.0.0.1:$PROM_PORT/api/v1/query" --data-urlencode "query=$1" || return 1
	"$PY" - "$OUT" "$2" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
r = d["data"]["result"] if d.get("status") == "success" else []
sys.exit(0 if len(r) == int(sys.argv[2]) and all(float(x["value"][1]) > 0 for x in r) else 1)
EOF
}
wait_until 60 "Prometheus did not get up == 1 from the four nodes ($(tail -n 3 "$TN_DIR/prometheus.log"))" prom_has 'up{job="tenderd"} == 1' 4
wait_until 30 "Prometheus has no tenderd_height > 0 from the four nodes" prom_has 'tenderd_height > 0' 4
wait_until 30 "Prometheus has no tenderd_peers_connected == 3" prom_has 'tenderd_peers_connected == 3' 4
wait_until 30 "Prometheus has no request latency histogram" prom_has 'sum by (instance) (tenderd_http_request_duration_seconds_count{route="metrics"})' 4
kill "$PROM_PID" 2>/dev/null
wait "$PROM_PID" 2>/dev/null

step "/health of a node that was down: 503 catching up while it syncs, then 200"
tn_stop 3
"$BIN/tenderd-loadgen" publish --sockets "$NET/node0/tenderd.sock,$NET/node1/tenderd.sock,$NET/node2/tenderd.sock" \
	--count 6000 --rate 1000 --run catchup --no-track --timeout 120 >"$OUT" 2>"$ERR" || fail "tenderd-loadgen publish failed: $(tail -n 3 "$ERR")"
HP3=""
for ((try = 0; try < 20; try++)); do
	p=$((33000 + RANDOM % 20000))
	port_free "$p" && HP3=$p && break
done
[[ -n "$HP3" ]] || fail "no free port for node3's HTTP"
# poll /health from before node3 starts until it answers 200: every answer in order
"$PY" - "$HP3" >"$TN_DIR/health3" 2>&1 <<'EOF' &
import json, socket, sys, time
port = int(sys.argv[1])
deadline = time.time() + 90
s = None
def answer(s):
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        c = s.recv(65536)
        if not c:
            raise ConnectionError
        data += c
    head, body = data.split(b"\r\n\r\n", 1)
    n = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length:")][0])
    while len(body) < n:
        c = s.recv(65536)
        if not c:
            raise ConnectionError
        body += c
    return int(head.split(b" ")[1]), json.loads(body).get("reason", "")
last = None
while time.time() < deadline:
    try:
        if s is None:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
        code, reason = answer(s)
    except OSError:
        s = None
        time.sleep(0.001)
        continue
    line = "%d %s" % (code, reason.split(":")[0])
    if line != last:
        print(line, flush=True)
        last = line
    if code == 200:
        break
EOF
POLL=$!
tn_start 3 --set "http.listen=127.0.0.1:$HP3"
wait "$POLL"
note "node3 /health while starting, in order: $(tr '\n' ';' <"$TN_DIR/health3")"
tail -n 1 "$TN_DIR/health3" | grep -q '^200 *$' || fail "node3 never answered /health 200: $(tail -n 5 "$TN_DIR/health3")"
grep -q '^503 catching up$' "$TN_DIR/health3" || fail "node3 never answered 503 catching up while it synced: $(sort "$TN_DIR/health3" | uniq -c)"
grep -v '^503 catching up$\|^503 starting$\|^503 no peers connected (0 of 3 other validators)$\|^200 *$' "$TN_DIR/health3" && fail "node3 answered something else while starting"
for ((i = 0; i < 4; i++)); do PORTS[i]=$(http_port "$i"); done

step "/health: 503 naming the reason once node0 has no peers"
tn_stop 1
tn_stop 2
tn_stop 3
no_peers() {
	get "${PORTS[0]}" /health
	[[ "$CODE" == 503 ]]
}
wait_until 20 "/health of node0 still answers $CODE without peers" no_peers
CHECK='assert d["status"] == "unavailable" and "no peers" in d["reason"], d' check
expect 200 "${PORTS[0]}" /api/status
CHECK='assert d["health"] == "unavailable" and "no peers" in d["health_reason"], d' check
tn_stop 0
no_sanitizer_reports

note "passed"
