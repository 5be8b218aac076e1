#!/bin/sh
# SPDX-License-Identifier: MIT
#
# evvalue on etcd addresses, against a fresh one-member etcd that
# tests/etcd-run starts (or the cluster $ETCD_ENDPOINTS names): a missing
# key is an absent state ("absent":true, %a 1, EVVALUE_ABSENT=1); set is
# seen by etcdctl and etcdctl's put by watch; set --delete makes the key
# absent; the version is the key's mod_revision; set --if-changed leaves
# the revision alone; `etcd://HOST:PORT//app/state` is the key
# /app/state and %XX is decoded; wait --equals; binary states.
# In a build without libevvalue-etcd (no tests/etcd-run): skipped, after
# checking that the program says etcd addresses are not supported.
test_name=evvalue-etcd
: "${top_builddir:=.}"
if [ -z "$ETCD_ENDPOINTS" ]; then
        if [ ! -x "$top_builddir/tests/etcd-run" ]; then
                # No etcd-run: a build without libevvalue-etcd, where etcd
                # addresses must give exit 1 and say so (port 1: refused at
                # once should the build support them after all).
                evv=${EVVALUE:-$top_builddir/tools/evvalue}
                err=$("$evv" get etcd://127.0.0.1:1/k --timeout 1000 2>&1 >/dev/null)
                rc=$?
                case $err in
                *"etcd addresses are not supported by this build"*)
                        if [ "$rc" != 1 ]; then
                                echo "$test_name: FAIL: evvalue get etcd://127.0.0.1:1/k in a build without etcd"
                                echo "  expected exit status 1, got $rc: $err"
                                exit 1
                        fi
                        echo "$test_name: SKIP: libevvalue-etcd not built (configure found no libcurl or json-c):" \
                                "etcd addresses are refused as they must be"
                        ;;
                *)
                        echo "$test_name: SKIP: tests/etcd-run is not built (make check builds it)"
                        ;;
                esac
                exit 77
        fi
        exec "$top_builddir/tests/etcd-run" /bin/sh "$0" "$@"
fi
if ! command -v etcdctl >/dev/null 2>&1; then
        echo "$test_name: SKIP: etcdctl not installed (Debian package etcd-client)"
        exit 77
fi
# shellcheck source=tests/evvalue-lib.sh
. "${top_srcdir:-.}/tests/evvalue-lib.sh"

# http://127.0.0.1:PORT[,http://...] -> 127.0.0.1:PORT[,...]
hosts=$(printf '%s' "$ETCD_ENDPOINTS" | sed 's#https\{0,1\}://##g; s#/,#,#g; s#/$##')
# Keys of this run only, should the cluster be shared.
k=evvalue-test-$$-${T##*.}
A=etcd://$hosts/$k
ctl() {
        ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" --command-timeout=10s "$@"
}
# The mod_revision of key $1 (nothing when absent).
mod_revision() {
        ctl get "$1" -w json >"$T/ctl.json" || fail "etcdctl get $1 -w json failed"
        if have_python; then
                python3 -c '
import json, sys
kvs = json.load(open(sys.argv[1])).get("kvs", [])
print(kvs[0]["mod_revision"] if kvs else "")' "$T/ctl.json"
        else
                sed -n 's/.*"mod_revision":\([0-9]*\).*/\1/p' "$T/ctl.json"
        fi
}

# ---------------------------------------------------------------- absent
expect_ok "$EVVALUE" get "$A" --json --timeout 20000
case $(cat "$T/out") in
*'"absent":true'*) ;;
*) fail "get --json of a missing key: no \"absent\":true" "$(show_file stdout "$T/out")" ;;
esac
case $(cat "$T/out") in
*'"size":0'*'"data":""'*) ;;
*) fail "get --json of a missing key: size 0 and data \"\" expected" "$(show_file stdout "$T/out")" ;;
esac
expect_ok "$EVVALUE" get "$A" --timeout 20000
[ -s "$T/out" ] && fail "get of a missing key printed something" "$(show_file stdout "$T/out")"
expect_ok "$EVVALUE" get "$A" --format '%a|%z|%s' --timeout 20000
check_eq "get --format '%a|%z|%s' of a missing key" '1|0|' "$(cat "$T/out")"
expect_ok "$EVVALUE" watch "$A" --count 1 --timeout 20000 --exec 'echo "absent=$EVVALUE_ABSENT size=$EVVALUE_SIZE"'
check_eq "watch --exec of a missing key" 'absent=1 size=0' "$(cat "$T/out")"

# ---------------------------------------------------------------- set, get
expect_ok "$EVVALUE" set "$A" 'hello etcd' --timeout 20000
expect_ok "$EVVALUE" get "$A" --timeout 20000
check_eq "get after set on etcd" 'hello etcd' "$(cat "$T/out")"
expect_ok "$EVVALUE" get "$A" --format '%a %s' --timeout 20000
check_eq "get --format '%a %s' of a key that exists" '0 hello etcd' "$(cat "$T/out")"
expect_ok "$EVVALUE" get "$A" --json --timeout 20000
case $(cat "$T/out") in
*'"absent":false'*) ;;
*) fail "get --json of a key that exists: no \"absent\":false" "$(show_file stdout "$T/out")" ;;
esac
ctl get "$k" --print-value-only >"$T/ctl.out" || fail "etcdctl get $k failed"
check_eq "etcdctl get of the key evvalue set" 'hello etcd' "$(cat "$T/ctl.out")"
expect_ok "$EVVALUE" watch "$A" --count 1 --timeout 20000 --exec 'echo "absent=${EVVALUE_ABSENT-unset}"; cat'
check_eq "watch --exec of a key that exists" "absent=unset
hello etcd" "$(cat "$T/out")"

# The version is the key's mod_revision.
expect_ok "$EVVALUE" get "$A" --format '%v' --timeout 20000
rev=$(mod_revision "$k")
check_eq "the version of the state, against etcd's mod_revision of $k" "$rev" "$(cat "$T/out")"
# set --if-changed of the same bytes: no new revision; of others: one.
expect_ok "$EVVALUE" set "$A" 'hello etcd' --if-changed --timeout 20000
check_eq "the mod_revision after set --if-changed of the same bytes" "$rev" "$(mod_revision "$k")"
expect_ok "$EVVALUE" set "$A" 'hello again' --if-changed --timeout 20000
rev2=$(mod_revision "$k")
[ "$rev2" -gt "$rev" ] || fail "set --if-changed of other bytes made no new revision ($rev, then $rev2)"
expect_ok "$EVVALUE" get "$A" --format '%v %s' --timeout 20000
check_eq "get after set --if-changed 'hello again'" "$rev2 hello again" "$(cat "$T/out")"

# ---------------------------------------------------------------- etcdctl put -> watch
bg watch "$EVVALUE" watch "$A" --count 3 --format '%a %s\n' --timeout 30000
wait_lines "$T/watch.out" 1
ctl put "$k" 'from etcdctl' >/dev/null || fail "etcdctl put failed"
wait_lines "$T/watch.out" 2
ctl del "$k" >/dev/null || fail "etcdctl del failed"
expect_bg watch 0 30 "watch --count 3 of etcdctl's put and del"
printf '0 hello again\n0 from etcdctl\n1 \n' >"$T/expected"
check_file "$T/watch.out" "$T/expected" "watch --count 3 --format '%a %s\\n' of a put and a del by etcdctl"

# ---------------------------------------------------------------- --delete
expect_ok "$EVVALUE" set "$A" 'to delete' --timeout 20000
expect_ok "$EVVALUE" set "$A" --delete --timeout 20000
expect_ok "$EVVALUE" get "$A" --json --timeout 20000
case $(cat "$T/out") in
*'"absent":true'*) ;;
*) fail "get --json after set --delete: no \"absent\":true" "$(show_file stdout "$T/out")" ;;
esac
expect_ok "$EVVALUE" get "$A" --format '%a' --timeout 20000
check_eq "get --format '%a' after set --delete" 1 "$(cat "$T/out")"
ctl get "$k" --print-value-only >"$T/ctl.out"
[ -s "$T/ctl.out" ] && fail "etcdctl still finds the key after evvalue set --delete" "$(show_file etcdctl "$T/ctl.out")"
expect_ok "$EVVALUE" set "$A" -d --timeout 20000
# set --if-changed of an empty value on the absent key writes it.
expect_ok "$EVVALUE" set "$A" '' --if-changed --timeout 20000
expect_ok "$EVVALUE" get "$A" --format '%a %z' --timeout 20000
check_eq "get --format '%a %z' after set --if-changed '' on the absent key" "0 0" "$(cat "$T/out")"

# ---------------------------------------------------------------- keys
# After the hosts, the first / starts the key: //app/state is /app/state.
expect_ok "$EVVALUE" set "etcd://$hosts//$k/app/state" 'slashed' --timeout 20000
ctl get "/$k/app/state" --print-value-only >"$T/ctl.out"
check_eq "etcdctl get /$k/app/state, set as etcd://HOST:PORT//$k/app/state" 'slashed' "$(cat "$T/ctl.out")"
ctl put "$k/plain" 'no slash' >/dev/null || fail "etcdctl put failed"
expect_ok "$EVVALUE" get "etcd://$hosts/$k/plain" --timeout 20000
check_eq "get etcd://HOST:PORT/$k/plain" 'no slash' "$(cat "$T/out")"
# A list of hosts (here the same one twice).
expect_ok "$EVVALUE" get "etcd://$hosts,$hosts/$k/plain" --timeout 20000
check_eq "get etcd://HOST:PORT,HOST:PORT/$k/plain" 'no slash' "$(cat "$T/out")"
# %XX is decoded.
expect_ok "$EVVALUE" set "etcd://$hosts/$k%2Fa%20b" 'decoded' --timeout 20000
ctl get "$k/a b" --print-value-only >"$T/ctl.out"
check_eq "etcdctl get '$k/a b', set as etcd://HOST:PORT/$k%2Fa%20b" 'decoded' "$(cat "$T/ctl.out")"

# ---------------------------------------------------------------- wait
bg wait "$EVVALUE" wait "$A" --equals 'ready' --timeout 30000
sleep 0.5
ctl put "$k" 'not ready' >/dev/null
sleep 0.5
bg_running wait || fail "wait --equals ready ended at an absent key or 'not ready'" \
        "exit status $(cat "$T/wait.rc")" "$(show_file stderr "$T/wait.err")"
ctl put "$k" 'ready' >/dev/null
expect_bg wait 0 30 "wait --equals ready on etcd, after etcdctl put ready"
expect_exit 4 "$EVVALUE" wait "$A" --equals 'never' --timeout 500
expect_ok "$EVVALUE" wait "$A" --match '^rea' --json --timeout 20000
case $(cat "$T/out") in
*'"data":"ready"'*'"absent":false'* | *'"absent":false'*'"data":"ready"'*) ;;
*) fail "wait --match --json on etcd" "$(show_file stdout "$T/out")" ;;
esac

# ---------------------------------------------------------------- binary
i=0
while [ $i -lt 256 ]; do
        printf "\\$(printf %03o $i)"
        i=$((i + 1))
done >"$T/bytes"
expect_ok "$EVVALUE" set "$A" - --timeout 20000 <"$T/bytes"
expect_ok "$EVVALUE" get "$A" --timeout 20000
check_file "$T/out" "$T/bytes" "get of the bytes 0..255 set on etcd from stdin"
ctl get "$k" --print-value-only >"$T/ctl.out"
printf '\n' >>"$T/bytes"
check_file "$T/ctl.out" "$T/bytes" "etcdctl get of the bytes 0..255 set by evvalue (etcdctl adds a newline)"

# serve does not take etcd addresses.
expect_usage "$EVVALUE" serve "$A"
ctl del --prefix "$k" >/dev/null
ctl del --prefix "/$k" >/dev/null
note "PASS"
exit 0
