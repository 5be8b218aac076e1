/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the helpers for __attribute__((cleanup)):
 * ev_value_unrefp, ev_watcher_closep and ev_snapshot_unrefp.  A variable
 * declared with one of them in an inner scope is released when the scope
 * ends, on every way out of it, and only once; a NULL variable is left
 * alone; a direct call leaves the variable NULL.  Releases are proved with
 * what the object held: a value's or snapshot's owned bytes through a
 * counting destroy callback, a watcher through the value's watcher count
 * and the process's open fds.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <string.h>

#include "helpers.h"

/* Asserts that set_owned of a copy of str into v succeeds, counted by log. */
static void set_owned_string_or_fail(ev_value *v, const char *str, struct destroy_log *log) {
        char *data = strdup_or_fail(str);

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, log), 0);
}

Test(cleanup, value_unrefp_releases_the_value_at_the_end_of_the_scope) {
        struct destroy_log log = { 0 };

        {
                _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

                set_owned_string_or_fail(v, "held by the value", &log);
                cr_assert_eq(atomic_load(&log.calls), 0);
        }
        cr_assert_eq(atomic_load(&log.calls), 1, "the value was not released by its cleanup");
}

Test(cleanup, value_unrefp_drops_only_its_own_reference) {
        struct destroy_log log = { 0 };
        ev_value *kept = value_new_or_fail();

        set_owned_string_or_fail(kept, "still held", &log);
        {
                _cleanup_(ev_value_unrefp) ev_value *v = ev_value_ref(kept);

                cr_assert_eq(v, kept);
        }
        cr_assert_eq(atomic_load(&log.calls), 0, "the cleanup dropped more than one reference");
        peek_string_or_fail(kept, 1, "still held");
        ev_value_unref(kept);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(cleanup, watcher_closep_closes_the_watcher_and_its_fd_at_the_end_of_the_scope) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        int n_fds = count_open_fds();

        {
                _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

                cr_assert_eq(ev_value_get_watcher_count(v), 1);
                cr_assert_eq(count_open_fds(), n_fds + 1);
                cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        }
        cr_assert_eq(ev_value_get_watcher_count(v), 0, "the watcher was not closed by its cleanup");
        cr_assert_eq(count_open_fds(), n_fds, "the watcher's eventfd is still open");
}

Test(cleanup, watcher_closep_releases_the_value_the_watcher_held) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();

        set_owned_string_or_fail(v, "held by the watcher", &log);
        {
                _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

                ev_value_unref(v); /* the watcher's reference is the last */
                cr_assert_eq(atomic_load(&log.calls), 0);
                get_string_or_fail(w, 1, "held by the watcher");
        }
        cr_assert_eq(atomic_load(&log.calls), 1, "closing the watcher did not release its value");
}

Test(cleanup, snapshot_unrefp_releases_the_snapshot_at_the_end_of_the_scope) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();

        set_owned_string_or_fail(v, "peeked", &log);
        {
                _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = peek_or_fail(v);

                set_string_or_fail(v, "replaced");
                cr_assert_eq(atomic_load(&log.calls), 0, "destroyed while referenced");
                assert_snapshot_is_string(s, 1, "peeked");
        }
        cr_assert_eq(atomic_load(&log.calls), 1, "the snapshot was not released by its cleanup");
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(cleanup, all_three_in_one_scope_release_everything) {
        struct destroy_log log = { 0 };
        int n_fds = count_open_fds();

        {
                /* Released in reverse order: snapshot, watcher, value. */
                _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
                _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
                _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;

                set_owned_string_or_fail(v, "everything", &log);
                s = get_or_fail(w);
                close_or_fail(v);
                assert_snapshot_is_string(s, 1, "everything");
        }
        cr_assert_eq(atomic_load(&log.calls), 1, "something was not released");
        cr_assert_eq(count_open_fds(), n_fds, "the watcher's eventfd is still open");
}

/* Leaves by one of three ways, each with the variables in scope. */
static int leave_early(ev_value *v, int way) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = get_or_fail(w);

        if (way == 0)
                return 0;
        for (;;) {
                _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *peeked = peek_or_fail(v);

                if (way == 1)
                        break;
                return (int)ev_snapshot_version(peeked);
        }
        return (int)ev_snapshot_size(s);
}

Test(cleanup, helpers_release_on_every_way_out_of_a_scope) {
        struct destroy_log log = { 0 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        int n_fds = count_open_fds();
        int way;

        set_owned_string_or_fail(v, "left", &log);
        for (way = 0; way < 3; way++) {
                leave_early(v, way);
                cr_assert_eq(ev_value_get_watcher_count(v), 0, "way %d left a watcher", way);
                cr_assert_eq(count_open_fds(), n_fds, "way %d left an fd open", way);
        }
        set_string_or_fail(v, "replaced");
        cr_assert_eq(atomic_load(&log.calls), 1, "a way out left a snapshot referenced");
}

Test(cleanup, helpers_leave_null_variables_alone) {
        {
                _cleanup_(ev_value_unrefp) ev_value *v = NULL;
                _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
                _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;

                (void)v;
                (void)w;
                (void)s;
        }
        {
                ev_value *v = NULL;
                ev_value_watcher *w = NULL;
                ev_value_snapshot *s = NULL;

                ev_value_unrefp(&v);
                ev_watcher_closep(&w);
                ev_snapshot_unrefp(&s);
                cr_assert_null(v);
                cr_assert_null(w);
                cr_assert_null(s);
        }
}

Test(cleanup, direct_calls_release_once_and_set_the_variable_to_null) {
        struct destroy_log value_log = { 0 }, snapshot_log = { 0 };
        ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *other = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;
        int n_fds = count_open_fds();

        set_owned_string_or_fail(other, "snapshot", &snapshot_log);
        s = peek_or_fail(other);
        set_string_or_fail(other, "replaced");
        ev_snapshot_unrefp(&s);
        cr_assert_null(s);
        cr_assert_eq(atomic_load(&snapshot_log.calls), 1);
        /* Again, now NULL: nothing more happens. */
        ev_snapshot_unrefp(&s);
        cr_assert_eq(atomic_load(&snapshot_log.calls), 1);

        ev_watcher_closep(&w);
        cr_assert_null(w);
        cr_assert_eq(ev_value_get_watcher_count(v), 0);
        cr_assert_eq(count_open_fds(), n_fds - 1);
        ev_watcher_closep(&w);

        set_owned_string_or_fail(v, "value", &value_log);
        ev_value_unrefp(&v);
        cr_assert_null(v);
        cr_assert_eq(atomic_load(&value_log.calls), 1);
        ev_value_unrefp(&v);
        cr_assert_eq(atomic_load(&value_log.calls), 1);
}
