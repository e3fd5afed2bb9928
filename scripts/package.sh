#!/usr/bin/env bash
# Builds the Debian package of tenderd: scripts/package.sh [--build-dir DIR] [--out DIR] [--lintian]
#
#   (default)        configures and builds build-pkg/ (RelWithDebInfo with Debian's
#                    hardening flags from dpkg-buildflags) and writes
#                    build-pkg/package/tenderd_VERSION-1_ARCH.deb with CPack (DEB)
#   --build-dir DIR  use DIR instead of build-pkg/ (an existing build is reused)
#   --out DIR        write the .deb to DIR
#   --lintian        also run lintian on it (installed when missing); errors fail
#   --install-tools  only install what packaging and its test need, then exit
#
# Runs scripts/setup.sh, then installs with apt-get what packaging needs when it is
# missing (help2man for the man pages, dpkg-dev and file for dpkg-shlibdeps; lintian
# with --lintian). Prints the path of the package on its last line.
set -euo pipefail

usage() {
	sed -n '2,15s/^# \{0,1\}//p' "$0" >&2
	exit 3
}

die() {
	echo "package.sh: $*" >&2
	exit 1
}

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build-pkg"
out_dir=""
lintian=0
tools_only=0

while (($# > 0)); do
	case "$1" in
	--build-dir)
		(($# > 1)) || usage
		build_dir=$2
		shift
		;;
	--out)
		(($# > 1)) || usage
		out_dir=$2
		shift
		;;
	--lintian) lintian=1 ;;
	--install-tools) tools_only=1 ;;
	-h | --help) usage ;;
	*)
		echo "package.sh: unknown argument '$1'" >&2
		usage
		;;
	esac
	shift
done

# Installs the Debian packages named that are missing (apt-get update, then install).
ensure_packages() {
	local pkg status missing=() as_root=()
	for pkg in "$@"; do
		status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
		[[ "$status" == "install ok installed" ]] || missing+=("$pkg")
	done
	((${#missing[@]} > 0)) || return 0
	echo "package.sh: installing missing packages: ${missing[*]}" >&2
	if ((EUID != 0)); then
		command -v sudo >/dev/null 2>&1 ||
			die "missing packages (${missing[*]}) and not root, with no sudo: apt-get install ${missing[*]}"
		as_root=(sudo)
	fi
	"${as_root[@]}" apt-get update -q >&2 || die "'apt-get update' failed"
	"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 ||
		die "'apt-get install ${missing[*]}' failed"
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: the package is built on Debian 12"

tools=(help2man dpkg-dev file)
((lintian || tools_only)) && tools+=(lintian)
if ((tools_only)); then
	ensure_packages "${tools[@]}"
	exit 0
fi

"$root/scripts/setup.sh"
ensure_packages "${tools[@]}"

jobs=$(nproc 2>/dev/null || echo 2)
build_dir=$(mkdir -p "$build_dir" && cd "$build_dir" && pwd)
if [[ ! -f "$build_dir/CMakeCache.txt" ]]; then
	# Debian's flags for packages (hardening: stack protector, fortify, relro, bindnow).
	export DEB_BUILD_MAINT_OPTIONS=hardening=+all
	cflags="$(dpkg-buildflags --get CFLAGS) $(dpkg-buildflags --get CPPFLAGS)"
	ldflags=$(dpkg-buildflags --get LDFLAGS)
	cmake -S "$root" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
		"-DCMAKE_C_FLAGS=$cflags" "-DCMAKE_EXE_LINKER_FLAGS=$ldflags" >/dev/null
else
	cmake "$build_dir" >/dev/null
fi
if grep -q '^TENDER_SANITIZE:BOOL=ON' "$build_dir/CMakeCache.txt"; then
	die "$build_dir is a sanitizer build (TENDER_SANITIZE=ON): package a plain build"
fi
# CPack's preinstall step builds everything else of the project (tests, benchmarks).
cmake --build "$build_dir" -j"$jobs" >&2

out_dir=${out_dir:-$build_dir/package}
mkdir -p "$out_dir"
out_dir=$(cd "$out_dir" && pwd)
# Reproducible dates (changelog, man pages): the last commit's, when there is one.
if [[ -z "${SOURCE_DATE_EPOCH:-}" ]] && epoch=$(git -C "$root" log -1 --format=%ct 2>/dev/null); then
	export SOURCE_DATE_EPOCH=$epoch
	cmake "$build_dir" >/dev/null # dates the changelog
fi
(cd "$build_dir" && cpack -G DEB -B "$out_dir") >&2 || die "cpack failed"

version=$(sed -n 's/^set(CPACK_PACKAGE_VERSION "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")
release=$(sed -n 's/^set(CPACK_DEBIAN_PACKAGE_RELEASE "\(.*\)")$/\1/p' "$build_dir/CPackConfig.cmake")
deb="$out_dir/tenderd_${version}-${release}_$(dpkg --print-architecture).deb"
[[ -f "$deb" ]] || die "cpack wrote no $deb"
rm -rf "$out_dir/_CPack_Packages"

if ((lintian)); then
	echo "package.sh: lintian $deb" >&2
	# lintian exits non-zero on errors (and only on errors with --fail-on error).
	lintian --fail-on error --info "$deb" >&2 || die "lintian found errors in $deb"
fi
echo "$deb"
