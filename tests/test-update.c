/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the two conditional ways to set a value.  ev_value_set_flags
 * returns 1 when it set; with EV_VALUE_SET_IF_CHANGED and the bytes of the
 * current snapshot it returns 0 and does nothing at all: no version, no
 * eventfd write (checked through the eventfd's counter in
 * /proc/self/fdinfo, for own and shared fds), while the same bytes without
 * the flag still notify.  ev_value_update runs its function under the
 * value's lock with the current snapshot (NULL before the first set),
 * copies the bytes the function returns, keeps the value when it returns 0
 * and passes its errors through; it is serialised with every set and every
 * other update (no increment is lost among threads), and the destroy
 * callback of the snapshot it replaces runs once.  The argument and closed
 * value errors of both are checked here; their allocation failures are
 * walked in test-fault.c.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ------------------------------------------------------------- helpers */

/* Asserts that ev_value_set_flags(v, s with its NUL, flags) returns expected. */
static void set_flags_string_gives(ev_value *v, const char *s, unsigned flags, int expected) {
        int r = ev_value_set_flags(v, s, strlen(s) + 1, flags);

        cr_assert_eq(r, expected, "ev_value_set_flags(\"%s\", %#x): got %d (%s), expected %d",
                     s, flags, r, r < 0 ? strerror(-r) : "no error", expected);
}

/* Asserts that w has consumed everything and nothing was written to its
 * eventfd since: not readable, counter 0, get -EAGAIN. */
static void assert_not_notified(ev_value_watcher *w) {
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "the watcher's fd became readable");
        cr_assert_eq(eventfd_counter(ev_watcher_get_fd(w)), 0, "the watcher's eventfd was written");
        get_fails_with(w, -EAGAIN);
}

/* The function of ev_value_update used by most tests: records what it was
 * called with and returns result with the bytes data/size. */
struct update_call {
        int calls;
        const ev_value_snapshot *current;
        uint64_t current_version;
        char current_bytes[64];
        void *userdata;
        int result;
        const void *data;
        size_t size;
};

static int record_update(const ev_value_snapshot *current, void *userdata,
                         const void **ret_data, size_t *ret_size) {
        struct update_call *c = userdata;

        c->calls++;
        c->current = current;
        c->current_version = ev_snapshot_version(current);
        c->current_bytes[0] = '\0';
        if (current && ev_snapshot_size(current) <= sizeof(c->current_bytes))
                memcpy(c->current_bytes, ev_snapshot_data(current), ev_snapshot_size(current));
        c->userdata = userdata;
        *ret_data = c->data;
        *ret_size = c->size;
        return c->result;
}

/* A function ev_value_update must never call. */
static int update_must_not_run(const ev_value_snapshot *current, void *userdata,
                               const void **ret_data, size_t *ret_size) {
        atomic_int *calls = userdata;

        (void)current;
        (void)ret_data;
        (void)ret_size;
        atomic_fetch_add(calls, 1);
        return -EFAULT;
}

/* Asserts that ev_value_update(v, record_update, c) returns expected. */
static void update_gives(ev_value *v, struct update_call *c, int expected) {
        int r = ev_value_update(v, record_update, c);

        cr_assert_eq(r, expected, "ev_value_update: got %d (%s), expected %d",
                     r, r < 0 ? strerror(-r) : "no error", expected);
}

/* ------------------------------------------------ ev_value_set_flags */

Test(set_flags, without_flags_sets_notifies_and_returns_one) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_flags_string_gives(v, "first", 0, 1);
        cr_assert_eq(ev_value_get_version(v), 1);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 1, "first");
        set_flags_string_gives(v, "second", 0, 1);
        get_string_or_fail(w, 2, "second");
        peek_string_or_fail(v, 2, "second");
}

Test(set_flags, if_changed_on_a_never_set_value_sets) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *empty = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;

        set_flags_string_gives(v, "first", EV_VALUE_SET_IF_CHANGED, 1);
        cr_assert_eq(ev_value_get_version(v), 1);
        get_string_or_fail(w, 1, "first");

        /* Even with no bytes: nothing is not an empty snapshot. */
        cr_assert_eq(ev_value_set_flags(empty, NULL, 0, EV_VALUE_SET_IF_CHANGED), 1);
        cr_assert_eq(ev_value_get_version(empty), 1);
        s = peek_or_fail(empty);
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_eq(ev_snapshot_version(s), 1);
}

Test(set_flags, if_changed_with_identical_bytes_does_nothing_and_writes_no_eventfd) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *seen = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *unseen = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *before = NULL;
        ev_value_snapshot *after;

        set_string_or_fail(v, "same");
        seen = watch_consumed_or_fail(v);
        unseen = watch_or_fail(v);
        before = peek_or_fail(v);

        set_flags_string_gives(v, "same", EV_VALUE_SET_IF_CHANGED, 0);
        cr_assert_eq(ev_value_get_version(v), 1, "a skipped set changed the version");
        assert_not_notified(seen);
        /* The snapshot in place is the very same one, not an equal copy. */
        after = peek_or_fail(v);
        cr_assert_eq(after, before, "a skipped set replaced the snapshot");
        ev_snapshot_unref(after);
        /* A watcher with version 1 pending still gets it, once. */
        cr_assert(fd_readable(ev_watcher_get_fd(unseen)));
        get_string_or_fail(unseen, 1, "same");
        get_fails_with(unseen, -EAGAIN);

        /* Skipped as often as asked, still nothing. */
        set_flags_string_gives(v, "same", EV_VALUE_SET_IF_CHANGED, 0);
        set_flags_string_gives(v, "same", EV_VALUE_SET_IF_CHANGED, 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        assert_not_notified(seen);
        assert_not_notified(unseen);
}

Test(set_flags, if_changed_with_identical_bytes_writes_no_shared_eventfd) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        uint64_t counter;

        set_string_or_fail(v, "same");
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &w), 0);
        ev_snapshot_unref(get_or_fail(w));
        /* The library never reads the shared fd: compare its counter. */
        counter = eventfd_counter(ev_watcher_get_fd(w));

        set_flags_string_gives(v, "same", EV_VALUE_SET_IF_CHANGED, 0);
        cr_assert_eq(eventfd_counter(ev_watcher_get_fd(w)), counter,
                     "a skipped set wrote the shared eventfd");
        get_fails_with(w, -EAGAIN);

        /* A real set writes it once more. */
        set_flags_string_gives(v, "changed", EV_VALUE_SET_IF_CHANGED, 1);
        cr_assert_eq(eventfd_counter(ev_watcher_get_fd(w)), counter + 1);
        get_string_or_fail(w, 2, "changed");
}

Test(set_flags, if_changed_with_one_byte_different_sets_and_notifies) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char bytes[] = "abcdefgh";

        cr_assert_eq(ev_value_set(v, bytes, sizeof(bytes)), 0);
        w = watch_consumed_or_fail(v);

        /* The same size, only the last byte before the NUL differs. */
        bytes[7] = 'H';
        cr_assert_eq(ev_value_set_flags(v, bytes, sizeof(bytes), EV_VALUE_SET_IF_CHANGED), 1);
        cr_assert_eq(ev_value_get_version(v), 2);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "abcdefgH");

        /* Only the first byte differs. */
        bytes[0] = 'A';
        cr_assert_eq(ev_value_set_flags(v, bytes, sizeof(bytes), EV_VALUE_SET_IF_CHANGED), 1);
        get_string_or_fail(w, 3, "AbcdefgH");
}

Test(set_flags, if_changed_with_a_different_size_sets_and_notifies) {
        static const char bytes[] = "prefix";
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        ev_value_snapshot *s;

        cr_assert_eq(ev_value_set(v, bytes, 3), 0);
        w = watch_consumed_or_fail(v);

        /* Longer, with the current bytes as its prefix. */
        cr_assert_eq(ev_value_set_flags(v, bytes, 4, EV_VALUE_SET_IF_CHANGED), 1);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 2);
        cr_assert_eq(ev_snapshot_size(s), 4);
        ev_snapshot_unref(s);

        /* Shorter, a prefix of the current bytes. */
        cr_assert_eq(ev_value_set_flags(v, bytes, 3, EV_VALUE_SET_IF_CHANGED), 1);
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 3);
        cr_assert_eq(ev_snapshot_size(s), 3);
        ev_snapshot_unref(s);

        /* Empty after bytes, and bytes after empty. */
        cr_assert_eq(ev_value_set_flags(v, NULL, 0, EV_VALUE_SET_IF_CHANGED), 1);
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 4);
        cr_assert_eq(ev_snapshot_size(s), 0);
        ev_snapshot_unref(s);
        cr_assert_eq(ev_value_set_flags(v, bytes, 1, EV_VALUE_SET_IF_CHANGED), 1);
        cr_assert_eq(ev_value_get_version(v), 5);
}

Test(set_flags, if_changed_empty_after_empty_is_skipped_whatever_data_points_to) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char byte = 'x';

        cr_assert_eq(ev_value_set(v, NULL, 0), 0);
        w = watch_consumed_or_fail(v);
        cr_assert_eq(ev_value_set_flags(v, NULL, 0, EV_VALUE_SET_IF_CHANGED), 0);
        cr_assert_eq(ev_value_set_flags(v, &byte, 0, EV_VALUE_SET_IF_CHANGED), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        assert_not_notified(w);
}

Test(set_flags, if_changed_compares_with_an_owned_snapshot_and_keeps_it) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w;
        ev_value_snapshot *s;
        char *data = strdup_or_fail("owned bytes");
        char copy[] = "owned bytes";

        cr_assert_eq(ev_value_set_owned(v, data, sizeof(copy), free_destroy, &log), 0);
        w = watch_consumed_or_fail(v);
        /* Equal bytes in another buffer: skipped, the owned buffer stays. */
        cr_assert_eq(ev_value_set_flags(v, copy, sizeof(copy), EV_VALUE_SET_IF_CHANGED), 0);
        cr_assert_eq(atomic_load(&log.calls), 0, "a skipped set destroyed the current snapshot");
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_data(s), (const void *)data);
        ev_snapshot_unref(s);
        assert_not_notified(w);

        ev_watcher_close(w);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(set_flags, identical_bytes_without_the_flag_still_notify) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "same");
        w = watch_consumed_or_fail(v);
        set_flags_string_gives(v, "same", 0, 1);
        cr_assert_eq(ev_value_get_version(v), 2);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "same");
}

Test(set_flags, unknown_flags_null_value_and_null_data_give_einval_and_change_nothing) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        unsigned i;

        set_string_or_fail(v, "kept");
        w = watch_consumed_or_fail(v);
        /* Every bit that is not a defined flag, alone and beside the flag. */
        for (i = 0; i < 32; i++) {
                if ((1u << i) & EV_VALUE_SET_IF_CHANGED)
                        continue;
                cr_assert_eq(ev_value_set_flags(v, "new", 4, 1u << i), -EINVAL, "flag 1 << %u", i);
                cr_assert_eq(ev_value_set_flags(v, "new", 4, (1u << i) | EV_VALUE_SET_IF_CHANGED),
                             -EINVAL, "flag 1 << %u | EV_VALUE_SET_IF_CHANGED", i);
        }
        cr_assert_eq(ev_value_set_flags(NULL, "new", 4, 0), -EINVAL);
        cr_assert_eq(ev_value_set_flags(NULL, "new", 4, EV_VALUE_SET_IF_CHANGED), -EINVAL);
        cr_assert_eq(ev_value_set_flags(v, NULL, 1, 0), -EINVAL);
        cr_assert_eq(ev_value_set_flags(v, NULL, 1, EV_VALUE_SET_IF_CHANGED), -EINVAL);
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "kept");
        assert_not_notified(w);
}

Test(set_flags, closed_value_gives_epipe_with_or_without_the_flag) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *never = value_new_or_fail();

        set_string_or_fail(v, "final");
        close_or_fail(v);
        set_flags_string_gives(v, "other", 0, -EPIPE);
        set_flags_string_gives(v, "other", EV_VALUE_SET_IF_CHANGED, -EPIPE);
        /* Identical bytes too: a closed value takes no set of any kind. */
        set_flags_string_gives(v, "final", EV_VALUE_SET_IF_CHANGED, -EPIPE);
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "final");

        close_or_fail(never);
        set_flags_string_gives(never, "first", EV_VALUE_SET_IF_CHANGED, -EPIPE);
        cr_assert_eq(ev_value_get_version(never), 0);
        peek_fails_with(never, -EAGAIN);
}

/* ---------------------------------------------------- ev_value_update */

Test(update, sees_null_before_the_first_set_then_the_current_snapshot) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 1, .data = "one", .size = 4 };

        update_gives(v, &c, 1);
        cr_assert_eq(c.calls, 1);
        cr_assert_null(c.current, "fn got a snapshot of a never-set value");
        cr_assert_eq(c.userdata, &c, "fn did not get the userdata");
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "one");

        c.data = "two";
        update_gives(v, &c, 1);
        cr_assert_eq(c.calls, 2);
        cr_assert_not_null(c.current);
        cr_assert_eq(c.current_version, 1);
        cr_assert_str_eq(c.current_bytes, "one");

        /* After a plain set, fn sees that set's snapshot. */
        set_string_or_fail(v, "three");
        c.data = "four";
        c.size = 5;
        update_gives(v, &c, 1);
        cr_assert_eq(c.current_version, 3);
        cr_assert_str_eq(c.current_bytes, "three");
        peek_string_or_fail(v, 4, "four");
}

Test(update, the_current_snapshot_fn_gets_is_the_one_a_peek_returns) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 0 };
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;

        set_string_or_fail(v, "current");
        s = peek_or_fail(v);
        update_gives(v, &c, 0);
        cr_assert_eq(c.current, s);
}

Test(update, a_set_by_update_bumps_the_version_and_notifies_every_watcher) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 1, .data = "updated", .size = 8 };
        _cleanup_(ev_watcher_closep) ev_value_watcher *seen = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *unseen = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *shared = NULL;

        set_string_or_fail(v, "first");
        seen = watch_consumed_or_fail(v);
        unseen = watch_or_fail(v);
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &shared), 0);

        update_gives(v, &c, 1);
        cr_assert_eq(ev_value_get_version(v), 2);
        cr_assert(fd_readable(ev_watcher_get_fd(seen)));
        get_string_or_fail(seen, 2, "updated");
        get_string_or_fail(unseen, 2, "updated");
        get_string_or_fail(shared, 2, "updated");
}

Test(update, any_positive_result_of_fn_sets_and_gives_one) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 42, .data = "big", .size = 4 };

        update_gives(v, &c, 1);
        c.result = INT32_MAX;
        update_gives(v, &c, 1);
        cr_assert_eq(ev_value_get_version(v), 2);
}

/* Formats userdata's counter into userdata's one buffer, reused by every
 * call: the library must have copied the previous bytes away. */
struct reused_buffer {
        unsigned n;
        char buf[16];
};

static int format_into_reused_buffer(const ev_value_snapshot *current, void *userdata,
                                     const void **ret_data, size_t *ret_size) {
        struct reused_buffer *b = userdata;

        (void)current;
        b->n++;
        snprintf(b->buf, sizeof(b->buf), "call %u", b->n);
        *ret_data = b->buf;
        *ret_size = strlen(b->buf) + 1;
        return 1;
}

Test(update, copies_the_bytes_fn_returns_so_its_buffer_may_be_reused) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct reused_buffer b = { 0 }; /* on this test's stack */
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *first = NULL;

        cr_assert_eq(ev_value_update(v, format_into_reused_buffer, &b), 1);
        first = get_or_fail(w);
        cr_assert_neq(ev_snapshot_data(first), (const void *)b.buf, "the snapshot points at fn's buffer");
        assert_snapshot_is_string(first, 1, "call 1");

        cr_assert_eq(ev_value_update(v, format_into_reused_buffer, &b), 1);
        cr_assert_eq(ev_value_update(v, format_into_reused_buffer, &b), 1);
        memset(b.buf, 'X', sizeof(b.buf));
        assert_snapshot_is_string(first, 1, "call 1");
        get_string_or_fail(w, 3, "call 3");
        peek_string_or_fail(v, 3, "call 3");
}

Test(update, fn_returning_zero_keeps_the_value_and_notifies_nobody) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *never = value_new_or_fail();
        /* What fn puts in the outputs is ignored when it keeps the value. */
        struct update_call c = { .result = 0, .data = "ignored", .size = 8 };
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *before = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *after = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "kept");
        w = watch_consumed_or_fail(v);
        before = peek_or_fail(v);
        update_gives(v, &c, 0);
        cr_assert_eq(c.calls, 1);
        cr_assert_eq(ev_value_get_version(v), 1);
        after = peek_or_fail(v);
        cr_assert_eq(after, before, "an update that kept the value replaced its snapshot");
        assert_snapshot_is_string(after, 1, "kept");
        assert_not_notified(w);

        /* A never-set value stays never set. */
        update_gives(never, &c, 0);
        cr_assert_eq(ev_value_get_version(never), 0);
        peek_fails_with(never, -EAGAIN);
}

Test(update, fn_error_is_returned_unchanged_and_keeps_the_value) {
        static const int errors[] = { -ECANCELED, -ENOENT, -EINVAL, -ENOMEM, -1, INT32_MIN };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .data = "ignored", .size = 8 };
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        size_t i;

        set_string_or_fail(v, "kept");
        w = watch_consumed_or_fail(v);
        for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++) {
                c.result = errors[i];
                update_gives(v, &c, errors[i]);
                cr_assert_eq(ev_value_get_version(v), 1);
                peek_string_or_fail(v, 1, "kept");
                assert_not_notified(w);
        }
        cr_assert_eq(c.calls, (int)i);
}

Test(update, null_value_or_fn_gives_einval_without_calling_fn) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        atomic_int calls = 0;

        set_string_or_fail(v, "kept");
        cr_assert_eq(ev_value_update(NULL, update_must_not_run, &calls), -EINVAL);
        cr_assert_eq(ev_value_update(v, NULL, &calls), -EINVAL);
        cr_assert_eq(ev_value_update(NULL, NULL, NULL), -EINVAL);
        cr_assert_eq(atomic_load(&calls), 0);
        peek_string_or_fail(v, 1, "kept");
}

Test(update, fn_returning_null_data_with_a_size_gives_einval_and_keeps_the_value) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 1, .data = NULL, .size = 1 };
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "kept");
        w = watch_consumed_or_fail(v);
        update_gives(v, &c, -EINVAL);
        cr_assert_eq(c.calls, 1);
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "kept");
        assert_not_notified(w);
}

Test(update, fn_returning_null_data_of_size_zero_sets_an_empty_value) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 1, .data = NULL, .size = 0 };
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;

        set_string_or_fail(v, "not empty");
        update_gives(v, &c, 1);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_version(s), 2);
        cr_assert_eq(ev_snapshot_size(s), 0);
}

Test(update, closed_value_gives_epipe_without_calling_fn) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *never = value_new_or_fail();
        atomic_int calls = 0;

        set_string_or_fail(v, "final");
        close_or_fail(v);
        cr_assert_eq(ev_value_update(v, update_must_not_run, &calls), -EPIPE);
        close_or_fail(never);
        cr_assert_eq(ev_value_update(never, update_must_not_run, &calls), -EPIPE);
        cr_assert_eq(atomic_load(&calls), 0, "fn ran on a closed value");
        peek_string_or_fail(v, 1, "final");
        cr_assert_eq(ev_value_get_version(never), 0);
}

Test(update, replaced_owned_snapshot_is_destroyed_once_when_update_returns) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 1, .data = "copied", .size = 7 };
        char *data = strdup_or_fail("owned");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        update_gives(v, &c, 1);
        cr_assert_str_eq(c.current_bytes, "owned", "fn did not see the owned bytes");
        cr_assert_eq(atomic_load(&log.calls), 1, "the replaced snapshot was not destroyed once");
        cr_assert_eq(log.data, data);
        peek_string_or_fail(v, 2, "copied");

        /* Nothing later runs it again. */
        update_gives(v, &c, 1);
        close_or_fail(v);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(update, replaced_owned_snapshot_handed_out_is_destroyed_at_its_last_unref) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        struct update_call c = { .result = 1, .data = "copied", .size = 7 };
        ev_value_snapshot *s;
        char *data = strdup_or_fail("owned");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        s = peek_or_fail(v);
        update_gives(v, &c, 1);
        cr_assert_eq(atomic_load(&log.calls), 0, "destroyed while a reference remains");
        assert_snapshot_is_string(s, 1, "owned");
        ev_snapshot_unref(s);
        cr_assert_eq(atomic_load(&log.calls), 1);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

/* A destroy callback that peeks the value it was replaced in: it runs
 * after the update released the value's lock, or it would deadlock. */
struct peeking_destroy {
        ev_value *v;
        atomic_int calls;
        int peek_r;
        uint64_t peek_version;
};

static void destroy_and_peek(void *data, void *userdata) {
        struct peeking_destroy *d = userdata;
        ev_value_snapshot *s = NULL;

        free(data);
        d->peek_r = ev_value_get(d->v, &s);
        d->peek_version = ev_snapshot_version(s);
        ev_snapshot_unref(s);
        atomic_fetch_add(&d->calls, 1);
}

Test(update, destroy_of_the_replaced_snapshot_may_call_into_the_value, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        struct peeking_destroy d = { .v = v };
        struct update_call c = { .result = 1, .data = "next", .size = 5 };
        char *data = strdup_or_fail("owned");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, destroy_and_peek, &d), 0);
        update_gives(v, &c, 1);
        cr_assert_eq(atomic_load(&d.calls), 1);
        cr_assert_eq(d.peek_r, 0, "peek from destroy: %s", strerror(-d.peek_r));
        cr_assert_eq(d.peek_version, 2, "destroy saw version %" PRIu64, d.peek_version);
        ev_value_unref(v);
}

/* ------------------------------------------------------- serialisation */

#define N_UPDATERS 4
#define UPDATES_PER_THREAD 2000

struct counter_updaters {
        ev_value *v;
        pthread_barrier_t start;
        atomic_int failures;
};

/* Read-modify-write of a uint64_t counter: 0 before the first set. */
static int increment_counter(const ev_value_snapshot *current, void *userdata,
                             const void **ret_data, size_t *ret_size) {
        uint64_t *next = userdata; /* the calling thread's buffer */

        *next = 0;
        if (current) {
                if (ev_snapshot_size(current) != sizeof(*next))
                        return -EBADMSG;
                memcpy(next, ev_snapshot_data(current), sizeof(*next));
        }
        (*next)++;
        *ret_data = next;
        *ret_size = sizeof(*next);
        return 1;
}

static void *updater_main(void *arg) {
        struct counter_updaters *u = arg;
        uint64_t buffer;
        int i;

        pthread_barrier_wait(&u->start);
        for (i = 0; i < UPDATES_PER_THREAD; i++)
                if (ev_value_update(u->v, increment_counter, &buffer) != 1)
                        atomic_fetch_add(&u->failures, 1);
        return NULL;
}

Test(update, concurrent_updates_from_many_threads_lose_no_increment, .timeout = 60) {
        struct counter_updaters u = { .v = value_new_or_fail() };
        pthread_t threads[N_UPDATERS];
        ev_value_snapshot *s;
        uint64_t counter;
        int i;

        cr_assert_eq(pthread_barrier_init(&u.start, NULL, N_UPDATERS), 0);
        for (i = 0; i < N_UPDATERS; i++)
                cr_assert_eq(pthread_create(&threads[i], NULL, updater_main, &u), 0);
        for (i = 0; i < N_UPDATERS; i++)
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
        pthread_barrier_destroy(&u.start);

        cr_assert_eq(atomic_load(&u.failures), 0, "%d updates failed", atomic_load(&u.failures));
        s = peek_or_fail(u.v);
        cr_assert_eq(ev_snapshot_size(s), sizeof(counter));
        memcpy(&counter, ev_snapshot_data(s), sizeof(counter));
        cr_assert_eq(counter, N_UPDATERS * UPDATES_PER_THREAD, "counter %" PRIu64 ", expected %d: "
                     "updates were lost", counter, N_UPDATERS * UPDATES_PER_THREAD);
        cr_assert_eq(ev_value_get_version(u.v), N_UPDATERS * UPDATES_PER_THREAD);
        cr_assert_eq(ev_snapshot_version(s), N_UPDATERS * UPDATES_PER_THREAD);
        ev_snapshot_unref(s);
        ev_value_unref(u.v);
}

/* An update whose fn holds on until the test releases it, and a set
 * started meanwhile on another thread: the set must wait for the update. */
struct held_update {
        ev_value *v;
        atomic_bool in_fn;
        atomic_bool release;
        atomic_bool set_done;
        int update_r;
        int set_r;
        uint64_t fn_saw;
};

static int update_held(const ev_value_snapshot *current, void *userdata,
                       const void **ret_data, size_t *ret_size) {
        struct held_update *h = userdata;
        int64_t deadline = now_ms() + THREAD_REACH_MS;

        h->fn_saw = ev_snapshot_version(current);
        atomic_store(&h->in_fn, true);
        while (!atomic_load(&h->release) && now_ms() < deadline)
                pause_briefly();
        *ret_data = "from update";
        *ret_size = sizeof("from update");
        return 1;
}

static void *held_update_main(void *arg) {
        struct held_update *h = arg;

        h->update_r = ev_value_update(h->v, update_held, h);
        return NULL;
}

static void *set_during_update_main(void *arg) {
        struct held_update *h = arg;

        h->set_r = ev_value_set(h->v, "from set", sizeof("from set"));
        atomic_store(&h->set_done, true);
        return NULL;
}

Test(update, a_set_waits_for_the_update_in_progress, .timeout = 10) {
        struct held_update h = { .v = value_new_or_fail() };
        struct timespec pause = { .tv_sec = 0, .tv_nsec = 100 * 1000 * 1000 };
        pthread_t updater, setter;
        int64_t deadline = now_ms() + THREAD_REACH_MS;
        bool set_done_early;

        set_string_or_fail(h.v, "first");
        cr_assert_eq(pthread_create(&updater, NULL, held_update_main, &h), 0);
        while (!atomic_load(&h.in_fn)) {
                cr_assert_lt(now_ms(), deadline, "the update's fn never ran");
                pause_briefly();
        }
        cr_assert_eq(pthread_create(&setter, NULL, set_during_update_main, &h), 0);
        /* Only a set that does not wait could finish in this pause; a slow
         * machine can make the test miss such a bug, never fail a good
         * library. */
        nanosleep(&pause, NULL);
        set_done_early = atomic_load(&h.set_done);
        atomic_store(&h.release, true);
        cr_assert_eq(pthread_join(updater, NULL), 0);
        cr_assert_eq(pthread_join(setter, NULL), 0);

        cr_assert_not(set_done_early, "a set completed while an update's fn was running");
        cr_assert_eq(h.update_r, 1);
        cr_assert_eq(h.set_r, 0);
        cr_assert_eq(h.fn_saw, 1);
        /* The update is version 2, the set that waited for it version 3. */
        peek_string_or_fail(h.v, 3, "from set");
        ev_value_unref(h.v);
}

/* ------------------------------------- bytes of the current snapshot */

/* The destroy callback of an owned snapshot: overwrites the bytes before
 * freeing them, so that a copy made after the release would show 'X's
 * even without a sanitizer.  userdata is a struct scribble. */
struct scribble {
        size_t size;
        int calls;
};

static void scribble_destroy(void *data, void *userdata) {
        struct scribble *sc = userdata;

        memset(data, 'X', sc->size);
        free(data);
        sc->calls++;
}

/* An update whose new bytes are [offset, offset + size) of the current
 * snapshot's, as ev_value_update(3) allows. */
struct current_slice {
        size_t offset;
        size_t size;
};

static int publish_current_slice(const ev_value_snapshot *current, void *userdata,
                                 const void **ret_data, size_t *ret_size) {
        const struct current_slice *slice = userdata;

        cr_assert_not_null(current);
        cr_assert_leq(slice->offset + slice->size, ev_snapshot_size(current));
        *ret_data = (const char *)ev_snapshot_data(current) + slice->offset;
        *ret_size = slice->size;
        return 1;
}

/* v holding "hello world" in owned bytes that scribble_destroy releases. */
static ev_value *value_owning_hello_world(struct scribble *sc) {
        ev_value *v = value_new_or_fail();
        char *bytes = strdup_or_fail("hello world");

        sc->size = sizeof("hello world");
        cr_assert_eq(ev_value_set_owned(v, bytes, sc->size, scribble_destroy, sc), 0);
        return v;
}

/* Updates "hello world" (owned) to the slice [offset, offset + size) of its
 * own bytes, which must read expected as a string. */
static void update_to_current_slice(size_t offset, size_t size, const char *expected) {
        struct scribble sc = { 0 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_owning_hello_world(&sc);
        struct current_slice slice = { offset, size };

        cr_assert_eq(ev_value_update(v, publish_current_slice, &slice), 1);
        cr_assert_eq(sc.calls, 1, "the replaced snapshot was not released");
        peek_string_or_fail(v, 2, expected);
}

Test(update, fn_may_republish_the_current_bytes_or_a_part_of_them) {
        update_to_current_slice(0, sizeof("hello world"), "hello world");
        update_to_current_slice(6, sizeof("world"), "world");
}

Test(update, fn_may_republish_bytes_a_watcher_still_holds) {
        struct scribble sc = { 0 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_owning_hello_world(&sc);
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *held = get_or_fail(w);
        struct current_slice hello = { 0, sizeof("hello") - 1 };
        ev_value_snapshot *s;

        cr_assert_eq(ev_value_update(v, publish_current_slice, &hello), 1);
        cr_assert_eq(sc.calls, 0, "released while a watcher's snapshot holds it");
        assert_snapshot_is_string(held, 1, "hello world");
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 2);
        cr_assert_eq(ev_snapshot_size(s), 5);
        cr_assert_eq(memcmp(ev_snapshot_data(s), "hello", 5), 0);
        ev_snapshot_unref(s);
}
