#!/usr/bin/env bash
# Runs the whole-node simulator (build/bin/tenderd-sim) over a range of seeds, so a long
# run can be split across sittings: scripts/sim.sh SEEDS [FIRST] [-- tenderd-sim options]
#
#   scripts/sim.sh 100000            seeds 1..100000, n = 4..7, the default fault mix
#   scripts/sim.sh 50000 100001      seeds 100001..150000
#   scripts/sim.sh 1000 1 -- --faults 0x3fff   every fault, the oversized block included
#
# Seeds run in one process per core, each on its own slice of the range. A failing seed
# prints the command that replays it with a trace. The consensus-core model
# (tests/test_sim.c) takes TD_SIM_SEEDS: TD_SIM_SEEDS=100000 build/tests/test_sim
set -euo pipefail
seeds=${1:-10000}
first=${2:-1}
shift $(($# >= 2 ? 2 : $#))
[[ "${1:-}" == -- ]] && shift
cd "$(dirname "$0")/.."
build=${TENDER_BUILD:-build}
[[ -x "$build/bin/tenderd-sim" ]] || scripts/build.sh >/dev/null
cmake --build "$build" --target tenderd-sim -j2 >/dev/null
jobs=$(nproc)
per=$(((seeds + jobs - 1) / jobs))
start=$SECONDS
pids=()
for ((j = 0; j < jobs; j++)); do
	from=$((first + j * per))
	count=$((per < seeds - j * per ? per : seeds - j * per))
	((count > 0)) || break
	"$build/bin/tenderd-sim" --seeds "$count" --first "$from" --nodes 4-7 "$@" &
	pids+=($!)
done
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
echo "sim.sh: $seeds seeds from $first in $((SECONDS - start)) s, $([[ $rc == 0 ]] && echo passed || echo FAILED)"
exit $rc
