/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of EV_VALUE_DEFINE_TYPED, instantiated here for a struct and
 * for a scalar: the generated set, set_if_changed, peek, get and wait copy
 * exactly one object in and out; a snapshot of another size, set through
 * the untyped API, gives -EBADMSG, leaves *ret alone and is consumed like
 * any snapshot a get returns; a NULL ret gives -EINVAL and consumes
 * nothing; and every other result is the untyped call's (-EAGAIN,
 * -ETIMEDOUT, -EPIPE, -EINVAL, 1 and 0 of set_if_changed).  That wrong
 * pointer types do not compile is checked by tests/check-typed.sh.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "helpers.h"

/* No padding, so that equal members mean equal bytes for set_if_changed. */
struct point {
        int32_t x;
        int32_t y;
        char label[8];
};

EV_VALUE_DEFINE_TYPED(point, struct point);
EV_VALUE_DEFINE_TYPED(counter, uint64_t);

/* What no typed call writes on its own: shows whether *ret was written. */
static const struct point point_sentinel = { .x = -7, .y = -7, .label = "SENTINL" };

static void assert_point_eq(const struct point *got, const struct point *expected) {
        cr_assert_eq(got->x, expected->x, "x %d, expected %d", got->x, expected->x);
        cr_assert_eq(got->y, expected->y, "y %d, expected %d", got->y, expected->y);
        cr_assert_eq(memcmp(got->label, expected->label, sizeof(got->label)), 0,
                     "label \"%.8s\", expected \"%.8s\"", got->label, expected->label);
}

/* Asserts that point_get fails with error and leaves *ret alone. */
static void point_get_fails_with(ev_value_watcher *w, int error) {
        struct point p = point_sentinel;
        int r = point_get(w, &p);

        cr_assert_eq(r, error, "point_get: got %d (%s), expected %d (%s)", r, strerror(-r), error,
                     strerror(-error));
        assert_point_eq(&p, &point_sentinel);
}

/* Asserts that point_wait fails with error and leaves *ret alone. */
static void point_wait_fails_with(ev_value_watcher *w, int timeout_ms, int error) {
        struct point p = point_sentinel;
        int r = point_wait(w, timeout_ms, -1, &p);

        cr_assert_eq(r, error, "point_wait(%d): got %d (%s), expected %d (%s)", timeout_ms, r,
                     strerror(-r), error, strerror(-error));
        assert_point_eq(&p, &point_sentinel);
}

/* Asserts that point_peek fails with error and leaves *ret alone. */
static void point_peek_fails_with(ev_value *v, int error) {
        struct point p = point_sentinel;
        int r = point_peek(v, &p);

        cr_assert_eq(r, error, "point_peek: got %d (%s), expected %d (%s)", r, strerror(-r), error,
                     strerror(-error));
        assert_point_eq(&p, &point_sentinel);
}

Test(typed, set_then_peek_get_and_wait_copy_one_object_out) {
        const struct point in = { .x = 3, .y = -4, .label = "origin" };
        struct point out = { 0 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *waited = watch_or_fail(v);
        ev_value_snapshot *s;

        cr_assert_eq(point_set(v, &in), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_size(s), sizeof(struct point));
        ev_snapshot_unref(s);

        cr_assert_eq(point_peek(v, &out), 0);
        assert_point_eq(&out, &in);
        memset(&out, 0, sizeof(out));
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        cr_assert_eq(point_get(w, &out), 0);
        assert_point_eq(&out, &in);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        memset(&out, 0, sizeof(out));
        cr_assert_eq(point_wait(waited, 1000, -1, &out), 0);
        assert_point_eq(&out, &in);
}

Test(typed, set_copies_so_later_changes_to_the_object_are_not_seen) {
        struct point in = { .x = 1, .y = 2, .label = "before" };
        const struct point expected = in;
        struct point out;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        cr_assert_eq(point_set(v, &in), 0);
        in.x = 100;
        memcpy(in.label, "after", 6);
        cr_assert_eq(point_peek(v, &out), 0);
        assert_point_eq(&out, &expected);
}

Test(typed, get_returns_the_newest_object) {
        struct point in = { .label = "n" };
        struct point out;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int i;

        for (i = 1; i <= 5; i++) {
                in.x = i;
                in.y = i * i;
                cr_assert_eq(point_set(v, &in), 0);
        }
        cr_assert_eq(point_get(w, &out), 0);
        assert_point_eq(&out, &in);
        point_get_fails_with(w, -EAGAIN);
}

Test(typed, set_if_changed_sets_only_new_bytes) {
        struct point in = { .x = 1, .y = 2, .label = "same" };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct point out;

        /* Never set: it sets. */
        cr_assert_eq(point_set_if_changed(v, &in), 1);
        cr_assert_eq(point_get(w, &out), 0);
        /* An equal object in another variable: skipped, nobody notified. */
        out = in;
        cr_assert_eq(point_set_if_changed(v, &out), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        point_get_fails_with(w, -EAGAIN);
        /* One member changed: set and notified. */
        in.y = 3;
        cr_assert_eq(point_set_if_changed(v, &in), 1);
        cr_assert_eq(ev_value_get_version(v), 2);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        cr_assert_eq(point_get(w, &out), 0);
        assert_point_eq(&out, &in);
        /* The plain set still notifies with equal bytes. */
        cr_assert_eq(point_set(v, &in), 0);
        cr_assert_eq(ev_value_get_version(v), 3);
}

Test(typed, set_if_changed_after_an_untyped_set_of_another_size_sets) {
        const struct point in = { .x = 1 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        /* The same leading bytes, but not the same size. */
        cr_assert_eq(ev_value_set(v, &in, sizeof(in) - 1), 0);
        cr_assert_eq(point_set_if_changed(v, &in), 1);
        cr_assert_eq(ev_value_get_version(v), 2);
}

Test(typed, wrong_size_snapshot_gives_ebadmsg_leaves_ret_and_is_consumed) {
        static const size_t sizes[] = { 0, 1, sizeof(struct point) - 1, sizeof(struct point) + 1, 64 };
        char bytes[64] = "not a point";
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *got = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *waited = watch_or_fail(v);
        size_t i;

        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                cr_assert_eq(ev_value_set(v, bytes, sizes[i]), 0, "size %zu", sizes[i]);
                point_peek_fails_with(v, -EBADMSG);
                point_get_fails_with(got, -EBADMSG);
                point_wait_fails_with(waited, 0, -EBADMSG);
                /* The get and the wait took the snapshot like any. */
                cr_assert_not(fd_readable(ev_watcher_get_fd(got)), "size %zu left the fd readable",
                              sizes[i]);
                point_get_fails_with(got, -EAGAIN);
                point_wait_fails_with(waited, 0, -ETIMEDOUT);
        }
}

Test(typed, wrong_size_snapshot_of_a_closed_value_gives_ebadmsg_then_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        uint64_t big = 42;

        cr_assert_eq(counter_set(v, &big), 0);
        close_or_fail(v);
        point_get_fails_with(w, -EBADMSG);
        point_get_fails_with(w, -EPIPE);
        /* The value holds a uint64_t: the other instantiation reads it. */
        big = 0;
        cr_assert_eq(counter_peek(v, &big), 0);
        cr_assert_eq(big, 42);
}

Test(typed, null_ret_gives_einval_and_consumes_nothing) {
        const struct point in = { .x = 5, .label = "kept" };
        struct point out;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        cr_assert_eq(point_set(v, &in), 0);
        cr_assert_eq(point_peek(v, NULL), -EINVAL);
        cr_assert_eq(point_get(w, NULL), -EINVAL);
        cr_assert_eq(point_wait(w, 0, -1, NULL), -EINVAL);
        cr_assert_eq(point_wait(w, -1, -1, NULL), -EINVAL);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "a call with a NULL ret consumed the snapshot");
        cr_assert_eq(point_get(w, &out), 0);
        assert_point_eq(&out, &in);
}

Test(typed, other_results_are_those_of_the_untyped_calls, .timeout = 10) {
        const struct point in = { .x = 9, .label = "final" };
        struct point out;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *shared = NULL;

        /* Never set. */
        point_peek_fails_with(v, -EAGAIN);
        point_get_fails_with(w, -EAGAIN);
        point_wait_fails_with(w, 0, -ETIMEDOUT);
        point_wait_fails_with(w, 20, -ETIMEDOUT);
        /* Bad arguments. */
        cr_assert_eq(point_set(NULL, &in), -EINVAL);
        cr_assert_eq(point_set(v, NULL), -EINVAL);
        cr_assert_eq(point_set_if_changed(NULL, &in), -EINVAL);
        cr_assert_eq(point_set_if_changed(v, NULL), -EINVAL);
        point_peek_fails_with(NULL, -EINVAL);
        point_get_fails_with(NULL, -EINVAL);
        point_wait_fails_with(NULL, 0, -EINVAL);
        cr_assert_eq(ev_value_get_version(v), 0);
        /* A shared-fd watcher cannot wait. */
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &shared), 0);
        point_wait_fails_with(shared, 0, -EOPNOTSUPP);
        /* Closed. */
        cr_assert_eq(point_set(v, &in), 0);
        close_or_fail(v);
        cr_assert_eq(point_set(v, &in), -EPIPE);
        cr_assert_eq(point_set_if_changed(v, &in), -EPIPE);
        cr_assert_eq(point_get(w, &out), 0);
        assert_point_eq(&out, &in);
        point_get_fails_with(w, -EPIPE);
        point_wait_fails_with(w, -1, -EPIPE);
        /* The final state stays readable. */
        memset(&out, 0, sizeof(out));
        cr_assert_eq(point_peek(v, &out), 0);
        assert_point_eq(&out, &in);
}

Test(typed, a_scalar_instantiation_round_trips) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        uint64_t in = UINT64_C(0x0123456789abcdef), out = 0;

        cr_assert_eq(counter_set(v, &in), 0);
        cr_assert_eq(counter_get(w, &out), 0);
        cr_assert_eq(out, in);
        cr_assert_eq(counter_set_if_changed(v, &in), 0);
        in++;
        cr_assert_eq(counter_set_if_changed(v, &in), 1);
        out = 0;
        cr_assert_eq(counter_wait(w, 0, -1, &out), 0);
        cr_assert_eq(out, in);
        /* A struct point is not a uint64_t. */
        {
                const struct point p = { .x = 1 };

                cr_assert_eq(point_set(v, &p), 0);
                out = 7;
                cr_assert_eq(counter_get(w, &out), -EBADMSG);
                cr_assert_eq(out, 7);
        }
}
