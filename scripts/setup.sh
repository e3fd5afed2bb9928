#!/usr/bin/env bash
# Installs what tenderd needs to build and test on Debian 12, if anything is missing:
# scripts/setup.sh [--fuzz]
#
# libmicrohttpd-dev: the HTTP endpoint (node/http.c). curl, prometheus (a real scrape,
# and promtool checks /metrics) and chromium (the explorer page, headless):
# tests/e2e_http.sh.
#
# With --fuzz (or TENDER_FUZZ=1) it also installs clang-14 and libfuzzer-14-dev, which
# the fuzz targets (cmake -DTENDER_FUZZ=ON, tests/fuzz/) need.
#
# Checks every package with dpkg-query first and runs apt-get (as root, or
# through sudo) only when something is missing, so a second run does nothing
# and prints nothing. Set TENDER_SKIP_SETUP=1 to skip the check entirely (for
# a system where the libraries come from somewhere other than dpkg).
set -euo pipefail

PACKAGES=(
	gcc libc6-dev make cmake pkg-config
	libuv1-dev libsodium-dev libmsgpack-dev libleveldb-dev libjansson-dev libinih-dev
	libcmocka-dev
	libmicrohttpd-dev
	python3 python3-jsonschema
	curl prometheus chromium
)

FUZZ_PACKAGES=(clang-14 libfuzzer-14-dev)

die() {
	echo "setup.sh: $*" >&2
	exit 1
}

if [[ "${TENDER_SKIP_SETUP:-0}" == 1 ]]; then
	exit 0
fi

fuzz=0
[[ "${TENDER_FUZZ:-0}" == 1 ]] && fuzz=1
while (($# > 0)); do
	case "$1" in
	--fuzz) fuzz=1 ;;
	*) die "unknown argument '$1' (usage: scripts/setup.sh [--fuzz])" ;;
	esac
	shift
done
if ((fuzz)); then
	PACKAGES+=("${FUZZ_PACKAGES[@]}")
fi

if ! command -v dpkg-query >/dev/null 2>&1; then
	die "dpkg-query not found: this script supports Debian 12 only.
Install these (or your system's equivalents) by hand, then rerun with TENDER_SKIP_SETUP=1:
  ${PACKAGES[*]}"
fi

missing=()
for pkg in "${PACKAGES[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	if [[ "$status" != "install ok installed" ]]; then
		missing+=("$pkg")
	fi
done

if ((${#missing[@]} == 0)); then
	exit 0
fi

echo "setup.sh: installing missing packages: ${missing[*]}" >&2

if ((EUID == 0)); then
	as_root=()
elif command -v sudo >/dev/null 2>&1; then
	as_root=(sudo)
else
	die "missing packages (${missing[*]}) and not root, with no sudo to install them.
Run as root: apt-get install ${missing[*]}"
fi

if ! "${as_root[@]}" apt-get update -q; then
	die "'apt-get update' failed; check the network and /etc/apt/sources.list"
fi
if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y -q --no-install-recommends "${missing[@]}"; then
	die "'apt-get install ${missing[*]}' failed (see the apt output above)"
fi

# Confirm: a package name that apt accepted but that did not end up installed is a failure too.
still=()
for pkg in "${missing[@]}"; do
	status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
	[[ "$status" == "install ok installed" ]] || still+=("$pkg")
done
if ((${#still[@]} > 0)); then
	die "still not installed after apt-get: ${still[*]}"
fi
echo "setup.sh: done" >&2
