#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue wait: --match REGEX and --equals DATA wait past states that do
# not satisfy them and exit 0 at one that does; a current state that
# already does ends it at once; the regex is searched in bytes that may
# hold NULs; --timeout gives 4; --json and --format print the state that
# satisfied it, nothing is printed without them; neither or both of
# --equals and --match, or a bad regex, are usage errors.
test_name=evvalue-wait
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

addr=unix:$T/value.sock
start_serve "$addr" --initial 'booting' --allow-set

# --match: a state that does not match leaves it waiting, one that does
# ends it.
bg match "$EVVALUE" wait "$addr" --match '^ready( [0-9]+)?$' --timeout 30000
sleep 0.3
expect_ok "$EVVALUE" set "$addr" 'starting' --timeout 10000
expect_ok "$EVVALUE" set "$addr" 'not ready' --timeout 10000
sleep 0.5
bg_running match || fail "wait --match '^ready( [0-9]+)?\$' ended at states 'booting', 'starting', 'not ready'" \
        "exit status $(cat "$T/match.rc")" "$(show_file stderr "$T/match.err")"
expect_ok "$EVVALUE" set "$addr" 'ready 42' --timeout 10000
expect_bg match 0 20 "wait --match, after the set of 'ready 42'"
[ -s "$T/match.out" ] && fail "wait --match without --json or --format printed something" \
        "$(show_file stdout "$T/match.out")"
[ -s "$T/match.err" ] && fail "wait --match wrote to stderr" "$(show_file stderr "$T/match.err")"

# The current state already matches: at once, even with no set to come.
expect_ok "$EVVALUE" wait "$addr" --match 'dy 4' --timeout 10000
expect_ok "$EVVALUE" wait "$addr" -m '^ready' -t 10000
expect_ok "$EVVALUE" wait "$addr" --equals 'ready 42' --timeout 10000
expect_ok "$EVVALUE" wait -E 'ready 42' -t 10000 "$addr"

# --equals: byte-equal, not a prefix nor a regex.
bg equals "$EVVALUE" wait "$addr" --equals 'go' --timeout 30000
sleep 0.3
for s in 'go!' 'g.' 'ego' 'Go'; do
        expect_ok "$EVVALUE" set "$addr" "$s" --timeout 10000
done
sleep 0.5
bg_running equals || fail "wait --equals go ended at one of the states 'go!' 'g.' 'ego' 'Go'" \
        "exit status $(cat "$T/equals.rc")"
expect_ok "$EVVALUE" set "$addr" 'go' --timeout 10000
expect_bg equals 0 20 "wait --equals go, after the set of 'go'"

# --json and --format print the state that satisfied the condition.
bg json "$EVVALUE" wait "$addr" --match '^done' --json --timeout 30000
bg format "$EVVALUE" wait "$addr" --equals 'done: yes' --format '%s|%z\n' --timeout 30000
expect_ok "$EVVALUE" set "$addr" 'done: no' --timeout 10000
expect_ok "$EVVALUE" set "$addr" 'done: yes' --timeout 10000
expect_bg json 0 20 "wait --match '^done' --json"
expect_bg format 0 20 "wait --equals 'done: yes' --format"
expect_ok "$EVVALUE" get "$addr" --format '%v' --timeout 10000
v=$(cat "$T/out")
printf 'done: yes|9\n' >"$T/expected"
check_file "$T/format.out" "$T/expected" "wait --equals 'done: yes' --format '%s|%z\\n'"
# The --json one matched 'done: no' or 'done: yes', whichever it saw
# first: one line, the JSON of that state.
case $(cat "$T/json.out") in
'{'*'"data":"done: no"'*'}' | '{'*'"data":"done: yes"'*'}') ;;
*) fail "wait --match '^done' --json printed no JSON state 'done: ...'" "$(show_file stdout "$T/json.out")" ;;
esac
[ "$(wc -l <"$T/json.out")" = 1 ] || fail "wait --json printed more than one line" "$(show_file stdout "$T/json.out")"
expect_ok "$EVVALUE" wait "$addr" --equals 'done: yes' --json --timeout 10000
printf '{"version":%s,"size":9,"encoding":"utf-8","data":"done: yes"}\n' "$v" >"$T/expected"
check_file "$T/out" "$T/expected" "wait --equals 'done: yes' --json, the state current"

# A regex searched in bytes that hold NULs: a match after the NUL.
printf 'head\000tail: ok' >"$T/nul"
expect_ok "$EVVALUE" set "$addr" - --timeout 10000 <"$T/nul"
expect_ok "$EVVALUE" wait "$addr" --match 'tail: ok$' --timeout 10000
expect_ok "$EVVALUE" wait "$addr" --match '^head' --timeout 10000

# --timeout: 4, not sooner.
start=$(now_ms)
expect_exit 4 "$EVVALUE" wait "$addr" --equals 'never' --timeout 600
elapsed=$(($(now_ms) - start))
[ "$elapsed" -ge 600 ] || fail "wait --timeout 600 gave up after $elapsed ms"
expect_exit 4 "$EVVALUE" wait "$addr" --match '^never$' --timeout 300 --json
[ -s "$T/out" ] && fail "wait --json that timed out printed something" "$(show_file stdout "$T/out")"

# Usage errors: neither, both, a bad regex.
expect_usage "$EVVALUE" wait "$addr" --timeout 1000
expect_usage "$EVVALUE" wait "$addr" --equals a --match a --timeout 1000
expect_usage "$EVVALUE" wait "$addr" --match '(' --timeout 1000
expect_usage "$EVVALUE" wait "$addr" --match 'a[b' --timeout 1000
expect_usage "$EVVALUE" wait "$addr" --match x --json --format '%s' --timeout 1000
expect_usage "$EVVALUE" wait --equals x
stop_serve
note "PASS"
exit 0
