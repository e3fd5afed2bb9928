#!/usr/bin/env bash
# Measures what connect/close churn on a p2p port costs a node (not part of the suite):
#   tests/p2p_churn_cpu.sh BIN_DIR DATA_DIR [SECONDS] [MODE]
# Starts a 4-node testnet, then for SECONDS (default 10) two client processes open
# and close TCP connections to node1's p2p port as fast as they can, all from one
# address (127.0.0.2). MODE "close" (default) closes at once; "hello" first sends a
# hello with node0's identity and a bad signature; "c" closes at once from two
# threads of a small C program (compiled with cc here), as fast as the machine allows. Prints node1's CPU time (utime +
# stime from /proc/PID/stat) over the churn, over as long idle before it, and the
# number of connections made.
set -uo pipefail
if (($# < 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR [SECONDS] [close|hello]" >&2
	exit 2
fi
# shellcheck source=tests/lib_testnet.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_testnet.sh"
tn_init p2p_churn_cpu "$1" "$2"
SECS=${3:-10}
MODE=${4:-close}
TICK=$(getconf CLK_TCK)

cpu() { # cpu PID: utime + stime in clock ticks
	awk '{ print $14 + $15 }' "/proc/$1/stat"
}

tn_create 4
tn_start_all
wait_until 30 "not every node shows 3 connected peers" connected_all 3 0 1 2 3
tn_pid 1
P1=$TN_P
KEY0=$(sval 0 'd["node"]["pub_key"]')
CHAIN=$(sval 1 'd["chain_id"]')

C0=$(cpu "$P1")
sleep "$SECS"
C1=$(cpu "$P1")
CHURN=()
if [[ "$MODE" == c ]]; then
	cat >"$TN_DIR/churn.c" <<'EOF'
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
static int port, secs; static long total;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static void *run(void *a){
	long n=0; double end=now()+secs;
	struct sockaddr_in d={.sin_family=AF_INET,.sin_port=htons(port),.sin_addr.s_addr=htonl(0x7f000001)};
	struct sockaddr_in s={.sin_family=AF_INET,.sin_addr.s_addr=htonl(0x7f000002)};
	while(now()<end){ int fd=socket(AF_INET,SOCK_STREAM,0); int one=1; setsockopt(fd,SOL_SOCKET,SO_REUSEADDR,&one,sizeof one);
		if(bind(fd,(void*)&s,sizeof s)==0 && connect(fd,(void*)&d,sizeof d)==0) n++; close(fd);}
	pthread_mutex_lock(&mu); total+=n; pthread_mutex_unlock(&mu); return 0;}
int main(int c,char**v){port=atoi(v[1]);secs=atoi(v[2]);int nt=atoi(v[3]);pthread_t t[16];
	for(int i=0;i<nt;i++)pthread_create(&t[i],0,run,0);for(int i=0;i<nt;i++)pthread_join(t[i],0);printf("%ld\n",total);}
EOF
	cc -O2 -o "$TN_DIR/churn" "$TN_DIR/churn.c" -lpthread || fail "cannot compile the churn client"
	C2=$(cpu "$P1")
	"$TN_DIR/churn" "$((NET_PORT + 1))" "$SECS" 2 >"$TN_DIR/churn1.out" 2>&1
	echo 0 >"$TN_DIR/churn2.out"
fi
for k in 1 2; do
	[[ "$MODE" == c ]] && break
	"$PY" - "$((NET_PORT + 1))" "$SECS" "$MODE" "$KEY0" "$CHAIN" >"$TN_DIR/churn$k.out" 2>&1 <<'EOF' &
import hashlib, os, socket, sys, time
port, secs, mode = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
key0, chain = bytes.fromhex(sys.argv[4]), sys.argv[5].encode()
hello = b"TDP2" + hashlib.blake2b(chain, digest_size=32).digest() + key0
n = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    s = socket.socket()
    try:
        s.bind(("127.0.0.2", 0))
        s.connect(("127.0.0.1", port))
        if mode == "hello":
            s.sendall(hello + os.urandom(96))
        n += 1
    except OSError:
        pass
    s.close()
print(n)
EOF
	CHURN+=($!)
done
[[ "$MODE" == c ]] || C2=$(cpu "$P1")
((${#CHURN[@]} == 0)) || wait "${CHURN[@]}"
C3=$(cpu "$P1")
N=$(($(cat "$TN_DIR/churn1.out") + $(cat "$TN_DIR/churn2.out")))
tn_alive 1 || fail "node1 died under the churn"
wait_until 20 "node1 lost its peers" connected_all 3 1
awk -v idle=$((C1 - C0)) -v churn=$((C3 - C2)) -v t="$TICK" -v n="$N" -v s="$SECS" -v m="$MODE" 'BEGIN {
	printf "node1 CPU over %s s idle: %.2f s; over %s s of churn (%s, %d connections from one address): %.2f s\n",
		s, idle / t, s, m, n, churn / t }'
tn_stop_all
