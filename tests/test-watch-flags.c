/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of EV_VALUE_WATCH_SKIP_CURRENT and of
 * ev_value_get_watcher_count.  A watcher made with SKIP_CURRENT counts the
 * snapshot current at watch time as seen: its own fd is not readable and
 * its get gives -EAGAIN until the next set, which it then reports like any
 * watcher, or until the close, which makes the fd readable and the get
 * give -EPIPE (the skipped snapshot is not handed out as the last one); on
 * a never-set value the flag changes nothing.  With EV_VALUE_WATCH_SHARED_FD
 * the shared fd keeps its own rule (readable from the first set on) and
 * only the get side differs.  The watcher count covers watchers of both
 * kinds, drops as they close, ignores the close of the value and failed
 * watches, and is 0 for NULL.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

/* ------------------------------------------------------------- helpers */

/* Asserts that ev_value_watch(v, flags) succeeds; returns the watcher. */
static ev_value_watcher *watch_flags_or_fail(ev_value *v, unsigned flags) {
        ev_value_watcher *w = WATCHER_SENTINEL;
        int r = ev_value_watch(v, flags, &w);

        cr_assert_eq(r, 0, "ev_value_watch(%#x): %s", flags, strerror(-r));
        cr_assert_not_null(w);
        cr_assert_neq(w, WATCHER_SENTINEL);
        cr_assert_geq(ev_watcher_get_fd(w), 0);
        return w;
}

static ev_value_watcher *watch_skip_or_fail(ev_value *v) {
        return watch_flags_or_fail(v, EV_VALUE_WATCH_SKIP_CURRENT);
}

/* Asserts that ev_value_get_watcher_count(v) is expected. */
static void assert_watcher_count(const ev_value *v, size_t expected) {
        size_t n = ev_value_get_watcher_count(v);

        cr_assert_eq(n, expected, "watcher count %zu, expected %zu", n, expected);
}

/* ------------------------------------------------ SKIP_CURRENT, own fd */

Test(skip_current, on_a_set_value_the_fd_is_not_readable_and_get_gives_eagain) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "one");
        set_string_or_fail(v, "two");
        w = watch_skip_or_fail(v);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "the skipped snapshot made the fd readable");
        get_fails_with(w, -EAGAIN);
        wait_fails_with(w, 0, -1, -ETIMEDOUT);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

Test(skip_current, the_next_set_is_reported_like_to_any_watcher) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_skip_or_fail(v);
        set_string_or_fail(v, "reported");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "reported");
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EAGAIN);
        /* And from then on it is an ordinary watcher. */
        set_string_or_fail(v, "three");
        set_string_or_fail(v, "four");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 4, "four");
}

Test(skip_current, a_wait_blocks_until_the_next_set, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct waiter t;
        pthread_t thread;
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_skip_or_fail(v);
        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);
        cr_assert_not(atomic_load(&t.done), "the wait returned the skipped snapshot");
        set_string_or_fail(v, "woke");
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0, "ev_watcher_wait: %s", strerror(-t.r));
        assert_snapshot_is_string(t.s, 2, "woke");
        ev_snapshot_unref(t.s);
}

Test(skip_current, the_close_makes_the_fd_readable_and_get_gives_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_skip_or_fail(v);
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "the close did not make the fd readable");
        /* The skipped snapshot counts as seen: it is not the last one to hand out. */
        get_fails_with(w, -EPIPE);
        get_fails_with(w, -EPIPE);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        wait_fails_with(w, 1000, -1, -EPIPE);
}

Test(skip_current, a_set_then_the_close_give_that_snapshot_then_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_skip_or_fail(v);
        set_string_or_fail(v, "last");
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "last");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EPIPE);
}

Test(skip_current, on_a_closed_value_the_fd_is_readable_and_get_gives_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "final");
        close_or_fail(v);
        w = watch_skip_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EPIPE);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        /* The final state stays readable through the peek. */
        peek_string_or_fail(v, 1, "final");
}

Test(skip_current, on_a_never_set_value_behaves_like_flags_zero) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *plain = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *skip = watch_skip_or_fail(v);

        cr_assert_not(fd_readable(ev_watcher_get_fd(skip)));
        get_fails_with(skip, -EAGAIN);
        /* The first set is reported to both, the same way. */
        set_string_or_fail(v, "first");
        cr_assert(fd_readable(ev_watcher_get_fd(plain)));
        cr_assert(fd_readable(ev_watcher_get_fd(skip)));
        get_string_or_fail(plain, 1, "first");
        get_string_or_fail(skip, 1, "first");
        get_fails_with(skip, -EAGAIN);
}

Test(skip_current, on_a_never_set_closed_value_behaves_like_flags_zero) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *plain = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *skip = NULL;

        close_or_fail(v);
        plain = watch_or_fail(v);
        skip = watch_skip_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(plain)));
        cr_assert(fd_readable(ev_watcher_get_fd(skip)));
        get_fails_with(plain, -EPIPE);
        get_fails_with(skip, -EPIPE);
}

Test(skip_current, other_watchers_keep_the_current_snapshot) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *plain = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *skip = NULL;

        set_string_or_fail(v, "current");
        plain = watch_or_fail(v);
        skip = watch_skip_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(plain)));
        get_string_or_fail(plain, 1, "current");
        get_fails_with(skip, -EAGAIN);
}

/* ---------------------------------------- SKIP_CURRENT with SHARED_FD */

#define SHARED_SKIP (EV_VALUE_WATCH_SHARED_FD | EV_VALUE_WATCH_SKIP_CURRENT)

Test(skip_current, with_shared_fd_get_gives_eagain_until_the_next_set) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_flags_or_fail(v, SHARED_SKIP);
        get_fails_with(w, -EAGAIN);
        set_string_or_fail(v, "reported");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "reported");
        get_fails_with(w, -EAGAIN);
}

Test(skip_current, with_shared_fd_only_the_get_side_differs) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *shared = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *skip = NULL;

        set_string_or_fail(v, "current");
        shared = watch_flags_or_fail(v, EV_VALUE_WATCH_SHARED_FD);
        skip = watch_flags_or_fail(v, SHARED_SKIP);
        /* One shared fd, readable from the first set on, whatever the flag. */
        cr_assert_eq(ev_watcher_get_fd(skip), ev_watcher_get_fd(shared));
        cr_assert(fd_readable(ev_watcher_get_fd(skip)));
        get_string_or_fail(shared, 1, "current");
        get_fails_with(skip, -EAGAIN);
}

Test(skip_current, with_shared_fd_the_close_gives_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_flags_or_fail(v, SHARED_SKIP);
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EPIPE);
        get_fails_with(w, -EPIPE);
}

Test(skip_current, with_shared_fd_on_never_set_and_closed_values) {
        _cleanup_(ev_value_unrefp) ev_value *never = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *closed = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *a = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *b = NULL;

        a = watch_flags_or_fail(never, SHARED_SKIP);
        get_fails_with(a, -EAGAIN);
        set_string_or_fail(never, "first");
        get_string_or_fail(a, 1, "first");

        set_string_or_fail(closed, "final");
        close_or_fail(closed);
        b = watch_flags_or_fail(closed, SHARED_SKIP);
        get_fails_with(b, -EPIPE);
}

Test(skip_current, with_shared_fd_wait_gives_eopnotsupp) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "skipped");
        w = watch_flags_or_fail(v, SHARED_SKIP);
        wait_fails_with(w, 0, -1, -EOPNOTSUPP);
}

/* ------------------------------------------------------ watcher count */

Test(watcher_count, is_zero_for_null_and_for_a_new_value) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        cr_assert_eq(ev_value_get_watcher_count(NULL), 0);
        assert_watcher_count(v, 0);
}

Test(watcher_count, counts_own_fd_and_shared_fd_watchers_and_drops_as_they_close) {
        static const unsigned flags[] = {
                0,
                EV_VALUE_WATCH_SHARED_FD,
                EV_VALUE_WATCH_SKIP_CURRENT,
                EV_VALUE_WATCH_SHARED_FD | EV_VALUE_WATCH_SKIP_CURRENT,
                0,
                EV_VALUE_WATCH_SHARED_FD,
        };
        enum { N = sizeof(flags) / sizeof(flags[0]) };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *w[N];
        size_t i;

        set_string_or_fail(v, "watched");
        for (i = 0; i < N; i++) {
                w[i] = watch_flags_or_fail(v, flags[i]);
                assert_watcher_count(v, i + 1);
        }
        /* Close in another order than the watches: shared, own, ... */
        for (i = 0; i < N; i++) {
                size_t k = (i * 5 + 1) % N;

                w[k] = ev_watcher_close(w[k]);
                assert_watcher_count(v, N - i - 1);
        }
}

Test(watcher_count, is_per_value) {
        _cleanup_(ev_value_unrefp) ev_value *a = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *b = value_new_or_fail();
        _cleanup_(ev_watcher_closep) _unused_ ev_value_watcher *wa = watch_or_fail(a);
        ev_value_watcher *wb1 = watch_or_fail(b);
        _cleanup_(ev_watcher_closep) _unused_ ev_value_watcher *wb2 =
                watch_flags_or_fail(b, EV_VALUE_WATCH_SHARED_FD);

        assert_watcher_count(a, 1);
        assert_watcher_count(b, 2);
        ev_watcher_close(wb1);
        assert_watcher_count(a, 1);
        assert_watcher_count(b, 1);
}

Test(watcher_count, is_unaffected_by_the_close_of_the_value) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *own = watch_or_fail(v);
        ev_value_watcher *shared = watch_flags_or_fail(v, EV_VALUE_WATCH_SHARED_FD);
        ev_value_watcher *late;

        set_string_or_fail(v, "final");
        close_or_fail(v);
        assert_watcher_count(v, 2);
        /* Watching a closed value adds one like any watch. */
        late = watch_or_fail(v);
        assert_watcher_count(v, 3);
        /* Consuming to -EPIPE changes nothing either. */
        get_string_or_fail(own, 1, "final");
        get_fails_with(own, -EPIPE);
        assert_watcher_count(v, 3);

        ev_watcher_close(own);
        assert_watcher_count(v, 2);
        ev_watcher_close(shared);
        ev_watcher_close(late);
        assert_watcher_count(v, 0);
}

Test(watcher_count, counts_watchers_that_outlive_the_producers_reference) {
        ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *watched = ev_value_ref(v);
        ev_value_watcher *w = watch_or_fail(v);

        ev_value_unref(v);
        assert_watcher_count(watched, 1);
        ev_watcher_close(w);
        assert_watcher_count(watched, 0);
}

Test(watcher_count, is_unaffected_by_watches_that_fail_with_einval) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) _unused_ ev_value_watcher *w = watch_or_fail(v);
        ev_value_watcher *out = WATCHER_SENTINEL;

        cr_assert_eq(ev_value_watch(v, 1u << 31, &out), -EINVAL);
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SKIP_CURRENT | (1u << 5), &out), -EINVAL);
        cr_assert_eq(ev_value_watch(v, 0, NULL), -EINVAL);
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, NULL), -EINVAL);
        cr_assert_eq(out, WATCHER_SENTINEL);
        assert_watcher_count(v, 1);
}

/* Duplicates of /dev/null filling the fd table up to a lowered limit. */
#define MAX_FILLERS 64

Test(watcher_count, is_unaffected_by_watches_that_fail_with_emfile, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_watcher *out = WATCHER_SENTINEL;
        int fillers[MAX_FILLERS];
        int n_fillers = 0, devnull, i;
        struct rlimit rl;

        devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
        cr_assert_geq(devnull, 0, "open /dev/null: %s", strerror(errno));
        /* Criterion runs each test in a process of its own: the lowered
         * limit dies with it.  Fill every free fd number below it. */
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        rl.rlim_cur = (rlim_t)devnull + 16 < rl.rlim_cur ? (rlim_t)devnull + 16 : rl.rlim_cur;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
        while (n_fillers < MAX_FILLERS) {
                int fd = fcntl(devnull, F_DUPFD_CLOEXEC, 0);

                if (fd < 0) {
                        cr_assert_eq(errno, EMFILE, "dup: %s", strerror(errno));
                        break;
                }
                fillers[n_fillers++] = fd;
        }
        if (n_fillers == MAX_FILLERS)
                cr_skip_test("RLIMIT_NOFILE is not enforced here (running under valgrind?)");

        cr_assert_eq(ev_value_watch(v, 0, &out), -EMFILE);
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SKIP_CURRENT, &out), -EMFILE);
        /* The first shared-fd watcher needs the value's eventfd. */
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &out), -EMFILE);
        cr_assert_eq(out, WATCHER_SENTINEL);
        assert_watcher_count(v, 1);

        for (i = 0; i < n_fillers; i++)
                close(fillers[i]);
        close(devnull);
        ev_watcher_close(w);
        assert_watcher_count(v, 0);
}

#define N_CHURNERS 4
#define CHURNS_PER_THREAD 500

struct churn {
        ev_value *v;
        pthread_barrier_t start;
        atomic_int failures;
};

/* Watch and close, alternating the kinds; the count is not checked here
 * (other threads move it) but it must never read more than every thread's
 * one watcher. */
static void *churn_main(void *arg) {
        struct churn *c = arg;
        int i;

        pthread_barrier_wait(&c->start);
        for (i = 0; i < CHURNS_PER_THREAD; i++) {
                ev_value_watcher *w = NULL;

                if (ev_value_watch(c->v, i % 2 ? EV_VALUE_WATCH_SHARED_FD : 0, &w) != 0) {
                        atomic_fetch_add(&c->failures, 1);
                        continue;
                }
                if (ev_value_get_watcher_count(c->v) < 1 ||
                    ev_value_get_watcher_count(c->v) > N_CHURNERS)
                        atomic_fetch_add(&c->failures, 1);
                ev_watcher_close(w);
        }
        return NULL;
}

Test(watcher_count, returns_to_zero_after_concurrent_watches_and_closes, .timeout = 60) {
        struct churn c = { .v = value_new_or_fail() };
        pthread_t threads[N_CHURNERS];
        int i;

        set_string_or_fail(c.v, "churned");
        cr_assert_eq(pthread_barrier_init(&c.start, NULL, N_CHURNERS), 0);
        for (i = 0; i < N_CHURNERS; i++)
                cr_assert_eq(pthread_create(&threads[i], NULL, churn_main, &c), 0);
        for (i = 0; i < N_CHURNERS; i++)
                cr_assert_eq(pthread_join(threads[i], NULL), 0);
        pthread_barrier_destroy(&c.start);
        cr_assert_eq(atomic_load(&c.failures), 0, "%d watches failed or counts were out of range",
                     atomic_load(&c.failures));
        assert_watcher_count(c.v, 0);
        ev_value_unref(c.v);
}
