/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of watchers: the readiness of a watcher's eventfd (readable
 * exactly when ev_watcher_get would not return -EAGAIN), what
 * ev_watcher_get returns and skips, the properties of the eventfd itself,
 * the independence of watchers on one value, -EBUSY for a get or wait that
 * overlaps another on the same watcher, and the lifetime rules (a watcher
 * keeps its value alive; closing one watcher leaves the others alone and
 * its fd number is never written again).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "helpers.h"

Test(watcher, unset_value_fd_not_readable_and_get_eagain, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EAGAIN);
        /* Asking again changes nothing. */
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

Test(watcher, set_then_watch_fd_readable_and_first_get_returns_it, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "before watch");
        w = watch_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "watcher of a set value is not readable");
        get_string_or_fail(w, 1, "before watch");
}

Test(watcher, watch_then_set_fd_becomes_readable_and_get_returns_it, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "after watch");
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "set did not make the watcher readable");
        get_string_or_fail(w, 1, "after watch");
}

Test(watcher, first_get_after_watch_returns_newest_when_set_again, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "at watch time");
        w = watch_or_fail(v);
        set_string_or_fail(v, "newer");
        get_string_or_fail(w, 2, "newer");
        get_fails_with(w, -EAGAIN);
}

Test(watcher, get_clears_readability_until_next_set, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int fd = ev_watcher_get_fd(w);
        int i;

        set_string_or_fail(v, "one");
        get_string_or_fail(w, 1, "one");
        for (i = 0; i < 3; i++) {
                cr_assert_not(fd_readable(fd), "fd readable after a successful get");
                get_fails_with(w, -EAGAIN);
        }
        set_string_or_fail(v, "two");
        cr_assert(fd_readable(fd));
        get_string_or_fail(w, 2, "two");
        cr_assert_not(fd_readable(fd));
        get_fails_with(w, -EAGAIN);
}

Test(watcher, many_sets_then_one_get_returns_only_the_last, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        char buf[32];
        int i;

        for (i = 1; i <= 100; i++) {
                snprintf(buf, sizeof(buf), "set %d", i);
                set_string_or_fail(v, buf);
        }
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 100, "set 100");
        /* The 99 skipped versions are not delivered later. */
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

Test(watcher, identical_bytes_still_notify, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_string_or_fail(v, "same");
        get_string_or_fail(w, 1, "same");
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "same");
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "identical bytes did not notify");
        get_string_or_fail(w, 2, "same");
}

Test(watcher, empty_set_notifies_and_returns_size_zero, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;

        cr_assert_eq(ev_value_set(v, NULL, 0), 0);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "an empty set did not notify");
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 1);
        cr_assert_eq(ev_snapshot_size(s), 0);
        ev_snapshot_unref(s);
        get_fails_with(w, -EAGAIN);
}

Test(watcher, watchers_are_independent, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *a = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *b = watch_or_fail(v);

        set_string_or_fail(v, "one");
        cr_assert(fd_readable(ev_watcher_get_fd(a)));
        cr_assert(fd_readable(ev_watcher_get_fd(b)));

        /* Consuming on a leaves b readable with its data. */
        get_string_or_fail(a, 1, "one");
        cr_assert_not(fd_readable(ev_watcher_get_fd(a)));
        cr_assert(fd_readable(ev_watcher_get_fd(b)), "a get on one watcher cleared another");

        /* A set while b is behind: each sees the newest. */
        set_string_or_fail(v, "two");
        cr_assert(fd_readable(ev_watcher_get_fd(a)));
        get_string_or_fail(b, 2, "two");
        cr_assert_not(fd_readable(ev_watcher_get_fd(b)));
        cr_assert(fd_readable(ev_watcher_get_fd(a)), "a get on one watcher cleared another");
        get_string_or_fail(a, 2, "two");
        get_fails_with(a, -EAGAIN);
        get_fails_with(b, -EAGAIN);
}

Test(watcher, fd_is_a_cloexec_nonblocking_eventfd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int fd = ev_watcher_get_fd(w);
        char path[64], target[256];
        ssize_t n;
        int flags;

        cr_assert_geq(fd, 0);
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        cr_assert_gt(n, 0, "readlink %s: %s", path, strerror(errno));
        target[n] = '\0';
        cr_assert_str_eq(target, "anon_inode:[eventfd]");

        flags = fcntl(fd, F_GETFD);
        cr_assert_geq(flags, 0);
        cr_assert(flags & FD_CLOEXEC, "watcher fd lacks FD_CLOEXEC");
        flags = fcntl(fd, F_GETFL);
        cr_assert_geq(flags, 0);
        cr_assert(flags & O_NONBLOCK, "watcher fd lacks O_NONBLOCK");
}

Test(watcher, each_watcher_has_a_distinct_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *v2 = value_new_or_fail();
        ev_value_watcher *w[6];
        int i, j;

        for (i = 0; i < 6; i++)
                w[i] = watch_or_fail(i % 2 ? v : v2);
        for (i = 0; i < 6; i++) {
                cr_assert_geq(ev_watcher_get_fd(w[i]), 0);
                for (j = 0; j < i; j++)
                        cr_assert_neq(ev_watcher_get_fd(w[i]), ev_watcher_get_fd(w[j]),
                                      "watchers %d and %d share fd %d", i, j,
                                      ev_watcher_get_fd(w[i]));
        }
        for (i = 0; i < 6; i++)
                ev_watcher_close(w[i]);
}

Test(watcher, get_fd_is_stable, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        ev_value_watcher *other;
        int fd = ev_watcher_get_fd(w);

        cr_assert_geq(fd, 0);
        cr_assert_eq(ev_watcher_get_fd(w), fd);
        set_string_or_fail(v, "one");
        cr_assert_eq(ev_watcher_get_fd(w), fd);
        get_string_or_fail(w, 1, "one");
        cr_assert_eq(ev_watcher_get_fd(w), fd);
        get_fails_with(w, -EAGAIN);
        cr_assert_eq(ev_watcher_get_fd(w), fd);
        other = watch_or_fail(v);
        ev_watcher_close(other);
        cr_assert_eq(ev_watcher_get_fd(w), fd);
        close_or_fail(v);
        cr_assert_eq(ev_watcher_get_fd(w), fd);
}

/* The readiness invariant, checked against a model: watcher i has seen
 * version seen[i]; its fd must be readable exactly when the value has a
 * newer version or is closed, and a get must agree with the poll. */
enum { OP_SET, OP_GET, OP_CLOSE_WATCHER, OP_CLOSE_VALUE };

struct model {
        ev_value *v;
        ev_value_watcher *w[3];
        uint64_t seen[3];
        uint64_t version;
        bool closed;
};

static void model_check_all(const struct model *m, int step) {
        int i;

        for (i = 0; i < 3; i++) {
                bool expected;

                if (!m->w[i])
                        continue;
                expected = m->closed || m->seen[i] < m->version;
                cr_assert_eq(fd_readable(ev_watcher_get_fd(m->w[i])), expected,
                             "step %d: watcher %d readable %d, expected %d", step, i,
                             !expected, expected);
        }
}

static void model_step(struct model *m, int step, int op, int i) {
        char buf[32];

        switch (op) {
        case OP_SET:
                snprintf(buf, sizeof(buf), "version %llu", (unsigned long long)m->version + 1);
                if (m->closed) {
                        cr_assert_eq(ev_value_set(m->v, buf, strlen(buf) + 1), -EPIPE);
                        break;
                }
                set_string_or_fail(m->v, buf);
                m->version++;
                break;
        case OP_GET: {
                bool readable;

                if (!m->w[i])
                        break;
                readable = fd_readable(ev_watcher_get_fd(m->w[i]));
                if (m->seen[i] < m->version) {
                        snprintf(buf, sizeof(buf), "version %llu", (unsigned long long)m->version);
                        cr_assert(readable, "step %d: watcher %d not readable before a get that succeeds", step, i);
                        get_string_or_fail(m->w[i], m->version, buf);
                        m->seen[i] = m->version;
                } else if (m->closed) {
                        cr_assert(readable, "step %d: watcher %d of a closed value not readable", step, i);
                        get_fails_with(m->w[i], -EPIPE);
                } else {
                        cr_assert_not(readable, "step %d: watcher %d readable but get gives -EAGAIN", step, i);
                        get_fails_with(m->w[i], -EAGAIN);
                }
                break;
        }
        case OP_CLOSE_WATCHER:
                m->w[i] = ev_watcher_close(m->w[i]);
                break;
        case OP_CLOSE_VALUE:
                close_or_fail(m->v);
                m->closed = true;
                break;
        }
        model_check_all(m, step);
}

Test(watcher, fd_readable_iff_get_would_not_return_eagain, .timeout = 10) {
        static const struct { int op, i; } script[] = {
                { OP_GET, 0 }, { OP_SET, 0 }, { OP_GET, 0 }, { OP_GET, 0 },
                { OP_SET, 0 }, { OP_SET, 0 }, { OP_GET, 1 }, { OP_GET, 0 },
                { OP_GET, 2 }, { OP_GET, 1 }, { OP_SET, 0 }, { OP_GET, 2 },
                { OP_CLOSE_WATCHER, 1 }, { OP_SET, 0 }, { OP_SET, 0 }, { OP_GET, 0 },
                { OP_CLOSE_VALUE, 0 }, { OP_GET, 0 }, { OP_GET, 0 }, { OP_GET, 2 },
                { OP_GET, 2 }, { OP_SET, 0 }, { OP_GET, 0 },
        };
        struct model m = { 0 };
        unsigned seed = 12345;
        size_t k;
        int i, round;

        m.v = value_new_or_fail();
        for (i = 0; i < 3; i++)
                m.w[i] = watch_or_fail(m.v);
        model_check_all(&m, -1);
        for (k = 0; k < sizeof(script) / sizeof(script[0]); k++)
                model_step(&m, (int)k, script[k].op, script[k].i);
        for (i = 0; i < 3; i++)
                ev_watcher_close(m.w[i]);
        ev_value_unref(m.v);

        /* And a longer pseudo-random run of sets and gets, closing at the end. */
        memset(&m, 0, sizeof(m));
        m.v = value_new_or_fail();
        for (i = 0; i < 3; i++)
                m.w[i] = watch_or_fail(m.v);
        for (round = 0; round < 300; round++) {
                seed = seed * 1103515245 + 12345;
                if ((seed >> 16) % 3 == 0)
                        model_step(&m, 100 + round, OP_SET, 0);
                else
                        model_step(&m, 100 + round, OP_GET, (int)((seed >> 20) % 3));
        }
        model_step(&m, 400, OP_CLOSE_VALUE, 0);
        for (i = 0; i < 3; i++) {
                model_step(&m, 401 + i, OP_GET, i);
                model_step(&m, 404 + i, OP_GET, i);
        }
        for (i = 0; i < 3; i++)
                ev_watcher_close(m.w[i]);
        ev_value_unref(m.v);
}

Test(watcher, overlapping_get_and_wait_return_ebusy_and_disturb_nothing, .timeout = 20) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct waiter t;
        pthread_t thread;
        int64_t start;

        set_string_or_fail(v, "one");
        get_string_or_fail(w, 1, "one");

        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);

        /* Both refuse at once and leave their output alone. */
        start = now_ms();
        get_fails_with(w, -EBUSY);
        wait_fails_with(w, 5000, -1, -EBUSY);
        wait_fails_with(w, -1, -1, -EBUSY);
        cr_assert_lt(now_ms() - start, 1000, "-EBUSY was not immediate");

        /* The first wait is still blocked and gets the next set. */
        cr_assert_not(atomic_load(&t.done), "the waiter returned early: %d", t.r);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "two");
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0, "waiter: %s", strerror(-t.r));
        assert_snapshot_is_string(t.s, 2, "two");
        ev_snapshot_unref(t.s);

        /* And the watcher works normally afterwards. */
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EAGAIN);
        set_string_or_fail(v, "three");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 3, "three");
        get_fails_with(w, -EAGAIN);
}

Test(watcher, closing_a_watcher_with_unconsumed_notification_leaves_others, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *a = watch_or_fail(v);
        ev_value_watcher *b = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *c = watch_or_fail(v);

        set_string_or_fail(v, "one");
        cr_assert(fd_readable(ev_watcher_get_fd(b)));
        ev_watcher_close(b);

        cr_assert(fd_readable(ev_watcher_get_fd(a)));
        cr_assert(fd_readable(ev_watcher_get_fd(c)));
        get_string_or_fail(a, 1, "one");
        set_string_or_fail(v, "two");
        cr_assert(fd_readable(ev_watcher_get_fd(a)));
        cr_assert(fd_readable(ev_watcher_get_fd(c)));
        get_string_or_fail(a, 2, "two");
        get_string_or_fail(c, 2, "two");
        get_fails_with(a, -EAGAIN);
        get_fails_with(c, -EAGAIN);
        set_string_or_fail(v, "three");
        get_string_or_fail(c, 3, "three");
}

Test(watcher, set_never_writes_a_closed_watchers_fd_number, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *keep = watch_or_fail(v);
        ev_value_watcher *w = watch_or_fail(v);
        int old_fd = ev_watcher_get_fd(w);
        int extra[64], n_extra = 0, reused = -1, i;

        /* w is armed (nothing to see) when it is closed. */
        ev_watcher_close(w);

        /* Take the freed number with a plain eventfd of our own. */
        while (n_extra < 64) {
                int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

                cr_assert_geq(fd, 0);
                if (fd == old_fd) {
                        reused = fd;
                        break;
                }
                extra[n_extra++] = fd;
        }
        cr_assert_eq(reused, old_fd, "could not reuse fd number %d", old_fd);

        set_string_or_fail(v, "one");
        set_string_or_fail(v, "two");
        cr_assert_not(fd_readable(reused), "a set wrote the fd number of a closed watcher");
        get_string_or_fail(keep, 2, "two");

        close(reused);
        for (i = 0; i < n_extra; i++)
                close(extra[i]);
}

Test(watcher, watch_after_many_sets_first_get_returns_current, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *early = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char buf[32];
        int i;

        for (i = 1; i <= 50; i++) {
                snprintf(buf, sizeof(buf), "set %d", i);
                set_string_or_fail(v, buf);
        }
        w = watch_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 50, "set 50");
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        /* The late watcher did not change what the early one sees. */
        get_string_or_fail(early, 50, "set 50");
}

Test(watcher, watcher_keeps_value_alive_after_producer_unref, .timeout = 10) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        char *data = strdup_or_fail("kept");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        /* The producer's last reference. */
        ev_value_unref(v);

        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 1, "kept");
        get_fails_with(w, -EAGAIN);
        /* The value (and so its current snapshot) lives while the watcher does. */
        cr_assert_eq(atomic_load(&log.calls), 0, "value freed while a watcher lives");
        ev_watcher_close(w);
        cr_assert_eq(atomic_load(&log.calls), 1, "value not freed with its last watcher");
}
