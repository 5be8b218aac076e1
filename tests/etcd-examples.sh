#!/bin/sh
# SPDX-License-Identifier: MIT
#
# examples/etcd-watch against a real etcd member that tests/etcd-run starts
# (and skips, saying why, without etcd): the watcher prints the absent key,
# then a value etcdctl puts, then the delete, and exits after three states.
# Run by `make check` from the build directory.

if [ -z "$ETCD_ENDPOINTS" ]; then
        exec ./tests/etcd-run "$0" "$@"
fi

out=$(mktemp "${TMPDIR:-/tmp}/etcd-examples.XXXXXX") || exit 1
trap 'rm -f "$out"' EXIT

./examples/etcd-watch "$ETCD_ENDPOINTS" /example 3 >"$out" &
watcher=$!
ctl() { ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINTS" "$@" >/dev/null; }
# Each write once the watcher printed the state before it: the watcher
# sees only the newest state, so two quick writes could merge.
wait_lines() {
        i=0
        while [ "$(wc -l <"$out")" -lt "$1" ]; do
                i=$((i + 1))
                [ $i -le 200 ] || { echo "etcd-examples: no line $1 after 10 s:"; cat "$out"; return 1; }
                sleep 0.05
        done
}
wait_lines 1 && ctl put /example 'hello etcd' && wait_lines 2 && ctl del /example && wait_lines 3 || {
        kill "$watcher" 2>/dev/null
        exit 1
}
wait "$watcher" || { echo "etcd-examples: etcd-watch failed"; cat "$out"; exit 1; }
if ! sed 's/^[0-9]* //' "$out" | tr '\n' '|' | grep -q -x 'absent|hello etcd|absent|'; then
        echo "etcd-examples: unexpected output:"
        cat "$out"
        exit 1
fi
echo "etcd-examples: $(tr '\n' '|' <"$out")"
