/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ev_value_close, one test per rule that ev_value_close(3) and
 * ev_watcher_wait(3) state about a closed value: each watcher first receives
 * the last snapshot if it had not seen it, then -EPIPE forever; every
 * watcher's fd becomes readable and stays readable; sets fail with -EPIPE
 * and change nothing (an owned buffer stays the caller's); close is
 * idempotent; a value closed before or after it was set can still be watched
 * and peeked; a wait blocked in another thread is woken; and a closed, fully
 * seen watcher's wait gives -EPIPE before -ECANCELED and -ETIMEDOUT.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "ev-value.h"
#include "helpers.h"

/* w is closed and has returned the last snapshot: -EPIPE, n times over,
 * nothing written, and the fd stays readable all along. */
static void assert_epipe_forever(ev_value_watcher *w, int n) {
        int i;

        for (i = 0; i < n; i++) {
                ev_value_snapshot *s = SNAPSHOT_SENTINEL;

                cr_assert_eq(ev_watcher_get(w, &s), -EPIPE, "get %d after the last", i + 1);
                cr_assert_eq(s, SNAPSHOT_SENTINEL);
                cr_assert(fd_readable(ev_watcher_get_fd(w)), "fd not readable after -EPIPE %d",
                          i + 1);
        }
}

Test(close, unseen_last_snapshot_is_returned_first_then_epipe_forever) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "one");
        w = watch_consumed_or_fail(v);
        set_string_or_fail(v, "two");
        set_string_or_fail(v, "three");
        close_or_fail(v);
        /* Intermediate versions are skipped, the last one is not. */
        get_string_or_fail(w, 3, "three");
        assert_epipe_forever(w, 3);
}

Test(close, watcher_that_never_got_anything_receives_the_last_snapshot_then_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_string_or_fail(v, "only");
        close_or_fail(v);
        get_string_or_fail(w, 1, "only");
        assert_epipe_forever(w, 3);
}

Test(close, fd_of_watcher_with_unseen_snapshot_stays_readable_after_get_and_after_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_string_or_fail(v, "last");
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 1, "last");
        /* Unlike an open value's, the fd is not cleared by this get. */
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "fd not readable after the last get");
        assert_epipe_forever(w, 3);
}

Test(close, watcher_that_saw_the_last_snapshot_gets_epipe_at_once_and_its_fd_becomes_readable) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "seen");
        w = watch_consumed_or_fail(v);
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "close did not make the fd readable");
        assert_epipe_forever(w, 3);
}

Test(close, close_makes_every_watchers_fd_readable) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *seen[3], *unseen;
        int i;

        set_string_or_fail(v, "x");
        for (i = 0; i < 3; i++)
                seen[i] = watch_consumed_or_fail(v);
        unseen = watch_or_fail(v);
        close_or_fail(v);
        for (i = 0; i < 3; i++) {
                cr_assert(fd_readable(ev_watcher_get_fd(seen[i])), "watcher %d", i);
                assert_epipe_forever(seen[i], 1);
        }
        cr_assert(fd_readable(ev_watcher_get_fd(unseen)));
        get_string_or_fail(unseen, 1, "x");
        assert_epipe_forever(unseen, 1);
        for (i = 0; i < 3; i++)
                ev_watcher_close(seen[i]);
        ev_watcher_close(unseen);
}

Test(close, close_of_never_set_value_makes_watcher_fd_readable_and_get_gives_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EAGAIN);
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        assert_epipe_forever(w, 3);
        cr_assert_eq(ev_value_get_version(v), 0);
}

Test(close, set_after_close_gives_epipe_and_leaves_version_and_data_unchanged) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *done = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *pending = NULL;

        set_string_or_fail(v, "final");
        done = watch_consumed_or_fail(v);
        pending = watch_or_fail(v);
        close_or_fail(v);
        get_fails_with(done, -EPIPE);

        cr_assert_eq(ev_value_set(v, "late", 5), -EPIPE);
        cr_assert_eq(ev_value_set(v, NULL, 0), -EPIPE);
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "final");
        /* Neither watcher sees a new snapshot. */
        assert_epipe_forever(done, 1);
        get_string_or_fail(pending, 1, "final");
        assert_epipe_forever(pending, 1);
}

Test(close, set_owned_after_close_gives_epipe_and_caller_keeps_ownership) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w;
        char *data = strdup_or_fail("refused");

        set_string_or_fail(v, "final");
        w = watch_consumed_or_fail(v);
        close_or_fail(v);
        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, record_destroy, &log), -EPIPE);
        cr_assert_eq(ev_value_set_owned(v, NULL, 0, record_destroy, &log), -EPIPE);
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "final");
        assert_epipe_forever(w, 1);
        ev_watcher_close(w);
        ev_value_unref(v);
        /* Not even the value's end destroys what the caller still owns. */
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_str_eq(data, "refused");
        free(data);
}

Test(close, close_is_idempotent) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_string_or_fail(v, "final");
        cr_assert_eq(ev_value_close(v), 0);
        cr_assert_eq(ev_value_close(v), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        get_string_or_fail(w, 1, "final");
        /* A later close neither reopens nor delivers the snapshot again. */
        cr_assert_eq(ev_value_close(v), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        assert_epipe_forever(w, 2);
        cr_assert_eq(ev_value_set(v, "x", 2), -EPIPE);
}

Test(close, watch_after_close_gives_readable_fd_then_final_snapshot_then_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "old");
        set_string_or_fail(v, "final");
        close_or_fail(v);
        w = watch_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "final");
        assert_epipe_forever(w, 3);
}

Test(close, watch_after_close_of_never_set_value_gives_readable_fd_and_epipe) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        close_or_fail(v);
        w = watch_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        assert_epipe_forever(w, 3);
}

Test(close, value_get_still_returns_the_final_snapshot_after_close) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        set_string_or_fail(v, "first");
        set_string_or_fail(v, "final");
        close_or_fail(v);
        peek_string_or_fail(v, 2, "final");
        /* And again: peeking consumes nothing. */
        peek_string_or_fail(v, 2, "final");
}

Test(close, value_get_on_closed_never_set_value_gives_eagain) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        close_or_fail(v);
        peek_fails_with(v, -EAGAIN);
}

/* ------------------------------------------------ waits in another thread */

struct blocked_wait {
        ev_value_watcher *w;
        pthread_barrier_t started;
        atomic_int tid;
        atomic_bool returned;
        int r[2];
        ev_value_snapshot *s[2];
};

/* Wait forever twice: what wakes the first wait, then what follows at once. */
static void *wait_main(void *data) {
        struct blocked_wait *b = data;
        int i;

        atomic_store(&b->tid, (int)syscall(SYS_gettid));
        pthread_barrier_wait(&b->started);
        for (i = 0; i < 2; i++) {
                b->s[i] = SNAPSHOT_SENTINEL;
                b->r[i] = ev_watcher_wait(b->w, -1, -1, &b->s[i]);
                atomic_store(&b->returned, true);
        }
        return NULL;
}

/* Whether thread tid sleeps in a poll-like system call: the handshake that
 * says the wait has really blocked before the test wakes it.  Reading
 * /proc replaces a sleep of a guessed length. */
static bool thread_blocked_in_poll(int tid) {
        static const long poll_calls[] = {
                SYS_ppoll,
#ifdef SYS_poll
                SYS_poll,
#endif
#ifdef SYS_epoll_wait
                SYS_epoll_wait,
#endif
                SYS_epoll_pwait,
                SYS_pselect6,
#ifdef SYS_select
                SYS_select,
#endif
        };
        char path[64];
        long nr;
        size_t i;
        FILE *f;
        int n;

        snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", tid);
        f = fopen(path, "re");
        if (!f)
                return false;
        n = fscanf(f, "%ld", &nr);
        fclose(f);
        if (n != 1)
                return false; /* "running" */
        for (i = 0; i < sizeof(poll_calls) / sizeof(poll_calls[0]); i++)
                if (nr == poll_calls[i])
                        return true;
        return false;
}

/* Start wait_main on w and return once it is blocked (or after 3 s, if
 * /proc cannot tell: the test then still checks the result, only the
 * ordering is no longer certain). */
static void start_blocked_wait(struct blocked_wait *b, pthread_t *thread, ev_value_watcher *w) {
        const struct timespec tick = { .tv_nsec = 1000000 };
        int i;

        memset(b, 0, sizeof(*b));
        b->w = w;
        cr_assert_eq(pthread_barrier_init(&b->started, NULL, 2), 0);
        cr_assert_eq(pthread_create(thread, NULL, wait_main, b), 0);
        pthread_barrier_wait(&b->started);
        for (i = 0; i < 3000 && !thread_blocked_in_poll(atomic_load(&b->tid)); i++)
                nanosleep(&tick, NULL);
        if (i == 3000)
                cr_log_warn("could not see the waiting thread block; going on");
        cr_assert_not(atomic_load(&b->returned), "ev_watcher_wait(-1) returned without cause");
}

static void join_blocked_wait(struct blocked_wait *b, pthread_t thread) {
        pthread_join(thread, NULL);
        pthread_barrier_destroy(&b->started);
}

Test(close, close_wakes_a_watcher_blocked_in_wait_forever, .timeout = 10) {
        struct blocked_wait b;
        pthread_t thread;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "seen");
        w = watch_consumed_or_fail(v);
        start_blocked_wait(&b, &thread, w);
        close_or_fail(v);
        join_blocked_wait(&b, thread);
        cr_assert_eq(b.r[0], -EPIPE);
        cr_assert_eq(b.s[0], SNAPSHOT_SENTINEL);
        cr_assert_eq(b.r[1], -EPIPE);
        cr_assert_eq(b.s[1], SNAPSHOT_SENTINEL);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
}

Test(close, close_wakes_a_wait_on_a_never_set_value, .timeout = 10) {
        struct blocked_wait b;
        pthread_t thread;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        start_blocked_wait(&b, &thread, w);
        close_or_fail(v);
        join_blocked_wait(&b, thread);
        cr_assert_eq(b.r[0], -EPIPE);
        cr_assert_eq(b.s[0], SNAPSHOT_SENTINEL);
        cr_assert_eq(b.r[1], -EPIPE);
}

Test(close, set_then_close_while_blocked_delivers_the_snapshot_then_epipe, .timeout = 10) {
        struct blocked_wait b;
        pthread_t thread;
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "seen");
        w = watch_consumed_or_fail(v);
        start_blocked_wait(&b, &thread, w);
        /* Whether the waiter wakes before or after the close, the unseen
         * snapshot comes first. */
        set_string_or_fail(v, "last");
        close_or_fail(v);
        join_blocked_wait(&b, thread);
        cr_assert_eq(b.r[0], 0, "first wait: %s", strerror(-b.r[0]));
        assert_snapshot_is_string(b.s[0], 2, "last");
        ev_snapshot_unref(b.s[0]);
        cr_assert_eq(b.r[1], -EPIPE);
        cr_assert_eq(b.s[1], SNAPSHOT_SENTINEL);
}

/* ------------------------------------------------ wait on a closed watcher */

Test(close, wait_on_closed_watcher_that_saw_everything_gives_epipe_even_with_timeout_zero,
     .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;

        set_string_or_fail(v, "final");
        w = watch_consumed_or_fail(v);
        close_or_fail(v);
        wait_fails_with(w, 0, -1, -EPIPE);
        wait_fails_with(w, 0, -1, -EPIPE);
        wait_fails_with(w, -1, -1, -EPIPE);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
}

Test(close, wait_on_closed_watcher_that_saw_everything_gives_epipe_before_ecanceled,
     .timeout = 10) {
        static const int timeouts[] = { 0, 100, -1 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w;
        int cancel = eventfd(1, EFD_CLOEXEC); /* readable from the start */
        int pipefd[2];
        size_t i;

        cr_assert_geq(cancel, 0);
        cr_assert_eq(pipe(pipefd), 0);
        close(pipefd[1]); /* a pipe whose writer is gone: POLLHUP */
        set_string_or_fail(v, "final");
        w = watch_consumed_or_fail(v);
        close_or_fail(v);
        for (i = 0; i < sizeof(timeouts) / sizeof(timeouts[0]); i++) {
                ev_value_snapshot *s = SNAPSHOT_SENTINEL;

                cr_assert_eq(ev_watcher_wait(w, timeouts[i], cancel, &s), -EPIPE,
                             "timeout %d, eventfd", timeouts[i]);
                cr_assert_eq(ev_watcher_wait(w, timeouts[i], pipefd[0], &s), -EPIPE,
                             "timeout %d, hung-up pipe", timeouts[i]);
                cr_assert_eq(s, SNAPSHOT_SENTINEL);
        }
        /* The library never reads the cancel fd. */
        cr_assert(fd_readable(cancel));
        ev_watcher_close(w);
        ev_value_unref(v);
        close(cancel);
        close(pipefd[0]);
}

Test(close, wait_on_closed_watcher_returns_an_unseen_snapshot_before_epipe_and_ecanceled,
     .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(closep) int cancel = eventfd(1, EFD_CLOEXEC);

        cr_assert_geq(cancel, 0);
        set_string_or_fail(v, "final");
        close_or_fail(v);
        wait_string_or_fail(w, 0, cancel, 1, "final");
        wait_fails_with(w, 0, cancel, -EPIPE);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
}
