#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue serve under systemd: started by systemd-socket-activate on a
# SOCK_SEQPACKET socket (LISTEN_PID/LISTEN_FDS, fd 3), with and without
# an ADDR to name it, it serves that socket: get, set and watch work, and
# SIGTERM ends it with exit 0 and its watcher with exit 3.  With
# NOTIFY_SOCKET set it sends READY=1 once it answers (checked with a
# python3 receiver, when python3 is there).
#
# systemd-socket-activate, without --accept, listens, waits for the first
# connection, then execs the command in its own process: the pid it was
# started as becomes serve's (the libtool wrapper execs too), which is
# the LISTEN_PID it sets.
test_name=evvalue-activation
if ! command -v systemd-socket-activate >/dev/null 2>&1; then
        echo "$test_name: SKIP: systemd-socket-activate not installed (Debian package systemd)"
        exit 77
fi
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

# activated NAME SOCKET [SERVE ARG...]: serve under systemd-socket-activate
# on SOCKET, once the activator listens (serve itself starts at the first
# connection).
activated() {
        _name=$1
        _sock=$2
        shift 2
        # It passes its children no environment but what -E names: the
        # library path too when evvalue-lib.sh set one.
        bg "$_name" systemd-socket-activate --seqpacket -l "$_sock" \
                ${EVV_LIBPATH_VAR:+-E "$EVV_LIBPATH_VAR"} "$EVVALUE" serve "$@"
        poll 20 test -S "$_sock" || fail "systemd-socket-activate made no socket $_sock in 20 s" \
                "$(show_file stderr "$T/$_name.err")"
}

# The activated process ends as asked: exit 0, and no line of evvalue's
# on stderr (the activator's own log lines are there).
stop_activated() {
        _pid=$(bg_pid_of "$1")
        grep -q evvalue "/proc/$_pid/cmdline" 2>/dev/null ||
                fail "pid $_pid is not evvalue serve: systemd-socket-activate did not exec it in place" \
                        "$(show_file "its stderr" "$T/$1.err")"
        kill -TERM "$_pid"
        expect_bg "$1" 0 20 "evvalue serve under systemd-socket-activate, after SIGTERM,"
        if grep -q '^evvalue' "$T/$1.err"; then
                fail "evvalue serve under systemd-socket-activate wrote to stderr" "$(show_file stderr "$T/$1.err")"
        fi
}

# ---------------------------------------------------------------- no ADDR
sock=$T/act.sock
activated act "$sock" --initial x --allow-set
expect_ok "$EVVALUE" get "unix:$sock" --timeout 20000
check_eq "get from serve started by systemd-socket-activate" x "$(cat "$T/out")"
expect_ok "$EVVALUE" set "$sock" y --timeout 10000
expect_ok "$EVVALUE" get "$sock" --timeout 10000
check_eq "get after set, socket-activated" y "$(cat "$T/out")"
bg watch "$EVVALUE" watch "$sock" --timeout 30000
wait_lines "$T/watch.out" 1
expect_ok "$EVVALUE" set "$sock" z --timeout 10000
wait_lines "$T/watch.out" 2
stop_activated act
expect_bg watch 3 20 "watch of a socket-activated serve stopped by SIGTERM"
printf 'y\nz\n' >"$T/expected"
check_file "$T/watch.out" "$T/expected" "watch of a socket-activated serve"

# ---------------------------------------------------------------- with ADDR
# ADDR only names the socket (messages): serve must neither bind it anew
# nor refuse because it exists.
sock=$T/named.sock
activated named "$sock" "unix:$sock" --initial named
expect_ok "$EVVALUE" get "$sock" --timeout 20000
check_eq "get from a socket-activated serve given its ADDR" named "$(cat "$T/out")"
# Without --allow-set: refused, the line names the address.
expect_fail 1 "$sock" "$EVVALUE" set "$sock" nope --timeout 10000
check_err_line "Operation not permitted"
stop_activated named

# ---------------------------------------------------------------- READY=1
if have_python; then
        cat >"$T/notify.py" <<'EOF'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.settimeout(30)
data = s.recv(4096)
sys.stdout.write(data.decode("utf-8", "replace") + "\n")
EOF
        bg notify python3 "$T/notify.py" "$T/notify"
        poll 20 test -S "$T/notify" || fail "the python3 NOTIFY_SOCKET receiver made no socket" \
                "$(show_file stderr "$T/notify.err")"
        bg serve env NOTIFY_SOCKET="$T/notify" "$EVVALUE" serve "unix:$T/notified.sock" --initial ready
        expect_bg notify 0 20 "the NOTIFY_SOCKET receiver (waiting for evvalue serve's READY=1)"
        grep -q -x 'READY=1' "$T/notify.out" ||
                fail "evvalue serve sent no READY=1 line to NOTIFY_SOCKET" "$(show_file received "$T/notify.out")"
        # Sent once it listens: the socket answers at once.
        expect_ok "$EVVALUE" get "unix:$T/notified.sock" --timeout 10000
        check_eq "get right after READY=1" ready "$(cat "$T/out")"
        stop_serve
else
        note "python3 not found: READY=1 on NOTIFY_SOCKET not checked"
fi
note "PASS"
exit 0
