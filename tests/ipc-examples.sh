#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs examples/ipc-producer and examples/ipc-consumer as a pair: the
# producer in the background on a socket in a fresh directory, the consumer
# (which retries its connect until the socket exists), and both must exit
# 0.  When systemd-socket-activate is installed, once more with the
# producer started by it on the consumer's first connection, as a
# socket-activated service is (LISTEN_FDS); without it that run is
# skipped, and said so.  The directory is under /tmp, not $TMPDIR: a
# socket's path must fit in 108 bytes.
: "${top_builddir:=.}"
producer=$top_builddir/examples/ipc-producer
consumer=$top_builddir/examples/ipc-consumer
count=1000

for prog in "$producer" "$consumer"; do
        if [ ! -x "$prog" ]; then
                echo "ipc-examples: $prog is not built" >&2
                exit 1
        fi
done

tmp=$(mktemp -d /tmp/ipc-examples.XXXXXX) || exit 1
pid=
cleanup() {
        if [ -n "$pid" ]; then
                kill "$pid" 2>/dev/null
                wait "$pid" 2>/dev/null
        fi
        rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' HUP INT TERM

# The consumer against the producer started as $pid; fails the script
# when either does not exit 0.
run_consumer() {
        "$consumer" "$1" "$count"
        consumer_status=$?
        wait "$pid"
        producer_status=$?
        pid=
        if [ "$consumer_status" -ne 0 ] || [ "$producer_status" -ne 0 ]; then
                echo "FAIL: $2: ipc-consumer exited $consumer_status, ipc-producer $producer_status"
                exit 1
        fi
        echo "PASS: $2"
}

"$producer" "$tmp/counter.sock" "$count" &
pid=$!
run_consumer "$tmp/counter.sock" "a producer and a consumer"
if [ -e "$tmp/counter.sock" ]; then
        echo "FAIL: the producer left its socket behind"
        exit 1
fi

if command -v systemd-socket-activate >/dev/null 2>&1; then
        systemd-socket-activate --seqpacket -l "$tmp/activated.sock" \
                "$producer" "$tmp/activated.sock" "$count" 2>"$tmp/activate.log" &
        pid=$!
        run_consumer "$tmp/activated.sock" "the producer socket-activated by systemd-socket-activate"
else
        echo "SKIP: the socket-activated run: systemd-socket-activate not found (install systemd)"
fi
exit 0
