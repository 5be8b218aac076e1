#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The systemd units contrib/systemd/evvalue@.socket and evvalue@.service:
# `systemd-analyze verify` of an instance of each, evvalue@test.socket and
# evvalue@test.service, says nothing about them.  verify checks that
# ExecStart='s program exists, and /usr/bin/evvalue is not installed when
# `make check` runs: the units are copied to a temporary directory with
# ExecStart= pointing to the tool just built, $EVVALUE (default
# $PWD/tools/evvalue, the build tree's; the test runs from the build
# directory), nothing being installed.  verify finds the template of an
# instance in the directory of the instance's path, which need not exist.
# It also runs `man 1 evvalue` for Documentation=man:evvalue(1): MANPATH
# points it to a copy of man/evvalue.1, and where man cannot show pages
# here, that check is left out (--man=no) and a note says so.
#
# verify loads the units ours depend on (sockets.target, sysinit.target...)
# from the host, and in a container may warn about those; so the output
# is filtered to the lines that name our units (evvalue@test.* or the
# templates' paths, all containing "evvalue@"), and any such line fails the
# test, warnings included, since verify exits 0 after most of them (an
# unknown directive is "ignoring").  A failure that names none of our units
# means that nothing could be checked: skipped, with verify's output.
#
# Needs systemd-analyze (Debian package systemd; skipped without).  Works as
# root and as another user.  Run by `make check` with top_srcdir in the
# environment; exit 0 pass, 1 fail, 77 skip.

: "${top_srcdir:=.}" "${EVVALUE:=$PWD/tools/evvalue}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
        echo "check-units: SKIP: systemd-analyze not found (Debian package systemd)"
        exit 77
fi
case $EVVALUE in
/*) ;;
*) EVVALUE=$PWD/$EVVALUE ;;
esac
if [ ! -f "$EVVALUE" ] || [ ! -x "$EVVALUE" ]; then
        echo "check-units: FAIL: EVVALUE=$EVVALUE is not an executable file (build tools/evvalue first)"
        exit 1
fi
src=$top_srcdir/contrib/systemd
for f in "$src/evvalue@.socket" "$src/evvalue@.service" "$top_srcdir/man/evvalue.1"; do
        if [ ! -f "$f" ]; then
                echo "check-units: FAIL: $f not found"
                exit 1
        fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-units.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM
units=$tmp/units
mkdir "$units" "$tmp/man" "$tmp/man/man1" || exit 1
cp "$src/evvalue@.socket" "$units/" && cp "$top_srcdir/man/evvalue.1" "$tmp/man/man1/" || exit 1

# In ExecStart= the path is quoted, for blanks, and its '%' doubled, since
# systemd expands specifiers there; then escaped for sed's replacement.
exe=$(printf '%s\n' "$EVVALUE" | sed 's/%/%%/g; s/[\\&|]/\\&/g')
sed "s|^ExecStart=/usr/bin/evvalue |ExecStart=\"$exe\" |" \
        "$src/evvalue@.service" >"$units/evvalue@.service" || exit 1
if grep -q '^ExecStart=/usr/bin/evvalue' "$units/evvalue@.service" ||
   ! grep -q '^ExecStart="' "$units/evvalue@.service"; then
        echo "check-units: FAIL: evvalue@.service has no 'ExecStart=/usr/bin/evvalue ' line to point to $EVVALUE"
        exit 1
fi

man=--man=no
if command -v man >/dev/null 2>&1 &&
   MANPATH=$tmp/man man 1 evvalue >/dev/null 2>&1; then
        man=--man=yes
else
        echo "check-units: note: man cannot show man/evvalue.1 here; Documentation= not checked"
fi

out=$(MANPATH=$tmp/man SYSTEMD_LOG_COLOR=0 systemd-analyze verify "$man" \
        "$units/evvalue@test.socket" "$units/evvalue@test.service" 2>&1)
rc=$?
ours=$(printf '%s\n' "$out" | grep -F 'evvalue@')
if [ -n "$ours" ]; then
        printf '%s\n' "$ours"
        echo "check-units: FAIL: systemd-analyze verify has the above to say about the units"
        exit 1
fi
if [ $rc -ne 0 ]; then
        printf '%s\n' "$out"
        echo "check-units: SKIP: systemd-analyze verify failed (exit $rc) for a reason that names none of our units"
        exit 77
fi
if [ -n "$out" ]; then
        printf '%s\n' "$out" | sed 's/^/check-units: note, not about our units: /'
fi
echo "check-units: evvalue@test.socket and evvalue@test.service verified ($man, ExecStart=$EVVALUE)"
exit 0
