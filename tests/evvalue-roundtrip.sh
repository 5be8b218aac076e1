#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue(1) round trips through `evvalue serve`: serve --initial and get
# (the exact bytes, nothing added), set then get, get --wait (the next
# state, not the current one), watch --count (each state and a newline),
# watch --skip-current and --timeout, set --if-changed (the version moves
# only when the bytes differ), --format, options after and before the
# operands and `--`, the three spellings of a unix address (unix:PATH, a
# bare PATH, unix:@NAME), a serve without --allow-set refusing sets, and
# get --wait --timeout giving 4 no sooner than asked.
test_name=evvalue-roundtrip
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

addr=unix:$T/value.sock
start_serve "$addr" --initial 'hello world' --allow-set

# get prints the state exactly: no newline added.
expect_ok "$EVVALUE" get "$addr" --timeout 10000
printf 'hello world' >"$T/expected"
check_file "$T/out" "$T/expected" "get of serve --initial 'hello world'"

# set, then get.
expect_ok "$EVVALUE" set "$addr" 'second state' --timeout 10000
expect_ok "$EVVALUE" get "$addr" --timeout 10000
printf 'second state' >"$T/expected"
check_file "$T/out" "$T/expected" "get after set 'second state'"

# Options before the operands, short forms, and `--` for a state that
# looks like an option.
expect_ok "$EVVALUE" set -t 10000 "$addr" -- -5
expect_ok "$EVVALUE" get -t 10000 -f '[%s]' "$addr"
check_eq "set ADDR -- -5, then get --format '[%s]'" '[-5]' "$(cat "$T/out")"

# --format: %v %z %s, the escapes, %%.
expect_ok "$EVVALUE" set "$addr" 'hello' --timeout 10000
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v=$(cat "$T/out")
case $v in
'' | *[!0-9]*) fail "get --format '%v' printed '$v', not a version number" ;;
esac
expect_ok "$EVVALUE" get "$addr" --format '%v %z %s\n' --timeout 10000
printf '%s 5 hello\n' "$v" >"$T/expected"
check_file "$T/out" "$T/expected" "get --format '%v %z %s\\n'"
expect_ok "$EVVALUE" get "$addr" --format '<%s>\t%%\\\0|%z' --timeout 10000
printf '<hello>\t%%\\\000|5' >"$T/expected"
check_file "$T/out" "$T/expected" "get --format '<%s>\\t%%\\\\\\0|%z'"

# set --if-changed: the same bytes leave the version alone, other bytes
# make a new one.
expect_ok "$EVVALUE" set "$addr" 'hello' --if-changed --timeout 10000
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
check_eq "the version after set --if-changed of the same bytes ('hello')" "$v" "$(cat "$T/out")"
expect_ok "$EVVALUE" set -c "$addr" 'hello!' --timeout 10000
expect_ok "$EVVALUE" get "$addr" --format '%v %s' --timeout 10000
read -r v2 s2 <"$T/out"
check_eq "the state after set --if-changed 'hello!'" 'hello!' "$s2"
[ "$v2" -gt "$v" ] || fail "set --if-changed of different bytes did not make a new version" \
        "version before: $v, after: $v2"
# A plain set of the same bytes is a new version all the same.
expect_ok "$EVVALUE" set "$addr" 'hello!' --timeout 10000
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v3=$(cat "$T/out")
[ "$v3" -gt "$v2" ] || fail "a plain set of the same bytes did not make a new version" \
        "version before: $v2, after: $v3"

# get --wait prints the next state, not the current one.  It counts the
# state current when it connected as seen, so the set must come after its
# connection: wait for it to connect, and if it still has not
# returned after a while (it connected late), set once more.
bg getwait "$EVVALUE" get "$addr" --wait --timeout 30000
wait_connected "$bg_pid" "$addr" "get --wait"
sleep 0.2
bg_running getwait || fail "get --wait returned before any set (it must wait for the next state)" \
        "exit status $(cat "$T/getwait.rc")" "$(show_file stdout "$T/getwait.out")"
expect_ok "$EVVALUE" set "$addr" 'the next one' --timeout 10000
if ! poll 5 bg_ended getwait; then
        expect_ok "$EVVALUE" set "$addr" 'the next one' --timeout 10000
fi
expect_bg getwait 0 20 "get --wait"
printf 'the next one' >"$T/expected"
check_file "$T/getwait.out" "$T/expected" "get --wait"

# watch --count 3: each state followed by a newline, the current one first.
expect_ok "$EVVALUE" set "$addr" 'one' --timeout 10000
bg watch "$EVVALUE" watch "$addr" --count 3 --timeout 30000
wait_lines "$T/watch.out" 1
expect_ok "$EVVALUE" set "$addr" 'two' --timeout 10000
wait_lines "$T/watch.out" 2
expect_ok "$EVVALUE" set "$addr" 'three' --timeout 10000
expect_bg watch 0 20 "watch --count 3"
printf 'one\ntwo\nthree\n' >"$T/expected"
check_file "$T/watch.out" "$T/expected" "watch --count 3"

# watch --skip-current: starts with the next state.
bg skip "$EVVALUE" watch "$addr" --skip-current -n 1 --timeout 30000
wait_connected "$bg_pid" "$addr" "watch --skip-current"
sleep 0.2
expect_ok "$EVVALUE" set "$addr" 'after skip' --timeout 10000
if ! poll 5 bg_ended skip; then
        expect_ok "$EVVALUE" set "$addr" 'after skip' --timeout 10000
fi
expect_bg skip 0 20 "watch --skip-current --count 1"
printf 'after skip\n' >"$T/expected"
check_file "$T/skip.out" "$T/expected" "watch --skip-current --count 1"

# watch --timeout: 4 when --count states did not come in time, after
# printing the one there was.
expect_exit 4 "$EVVALUE" watch "$addr" --count 2 --timeout 500
printf 'after skip\n' >"$T/expected"
check_file "$T/out" "$T/expected" "watch --count 2 --timeout 500 with one state"

# get --wait --timeout with no set: 4, and not before the timeout.
start=$(now_ms)
expect_exit 4 "$EVVALUE" get "$addr" --wait --timeout 700
elapsed=$(($(now_ms) - start))
[ "$elapsed" -ge 700 ] || fail "get --wait --timeout 700 gave up after $elapsed ms, before its timeout"
[ -s "$T/out" ] && fail "get --wait that timed out printed something" "$(show_file stdout "$T/out")"

# The other spellings of a unix address: a bare path, and an abstract
# socket as unix:@NAME and @NAME.
stop_serve
[ -e "$T/value.sock" ] && fail "serve did not remove its socket $T/value.sock at SIGTERM"

start_serve -n bare "$T/bare.sock" --initial 'bare path' --allow-set
expect_ok "$EVVALUE" get "$T/bare.sock" --timeout 10000
check_eq "get of a bare path" 'bare path' "$(cat "$T/out")"
expect_ok "$EVVALUE" get "unix:$T/bare.sock" --timeout 10000
check_eq "get of unix:PATH served as a bare PATH" 'bare path' "$(cat "$T/out")"
expect_ok "$EVVALUE" set "$T/bare.sock" 'bare set' --timeout 10000
expect_ok "$EVVALUE" get "$T/bare.sock" --timeout 10000
check_eq "get of a bare path after set" 'bare set' "$(cat "$T/out")"
stop_serve bare

abstract="@evvalue-test-$$-${T##*.}"
start_serve -n abstract "unix:$abstract" --initial 'abstract' --allow-set
expect_ok "$EVVALUE" get "unix:$abstract" --timeout 10000
check_eq "get of unix:@NAME" 'abstract' "$(cat "$T/out")"
expect_ok "$EVVALUE" set "$abstract" 'abstract set' --timeout 10000
expect_ok "$EVVALUE" get "unix:$abstract" --timeout 10000
check_eq "get of unix:@NAME after set of @NAME" 'abstract set' "$(cat "$T/out")"
stop_serve abstract

# serve without --allow-set: set fails, 1, one line naming the address.
start_serve -n ro "unix:$T/ro.sock" --initial 'read only'
expect_fail 1 "unix:$T/ro.sock" "$EVVALUE" set "unix:$T/ro.sock" 'nope' --timeout 10000
check_err_line "Operation not permitted" "evvalue set"
expect_ok "$EVVALUE" get "unix:$T/ro.sock" --timeout 10000
check_eq "get after a refused set" 'read only' "$(cat "$T/out")"
stop_serve ro

# serve without --initial: get waits for the first state.
start_serve -n empty "unix:$T/empty.sock" --allow-set
expect_exit 4 "$EVVALUE" get "unix:$T/empty.sock" --timeout 300
bg first "$EVVALUE" get "unix:$T/empty.sock" --timeout 30000
expect_ok "$EVVALUE" set "unix:$T/empty.sock" 'first' --timeout 10000
expect_bg first 0 20 "get of a value with no state yet"
check_eq "get of a value with no state, then set 'first'" 'first' "$(cat "$T/first.out")"
stop_serve empty

note "PASS"
exit 0
