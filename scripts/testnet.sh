#!/usr/bin/env bash
# Runs a local multi-node tenderd testnet:
#   scripts/testnet.sh [start [N] [--netns] | add-member|add-validator|add-observer NAME |
#                       stop | status]
#
#   start [N]  (default, N = 4) builds tenderd (scripts/build.sh, incremental),
#              stops any running testnet, creates fresh homes in ./testnet/node0..N-1
#              (one shared genesis of N validators), starts every node in the
#              background, waits until they are all connected, publishes
#              tests/data/samples/tender-jeju.json on node0 and waits until every
#              node holds it, then prints how to query each node
#   --netns    (with start, before or after N; needs root and ip netns) runs node I
#              in its own network namespace tdnet-I with its own address
#              10.78.0.(I+1)/24 on a bridge tdnetbr0 (the host is 10.78.0.254): p2p
#              on port 26656 and HTTP on port 8080 of that address, so the testnet
#              behaves like N machines whose links can be cut (ip route blackhole)
#              or slowed (tc); start then prints how
#   add-member NAME, add-validator NAME, add-observer NAME
#              walks a new agency into the running testnet the way agencies on their own
#              machines do it: a new home testnet/node<N> (tenderd init --genesis) and its
#              identity (tenderd id), a proposal on the first validator and every other
#              validator's approval (tenderctl propose / approve), then the node starts,
#              syncs the chain and takes its role at the height the change takes effect
#              (records are published to get the chain there); with --netns in its own
#              namespace tdnet-<N>
#   stop       SIGTERM to every node, SIGKILL to any still running after 15 s; for a
#              --netns testnet it then removes its namespaces, veths and bridge
#   status     height, records and connected peers of each node (and its address)
#
# Node i listens for p2p on 127.0.0.1:(TENDERD_BASE_PORT + i), default base 26656, and
# serves HTTP (OCDS API, /metrics, /health, the explorer at /) on 127.0.0.1:
# (TENDERD_HTTP_BASE_PORT + i), default base TENDERD_BASE_PORT + 100 (with --netns:
# 10.78.0.(i+1):26656 and 10.78.0.(i+1):8080; both port variables are ignored). Its
# socket is testnet/nodeI/tenderd.sock (with --netns too: a Unix socket is reached
# from any namespace), its log testnet/nodeI/tenderd.log and its pid
# testnet/nodeI/tenderd.pid. TENDERD_TESTNET_DIR replaces ./testnet, TENDERD_BIN_DIR
# the build/bin that tenderd and tenderctl run from (when it is set, start builds
# nothing). Works from any directory (relative paths are under the repository root,
# but for those two variables, which are under the current directory). Needs python3
# (installed by scripts/setup.sh).
set -euo pipefail

caller=$PWD
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# under_caller PATH: PATH, made absolute from the caller's directory when relative.
under_caller() {
	if [[ "$1" == /* ]]; then echo "$1"; else echo "$caller/$1"; fi
}

TN=testnet
[[ -n "${TENDERD_TESTNET_DIR:-}" ]] && TN=$(under_caller "$TENDERD_TESTNET_DIR")
BIN=build/bin
BUILD=1
if [[ -n "${TENDERD_BIN_DIR:-}" ]]; then
	BIN=$(under_caller "$TENDERD_BIN_DIR")
	BUILD=0
fi
TENDERD=$BIN/tenderd
TENDERCTL=$BIN/tenderctl
SAMPLE=tests/data/samples/tender-jeju.json
SAMPLE_OCID=ocds-kr2020-jeju-0001
BASE=${TENDERD_BASE_PORT:-26656}
HTTP_BASE=${TENDERD_HTTP_BASE_PORT:-$((BASE + 100))}
PY=python3
[[ -x /usr/bin/python3 ]] && PY=/usr/bin/python3

# --netns: fixed names, so a leftover is recognisable; another subnet than the e2e tests'
# 10.77.0.0/24, so a running testnet and the test suite never collide.
NS_PREFIX=tdnet-     # namespace of node i: tdnet-i
NS_BRIDGE=tdnetbr0
NS_VETH=tdnetv       # host end of node i's veth: tdnetvI (eth0 inside the namespace)
NS_NET=10.78.0       # node i: 10.78.0.(i+1)/24
NS_HOST=$NS_NET.254  # the host's address on the bridge
NS_P2P_PORT=26656
NS_HTTP_PORT=8080
NS_MARK=netns        # $TN/netns holds the node count of a --netns testnet

usage() {
	awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" >&2
	exit 3
}

die() {
	echo "testnet.sh: $*" >&2
	exit 1
}

# shown PATH: PATH as messages name it (under the repository root when relative).
shown() {
	if [[ "$1" == /* ]]; then echo "$1"; else echo "$root/$1"; fi
}

ns_ip() { echo "$NS_NET.$(($1 + 1))"; }

# netns_count: the node count of the --netns testnet in $TN, or false for a plain one.
netns_count() {
	local n
	[[ -f "$TN/$NS_MARK" ]] || return 1
	n=$(cat "$TN/$NS_MARK" 2>/dev/null) || return 1
	[[ "$n" =~ ^[0-9]+$ ]] || return 1
	echo "$n"
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
		if [[ -d "$d" ]]; then echo "$d"; fi
	done | sort -V
}

# status_line DIR [LABEL]: one line describing the node (reads its status through the
# socket); LABEL names it (default: the directory's name).
status_line() {
	local d=$1 name=${2:-$(basename "$1")} p js
	if ! p=$(node_pid "$d"); then
		echo "$name: not running"
		return
	fi
	if ! js=$(timeout 10 "$TENDERCTL" --socket "$d/tenderd.sock" status 2>&1); then
		echo "$name: pid $p, no answer on $d/tenderd.sock ($js)"
		return
	fi
	"$PY" -c '
import json, sys
d = json.loads(sys.argv[2])
peers = [p for p in d.get("peers", []) if p.get("state") == "connected"]
print("%s: pid %s, height %s, records %s, mempool %s, peers %d connected, last block %s%s" % (
    sys.argv[1], sys.argv[3], d["height"], d["records"], d["mempool"], len(peers),
    d["last_block_hash"][:16], ", catching up" if d.get("catching_up") else ""))
' "$name" "$js" "$p"
}

# field DIR EXPR: a python expression on d, the node's status.
field() {
	local js
	js=$(timeout 10 "$TENDERCTL" --socket "$1/tenderd.sock" status 2>/dev/null) || return 1
	"$PY" -c 'import json, sys; d = json.loads(sys.argv[1]); print('"$2"')' "$js"
}

# netns_down: removes the namespaces (with any process left in them), veths and bridge
# of the --netns testnet in $TN, then its mark; prints what it removed.
netns_down() {
	local n i ns p left try nss
	n=$(netns_count) || return 0
	((EUID == 0)) ||
		die "$(shown "$TN") is a --netns testnet: removing its namespaces needs root (sudo $0 stop)"
	for ((i = 0; i < n; i++)); do
		ns=$NS_PREFIX$i
		if ip netns pids "$ns" >/dev/null 2>&1; then
			for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
			ip netns del "$ns" 2>/dev/null || true
		fi
		# the namespace's end goes with it, taking the pair: this one may already be gone
		ip link del "$NS_VETH$i" 2>/dev/null || true
	done
	ip link del "$NS_BRIDGE" 2>/dev/null || true
	for ((try = 0; try < 30; try++)); do
		left=""
		nss=" $(ip netns list 2>/dev/null | awk '{ printf "%s ", $1 }')"
		for ((i = 0; i < n; i++)); do
			[[ "$nss" == *" $NS_PREFIX$i "* ]] && left+=" $NS_PREFIX$i"
			ip link show "$NS_VETH$i" >/dev/null 2>&1 && left+=" $NS_VETH$i"
		done
		ip link show "$NS_BRIDGE" >/dev/null 2>&1 && left+=" $NS_BRIDGE"
		[[ -n "$left" ]] || break
		sleep 0.1
	done
	[[ -z "$left" ]] || die "could not remove$left"
	rm -f "$TN/$NS_MARK"
	echo "testnet.sh: removed namespaces $NS_PREFIX{0..$((n - 1))}, veths $NS_VETH{0..$((n - 1))} and bridge $NS_BRIDGE"
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
		netns_down
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
	netns_down
}

cmd_status() {
	local d any=0 n i label
	n=$(netns_count) || n=""
	for d in $(node_dirs); do
		any=1
		label=$(basename "$d")
		if [[ -n "$n" && "$label" =~ ^node([0-9]+)$ ]]; then
			i=${BASH_REMATCH[1]}
			label+=" $(ns_ip "$i") (namespace $NS_PREFIX$i)"
		fi
		status_line "$d" "$label"
	done
	((any)) || echo "testnet.sh: no testnet in $(shown "$TN") (run scripts/testnet.sh start)"
	if ((any)) && [[ -n "$n" ]]; then
		echo "  p2p on port $NS_P2P_PORT, HTTP on http://ADDRESS:$NS_HTTP_PORT/;" \
			"the host is $NS_HOST on bridge $NS_BRIDGE"
	fi
	return 0
}

# show_log DIR: the tail of a node's log, indented.
show_log() {
	echo "--- $1/tenderd.log (last 20 lines):" >&2
	tail -n 20 "$1/tenderd.log" 2>/dev/null | sed 's/^/    /' >&2
}

# netns_check: dies unless this shell may create network namespaces.
netns_check() {
	local probe="${NS_PREFIX}probe$$" why
	((EUID == 0)) || die "--netns needs root to create network namespaces (sudo $0 start --netns)"
	command -v ip >/dev/null || die "--netns needs the ip command (apt-get install iproute2)"
	if ! why=$(ip netns add "$probe" 2>&1); then
		die "--netns needs ip netns, but 'ip netns add' failed: $why"
	fi
	ip netns del "$probe" 2>/dev/null || true
}

# netns_free: dies unless the names and the subnet of --netns are free (after this
# testnet's own leftovers are gone).
netns_free() {
	local left
	left=$(ip netns list 2>/dev/null | awk -v p="^$NS_PREFIX" '$1 ~ p { printf " %s", $1 }')
	if ip link show "$NS_BRIDGE" >/dev/null 2>&1; then left+=" bridge $NS_BRIDGE"; fi
	if [[ -n "$left" ]]; then
		die "another --netns testnet holds$left (started with another TENDERD_TESTNET_DIR?);" \
			"stop it with its scripts/testnet.sh stop, or remove them with ip netns del NAME" \
			"and ip link del $NS_BRIDGE"
	fi
	if ip -4 -o addr show 2>/dev/null | grep -q " $NS_NET\.[0-9]*/"; then
		die "--netns uses $NS_NET.0/24, but this host already has an address in it:" \
			"$(ip -4 -o addr show | grep " $NS_NET\.[0-9]*/" | awk '{ print $2, $4 }' | head -n 1)"
	fi
}

# ns_run CMD...: one step of netns_up; on failure undoes everything and dies.
ns_run() {
	local why
	if ! why=$("$@" 2>&1); then
		netns_down >/dev/null
		die "--netns: '$*' failed: $why"
	fi
}

# netns_up N: the bridge and N namespaces, node i at 10.78.0.(i+1)/24 on eth0.
netns_up() {
	local n=$1 i ns
	echo "$n" >"$TN/$NS_MARK"
	ns_run ip link add "$NS_BRIDGE" type bridge
	ns_run ip addr add "$NS_HOST/24" dev "$NS_BRIDGE"
	ns_run ip link set "$NS_BRIDGE" up
	for ((i = 0; i < n; i++)); do
		ns=$NS_PREFIX$i
		ns_run ip netns add "$ns"
		ns_run ip link add "$NS_VETH$i" type veth peer name eth0 netns "$ns"
		ns_run ip link set "$NS_VETH$i" master "$NS_BRIDGE" up
		ns_run ip -n "$ns" addr add "$(ns_ip "$i")/24" dev eth0
		ns_run ip -n "$ns" link set eth0 up
		ns_run ip -n "$ns" link set lo up
	done
}

# netns_config N: each node's [p2p] listen and peers (PUBKEY@HOST:PORT) on the namespace
# addresses instead of 127.0.0.1:BASE+j.
netns_config() {
	local n=$1 i j f expr=()
	for ((j = 0; j < n; j++)); do
		expr+=(-e "s/\\b127\\.0\\.0\\.1:$((BASE + j))\\b/$(ns_ip "$j"):$NS_P2P_PORT/g")
	done
	for ((i = 0; i < n; i++)); do
		f="$TN/node$i/config.ini"
		sed -i "${expr[@]}" "$f" || return 1
		grep -q "^listen = $(ns_ip "$i"):$NS_P2P_PORT\$" "$f" || return 1
		(($(grep -o "@$NS_NET\\.[0-9]*:$NS_P2P_PORT" "$f" | wc -l) == n - 1)) || return 1
		! grep -q '127\.0\.0\.1:' "$f" || return 1
	done
}

cmd_start() {
	local n=$1 netns=$2 i d p deadline
	if ! [[ "$n" =~ ^[0-9]+$ ]] || ((n < 1 || n > 64)); then
		die "N must be a number from 1 to 64, not '$n'"
	fi
	if ((netns)); then
		netns_check
		BASE=$NS_P2P_PORT # the homes' ports, before netns_config moves them
	elif ! [[ "$BASE" =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE + n - 1 > 65535)); then
		die "TENDERD_BASE_PORT must be a port number from 1024 (with room for $n ports), not '$BASE'"
	fi

	if ((BUILD)); then
		local blog
		blog=$(mktemp /tmp/tenderd-build.XXXXXX)
		echo "testnet.sh: building (scripts/build.sh)"
		if ! scripts/build.sh >"$blog" 2>&1; then
			tail -n 40 "$blog" >&2
			rm -f "$blog"
			die "the build failed (output above)"
		fi
		rm -f "$blog"
	else
		[[ -x "$TENDERD" && -x "$TENDERCTL" ]] ||
			die "TENDERD_BIN_DIR=$BIN holds no executable tenderd and tenderctl"
	fi

	if [[ -d "$TN" ]]; then
		cmd_stop >/dev/null
		rm -rf "$TN"
	fi

	if ((netns)); then
		netns_free
		mkdir -p "$TN"
		netns_up "$n"
		"$TENDERD" testnet --nodes "$n" --out "$TN" --base-port "$BASE" >/dev/null || {
			cmd_stop >/dev/null
			die "tenderd testnet --nodes $n --out $TN --base-port $BASE failed"
		}
		netns_config "$n" || {
			cmd_stop >/dev/null
			die "could not set the namespace addresses in $TN/node*/config.ini"
		}
	else
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
	fi

	for ((i = 0; i < n; i++)); do node_launch "$TN/node$i" "$i" "$netns"; done

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
	if ((netns)); then
		echo "testnet.sh: $n nodes running in namespaces $NS_PREFIX{0..$((n - 1))}, at" \
			"$(ns_ip 0)..$(ns_ip $((n - 1))), p2p port $NS_P2P_PORT, HTTP port $NS_HTTP_PORT"
	else
		echo "testnet.sh: $n nodes running, p2p ports $BASE..$((BASE + n - 1)), HTTP ports $HTTP_BASE..$((HTTP_BASE + n - 1))"
	fi

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
	local last=$((n - 1)) h0 hl
	if ((netns)); then
		h0="$(ns_ip 0):$NS_HTTP_PORT"
		hl="$(ns_ip "$last"):$NS_HTTP_PORT"
	else
		h0="127.0.0.1:$HTTP_BASE"
		hl="127.0.0.1:$((HTTP_BASE + last))"
	fi
	cat <<EOF

Query any node through its socket, e.g.:
  $TENDERCTL --socket $TN/node$last/tenderd.sock get $SAMPLE_OCID
  $TENDERCTL --socket $TN/node$last/tenderd.sock status
  $TENDERCTL --socket $TN/node1/tenderd.sock publish tender tests/data/samples/tender-kisa.json --wait
  $TENDERCTL --socket $TN/node0/tenderd.sock list
  $TENDERCTL --socket $TN/node0/tenderd.sock block 1
Over HTTP (read-only), e.g.:
  curl http://$h0/api/records/$SAMPLE_OCID
  curl http://$h0/api/releases?from_height=1
  curl http://$hl/metrics
  curl http://$hl/health
  explorer: http://$h0/
Sockets: $TN/node0/tenderd.sock .. $TN/node$last/tenderd.sock$([[ "$TN" == /* ]] || echo " (paths relative to $root)")
Logs:    $TN/nodeI/tenderd.log
Status:  scripts/testnet.sh status        Stop: scripts/testnet.sh stop
EOF
	((netns)) || return 0
	local tbf="tbf rate 1mbit burst 32kbit latency 400ms"
	cat <<EOF
Namespaces: node I runs in ${NS_PREFIX}I at $NS_NET.(I+1) ($(ns_ip 0) .. $(ns_ip "$last")), p2p port $NS_P2P_PORT,
  HTTP port $NS_HTTP_PORT; the host is $NS_HOST on bridge $NS_BRIDGE, node I's veth is ${NS_VETH}I.
  A command inside node0's namespace: ip netns exec ${NS_PREFIX}0 ss -tn
EOF
	if ((n >= 2)); then
		cat <<EOF
Cut the link node0-node1 (both ways; the other links stay), then heal it:
  ip netns exec ${NS_PREFIX}0 ip route add blackhole $(ns_ip 1)/32
  ip netns exec ${NS_PREFIX}1 ip route add blackhole $(ns_ip 0)/32
  ip netns exec ${NS_PREFIX}0 ip route del blackhole $(ns_ip 1)/32
  ip netns exec ${NS_PREFIX}1 ip route del blackhole $(ns_ip 0)/32
EOF
	fi
	cat <<EOF
Slow node0 with a token bucket (1 mbit/s, up to 400 ms queued, both ways; tbf, since
  netem is missing from some kernels), then undo it:
  tc qdisc add dev ${NS_VETH}0 root $tbf
  ip netns exec ${NS_PREFIX}0 tc qdisc add dev eth0 root $tbf
  tc qdisc del dev ${NS_VETH}0 root; ip netns exec ${NS_PREFIX}0 tc qdisc del dev eth0 root
Stop removes the namespaces, veths and bridge: scripts/testnet.sh stop
EOF
}

# node_launch DIR I NETNS: starts node I (home DIR) in the background. setsid: the node
# leaves this shell's session and survives the terminal; the inner shell writes its own
# pid and becomes tenderd (exec; ip netns exec enters the namespace and execs tenderd:
# still the same pid).
node_launch() {
	local d=$1 i=$2 netns=$3
	if ((netns)); then
		# shellcheck disable=SC2016 # expanded by the inner shell
		setsid nohup bash -c 'echo $$ >"$1/tenderd.pid"; exec ip netns exec "$4" "$2" run --home "$1" --set "http.listen=$3"' \
			_ "$d" "$TENDERD" "$(ns_ip "$i"):$NS_HTTP_PORT" "$NS_PREFIX$i" >"$d/tenderd.log" 2>&1 </dev/null &
	else
		# shellcheck disable=SC2016 # expanded by the inner shell
		setsid nohup bash -c 'echo $$ >"$1/tenderd.pid"; exec "$2" run --home "$1" --set "http.listen=127.0.0.1:$3"' \
			_ "$d" "$TENDERD" "$((HTTP_BASE + i))" >"$d/tenderd.log" 2>&1 </dev/null &
	fi
}

# ctl_on DIR ARGS...: tenderctl on DIR's socket (60 s at most).
ctl_on() {
	local d=$1
	shift
	timeout 60 "$TENDERCTL" --socket "$d/tenderd.sock" "$@"
}

# cmd_add ROLE NAME: a new agency's node joins the running testnet by the validators' vote.
cmd_add() {
	local role=$1 name=$2 netns=0 n n_ns k d addr peers="" j pj aj prop id st eff deadline proposer="" voters=()
	[[ -n "$name" ]] || die "add-$role needs the new agency's NAME"
	node_pid "$TN/node0" >/dev/null || die "no testnet is running in $(shown "$TN") (scripts/testnet.sh start)"
	[[ -x "$TENDERD" && -x "$TENDERCTL" ]] || die "no tenderd and tenderctl in $BIN (scripts/build.sh)"
	n=$(node_dirs | wc -l)
	k=$n
	d="$TN/node$k"
	if n_ns=$(netns_count); then
		netns=1
		((EUID == 0)) || die "the testnet runs in namespaces: run add-$role as root"
		# a failed step leaves the rest of the testnet running; stop removes what was made
		ip netns add "$NS_PREFIX$k" || die "ip netns add $NS_PREFIX$k failed"
		echo "$((n_ns + 1))" >"$TN/$NS_MARK"
		{ ip link add "$NS_VETH$k" type veth peer name eth0 netns "$NS_PREFIX$k" &&
			ip link set "$NS_VETH$k" master "$NS_BRIDGE" up &&
			ip -n "$NS_PREFIX$k" addr add "$(ns_ip "$k")/24" dev eth0 &&
			ip -n "$NS_PREFIX$k" link set eth0 up && ip -n "$NS_PREFIX$k" link set lo up; } ||
			die "could not give $NS_PREFIX$k its address $(ns_ip "$k")"
		addr="$(ns_ip "$k"):$NS_P2P_PORT"
	else
		addr="127.0.0.1:$((BASE + k))"
	fi

	echo "testnet.sh: 1. the new agency creates its home on the chain and prints its identity"
	"$TENDERD" init --home "$d" --name "$name" --genesis "$TN/node0/genesis.json" >/dev/null 2>&1 ||
		die "tenderd init --home $d --genesis failed"
	for ((j = 0; j < n; j++)); do
		node_pid "$TN/node$j" >/dev/null || continue
		pj=$(field "$TN/node$j" 'd["node"]["pub_key"]') || continue
		if ((netns)); then aj="$(ns_ip "$j"):$NS_P2P_PORT"; else aj="127.0.0.1:$((BASE + j))"; fi
		peers+="${peers:+\\n\\t}$pj@$aj"
		if [[ $(field "$TN/node$j" 'd["node"]["role"]') == validator ]]; then
			if [[ -z "$proposer" ]]; then proposer="$TN/node$j"; else voters+=("$TN/node$j"); fi
		fi
	done
	[[ -n "$proposer" ]] || die "no running validator to propose the change"
	sed -i "/^\[p2p\]/,/^\[/ s|^listen = .*|listen = $addr|" "$d/config.ini"
	sed -i "s|^peers =.*|peers = $peers|" "$d/config.ini"
	"$TENDERD" id --home "$d" --address "$addr" >"$d/identity.json" || die "tenderd id --home $d failed"
	cat "$d/identity.json"

	echo "testnet.sh: 2. $(basename "$proposer") proposes it as a $role; every other validator approves"
	prop=$(ctl_on "$proposer" propose "add-$role" "$d/identity.json" --wait --rationale "testnet.sh add-$role") ||
		die "the proposal failed: $prop"
	id=$(echo "$prop" | "$PY" -c 'import json, sys; print(json.load(sys.stdin)["id"])')
	echo "  proposal $id"
	for j in "${voters[@]}"; do
		st=$(ctl_on "$proposer" proposals | "$PY" -c 'import json, sys
print([p for p in json.load(sys.stdin)["proposals"] if p["id"] == sys.argv[1]][0]["status"])' "$id")
		[[ "$st" == pending ]] || break
		ctl_on "$j" approve "$id" --wait >/dev/null || die "$(basename "$j") could not approve $id"
		echo "  approved by $(basename "$j")"
	done
	eff=$(ctl_on "$proposer" proposals | "$PY" -c 'import json, sys
p = [p for p in json.load(sys.stdin)["proposals"] if p["id"] == sys.argv[1]][0]
print(p.get("effect_height", "") if p["status"] == "decided" else "")' "$id")
	[[ -n "$eff" ]] || die "proposal $id was not decided (tenderctl proposals on $(basename "$proposer"))"
	echo "  decided: takes effect at height $eff"

	echo "testnet.sh: 3. the new node starts, syncs the chain and takes its role at height $eff"
	node_launch "$d" "$k" "$netns"
	deadline=$((SECONDS + 60))
	until [[ -S "$d/tenderd.sock" ]] && [[ $(field "$d" 'd["node"]["role"]' 2>/dev/null) == "$role" ]]; do
		# records move the chain to the effect height
		if (($(field "$proposer" 'd["height"]') < eff)); then
			sed "s/ocds-kr2020-jeju-0001/ocds-kr2020-testnet-$k-$SECONDS/" "$SAMPLE" >"$d.filler.json"
			ctl_on "$proposer" publish tender "$d.filler.json" --wait >/dev/null || true
		fi
		((SECONDS < deadline)) || { show_log "$d"; die "node$k did not take its role within 60 s (log above)"; }
		sleep 0.3
	done
	rm -f "$d.filler.json"
	echo
	cmd_status
	cat <<EOF

node$k ("$name") is $([[ $role == observer ]] && echo an || echo a) $role from height $eff. Try:
  $TENDERCTL --socket $d/tenderd.sock status
  $TENDERCTL --socket $d/tenderd.sock members
  $TENDERCTL --socket $TN/node0/tenderd.sock proposals
EOF
	[[ "$role" == observer ]] ||
		echo "  $TENDERCTL --socket $d/tenderd.sock publish tender tests/data/samples/tender-kisa.json --wait"
}

# start [N] [--netns], in either order.
start_args() {
	local n="" netns=0 a
	for a in "$@"; do
		case "$a" in
		--netns) ((netns == 0)) || usage; netns=1 ;;
		-h | --help) usage ;;
		*) [[ -z "$n" ]] || usage; n=$a ;;
		esac
	done
	cmd_start "${n:-4}" "$netns"
}

case "${1:-start}" in
start)
	(($# <= 3)) || usage
	start_args "${@:2}"
	;;
add-member | add-validator | add-observer)
	(($# == 2)) || usage
	cmd_add "${1#add-}" "$2"
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
