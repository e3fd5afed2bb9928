# Network-namespace helpers for the end-to-end tests (tests/e2e_netns.sh), on top of
# tests/lib_testnet.sh. Sourced, not run:
#   . tests/lib_testnet.sh; . tests/lib_netns.sh
#   ns_require NAME           exit 0 with "skipped: needs root and ip netns" unless root
#                             and `ip netns add` works (call it before tn_init)
#   tn_init ...; ns_traps     the EXIT trap then also removes the namespaces
#   ns_create N               N namespaces on one bridge, node i at 10.77.0.(i+1)/24
#   ns_start I [ARGS]         tn_start node I inside its namespace, listening on its own
#                             address, with every other node's address as its peers
#   ns_cut A B / ns_heal A B  blackhole routes between A and B (both ways) / remove them
#   ns_heal_all               remove every blackhole route of every namespace
#   ns_slow I / ns_fast I     token-bucket filter (1 mbit, 400 ms queue) on both ends of
#                             node I's veth / remove it
#   ns_flap A B SECS PERIOD   in the background: cut and heal A-B every PERIOD s for SECS s
#   ns_committed FILE NODES   one JSON-RPC batch per node (status and tender.get of every
#                             ocid in FILE, lines "ocid record_id"); sets NS_ON_ALL (the
#                             number of record ids committed on every node) and NS_SAME
#                             (yes when the nodes share height and last block hash, with
#                             empty mempools and no catching up); true when every id is
#                             committed on every node and NS_SAME is yes
# Names carry a per-run suffix (pid and a random byte), so two runs never collide; the
# addresses are the same in every run but live on separate bridges and namespaces.
# shellcheck shell=bash disable=SC2034 # NS_* are read by the sourcing scripts

NS_SFX=$(printf '%x%02x' $$ $((RANDOM % 256)))
NS_PREFIX="tdn-$NS_SFX"      # namespace of node i: $NS_PREFIX-i
NS_BRIDGE="tdb$NS_SFX"       # at most 11 characters (IFNAMSIZ 16)
NS_PORT=26656
NS_LIST=()                   # namespaces created here
NS_LINKS=()                  # root-namespace links created here
NS_FLAP_PID=""
NS_ON_ALL=0
NS_SAME=no

ns_name() { echo "$NS_PREFIX-$1"; }
ns_veth() { echo "tdv$NS_SFX$1"; }
ns_ip() { echo "10.77.0.$(($1 + 1))"; }

ns_require() {
	local probe="$NS_PREFIX-probe"
	if ((EUID != 0)) || ! command -v ip >/dev/null || ! ip netns add "$probe" 2>/dev/null; then
		echo "$1: skipped: needs root and ip netns"
		exit 0
	fi
	ip netns del "$probe" 2>/dev/null
	command -v tc >/dev/null || { echo "$1: skipped: needs root and ip netns (tc is missing)"; exit 0; }
}

ns_cleanup() {
	local ns l p
	if [[ -n "$NS_FLAP_PID" ]]; then
		kill "$NS_FLAP_PID" 2>/dev/null
		wait "$NS_FLAP_PID" 2>/dev/null
		NS_FLAP_PID=""
	fi
	for ns in "${NS_LIST[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	for l in "${NS_LINKS[@]}"; do
		ip link del "$l" 2>/dev/null
	done
	NS_LIST=()
	NS_LINKS=()
}

# ns_traps: after tn_init, so the daemons die before their namespaces go.
ns_traps() {
	trap 'tn_cleanup; ns_cleanup' EXIT
}

# nsrun CMD...: runs a setup command, fails the test when it fails.
nsrun() {
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
	((RC == 0)) || fail "$* exited $RC: $(head -c 300 "$ERR")"
}

ns_create() {
	local n=$1 i ns v
	nsrun ip link add "$NS_BRIDGE" type bridge
	NS_LINKS+=("$NS_BRIDGE")
	nsrun ip link set "$NS_BRIDGE" up
	for ((i = 0; i < n; i++)); do
		ns=$(ns_name "$i")
		v=$(ns_veth "$i")
		nsrun ip netns add "$ns"
		NS_LIST+=("$ns")
		nsrun ip link add "$v" type veth peer name eth0 netns "$ns"
		NS_LINKS+=("$v")
		nsrun ip link set "$v" master "$NS_BRIDGE" up
		nsrun ip -n "$ns" addr add "$(ns_ip "$i")/24" dev eth0
		nsrun ip -n "$ns" link set eth0 up
		nsrun ip -n "$ns" link set lo up
		# tn_start runs "$TENDERD"; this one enters the node's namespace first (same pid)
		printf '#!/bin/sh\nexec ip netns exec %s %q "$@"\n' "$ns" "$TENDERD" >"$TN_DIR/tenderd-ns$i"
		chmod +x "$TN_DIR/tenderd-ns$i"
	done
	NS_N=$n
}

ns_peers() {
	local i=$1 j s=""
	for ((j = 0; j < NS_N; j++)); do
		((j == i)) || s+="$(ns_ip "$j"):$NS_PORT,"
	done
	echo "${s%,}"
}

ns_start() {
	local i=$1
	shift
	TENDERD="$TN_DIR/tenderd-ns$i" tn_start "$i" --set "p2p.listen=$(ns_ip "$i"):$NS_PORT" \
		--set "p2p.peers=$(ns_peers "$i")" "$@"
}

ns_cut() {
	nsrun ip -n "$(ns_name "$1")" route replace blackhole "$(ns_ip "$2")/32"
	nsrun ip -n "$(ns_name "$2")" route replace blackhole "$(ns_ip "$1")/32"
}

ns_heal() {
	ip -n "$(ns_name "$1")" route del blackhole "$(ns_ip "$2")/32" 2>/dev/null
	ip -n "$(ns_name "$2")" route del blackhole "$(ns_ip "$1")/32" 2>/dev/null
	return 0
}

ns_heal_all() {
	local ns r
	for ns in "${NS_LIST[@]}"; do
		while read -r r; do
			[[ -n "$r" ]] && ip -n "$ns" route del blackhole "$r" 2>/dev/null
		done < <(ip -n "$ns" route show type blackhole | awk '{print $2}')
	done
	return 0
}

ns_slow() {
	local tbf=(tbf rate 1mbit burst 32kbit latency 400ms)
	nsrun tc qdisc add dev "$(ns_veth "$1")" root "${tbf[@]}"
	nsrun tc -n "$(ns_name "$1")" qdisc add dev eth0 root "${tbf[@]}"
}

ns_fast() {
	tc qdisc del dev "$(ns_veth "$1")" root 2>/dev/null
	tc -n "$(ns_name "$1")" qdisc del dev eth0 root 2>/dev/null
	return 0
}

# ns_flap A B SECS PERIOD: sets NS_FLAP_PID; the link ends healed. ns_flap_wait waits for it.
ns_flap() {
	local a=$1 b=$2 secs=$3 period=$4
	(
		# not ns_cut: nsrun would write the foreground's $OUT and $ERR
		end=$((SECONDS + secs))
		while ((SECONDS < end)); do
			ip -n "$(ns_name "$a")" route replace blackhole "$(ns_ip "$b")/32"
			ip -n "$(ns_name "$b")" route replace blackhole "$(ns_ip "$a")/32"
			sleep "$period"
			ns_heal "$a" "$b"
			sleep "$period"
		done
	) >/dev/null 2>&1 &
	NS_FLAP_PID=$!
}

# ns_resets A B SECS PERIOD: in the background, every PERIOD s for SECS s, destroys the
# established TCP connections between A and B (ss -K, both sides), so both nodes see the
# connection drop and must redial: flapping connections, not just delayed packets.
ns_resets() {
	local a=$1 b=$2 secs=$3 period=$4
	(
		end=$((SECONDS + secs))
		while ((SECONDS < end)); do
			ip netns exec "$(ns_name "$a")" ss -K dst "$(ns_ip "$b")"
			ip netns exec "$(ns_name "$b")" ss -K dst "$(ns_ip "$a")"
			sleep "$period"
		done
	) >/dev/null 2>&1 &
	NS_FLAP_PID=$!
}

ns_flap_wait() {
	[[ -n "$NS_FLAP_PID" ]] || return 0
	wait "$NS_FLAP_PID"
	NS_FLAP_PID=""
}

ns_committed() {
	local file=$1 line
	shift
	local socks=() i
	for i in "$@"; do socks+=("$(home "$i")/tenderd.sock"); done
	line=$("$PY" - "$file" "${socks[@]}" 2>"$TN_DIR/committed.err" <<'EOF'
import json, socket, sys
want = [l.split() for l in open(sys.argv[1]) if l.strip()]
ocids = sorted(set(o for o, _ in want))
seen = None
tops = set()
for path in sys.argv[2:]:
    reqs = [{"jsonrpc": "2.0", "id": 0, "method": "status", "params": {}}]
    reqs += [{"jsonrpc": "2.0", "id": k + 1, "method": "tender.get", "params": {"ocid": o}}
             for k, o in enumerate(ocids)]
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    try:
        s.connect(path)
        s.sendall((json.dumps(reqs) + "\n").encode())
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(1 << 20)
            if not chunk:
                break
            buf += chunk
        answers = {a["id"]: a for a in json.loads(buf)}
    except (OSError, ValueError):
        print("0 no")
        sys.exit(1)
    finally:
        s.close()
    st = answers[0]["result"]
    tops.add((st["height"], st["last_block_hash"], st["mempool"] == 0 and not st.get("catching_up")))
    ids = set()
    for k, o in enumerate(ocids):
        r = answers[k + 1].get("result")
        if r:
            ids.update(rel["record_id"] for rel in r["releases"] if rel.get("height", 0) >= 1)
    have = set(rid for _, rid in want if rid in ids)
    seen = have if seen is None else seen & have
same = len(tops) == 1 and next(iter(tops))[2]
print(len(seen), "yes" if same else "no")
sys.exit(0 if same and len(seen) == len(want) else 1)
EOF
)
	local rc=$?
	NS_ON_ALL=${line%% *}
	NS_SAME=${line##* }
	[[ -n "$NS_ON_ALL" ]] || NS_ON_ALL=0
	[[ -n "$NS_SAME" ]] || NS_SAME=no
	return $rc
}
