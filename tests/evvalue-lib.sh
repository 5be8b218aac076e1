# shellcheck shell=sh
# SPDX-License-Identifier: MIT
#
# Helpers of the evvalue(1) shell tests (tests/evvalue-*.sh), sourced by
# each as
#
#     . "$top_srcdir/tests/evvalue-lib.sh"
#
# after setting test_name.  Not a test itself.  The tests run from the
# build directory, as automake's driver runs them; the program under test
# is ./tools/evvalue there, or $EVVALUE.  ./tools/evvalue is a libtool
# wrapper: the program it wraps is run instead, with the library path
# `libtool --mode=execute` gives (exported), since the wrapper's shell
# would cost more than the program; a pid taken is the program's either
# way (the wrapper execs it).
#
# What they give:
#   $T            a fresh directory, removed at exit (short enough for
#                 socket paths: under /tmp when $TMPDIR is too long)
#   $EVVALUE      the program
#   $EVV_LIBPATH_VAR  the library path's variable when it was set (for
#                 systemd-socket-activate -E), else empty
#   expect_fail CODE SUBSTR CMD...  expect_exit CODE, one stderr line
#                 starting "evvalue" and holding SUBSTR
#   skip REASON   prints "NAME: SKIP: REASON", exits 77
#   fail MSG...   prints "NAME: FAIL: MSG" (one line per argument), exits 1
#   note MSG      prints "NAME: MSG"
#   expect_exit CODE CMD...  runs CMD (stdout in $T/out, stderr in
#                 $T/err, bounded by a backstop), fails unless it exits CODE
#   expect_ok CMD...         expect_exit 0, and nothing on stderr
#   expect_usage CMD...      expect_exit 2, and one line on stderr
#   check_err_line SUBSTR... $T/err is one line holding each SUBSTR
#   bg NAME [-o OUT] [-i IN] CMD...  starts CMD in the background: pid in
#                 $T/NAME.pid (and "$bg_pid"), stdout in $T/NAME.out (or
#                 OUT), stderr in $T/NAME.err, and once it ends its exit
#                 status in $T/NAME.rc; killed at exit if still running
#   bg_running NAME          true while it has not ended
#   expect_bg NAME CODE [SECONDS]  waits (20 s) for it to end, checks CODE
#   start_serve [-n NAME] ADDR [ARG...]  `evvalue serve ADDR ARG...` in the
#                 background (bg NAME, "serve" by default), returns once
#                 the socket answers `evvalue get`
#   stop_serve [NAME] [SIGNAL]  signals it (TERM), expects exit 0 and an
#                 empty stderr
#   poll SECONDS CMD...      runs CMD every 50 ms until it succeeds (0) or
#                 SECONDS pass (1)
#   wait_lines FILE N [SECONDS]  waits (20 s) until FILE has N lines, fails
#                 (showing FILE) if it does not
#   wait_connected PID ADDR [WHAT]  waits until process PID is connected
#                 to the server at unix ADDR and the server has accepted it
#                 (from /proc/net/unix; without it sleeps 1 s)
#   check_file FILE EXPECTED_FILE WHAT  cmp, showing both on mismatch
#   check_eq WHAT EXPECTED ACTUAL
#   now_ms        milliseconds since the epoch
#   have_python   true when python3 runs

: "${top_srcdir:=.}"
: "${top_builddir:=.}"
: "${test_name:=$(basename "$0" .sh)}"
EVVALUE=${EVVALUE:-$top_builddir/tools/evvalue}
# The variable of the library path set below (LD_LIBRARY_PATH), if it is.
EVV_LIBPATH_VAR=
# Every foreground evvalue command is killed after this many seconds if it
# hangs despite its --timeout: a hang is a failure, never a stuck `make check`.
EVV_BACKSTOP=${EVV_BACKSTOP:-30}

note() {
        echo "$test_name: $*"
}

skip() {
        echo "$test_name: SKIP: $*"
        exit 77
}

fail() {
        echo "$test_name: FAIL: $1"
        shift
        for _l in "$@"; do
                echo "  $_l"
        done
        exit 1
}

# A file shown in a failure: its first lines, non-printing bytes made visible.
show_file() {
        if [ ! -e "$2" ]; then
                echo "  $1: (no file)"
        elif [ ! -s "$2" ]; then
                echo "  $1: (empty)"
        else
                echo "  $1 ($(wc -c <"$2") bytes):"
                head -c 2000 "$2" | cat -v | head -n 20 | sed 's/^/    | /'
        fi
}

# The arguments, quoted, for messages.
quote_args() {
        _q=
        for _a in "$@"; do
                case $_a in
                *[!A-Za-z0-9_./:@%=+,-]* | '') _q="$_q '$(printf '%s' "$_a" | cut -c1-200 | sed "s/'/'\\\\''/g")'" ;;
                *) _q="$_q $_a" ;;
                esac
        done
        printf '%s' "${_q# }"
}

now_ms() {
        _t=$(date +%s%N)
        case $_t in
        *[!0-9]*) echo $(($(date +%s) * 1000)) ;;
        *) echo $((_t / 1000000)) ;;
        esac
}

have_python() {
        command -v python3 >/dev/null 2>&1 && python3 -c 'import json' >/dev/null 2>&1
}

# ------------------------------------------------------------------ setup
if [ ! -x "$EVVALUE" ]; then
        fail "the program under test, $EVVALUE, is not built (or \$EVVALUE is wrong)"
fi
# The libtool wrapper costs a shell and a sed per run, four times what the
# program's own start costs, and the tests run it hundreds of times: unless
# $EVVALUE was given, run the program it wraps, with the library path that
# `libtool --mode=execute` gives it (as tests/run-valgrind.sh does).
if [ "$EVVALUE" = "$top_builddir/tools/evvalue" ] && [ -x "$top_builddir/libtool" ] &&
        sed -n 3p "$EVVALUE" | grep -q 'temporary wrapper script'; then
        _var=$("$top_builddir/libtool" --config | sed -n 's/^shlibpath_var=//p')
        case $_var in
        '' | *[!A-Za-z0-9_]*) ;;
        *)
                "$top_builddir/libtool" --mode=execute sh -c 'echo "$0"; printenv "$1"' \
                        "$EVVALUE" "$_var" >"${TMPDIR:-/tmp}/evvalue-lt.$$" 2>/dev/null
                {
                        read -r _real
                        read -r _path
                } <"${TMPDIR:-/tmp}/evvalue-lt.$$"
                rm -f "${TMPDIR:-/tmp}/evvalue-lt.$$"
                if [ -x "$_real" ] && [ -n "$_path" ] && [ "$(env "$_var=$_path" "$_real" --version 2>/dev/null)" = "$("$EVVALUE" --version)" ]; then
                        EVVALUE=$_real
                        EVV_LIBPATH_VAR=$_var
                        eval "$_var=\$_path; export $_var"
                fi
                ;;
        esac
fi
case $EVVALUE in
/*) ;;
*) EVVALUE=$(pwd)/$EVVALUE ;;
esac

T=$(mktemp -d "${TMPDIR:-/tmp}/evvalue-test.XXXXXX") || fail "mktemp -d failed"
# A socket's path must fit in 108 bytes: a long $TMPDIR gives way to /tmp.
if [ ${#T} -gt 60 ]; then
        rmdir "$T"
        T=$(mktemp -d /tmp/evvalue-test.XXXXXX) || fail "mktemp -d failed"
fi

evv_cleanup() {
        _status=$?
        trap - EXIT HUP INT TERM
        _pids=
        for _f in "$T"/*.pid; do
                [ -f "$_f" ] || continue
                _n=${_f%.pid}
                [ -e "$_n.rc" ] && continue
                _p=$(cat "$_f")
                [ -n "$_p" ] && kill -TERM "$_p" 2>/dev/null && _pids="$_pids $_p"
        done
        if [ -n "$_pids" ]; then
                _i=0
                while [ $_i -lt 100 ]; do
                        _alive=
                        for _p in $_pids; do
                                kill -0 "$_p" 2>/dev/null && _alive="$_alive $_p"
                        done
                        [ -z "$_alive" ] && break
                        _i=$((_i + 1))
                        sleep 0.05
                done
                for _p in $_alive; do
                        kill -KILL "$_p" 2>/dev/null
                done
        fi
        # The background subshells end with their commands.
        wait
        rm -rf "$T"
        exit $_status
}
trap evv_cleanup EXIT
trap 'exit 1' HUP INT TERM

# ------------------------------------------------------------------ waiting
poll() {
        _secs=$1
        shift
        _end=$(($(now_ms) + _secs * 1000))
        while :; do
                "$@" && return 0
                [ "$(now_ms)" -lt "$_end" ] || return 1
                sleep 0.05
        done
}

evv_has_lines() {
        [ -e "$1" ] && [ "$(wc -l <"$1")" -ge "$2" ]
}

wait_lines() {
        poll "${3:-20}" evv_has_lines "$1" "$2" ||
                fail "$1 did not reach $2 lines in ${3:-20} s" "$(show_file "$1" "$1")"
}

# Whether process $1 holds a connected unix SOCK_SEQPACKET socket (its
# connection to a server): its fds' socket inodes, looked up in the
# kernel's table (Type 0005, St 03).
evv_connected() {
        _inodes=$(ls -l "/proc/$1/fd" 2>/dev/null | sed -n 's/.*socket:\[\([0-9]*\)\].*/\1/p' | tr '\n' ' ')
        [ -n "$_inodes" ] || return 1
        awk -v inodes="$_inodes" '
                BEGIN { n = split(inodes, list, " "); for (i = 1; i <= n; i++) want[list[i]] = 1 }
                $5 == "0005" && $6 == "03" && ($7 in want) { found = 1 }
                END { exit !found }' /proc/net/unix
}

# Whether the server at unix address $1 has accepted every connection
# made to it: no connection still waiting in its backlog (St 02).
evv_accepted() {
        _name=$(socket_path "$1")
        [ -n "$_name" ] || _name=${1#unix:}
        awk -v p="$_name" '$NF == p && $6 == "02" { found = 1 } END { exit found }' /proc/net/unix
}

# wait_connected PID ADDR [WHAT]: until process PID is connected to the
# server at ADDR and that server has accepted it (then it sends the
# current state at once).
wait_connected() {
        if [ ! -r /proc/net/unix ] || [ ! -d "/proc/$$/fd" ]; then
                sleep 1
                return 0
        fi
        poll 20 evv_connected "$1" ||
                fail "${3:-process $1} did not connect to its server in 20 s"
        poll 20 evv_accepted "$2" ||
                fail "the server at $2 did not accept ${3:-process $1}'s connection in 20 s"
}

# ------------------------------------------------------------------ running
# evv_run CMD...: runs CMD with stdout in $T/out and stderr in $T/err; its
# exit status in $evv_rc (124: killed by the backstop).
evv_run() {
        evv_cmd="$*"
        if command -v timeout >/dev/null 2>&1; then
                timeout -k 5 "$EVV_BACKSTOP" "$@" >"$T/out" 2>"$T/err"
        else
                "$@" >"$T/out" 2>"$T/err"
        fi
        evv_rc=$?
}

expect_exit() {
        _want=$1
        shift
        evv_run "$@"
        if [ "$evv_rc" != "$_want" ]; then
                _why=
                [ "$evv_rc" = 124 ] && _why=" (killed after $EVV_BACKSTOP s: it hung)"
                fail "$(quote_args "$@")" "expected exit status $_want, got $evv_rc$_why" \
                        "$(show_file stdout "$T/out")" "$(show_file stderr "$T/err")"
        fi
}

expect_ok() {
        expect_exit 0 "$@"
        if [ -s "$T/err" ]; then
                fail "$(quote_args "$@")" "exited 0 but wrote to stderr (the contract: nothing but one error line, ever)" \
                        "$(show_file stderr "$T/err")"
        fi
}

# $T/err is exactly one line, holding each argument.
check_err_line() {
        _lines=$(wc -l <"$T/err")
        if [ "$_lines" != 1 ] || [ "$(tail -c 1 "$T/err" | od -An -c | tr -d ' ')" != '\n' ]; then
                fail "$evv_cmd" "expected exactly one line on stderr, got $_lines newline(s)" \
                        "$(show_file stderr "$T/err")"
        fi
        for _s in "$@"; do
                if ! grep -F -q -e "$_s" "$T/err"; then
                        fail "$evv_cmd" "expected the stderr line to contain: $_s" \
                                "$(show_file stderr "$T/err")"
                fi
        done
}

# expect_fail CODE SUBSTR CMD...: exit CODE and one stderr line holding
# SUBSTR (and starting with "evvalue").
expect_fail() {
        _code=$1
        _sub=$2
        shift 2
        expect_exit "$_code" "$@"
        check_err_line "$_sub"
        case $(cat "$T/err") in
        evvalue*) ;;
        *) fail "$(quote_args "$@")" "the error line does not start with 'evvalue'" "$(show_file stderr "$T/err")" ;;
        esac
}

expect_usage() {
        expect_fail 2 "" "$@"
}

check_eq() {
        if [ "$2" != "$3" ]; then
                fail "$1" "expected: '$2'" "got:      '$3'"
        fi
}

check_file() {
        if ! cmp -s "$1" "$2"; then
                fail "$3: the bytes differ from what was expected" \
                        "$(show_file got "$1")" "$(show_file expected "$2")" \
                        "first difference: $(cmp "$1" "$2" 2>&1 | head -n 1)"
        fi
}

# ------------------------------------------------------------------ background
bg() {
        _n=$1
        shift
        _o=$T/$_n.out
        _i=/dev/null
        while :; do
                case $1 in
                -o) _o=$2; shift 2 ;;
                -i) _i=$2; shift 2 ;;
                *) break ;;
                esac
        done
        rm -f "$T/$_n.rc" "$T/$_n.pid"
        (
                trap - EXIT HUP INT TERM
                "$@" <"$_i" >"$_o" 2>"$T/$_n.err" &
                echo $! >"$T/$_n.pid.tmp"
                mv "$T/$_n.pid.tmp" "$T/$_n.pid"
                wait $!
                echo $? >"$T/$_n.rc.tmp"
                mv "$T/$_n.rc.tmp" "$T/$_n.rc"
        ) 2>/dev/null &
        poll 20 test -s "$T/$_n.pid" || fail "could not start $(quote_args "$@")"
        bg_pid=$(cat "$T/$_n.pid")
}

bg_running() {
        [ ! -e "$T/$1.rc" ]
}

bg_ended() {
        [ -e "$T/$1.rc" ]
}

bg_pid_of() {
        cat "$T/$1.pid"
}

# expect_bg NAME CODE [SECONDS] [WHAT]
expect_bg() {
        if ! poll "${3:-20}" bg_ended "$1"; then
                fail "${4:-$1} did not end in ${3:-20} s (expected exit status $2)" \
                        "$(show_file stdout "$T/$1.out")" "$(show_file stderr "$T/$1.err")"
        fi
        _got=$(cat "$T/$1.rc")
        if [ "$_got" != "$2" ]; then
                fail "${4:-$1}: expected exit status $2, got $_got" \
                        "$(show_file stdout "$T/$1.out")" "$(show_file stderr "$T/$1.err")"
        fi
}

# ------------------------------------------------------------------ serve
# The path of a unix address, or nothing for an abstract one.
socket_path() {
        case $1 in
        unix:@* | @*) ;;
        unix:*) printf '%s' "${1#unix:}" ;;
        *) printf '%s' "$1" ;;
        esac
}

evv_serve_answers() {
        bg_ended "$evv_serve_name" && return 0
        _p=$(socket_path "$evv_serve_addr")
        [ -z "$_p" ] || [ -S "$_p" ] || return 1
        "$EVVALUE" get "$evv_serve_addr" --timeout 300 >/dev/null 2>&1
        case $? in
        0 | 4) return 0 ;;
        *) return 1 ;;
        esac
}

start_serve() {
        evv_serve_name=serve
        if [ "$1" = -n ]; then
                evv_serve_name=$2
                shift 2
        fi
        evv_serve_addr=$1
        shift
        bg "$evv_serve_name" "$EVVALUE" serve "$evv_serve_addr" "$@"
        serve_pid=$bg_pid
        if ! poll 20 evv_serve_answers; then
                fail "evvalue serve $evv_serve_addr $* did not answer in 20 s" \
                        "$(show_file stderr "$T/$evv_serve_name.err")"
        fi
        if bg_ended "$evv_serve_name"; then
                fail "evvalue serve $evv_serve_addr $* exited $(cat "$T/$evv_serve_name.rc") at once" \
                        "$(show_file stderr "$T/$evv_serve_name.err")"
        fi
}

stop_serve() {
        _n=${1:-serve}
        kill -"${2:-TERM}" "$(bg_pid_of "$_n")" 2>/dev/null
        expect_bg "$_n" 0 20 "evvalue serve, after SIG${2:-TERM},"
        if [ -s "$T/$_n.err" ]; then
                fail "evvalue serve wrote to stderr (it prints nothing)" "$(show_file stderr "$T/$_n.err")"
        fi
}
