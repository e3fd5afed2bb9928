#!/usr/bin/env bash
# Runs a local multi-node tenderd testnet: scripts/testnet.sh [start [N] | stop | status]
#
#   start [N]  (default, N = 4) builds tenderd (scripts/build.sh, incremental),
#              stops any running testnet, creates fresh homes in ./testnet/node0..N-1
#              (one shared genesis of N validators), starts every node in the
#              background, waits until they are all connected, publishes
#              tests/data/samples/tender-jeju.json on node0 and waits until every
#              node holds it, then prints how to query each node
#   stop       SIGTERM to every node, SIGKILL to any still running after 15 s
#   status     height, records and connected peers of each node
#
# Node i listens for p2p on 127.0.0.1:(TENDERD_BASE_PORT + i), default base 26656, and
# serves HTTP (OCDS API, /metrics, /health, the explorer at /) on 127.0.0.1:
# (TENDERD_HTTP_BASE_PORT + i), default base TENDERD_BASE_PORT + 100. Its socket is
# testnet/nodeI/tenderd.sock, its log testnet/nodeI/tenderd.log and its pid
# testnet/nodeI/tenderd.pid. Works from any directory (paths are relative to the
# repository root). Needs python3 (installed by scripts/setup.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

TN=testnet
TENDERD=build/bin/tenderd
TENDERCTL=build/bin/tenderctl
SAMPLE=tests/data/samples/tender-jeju.json
SAMPLE_OCID=ocds-kr2020-jeju-0001
BASE=${TENDERD_BASE_PORT:-26656}
HTTP_BASE=${TENDERD_HTTP_BASE_PORT:-$((BASE + 100))}
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3

usage() {
	sed -n '2,19s/^# \{0,1\}//p' "$0" >&2
	exit 3
}

die() {
	echo "testnet.sh: $*" >&2
	exit 1
}

# node_pid DIR: prints the pid in DIR/tenderd.pid if that process is a running tenderd.
node_pid() {
	local f="$1/tenderd.pid" p
	[[ -f "$f" ]] || return 1
	p=$(cat "$f" 2>/dev/null) || return 1
	[[ "$p" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$p" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null | grep -q 'tenderd run' || return 1
	echo "$p"
}

node_dirs() {
	local d
	for d in "$TN"/node*; do
		[[ -d "$d" ]] && echo "$d"
	done | sort -V
}

# status_line DIR: one line describing the node (reads its status through the socket).
status_line() {
	local d=$1 p js
	if ! p=$(node_pid "$d"); then
		echo "$(basename "$d"): not running"
		return
	fi
	if ! js=$(timeout 10 "$TENDERCTL" --socket "$d/tenderd.sock" status 2>&1); then
		echo "$(basename "$d"): pid $p, no answer on $d/tenderd.sock ($js)"
		return
	fi
	"$PY" -c '
import json, sys
d = json.loads(sys.argv[2])
peers = [p for p in d.get("peers", []) if p.get("state") == "connected"]
print("%s: pid %s, height %s, records %s, mempool %s, peers %d connected, last block %s%s" % (
    sys.argv[1], sys.argv[3], d["height"], d["records"], d["mempool"], len(peers),
    d["last_block_hash"][:16], ", catching up" if d.get("catching_up") else ""))
' "$(basename "$d")" "$js" "$p"
}

# field DIR EXPR: a python expression on d, the node's status.
field() {
	local js
	js=$(timeout 10 "$TENDERCTL" --socket "$1/tenderd.sock" status 2>/dev/null) || return 1
	"$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); print('"$2"')' "$js"
}

cmd_stop() {
	local d p pids=() dirs=() i
	for d in $(node_dirs); do
		if p=$(node_pid "$d"); then
			kill -TERM "$p" 2>/dev/null || true
			pids+=("$p")
			dirs+=("$d")
		fi
	done
	if ((${#pids[@]} == 0)); then
		echo "testnet.sh: no testnet node running"
		rm -f "$TN"/node*/tenderd.pid
		return 0
	fi
	for ((i = 0; i < 150; i++)); do
		local left=0
		for p in "${pids[@]}"; do
			kill -0 "$p" 2>/dev/null && left=1
		done
		((left)) || break
		sleep 0.1
	done
	for i in "${!pids[@]}"; do
		p=${pids[$i]}
		if kill -0 "$p" 2>/dev/null; then
			echo "testnet.sh: ${dirs[$i]} (pid $p) still running 15 s after SIGTERM; sending SIGKILL" >&2
			kill -KILL "$p" 2>/dev/null || true
		fi
		rm -f "${dirs[$i]}/tenderd.pid"
	done
	echo "testnet.sh: stopped ${#pids[@]} node(s)"
}

cmd_status() {
	local d any=0
	for d in $(node_dirs); do
		any=1
		status_line "$d"
	done
	((any)) || echo "testnet.sh: no testnet in $root/$TN (run scripts/testnet.sh start)"
}

# show_log DIR: the tail of a node's log, indented.
show_log() {
	echo "--- $1/tenderd.log (last 20 lines):" >&2
	tail -n 20 "$1/tenderd.log" 2>/dev/null | sed 's/^/    /' >&2
}

cmd_start() {
	local n=$1 i d p deadline
	if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 64)); then
		die "N must be a number from 1 to 64, not '$n'"
	fi
	if ! [[ "$BASE" =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE + n - 1 > 65535)); then
		die "TENDERD_BASE_PORT must be a port number from 1024 (with room for $n ports), not '$BASE'"
	fi

	local blog
	blog=$(mktemp /tmp/tenderd-build.XXXXXX)
	echo "testnet.sh: building (scripts/build.sh)"
	if ! scripts/build.sh >"$blog" 2>&1; then
		tail -n 40 "$blog" >&2
		rm -f "$blog"
		die "the build failed (output above)"
	fi
	rm -f "$blog"

	if [[ -d "$TN" ]]; then
		cmd_stop >/dev/null
		rm -rf "$TN"
	fi

	if ! [[ "$HTTP_BASE" =~ ^[0-9]+$ ]] || ((HTTP_BASE < 1024 || HTTP_BASE + n - 1 > 65535)); then
		die "TENDERD_HTTP_BASE_PORT must be a port number from 1024 (with room for $n ports), not '$HTTP_BASE'"
	fi
	if ((HTTP_BASE < BASE + n && BASE < HTTP_BASE + n)); then
		die "the HTTP ports $HTTP_BASE.. overlap the p2p ports $BASE..; set TENDERD_HTTP_BASE_PORT apart"
	fi

	local ports=()
	for ((i = 0; i < n; i++)); do ports+=($((BASE + i)) $((HTTP_BASE + i))); done
	if ! busy=$("$PY" - "${ports[@]}" <<'EOF'
import socket, sys
busy = []
for p in sys.argv[1:]:
    s = socket.socket()
    # as libuv does: connections of a previous run in TIME_WAIT do not block the port
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        busy.append(p)
    finally:
        s.close()
print(" ".join(busy))
sys.exit(1 if busy else 0)
EOF
	); then
		die "port(s) $busy on 127.0.0.1 already in use; pick other ranges with TENDERD_BASE_PORT=... (p2p) or TENDERD_HTTP_BASE_PORT=..."
	fi

	"$TENDERD" testnet --nodes "$n" --out "$TN" --base-port "$BASE" >/dev/null ||
		die "tenderd testnet --nodes $n --out $TN --base-port $BASE failed"

	for ((i = 0; i < n; i++)); do
		d="$TN/node$i"
		# setsid: the node leaves this shell's session and survives the terminal;
		# the inner shell writes its own pid and becomes tenderd (exec).
		# shellcheck disable=SC2016 # expanded by the inner shell
		setsid nohup bash -c 'echo $$ >"$1/tenderd.pid"; exec "$2" run --home "$1" --set "http.listen=127.0.0.1:$3"' \
			_ "$d" "$TENDERD" "$((HTTP_BASE + i))" >"$d/tenderd.log" 2>&1 </dev/null &
	done

	# Every node answers on its socket.
	for ((i = 0; i < n; i++)); do
		d="$TN/node$i"
		deadline=$((SECONDS + 20))
		while true; do
			p=""
			[[ -f "$d/tenderd.pid" ]] && p=$(cat "$d/tenderd.pid")
			if [[ -n "$p" ]] && ! kill -0 "$p" 2>/dev/null; then
				show_log "$d"
				cmd_stop >/dev/null
				die "node$i exited while starting (log above); the testnet is stopped"
			fi
			if [[ -S "$d/tenderd.sock" ]] &&
				timeout 5 "$TENDERCTL" --socket "$d/tenderd.sock" status >/dev/null 2>&1; then
				break
			fi
			if ((SECONDS >= deadline)); then
				show_log "$d"
				cmd_stop >/dev/null
				die "node$i did not answer on $d/tenderd.sock within 20 s (log above); the testnet is stopped"
			fi
			sleep 0.1
		done
	done
	echo "testnet.sh: $n nodes running, p2p ports $BASE..$((BASE + n - 1)), HTTP ports $HTTP_BASE..$((HTTP_BASE + n - 1))"

	# Every node is connected to all the others.
	deadline=$((SECONDS + 30))
	while true; do
		local all=1 k
		for ((i = 0; i < n; i++)); do
			k=$(field "$TN/node$i" 'len([p for p in d["peers"] if p.get("state") == "connected"])') || k=-1
			((k == n - 1)) || all=0
		done
		((all)) && break
		if ((SECONDS >= deadline)); then
			cmd_status >&2
			for ((i = 0; i < n; i++)); do show_log "$TN/node$i"; done
			die "the nodes did not all connect within 30 s (status and logs above); still running: scripts/testnet.sh stop"
		fi
		sleep 0.2
	done
	echo "testnet.sh: every node is connected to the $((n - 1)) others"

	# A first record, published on node0, reaches every node.
	echo "testnet.sh: publishing $SAMPLE on node0"
	if ! timeout 60 "$TENDERCTL" --socket "$TN/node0/tenderd.sock" publish tender "$SAMPLE" --wait >/dev/null; then
		cmd_status >&2
		show_log "$TN/node0"
		die "publishing on node0 failed or did not commit within 60 s; still running: scripts/testnet.sh stop"
	fi
	deadline=$((SECONDS + 30))
	while true; do
		local all=1 r
		for ((i = 0; i < n; i++)); do
			r=$(field "$TN/node$i" 'd["records"]') || r=0
			((r >= 1)) || all=0
		done
		((all)) && break
		if ((SECONDS >= deadline)); then
			cmd_status >&2
			die "the record did not reach every node within 30 s; still running: scripts/testnet.sh stop"
		fi
		sleep 0.2
	done

	echo
	cmd_status
	local last=$((n - 1))
	cat <<EOF

Query any node through its socket, e.g.:
  $TENDERCTL --socket $TN/node$last/tenderd.sock get $SAMPLE_OCID
  $TENDERCTL --socket $TN/node$last/tenderd.sock status
  $TENDERCTL --socket $TN/node1/tenderd.sock publish tender tests/data/samples/tender-kisa.json --wait
  $TENDERCTL --socket $TN/node0/tenderd.sock list
  $TENDERCTL --socket $TN/node0/tenderd.sock block 1
Over HTTP (read-only), e.g.:
  curl http://127.0.0.1:$HTTP_BASE/api/records/$SAMPLE_OCID
  curl http://127.0.0.1:$HTTP_BASE/api/releases?from_height=1
  curl http://127.0.0.1:$((HTTP_BASE + last))/metrics
  curl http://127.0.0.1:$((HTTP_BASE + last))/health
  explorer: http://127.0.0.1:$HTTP_BASE/
Sockets: $TN/node0/tenderd.sock .. $TN/node$last/tenderd.sock (paths relative to $root)
Logs:    $TN/nodeI/tenderd.log
Status:  scripts/testnet.sh status        Stop: scripts/testnet.sh stop
EOF
}

case "${1:-start}" in
start)
	(($# <= 2)) || usage
	cmd_start "${2:-4}"
	;;
stop)
	(($# == 1)) || usage
	cmd_stop
	;;
status)
	(($# == 1)) || usage
	cmd_status
	;;
-h | --help) usage ;;
*) usage ;;
esac
