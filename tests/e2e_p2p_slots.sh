#!/usr/bin/env bash
# End-to-end test of the p2p handshake slots: tests/e2e_p2p_slots.sh BIN_DIR DATA_DIR
#
# A 4-validator testnet commits a few blocks; node3 is stopped and the other three
# commit more. A client with no keys then holds 70 idle connections (it never sends
# a byte; any connection the node closes is opened again every 0.2 s) on the p2p
# port of every node, node3's included, all from one address (127.0.0.2; the nodes
# talk from 127.0.0.1). node3 is restarted meanwhile: it must connect to the three
# others and catch up to their height, and a tender published on it must commit on
# every node, while the attack goes on. Each node then logs its per-address refusal.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init e2e_p2p_slots "$1" "$2"

ALL=(0 1 2 3)
LIVE=(0 1 2)
HOLD=70
ATTACK_SRC=127.0.0.2

step "a 4-node testnet commits two tenders"
tn_create 4
tn_start_all
wait_until 30 "not every node shows 3 connected peers" connected_all 3 "${ALL[@]}"
for k in 1 2; do
	variant "ocds-kr2020-slot-$k" "$TN_DIR/slot-$k.json"
	ok "$k" publish tender "$TN_DIR/slot-$k.json" --wait
done
wait_agree 30 "${ALL[@]}"
note "height $AGREE_H with 4 nodes"

step "node3 stops; the other three commit two more"
tn_stop 3
for k in 3 4; do
	variant "ocds-kr2020-slot-$k" "$TN_DIR/slot-$k.json"
	ok 0 publish tender "$TN_DIR/slot-$k.json" --wait
done
wait_agree 30 "${LIVE[@]}"
H_LIVE=$AGREE_H
note "height $H_LIVE without node3"

step "$HOLD idle connections from $ATTACK_SRC held on every node's p2p port"
PORTS=$NET_PORT,$((NET_PORT + 1)),$((NET_PORT + 2)),$((NET_PORT + 3))
"$PY" - "$PORTS" "$ATTACK_SRC" "$HOLD" 150 "$TN_DIR/holder.stats" >"$TN_DIR/holder.out" 2>&1 <<'EOF' &
import json, os, select, socket, sys, time

ports = [int(x) for x in sys.argv[1].split(",")]
src, hold, secs, stats = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
conns = {p: [] for p in ports}
opened = {p: 0 for p in ports}
closed_by_node = {p: 0 for p in ports}
end = time.monotonic() + secs
while time.monotonic() < end:
    for p in ports:
        alive = []
        for s in conns[p]:
            try:
                r, _, _ = select.select([s], [], [], 0)
                if r and not s.recv(4096, socket.MSG_DONTWAIT):
                    raise OSError("closed")
                alive.append(s)
            except OSError:
                closed_by_node[p] += 1
                s.close()
        conns[p] = alive
        while len(conns[p]) < hold:
            s = socket.socket()
            s.setblocking(False)
            try:
                s.bind((src, 0))
                s.connect_ex(("127.0.0.1", p))
            except OSError:
                s.close()
                break
            opened[p] += 1
            conns[p].append(s)
    with open(stats + ".tmp", "w") as f:
        json.dump({"opened": opened, "closed": closed_by_node, "open": {p: len(v) for p, v in conns.items()}}, f)
    os.replace(stats + ".tmp", stats)
    time.sleep(0.2)
EOF
HOLDER=$!
trap 'kill "$HOLDER" 2>/dev/null; wait "$HOLDER" 2>/dev/null; tn_cleanup' EXIT
holding() {
	[[ -s "$TN_DIR/holder.stats" ]] || return 1
	"$PY" -c '
import json, sys
d = json.load(open(sys.argv[1]))
ok = all(d["open"][str(p)] >= int(sys.argv[3]) for p in sys.argv[2].split(",")[:3])
sys.exit(0 if ok else 1)' "$TN_DIR/holder.stats" "$PORTS" "$HOLD"
}
wait_until 20 "the holder did not get $HOLD connections open on nodes 0..2" holding
sleep 2
kill -0 "$HOLDER" 2>/dev/null || fail "the holder died: $(cat "$TN_DIR/holder.out")"

step "node3 restarts under the attack, connects and catches up"
tn_start 3
wait_until 60 "node3 did not connect to the three others under the attack" connected_all 3 3
wait_agree 60 "${ALL[@]}"
((AGREE_H >= H_LIVE)) || fail "height $AGREE_H is below $H_LIVE"
note "node3 caught up: height $AGREE_H"
variant ocds-kr2020-slot-5 "$TN_DIR/slot-5.json"
ok 3 publish tender "$TN_DIR/slot-5.json" --wait
wait_until 30 "the tender published on node3 did not reach every node" has_all ocds-kr2020-slot-5 "${ALL[@]}"
wait_agree 30 "${ALL[@]}"
kill -0 "$HOLDER" 2>/dev/null || fail "the holder stopped before the end: $(cat "$TN_DIR/holder.out")"
note "holder: $(cat "$TN_DIR/holder.stats")"
wait_until 10 "connections held on node0..node3" holding
kill "$HOLDER" 2>/dev/null
wait "$HOLDER" 2>/dev/null

step "each node refused the extra connections from one address, and logged it"
for i in "${ALL[@]}"; do
	grep -q "already in their handshake; refusing more from it" "$NET/node$i/tenderd.log" ||
		fail "node$i's log has no per-address refusal"
done
wait_until 30 "not every node shows 3 connected peers after the attack" connected_all 3 "${ALL[@]}"
no_sanitizer_reports
tn_stop_all
echo "e2e_p2p_slots: ok"
