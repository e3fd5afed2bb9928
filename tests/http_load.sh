#!/usr/bin/env bash
# The node keeps committing while its HTTP endpoint is under load:
#   tests/http_load.sh BIN_DIR DATA_DIR [RATE] [SECONDS]
#
# Starts a four-node testnet with HTTP on every node, commits a few hundred records so
# that full /api/releases pages exist, then offers RATE records/s (default 100) through
# the four sockets (tenderd-loadgen publish) for SECONDS (default 10): once alone, once
# while wrk requests a full /api/releases page of node0 and /metrics of node1. Prints
# wrk's requests/s and the committed records/s of both runs, and fails if the chain
# committed less than 90% of the offered rate under load or wrk saw errors. Not part of
# ctest (it measures; it needs the machine to itself): run it by hand.
# Needs wrk (Debian) besides what tests/e2e_http.sh needs.
set -uo pipefail

if (($# < 2 || $# > 4)); then
	echo "usage: $0 BIN_DIR DATA_DIR [RATE] [SECONDS]" >&2
	exit 2
fi
RATE=${3:-100}
SECS=${4:-10}
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "$0")/lib_testnet.sh"
tn_init http_load "$1" "$2"
LOADGEN="$BIN/tenderd-loadgen"
command -v wrk >/dev/null || fail "wrk is missing (apt-get install wrk)"
[[ -x "$LOADGEN" ]] || fail "$LOADGEN is missing"

tn_create 4
for ((i = 0; i < 4; i++)); do tn_start "$i" --set http.listen=127.0.0.1:0; done
declare -a PORTS
for ((i = 0; i < 4; i++)); do
	PORTS[i]=$(grep -o 'http listening on 127\.0\.0\.1:[0-9]*' "$NET/node$i/tenderd.log" | tail -n 1 | sed 's/.*://')
done
wait_until 30 "the four nodes did not connect" connected_all 3 0 1 2 3
SOCKS=$(printf '%s/node%d/tenderd.sock,' "$NET" 0 "$NET" 1 "$NET" 2 "$NET" 3 | sed 's/,$//')

# publish TAG START: RATE records/s for SECS seconds; prints committed_rps and the latencies.
publish() {
	timeout $((SECS * 6 + 60)) "$LOADGEN" publish --sockets "$SOCKS" --count $((RATE * SECS)) --rate "$RATE" \
		--run "$1" --start "$2" >"$OUT" 2>"$ERR" || fail "tenderd-loadgen publish failed: $(tail -n 3 "$ERR")"
	grep -o 'committed_rps=[0-9.]* .*p99_ms=[0-9.]*' "$OUT" | sed 's/ span_s.*publish_rps=[0-9.]*//'
}

step "seed: full release pages"
publish seed 0 >/dev/null
curl -sf -o /dev/null "http://127.0.0.1:${PORTS[0]}/api/releases?from_height=1" || fail "no first page"

step "$RATE records/s alone"
BASE_LINE=$(publish alone 100000)
note "alone:        $BASE_LINE"

step "$RATE records/s with wrk on /api/releases (node0) and /metrics (node1)"
wrk -t1 -c32 -d$((SECS + 4))s "http://127.0.0.1:${PORTS[0]}/api/releases?from_height=1" >"$TN_DIR/wrk-releases" 2>&1 &
W1=$!
wrk -t1 -c16 -d$((SECS + 4))s "http://127.0.0.1:${PORTS[1]}/metrics" >"$TN_DIR/wrk-metrics" 2>&1 &
W2=$!
sleep 1
LOADED=$(publish loaded 200000)
wait "$W1" "$W2"
note "under load:   $LOADED"
for f in releases metrics; do
	rps=$(grep 'Requests/sec' "$TN_DIR/wrk-$f" | awk '{print $2}')
	note "wrk /$f: $rps requests/s ($(grep -E 'requests in' "$TN_DIR/wrk-$f" | sed 's/^ *//'))"
	grep -q 'Non-2xx\|Socket errors' "$TN_DIR/wrk-$f" && fail "wrk on $f saw errors: $(cat "$TN_DIR/wrk-$f")"
done
got=${LOADED#committed_rps=}
got=${got%% *}
"$PY" -c 'import sys; sys.exit(0 if float(sys.argv[1]) >= 0.9 * float(sys.argv[2]) else 1)' "$got" "$RATE" ||
	fail "the chain committed $got records/s under HTTP load, less than 90% of the $RATE offered"
tn_stop_all
note "passed"
