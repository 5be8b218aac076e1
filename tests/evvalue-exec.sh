#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue watch --exec: never two commands at once, each given the state's
# bytes on stdin and its version and size in EVVALUE_VERSION and
# EVVALUE_SIZE, the newest state taken after each (the last one set is the
# last one run), the command's stdout evvalue's own, its exit status
# ignored; --exec with --json or --format is a usage error.
test_name=evvalue-exec
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

N=60
addr=unix:$T/value.sock
start_serve "$addr" --initial 0 --allow-set
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v0=$(cat "$T/out")

# The command: takes a lock directory (mkdir fails if another command
# holds it: an overlap, recorded), keeps its stdin in in.VERSION, records
# "VERSION SIZE" in runs, sleeps a little, lets the lock go.
D=$T/exec
mkdir "$D"
export D
bg watch "$EVVALUE" watch "$addr" --timeout 60000 --exec '
        if ! mkdir "$D/lock" 2>/dev/null; then echo "$EVVALUE_VERSION" >>"$D/overlaps"; fi
        cat >"$D/in.$EVVALUE_VERSION"
        sleep 0.03
        echo "$EVVALUE_VERSION $EVVALUE_SIZE" >>"$D/runs"
        rmdir "$D/lock" 2>/dev/null
        exit 3'
wait_lines "$D/runs" 1

# Two setters at once, so that sets come faster than one loop gives them.
setter() {
        i=$1
        while [ $i -le $2 ]; do
                "$EVVALUE" set "$addr" "$i" --timeout 20000 || {
                        echo "set $i failed: status $?"
                        exit 1
                }
                i=$((i + 1))
        done
}
bg setter1 setter 1 $((N / 2))
setter $((N / 2 + 1)) $N >"$T/setter2.out" 2>&1 || fail "the second setter failed" "$(show_file output "$T/setter2.out")"
expect_bg setter1 0 30 "the first setter"
expect_ok "$EVVALUE" get "$addr" --format '%v %s' --timeout 10000
read -r vlast slast <"$T/out"
[ "$vlast" = $((v0 + N)) ] || fail "after $N sets the version is $vlast, not $v0 + $N"

last_run_is() {
        [ "$(tail -n 1 "$D/runs" | cut -d' ' -f1)" = "$vlast" ]
}
poll 20 last_run_is || fail "--exec was not run for the last state (version $vlast) in 20 s after the sets" \
        "$(show_file runs "$D/runs")"
sleep 0.3
stop_serve
expect_bg watch 3 20 "watch --exec, its server stopped"

[ -e "$D/overlaps" ] && fail "two --exec commands ran at once, at versions: $(tr '\n' ' ' <"$D/overlaps")"
runs=$(wc -l <"$D/runs")
# Versions strictly increasing; stdin's size is EVVALUE_SIZE; each
# state one that was set (0..N), none run twice; the last run has the
# last state.  (With two setters, which state made which version is not
# known here: the exact pairing is checked below, with one.)
awk '
        NF != 2 || $1 !~ /^[0-9]+$/ { print "runs line " NR ": not \"VERSION SIZE\": " $0; bad = 1; next }
        NR > 1 && $1 + 0 <= prev { print "runs line " NR ": version " $1 " after " prev; bad = 1 }
        { prev = $1 + 0 }
        END { exit bad }' "$D/runs" >"$T/bad" ||
        fail "the --exec runs (VERSION SIZE per line):" "$(cat "$T/bad")" "$(show_file runs "$D/runs")"
: >"$T/states"
while read -r v size; do
        f=$D/in.$v
        got=$(wc -c <"$f")
        [ "$got" = "$size" ] || fail "the command run for version $v read $got bytes, EVVALUE_SIZE said $size"
        s=$(cat "$f")
        case $s in
        '' | *[!0-9]*) fail "the command run for version $v read '$s', which was never set" ;;
        esac
        [ "$s" -le $N ] || fail "the command run for version $v read '$s', which was never set"
        echo "$s" >>"$T/states"
done <"$D/runs"
[ "$(sort "$T/states" | uniq -d)" = "" ] || fail "--exec ran twice for one state:" "$(sort "$T/states" | uniq -d)"
check_eq "the state the last --exec was given" "$slast" "$(cat "$D/in.$vlast")"
check_eq "the first --exec's state (the initial one, version $v0)" 0 "$(cat "$D/in.$v0")"
[ "$runs" -lt $((N + 1)) ] || note "(every state got its own run: the sets were no faster than the command)"
note "$runs runs of --exec for $N sets"

# The exact pairing of version and state, with one setter: set I makes
# version v1 + I.
rm -rf "$D"
mkdir "$D"
start_serve "$addr" --initial 0 --allow-set
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v1=$(cat "$T/out")
bg watch "$EVVALUE" watch "$addr" --timeout 60000 --exec '
        if ! mkdir "$D/lock" 2>/dev/null; then echo "$EVVALUE_VERSION" >>"$D/overlaps"; fi
        sleep 0.05
        cat >"$D/in.$EVVALUE_VERSION"
        echo "$EVVALUE_VERSION $EVVALUE_SIZE" >>"$D/runs"
        rmdir "$D/lock"'
wait_lines "$D/runs" 1
setter 1 50 >"$T/setter.out" 2>&1 || fail "the setter failed" "$(show_file output "$T/setter.out")"
vlast=$((v1 + 50))
poll 20 last_run_is || fail "--exec was not run for the last state (version $vlast) in 20 s after the sets" \
        "$(show_file runs "$D/runs")"
stop_serve
expect_bg watch 3 20 "watch --exec, its server stopped"
[ -e "$D/overlaps" ] && fail "two --exec commands ran at once, at versions: $(tr '\n' ' ' <"$D/overlaps")"
while read -r v size; do
        check_eq "the state given to the command run for version $v (set $((v - v1)))" "$((v - v1))" "$(cat "$D/in.$v")"
done <"$D/runs"

# The command's stdout is evvalue's; its exit status does not matter;
# --count counts its runs.
start_serve "$addr" --initial 'first' --allow-set
expect_ok "$EVVALUE" watch "$addr" --count 1 --timeout 10000 --exec 'printf "<"; cat; printf ">%s\n" "$EVVALUE_SIZE"; exit 9'
check_eq "the output of watch --count 1 --exec 'printf \"<\"; cat; printf \">%s\\n\" \"\$EVVALUE_SIZE\"; exit 9'" \
        '<first>5' "$(cat "$T/out")"
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v0=$(cat "$T/out")
expect_ok "$EVVALUE" watch "$addr" -n 1 -t 10000 -e 'test -z "$EVVALUE_ABSENT" && echo "$EVVALUE_VERSION"'
check_eq "EVVALUE_VERSION of watch --exec (and EVVALUE_ABSENT unset for a unix value)" \
        "$v0" "$(cat "$T/out")"
stop_serve

# --exec with --json or --format: usage errors.
expect_usage "$EVVALUE" watch "$addr" --exec cat --json
expect_usage "$EVVALUE" watch "$addr" --exec cat --format '%s'
expect_usage "$EVVALUE" watch "$addr" -e cat -j
note "PASS"
exit 0
