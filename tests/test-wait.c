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

/* A pointer no library call returns: output parameters start with it so a
 * failed call that wrote *ret is caught. */
static char sentinel_storage;
#define SENTINEL ((ev_value_snapshot *)(void *)&sentinel_storage)

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void check_snapshot(ev_value_snapshot *s, uint64_t version, const char *str) {
        cr_assert_not_null(s);
        cr_assert_neq(s, SENTINEL);
        cr_assert_eq(ev_snapshot_version(s), version, "version %llu, expected %llu",
                     (unsigned long long)ev_snapshot_version(s),
                     (unsigned long long)version);
        cr_assert_eq(ev_snapshot_size(s), strlen(str) + 1);
        cr_assert_str_eq(ev_snapshot_data(s), str);
}

/* Wait on w, which must succeed with version and str. */
static void wait_check(ev_value_watcher *w, int timeout_ms, int cancel_fd,
                       uint64_t version, const char *str) {
        ev_value_snapshot *s = SENTINEL;
        int r = ev_watcher_wait(w, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, 0, "ev_watcher_wait: %s", strerror(-r));
        check_snapshot(s, version, str);
        ev_snapshot_unref(s);
}

/* Wait on w, which must fail with error and leave the output alone. */
static void wait_expect(ev_value_watcher *w, int timeout_ms, int cancel_fd, int error) {
        ev_value_snapshot *s = SENTINEL;
        int r = ev_watcher_wait(w, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, error, "ev_watcher_wait: got %d (%s), expected %d (%s)",
                     r, strerror(-r), error, strerror(-error));
        cr_assert_eq(s, SENTINEL, "failed ev_watcher_wait wrote *ret");
}

static int eventfd_or_fail(void) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        cr_assert_geq(fd, 0, "eventfd: %s", strerror(errno));
        return fd;
}

static void eventfd_write_one(int fd) {
        uint64_t one = 1;

        cr_assert_eq(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

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

/* A thread that waits on a watcher.  It retries on -EBUSY: the other side
 * learns that the wait has begun by probing with ev_watcher_get, and a probe
 * that holds the watcher at the instant the wait starts makes the wait
 * (rightly) fail with -EBUSY. */
struct waiter {
        ev_value_watcher *w;
        int timeout_ms;
        int cancel_fd;
        ev_value_snapshot *s;
        int r;
        atomic_bool done;
};

static int wait_retrying_busy(ev_value_watcher *w, int timeout_ms, int cancel_fd,
                              ev_value_snapshot **ret) {
        int r;

        do
                r = ev_watcher_wait(w, timeout_ms, cancel_fd, ret);
        while (r == -EBUSY);
        return r;
}

static void *waiter_main(void *arg) {
        struct waiter *t = arg;

        t->r = wait_retrying_busy(t->w, t->timeout_ms, t->cancel_fd, &t->s);
        atomic_store(&t->done, true);
        return NULL;
}

static void waiter_start(struct waiter *t, pthread_t *thread, ev_value_watcher *w,
                         int timeout_ms, int cancel_fd) {
        t->w = w;
        t->timeout_ms = timeout_ms;
        t->cancel_fd = cancel_fd;
        t->s = SENTINEL;
        t->r = 1;
        atomic_init(&t->done, false);
        cr_assert_eq(pthread_create(thread, NULL, waiter_main, t), 0);
}

/* Probe whether another thread is inside a get or wait on w: -EBUSY when
 * it is.  The watcher must have nothing new, so that a probe that wins
 * returns -EAGAIN; anything else is an error.  Asserts nothing, so that
 * helper threads can use it. */
static int probe_busy(ev_value_watcher *w) {
        ev_value_snapshot *s = SENTINEL;
        int r = ev_watcher_get(w, &s);

        if (r == -EAGAIN && s != SENTINEL)
                return -EFAULT;
        return r;
}

/* Wait (bounded) until another thread is inside a get or wait on w.  Only
 * for the main thread: it asserts. */
static void wait_until_busy(ev_value_watcher *w) {
        int64_t deadline = now_ms() + 5000;
        int r;

        while ((r = probe_busy(w)) != -EBUSY) {
                cr_assert_eq(r, -EAGAIN, "probe get: %d (%s)", r, strerror(-r));
                cr_assert_lt(now_ms(), deadline, "the waiting thread never entered ev_watcher_wait");
                sched_yield();
        }
}

Test(wait, returns_an_unseen_snapshot_at_once, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int64_t start;

        set_string_or_fail(v, "ready");
        start = now_ms();
        wait_check(w, 5000, -1, 1, "ready");
        cr_assert_lt(now_ms() - start, 1000, "a wait with an unseen snapshot blocked");
        /* Forever also returns at once. */
        set_string_or_fail(v, "again");
        wait_check(w, -1, -1, 2, "again");
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));

        ev_watcher_close(w);
        ev_value_unref(v);
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
        int64_t deadline = now_ms() + 5000;

        while ((t->probe_r = probe_busy(t->probe)) == -EAGAIN && now_ms() < deadline)
                sched_yield();
        t->set_r = ev_value_set(t->v, "from thread", sizeof("from thread"));
        return NULL;
}

Test(wait, forever_is_woken_by_a_set_from_another_thread, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct setter t = { .v = v, .probe = w };
        ev_value_snapshot *s = SENTINEL;
        pthread_t thread;
        int r;

        cr_assert_eq(pthread_create(&thread, NULL, setter_main, &t), 0);
        r = wait_retrying_busy(w, -1, -1, &s);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.probe_r, -EBUSY, "the setter never saw the wait begin: %d (%s)",
                     t.probe_r, strerror(-t.probe_r));
        cr_assert_eq(t.set_r, 0);
        cr_assert_eq(r, 0, "ev_watcher_wait: %s", strerror(-r));
        check_snapshot(s, 1, "from thread");
        ev_snapshot_unref(s);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, timeout_gives_etimedout_no_earlier_than_asked, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int64_t start, elapsed;

        start = now_us();
        wait_expect(w, 100, -1, -ETIMEDOUT);
        elapsed = now_us() - start;
        cr_assert_geq(elapsed, 100000, "timed out after %lld us, before 100 ms", (long long)elapsed);
        cr_assert_lt(elapsed, 2000000, "a 100 ms timeout took %lld us", (long long)elapsed);

        /* Also with a cancel fd that stays quiet. */
        {
                int cancel = eventfd_or_fail();

                start = now_us();
                wait_expect(w, 100, cancel, -ETIMEDOUT);
                elapsed = now_us() - start;
                cr_assert_geq(elapsed, 100000, "timed out after %lld us, before 100 ms",
                              (long long)elapsed);
                cr_assert_lt(elapsed, 2000000, "a 100 ms timeout took %lld us", (long long)elapsed);
                close(cancel);
        }

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, watcher_usable_after_etimedout, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;

        set_string_or_fail(v, "seen");
        wait_check(w, 0, -1, 1, "seen");
        wait_expect(w, 50, -1, -ETIMEDOUT);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "after timeout");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        s = get_or_fail(w);
        check_snapshot(s, 2, "after timeout");
        ev_snapshot_unref(s);
        set_string_or_fail(v, "waited");
        wait_check(w, 1000, -1, 3, "waited");
        wait_expect(w, 0, -1, -ETIMEDOUT);

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, timeout_zero_with_nothing_new_times_out_at_once, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int64_t start;

        start = now_ms();
        wait_expect(w, 0, -1, -ETIMEDOUT); /* never set */
        set_string_or_fail(v, "one");
        wait_check(w, 0, -1, 1, "one");
        wait_expect(w, 0, -1, -ETIMEDOUT); /* seen */
        cr_assert_lt(now_ms() - start, 1000, "a zero timeout blocked");

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, timeout_zero_returns_an_unseen_snapshot, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w;

        set_string_or_fail(v, "one");
        w = watch_or_fail(v);
        wait_check(w, 0, -1, 1, "one");
        set_string_or_fail(v, "two");
        set_string_or_fail(v, "three");
        wait_check(w, 0, -1, 3, "three");

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, cancel_fd_written_during_wait_cancels_and_is_not_read, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int cancel = eventfd_or_fail();
        struct waiter t;
        pthread_t thread;

        waiter_start(&t, &thread, w, -1, cancel);
        wait_until_busy(w);
        eventfd_write_one(cancel);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, -ECANCELED, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SENTINEL, "a cancelled wait wrote *ret");

        /* The library left the counter alone. */
        cr_assert(fd_readable(cancel), "the library read the cancel fd");
        cr_assert_eq(eventfd_drain(cancel), 1);

        ev_watcher_close(w);
        ev_value_unref(v);
        close(cancel);
}

Test(wait, watcher_usable_after_ecanceled, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int cancel = eventfd_or_fail();
        ev_value_snapshot *s;

        set_string_or_fail(v, "one");
        wait_check(w, -1, cancel, 1, "one");
        eventfd_write_one(cancel);
        wait_expect(w, -1, cancel, -ECANCELED);
        /* Still readable, so it cancels again: a context stays cancelled. */
        wait_expect(w, -1, cancel, -ECANCELED);
        cr_assert_eq(eventfd_drain(cancel), 1);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "two");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        wait_check(w, -1, cancel, 2, "two");
        set_string_or_fail(v, "three");
        s = get_or_fail(w);
        check_snapshot(s, 3, "three");
        ev_snapshot_unref(s);
        wait_expect(w, 50, cancel, -ETIMEDOUT);

        ev_watcher_close(w);
        ev_value_unref(v);
        close(cancel);
}

Test(wait, one_cancel_fd_cancels_several_waits, .timeout = 10) {
        ev_value *v1 = value_new_or_fail();
        ev_value *v2 = value_new_or_fail();
        ev_value_watcher *a = watch_or_fail(v1);
        ev_value_watcher *b = watch_or_fail(v2);
        int cancel = eventfd_or_fail();
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
        cr_assert_eq(ta.s, SENTINEL);
        cr_assert_eq(tb.s, SENTINEL);
        /* Nobody consumed the single write. */
        cr_assert_eq(eventfd_drain(cancel), 1);

        ev_watcher_close(a);
        ev_watcher_close(b);
        ev_value_unref(v1);
        ev_value_unref(v2);
        close(cancel);
}

Test(wait, pipe_with_closed_write_end_cancels, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
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
        cr_assert_eq(t.s, SENTINEL);
        /* Already closed when the wait starts: POLLHUP without POLLIN data. */
        wait_expect(w, -1, p[0], -ECANCELED);
        close(p[0]);

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, timerfd_cancels_when_it_expires, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct itimerspec its = { .it_value = { .tv_nsec = 50 * 1000000 } };
        int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        uint64_t expirations = 0;
        int64_t start, elapsed;

        cr_assert_geq(tfd, 0, "timerfd_create: %s", strerror(errno));
        start = now_us();
        cr_assert_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
        wait_expect(w, -1, tfd, -ECANCELED);
        elapsed = now_us() - start;
        cr_assert_geq(elapsed, 50000, "cancelled after %lld us, before the timer", (long long)elapsed);
        /* Not read by the library. */
        cr_assert_eq(read(tfd, &expirations, sizeof(expirations)), (ssize_t)sizeof(expirations));
        cr_assert_eq(expirations, 1);

        close(tfd);
        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, unseen_snapshot_wins_over_readable_cancel_fd, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int cancel = eventfd_or_fail();

        eventfd_write_one(cancel);
        set_string_or_fail(v, "wins");
        wait_check(w, -1, cancel, 1, "wins");
        /* Also with a zero timeout, and for the last snapshot of a closed value. */
        set_string_or_fail(v, "wins again");
        wait_check(w, 0, cancel, 2, "wins again");
        set_string_or_fail(v, "last");
        cr_assert_eq(ev_value_close(v), 0);
        wait_check(w, -1, cancel, 3, "last");
        /* Once seen, the closed value takes over. */
        wait_expect(w, -1, cancel, -EPIPE);
        cr_assert_eq(eventfd_drain(cancel), 1);

        ev_watcher_close(w);
        ev_value_unref(v);
        close(cancel);
}

Test(wait, closed_and_seen_value_wins_over_readable_cancel_fd, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int cancel = eventfd_or_fail();

        /* Never set: the first wait after close is -EPIPE, not -ECANCELED. */
        eventfd_write_one(cancel);
        cr_assert_eq(ev_value_close(v), 0);
        wait_expect(w, -1, cancel, -EPIPE);
        wait_expect(w, 0, cancel, -EPIPE);
        wait_expect(w, 0, -1, -EPIPE);

        ev_watcher_close(w);
        ev_value_unref(v);
        close(cancel);
}

Test(wait, timeout_zero_with_readable_cancel_fd_gives_ecanceled, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int cancel = eventfd_or_fail();

        eventfd_write_one(cancel);
        wait_expect(w, 0, cancel, -ECANCELED); /* never set */
        set_string_or_fail(v, "one");
        wait_check(w, 0, cancel, 1, "one");
        wait_expect(w, 0, cancel, -ECANCELED); /* seen */
        cr_assert_eq(eventfd_drain(cancel), 1);
        wait_expect(w, 0, cancel, -ETIMEDOUT); /* and quiet again */

        ev_watcher_close(w);
        ev_value_unref(v);
        close(cancel);
}

Test(wait, cancel_fd_that_is_not_open_gives_ebadf, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        int fd = eventfd_or_fail();
        int64_t start;

        /* A number that was just open and is now closed. */
        close(fd);
        cr_assert_eq(fcntl(fd, F_GETFD), -1);
        start = now_ms();
        wait_expect(w, 5000, fd, -EBADF);
        wait_expect(w, 0, fd, -EBADF);
        cr_assert_lt(now_ms() - start, 1000, "-EBADF was not immediate");

        /* The watcher is untouched by the bad call. */
        set_string_or_fail(v, "one");
        wait_check(w, -1, -1, 1, "one");

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, cancel_fd_below_minus_one_gives_einval, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);

        wait_expect(w, 0, -2, -EINVAL);
        wait_expect(w, -1, -2, -EINVAL);
        wait_expect(w, 100, -1000, -EINVAL);
        /* Even when a snapshot is ready: the argument is checked first. */
        set_string_or_fail(v, "one");
        wait_expect(w, -1, -2, -EINVAL);
        wait_check(w, -1, -1, 1, "one");

        ev_watcher_close(w);
        ev_value_unref(v);
}

/* Signals: a handler installed without SA_RESTART, so every signal
 * interrupts the library's sleep with EINTR. */
static atomic_int n_signals;

static void on_sigusr1(int sig) {
        (void)sig;
        atomic_fetch_add(&n_signals, 1);
}

static void install_sigusr1_handler(void) {
        struct sigaction sa = { .sa_handler = on_sigusr1 };

        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0);
        atomic_store(&n_signals, 0);
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
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct signaller t = { .target = pthread_self() };
        pthread_t thread;
        int64_t start, elapsed;
        int delivered;

        install_sigusr1_handler();
        cr_assert_eq(pthread_create(&thread, NULL, signaller_main, &t), 0);
        start = now_us();
        wait_expect(w, 200, -1, -ETIMEDOUT);
        elapsed = now_us() - start;
        delivered = atomic_load(&n_signals);
        atomic_store(&t.stop, true);
        cr_assert_eq(pthread_join(thread, NULL), 0);

        cr_assert_gt(delivered, 0, "no signal reached the waiting thread");
        cr_assert_geq(elapsed, 200000, "timed out after %lld us (%d signals), before 200 ms",
                      (long long)elapsed, delivered);
        cr_assert_lt(elapsed, 3000000, "a 200 ms timeout took %lld us under %d signals",
                     (long long)elapsed, delivered);

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, signals_do_not_end_a_wait_forever, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct signaller t = { .target = pthread_self(), .n_max = 20, .v = v };
        ev_value_snapshot *s = SENTINEL;
        pthread_t thread;
        int r;

        install_sigusr1_handler();
        cr_assert_eq(pthread_create(&thread, NULL, signaller_main, &t), 0);
        /* Neither -EINTR nor an early return: only the set ends the wait. */
        r = ev_watcher_wait(w, -1, -1, &s);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(r, 0, "ev_watcher_wait: %d (%s)", r, strerror(-r));
        check_snapshot(s, 1, "after signals");
        ev_snapshot_unref(s);
        cr_assert_gt(atomic_load(&n_signals), 0, "no signal reached the waiting thread");

        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, forever_is_woken_by_value_close, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_watcher *late;
        struct waiter t;
        pthread_t thread;

        set_string_or_fail(v, "last");
        wait_check(w, -1, -1, 1, "last");
        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);
        cr_assert_not(atomic_load(&t.done));
        cr_assert_eq(ev_value_close(v), 0);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, -EPIPE, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SENTINEL);
        /* And -EPIPE forever after. */
        wait_expect(w, -1, -1, -EPIPE);

        /* A watcher that had not seen the last snapshot is woken with it. */
        late = watch_or_fail(v);
        wait_check(late, -1, -1, 1, "last");
        wait_expect(late, -1, -1, -EPIPE);

        ev_watcher_close(late);
        ev_watcher_close(w);
        ev_value_unref(v);
}

Test(wait, forever_on_a_never_set_value_is_woken_by_close, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct waiter t;
        pthread_t thread;

        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);
        cr_assert_eq(ev_value_close(v), 0);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        /* Never set: nothing to deliver, so the close itself ends the wait. */
        cr_assert_eq(t.r, -EPIPE, "wait: got %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SENTINEL);

        ev_watcher_close(w);
        ev_value_unref(v);
}
