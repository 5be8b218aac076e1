#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue watch skips intermediate states, never queues them: each print
# is of the newest state at that moment, except that a remote watcher may
# get once the state that was already on its way when newer ones were set
# (ev_value_connect(3), evvalue(1)): at most one such state, never a queue.
#
# 1. A watcher whose stdout is a pipe nobody reads while 1..20 are set: its
#    print of the first state (100 KiB, more than a pipe holds) blocks;
#    once the pipe is read, it prints the newest state, 20, with at most
#    the state in flight, 1, before it, and nothing else in between.
# 2. A watcher that runs a slow --exec while a loop sets 1..N as fast as
#    it can: far fewer than N states, versions strictly increasing, the
#    last one seen is N, and once the sets are done at most three more
#    runs (the one under way, the state in flight, the newest), not a
#    queue.
# 3. watch --json beside that loop: versions strictly increasing, the last
#    state is N.
test_name=evvalue-watch-skips
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

addr=unix:$T/value.sock

# A state of 100 KiB: "I:" then x's.
head -c 102400 /dev/zero | tr '\0' x >"$T/pad"
big_state() {
        printf '%s:' "$1"
        cat "$T/pad"
}

# ---------------------------------------------------------------- 1
big_state 0 >"$T/state0"
start_serve "$addr" --initial-file "$T/state0" --allow-set
mkfifo "$T/pipe" || fail "mkfifo failed"
# The reader: takes 16 bytes (the print has begun: the watcher is
# connected and blocked in its write), then nothing until $T/go exists.
reader() {
        exec <"$T/pipe"
        dd bs=1 count=16 of="$T/head" 2>/dev/null
        : >"$T/started"
        poll 40 test -e "$T/go"
        cat
}
bg reader reader
bg watch -o "$T/pipe" "$EVVALUE" watch "$addr" --timeout 45000
poll 20 test -e "$T/started" || fail "the watcher printed nothing in 20 s" \
        "$(show_file stderr "$T/watch.err")"
sleep 0.2
bg_running watch || fail "the watcher ended while its output was not read" \
        "$(show_file stderr "$T/watch.err")"
i=1
while [ $i -le 20 ]; do
        big_state $i >"$T/state"
        expect_ok "$EVVALUE" set "$addr" - --timeout 10000 <"$T/state"
        i=$((i + 1))
done
: >"$T/go"
printed_20() {
        grep -q '^20:' "$T/reader.out"
}
poll 20 printed_20 || fail "the watcher did not print state 20 within 20 s of its pipe being read" \
        "$(show_file stderr "$T/watch.err")"
stop_serve
expect_bg watch 3 20 "the blocked watcher, its server stopped"
expect_bg reader 0 20 "the reader of the watcher's pipe"
cat "$T/head" "$T/reader.out" | cut -d: -f1 | tr '\n' ' ' >"$T/seen"
case $(cat "$T/seen") in
"0 20 ") in_flight= ;;
"0 1 20 ") in_flight=1 ;;
*) fail "the states a watcher printed, blocked in its print of state 0 through sets 1..20:" \
        "expected: 0 20, or 0 1 20 (1 being on its way when 2..20 were set)" \
        "got:      $(cat "$T/seen")(states older than the newest were printed: a queue)" ;;
esac
cat "$T/head" "$T/reader.out" >"$T/printed"
{
        cat "$T/state0"; echo
        if [ -n "$in_flight" ]; then big_state 1; echo; fi
        cat "$T/state"; echo
} >"$T/expected"
check_file "$T/printed" "$T/expected" "the blocked watcher's output"
note "the blocked watcher printed: $(cat "$T/seen")"

# ---------------------------------------------------------------- 2 and 3
N=40
start_serve "$addr" --initial 0 --allow-set
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v0=$(cat "$T/out")
# The slow command appends "VERSION STATE" to $OUT, a line per state,
# then takes 1 s: ten times what a set takes here (one `evvalue set`
# process each, through the libtool wrapper), so it must skip.
OUT=$T/slow.seen
export OUT
bg slow "$EVVALUE" watch "$addr" \
        --exec 'printf "%s " "$EVVALUE_VERSION" >>"$OUT"; cat >>"$OUT"; echo >>"$OUT"; sleep 1' \
        --timeout 60000
bg json "$EVVALUE" watch "$addr" --json --timeout 60000
wait_lines "$T/slow.seen" 1
wait_lines "$T/json.out" 1

start=$(now_ms)
i=1
while [ $i -le $N ]; do
        expect_ok "$EVVALUE" set "$addr" $i --timeout 20000
        i=$((i + 1))
done
elapsed=$(($(now_ms) - start))
at_end=$(wc -l <"$T/slow.seen")
note "$N sets in $elapsed ms; the slow --exec had run for $at_end states by then"

last_is() {
        [ "$(tail -n 1 "$1" | sed "$2")" = "$N" ]
}
poll 20 last_is "$T/slow.seen" 's/^[0-9]* //' ||
        fail "the slow --exec watcher did not get to the last state, $N, in 20 s after the sets" \
                "$(show_file seen "$T/slow.seen")"
poll 20 last_is "$T/json.out" 's/.*"data":"\([0-9]*\)".*/\1/' ||
        fail "watch --json did not print the last state, $N, in 20 s after the sets" \
                "$(tail -n 3 "$T/json.out")"
sleep 0.5
stop_serve
expect_bg slow 3 20 "watch --exec, its server stopped"
expect_bg json 3 20 "watch --json, its server stopped"

# The slow watcher: far fewer states than sets; each line holds the
# version it was given and the state of that version (set I is version
# v0 + I); versions strictly increasing; once the sets were done, at most
# the state under way, the one in flight and the last one, not a queue.
seen=$(wc -l <"$T/slow.seen")
[ "$seen" -le $((N / 2)) ] || fail "the slow --exec watcher ran for $seen of $N states: intermediate states were not skipped" \
        "$(show_file seen "$T/slow.seen")"
[ $((seen - at_end)) -le 3 ] || fail "after the last set the slow --exec watcher ran $((seen - at_end)) more times (at most 3: the run under way, the state in flight, the newest state): states older than the newest were run (queued)" \
        "$(show_file seen "$T/slow.seen")"
awk -v v0="$v0" '
        NF != 2 || $1 !~ /^[0-9]+$/ { print "line " NR ": not \"VERSION STATE\": " $0; bad = 1; next }
        NR > 1 && $1 + 0 <= prev { print "line " NR ": version " $1 " after " prev; bad = 1 }
        $1 - v0 != $2 { print "line " NR ": version " $1 " was given state " $2 ", which is version " v0 + $2; bad = 1 }
        { prev = $1 + 0 }
        END { exit bad }' "$T/slow.seen" >"$T/bad" ||
        fail "the slow --exec watcher's states (VERSION STATE per line; the initial state is version $v0):" \
                "$(cat "$T/bad")" "$(show_file seen "$T/slow.seen")"

# The --json watcher: one object per line, versions strictly increasing,
# data the state of that version.
sed -n 's/^{.*"version":\([0-9]*\).*"data":"\([0-9]*\)".*}$/\1 \2/p; t; s/^{.*"data":"\([0-9]*\)".*"version":\([0-9]*\).*}$/\2 \1/p; t; p' \
        "$T/json.out" >"$T/json.pairs"
awk -v v0="$v0" '
        NF != 2 { print "line " NR ": not the JSON of a state: " $0; bad = 1; next }
        NR > 1 && $1 + 0 <= prev { print "line " NR ": version " $1 " after " prev; bad = 1 }
        $1 - v0 != $2 { print "line " NR ": version " $1 " has data " $2 ", the data of version " v0 + $2; bad = 1 }
        { prev = $1 + 0 }
        END { exit bad }' "$T/json.pairs" >"$T/bad" ||
        fail "watch --json's states:" "$(cat "$T/bad")" "$(show_file json "$T/json.out")"
note "PASS: the slow watcher saw $seen of $N states, the --json one $(wc -l <"$T/json.out")"
exit 0
