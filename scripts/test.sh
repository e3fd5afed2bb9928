#!/usr/bin/env bash
# Builds tenderd with -Werror and runs the whole test suite: scripts/test.sh [--sanitize]
#
# Runs the unit and end-to-end tests (ctest) in build/. With --sanitize or
# TENDER_SANITIZE=1, and under CI (CI=true) unless TENDER_SKIP_SANITIZE=1, it
# also builds build-san/ with ASan + UBSan and runs the suite there.
# Exits non-zero on the first failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

sanitize=0
[[ "${TENDER_SANITIZE:-0}" == 1 ]] && sanitize=1
if [[ "${CI:-}" == true && "${TENDER_SKIP_SANITIZE:-0}" != 1 ]]; then
	sanitize=1
fi
while (($# > 0)); do
	case "$1" in
	--sanitize) sanitize=1 ;;
	*)
		echo "usage: scripts/test.sh [--sanitize]" >&2
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

section "all tests passed"
