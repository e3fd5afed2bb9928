#!/usr/bin/env bash
# Runs the fuzz targets on top of their seed corpora: tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# BUILD_DIR is a tree configured with -DTENDER_FUZZ=ON and built (`--target fuzz`); each
# target (default: every build_dir/fuzz/fuzz_*) runs for SECONDS with -timeout=10 and
# -rss_limit_mb=2048, reading tests/fuzz/corpus/<target> and writing what it learns to
# BUILD_DIR/fuzz-work/<target> (the committed corpus is not modified). A crash, leak, timeout
# or broken invariant leaves its input in BUILD_DIR/fuzz-work/<target>-crash-* and fails the
# run. TENDER_FUZZ_JOBS=2 runs two targets at a time. The final stats of each target
# (-print_final_stats=1) are in BUILD_DIR/fuzz-work/<target>.log.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if (($# < 2)); then
	sed -n '2,11s/^# \{0,1\}//p' "$0" >&2
	exit 3
fi
build=$1
secs=$2
shift 2
targets=("$@")
if ((${#targets[@]} == 0)); then
	for bin in "$build"/fuzz/fuzz_*; do
		targets+=("$(basename "$bin")")
	done
fi
jobs=${TENDER_FUZZ_JOBS:-1}
work="$build/fuzz-work"
mkdir -p "$work"

run_one() { # target
	local t=$1
	mkdir -p "$work/$t"
	# ASan's leak check and UBSan stop at the first report; libFuzzer turns either into a failure.
	if ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
		"$build/fuzz/$t" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/$t-crash-" "$work/$t" "$here/corpus/$t" >"$work/$t.log" 2>&1; then
		echo "fuzz: $t: $(grep -E '^stat::number_of_executed_units' "$work/$t.log" | awk '{print $2}') runs," \
			"$(grep -E '^#[0-9]+.*DONE' "$work/$t.log" | grep -oE 'cov: [0-9]+ ft: [0-9]+' | tail -1)"
	else
		echo "fuzz: $t FAILED (input in $work/$t-crash-*); the end of its log:" >&2
		tail -n 40 "$work/$t.log" >&2
		return 1
	fi
}

status=0
pids=()
for t in "${targets[@]}"; do
	if [[ ! -x "$build/fuzz/$t" ]]; then
		echo "fuzz: $build/fuzz/$t was not built" >&2
		exit 1
	fi
	run_one "$t" &
	pids+=($!)
	if ((${#pids[@]} >= jobs)); then
		wait "${pids[0]}" || status=1
		pids=("${pids[@]:1}")
	fi
done
for pid in "${pids[@]}"; do
	wait "$pid" || status=1
done
exit $status
