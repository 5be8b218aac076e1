/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ev_watcher_wait: it returns an unseen snapshot at once and
 * is woken by a set or a close from another thread; its timeout follows
 * poll(2) and is measured against CLOCK_MONOTONIC, never early, even under a
 * storm of signals; its cancel fd (an eventfd, a pipe, a timerfd) cancels
 * without being read, so one fd cancels many waits; the documented
 * precedence between a new snapshot, a closed value, a readable cancel fd
 * and an expired timeout; bad cancel fds; and that the watcher is fully
 * usable after -ETIMEDOUT and -ECANCELED.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* The counter of a non-blocking eventfd, read (and so reset) now; 0 when
 * nothing had been written. */
static uint64_t eventfd_drain(int fd) {
        uint64_t counter = 0;
        ssize_t n = read(fd, &counter, sizeof(counter));

        if (n < 0) {
                cr_assert_eq(errno, EAGAIN, "read eventfd: %s", strerror(errno));
                return 0;
        }
        cr_assert_eq(n, (ssize_t)sizeof(counter));
        return counter;
}

Test(wait, returns_an_unseen_snapshot_at_once, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int64_t start;

        set_string_or_fail(v, "ready");
        start = now_ms();
        wait_string_or_fail(w, 5000, -1, 1, "ready");
        cr_assert_lt(now_ms() - start, 1000, "a wait with an unseen snapshot blocked");
        /* Forever also returns at once. */
        set_string_or_fail(v, "again");
        wait_string_or_fail(w, -1, -1, 2, "again");
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

struct setter {
        ev_value *v;
        ev_value_watcher *probe; /* the watcher the main thread waits on */
        int probe_r;             /* -EBUSY once the wait was seen */
        int set_r;
};

/* Set once the main thread is inside its wait (or after 5 s, or on an
 * unexpected probe result: the main thread then reports probe_r). */
static void *setter_main(void *arg) {
        struct setter *t = arg;
        int64_t deadline = now_ms() + THREAD_REACH_MS;

        while ((t->probe_r = probe_busy(t->probe)) == -EAGAIN && now_ms() < deadline)
                pause_briefly();
        t->set_r = ev_value_set(t->v, "from thread", sizeof("from thread"));
        return NULL;
}

Test(wait, forever_is_woken_by_a_set_from_another_thread, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct setter t = { .v = v, .probe = w };
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        pthread_t thread;
        int r;

        cr_assert_eq(pthread_create(&thread, NULL, setter_main, &t), 0);
        r = wait_retrying_busy(w, -1, -1, &s);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.probe_r, -EBUSY, "the setter never saw the wait begin: %d (%s)",
                     t.probe_r, strerror(-t.probe_r));
        cr_assert_eq(t.set_r, 0);
        cr_assert_eq(r, 0, "ev_watcher_wait: %s", strerror(-r));
        assert_snapshot_is_string(s, 1, "from thread");
        ev_snapshot_unref(s);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

Test(wait, timeout_gives_etimedout_no_earlier_than_asked, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int64_t start, elapsed;

        start = now_us();
        wait_fails_with(w, 100, -1, -ETIMEDOUT);
        elapsed = now_us() - start;
        cr_assert_geq(elapsed, 100000, "timed out after %lld us, before 100 ms", (long long)elapsed);
        cr_assert_lt(elapsed, 2000000, "a 100 ms timeout took %lld us", (long long)elapsed);

        /* Also with a cancel fd that stays quiet. */
        {
                int cancel = eventfd_or_fail();

                start = now_us();
                wait_fails_with(w, 100, cancel, -ETIMEDOUT);
                elapsed = now_us() - start;
                cr_assert_geq(elapsed, 100000, "timed out after %lld us, before 100 ms",
                              (long long)elapsed);
                cr_assert_lt(elapsed, 2000000, "a 100 ms timeout took %lld us", (long long)elapsed);
                close(cancel);
        }
}

Test(wait, watcher_usable_after_etimedout, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_string_or_fail(v, "seen");
        wait_string_or_fail(w, 0, -1, 1, "seen");
        wait_fails_with(w, 50, -1, -ETIMEDOUT);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "after timeout");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "after timeout");
        set_string_or_fail(v, "waited");
        wait_string_or_fail(w, 1000, -1, 3, "waited");
        wait_fails_with(w, 0, -1, -ETIMEDOUT);
}

Test(wait, timeout_zero_with_nothing_new_times_out_at_once, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int64_t start;

        start = now_ms();
        wait_fails_with(w, 0, -1, -ETIMEDOUT); /* never set */
        set_string_or_fail(v, "one");
        wait_string_or_fail(w, 0, -1, 1, "one");
        wait_fails_with(w, 0, -1, -ETIMEDOUT); /* seen */
        cr_assert_lt(now_ms() - start, 1000, "a zero timeout blocked");
}

Test(wait, timeout_zero_returns_an_unseen_snapshot, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "one");
        w = watch_or_fail(v);
        wait_string_or_fail(w, 0, -1, 1, "one");
        set_string_or_fail(v, "two");
        set_string_or_fail(v, "three");
        wait_string_or_fail(w, 0, -1, 3, "three");
}

Test(wait, cancel_fd_written_during_wait_cancels_and_is_not_read, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(closep) int cancel = eventfd_or_fail();
        struct waiter t;
        pthread_t thread;

        waiter_start(&t, &thread, w, -1, cancel);
        wait_until_busy(w);
        eventfd_write_one(cancel);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, -ECANCELED, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SNAPSHOT_SENTINEL, "a cancelled wait wrote *ret");

        /* The library left the counter alone. */
        cr_assert(fd_readable(cancel), "the library read the cancel fd");
        cr_assert_eq(eventfd_drain(cancel), 1);
}

Test(wait, watcher_usable_after_ecanceled, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(closep) int cancel = eventfd_or_fail();

        set_string_or_fail(v, "one");
        wait_string_or_fail(w, -1, cancel, 1, "one");
        eventfd_write_one(cancel);
        wait_fails_with(w, -1, cancel, -ECANCELED);
        /* Still readable, so it cancels again: a context stays cancelled. */
        wait_fails_with(w, -1, cancel, -ECANCELED);
        cr_assert_eq(eventfd_drain(cancel), 1);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "two");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        wait_string_or_fail(w, -1, cancel, 2, "two");
        set_string_or_fail(v, "three");
        get_string_or_fail(w, 3, "three");
        wait_fails_with(w, 50, cancel, -ETIMEDOUT);
}

Test(wait, one_cancel_fd_cancels_several_waits, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v1 = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *v2 = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *a = watch_or_fail(v1);
        _cleanup_(ev_watcher_closep) ev_value_watcher *b = watch_or_fail(v2);
        _cleanup_(closep) int cancel = eventfd_or_fail();
        struct waiter ta, tb;
        pthread_t tha, thb;

        waiter_start(&ta, &tha, a, -1, cancel);
        waiter_start(&tb, &thb, b, -1, cancel);
        wait_until_busy(a);
        wait_until_busy(b);
        eventfd_write_one(cancel);
        cr_assert_eq(pthread_join(tha, NULL), 0);
        cr_assert_eq(pthread_join(thb, NULL), 0);
        cr_assert_eq(ta.r, -ECANCELED, "first wait: %d (%s)", ta.r, strerror(-ta.r));
        cr_assert_eq(tb.r, -ECANCELED, "second wait: %d (%s)", tb.r, strerror(-tb.r));
        cr_assert_eq(ta.s, SNAPSHOT_SENTINEL);
        cr_assert_eq(tb.s, SNAPSHOT_SENTINEL);
        /* Nobody consumed the single write. */
        cr_assert_eq(eventfd_drain(cancel), 1);
}

Test(wait, pipe_with_closed_write_end_cancels, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int p[2];
        struct waiter t;
        pthread_t thread;

        /* Closed while a wait sleeps on it. */
        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        waiter_start(&t, &thread, w, -1, p[0]);
        wait_until_busy(w);
        close(p[1]);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, -ECANCELED, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SNAPSHOT_SENTINEL);
        /* Already closed when the wait starts: POLLHUP without POLLIN data. */
        wait_fails_with(w, -1, p[0], -ECANCELED);
        close(p[0]);
}

Test(wait, timerfd_cancels_when_it_expires, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct itimerspec its = { .it_value = { .tv_nsec = 50 * 1000000 } };
        _cleanup_(closep) int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        uint64_t expirations = 0;
        int64_t start, elapsed;

        cr_assert_geq(tfd, 0, "timerfd_create: %s", strerror(errno));
        start = now_us();
        cr_assert_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
        wait_fails_with(w, -1, tfd, -ECANCELED);
        elapsed = now_us() - start;
        cr_assert_geq(elapsed, 50000, "cancelled after %lld us, before the timer", (long long)elapsed);
        /* Not read by the library. */
        cr_assert_eq(read(tfd, &expirations, sizeof(expirations)), (ssize_t)sizeof(expirations));
        cr_assert_eq(expirations, 1);
}

Test(wait, unseen_snapshot_wins_over_readable_cancel_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(closep) int cancel = eventfd_or_fail();

        eventfd_write_one(cancel);
        set_string_or_fail(v, "wins");
        wait_string_or_fail(w, -1, cancel, 1, "wins");
        /* Also with a zero timeout, and for the last snapshot of a closed value. */
        set_string_or_fail(v, "wins again");
        wait_string_or_fail(w, 0, cancel, 2, "wins again");
        set_string_or_fail(v, "last");
        close_or_fail(v);
        wait_string_or_fail(w, -1, cancel, 3, "last");
        /* Once seen, the closed value takes over. */
        wait_fails_with(w, -1, cancel, -EPIPE);
        cr_assert_eq(eventfd_drain(cancel), 1);
}

Test(wait, closed_and_seen_value_wins_over_readable_cancel_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(closep) int cancel = eventfd_or_fail();

        /* Never set: the first wait after close is -EPIPE, not -ECANCELED. */
        eventfd_write_one(cancel);
        close_or_fail(v);
        wait_fails_with(w, -1, cancel, -EPIPE);
        wait_fails_with(w, 0, cancel, -EPIPE);
        wait_fails_with(w, 0, -1, -EPIPE);
}

Test(wait, timeout_zero_with_readable_cancel_fd_gives_ecanceled, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(closep) int cancel = eventfd_or_fail();

        eventfd_write_one(cancel);
        wait_fails_with(w, 0, cancel, -ECANCELED); /* never set */
        set_string_or_fail(v, "one");
        wait_string_or_fail(w, 0, cancel, 1, "one");
        wait_fails_with(w, 0, cancel, -ECANCELED); /* seen */
        cr_assert_eq(eventfd_drain(cancel), 1);
        wait_fails_with(w, 0, cancel, -ETIMEDOUT); /* and quiet again */
}

Test(wait, cancel_fd_that_is_not_open_gives_ebadf, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int fd = eventfd_or_fail();
        int64_t start;

        /* A number that was just open and is now closed. */
        close(fd);
        cr_assert_eq(fcntl(fd, F_GETFD), -1);
        start = now_ms();
        wait_fails_with(w, 5000, fd, -EBADF);
        wait_fails_with(w, 0, fd, -EBADF);
        cr_assert_lt(now_ms() - start, 1000, "-EBADF was not immediate");

        /* The watcher is untouched by the bad call. */
        set_string_or_fail(v, "one");
        wait_string_or_fail(w, -1, -1, 1, "one");
}

Test(wait, cancel_fd_below_minus_one_gives_einval, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        wait_fails_with(w, 0, -2, -EINVAL);
        wait_fails_with(w, -1, -2, -EINVAL);
        wait_fails_with(w, 100, -1000, -EINVAL);
        /* Even when a snapshot is ready: the argument is checked first. */
        set_string_or_fail(v, "one");
        wait_fails_with(w, -1, -2, -EINVAL);
        wait_string_or_fail(w, -1, -1, 1, "one");
}

struct signaller {
        pthread_t target;
        atomic_bool stop;
        int n_max;              /* stop after this many signals; 0: until stop */
        ev_value *v;            /* set it after the last signal, when not NULL */
        int n_sent;
};

static void *signaller_main(void *arg) {
        struct signaller *t = arg;
        struct timespec pause = { .tv_nsec = 5 * 1000000 };

        while (!atomic_load(&t->stop) && (t->n_max == 0 || t->n_sent < t->n_max)) {
                if (pthread_kill(t->target, SIGUSR1) != 0)
                        break;
                t->n_sent++;
                nanosleep(&pause, NULL);
        }
        if (t->v)
                ev_value_set(t->v, "after signals", sizeof("after signals"));
        return NULL;
}

Test(wait, signals_do_not_shorten_the_timeout, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct signaller t = { .target = pthread_self() };
        pthread_t thread;
        int64_t start, elapsed;
        int delivered;

        install_sigusr1_handler();
        cr_assert_eq(pthread_create(&thread, NULL, signaller_main, &t), 0);
        start = now_us();
        wait_fails_with(w, 200, -1, -ETIMEDOUT);
        elapsed = now_us() - start;
        delivered = atomic_load(&n_signals);
        atomic_store(&t.stop, true);
        cr_assert_eq(pthread_join(thread, NULL), 0);

        cr_assert_gt(delivered, 0, "no signal reached the waiting thread");
        cr_assert_geq(elapsed, 200000, "timed out after %lld us (%d signals), before 200 ms",
                      (long long)elapsed, delivered);
        cr_assert_lt(elapsed, 3000000, "a 200 ms timeout took %lld us under %d signals",
                     (long long)elapsed, delivered);
}

Test(wait, signals_do_not_end_a_wait_forever, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct signaller t = { .target = pthread_self(), .n_max = 20, .v = v };
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        pthread_t thread;
        int r;

        install_sigusr1_handler();
        cr_assert_eq(pthread_create(&thread, NULL, signaller_main, &t), 0);
        /* Neither -EINTR nor an early return: only the set ends the wait. */
        r = ev_watcher_wait(w, -1, -1, &s);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(r, 0, "ev_watcher_wait: %d (%s)", r, strerror(-r));
        assert_snapshot_is_string(s, 1, "after signals");
        ev_snapshot_unref(s);
        cr_assert_gt(atomic_load(&n_signals), 0, "no signal reached the waiting thread");
}

Test(wait, forever_is_woken_by_value_close, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *late = NULL;
        struct waiter t;
        pthread_t thread;

        set_string_or_fail(v, "last");
        wait_string_or_fail(w, -1, -1, 1, "last");
        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);
        cr_assert_not(atomic_load(&t.done));
        close_or_fail(v);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, -EPIPE, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SNAPSHOT_SENTINEL);
        /* And -EPIPE forever after. */
        wait_fails_with(w, -1, -1, -EPIPE);

        /* A watcher that had not seen the last snapshot is woken with it. */
        late = watch_or_fail(v);
        wait_string_or_fail(late, -1, -1, 1, "last");
        wait_fails_with(late, -1, -1, -EPIPE);
}

Test(wait, forever_on_a_never_set_value_is_woken_by_close, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct waiter t;
        pthread_t thread;

        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);
        close_or_fail(v);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        /* Never set: nothing to deliver, so the close itself ends the wait. */
        cr_assert_eq(t.r, -EPIPE, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SNAPSHOT_SENTINEL);
}
