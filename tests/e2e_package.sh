#!/usr/bin/env bash
# End-to-end test of the Debian package: tests/e2e_package.sh BIN_DIR DATA_DIR
#
# Packages the build that BIN_DIR belongs to with CPack (its CPackConfig.cmake: the
# binaries already built, stripped) and checks the .deb: its files and dependencies,
# lintian (no errors), the man pages against the binaries' --help (regenerated with
# help2man and compared) and the bash completion against the commands of --help.
# Then it installs it with dpkg -i on this machine and checks the files, the user
# tenderd, /var/lib/tenderd (0750), that the unit is not enabled and that
# systemd-analyze verify accepts it; runs the installed tenderd init (in a temporary
# home, and as the user tenderd in /var/lib/tenderd, as the README does), tenderd
# run with tenderctl status over its socket, and tenderctl --help; removes and
# purges it (a home holding a node is kept, with its user), installs it again and
# purges it (nothing left).
#
# Skips (exit 0, a "skipped:" line) when not root, without dpkg, in a sanitizer build
# (TENDER_SANITIZE=ON: the package is tested in the plain build), or when this machine
# already has a tenderd package, user or /var/lib/tenderd that the test did not make.
# Installs help2man, lintian, dpkg-dev and file when missing (scripts/package.sh
# --install-tools). An EXIT trap purges the package and what it made on any failure.
set -uo pipefail

if (($# != 2)); then
	echo "usage: $0 BIN_DIR DATA_DIR" >&2
	exit 2
fi
BIN=$(cd "$1" && pwd) || exit 2
BUILD=$(cd "$BIN/.." && pwd) || exit 2
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd) || exit 2
SECONDS=0

skip() {
	echo "e2e_package: skipped: $*"
	exit 0
}

((EUID == 0)) || skip "not root (dpkg -i needs root)"
for tool in dpkg dpkg-deb dpkg-query apt-get; do
	command -v "$tool" >/dev/null 2>&1 || skip "$tool unavailable (not a Debian system)"
done
if grep -q '^TENDER_SANITIZE:BOOL=ON' "$BUILD/CMakeCache.txt" 2>/dev/null; then
	skip "sanitizer build ($BUILD): the package is tested in the plain build"
fi
[[ -f "$BUILD/CPackConfig.cmake" ]] || {
	echo "e2e_package: $BUILD/CPackConfig.cmake is missing (is cmake/package.cmake included?)" >&2
	exit 1
}

# One run at a time on this machine (another build's suite may run beside this one).
LOCK=/var/lock/tenderd-e2e-package.lock
exec 9>"$LOCK" || exit 1
flock -w 240 9 || {
	echo "e2e_package: another e2e_package held $LOCK for 240 s" >&2
	exit 1
}

PKG=tenderd
HOME_DIR=/var/lib/tenderd
# Present while this test has the package installed: a run killed before its trap
# (a ctest timeout) leaves it, and the next run then purges what that run left.
MARKER=/var/tmp/tenderd-e2e-package.installed

pkg_status() {
	dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null || true
}

# dpkg, waiting up to 2 minutes for the dpkg lock when apt or another dpkg holds it.
dpkg_run() {
	local i out rc
	for ((i = 0; i < 60; i++)); do
		out=$(DEBIAN_FRONTEND=noninteractive dpkg "$@" 2>&1)
		rc=$?
		if ((rc != 0)) && grep -qi 'lock' <<<"$out"; then
			sleep 2
			continue
		fi
		printf '%s\n' "$out"
		return "$rc"
	done
	printf '%s\n' "$out"
	return 1
}

# Purges the package and removes the home and the user it made (the test's only).
purge_all() {
	if [[ -n "$(pkg_status)" && "$(pkg_status)" != "unknown ok not-installed" ]]; then
		dpkg_run --purge "$PKG" >/dev/null
	fi
	rm -rf "$HOME_DIR"
	if getent passwd tenderd >/dev/null; then
		userdel tenderd 2>/dev/null
	fi
	if getent group tenderd >/dev/null; then
		groupdel tenderd 2>/dev/null
	fi
}

if [[ -e "$MARKER" ]]; then
	echo "e2e_package: $MARKER: purging what an interrupted run left"
	purge_all
	rm -f "$MARKER"
fi
status=$(pkg_status)
if [[ -n "$status" && "$status" != "unknown ok not-installed" ]]; then
	skip "the $PKG package is on this machine ($status) and this test did not install it"
fi
if getent passwd tenderd >/dev/null || getent group tenderd >/dev/null || [[ -e "$HOME_DIR" ]]; then
	skip "this machine already has a user or group tenderd or $HOME_DIR, which the test would remove"
fi

TMP=$(mktemp -d /tmp/td-e2e-pkg.XXXXXX) || exit 1
OUT="$TMP/out"
STEP="start"
DPID=""
: >"$OUT"

cleanup() {
	local rc=$?
	if [[ -n "$DPID" ]] && kill -0 "$DPID" 2>/dev/null; then
		kill -9 "$DPID" 2>/dev/null
		wait "$DPID" 2>/dev/null
	fi
	if [[ -e "$MARKER" ]]; then
		purge_all
		rm -f "$MARKER"
	fi
	rm -rf "$TMP"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() {
	STEP="$*"
	echo "--- $STEP"
}

fail() {
	echo "e2e_package: FAILED at step: $STEP" >&2
	echo "e2e_package: $*" >&2
	if [[ -s "$OUT" ]]; then
		echo "--- last output:" >&2
		tail -n 40 "$OUT" >&2
	fi
	exit 1
}

# run CMD...: runs it with its output in $OUT; fails when it exits non-zero.
run() {
	"$@" >"$OUT" 2>&1 || fail "'$*' exited $?"
}

step "tools: help2man, lintian, dpkg-dev, file"
run "$ROOT/scripts/package.sh" --install-tools

step "package the build in $BUILD (cpack -G DEB)"
run env -C "$BUILD" cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$TMP/pkg"
DEB=$(find "$TMP/pkg" -maxdepth 1 -name 'tenderd_*.deb' | head -n 1)
[[ -f "$DEB" ]] || fail "cpack wrote no tenderd_*.deb in $TMP/pkg"
echo "package: $(basename "$DEB") ($(stat -c %s "$DEB") bytes)"

step "package contents"
dpkg-deb -c "$DEB" | awk '{print $NF}' | sed 's|^\./|/|' >"$TMP/contents"
for f in /usr/bin/tenderd /usr/bin/tenderctl /usr/lib/systemd/system/tenderd.service \
	/usr/share/man/man8/tenderd.8.gz /usr/share/man/man1/tenderctl.1.gz \
	/usr/share/bash-completion/completions/tenderd /usr/share/bash-completion/completions/tenderctl \
	/usr/share/doc/tenderd/copyright /usr/share/doc/tenderd/changelog.Debian.gz; do
	grep -qxF "$f" "$TMP/contents" || fail "the package has no $f"
done
if grep -v -e '^/usr/' -e '^/$' "$TMP/contents" | grep -q .; then
	fail "the package has files outside /usr: $(grep -v -e '^/usr/' -e '^/$' "$TMP/contents" | head -n 3)"
fi
for f in postinst prerm postrm; do
	dpkg-deb -I "$DEB" "$f" >/dev/null 2>&1 || fail "the package has no $f"
done

step "dependencies from dpkg-shlibdeps"
depends=$(dpkg-deb -f "$DEB" Depends)
echo "Depends: $depends"
for lib in libc6 libuv1 libsodium23 libmsgpackc2 libleveldb1d libjansson4 libinih1 adduser; do
	grep -qE "(^|, )$lib( |,|$)" <<<"$depends" || fail "Depends lacks $lib: $depends"
done

step "lintian (no errors)"
# lintian says on stderr that it runs as root; its tags are on stdout.
lintian --fail-on error --display-info "$DEB" >"$TMP/lintian" 2>"$TMP/lintian.err"
lrc=$?
grep -E '^[A-Z]: ' "$TMP/lintian" || echo "(no tags)"
if ((lrc != 0)) || grep -q '^E: ' "$TMP/lintian"; then
	cat "$TMP/lintian.err" >&2
	fail "lintian exited $lrc or reported errors"
fi

step "install: dpkg -i"
: >"$MARKER"
run dpkg_run -i "$DEB"
[[ "$(pkg_status)" == "install ok installed" ]] || fail "dpkg status after install: $(pkg_status)"

step "installed files"
for f in /usr/bin/tenderd /usr/bin/tenderctl; do
	[[ -x "$f" && "$(stat -c '%a %U' "$f")" == "755 root" ]] || fail "$f: $(stat -c '%a %U' "$f" 2>&1)"
done
for f in /usr/lib/systemd/system/tenderd.service /usr/share/man/man8/tenderd.8.gz \
	/usr/share/man/man1/tenderctl.1.gz /usr/share/bash-completion/completions/tenderd \
	/usr/share/bash-completion/completions/tenderctl; do
	[[ "$(stat -c '%a %U' "$f" 2>&1)" == "644 root" ]] || fail "$f: $(stat -c '%a %U' "$f" 2>&1)"
done
grep -qx 'ExecStart=/usr/bin/tenderd run --home /var/lib/tenderd' /usr/lib/systemd/system/tenderd.service ||
	fail "the unit does not run /usr/bin/tenderd in /var/lib/tenderd: $(grep ExecStart /usr/lib/systemd/system/tenderd.service)"

step "the user tenderd and $HOME_DIR (0750)"
IFS=: read -r _ _ uid _ _ home shell < <(getent passwd tenderd) || fail "no user tenderd"
getent group tenderd >/dev/null || fail "no group tenderd"
((uid < 1000)) || fail "tenderd is not a system user (uid $uid)"
[[ "$home" == "$HOME_DIR" ]] || fail "tenderd's home is $home"
[[ "$shell" == /usr/sbin/nologin ]] || fail "tenderd's shell is $shell"
[[ "$(stat -c '%a %U %G %F' "$HOME_DIR" 2>&1)" == "750 tenderd tenderd directory" ]] ||
	fail "$HOME_DIR: $(stat -c '%a %U %G %F' "$HOME_DIR" 2>&1)"

step "the unit: not enabled, systemd-analyze verify"
if compgen -G "/etc/systemd/system/*.wants/tenderd.service" >/dev/null; then
	fail "the unit is enabled: $(ls /etc/systemd/system/*.wants/tenderd.service)"
fi
if command -v systemd-analyze >/dev/null 2>&1; then
	run systemd-analyze verify /usr/lib/systemd/system/tenderd.service
	if [[ -s "$OUT" ]]; then
		fail "systemd-analyze verify complained"
	fi
else
	echo "(no systemd-analyze on this machine: not verified)"
fi

step "man pages in sync with --help (regenerated from the installed binaries)"
run cmake -DTD_SRC="$ROOT" -DTD_OUT="$TMP/regen" -DTD_TENDERD=/usr/bin/tenderd \
	-DTD_TENDERCTL=/usr/bin/tenderctl \
	-DTD_VERSION="$(dpkg-deb -f "$DEB" Version | sed 's/-[^-]*$//')" \
	-DTD_CHANGELOG="$BUILD/packaging/changelog.Debian" -DCMAKE_INSTALL_PREFIX=/usr \
	-P "$ROOT/packaging/install.cmake"
for page in man8/tenderd.8 man1/tenderctl.1; do
	# The .TH line holds the date the page was made.
	if ! diff <(zcat "/usr/share/man/$page.gz" | grep -v '^\.TH ') \
		<(zcat "$TMP/regen/man/${page#*/}.gz" | grep -v '^\.TH ') >"$OUT"; then
		fail "/usr/share/man/$page.gz differs from help2man's page of the installed binary"
	fi
done
# And every command and option of the help texts is in the pages.
zcat /usr/share/man/man8/tenderd.8.gz | sed 's/\\-/-/g' >"$TMP/tenderd.man"
zcat /usr/share/man/man1/tenderctl.1.gz | sed 's/\\-/-/g' >"$TMP/tenderctl.man"
/usr/bin/tenderd --help >"$TMP/tenderd.help" 2>&1
/usr/bin/tenderctl --help >"$TMP/tenderctl.help" 2>&1
tenderd_cmds=$(sed -n '/^commands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p' "$TMP/tenderd.help")
tenderctl_cmds=$(sed -n '/^Commands:/,/^$/s/^  \([a-z][a-z-]*\).*/\1/p' "$TMP/tenderctl.help")
[[ -n "$tenderd_cmds" && -n "$tenderctl_cmds" ]] || fail "no commands found in the --help texts"
for w in $tenderd_cmds $(grep -o -- '--[a-z][a-z-]*' "$TMP/tenderd.help" | sort -u); do
	grep -q -- "$w" "$TMP/tenderd.man" || fail "tenderd(8) lacks '$w' of tenderd --help"
done
for w in $tenderctl_cmds $(grep -o -- '--[a-z][a-z-]*' "$TMP/tenderctl.help" | sort -u); do
	grep -q -- "$w" "$TMP/tenderctl.man" || fail "tenderctl(1) lacks '$w' of tenderctl --help"
done
if command -v man >/dev/null 2>&1; then
	for page in /usr/share/man/man8/tenderd.8.gz /usr/share/man/man1/tenderctl.1.gz; do
		MANWIDTH=80 man --warnings -l "$page" 2>"$OUT" >/dev/null || fail "man -l $page failed"
		[[ ! -s "$OUT" ]] || fail "man --warnings on $page"
	done
fi

step "bash completion of the installed commands"
cat >"$TMP/complete.sh" <<'EOF'
PATH=/usr/bin:$PATH
source /usr/share/bash-completion/completions/tenderd
source /usr/share/bash-completion/completions/tenderctl
c() {
	local f=$1
	shift
	COMP_WORDS=("$@")
	COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
	COMPREPLY=()
	$f
	echo "${COMPREPLY[*]}"
}
echo "tenderd: $(c _tenderd tenderd '')"
echo "tenderd run: $(c _tenderd tenderd run --)"
echo "tenderd init: $(c _tenderd tenderd init --)"
echo "tenderd log-format: $(c _tenderd tenderd run --log-format '')"
echo "tenderctl: $(c _tenderctl tenderctl '')"
echo "tenderctl socket: $(c _tenderctl tenderctl --socket /tmp/x li)"
echo "tenderctl list: $(c _tenderctl tenderctl list --)"
echo "tenderctl publish: $(c _tenderctl tenderctl publish '')"
echo "tenderctl cancel: $(c _tenderctl tenderctl cancel OCID --)"
EOF
run bash "$TMP/complete.sh"
cat "$OUT"
expect_line() { # label, words...
	local label=$1 line w
	shift
	line=$(grep "^$label: " "$OUT") || fail "no completion for $label"
	for w in "$@"; do
		grep -qw -- "$w" <<<"${line#*: }" || fail "completion of $label lacks $w: $line"
	done
}
# shellcheck disable=SC2086 # word lists
expect_line "tenderd" $tenderd_cmds
expect_line "tenderd run" --home --log-level --log-format --socket --log-file --set
expect_line "tenderd init" --home --name --chain-id --ocid-prefix
expect_line "tenderd log-format" text json
# shellcheck disable=SC2086
expect_line "tenderctl" $tenderctl_cmds
expect_line "tenderctl socket" list
expect_line "tenderctl list" --limit --cursor --format --status --socket
expect_line "tenderctl publish" tender award
expect_line "tenderctl cancel" --reason --wait

step "installed tenderctl --help"
run /usr/bin/tenderctl --help
grep -q 'tenderctl' "$OUT" || fail "tenderctl --help printed no usage"

step "installed tenderd init --home TMP --name X"
run /usr/bin/tenderd init --home "$TMP/node" --name "E2E Package Agency"
[[ "$(stat -c %a "$TMP/node/node.key" 2>&1)" == 600 ]] || fail "node.key: $(stat -c %a "$TMP/node/node.key" 2>&1)"
for f in config.ini genesis.json; do
	[[ -s "$TMP/node/$f" ]] || fail "init wrote no $f"
done

step "README: sudo -u tenderd tenderd init --home $HOME_DIR, then run it as tenderd"
run runuser -u tenderd -- tenderd init --home "$HOME_DIR" --name "Jeju Special Self-Governing Province"
[[ "$(stat -c '%a %U' "$HOME_DIR/node.key" 2>&1)" == "600 tenderd" ]] ||
	fail "$HOME_DIR/node.key: $(stat -c '%a %U' "$HOME_DIR/node.key" 2>&1)"
# setpriv execs tenderd itself, so SIGTERM reaches the node (runuser would stay between).
setpriv --reuid=tenderd --regid=tenderd --init-groups tenderd run --home "$HOME_DIR" >"$TMP/daemon.log" 2>&1 &
DPID=$!
for ((i = 0; i < 100; i++)); do
	[[ -S "$HOME_DIR/tenderd.sock" ]] && break
	kill -0 "$DPID" 2>/dev/null || break
	sleep 0.1
done
[[ -S "$HOME_DIR/tenderd.sock" ]] || { cp "$TMP/daemon.log" "$OUT"; fail "the installed tenderd made no socket"; }
run runuser -u tenderd -- tenderctl --socket "$HOME_DIR/tenderd.sock" status
grep -q '"height"' "$OUT" || fail "tenderctl status answered no height"
kill -TERM "$DPID"
wait "$DPID"
drc=$?
DPID=""
((drc == 0)) || { cp "$TMP/daemon.log" "$OUT"; fail "tenderd exited $drc on SIGTERM"; }

step "dpkg --remove, then --purge: a home holding a node is kept, with its user"
run dpkg_run --remove "$PKG"
[[ ! -e /usr/bin/tenderd && ! -e /usr/bin/tenderctl ]] || fail "binaries left after remove"
[[ -f "$HOME_DIR/node.key" ]] || fail "remove deleted $HOME_DIR/node.key"
run dpkg_run --purge "$PKG"
grep -q "$HOME_DIR is not empty" "$OUT" || fail "purge did not say it kept $HOME_DIR"
[[ -f "$HOME_DIR/node.key" ]] || fail "purge deleted a node's key"
getent passwd tenderd >/dev/null || fail "purge removed the user of a kept home"
purge_all

step "install again, then purge: nothing left"
run dpkg_run -i "$DEB"
run dpkg_run --purge "$PKG"
status=$(pkg_status)
[[ -z "$status" || "$status" == "unknown ok not-installed" ]] || fail "dpkg status after purge: $status"
while read -r f; do
	[[ "$f" == / || -d "$f" ]] && continue
	[[ ! -e "$f" ]] || fail "$f left after purge"
done <"$TMP/contents"
[[ ! -e "$HOME_DIR" ]] || fail "$HOME_DIR left after purge"
! getent passwd tenderd >/dev/null || fail "user tenderd left after purge"
! getent group tenderd >/dev/null || fail "group tenderd left after purge"
if compgen -G "/var/lib/systemd/deb-systemd-helper-*/*tenderd*" >/dev/null; then
	fail "deb-systemd-helper state left: $(ls -d /var/lib/systemd/deb-systemd-helper-*/*tenderd*)"
fi
rm -f "$MARKER"

echo "e2e_package: ok ($SECONDS s)"
