#!/usr/bin/env bash
# End-to-end test of scripts/testnet.sh start --netns: tests/e2e_testnet_netns.sh BIN_DIR DATA_DIR
#
# Runs the script itself (TENDERD_BIN_DIR=BIN_DIR, so it builds nothing;
# TENDERD_TESTNET_DIR in a temporary directory) and checks what it promises:
#   1. start --netns 4: node i runs in namespace tdnet-i and listens on 10.78.0.(i+1)
#      (p2p 26656, HTTP 8080, reached from the host through the bridge); its
#      config.ini names the others PUBKEY@10.78.0.x:26656
#   2. every node is connected to the 3 others over those addresses, they agree on
#      height and last block hash, and the sample tender is committed on all 4
#   3. status names each node's address and namespace
#   4. the link node0-node1 blackholed (both ways, as start's closing note shows): once
#      both have dropped it, a tender published on node0 still commits on all 4 (node1
#      gets it through node2 and node3)
#   5. add-member: a new agency's home in namespace tdnet-4, voted in by the validators,
#      syncs and publishes a tender that reaches every node
#   6. stop: no node left, and no namespace, veth or bridge of the testnet
# Skips (exit 0) without root or ip netns, or while a --netns testnet runs on this host
# (its names are fixed). The EXIT trap stops the testnet and removes whatever is left of
# its namespaces, veths and bridge, also on failure.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
SCRIPT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/testnet.sh
NS_PREFIX=tdnet-
NS_BRIDGE=tdnetbr0
NS_VETH=tdnetv
N=4
ALL=(0 1 2 3)
ns_ip() { echo "10.78.0.$(($1 + 1))"; }

probe="${NS_PREFIX}probe$$"
if ((EUID != 0)) || ! command -v ip >/dev/null || ! ip netns add "$probe" 2>/dev/null; then
	echo "e2e_testnet_netns: skipped: needs root and ip netns"
	exit 0
fi
ip netns del "$probe" 2>/dev/null
if ip netns list | grep -q "^$NS_PREFIX" || ip link show "$NS_BRIDGE" >/dev/null 2>&1; then
	echo "e2e_testnet_netns: skipped: a scripts/testnet.sh --netns testnet runs on this host" \
		"($NS_PREFIX* or $NS_BRIDGE exist; stop it first)"
	exit 0
fi

# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_testnet_netns "$1" "$2"
T0=$SECONDS
export TENDERD_BIN_DIR=$BIN
export TENDERD_TESTNET_DIR="$TN_DIR/testnet"
NET=$TENDERD_TESTNET_DIR
NET_N=$N
for i in "${ALL[@]}"; do TN_LOGS[$NET/node$i]=1; done
TN_CTL_TIMEOUT=30

# Whatever happens: the script's stop, then by hand anything of ours still there (none of
# these names existed before this run), then the temporary directory.
cleanup() {
	local i p
	timeout 30 "$SCRIPT" stop >/dev/null 2>&1
	for ((i = 0; i < N; i++)); do
		for p in $(ip netns pids "$NS_PREFIX$i" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$NS_PREFIX$i" 2>/dev/null
		ip link del "$NS_VETH$i" 2>/dev/null
	done
	ip link del "$NS_BRIDGE" 2>/dev/null
	tn_cleanup
}
trap cleanup EXIT

# run CMD...: stdout in $OUT, stderr in $ERR, exit code in $RC.
run() {
	"$@" >"$OUT" 2>"$ERR"
	RC=$?
}

# leftovers: prints the namespaces and links of the testnet that exist.
leftovers() {
	ip netns list | awk -v p="^$NS_PREFIX" '$1 ~ p { print "namespace", $1 }'
	ip -o link show | awk -F': ' -v b="$NS_BRIDGE" -v v="^$NS_VETH" \
		'{ sub(/@.*/, "", $2) } $2 == b || $2 ~ v { print "link", $2 }'
}

# dropped A B: node A shows no connection to node B's address.
dropped() {
	ctl "$1" status
	((RC == 0)) || return 1
	[[ $(val "len([p for p in d['peers'] if p.get('state') == 'connected'
		and p['address'].split(':')[0] == '$(ns_ip "$2")'])") == 0 ]]
}

# ---------------------------------------------------------------- 1. start
step "scripts/testnet.sh start --netns $N"
run timeout 50 "$SCRIPT" start --netns "$N"
((RC == 0)) || fail "scripts/testnet.sh start --netns $N exited $RC"
cp "$OUT" "$TN_DIR/start.out"
for want in "tdnet-0" "10.78.0.1" "10.78.0.4" "ip netns exec tdnet-0 ip route add blackhole 10.78.0.2/32" \
	"tbf rate" "tdnetbr0" "10.78.0.254"; do
	grep -qF -- "$want" "$TN_DIR/start.out" || fail "start's output does not mention '$want'"
done
[[ $(cat "$NET/netns" 2>/dev/null) == "$N" ]] || fail "$NET/netns does not hold $N"

step "each node in its own namespace, listening on its own address"
declare -A PUB=()
for i in "${ALL[@]}"; do
	ns=$NS_PREFIX$i
	ip=$(ns_ip "$i")
	pid=$(cat "$NET/node$i/tenderd.pid" 2>/dev/null) || fail "no $NET/node$i/tenderd.pid"
	kill -0 "$pid" 2>/dev/null || fail "node$i (pid $pid) is not running"
	run ip netns identify "$pid"
	[[ $(cat "$OUT") == "$ns" ]] || fail "node$i (pid $pid) runs in namespace '$(cat "$OUT")', not $ns"
	run ip netns exec "$ns" ss -Hltn
	((RC == 0)) || fail "ss -ltn in $ns exited $RC"
	grep -q " $ip:26656 " "$OUT" || fail "node$i does not listen on $ip:26656 in $ns"
	grep -q " $ip:8080 " "$OUT" || fail "node$i does not serve HTTP on $ip:8080 in $ns"
	PUB[$i]=$(sval "$i" 'd["node"]["pub_key"]')
	run ip -n "$ns" -4 -o addr show dev eth0
	grep -q " $ip/24 " "$OUT" || fail "$ns's eth0 does not hold $ip/24"
done
for i in "${ALL[@]}"; do
	f="$NET/node$i/config.ini"
	grep -q "^listen = $(ns_ip "$i"):26656\$" "$f" || fail "$f does not listen on $(ns_ip "$i"):26656"
	for j in "${ALL[@]}"; do
		((j == i)) && continue
		grep -q "${PUB[$j]}@$(ns_ip "$j"):26656" "$f" ||
			fail "$f does not name node$j as ${PUB[$j]}@$(ns_ip "$j"):26656"
	done
	! grep -q '127\.0\.0\.1:' "$f" || fail "$f still names 127.0.0.1"
done

# ---------------------------------------------------------------- 2. connected, agreeing
step "every node connected to the 3 others over the namespace addresses"
wait_until 20 "not every node shows 3 connected peers" connected_all 3 "${ALL[@]}"
for i in "${ALL[@]}"; do
	ok "$i" status
	CHECK='
c = connected(d)
ips = sorted(p["address"].split(":")[0] for p in c)
want = sorted("10.78.0.%d" % (k + 1) for k in range(4) if k != int(sys.argv[2]))
assert ips == want, ("peer addresses", ips, "expected", want)
' check "$i"
done

step "the sample tender committed on all 4, which agree"
wait_until 20 "the sample tender is not on every node" has_all ocds-kr2020-jeju-0001 "${ALL[@]}"
wait_agree 20 "${ALL[@]}"
((AGREE_H >= 1)) || fail "height $AGREE_H after the sample tender"

step "HTTP from the host through the bridge"
run "$PY" - "${ALL[@]}" <<'EOF'
import json, sys, urllib.request
for i in sys.argv[1:]:
    base = "http://10.78.0.%d:8080" % (int(i) + 1)
    with urllib.request.urlopen(base + "/health", timeout=5) as r:
        h = json.load(r)
    assert h["status"] == "ok" and h["peers_connected"] == 3, (base, h)
    with urllib.request.urlopen(base + "/api/records/ocds-kr2020-jeju-0001", timeout=5) as r:
        assert r.status == 200, (base, r.status)
    print(base, "ok")
EOF
((RC == 0)) || fail "HTTP on the namespace addresses"

# ---------------------------------------------------------------- 3. status
step "status names each node's address and namespace"
run timeout 30 "$SCRIPT" status
((RC == 0)) || fail "scripts/testnet.sh status exited $RC"
for i in "${ALL[@]}"; do
	grep -Eq "^node$i $(ns_ip "$i") \(namespace $NS_PREFIX$i\): pid [0-9]+, height [0-9]+, records 1, .*peers 3 connected" "$OUT" ||
		fail "status has no line for node$i at $(ns_ip "$i") in $NS_PREFIX$i with 3 peers"
done

# ---------------------------------------------------------------- 4. cut link
step "blackhole node0-node1; a tender published on node0 commits on all 4"
run ip netns exec "${NS_PREFIX}0" ip route add blackhole "$(ns_ip 1)/32"
((RC == 0)) || fail "blackhole route in ${NS_PREFIX}0 exited $RC"
run ip netns exec "${NS_PREFIX}1" ip route add blackhole "$(ns_ip 0)/32"
((RC == 0)) || fail "blackhole route in ${NS_PREFIX}1 exited $RC"
run ip netns exec "${NS_PREFIX}0" "$PY" -c '
import socket, sys
try:
    socket.create_connection((sys.argv[1], 26656), timeout=2).close()
except OSError as e:
    print("refused:", e)
    sys.exit(0)
sys.exit("node1 is still reachable from node0")
' "$(ns_ip 1)"
((RC == 0)) || fail "the blackhole route does not cut node0 from node1"
# the p2p liveness timeout (10 s without a frame) drops the connection
wait_until 25 "node0 still shows node1 connected" dropped 0 1
wait_until 10 "node1 still shows node0 connected" dropped 1 0
variant ocds-kr2020-netns-0001 "$TN_DIR/cut.json"
ok 0 publish tender "$TN_DIR/cut.json" --wait
wait_until 20 "the tender published on node0 did not reach every node" has_all ocds-kr2020-netns-0001 "${ALL[@]}"
wait_agree 20 "${ALL[@]}"
dropped 0 1 || fail "node0 reconnected to node1 through the blackhole"
note "committed at height $AGREE_H with node0-node1 cut"

# ---------------------------------------------------------------- 5. a member voted in
step "add-member: a new agency's node in its own namespace, voted in, publishes"
ip netns exec "${NS_PREFIX}0" ip route del blackhole "$(ns_ip 1)/32"
ip netns exec "${NS_PREFIX}1" ip route del blackhole "$(ns_ip 0)/32"
run timeout 120 "$SCRIPT" add-member "Busan Metropolitan City"
((RC == 0)) || fail "scripts/testnet.sh add-member exited $RC"
grep -q "node4 (\"Busan Metropolitan City\") is a member from height" "$OUT" || fail "add-member did not say node4 is a member"
ip netns pids "${NS_PREFIX}4" | grep -qx "$(cat "$NET/node4/tenderd.pid")" || fail "node4 does not run in ${NS_PREFIX}4"
variant ocds-kr2020-netns-0002 "$TN_DIR/member.json"
ok 4 publish tender "$TN_DIR/member.json" --wait
ALL+=(4)
N=5
wait_until 30 "the member's tender did not reach every node" has_all ocds-kr2020-netns-0002 "${ALL[@]}"

# ---------------------------------------------------------------- 6. stop
step "stop removes every node, namespace, veth and the bridge"
PIDS=()
for i in "${ALL[@]}"; do PIDS+=("$(cat "$NET/node$i/tenderd.pid")"); done
run timeout 30 "$SCRIPT" stop
((RC == 0)) || fail "scripts/testnet.sh stop exited $RC"
grep -q "stopped $N node(s)" "$OUT" || fail "stop did not report $N nodes stopped"
for p in "${PIDS[@]}"; do
	kill -0 "$p" 2>/dev/null && fail "tenderd pid $p still runs after stop"
done
LEFT=$(leftovers)
[[ -z "$LEFT" ]] || fail "left after stop: $LEFT"
[[ ! -e "$NET/netns" ]] || fail "$NET/netns is still there after stop"
run timeout 30 "$SCRIPT" status
grep -q "node0: not running" "$OUT" || fail "status after stop does not say node0 is not running"

echo "e2e_testnet_netns: all steps passed in $((SECONDS - T0)) s"
