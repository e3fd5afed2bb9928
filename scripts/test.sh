#!/usr/bin/env bash
# Builds tenderd with -Werror and runs the whole test suite: scripts/test.sh [--sanitize] [--fuzz]
#
# Runs the unit and end-to-end tests (ctest) in build/. With --sanitize or
# TENDER_SANITIZE=1, and under CI (CI=true) unless TENDER_SKIP_SANITIZE=1, it
# also builds build-san/ with ASan + UBSan and runs the suite there.
# With --fuzz or TENDER_FUZZ=1, and under CI unless TENDER_SKIP_FUZZ=1, it then
# installs clang-14 and libFuzzer if missing, builds the fuzz targets in
# build-fuzz/ (-DTENDER_FUZZ=ON) and runs each for TENDER_FUZZ_SECONDS (20) on
# top of its seed corpus (tests/fuzz/run.sh); a crash fails the run.
# Exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=0
[[ "${TENDER_SANITIZE:-0}" == 1 ]] && sanitize=1
if [[ "${CI:-}" == true && "${TENDER_SKIP_SANITIZE:-0}" != 1 ]]; then
	sanitize=1
fi
fuzz=0
[[ "${TENDER_FUZZ:-0}" == 1 ]] && fuzz=1
if [[ "${CI:-}" == true && "${TENDER_SKIP_FUZZ:-0}" != 1 ]]; then
	fuzz=1
fi
while (($# > 0)); do
	case "$1" in
	--sanitize) sanitize=1 ;;
	--fuzz) fuzz=1 ;;
	*)
		echo "usage: scripts/test.sh [--sanitize] [--fuzz]" >&2
		exit 3
		;;
	esac
	shift
done

start=$SECONDS
section() {
	echo
	echo "=== $* ($((SECONDS - start)) s)"
}

run_suite() { # build dir
	(cd "$1" && ctest --output-on-failure -j2)
}

section "setup"
"$root/scripts/setup.sh"

section "build (build/, -Werror)"
"$root/scripts/build.sh" -DTENDER_WERROR=ON

section "tests (build/)"
run_suite "$root/build"

if ((sanitize)); then
	section "build (build-san/, ASan + UBSan, -Werror)"
	"$root/scripts/build.sh" --sanitize -DTENDER_WERROR=ON

	section "tests (build-san/)"
	# Keep the caller's settings if any; otherwise fail loudly on any report.
	export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
	export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
	run_suite "$root/build-san"
fi

if ((fuzz)); then
	section "fuzz: setup and build (build-fuzz/, clang-14, libFuzzer + ASan + UBSan)"
	"$root/scripts/setup.sh" --fuzz
	cmake -S "$root" -B "$root/build-fuzz" -DTENDER_FUZZ=ON -DCMAKE_C_COMPILER=clang-14 \
		-DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	cmake --build "$root/build-fuzz" --target fuzz -j"$(nproc 2>/dev/null || echo 2)"

	section "fuzz: each target ${TENDER_FUZZ_SECONDS:-20} s on its corpus"
	"$root/tests/fuzz/run.sh" "$root/build-fuzz" "${TENDER_FUZZ_SECONDS:-20}"
fi

section "all tests passed"
