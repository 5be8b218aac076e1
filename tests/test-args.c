/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of argument checking, one test per -EINVAL path and per
 * NULL-tolerant accessor that libevvalue(7) states under "Errors": each bad
 * call returns exactly -EINVAL (or the documented NULL/0), writes no output
 * parameter (checked against a sentinel), changes no state (version, data,
 * readiness of watcher fds, unconsumed notifications), leaks no fd or
 * reference, calls no destroy callback, and prints nothing.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ev-value.h"
#include "helpers.h"

/* The number the next new fd gets: an fd leaked in between changes it. */
static int next_fd(void) {
        int fd = eventfd(0, EFD_CLOEXEC);

        cr_assert_geq(fd, 0, "eventfd: %s", strerror(errno));
        close(fd);
        return fd;
}

/* A value at version 1 holding "data", owned, whose destroy counts into log. */
static ev_value *value_with_data_or_fail(struct destroy_log *log) {
        static char data[] = "data";
        ev_value *v = value_new_or_fail();

        cr_assert_eq(ev_value_set_owned(v, data, sizeof(data), record_destroy, log), 0);
        return v;
}

/* v is still what value_with_data_or_fail made. */
static void assert_value_holds_data(ev_value *v) {
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "data");
}

/* Drop the last reference of v and check it really was the last one: the
 * current snapshot's destroy runs, so no failed call leaked a reference. */
static void unref_last_or_fail(ev_value *v, struct destroy_log *log) {
        cr_assert_eq(atomic_load(&log->calls), 0);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log->calls), 1, "a failed call leaked a value reference");
}

Test(args, value_new_with_null_ret_gives_einval_and_leaks_no_fd) {
        int fd = next_fd();

        cr_assert_eq(ev_value_new(NULL), -EINVAL);
        cr_assert_eq(next_fd(), fd);
}

Test(args, value_set_on_null_value_gives_einval) {
        cr_assert_eq(ev_value_set(NULL, "x", 2), -EINVAL);
        cr_assert_eq(ev_value_set(NULL, NULL, 0), -EINVAL);
}

Test(args, value_set_with_null_data_and_nonzero_size_gives_einval_and_changes_nothing) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = watch_consumed_or_fail(v);

        cr_assert_eq(ev_value_set(v, NULL, 5), -EINVAL);
        cr_assert_eq(ev_value_set(v, NULL, 1), -EINVAL);
        cr_assert_eq(ev_value_set(v, NULL, SIZE_MAX), -EINVAL);
        assert_value_holds_data(v);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "a failed set notified");
        get_fails_with(w, -EAGAIN);
        ev_watcher_close(w);
        unref_last_or_fail(v, &log);
}

Test(args, value_set_owned_on_null_value_gives_einval_and_does_not_destroy) {
        struct destroy_log log = { 0 };
        char data[] = "mine";

        cr_assert_eq(ev_value_set_owned(NULL, data, sizeof(data), record_destroy, &log), -EINVAL);
        cr_assert_eq(ev_value_set_owned(NULL, NULL, 0, record_destroy, &log), -EINVAL);
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_str_eq(data, "mine");
}

Test(args, value_set_owned_with_null_data_and_nonzero_size_gives_einval_and_does_not_destroy) {
        struct destroy_log log = { 0 }, rejected = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = watch_consumed_or_fail(v);

        cr_assert_eq(ev_value_set_owned(v, NULL, 5, record_destroy, &rejected), -EINVAL);
        cr_assert_eq(ev_value_set_owned(v, NULL, 1, NULL, NULL), -EINVAL);
        cr_assert_eq(atomic_load(&rejected.calls), 0);
        assert_value_holds_data(v);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "a failed set notified");
        get_fails_with(w, -EAGAIN);
        ev_watcher_close(w);
        unref_last_or_fail(v, &log);
        cr_assert_eq(atomic_load(&rejected.calls), 0);
}

Test(args, value_get_on_null_value_gives_einval_and_leaves_ret_untouched) {
        peek_fails_with(NULL, -EINVAL);
}

Test(args, value_get_with_null_ret_gives_einval_and_takes_no_reference) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);

        cr_assert_eq(ev_value_get(v, NULL), -EINVAL);
        assert_value_holds_data(v);
        /* A reference taken and lost would keep the snapshot alive. */
        unref_last_or_fail(v, &log);
}

Test(args, value_close_on_null_value_gives_einval) {
        cr_assert_eq(ev_value_close(NULL), -EINVAL);
}

Test(args, value_watch_on_null_value_gives_einval_and_leaves_ret_untouched) {
        ev_value_watcher *w = WATCHER_SENTINEL;
        int fd = next_fd();

        cr_assert_eq(ev_value_watch(NULL, 0, &w), -EINVAL);
        cr_assert_eq(w, WATCHER_SENTINEL);
        cr_assert_eq(next_fd(), fd, "a failed watch leaked an fd");
}

Test(args, value_watch_with_any_unknown_flag_gives_einval_and_leaks_nothing) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = WATCHER_SENTINEL;
        int fd = next_fd();
        unsigned i;

        /* Every bit that is not a defined flag, alone and beside a defined one. */
        for (i = 0; i < 32; i++) {
                if ((1u << i) & (EV_VALUE_WATCH_SHARED_FD | EV_VALUE_WATCH_SKIP_CURRENT))
                        continue;
                cr_assert_eq(ev_value_watch(v, 1u << i, &w), -EINVAL, "flag 1 << %u", i);
                cr_assert_eq(w, WATCHER_SENTINEL, "flag 1 << %u", i);
                cr_assert_eq(ev_value_watch(v, (1u << i) | EV_VALUE_WATCH_SHARED_FD, &w),
                             -EINVAL, "flag 1 << %u | SHARED_FD", i);
                cr_assert_eq(w, WATCHER_SENTINEL, "flag 1 << %u | SHARED_FD", i);
        }
        cr_assert_eq(ev_value_watch(v, ~0u, &w), -EINVAL);
        cr_assert_eq(w, WATCHER_SENTINEL);
        cr_assert_eq(next_fd(), fd, "a failed watch leaked an fd");
        assert_value_holds_data(v);
        unref_last_or_fail(v, &log);
}

Test(args, value_watch_with_null_ret_gives_einval_and_leaks_nothing) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        int fd = next_fd();

        cr_assert_eq(ev_value_watch(v, 0, NULL), -EINVAL);
        cr_assert_eq(next_fd(), fd, "a failed watch leaked an fd");
        assert_value_holds_data(v);
        unref_last_or_fail(v, &log);
}

Test(args, watcher_get_fd_of_null_gives_einval) {
        cr_assert_eq(ev_watcher_get_fd(NULL), -EINVAL);
}

Test(args, watcher_get_on_null_watcher_gives_einval_and_leaves_ret_untouched) {
        get_fails_with(NULL, -EINVAL);
}

Test(args, watcher_get_with_null_ret_gives_einval_and_consumes_nothing) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;

        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        cr_assert_eq(ev_watcher_get(w, NULL), -EINVAL);
        /* The unseen snapshot is still there for a correct call. */
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 1);
        ev_snapshot_unref(s);
        ev_watcher_close(w);
        unref_last_or_fail(v, &log);
}

Test(args, watcher_wait_on_null_watcher_gives_einval_and_leaves_ret_untouched, .timeout = 10) {
        wait_fails_with(NULL, 0, -1, -EINVAL);
        wait_fails_with(NULL, -1, -1, -EINVAL);
}

Test(args, watcher_wait_with_null_ret_gives_einval_and_consumes_nothing, .timeout = 10) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;

        cr_assert_eq(ev_watcher_wait(w, 0, -1, NULL), -EINVAL);
        cr_assert_eq(ev_watcher_wait(w, -1, -1, NULL), -EINVAL);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 1);
        ev_snapshot_unref(s);
        /* Nothing pending now: an unchecked NULL would block, not fail. */
        cr_assert_eq(ev_watcher_wait(w, -1, -1, NULL), -EINVAL);
        ev_watcher_close(w);
        unref_last_or_fail(v, &log);
}

Test(args, watcher_wait_with_cancel_fd_below_minus_one_gives_einval_and_consumes_nothing,
     .timeout = 10) {
        static const int bad_fds[] = { -2, -3, -100, INT_MIN };
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;
        size_t i;

        /* With an unseen snapshot: the argument check comes first and the
         * snapshot stays unseen. */
        for (i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
                wait_fails_with(w, 0, bad_fds[i], -EINVAL);
                wait_fails_with(w, -1, bad_fds[i], -EINVAL);
        }
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 1);
        ev_snapshot_unref(s);

        /* With nothing pending: -EINVAL at once, not a wait or a timeout. */
        for (i = 0; i < sizeof(bad_fds) / sizeof(bad_fds[0]); i++) {
                wait_fails_with(w, 0, bad_fds[i], -EINVAL);
                wait_fails_with(w, 50, bad_fds[i], -EINVAL);
                wait_fails_with(w, -1, bad_fds[i], -EINVAL);
        }
        ev_watcher_close(w);
        unref_last_or_fail(v, &log);
}

Test(args, value_get_version_of_null_is_zero) {
        cr_assert_eq(ev_value_get_version(NULL), 0);
}

Test(args, value_ref_of_null_is_null) {
        cr_assert_null(ev_value_ref(NULL));
}

Test(args, value_unref_of_null_is_null) {
        cr_assert_null(ev_value_unref(NULL));
}

Test(args, watcher_close_of_null_is_null) {
        cr_assert_null(ev_watcher_close(NULL));
}

static void redirect_std_streams(void) {
        cr_redirect_stdout();
        cr_redirect_stderr();
}

Test(args, bad_arguments_print_nothing, .init = redirect_std_streams, .timeout = 10) {
        struct destroy_log log = { 0 };
        ev_value *v = value_with_data_or_fail(&log);
        ev_value_watcher *w = watch_consumed_or_fail(v);
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        ev_value *nv = VALUE_SENTINEL;
        ev_value_watcher *nw = WATCHER_SENTINEL;

        cr_assert_eq(ev_value_new(NULL), -EINVAL);
        cr_assert_eq(ev_value_set(NULL, "x", 2), -EINVAL);
        cr_assert_eq(ev_value_set(v, NULL, 5), -EINVAL);
        cr_assert_eq(ev_value_set_owned(NULL, NULL, 0, NULL, NULL), -EINVAL);
        cr_assert_eq(ev_value_set_owned(v, NULL, 5, NULL, NULL), -EINVAL);
        cr_assert_eq(ev_value_get(NULL, &s), -EINVAL);
        cr_assert_eq(ev_value_get(v, NULL), -EINVAL);
        cr_assert_eq(ev_value_close(NULL), -EINVAL);
        cr_assert_eq(ev_value_watch(NULL, 0, &nw), -EINVAL);
        cr_assert_eq(ev_value_watch(v, 1u << 31, &nw), -EINVAL);
        cr_assert_eq(ev_value_watch(v, 0, NULL), -EINVAL);
        cr_assert_eq(ev_watcher_get_fd(NULL), -EINVAL);
        cr_assert_eq(ev_watcher_get(NULL, &s), -EINVAL);
        cr_assert_eq(ev_watcher_get(w, NULL), -EINVAL);
        cr_assert_eq(ev_watcher_wait(NULL, 0, -1, &s), -EINVAL);
        cr_assert_eq(ev_watcher_wait(w, 0, -1, NULL), -EINVAL);
        cr_assert_eq(ev_watcher_wait(w, 0, -2, &s), -EINVAL);
        cr_assert_eq(ev_value_get_version(NULL), 0);
        cr_assert_null(ev_value_ref(NULL));
        cr_assert_null(ev_value_unref(NULL));
        cr_assert_null(ev_watcher_close(NULL));
        cr_assert_null(ev_snapshot_data(NULL));
        cr_assert_eq(ev_snapshot_size(NULL), 0);
        cr_assert_eq(ev_snapshot_version(NULL), 0);
        cr_assert_null(ev_snapshot_ref(NULL));
        cr_assert_null(ev_snapshot_unref(NULL));
        cr_assert_eq(s, SNAPSHOT_SENTINEL);
        cr_assert_eq(nv, VALUE_SENTINEL);
        cr_assert_eq(nw, WATCHER_SENTINEL);
        ev_watcher_close(w);
        unref_last_or_fail(v, &log);

        fflush(stdout);
        fflush(stderr);
        cr_assert_stdout_eq_str("");
        cr_assert_stderr_eq_str("");
}
