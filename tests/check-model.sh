#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Model checks: lib/notify.pml is a Promela model of the notification
# protocol, notify.c and the parts of value.c and watcher.c it meets;
# lib/ipc/server.pml models the remote notification, server.c's publish to
# its peers and the get of remote.c (what each checks is in its comment).
# For each run this script has spin generate the verifier pan.c, compiles
# it and runs an exhaustive search of the model's states.  Each model, in
# each configuration (notify.pml: watchers made before the set and the
# close, one of them closed at any point; one watcher made while they run;
# server.pml: two setters, the producer's loop, which may be killed, two
# peers, one of which may die), must show no error after a complete
# search; each mutant, a deliberately broken variant selected with -D,
# must show one, so that we know the check can fail.  Prints one line per
# run with the states stored, the errors and the search time, and for an
# error in the model the counterexample replayed by spin.  Works in a
# temporary directory.  A complete search of notify.pml takes about a
# minute and 1.4 GB per configuration, of server.pml (with a producer that
# may be killed) about 8 million states, 15 s and 0.5 GB; --full adds, for
# notify.pml, the late watcher beside a closing one (about 64 million
# states, 3.4 GB), and for server.pml a peer accepted while the sets run,
# beside a consumer that mixes both ways of calling get (about 28 million
# states, 1.5 GB, two minutes; with the producer's death as well it would
# take over ten), which CI runs once.
#
# Environment: top_srcdir (default .), SPIN (default spin), CC (default
# cc; it also serves as spin's preprocessor).  Skips when either is missing.

: "${top_srcdir:=.}" "${SPIN:=spin}" "${CC:=cc}"
full=false
[ "${1:-}" = --full ] && full=true

for model in "$top_srcdir/lib/notify.pml" "$top_srcdir/lib/ipc/server.pml"; do
        if [ ! -f "$model" ]; then
                echo "check-model: $model not found" >&2
                exit 1
        fi
done
if ! command -v "$SPIN" >/dev/null 2>&1; then
        echo "check-model: SKIP: $SPIN not found; install spin (e.g. apt-get install spin)"
        exit 77
fi
# CC may carry options ("gcc -m32"): look up its first word only.
# shellcheck disable=SC2086
set -- $CC
if [ $# -eq 0 ] || ! command -v "$1" >/dev/null 2>&1; then
        echo "check-model: SKIP: C compiler '$CC' not found; set CC"
        exit 77
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/check-model.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

n_fail=0

# run NAME EXPECT [SPIN-OPTION...]: verify $model preprocessed with the
# options; EXPECT is "pass" (no error, complete search) or "fail" (at least
# one error).  Each run has its own directory, with its own copy of the
# model so that spin's messages and the trail file have a short name.
run() {
        name=$1
        expect=$2
        shift 2
        dir=$tmp/$name
        pml=${model##*/}
        mkdir "$dir" && cp "$model" "$dir/$pml" || exit 1
        # The searches of the model visit tens of millions of states, where
        # -O1 beats -O2 on compile plus search time; a mutant's search ends
        # at its first error, so compile time is all.
        if [ "$expect" = pass ]; then
                opt=-O1
        else
                opt=-O0
        fi
        # Spin defaults to "gcc -E" to preprocess; use the compiler we
        # were given.  -DSAFETY: only safety properties (assertions and
        # end states); -DCOLLAPSE compresses stored states losslessly; no
        # -DBITSTATE, -DHC or -DMA: the search must be exhaustive.  -m: the
        # depth bound, far beyond the model's ~250.
        # shellcheck disable=SC2086
        if ! (cd "$dir" && "$SPIN" -P"$CC -E -x c" "$@" -a "$pml") >"$dir/spin.log" 2>&1 ||
                ! (cd "$dir" && $CC $opt -w -DSAFETY -DCOLLAPSE -o pan pan.c) >"$dir/cc.log" 2>&1; then
                echo "FAIL: $name: could not build the verifier"
                cat "$dir/spin.log" "$dir/cc.log" 2>/dev/null | tail -n 30
                n_fail=$((n_fail + 1))
                return
        fi
        (cd "$dir" && ./pan -m100000) >"$dir/pan.out" 2>&1

        out=$dir/pan.out
        states=$(sed -n 's/^ *\([0-9.e+]*\) states, stored.*/\1/p' "$out")
        errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$out")
        secs=$(sed -n 's/^pan: elapsed time \([0-9.e+-]*\) seconds.*/\1/p' "$out")
        # The first error, e.g. "assertion violated !(polled)", cut short:
        # the monitor's assertions are long once their macros are expanded.
        first=$(sed -n 's/^pan:1: \(.*\) (at depth [0-9]*)$/\1/p' "$out" | head -n 1 | cut -c 1-90)
        # A search cut short by the depth bound or by memory is no proof.
        incomplete=$(grep -i -e 'search depth too small' -e 'search not completed' \
                -e 'out of memory' -e 'hash table overflow' "$out" | head -n 1)
        summary="$name (${states:-?} states, ${errors:-?} errors, ${secs:-?} s)"

        if [ -z "$states" ] || [ -z "$errors" ]; then
                echo "FAIL: $name: no result from pan"
                tail -n 30 "$out"
                n_fail=$((n_fail + 1))
        elif [ "$expect" = pass ] && [ "$errors" -eq 0 ] && [ -z "$incomplete" ]; then
                echo "PASS: $summary"
        elif [ "$expect" = pass ] && [ "$errors" -eq 0 ]; then
                echo "FAIL: $summary: incomplete search: $incomplete"
                n_fail=$((n_fail + 1))
        elif [ "$expect" = pass ]; then
                echo "FAIL: $summary: $first"
                echo "---- counterexample (spin -t -p, last 250 lines):"
                # shellcheck disable=SC2086
                (cd "$dir" && "$SPIN" -P"$CC -E -x c" "$@" -t -p "$pml") 2>&1 | tail -n 250
                n_fail=$((n_fail + 1))
        elif [ "$errors" -gt 0 ]; then
                echo "PASS: $summary, caught: $first"
        else
                echo "FAIL: $summary: the mutant was not caught${incomplete:+ ($incomplete)}"
                n_fail=$((n_fail + 1))
        fi
}

start=$(date +%s)
model=$top_srcdir/lib/notify.pml
run model pass
run model-late-watcher pass -DLATE_WATCHER -DNO_WATCHER_CLOSE
if $full; then
        run model-late-watcher-closing pass -DLATE_WATCHER
fi
for bug in BUG_CLEAR_ORDER BUG_NO_WRITING_WAIT BUG_COLLECT_BEFORE_STATE \
        BUG_STATE_BEFORE_SNAPSHOT BUG_REARM_CLOSED BUG_NO_RECHECK BUG_NO_REVISIT \
        BUG_SIGNAL_NO_CAS BUG_FREE_HELD; do
        run "$bug" fail -D"$bug"
done

# The remote notification: the peer that may die and the producer that
# may be killed make a superset of the runs where all live, so one
# configuration covers them.
model=$top_srcdir/lib/ipc/server.pml
run server-model pass -DPEER_DIES -DSERVER_DIES
if $full; then
        run server-model-late-peer pass -DPEER_DIES -DLATE_PEER -DANY_GETS
fi
for bug in BUG_NO_RECHECK BUG_NO_READY_ADD BUG_STAY_READY BUG_RECHECK_NO_TAS \
        BUG_PENDING_LATE BUG_PAGE_AFTER_SEND BUG_STALE_NOT_RESET BUG_ARM_BEFORE_RESET \
        BUG_NO_LEAVE BUG_ONE_RECV; do
        run "server-$bug" fail -DPEER_DIES -DSERVER_DIES -D"$bug"
done

echo "check-model: $n_fail failed, $(( $(date +%s) - start )) s"
[ $n_fail -eq 0 ]
