#!/usr/bin/env bash
# Builds tenderd: scripts/build.sh [--sanitize] [--release] [-DOPTION=VALUE ...]
#
#   (default)    RelWithDebInfo build in build/
#   --sanitize   AddressSanitizer + UndefinedBehaviorSanitizer build in build-san/
#   --release    Release build type
#   -D...        passed to cmake as is (e.g. -DTENDER_WERROR=ON)
#
# Runs scripts/setup.sh first (quiet when everything is installed). The
# binaries land in <build dir>/bin/tenderd and <build dir>/bin/tenderctl.
set -euo pipefail

usage() {
	sed -n '2,10s/^# \{0,1\}//p' "$0" >&2
	exit 3
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build"
build_type=RelWithDebInfo
cmake_args=()

while (($# > 0)); do
	case "$1" in
	--sanitize)
		build_dir="$root/build-san"
		cmake_args+=(-DTENDER_SANITIZE=ON)
		;;
	--release) build_type=Release ;;
	-D*) cmake_args+=("$1") ;;
	-h | --help) usage ;;
	*)
		echo "build.sh: unknown argument '$1'" >&2
		usage
		;;
	esac
	shift
done

"$root/scripts/setup.sh"

jobs=$(nproc 2>/dev/null || echo 2)

cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE="$build_type" "${cmake_args[@]}" >/dev/null
cmake --build "$build_dir" -j"$jobs"

for bin in tenderd tenderctl; do
	if [[ ! -x "$build_dir/bin/$bin" ]]; then
		echo "build.sh: $build_dir/bin/$bin was not built" >&2
		exit 1
	fi
done
echo "build.sh: built $build_dir/bin/tenderd and $build_dir/bin/tenderctl ($build_type)"
