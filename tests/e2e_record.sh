#!/usr/bin/env bash
# End-to-end test of record fates: tests/e2e_record.sh BIN_DIR DATA_DIR
#
# Starts a real one-validator tenderd in a temporary home and asks it through
# tenderctl record (JSON-RPC record.status) what became of records: the id a
# publish answers, then committed with the height of its block (also after a
# SIGTERM restart and after a kill -9 restart), an id never seen (unknown,
# saying why), a bad id (usage, exit 3), bad params through call (-32602,
# exit 1) and no node (exit 2). Pending and dropped records are covered by
# tests/test_api_record.c, where the test controls when blocks are made.
# Fails fast: prints the step, the last command's output and the daemon log tail.
# Needs bash, coreutils and python3 (for JSON assertions); no jq.
NAME_OF_TEST=e2e_record
# shellcheck source=tests/lib_single.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_single.sh"

# committed_at ID HEIGHT: tenderctl record ID answers committed at HEIGHT.
committed_at() {
	ok record "$1"
	CHECK='
assert d == {"id": sys.argv[2], "status": "committed", "height": int(sys.argv[3])}, d
' check "$1" "$2"
}

step "tenderd init and run"
single_init
daemon_start

step "publish answers the record id; record tells pending or committed, then committed at its height"
EDIT='' variant "$TMP/a.json" ocds-kr2020-rec-0001
ok publish tender "$TMP/a.json"
CHECK='assert hex64(d["id"]) and d["ocid"] == "ocds-kr2020-rec-0001" and "height" not in d, d' check
A=$(val 'd["id"]')
ok record "$A"
CHECK='
assert d["id"] == sys.argv[2], d
assert d["status"] in ("pending", "committed"), d
assert d["status"] == "pending" or d["height"] == 1, d
' check "$A"
wait_records 1
committed_at "$A" 1
ok get ocds-kr2020-rec-0001
CHECK='assert d["releases"][0]["record_id"] == sys.argv[2] and d["releases"][0]["height"] == 1, d' check "$A"

step "publish --wait: record gives the same height as the publish (an id in capitals too)"
EDIT='' variant "$TMP/b.json" ocds-kr2020-rec-0002
ok publish tender "$TMP/b.json" --wait
B=$(val 'd["id"]')
BH=$(val 'd["height"]')
((BH >= 2)) || fail "second record committed at height $BH"
committed_at "$B" "$BH"
committed_at "$A" 1
ok record "$(tr a-f A-F <<<"$B")"
CHECK='assert d == {"id": sys.argv[2], "status": "committed", "height": int(sys.argv[3])}, d' check "$B" "$BH"

step "an id never seen: unknown, exit 0, saying why"
NEVER=00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff
ok record "$NEVER"
CHECK='
assert d["id"] == sys.argv[2] and d["status"] == "unknown", d
assert "never seen" in d["message"] and "restart" in d["message"] and "4096" in d["message"], d
assert "height" not in d and "reason" not in d, d
' check "$NEVER"

step "bad ids and params"
refused 3 record 0011
grep -q "64 hex digits" "$ERR" || fail "the usage error does not say what an id is"
refused 3 record "${NEVER:0:63}g"
refused 3 record
refused 3 record "$A" "$B"
refused 1 call record.status '{"id": "xyz"}'
grep -q -- "-32602" "$ERR" || fail "bad id through call is not -32602"
grep -q "64 hex digits" "$ERR" || fail "the -32602 message does not say what an id is"
refused 1 call record.status '{}'
grep -q -- "-32602" "$ERR" && grep -q "id is missing" "$ERR" || fail "a missing id is not -32602 'id is missing'"
refused 1 call record.status '{"id": 7}'
grep -q -- "-32602" "$ERR" || fail "a number id is not -32602"

step "after a SIGTERM restart the records are still committed at their heights"
stop_term
echo "--- restart after SIGTERM" >>"$LOG"
daemon_start
committed_at "$A" 1
committed_at "$B" "$BH"

step "after a kill -9 right after a --wait publish, that record is committed at its height"
EDIT='' variant "$TMP/c.json" ocds-kr2020-rec-0003
ok publish tender "$TMP/c.json" --wait
C=$(val 'd["id"]')
CH=$(val 'd["height"]')
{
	kill -9 "$PID"
	wait "$PID"
} 2>/dev/null
PID=""
echo "--- restart after kill -9" >>"$LOG"
daemon_start
committed_at "$C" "$CH"
committed_at "$A" 1

step "no node: exit 2"
stop_term
refused 2 record "$A"

echo "e2e_record: all steps passed"
