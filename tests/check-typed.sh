#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Build check of EV_VALUE_DEFINE_TYPED: the typed functions must turn a
# pointer to the wrong type into a compile error, which is their reason to
# exist.  tests/typed-wrong.c uses point_set, point_set_if_changed,
# point_peek, point_get and point_wait (prefix point, type struct point)
# rightly, and must compile with no diagnostic at all with -Wall -Wextra
# -Wpedantic -Werror as C11 and, when $CXX works, as C++11: the positive
# control, without which a failure below could be any failure.  Each
# TYPED_WRONG_* macro adds one call with a pointer to another type, which
# must fail to compile as C with -Werror=incompatible-pointer-types and as
# C++ with no flag at all; a failure counts only if every error is reported
# at the line of that call (marked by a comment naming the macro), says the
# pointer types are incompatible (as C) or cannot be converted (as C++),
# and names the wrong type.  Diagnostics are read in the C locale.
#
# tests/typed-one.c uses one generated function only, as most files do; it
# must compile to an object with no diagnostic under -Wall -Wextra
# -Wpedantic -Werror with $CC, gcc and clang as C11, and $CXX, g++ and
# clang++ as C++11, each that is installed: the unused ones must not draw
# -Wunused-function.
#
# Run by `make check` with top_srcdir, CC and CXX in the environment.
# Exit 0 pass, 1 fail, 77 skip (no working C compiler).

: "${top_srcdir:=.}" "${CC:=cc}" "${CXX=}"

src=$top_srcdir/tests/typed-wrong.c
one=$top_srcdir/tests/typed-one.c
header=$top_srcdir/include/ev-value.h
for f in "$src" "$one" "$header"; do
        if [ ! -f "$f" ]; then
                echo "check-typed: $f not found" >&2
                exit 1
        fi
done

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-typed.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

LC_ALL=C
export LC_ALL

failed=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; failed=1; }
skip() { echo "SKIP: $*"; }
show() { sed 's/^/    /' "$1"; }

# The wrong uses: the macro's suffix, then a word of the wrong type.
cases='SET:int SET_IF_CHANGED:not_a_point PEEK:long GET:not_a_point WAIT:double'

# Compile $src as language $1 (c or c++) with the remaining arguments,
# without output; the diagnostics go to $tmp/out.
compile() {
        lang=$1
        shift
        if [ "$lang" = c ]; then
                # shellcheck disable=SC2086
                $CC -x c -std=c11 -I"$top_srcdir/include" "$@" -fsyntax-only "$src" >"$tmp/out" 2>&1
        else
                # shellcheck disable=SC2086
                $CXX -x c++ -std=c++11 -I"$top_srcdir/include" "$@" -fsyntax-only "$src" >"$tmp/out" 2>&1
        fi
}

# The right uses, as $1: no diagnostic at all.
check_right() {
        lang=$1
        if ! compile "$lang" -Wall -Wextra -Wpedantic -Werror; then
                bad "the right uses do not compile as $lang:"
                show "$tmp/out"
        elif [ -s "$tmp/out" ]; then
                bad "the right uses compile as $lang, but with diagnostics:"
                show "$tmp/out"
        else
                pass "the right uses compile as $lang with no diagnostic"
        fi
}

# The wrong use TYPED_WRONG_$2 as $1 with the flags $4; $3 is a word of the
# wrong type, $5 an extended regular expression the error must match.
check_wrong() {
        lang=$1
        macro=TYPED_WRONG_$2
        type=$3
        flags=$4
        expect=$5
        line=$(grep -n "/\* $macro \*/" "$src" | cut -d: -f1)
        call=$(sed -n "${line}p" "$src" | sed -e 's/.*|= *//' -e 's/; .*//')
        what="$call as $lang${flags:+ ($flags)}"
        if [ -z "$line" ]; then
                bad "$macro: no line of $src is marked /* $macro */"
                return
        fi
        # shellcheck disable=SC2086
        if compile "$lang" $flags -D"$macro"; then
                bad "$what compiles"
                show "$tmp/out"
                return
        fi
        grep -E ': error:' "$tmp/out" >"$tmp/errors"
        if ! grep -q -E "typed-wrong\\.c:$line:[0-9]+: error:" "$tmp/errors"; then
                bad "$what fails, but with no error at its line $line:"
                show "$tmp/out"
        elif grep -v -E "typed-wrong\\.c:$line:[0-9]+: error:" "$tmp/errors" >"$tmp/other"; then
                bad "$what fails, also for another reason:"
                show "$tmp/other"
        elif ! grep -q -E "$expect" "$tmp/out"; then
                bad "$what fails, but not for a pointer type:"
                show "$tmp/out"
        elif ! grep -q -w "$type" "$tmp/out"; then
                bad "$what fails, but the error does not name $type:"
                show "$tmp/out"
        else
                pass "$what does not compile: $(grep -m1 -E "typed-wrong\\.c:$line:" "$tmp/errors" | sed 's/.*: error: *//')"
        fi
}

# tests/typed-one.c with compiler $2 as language $1 (c or c++).
check_one_use() {
        lang=$1
        compiler=$2
        std=c11
        [ "$lang" = c ] || std=c++11
        # shellcheck disable=SC2086
        if ! $compiler -x "$lang" -std=$std -I"$top_srcdir/include" -Wall -Wextra -Wpedantic \
                -Werror -c "$one" -o "$tmp/one.o" >"$tmp/out" 2>&1; then
                bad "a file using one typed function does not compile with $compiler:"
                show "$tmp/out"
        elif [ -s "$tmp/out" ]; then
                bad "a file using one typed function draws diagnostics from $compiler:"
                show "$tmp/out"
        else
                pass "a file using one typed function compiles with $compiler, no diagnostic"
        fi
}

# Each compiler once: $CC may be gcc or clang itself.
check_one_use_with() {
        lang=$1
        shift
        seen=
        for compiler in "$@"; do
                [ -n "$compiler" ] || continue
                case " $seen " in *" $compiler "*) continue ;; esac
                seen="$seen $compiler"
                if command -v "${compiler%% *}" >/dev/null 2>&1; then
                        check_one_use "$lang" "$compiler"
                else
                        skip "$compiler is not installed"
                fi
        done
}

printf 'int check_typed_probe;\n' >"$tmp/probe.c"
if ! $CC -x c -std=c11 -fsyntax-only "$tmp/probe.c" >"$tmp/out" 2>&1; then
        echo "check-typed: SKIP: '$CC -std=c11' does not compile a trivial file:"
        show "$tmp/out"
        exit 77
fi

check_right c
check_one_use_with c "$CC" gcc clang
for case in $cases; do
        check_wrong c "${case%%:*}" "${case#*:}" -Werror=incompatible-pointer-types \
                'incompatible[ -]pointer[ -]type'
done

have_cxx=no
if [ -z "$CXX" ]; then
        skip "C++: CXX is not set"
else
        cp "$tmp/probe.c" "$tmp/probe.cc"
        if $CXX -x c++ -std=c++11 -fsyntax-only "$tmp/probe.cc" >"$tmp/out" 2>&1; then
                have_cxx=yes
        else
                skip "C++: '$CXX -std=c++11' does not compile a trivial file"
        fi
fi
if [ $have_cxx = yes ]; then
        check_right c++
        check_one_use_with c++ "$CXX" g++ clang++
        for case in $cases; do
                check_wrong c++ "${case%%:*}" "${case#*:}" '' 'convert|conversion'
        done
fi

if [ $failed -ne 0 ]; then
        echo "check-typed: FAILED"
        exit 1
fi
echo "check-typed: passed"
exit 0
