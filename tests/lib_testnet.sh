# Helpers for the multi-node end-to-end tests (tests/e2e_testnet.sh, tests/e2e_faults.sh).
# Sourced, not run: . tests/lib_testnet.sh, then tn_init NAME BIN_DIR DATA_DIR.
#
# A node is named by its home directory; in every function NODE may also be
# a number i, meaning node i of the current testnet ($NET/node<i>).
#
#   tn_create N [CHAIN_ID]   make an N-node testnet (random free base port) and make it
#                            the current one: sets NET, NET_N, NET_PORT
#   tn_start NODE [ARGS]     start tenderd run in the background, wait for its socket
#   tn_stop NODE             SIGTERM, wait (bounded) and check the exit code is 0
#   tn_kill9 / tn_pause (SIGSTOP) / tn_resume (SIGCONT) NODE
#   ctl NODE ARGS / ok NODE ARGS      tenderctl on the node's socket: $OUT, $ERR, $RC
#   check (python assertions in $CHECK on d = JSON of $OUT), val EXPR, sval NODE EXPR
#   wait_until SECONDS MESSAGE CMD... poll CMD every 0.2 s until it succeeds, else fail
#   fail MESSAGE             print the step, the last command's output and every node's
#                            log tail, exit 1
# The EXIT trap kills every daemon started here (SIGCONT first for stopped ones) and
# removes the temporary directory (kept when TN_KEEP=1).
# Needs bash 4, coreutils, python3; no jq.
# shellcheck shell=bash disable=SC2034 # NET_PORT, AGREE_H... are read by the sourcing scripts

TN_NAME=e2e
TN_DIR=""
NET=""
NET_N=0
NET_PORT=0
STEP="start"
RC=0
OUT=/dev/null
ERR=/dev/null
declare -A TN_PID=()     # home -> pid of its running tenderd
declare -A TN_LOGS=()    # home -> 1 for every home started (for log tails)
TN_WAIT=${TD_E2E_WAIT:-20} # seconds for a daemon to answer or to stop

# tn_init NAME BIN_DIR DATA_DIR: sets TENDERD, TENDERCTL, SAMPLES, PY, TN_DIR and the traps.
tn_init() {
	TN_NAME=$1
	BIN=$(cd "$2" && pwd) || exit 2
	DATA=$(cd "$3" && pwd) || exit 2
	TENDERD="$BIN/tenderd"
	TENDERCTL="$BIN/tenderctl"
	SAMPLES="$DATA/samples"
	PY=/usr/bin/python3
	[[ -x "$PY" ]] || PY=python3
	local b
	for b in "$TENDERD" "$TENDERCTL"; do
		[[ -x "$b" ]] || { echo "$TN_NAME: $b is missing or not executable" >&2; exit 1; }
	done
	# A short path: a Unix socket path must fit in 108 bytes.
	TN_DIR=$(mktemp -d /tmp/td-tn.XXXXXX) || exit 1
	OUT="$TN_DIR/out"
	ERR="$TN_DIR/err"
	: >"$OUT"
	: >"$ERR"
	trap tn_cleanup EXIT
	trap 'exit 130' INT TERM
}

tn_cleanup() {
	local h p
	for h in "${!TN_PID[@]}"; do
		p=${TN_PID[$h]}
		kill -CONT "$p" 2>/dev/null
		kill -9 "$p" 2>/dev/null
	done
	for h in "${!TN_PID[@]}"; do
		wait "${TN_PID[$h]}" 2>/dev/null
	done
	TN_PID=()
	if [[ -n "$TN_DIR" && "${TN_KEEP:-0}" != 1 ]]; then
		rm -rf "$TN_DIR"
	elif [[ -n "$TN_DIR" ]]; then
		echo "$TN_NAME: kept $TN_DIR" >&2
	fi
}

step() {
	STEP="$*"
	echo "--- $STEP"
}

note() {
	echo "$TN_NAME: $*"
}

# home NODE: prints the node's home directory.
home() {
	if [[ "$1" =~ ^[0-9]+$ ]]; then
		echo "$NET/node$1"
	else
		echo "$1"
	fi
}

fail() {
	local h
	{
		echo
		echo "FAIL [$STEP]: $*"
		echo "--- last command (exit $RC) stdout:"
		head -c 3000 "$OUT"
		echo
		echo "--- stderr:"
		head -c 3000 "$ERR"
		echo
		for h in $(printf '%s\n' "${!TN_LOGS[@]}" | sort); do
			echo "--- log of ${h#"$TN_DIR"/} (tail):"
			tail -n "${TN_TAIL:-25}" "$h/tenderd.log" 2>/dev/null
		done
	} >&2
	exit 1
}

# port_free PORT...: true when every port can be bound on 127.0.0.1.
port_free() {
	"$PY" - "$@" <<'EOF'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    # as libuv does: connections of a previous run in TIME_WAIT do not block the port
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        sys.exit(1)
    finally:
        s.close()
EOF
}

# tn_create N [CHAIN_ID]: a new testnet under $TN_DIR, made the current one.
tn_create() {
	local n=$1 chain=${2:-} try base dir ports i args
	dir="$TN_DIR/net$(find "$TN_DIR" -maxdepth 1 -name 'net*' | wc -l)"
	for ((try = 0; try < 30; try++)); do
		base=$((20000 + RANDOM % 12000)) # below the ephemeral range (32768-)
		ports=()
		for ((i = 0; i < n; i++)); do ports+=($((base + i))); done
		port_free "${ports[@]}" || continue
		args=(testnet --nodes "$n" --out "$dir" --base-port "$base")
		[[ -n "$chain" ]] && args+=(--chain-id "$chain")
		timeout 30 "$TENDERD" "${args[@]}" >"$OUT" 2>"$ERR"
		RC=$?
		((RC == 0)) || fail "tenderd ${args[*]} exited $RC"
		for ((i = 0; i < n; i++)); do
			[[ -f "$dir/node$i/node.key" && -f "$dir/node$i/config.ini" && -f "$dir/node$i/genesis.json" ]] ||
				fail "tenderd testnet did not create $dir/node$i/{node.key,config.ini,genesis.json}"
		done
		NET=$dir
		NET_N=$n
		NET_PORT=$base
		return 0
	done
	fail "no free range of $n ports found"
}

# tn_start NODE [TENDERD RUN ARGS...]: starts the node and waits until its socket answers status.
tn_start() {
	local h i p
	h=$(home "$1")
	shift
	[[ -z "${TN_PID[$h]:-}" ]] || fail "tn_start: $h is already running (pid ${TN_PID[$h]})"
	echo "=== start $(date +%T.%N | cut -c1-12) $*" >>"$h/tenderd.log"
	"$TENDERD" run --home "$h" "$@" >>"$h/tenderd.log" 2>&1 &
	p=$!
	TN_PID[$h]=$p
	TN_LOGS[$h]=1
	for ((i = 0; i < TN_WAIT * 10; i++)); do
		if ! kill -0 "$p" 2>/dev/null; then
			wait "$p"
			RC=$?
			unset "TN_PID[$h]"
			fail "tenderd --home $h exited ($RC) while starting"
		fi
		if [[ -S "$h/tenderd.sock" ]]; then
			timeout 5 "$TENDERCTL" --socket "$h/tenderd.sock" status >"$OUT" 2>"$ERR" && return 0
		fi
		sleep 0.1
	done
	fail "tenderd --home $h did not answer on its socket within $TN_WAIT s"
}

# tn_start_all: starts every node of the current testnet.
tn_start_all() {
	local i
	for ((i = 0; i < NET_N; i++)); do tn_start "$i"; done
}

# tn_pid NODE: sets TN_P to the node's pid (fails when it was not started here).
tn_pid() {
	local h
	h=$(home "$1")
	[[ -n "${TN_PID[$h]:-}" ]] || fail "$h is not running"
	TN_P=${TN_PID[$h]}
}

# tn_stop NODE: SIGTERM; the node must exit 0 within TN_WAIT seconds.
tn_stop() {
	local h p i
	h=$(home "$1")
	tn_pid "$h"
	p=$TN_P
	kill -CONT "$p" 2>/dev/null
	kill -TERM "$p"
	for ((i = 0; i < TN_WAIT * 10; i++)); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.1
	done
	kill -0 "$p" 2>/dev/null && fail "tenderd --home $h still running $TN_WAIT s after SIGTERM"
	wait "$p"
	RC=$?
	unset "TN_PID[$h]"
	((RC == 0)) || fail "tenderd --home $h exited $RC after SIGTERM, expected 0"
}

tn_stop_all() {
	local h
	for h in "${!TN_PID[@]}"; do tn_stop "$h"; done
}

tn_kill9() {
	local h p
	h=$(home "$1")
	tn_pid "$h"
	p=$TN_P
	kill -CONT "$p" 2>/dev/null
	kill -9 "$p"
	wait "$p" 2>/dev/null
	unset "TN_PID[$h]"
	echo "=== kill -9 $(date +%T.%N | cut -c1-12)" >>"$h/tenderd.log"
}

tn_pause() {
	tn_pid "$1"
	kill -STOP "$TN_P" || fail "kill -STOP failed"
}

tn_resume() {
	tn_pid "$1"
	kill -CONT "$TN_P" || fail "kill -CONT failed"
}

tn_alive() {
	local h
	h=$(home "$1")
	[[ -n "${TN_PID[$h]:-}" ]] && kill -0 "${TN_PID[$h]}" 2>/dev/null
}

# ctl NODE ARGS...: tenderctl on the node's socket; stdout in $OUT, stderr in $ERR, exit code in $RC.
ctl() {
	local h
	h=$(home "$1")
	shift
	timeout "${TN_CTL_TIMEOUT:-60}" "$TENDERCTL" --socket "$h/tenderd.sock" "$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC != 124)) || fail "tenderctl --socket $h/tenderd.sock $* did not finish within ${TN_CTL_TIMEOUT:-60} s"
}

# ok NODE ARGS...: ctl that must succeed.
ok() {
	ctl "$@"
	((RC == 0)) || fail "tenderctl on $(home "$1") ${*:2} exited $RC, expected 0"
}

# check [ARGS...]: runs the python assertions in $CHECK on the JSON in $OUT, bound to d.
check() {
	"$PY" - "$OUT" "$@" >"$TN_DIR/check.out" 2>&1 <<EOF
import json, re, sys
from decimal import Decimal
with open(sys.argv[1]) as f:
    d = json.load(f, parse_float=Decimal)
HEX64 = re.compile(r'^[0-9a-f]{64}\$')
def hex64(s): return isinstance(s, str) and HEX64.match(s) is not None
def items(d): return d['tenders'] if isinstance(d, dict) else d
def connected(d): return [p for p in d["peers"] if p.get("state") == "connected"]
$CHECK
EOF
	local rc=$?
	if ((rc != 0)); then
		cat "$TN_DIR/check.out" >&2
		fail "assertion failed on the output of the last command"
	fi
}

# val EXPR: prints a python expression on d (the JSON in $OUT); lists and dicts as JSON.
val() {
	"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); v=$1; print(v if not isinstance(v,(dict,list)) else json.dumps(v))" "$OUT" ||
		fail "could not read $1 from the output"
}

# sval NODE EXPR: status of NODE, then val EXPR.
sval() {
	ok "$1" status
	val "$2"
}

# wait_until SECONDS MESSAGE CMD...: polls CMD (quietly) until it succeeds.
wait_until() {
	local secs=$1 msg=$2 deadline
	shift 2
	deadline=$((SECONDS + secs))
	while true; do
		"$@" && return 0
		# shellcheck disable=SC2046 # homes hold no spaces
		((SECONDS < deadline)) || fail "$msg (waited $secs s); running nodes now:
$(heights $(printf '%s\n' "${!TN_PID[@]}" | sort))"
		sleep 0.2
	done
}

# connected_all K NODES...: every node shows K connected peers.
connected_all() {
	local k=$1 i n
	shift
	for i in "$@"; do
		ctl "$i" status
		((RC == 0)) || return 1
		n=$(val 'len([p for p in d["peers"] if p.get("state") == "connected"])')
		[[ "$n" == "$k" ]] || return 1
	done
}

# records_all K NODES...: every node reports records >= K.
records_all() {
	local k=$1 i n
	shift
	for i in "$@"; do
		ctl "$i" status
		((RC == 0)) || return 1
		n=$(val 'd["records"]')
		((n >= k)) || return 1
	done
}

# has_all OCID NODES...: tenderctl get OCID succeeds on every node.
has_all() {
	local o=$1 i
	shift
	for i in "$@"; do
		ctl "$i" get "$o"
		((RC == 0)) || return 1
	done
}

# agree NODES...: every node has the same height and last_block_hash, nothing in its
# mempool and no catching up; sets AGREE_H and AGREE_HASH.
agree() {
	local i line first=""
	for i in "$@"; do
		ctl "$i" status
		((RC == 0)) || return 1
		line=$(val '"%s %s %s %s" % (d["height"], d["last_block_hash"], d["mempool"], d.get("catching_up", False))')
		[[ "$line" == *" 0 False" ]] || return 1
		if [[ -z "$first" ]]; then
			first=$line
		elif [[ "$line" != "$first" ]]; then
			return 1
		fi
	done
	AGREE_H=${first%% *}
	first=${first#* }
	AGREE_HASH=${first%% *}
}

# heights NODES...: prints "nodeI: h=H hash=... records=R mempool=M ..." per node (for messages).
heights() {
	local i h js
	for i in "$@"; do
		h=$(home "$i")
		if js=$(timeout 5 "$TENDERCTL" --socket "$h/tenderd.sock" status 2>&1); then
			echo "  ${h#"$TN_DIR"/}: $("$PY" -c 'import json,sys; d=json.loads(sys.argv[1]); print("h=%s hash=%s records=%s mempool=%s peers=%d consensus=%s catching_up=%s" % (d["height"], d["last_block_hash"][:16], d["records"], d["mempool"], len([p for p in d["peers"] if p.get("state") == "connected"]), d.get("consensus"), d.get("catching_up")))' "$js")"
		else
			echo "  ${h#"$TN_DIR"/}: no status (${js:0:100})"
		fi
	done
}

# wait_agree SECONDS NODES...: wait_until the nodes agree, with their heights in the message.
wait_agree() {
	local secs=$1
	shift
	local deadline=$((SECONDS + secs))
	while ! agree "$@"; do
		if ((SECONDS >= deadline)); then
			fail "nodes $* do not agree on height and last_block_hash (waited $secs s):
$(heights "$@")"
		fi
		sleep 0.2
	done
}

# variant OCID FILE: writes to FILE a copy of tender-jeju.json under another ocid (text edit,
# so the exact amount text stays as written).
variant() {
	sed -e "s/ocds-kr2020-jeju-0001/$1/" -e "s/\"jeju-2020-0001\"/\"$1-t\"/" "$SAMPLES/tender-jeju.json" >"$2" ||
		fail "could not write $2"
	grep -q "\"$1\"" "$2" || fail "variant $2 does not hold ocid $1"
}

# all_blocks_identical H NODES...: block 1..H has one hash on every node, with >= MIN_SIGS
# commit signatures from distinct validators for that block.
all_blocks_identical() {
	local top=$1 h i ref cur
	shift
	for ((h = 1; h <= top; h++)); do
		ref=""
		for i in "$@"; do
			ok "$i" block "$h"
			CHECK='
assert d["height"] == int(sys.argv[2]), d
assert hex64(d["hash"]), d
c = d["commit"]
assert c["block_hash"] == d["hash"], c
sigs = c["signatures"]
keys = set(s["pub_key"] for s in sigs)
assert len(sigs) >= int(sys.argv[3]) and len(keys) == len(sigs), ("commit signatures", sigs)
' check "$h" "${MIN_SIGS:-3}"
			cur=$(val '"%s %s" % (d["hash"], d["prev_hash"])')
			if [[ -z "$ref" ]]; then
				ref=$cur
			elif [[ "$cur" != "$ref" ]]; then
				fail "block $h differs: $(home "$i") has hash/prev $cur, $(home "$1") has $ref"
			fi
		done
	done
}

# no_sanitizer_reports: fails if any node's log holds an ASan, LSan or UBSan report.
no_sanitizer_reports() {
	local h
	for h in "${!TN_LOGS[@]}"; do
		if grep -Eq 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$h/tenderd.log" 2>/dev/null; then
			grep -E -m 5 -A 10 'ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:' "$h/tenderd.log" >&2
			fail "sanitizer report in the log of $h"
		fi
	done
}
