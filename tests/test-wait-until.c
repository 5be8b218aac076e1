/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ev_watcher_wait_until: it waits like ev_watcher_wait and
 * returns the first snapshot its predicate accepts, offering the predicate
 * the newest snapshot at each wake (intermediate versions are skipped) and
 * consuming every snapshot it rejects, released at once; one deadline
 * covers the whole call, so a producer that keeps setting rejected values
 * cannot stretch it, and after each rejection the cancel fd and the
 * deadline come before the next snapshot; cancel fd, bad cancel fds and the
 * precedence of snapshot, closed value, cancel and timeout are those of
 * ev_watcher_wait; a closed value whose last snapshot was seen or rejected
 * gives -EPIPE; the predicate runs without the value's lock, so it may peek
 * and set the value; and the errors of its own: a NULL predicate, a
 * shared-fd watcher (-EOPNOTSUPP), a get or wait in progress (-EBUSY),
 * including a get on the same watcher from inside the predicate.  Producers
 * run on other threads and pace themselves on what the predicate has seen,
 * not on sleeps.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* ------------------------------------------------------------- helpers */

/* A predicate's state: accepts snapshots of version >= min_version (never
 * when min_version is 0) and records every call. */
#define MAX_CALLS 64

struct pred_log {
        uint64_t min_version;
        void *userdata;                     /* as the predicate got it */
        atomic_int calls;
        _Atomic uint64_t last_version;      /* of the last snapshot offered */
        uint64_t versions[MAX_CALLS];       /* offered, in order */
};

static bool version_at_least(const ev_value_snapshot *s, void *userdata) {
        struct pred_log *p = userdata;
        int n = atomic_load(&p->calls);

        p->userdata = userdata;
        if (n < MAX_CALLS)
                p->versions[n] = ev_snapshot_version(s);
        atomic_store(&p->last_version, ev_snapshot_version(s));
        atomic_fetch_add(&p->calls, 1);
        return p->min_version > 0 && ev_snapshot_version(s) >= p->min_version;
}

/* The predicate that rejects everything. */
#define REJECT_ALL 0

/* Asserts that ev_watcher_wait_until succeeds with version and str; drops the snapshot. */
static void wait_until_string_or_fail(ev_value_watcher *w, struct pred_log *p, int timeout_ms,
                                      int cancel_fd, uint64_t version, const char *str) {
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_wait_until(w, version_at_least, p, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, 0, "ev_watcher_wait_until(%d, %d): %s", timeout_ms, cancel_fd, strerror(-r));
        assert_snapshot_is_string(s, version, str);
}

/* Asserts that ev_watcher_wait_until fails with error and leaves its output alone. */
static void wait_until_fails_with(ev_value_watcher *w, struct pred_log *p, int timeout_ms,
                                  int cancel_fd, int error) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_wait_until(w, version_at_least, p, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, error, "ev_watcher_wait_until(%d, %d): got %d (%s), expected %d (%s)",
                     timeout_ms, cancel_fd, r, strerror(-r), error, strerror(-error));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_watcher_wait_until wrote *ret");
}

/* Waits until the predicate has been offered version (THREAD_REACH_MS at
 * most); asserts nothing, so a producer thread may call it.  Returns
 * whether it was. */
static bool await_offered(struct pred_log *p, uint64_t version) {
        int64_t deadline = now_ms() + THREAD_REACH_MS;

        while (atomic_load(&p->last_version) < version) {
                if (now_ms() >= deadline)
                        return false;
                pause_briefly();
        }
        return true;
}

/* --------------------------------------------------------- acceptance */

Test(wait_until, returns_an_accepted_unseen_snapshot_at_once, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        int64_t start;

        set_string_or_fail(v, "ready");
        start = now_ms();
        wait_until_string_or_fail(w, &p, 5000, -1, 1, "ready");
        cr_assert_lt(now_ms() - start, 1000, "an accepted unseen snapshot blocked the wait");
        cr_assert_eq(atomic_load(&p.calls), 1);
        cr_assert_eq(p.userdata, &p, "the predicate did not get the userdata");
        /* Consumed, as by a get. */
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        get_fails_with(w, -EAGAIN);
}

Test(wait_until, offers_only_the_newest_snapshot_at_each_wake, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        int i;

        for (i = 0; i < 5; i++)
                set_string_or_fail(v, i < 4 ? "older" : "newest");
        wait_until_string_or_fail(w, &p, 0, -1, 5, "newest");
        cr_assert_eq(atomic_load(&p.calls), 1, "the predicate saw intermediate versions");
        cr_assert_eq(p.versions[0], 5);
}

Test(wait_until, rejected_snapshots_are_consumed, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = REJECT_ALL };

        set_string_or_fail(v, "rejected");
        wait_until_fails_with(w, &p, 0, -1, -ETIMEDOUT);
        cr_assert_eq(atomic_load(&p.calls), 1);
        cr_assert_eq(p.versions[0], 1);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "a rejected snapshot left the fd readable");
        get_fails_with(w, -EAGAIN);
        /* Not offered again either. */
        wait_until_fails_with(w, &p, 0, -1, -ETIMEDOUT);
        cr_assert_eq(atomic_load(&p.calls), 1, "a rejected snapshot was offered twice");
}

Test(wait_until, rejected_snapshots_are_released, .timeout = 10) {
        struct destroy_log log = { 0 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = REJECT_ALL };
        char *data = strdup_or_fail("rejected");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        wait_until_fails_with(w, &p, 0, -1, -ETIMEDOUT);
        cr_assert_eq(atomic_load(&log.calls), 0);
        /* Replaced: the rejection kept no reference. */
        set_string_or_fail(v, "next");
        cr_assert_eq(atomic_load(&log.calls), 1, "the rejected snapshot is still referenced");
}

/* A producer that sets versions 1..last, each only once the predicate has
 * been offered the one before, so that every version is offered. */
struct paced_producer {
        ev_value *v;
        struct pred_log *p;
        uint64_t last;
        bool close_after; /* close the value once last was offered */
        int failures;
};

static void *paced_producer_main(void *arg) {
        struct paced_producer *t = arg;
        uint64_t version;

        for (version = 1; version <= t->last; version++) {
                if (ev_value_set(t->v, &version, sizeof(version)) != 0 ||
                    !await_offered(t->p, version)) {
                        t->failures++;
                        return NULL;
                }
        }
        if (t->close_after && ev_value_close(t->v) != 0)
                t->failures++;
        return NULL;
}

Test(wait_until, waits_through_rejected_sets_until_the_predicate_accepts, .timeout = 20) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 8 };
        struct paced_producer t = { .v = v, .p = &p, .last = 8 };
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        pthread_t thread;
        uint64_t i, payload;
        int r;

        cr_assert_eq(pthread_create(&thread, NULL, paced_producer_main, &t), 0);
        r = ev_watcher_wait_until(w, version_at_least, &p, -1, -1, &s);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.failures, 0, "the producer failed or was never answered");
        cr_assert_eq(r, 0, "ev_watcher_wait_until: %s", strerror(-r));
        cr_assert_eq(ev_snapshot_version(s), 8);
        cr_assert_eq(ev_snapshot_size(s), sizeof(payload));
        memcpy(&payload, ev_snapshot_data(s), sizeof(payload));
        cr_assert_eq(payload, 8);
        ev_snapshot_unref(s);
        /* Each version was offered once, in order: 1..7 rejected, 8 accepted. */
        cr_assert_eq(atomic_load(&p.calls), 8);
        for (i = 0; i < 8; i++)
                cr_assert_eq(p.versions[i], i + 1, "call %" PRIu64 " offered version %" PRIu64,
                             i, p.versions[i]);
        /* The rejected ones were consumed along the way: nothing is left. */
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

/* ------------------------------------------------------------ deadline */

struct steady_producer {
        ev_value *v;
        atomic_bool stop;
        atomic_int sets;
};

/* Sets a value every 20 ms until told to stop. */
static void *steady_producer_main(void *arg) {
        struct steady_producer *t = arg;
        struct timespec period = { .tv_sec = 0, .tv_nsec = 20 * 1000 * 1000 };

        while (!atomic_load(&t->stop)) {
                if (ev_value_set(t->v, "rejected", sizeof("rejected")) == 0)
                        atomic_fetch_add(&t->sets, 1);
                nanosleep(&period, NULL);
        }
        return NULL;
}

Test(wait_until, rejections_do_not_restart_the_timeout, .timeout = 20) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = REJECT_ALL };
        struct steady_producer t = { .v = v };
        int64_t start, elapsed;
        pthread_t thread;

        cr_assert_eq(pthread_create(&thread, NULL, steady_producer_main, &t), 0);
        /* A restarted timeout would never expire while the producer runs:
         * the test's own timeout would catch it. */
        start = now_ms();
        wait_until_fails_with(w, &p, 200, -1, -ETIMEDOUT);
        elapsed = now_ms() - start;
        atomic_store(&t.stop, true);
        cr_assert_eq(pthread_join(thread, NULL), 0);

        cr_assert_geq(elapsed, 200, "timed out after %" PRId64 " ms, before 200 ms", elapsed);
        cr_assert_lt(elapsed, 2000, "a 200 ms wait through rejections took %" PRId64 " ms", elapsed);
        cr_assert_geq(atomic_load(&p.calls), 2, "only %d snapshots were offered: the test proves nothing",
                      atomic_load(&p.calls));
}

Test(wait_until, times_out_with_nothing_set_no_earlier_than_asked, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        int64_t start, elapsed;

        start = now_ms();
        wait_until_fails_with(w, &p, 100, -1, -ETIMEDOUT);
        elapsed = now_ms() - start;
        cr_assert_geq(elapsed, 100, "timed out after %" PRId64 " ms, before 100 ms", elapsed);
        cr_assert_lt(elapsed, 2000, "a 100 ms timeout took %" PRId64 " ms", elapsed);
        cr_assert_eq(atomic_load(&p.calls), 0, "the predicate ran with nothing set");
}

Test(wait_until, watcher_is_usable_after_etimedout_and_ecanceled, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 3 };
        int cancel = eventfd_or_fail();

        set_string_or_fail(v, "one");
        wait_until_fails_with(w, &p, 10, -1, -ETIMEDOUT);
        set_string_or_fail(v, "two");
        eventfd_write_one(cancel);
        wait_until_fails_with(w, &p, -1, cancel, -ECANCELED);
        close(cancel);

        set_string_or_fail(v, "three");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        wait_until_string_or_fail(w, &p, 1000, -1, 3, "three");
        set_string_or_fail(v, "four");
        get_string_or_fail(w, 4, "four");
}

/* ------------------------------------------------ cancel and precedence */

Test(wait_until, a_readable_cancel_fd_cancels_after_a_rejection, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = REJECT_ALL };
        _cleanup_(closep) int cancel = eventfd_or_fail();

        set_string_or_fail(v, "rejected");
        eventfd_write_one(cancel);
        /* The unseen snapshot comes first, then the cancel. */
        wait_until_fails_with(w, &p, -1, cancel, -ECANCELED);
        cr_assert_eq(atomic_load(&p.calls), 1);
        get_fails_with(w, -EAGAIN);
        /* The library never reads the cancel fd. */
        cr_assert(fd_readable(cancel));
}

Test(wait_until, an_accepted_snapshot_wins_over_a_readable_cancel_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        _cleanup_(closep) int cancel = eventfd_or_fail();

        eventfd_write_one(cancel);
        set_string_or_fail(v, "accepted");
        wait_until_string_or_fail(w, &p, 0, cancel, 1, "accepted");
}

Test(wait_until, a_readable_cancel_fd_wins_over_an_expired_timeout, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        _cleanup_(closep) int cancel = eventfd_or_fail();

        eventfd_write_one(cancel);
        wait_until_fails_with(w, &p, 0, cancel, -ECANCELED);
        set_string_or_fail(v, "rejected"); /* version 1 < 2 */
        p.min_version = 2;
        wait_until_fails_with(w, &p, 0, cancel, -ECANCELED);
        cr_assert_eq(atomic_load(&p.calls), 1);
}

Test(wait_until, a_closed_value_wins_over_a_readable_cancel_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        _cleanup_(closep) int cancel = eventfd_or_fail();

        set_string_or_fail(v, "seen");
        ev_snapshot_unref(get_or_fail(w));
        close_or_fail(v);
        eventfd_write_one(cancel);
        wait_until_fails_with(w, &p, 0, cancel, -EPIPE);
        wait_until_fails_with(w, &p, -1, cancel, -EPIPE);
        cr_assert_eq(atomic_load(&p.calls), 0);
}

struct canceller {
        struct pred_log *p;
        int cancel_fd;
        bool offered;
        bool written;
};

/* Writes the cancel fd once the predicate has rejected version 1. */
static void *canceller_main(void *arg) {
        struct canceller *t = arg;
        uint64_t one = 1;

        t->offered = await_offered(t->p, 1);
        t->written = write(t->cancel_fd, &one, sizeof(one)) == (ssize_t)sizeof(one);
        return NULL;
}

Test(wait_until, a_cancel_fd_written_during_the_wait_cancels_it, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 2 };
        struct canceller t = { .p = &p, .cancel_fd = eventfd_or_fail() };
        pthread_t thread;

        set_string_or_fail(v, "rejected");
        cr_assert_eq(pthread_create(&thread, NULL, canceller_main, &t), 0);
        wait_until_fails_with(w, &p, -1, t.cancel_fd, -ECANCELED);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert(t.offered, "the predicate never saw version 1");
        cr_assert(t.written);

        close(t.cancel_fd);
}

Test(wait_until, a_pipe_whose_write_end_closed_cancels, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        int fds[2];

        cr_assert_eq(pipe2(fds, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
        close(fds[1]);
        wait_until_fails_with(w, &p, -1, fds[0], -ECANCELED);

        close(fds[0]);
}

Test(wait_until, a_cancel_fd_that_is_not_open_gives_ebadf, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        int closed_fd = eventfd_or_fail();

        close(closed_fd);
        wait_until_fails_with(w, &p, 1000, closed_fd, -EBADF);
        /* Nothing was consumed: a snapshot set now is there for a get. */
        set_string_or_fail(v, "after");
        get_string_or_fail(w, 1, "after");
}

Test(wait_until, a_cancel_fd_below_minus_one_gives_einval_and_consumes_nothing, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };

        set_string_or_fail(v, "pending");
        wait_until_fails_with(w, &p, 0, -2, -EINVAL);
        wait_until_fails_with(w, &p, 0, INT32_MIN, -EINVAL);
        cr_assert_eq(atomic_load(&p.calls), 0);
        get_string_or_fail(w, 1, "pending");
}

/* A predicate that, offered version 1, peeks the value, sets version 2
 * and optionally writes a cancel fd, then rejects it; it accepts the rest. */
struct setting_pred {
        ev_value *v;
        int cancel_fd;        /* -1: none to write */
        atomic_int calls;
        int peek_r;
        uint64_t peek_version;
        int set_r;
};

static bool set_on_first(const ev_value_snapshot *s, void *userdata) {
        struct setting_pred *p = userdata;
        ev_value_snapshot *peeked = NULL;
        uint64_t one = 1;

        atomic_fetch_add(&p->calls, 1);
        if (ev_snapshot_version(s) != 1)
                return true;
        p->peek_r = ev_value_get(p->v, &peeked);
        p->peek_version = ev_snapshot_version(peeked);
        ev_snapshot_unref(peeked);
        p->set_r = ev_value_set(p->v, "from pred", sizeof("from pred"));
        if (p->cancel_fd >= 0 && write(p->cancel_fd, &one, sizeof(one)) != (ssize_t)sizeof(one))
                p->set_r = -EIO;
        return false;
}

Test(wait_until, the_predicate_may_peek_and_set_the_same_value, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct setting_pred p = { .v = v, .cancel_fd = -1 };
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r;

        set_string_or_fail(v, "one");
        r = ev_watcher_wait_until(w, set_on_first, &p, -1, -1, &s);
        cr_assert_eq(r, 0, "ev_watcher_wait_until: %s", strerror(-r));
        cr_assert_eq(p.peek_r, 0, "peek from the predicate: %s", strerror(-p.peek_r));
        cr_assert_eq(p.peek_version, 1);
        cr_assert_eq(p.set_r, 0, "set from the predicate: %s", strerror(-p.set_r));
        assert_snapshot_is_string(s, 2, "from pred");
        cr_assert_eq(atomic_load(&p.calls), 2);
}

/* Asserts that ev_watcher_wait_until(set_on_first) fails with error and
 * leaves its output alone. */
static void set_on_first_fails_with(ev_value_watcher *w, struct setting_pred *p, int timeout_ms,
                                    int cancel_fd, int error) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_wait_until(w, set_on_first, p, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, error, "ev_watcher_wait_until(%d, %d): got %d (%s), expected %d (%s)",
                     timeout_ms, cancel_fd, r, strerror(-r), error, strerror(-error));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_watcher_wait_until wrote *ret");
        cr_assert_eq(p->set_r, 0, "set from the predicate: %s", strerror(-p->set_r));
}

/* Were the next snapshot tested before the cancel fd and the deadline, a
 * producer that keeps setting rejected states could hold the call forever. */
Test(wait_until, after_a_rejection_a_readable_cancel_fd_wins_over_a_newer_snapshot, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct setting_pred p = { .v = v, .cancel_fd = eventfd_or_fail() };

        set_string_or_fail(v, "one");
        set_on_first_fails_with(w, &p, -1, p.cancel_fd, -ECANCELED);
        cr_assert_eq(atomic_load(&p.calls), 1, "the newer snapshot was tested after the cancel");
        /* It was not consumed either: the next get returns it. */
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "from pred");

        close(p.cancel_fd);
}

Test(wait_until, after_a_rejection_an_expired_deadline_wins_over_a_newer_snapshot, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct setting_pred p = { .v = v, .cancel_fd = -1 };

        set_string_or_fail(v, "one");
        /* Timeout 0: the deadline has passed once the predicate returns. */
        set_on_first_fails_with(w, &p, 0, -1, -ETIMEDOUT);
        cr_assert_eq(atomic_load(&p.calls), 1, "the newer snapshot was tested after the deadline");
        get_string_or_fail(w, 2, "from pred");
}

/* ---------------------------------------------------------- closed value */

Test(wait_until, a_closed_value_whose_last_snapshot_was_seen_gives_epipe, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *never = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *wn = watch_or_fail(never);
        struct pred_log p = { .min_version = 1 };

        set_string_or_fail(v, "last");
        wait_until_string_or_fail(w, &p, 0, -1, 1, "last");
        close_or_fail(v);
        wait_until_fails_with(w, &p, -1, -1, -EPIPE);
        wait_until_fails_with(w, &p, 0, -1, -EPIPE);

        close_or_fail(never);
        wait_until_fails_with(wn, &p, -1, -1, -EPIPE);
        cr_assert_eq(atomic_load(&p.calls), 1);
}

Test(wait_until, an_unseen_last_snapshot_is_offered_first_on_a_closed_value, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *accept = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *reject = watch_or_fail(v);
        struct pred_log pa = { .min_version = 1 }, pr = { .min_version = REJECT_ALL };

        set_string_or_fail(v, "last");
        close_or_fail(v);
        wait_until_string_or_fail(accept, &pa, -1, -1, 1, "last");
        wait_until_fails_with(accept, &pa, -1, -1, -EPIPE);
        /* Rejected, the last snapshot is consumed like any: then -EPIPE. */
        wait_until_fails_with(reject, &pr, -1, -1, -EPIPE);
        cr_assert_eq(atomic_load(&pr.calls), 1);
        get_fails_with(reject, -EPIPE);
}

/* Rejected, the final state of a closed value is seen: from then on the
 * closed value comes before a readable cancel fd and an expired deadline,
 * as at every wake of ev_watcher_wait. */
Test(wait_until, a_rejected_final_state_gives_epipe_before_cancel_and_timeout, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *cancelled = watch_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *expired = watch_or_fail(v);
        struct pred_log p = { .min_version = REJECT_ALL };
        _cleanup_(closep) int cancel = eventfd_or_fail();

        set_string_or_fail(v, "final");
        close_or_fail(v);
        eventfd_write_one(cancel);
        wait_until_fails_with(cancelled, &p, -1, cancel, -EPIPE);
        wait_until_fails_with(expired, &p, 0, -1, -EPIPE);
        cr_assert_eq(atomic_load(&p.calls), 2);
        get_fails_with(cancelled, -EPIPE);
        get_fails_with(expired, -EPIPE);
}

Test(wait_until, a_close_after_the_last_snapshot_was_rejected_gives_epipe, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = REJECT_ALL };
        struct paced_producer t = { .v = v, .p = &p, .last = 3, .close_after = true };
        pthread_t thread;

        cr_assert_eq(pthread_create(&thread, NULL, paced_producer_main, &t), 0);
        wait_until_fails_with(w, &p, -1, -1, -EPIPE);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.failures, 0, "the producer failed or was never answered");
        cr_assert_eq(atomic_load(&p.calls), 3);
        get_fails_with(w, -EPIPE);
}

/* ---------------------------------------------------------- own errors */

Test(wait_until, null_predicate_watcher_or_ret_gives_einval_and_consumes_nothing) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;

        set_string_or_fail(v, "pending");
        cr_assert_eq(ev_watcher_wait_until(w, NULL, &p, 0, -1, &s), -EINVAL);
        cr_assert_eq(ev_watcher_wait_until(w, NULL, NULL, -1, -1, &s), -EINVAL);
        cr_assert_eq(ev_watcher_wait_until(NULL, version_at_least, &p, 0, -1, &s), -EINVAL);
        cr_assert_eq(ev_watcher_wait_until(w, version_at_least, &p, 0, -1, NULL), -EINVAL);
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_watcher_wait_until wrote *ret");
        cr_assert_eq(atomic_load(&p.calls), 0);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 1, "pending");
}

Test(wait_until, shared_fd_watcher_gives_eopnotsupp_and_consumes_nothing) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        struct pred_log p = { .min_version = 1 };

        set_string_or_fail(v, "pending");
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &w), 0);
        wait_until_fails_with(w, &p, 0, -1, -EOPNOTSUPP);
        wait_until_fails_with(w, &p, -1, -1, -EOPNOTSUPP);
        cr_assert_eq(atomic_load(&p.calls), 0);
        get_string_or_fail(w, 1, "pending");
}

Test(wait_until, a_wait_in_progress_on_the_watcher_gives_ebusy, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        struct waiter t;
        pthread_t thread;

        waiter_start(&t, &thread, w, -1, -1);
        wait_until_busy(w);
        wait_until_fails_with(w, &p, 0, -1, -EBUSY);
        wait_until_fails_with(w, &p, -1, -1, -EBUSY);
        cr_assert_eq(atomic_load(&p.calls), 0);
        /* The wait in progress was not disturbed: it gets the next set. */
        set_string_or_fail(v, "for the waiter");
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0, "ev_watcher_wait: %s", strerror(-t.r));
        assert_snapshot_is_string(t.s, 1, "for the waiter");
        ev_snapshot_unref(t.s);
}

/* wait_until on another thread, retried while it gives -EBUSY (the test's
 * probes can hold the watcher at the instant it starts). */
struct until_waiter {
        ev_value_watcher *w;
        struct pred_log *p;
        ev_value_snapshot *s;
        int r;
};

static void *until_waiter_main(void *arg) {
        struct until_waiter *t = arg;

        do
                t->r = ev_watcher_wait_until(t->w, version_at_least, t->p, -1, -1, &t->s);
        while (t->r == -EBUSY);
        return NULL;
}

Test(wait_until, a_get_or_wait_during_wait_until_gives_ebusy, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct pred_log p = { .min_version = 1 };
        struct until_waiter t = { .w = w, .p = &p, .s = SNAPSHOT_SENTINEL };
        pthread_t thread;

        cr_assert_eq(pthread_create(&thread, NULL, until_waiter_main, &t), 0);
        wait_until_busy(w);
        get_fails_with(w, -EBUSY);
        wait_fails_with(w, 0, -1, -EBUSY);
        set_string_or_fail(v, "accepted");
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0, "ev_watcher_wait_until: %s", strerror(-t.r));
        assert_snapshot_is_string(t.s, 1, "accepted");
        ev_snapshot_unref(t.s);
}

/* A predicate that tries a get and a wait on its own watcher: both must
 * give -EBUSY, since the predicate runs while the wait holds it. */
struct reentrant {
        ev_value_watcher *w;
        int get_r;
        int wait_r;
        ev_value_snapshot *s;
};

static bool get_inside(const ev_value_snapshot *snapshot, void *userdata) {
        struct reentrant *t = userdata;

        (void)snapshot;
        t->get_r = ev_watcher_get(t->w, &t->s);
        t->wait_r = ev_watcher_wait(t->w, 0, -1, &t->s);
        return true;
}

Test(wait_until, a_get_on_the_same_watcher_inside_the_predicate_gives_ebusy, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct reentrant t = { .w = w, .s = SNAPSHOT_SENTINEL };
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;

        set_string_or_fail(v, "one");
        set_string_or_fail(v, "two");
        cr_assert_eq(ev_watcher_wait_until(w, get_inside, &t, 0, -1, &s), 0);
        cr_assert_eq(t.get_r, -EBUSY, "get inside the predicate: %d (%s)", t.get_r, strerror(-t.get_r));
        cr_assert_eq(t.wait_r, -EBUSY, "wait inside the predicate: %d (%s)", t.wait_r,
                     strerror(-t.wait_r));
        cr_assert_eq(t.s, SNAPSHOT_SENTINEL);
        assert_snapshot_is_string(s, 2, "two");
        ev_snapshot_unref(s);
        /* The watcher is released once the wait returns. */
        get_fails_with(w, -EAGAIN);
}
