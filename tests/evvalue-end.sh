#!/bin/sh
# SPDX-License-Identifier: MIT
#
# How evvalue's clients end with their server.  SIGTERM to `evvalue
# serve`: a watch prints the final state if it had not yet, then exits 3;
# a get --wait exits 3; the socket file is removed; serve exits 0.
# SIGKILL: a watch and a get --wait exit 5 (connection lost), the socket
# file stays, and a new serve replaces it (while a live one gives
# "Address already in use").  set once the server is gone: 1, one line
# naming the address.
test_name=evvalue-end
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

addr=unix:$T/value.sock

# The stderr of a command that ended with its server: nothing, or one line
# naming the command and the address.
check_bg_err() {
        [ -s "$T/$1.err" ] || return 0
        if [ "$(wc -l <"$T/$1.err")" != 1 ] || ! grep -q -F -e "$2" "$T/$1.err"; then
                fail "$1 wrote to stderr other than one line starting '$2'" "$(show_file stderr "$T/$1.err")"
        fi
}

# ---------------------------------------------------------------- SIGTERM
start_serve "$addr" --initial 'first' --allow-set
bg watch "$EVVALUE" watch "$addr" --timeout 30000
wait_lines "$T/watch.out" 1
bg getwait "$EVVALUE" get "$addr" --wait --timeout 30000
wait_connected "$bg_pid" "$addr" "get --wait"
sleep 0.3
bg_running getwait || fail "get --wait ended with no set" "exit status $(cat "$T/getwait.rc")" \
        "$(show_file stderr "$T/getwait.err")"
stop_serve
expect_bg watch 3 20 "watch, its server stopped by SIGTERM,"
printf 'first\n' >"$T/expected"
check_file "$T/watch.out" "$T/expected" "the output of watch, its server stopped by SIGTERM (the final state already seen)"
expect_bg getwait 3 20 "get --wait, its server stopped by SIGTERM,"
[ -s "$T/getwait.out" ] && fail "get --wait printed something when its server stopped" \
        "$(show_file stdout "$T/getwait.out")"
check_bg_err watch "evvalue watch: $addr: "
check_bg_err getwait "evvalue get: $addr: "
[ -e "$T/value.sock" ] && fail "serve did not remove its socket at SIGTERM"

# set, get and watch once the server is gone: 1, one line naming the
# address.
expect_fail 1 "$addr" "$EVVALUE" set "$addr" 'late' --timeout 10000
check_err_line "evvalue set: $addr: " "No such file or directory"
expect_fail 1 "$addr" "$EVVALUE" get "$addr" --timeout 10000
check_err_line "evvalue get: $addr: "
expect_fail 1 "$addr" "$EVVALUE" watch "$addr" --timeout 10000
check_err_line "evvalue watch: $addr: "

# The final state, set just before the SIGTERM, reaches the watcher
# before its exit 3.
start_serve "$addr" --initial 'first' --allow-set
bg watch "$EVVALUE" watch "$addr" --timeout 30000
wait_lines "$T/watch.out" 1
expect_ok "$EVVALUE" set "$addr" 'final' --timeout 10000
stop_serve
expect_bg watch 3 20 "watch, its server stopped by SIGTERM right after a set,"
printf 'first\nfinal\n' >"$T/expected"
check_file "$T/watch.out" "$T/expected" "the output of watch, its server stopped by SIGTERM right after a set"

# --json of the same: the final state, then 3.
start_serve "$addr" --initial 'first' --allow-set
bg watch "$EVVALUE" watch "$addr" --json --timeout 30000
wait_lines "$T/watch.out" 1
expect_ok "$EVVALUE" set "$addr" 'final' --timeout 10000
stop_serve
expect_bg watch 3 20 "watch --json, its server stopped by SIGTERM right after a set,"
case $(tail -n 1 "$T/watch.out") in
*'"data":"final"'*) ;;
*) fail "watch --json did not print the final state before its exit 3" "$(show_file stdout "$T/watch.out")" ;;
esac

# ---------------------------------------------------------------- SIGKILL
start_serve "$addr" --initial 'doomed' --allow-set
bg watch "$EVVALUE" watch "$addr" --timeout 30000
wait_lines "$T/watch.out" 1
bg getwait "$EVVALUE" get "$addr" --wait --timeout 30000
wait_connected "$bg_pid" "$addr" "get --wait"
sleep 0.3
kill -KILL "$serve_pid"
expect_bg serve 137 20 "serve, killed by SIGKILL,"
expect_bg watch 5 20 "watch, its server killed by SIGKILL,"
printf 'doomed\n' >"$T/expected"
check_file "$T/watch.out" "$T/expected" "the output of watch, its server killed"
expect_bg getwait 5 20 "get --wait, its server killed by SIGKILL,"
check_bg_err watch "evvalue watch: $addr: "
check_bg_err getwait "evvalue get: $addr: "
[ -S "$T/value.sock" ] || fail "the socket file of a killed serve is gone: the next test means nothing"

# A dead server's socket: connecting is refused (1), a new serve replaces
# it.
expect_fail 1 "$addr" "$EVVALUE" get "$addr" --timeout 10000
check_err_line "evvalue get: $addr: " "Connection refused"
start_serve "$addr" --initial 'reborn' --allow-set
expect_ok "$EVVALUE" get "$addr" --timeout 10000
check_eq "get from a serve started over a stale socket" 'reborn' "$(cat "$T/out")"
# A live one is not replaced.
expect_fail 1 "$addr" "$EVVALUE" serve "$addr" --initial 'usurper'
check_err_line "Address already in use"
expect_ok "$EVVALUE" get "$addr" --timeout 10000
check_eq "get after a second serve on a live socket failed" 'reborn' "$(cat "$T/out")"
stop_serve
note "PASS"
exit 0
