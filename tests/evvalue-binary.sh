#!/bin/sh
# SPDX-License-Identifier: MIT
#
# States that are not one line of text: the 256 byte values through `set
# ADDR -` and back through get byte for byte; their --json is base64 that
# decodes to them, as does --format %b; valid UTF-8 text (quotes,
# backslash, tab, a NUL) is --json "utf-8" with the text JSON-escaped;
# the empty state; a 1 MiB random state through serve --initial-file
# (a file, and - for stdin) and get.  python3, when present, parses the
# JSON; without it the checks compare the text.
test_name=evvalue-binary
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

addr=unix:$T/value.sock
start_serve "$addr" --initial 'x' --allow-set

# Bytes 0..255.
i=0
while [ $i -lt 256 ]; do
        printf "\\$(printf %03o $i)"
        i=$((i + 1))
done >"$T/bytes"
[ "$(wc -c <"$T/bytes")" = 256 ] || fail "could not make the 256 bytes (printf): $(wc -c <"$T/bytes") bytes"

expect_ok "$EVVALUE" set "$addr" - --timeout 10000 <"$T/bytes"
expect_ok "$EVVALUE" get "$addr" --timeout 10000
check_file "$T/out" "$T/bytes" "get of the bytes 0..255 set from stdin"
expect_ok "$EVVALUE" get "$addr" --format '%z' --timeout 10000
check_eq "get --format '%z' of the bytes 0..255" 256 "$(cat "$T/out")"
# watch adds one newline to them.
expect_ok "$EVVALUE" watch "$addr" --count 1 --timeout 10000
{ cat "$T/bytes"; echo; } >"$T/expected"
check_file "$T/out" "$T/expected" "watch --count 1 of the bytes 0..255"

# --json: base64.
expect_ok "$EVVALUE" get "$addr" --json --timeout 10000
cp "$T/out" "$T/json"
case $(cat "$T/json") in
*'"encoding":"base64"'*) ;;
*) fail "get --json of the bytes 0..255: no \"encoding\":\"base64\"" "$(show_file stdout "$T/json")" ;;
esac
case $(cat "$T/json") in
*'"size":256'*) ;;
*) fail "get --json of the bytes 0..255: no \"size\":256" "$(show_file stdout "$T/json")" ;;
esac
[ "$(wc -l <"$T/json")" = 1 ] && [ "$(tail -c 1 "$T/json" | od -An -c | tr -d ' ')" = '\n' ] ||
        fail "get --json: not one line ending in a newline" "$(show_file stdout "$T/json")"
sed -n 's/.*"data":"\([A-Za-z0-9+\/=]*\)".*/\1/p' "$T/json" >"$T/b64"
[ -s "$T/b64" ] || fail "get --json of the bytes 0..255: no base64 data" "$(show_file stdout "$T/json")"
if command -v base64 >/dev/null 2>&1; then
        base64 -d <"$T/b64" >"$T/decoded" || fail "the --json data is not base64: $(cat "$T/b64")"
        check_file "$T/decoded" "$T/bytes" "the --json data of the bytes 0..255, base64-decoded"
        # %b is the same base64.
        expect_ok "$EVVALUE" get "$addr" --format '%b' --timeout 10000
        check_eq "get --format '%b' and the --json data" "$(cat "$T/b64")" "$(cat "$T/out")"
        # Standard base64 with padding, as base64(1) writes it.
        base64 -w 0 <"$T/bytes" >"$T/expected"
        check_eq "the base64 of the bytes 0..255" "$(cat "$T/expected")" "$(cat "$T/b64")"
else
        note "base64(1) not found (coreutils): the base64 is not decoded"
fi
if have_python; then
        python3 -c '
import base64, json, sys
d = json.loads(open(sys.argv[1], "rb").read())
want = open(sys.argv[2], "rb").read()
assert set(d) >= {"version", "size", "encoding", "data"}, "members: %r" % sorted(d)
assert "absent" not in d, "absent given for a unix value"
assert d["encoding"] == "base64", d["encoding"]
assert d["size"] == len(want), d["size"]
assert isinstance(d["version"], int) and d["version"] > 0, d["version"]
assert base64.b64decode(d["data"], validate=True) == want, "data decodes to other bytes"
' "$T/json" "$T/bytes" 2>"$T/py" || fail "get --json of the bytes 0..255, parsed by python3:" \
                "$(cat "$T/py")" "$(show_file stdout "$T/json")"
fi

# Bytes that are not UTF-8 only in part: base64 too.
printf 'ok \303' >"$T/partial"
expect_ok "$EVVALUE" set "$addr" - --timeout 10000 <"$T/partial"
expect_ok "$EVVALUE" get "$addr" --json --timeout 10000
case $(cat "$T/out") in
*'"encoding":"base64"'*'"data":"b2sgww=="'* | *'"data":"b2sgww=="'*'"encoding":"base64"'*) ;;
*) fail "get --json of 'ok \\303' (a truncated UTF-8 sequence): expected base64 b2sgww==" \
        "$(show_file stdout "$T/out")" ;;
esac

# UTF-8 text: JSON-escaped text.  The state: h, é (2 bytes), llo, a
# quote, a backslash, a tab, a NUL, a newline, a control byte, € (3 bytes).
printf 'h\303\251llo "q" \\ tab\there\000nul\nnl\001 \342\202\254' >"$T/text"
size=$(wc -c <"$T/text")
expect_ok "$EVVALUE" set "$addr" - --timeout 10000 <"$T/text"
expect_ok "$EVVALUE" get "$addr" --timeout 10000
check_file "$T/out" "$T/text" "get of UTF-8 text with a NUL"
expect_ok "$EVVALUE" get "$addr" --json --timeout 10000
cp "$T/out" "$T/json"
case $(cat "$T/json") in
*'"encoding":"utf-8"'*) ;;
*) fail "get --json of UTF-8 text: no \"encoding\":\"utf-8\"" "$(show_file stdout "$T/json")" ;;
esac
case $(cat "$T/json") in
*"\"size\":$size,"* | *"\"size\":$size}"*) ;;
*) fail "get --json of UTF-8 text: no \"size\":$size" "$(show_file stdout "$T/json")" ;;
esac
[ "$(wc -l <"$T/json")" = 1 ] || fail "get --json: not one line" "$(show_file stdout "$T/json")"
# The escapes JSON requires: \" \\ and the control characters (NUL as
# \u0000); the rest may be either.
for esc in '\"q\"' '\\' '\u0000'; do
        grep -F -q -e "$esc" "$T/json" || fail "get --json of UTF-8 text: $esc not found" "$(show_file stdout "$T/json")"
done
if have_python; then
        python3 -c '
import json, sys
line = open(sys.argv[1], "rb").read()
d = json.loads(line)
want = open(sys.argv[2], "rb").read()
assert d["encoding"] == "utf-8", d["encoding"]
assert d["data"].encode("utf-8") == want, "data %r, set %r" % (d["data"], want)
assert d["size"] == len(want), d["size"]
assert b"\t" not in line and b"\n" not in line[:-1] and b"\0" not in line and b"\1" not in line, "raw control bytes in the JSON line"
' "$T/json" "$T/text" 2>"$T/py" || fail "get --json of UTF-8 text, parsed by python3:" \
                "$(cat "$T/py")" "$(show_file stdout "$T/json")"
else
        note "python3 not found: the JSON of the UTF-8 text is checked as text only"
        [ "$(head -c -1 "$T/json" | tr -d '\000-\037' | wc -c)" = "$(($(wc -c <"$T/json") - 1))" ] ||
                fail "get --json of UTF-8 text: raw control bytes in the JSON line" "$(show_file stdout "$T/json")"
fi

# The empty state.
expect_ok "$EVVALUE" set "$addr" - --timeout 10000 </dev/null
expect_ok "$EVVALUE" get "$addr" --timeout 10000
[ -s "$T/out" ] && fail "get of the empty state printed something" "$(show_file stdout "$T/out")"
expect_ok "$EVVALUE" get "$addr" --format '[%z|%s|%b]' --timeout 10000
check_eq "get --format '[%z|%s|%b]' of the empty state" '[0||]' "$(cat "$T/out")"
expect_ok "$EVVALUE" get "$addr" --json --timeout 10000
case $(cat "$T/out") in
*'"size":0'*'"data":""'*) ;;
*) fail "get --json of the empty state" "$(show_file stdout "$T/out")" ;;
esac
expect_ok "$EVVALUE" set "$addr" '' --timeout 10000
expect_ok "$EVVALUE" get "$addr" --format '%z' --timeout 10000
check_eq "get --format '%z' after set ADDR ''" 0 "$(cat "$T/out")"
stop_serve

# 1 MiB of random bytes: serve --initial-file, get.
head -c 1048576 /dev/urandom >"$T/big" || fail "could not read /dev/urandom"
start_serve "$addr" --initial-file "$T/big"
expect_ok "$EVVALUE" get "$addr" --timeout 20000
check_file "$T/out" "$T/big" "get of a 1 MiB random state given by serve --initial-file"
expect_ok "$EVVALUE" get "$addr" --format '%z' --timeout 20000
check_eq "get --format '%z' of the 1 MiB state" 1048576 "$(cat "$T/out")"
stop_serve
# --initial-file - reads stdin; set - of 1 MiB.
bg serve -i "$T/bytes" "$EVVALUE" serve "$addr" --initial-file - --allow-set
poll 20 test -S "$T/value.sock" || fail "serve --initial-file - made no socket in 20 s" "$(show_file stderr "$T/serve.err")"
expect_ok "$EVVALUE" get "$addr" --timeout 20000
check_file "$T/out" "$T/bytes" "get of the state given by serve --initial-file - (stdin)"
expect_ok "$EVVALUE" set "$addr" - --timeout 20000 <"$T/big"
expect_ok "$EVVALUE" get "$addr" --timeout 20000
check_file "$T/out" "$T/big" "get of a 1 MiB random state set from stdin"
stop_serve
note "PASS"
exit 0
