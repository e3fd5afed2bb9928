#!/bin/sh
# Runs the consensus simulator with many seeds (default 100000).
# Usage: scripts/sim.sh [seeds] [build dir]
# Replay a failing seed: TD_SIM_SEED=<seed> TD_SIM_VERBOSE=1 build/tests/test_sim
set -e
seeds=${1:-100000}
build=${2:-build}
cd "$(dirname "$0")/.."
cmake --build "$build" --target test_sim -j2 >/dev/null
TD_SIM_SEEDS=$seeds "$build/tests/test_sim"
