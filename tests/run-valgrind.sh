#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Runs each test program given as argument under valgrind's memcheck (what
# `make check-valgrind` calls) and fails if any program fails or valgrind
# finds an error or a definite or indirect leak in any of its processes.
# The programs are libtool wrappers, so valgrind is started through
# `libtool --mode=execute`.  Criterion programs (tests/test-*) run each test
# in a child that criterion re-executes, and criterion ignores the exit
# status valgrind gives a child after the test has reported, so valgrind
# follows children (--trace-children=yes), one test at a time (--jobs=1),
# writes one log per process, and this script reads every log's ERROR
# SUMMARY; it does not follow the etcd members the etcd tests start.  Stress programs (tests/stress-*) run with EV_VALUE_STRESS_SCALE
# (default 0.05 here) and --fair-sched=yes.  A suppression file
# tests/valgrind.supp is used when present.  Prints one summary line per
# program and, for a failure, the valgrind reports.
#
# Environment: top_builddir, top_srcdir (from AM_TESTS_ENVIRONMENT),
# VALGRIND (default valgrind), VALGRIND_FLAGS (added to the flags below),
# EV_VALUE_STRESS_SCALE.

: "${top_builddir:=.}" "${top_srcdir:=.}" "${VALGRIND:=valgrind}"

if [ $# -eq 0 ]; then
        echo "usage: $0 PROGRAM..." >&2
        exit 2
fi
if ! command -v "$VALGRIND" >/dev/null 2>&1; then
        echo "run-valgrind: SKIP: $VALGRIND not found; install valgrind"
        exit 77
fi
libtool=$top_builddir/libtool
if [ ! -x "$libtool" ]; then
        echo "run-valgrind: $libtool not found: run configure first" >&2
        exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/run-valgrind.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# Not etcd and etcdctl, which the etcd tests start: Go programs, which
# valgrind cannot run (and which are not ours to check).
flags="--error-exitcode=1 --leak-check=full --errors-for-leak-kinds=definite,indirect
        --show-leak-kinds=definite,indirect --trace-children=yes --num-callers=30
        --trace-children-skip=*/etcd,*/etcdctl"
supp=$top_srcdir/tests/valgrind.supp
if [ -f "$supp" ]; then
        flags="$flags --suppressions=$supp"
fi
flags="$flags ${VALGRIND_FLAGS:-}"

n_pass=0
n_fail=0
n_skip=0
failed=
# The loop's list is expanded once: the "set --" below does not disturb it.
for prog in "$@"; do
        name=$(basename "$prog")
        if [ ! -e "$prog" ]; then
                # e.g. the criterion tests when criterion was not found
                echo "SKIP: $prog (not built)"
                n_skip=$((n_skip + 1))
                continue
        fi
        logs=$tmp/$name
        mkdir -p "$logs"
        case $name in
        test-*)
                extra_flags=
                args=--jobs=1
                ;;
        stress-*)
                extra_flags=--fair-sched=yes
                args=
                ;;
        *)
                extra_flags=
                args=
                ;;
        esac
        start=$(date +%s)
        # shellcheck disable=SC2086
        EV_VALUE_STRESS_SCALE=${EV_VALUE_STRESS_SCALE:-0.05} \
                "$libtool" --mode=execute "$VALGRIND" $flags $extra_flags \
                --log-file="$logs/vg.%p.log" "$prog" $args >"$logs/output" 2>&1
        rc=$?
        secs=$(( $(date +%s) - start ))

        # Each valgrind process ends its log with "ERROR SUMMARY: N errors".
        set -- "$logs"/vg.*.log
        processes=0
        errors=0
        bad_logs=
        if [ -e "$1" ]; then
                for log in "$@"; do
                        n=$(sed -n 's/^==[0-9]*== ERROR SUMMARY: \([0-9]*\) error.*/\1/p' "$log" | tail -n 1)
                        if [ -z "$n" ]; then
                                # Cut short (killed, or replaced by exec).
                                continue
                        fi
                        processes=$((processes + 1))
                        if [ "$n" -gt 0 ]; then
                                errors=$((errors + n))
                                bad_logs="$bad_logs $log"
                        fi
                done
        fi

        if [ $rc -eq 0 ] && [ $errors -eq 0 ] && [ $processes -gt 0 ]; then
                echo "PASS: $prog ($processes processes checked, no error, ${secs} s)"
                n_pass=$((n_pass + 1))
                continue
        fi
        echo "FAIL: $prog (exit $rc, $errors valgrind errors in $processes processes checked, ${secs} s)"
        n_fail=$((n_fail + 1))
        failed="$failed $prog"
        for log in $bad_logs; do
                echo "---- valgrind report $(basename "$log"):"
                # The reports without valgrind's banner and heap summary.
                grep -v -e '^==[0-9]*== Memcheck,' -e '^==[0-9]*== Copyright' \
                        -e '^==[0-9]*== Using Valgrind' -e '^==[0-9]*== Command' \
                        -e '^==[0-9]*== Parent PID' "$log" | head -n 300
        done
        if [ $rc -ne 0 ] || [ $processes -eq 0 ]; then
                echo "---- output of $prog (last 60 lines):"
                tail -n 60 "$logs/output"
        fi
done

echo "run-valgrind: $n_pass passed, $n_skip skipped, $n_fail failed${failed:+:$failed}"
[ $n_fail -eq 0 ]
