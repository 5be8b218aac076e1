#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue's usage errors and help: bad addresses, flags, numbers, missing
# operands and conflicting options exit 2 with one line on stderr that
# starts with "evvalue"; --help of the program and of each command, and
# `evvalue help [COMMAND]`, print to stdout only and exit 0; --version
# prints "evvalue VERSION"; connecting to a missing socket exits 1 with a
# line naming the address and the errno text.
test_name=evvalue-usage
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

sock=unix:$T/missing.sock

# ---------------------------------------------------------------- addresses
for a in 'http://x' 'unix://x' 'unix:' '' 'etcd://' 'etcd:///key' 'etcd://127.0.0.1:2379/' \
        'etcd://127.0.0.1:2379' 'etcd://127.0.0.1/key' 'etcd://127.0.0.1:/key' 'etcd://[::1]/key'; do
        expect_usage "$EVVALUE" get "$a" --timeout 1000
        expect_usage "$EVVALUE" set "$a" x --timeout 1000
        expect_usage "$EVVALUE" watch "$a" --timeout 1000
        expect_usage "$EVVALUE" wait "$a" --equals x --timeout 1000
done
expect_usage "$EVVALUE" serve 'http://x'
expect_usage "$EVVALUE" serve 'unix:'
expect_usage "$EVVALUE" serve ''
# serve hosts unix values only.
expect_usage "$EVVALUE" serve 'etcd://127.0.0.1:2379/k'
# --delete is for etcd addresses.
expect_usage "$EVVALUE" set "$sock" --delete
expect_usage "$EVVALUE" set "$T/missing.sock" -d --timeout 1000

# ---------------------------------------------------------------- flags
expect_usage "$EVVALUE" get "$sock" --foo
check_err_line "evvalue get: " "--foo"
expect_usage "$EVVALUE" watch "$sock" -Q
expect_usage "$EVVALUE" --frobnicate
expect_usage "$EVVALUE" frobnicate "$sock"
expect_usage "$EVVALUE"
# Options of another command.
expect_usage "$EVVALUE" get "$sock" --count 1
expect_usage "$EVVALUE" watch "$sock" --wait
expect_usage "$EVVALUE" serve "$T/x.sock" --timeout 100
# Missing operands (serve's ADDR may be left out only when socket-activated).
expect_usage "$EVVALUE" serve --initial x
expect_usage "$EVVALUE" get
expect_usage "$EVVALUE" watch
expect_usage "$EVVALUE" set "$sock"
expect_usage "$EVVALUE" set
expect_usage "$EVVALUE" wait --match x
# One operand too many.
expect_usage "$EVVALUE" get "$sock" extra
expect_usage "$EVVALUE" set "$sock" a b
# A flag missing its argument.
expect_usage "$EVVALUE" get "$sock" --timeout
expect_usage "$EVVALUE" get "$sock" --format
# Numbers.
for n in 0 abc -1 '' 1x; do
        expect_usage "$EVVALUE" watch "$sock" --count "$n" --timeout 1000
done
for t in -5 x '' 10ms 1.5; do
        expect_usage "$EVVALUE" get "$sock" --timeout "$t"
        expect_usage "$EVVALUE" watch "$sock" -t "$t"
done
expect_usage "$EVVALUE" set "$sock" x --timeout x
expect_usage "$EVVALUE" wait "$sock" --equals x --timeout -5
# Conflicting options.
expect_usage "$EVVALUE" get "$sock" --json --format x
expect_usage "$EVVALUE" watch "$sock" -j -f x
expect_usage "$EVVALUE" serve "$T/x.sock" --initial a --initial-file /dev/null
# Formats.
for f in '%q' '%' 'a\q' 'tail\' '%S'; do
        expect_usage "$EVVALUE" get "$sock" --format "$f" --timeout 1000
done
# The checks come before any connection: none of the above made a socket.
for f in "$T"/*.sock; do
        [ -e "$f" ] && fail "a usage error left a socket behind: $f"
done

# ---------------------------------------------------------------- help
check_help() {
        expect_ok "$@"
        [ -s "$T/out" ] || fail "$(quote_args "$@") printed nothing on stdout"
}
check_help "$EVVALUE" --help
grep -q 'serve' "$T/out" && grep -q 'watch' "$T/out" ||
        fail "evvalue --help does not name the commands" "$(show_file stdout "$T/out")"
check_help "$EVVALUE" -h
check_help "$EVVALUE" help
for c in serve set get watch wait; do
        check_help "$EVVALUE" $c --help
        grep -q "$c" "$T/out" || fail "evvalue $c --help does not name $c" "$(show_file stdout "$T/out")"
        cp "$T/out" "$T/help.$c"
        check_help "$EVVALUE" $c -h
        check_help "$EVVALUE" help $c
done
expect_usage "$EVVALUE" help frobnicate
grep -q -- '--allow-set' "$T/help.serve" || fail "evvalue serve --help does not name --allow-set" "$(show_file stdout "$T/help.serve")"
grep -q -- '--if-changed' "$T/help.set" || fail "evvalue set --help does not name --if-changed" "$(show_file stdout "$T/help.set")"
grep -q -- '--wait' "$T/help.get" || fail "evvalue get --help does not name --wait" "$(show_file stdout "$T/help.get")"
grep -q -- '--exec' "$T/help.watch" || fail "evvalue watch --help does not name --exec" "$(show_file stdout "$T/help.watch")"
grep -q -- '--match' "$T/help.wait" || fail "evvalue wait --help does not name --match" "$(show_file stdout "$T/help.wait")"

# --version: "evvalue VERSION", the package's version.
expect_ok "$EVVALUE" --version
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h" 2>/dev/null)
if [ -n "$version" ]; then
        check_eq "evvalue --version" "evvalue $version" "$(cat "$T/out")"
else
        grep -q -x 'evvalue [0-9][0-9A-Za-z.~+-]*' "$T/out" ||
                fail "evvalue --version does not print 'evvalue VERSION'" "$(show_file stdout "$T/out")"
fi

# ---------------------------------------------------------------- no server
for c in get watch; do
        expect_fail 1 "$sock" "$EVVALUE" $c "$sock" --timeout 10000
        check_err_line "evvalue $c: $sock: No such file or directory"
done
expect_fail 1 "$sock" "$EVVALUE" set "$sock" x --timeout 10000
check_err_line "evvalue set: $sock: No such file or directory"
expect_fail 1 "$T/missing.sock" "$EVVALUE" wait "$T/missing.sock" --match x --timeout 10000
check_err_line "evvalue wait: $T/missing.sock: No such file or directory"
expect_fail 1 "$T/nodir/x.sock" "$EVVALUE" get "unix:$T/nodir/x.sock" --timeout 10000
check_err_line "No such file or directory"
# An abstract name nobody serves: refused.
expect_fail 1 "@evvalue-nobody-$$" "$EVVALUE" get "@evvalue-nobody-$$" --timeout 10000
check_err_line "evvalue get: @evvalue-nobody-$$: Connection refused"
# serve where it cannot create its socket: 1, one line.
expect_fail 1 "$T/nodir/x.sock" "$EVVALUE" serve "$T/nodir/x.sock" --initial x
check_err_line "evvalue serve: $T/nodir/x.sock: No such file or directory"
expect_fail 1 "" "$EVVALUE" serve "$T/x.sock" --initial-file "$T/nofile"
check_err_line "No such file or directory"
note "PASS"
exit 0
