/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of <ev-value-uring.h>: watchers waited for with io_uring poll
 * requests, driven the way a reactor drives them.  A single-shot poll
 * completes once the watcher has something unseen and is re-armed after
 * every CQE; a multishot poll posts one CQE, with IORING_CQE_F_MORE, each
 * time the library writes the eventfd, and is re-armed after a CQE without
 * that flag (a removal, a full completion queue).  Sets made while the
 * consumer is away make one CQE and one snapshot, the newest.  A CQE may
 * come when nothing is new (the consumer took the update before the ring
 * ran the wake-up); the get then says -EAGAIN.  A close of the value
 * completes the poll and leaves the fd readable, so a single-shot re-arm
 * completes at once.  A poll is removed, and both CQEs reaped, before
 * ev_watcher_close; one that is not outlives the watcher.  Reading the
 * eventfd with IORING_OP_READ instead of polling it is wrong on every
 * kernel.  Last, 1,000 watchers share one ring.  Every test that needs a
 * ring skips, saying so, when the kernel refuses io_uring.
 *
 * Without IORING_SETUP_DEFER_TASKRUN or COOP_TASKRUN the kernel posts a
 * poll's CQE before the write(2) that woke it returns, so a set made on the
 * test's own thread has its CQEs in the ring when ev_value_set returns: the
 * tests wait MUST_COME_MS for what must come only to survive a slow
 * machine, and MUST_NOT_COME_MS for what must not come as a margin.
 */
#include <errno.h>
#include <inttypes.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "ev-value-uring.h"
#include "helpers.h"

#define MUST_COME_MS 5000
#define MUST_NOT_COME_MS 100

/* user_data of the requests in the small tests; the large one uses pointers. */
#define UD_POLL UINT64_C(0x9011)
#define UD_REMOVE UINT64_C(0x7e30)
#define UD_READ UINT64_C(0x7ead)

/* A reaped CQE. */
struct cqe {
        uint64_t user_data;
        int32_t res;
        uint32_t flags;
};

/* ------------------------------------------------------------ the fixture */

/* What a test works on, one of each per test process: the ring (ring_up
 * once set up), and a value v with a watcher w.  A test's .init (the
 * set-ups below the helpers) or its body makes them; the suite's .fini,
 * fixture_fini, releases whatever is there, after the test ends or an
 * assertion fails.  A test that makes them more than once calls
 * fixture_fini itself in between. */
static struct io_uring ring;
static bool ring_up;
static ev_value *v;
static ev_value_watcher *w;

/* Releases w, v and the ring, each if there; the state is then empty. */
static void fixture_fini(void) {
        w = ev_watcher_close(w);
        v = ev_value_unref(v);
        if (ring_up)
                io_uring_queue_exit(&ring);
        ring_up = false;
}

TestSuite(uring, .fini = fixture_fini);

/* Skips the test when io_uring_setup fails with r the way a kernel that
 * refuses io_uring makes it fail; asserts that it succeeded otherwise. */
static void ring_setup_ok_or_skip(int r, unsigned entries) {
        if (r == -ENOSYS || r == -EPERM)
                cr_skip_test("the kernel refuses io_uring (io_uring_setup: %s): not built in, "
                             "disabled by kernel.io_uring_disabled, or forbidden by a seccomp "
                             "policy; nothing to test",
                             strerror(-r));
        cr_assert_eq(r, 0, "io_uring_queue_init(%u): %s", entries, strerror(-r));
        ring_up = true;
}

/* The ring with default flags, or a skipped test. */
static void ring_init_or_skip(unsigned entries) {
        ring_setup_ok_or_skip(io_uring_queue_init(entries, &ring, 0), entries);
}

/* ------------------------------------------------------------ the ring */

/* The next SQE, submitting what is queued when the SQ ring is full. */
static struct io_uring_sqe *sqe_or_fail(void) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&ring);

        if (!sqe) {
                int r = io_uring_submit(&ring);

                cr_assert_gt(r, 0, "io_uring_submit of a full SQ ring: %d (%s)", r,
                             r < 0 ? strerror(-r) : "nothing submitted");
                sqe = io_uring_get_sqe(&ring);
        }
        cr_assert_not_null(sqe, "no SQE after submitting the full SQ ring");
        return sqe;
}

/* Asserts that io_uring_submit submits n SQEs. */
static void submit_or_fail(int n) {
        int r = io_uring_submit(&ring);

        cr_assert_eq(r, n, "io_uring_submit: %d (%s), expected %d", r, r < 0 ? strerror(-r) : "", n);
}

/* Queues a poll of w, multishot or not, with user_data ud (not submitted). */
static void arm(ev_value_watcher *watcher, uint64_t ud, bool multishot) {
        struct io_uring_sqe *sqe = sqe_or_fail();
        int r = multishot ? ev_watcher_prep_poll_multishot(sqe, watcher, ud)
                          : ev_watcher_prep_poll(sqe, watcher, ud);

        cr_assert_eq(r, 0, "ev_watcher_prep_poll%s: %s", multishot ? "_multishot" : "", strerror(-r));
}

/* Arms a poll of w and submits it. */
static void arm_and_submit(ev_value_watcher *watcher, uint64_t ud, bool multishot) {
        arm(watcher, ud, multishot);
        submit_or_fail(1);
}

/* Reaps the next CQE into *ret, waiting up to timeout_ms (0: only a peek);
 * false when none came. */
static bool next_cqe(int timeout_ms, struct cqe *ret) {
        struct __kernel_timespec ts = {
                .tv_sec = timeout_ms / 1000,
                .tv_nsec = (long long)(timeout_ms % 1000) * 1000000,
        };
        struct io_uring_cqe *cqe = NULL;
        int r;

        do
                r = timeout_ms == 0 ? io_uring_peek_cqe(&ring, &cqe)
                                    : io_uring_wait_cqe_timeout(&ring, &cqe, &ts);
        while (r == -EINTR);
        if (r == -ETIME || r == -EAGAIN)
                return false;
        cr_assert_eq(r, 0, "waiting for a CQE: %s", strerror(-r));
        cr_assert_not_null(cqe);
        ret->user_data = cqe->user_data;
        ret->res = cqe->res;
        ret->flags = cqe->flags;
        io_uring_cqe_seen(&ring, cqe);
        return true;
}

/* Asserts that a CQE comes within MUST_COME_MS; returns it. */
static struct cqe any_cqe_or_fail(const char *why) {
        struct cqe c;

        cr_assert(next_cqe(MUST_COME_MS, &c), "no CQE within %d ms: %s", MUST_COME_MS, why);
        return c;
}

/* Asserts that the next CQE is the one of the poll ud, reporting POLLIN,
 * with IORING_CQE_F_MORE exactly when more is true. */
static void poll_cqe_or_fail(uint64_t ud, bool more, const char *why) {
        struct cqe c = any_cqe_or_fail(why);

        cr_assert_eq(c.user_data, ud, "CQE with user_data 0x%" PRIx64 ", expected 0x%" PRIx64 " (%s)",
                     c.user_data, ud, why);
        cr_assert(c.res > 0 && (c.res & POLLIN), "poll CQE res %d (%s), expected POLLIN (%s)",
                  c.res, c.res < 0 ? strerror(-c.res) : "a mask", why);
        cr_assert_eq(!!(c.flags & IORING_CQE_F_MORE), more, "poll CQE flags 0x%x: F_MORE %s (%s)",
                     c.flags, more ? "missing" : "set on a poll that ended", why);
}

/* Asserts that no CQE comes within MUST_NOT_COME_MS. */
static void no_cqe_or_fail(const char *why) {
        struct cqe c;

        if (next_cqe(MUST_NOT_COME_MS, &c))
                cr_assert_fail("unexpected CQE (user_data 0x%" PRIx64 ", res %d, flags 0x%x): %s",
                               c.user_data, c.res, c.flags, why);
}

/* Removes the poll ud (the removal's own CQE carries ud_remove) and waits
 * for both CQEs, in either order: the poll's -ECANCELED without
 * IORING_CQE_F_MORE, the removal's 0. */
static void remove_poll_or_fail(uint64_t ud, uint64_t ud_remove) {
        struct io_uring_sqe *sqe = sqe_or_fail();
        bool poll_done = false, remove_done = false;

        cr_assert_eq(ev_watcher_prep_poll_remove(sqe, ud, ud_remove), 0);
        submit_or_fail(1);
        while (!poll_done || !remove_done) {
                struct cqe c = any_cqe_or_fail("the CQEs of a poll removal");

                if (c.user_data == ud && !poll_done) {
                        cr_assert_eq(c.res, -ECANCELED, "removed poll: res %d (%s), expected -ECANCELED",
                                     c.res, c.res < 0 ? strerror(-c.res) : "a mask");
                        cr_assert_not(c.flags & IORING_CQE_F_MORE, "the removed poll's CQE has F_MORE");
                        poll_done = true;
                } else if (c.user_data == ud_remove && !remove_done) {
                        cr_assert_eq(c.res, 0, "poll removal: res %d (%s), expected 0",
                                     c.res, strerror(-c.res));
                        remove_done = true;
                } else {
                        cr_assert_fail("unexpected CQE (user_data 0x%" PRIx64 ", res %d) during a removal",
                                       c.user_data, c.res);
                }
        }
}

/* Asserts that the ring holds no poll with user_data ud: a removal of it
 * finds nothing (-ENOENT) and no CQE carries ud. */
static void no_poll_left_or_fail(uint64_t ud, uint64_t ud_remove) {
        struct io_uring_sqe *sqe = sqe_or_fail();
        struct cqe c;

        cr_assert_eq(ev_watcher_prep_poll_remove(sqe, ud, ud_remove), 0);
        submit_or_fail(1);
        c = any_cqe_or_fail("the CQE of a removal");
        cr_assert_eq(c.user_data, ud_remove, "CQE with user_data 0x%" PRIx64 " (res %d) before the removal's",
                     c.user_data, c.res);
        cr_assert_eq(c.res, -ENOENT, "removal of poll 0x%" PRIx64 ": res %d (%s), expected -ENOENT: "
                     "a poll is still pending", ud, c.res, strerror(-c.res));
        no_cqe_or_fail("a CQE after a removal that found nothing");
}

/* ------------------------------------------------------------ values */

/* Sets the string "v<version>", which the value's next version must be. */
static void set_version_or_fail(ev_value *value, uint64_t version) {
        char buf[32];

        snprintf(buf, sizeof(buf), "v%" PRIu64, version);
        set_string_or_fail(value, buf);
        cr_assert_eq(ev_value_get_version(value), version);
}

/* Asserts that a get returns the snapshot "v<version>" at version. */
static void get_version_or_fail(ev_value_watcher *watcher, uint64_t version) {
        char buf[32];

        snprintf(buf, sizeof(buf), "v%" PRIu64, version);
        get_string_or_fail(watcher, version, buf);
}

/* ------------------------------------------------------------ set-ups */

/* .init: v, and w, a watcher of v that has seen nothing; no ring. */
static void value_and_watcher(void) {
        v = value_new_or_fail();
        w = watch_or_fail(v);
}

/* .init: an 8-entry ring, v, and w, a watcher of v that has seen nothing. */
static void ring_value_and_watcher(void) {
        ring_init_or_skip(8);
        value_and_watcher();
}

/* .init: an 8-entry ring, v at version 1, and w, a watcher of v that has
 * seen it (watch_consumed_or_fail). */
static void ring_and_consumed_watcher(void) {
        ring_init_or_skip(8);
        v = value_new_or_fail();
        set_version_or_fail(v, 1);
        w = watch_consumed_or_fail(v);
}

/* ------------------------------------------------------------ tests */

/* Needs no ring, so it runs even where the kernel refuses io_uring. */
Test(uring, helpers_check_their_arguments_and_fill_the_sqe, .init = value_and_watcher, .timeout = 10) {
        struct io_uring_sqe sqe, pattern, expected;
        int fd = ev_watcher_get_fd(w);

        memset(&pattern, 0xa5, sizeof(pattern));
        sqe = pattern;
        cr_assert_eq(ev_watcher_prep_poll(NULL, w, 1), -EINVAL);
        cr_assert_eq(ev_watcher_prep_poll(&sqe, NULL, 1), -EINVAL);
        cr_assert_eq(ev_watcher_prep_poll_multishot(NULL, w, 1), -EINVAL);
        cr_assert_eq(ev_watcher_prep_poll_multishot(&sqe, NULL, 1), -EINVAL);
        cr_assert_eq(ev_watcher_prep_poll_remove(NULL, 1, 2), -EINVAL);
        cr_assert_eq(memcmp(&sqe, &pattern, sizeof(sqe)), 0, "a failing helper wrote the SQE");

        /* On success each fills the SQE as liburing's own helper does. */
        expected = pattern;
        io_uring_prep_poll_add(&expected, fd, POLLIN);
        io_uring_sqe_set_data64(&expected, UINT64_C(0xfeedface12345678));
        cr_assert_eq(ev_watcher_prep_poll(&sqe, w, UINT64_C(0xfeedface12345678)), 0);
        cr_assert_eq(memcmp(&sqe, &expected, sizeof(sqe)), 0, "ev_watcher_prep_poll's SQE differs");
        cr_assert_eq(sqe.opcode, IORING_OP_POLL_ADD);
        cr_assert_eq(sqe.fd, fd);
        cr_assert_eq(sqe.len, 0, "a single-shot poll asks for multishot");

        sqe = expected = pattern;
        io_uring_prep_poll_multishot(&expected, fd, POLLIN);
        io_uring_sqe_set_data64(&expected, 42);
        cr_assert_eq(ev_watcher_prep_poll_multishot(&sqe, w, 42), 0);
        cr_assert_eq(memcmp(&sqe, &expected, sizeof(sqe)), 0, "ev_watcher_prep_poll_multishot's SQE differs");
        cr_assert_eq(sqe.len, IORING_POLL_ADD_MULTI);

        sqe = expected = pattern;
        io_uring_prep_poll_remove(&expected, 42);
        io_uring_sqe_set_data64(&expected, 43);
        cr_assert_eq(ev_watcher_prep_poll_remove(&sqe, 42, 43), 0);
        cr_assert_eq(memcmp(&sqe, &expected, sizeof(sqe)), 0, "ev_watcher_prep_poll_remove's SQE differs");
        cr_assert_eq(sqe.opcode, IORING_OP_POLL_REMOVE);
        cr_assert_eq(sqe.addr, 42);
}

Test(uring, single_shot_poll_completes_after_a_set_and_not_before, .init = ring_value_and_watcher,
     .timeout = 10) {
        struct io_uring_cqe *cqe = NULL;

        arm_and_submit(w, UD_POLL, false);
        cr_assert_eq(io_uring_peek_cqe(&ring, &cqe), -EAGAIN, "a poll completed before any set");
        no_cqe_or_fail("a poll completed before any set");

        set_version_or_fail(v, 1);
        poll_cqe_or_fail(UD_POLL, false, "the first set");
        get_version_or_fail(w, 1);
        get_fails_with(w, -EAGAIN);

        /* The re-armed poll waits for the next set. */
        arm_and_submit(w, UD_POLL, false);
        no_cqe_or_fail("a re-armed poll completed with everything consumed");
        set_version_or_fail(v, 2);
        poll_cqe_or_fail(UD_POLL, false, "the second set");
        get_version_or_fail(w, 2);
        get_fails_with(w, -EAGAIN);

        /* Armed while something is unseen, it completes at once. */
        set_version_or_fail(v, 3);
        arm_and_submit(w, UD_POLL, false);
        poll_cqe_or_fail(UD_POLL, false, "a poll armed with an unseen set");
        get_version_or_fail(w, 3);
        get_fails_with(w, -EAGAIN);
        /* No poll is pending now: w may be closed without a removal. */
}

Test(uring, multishot_poll_posts_a_cqe_per_set_and_keeps_working, .init = ring_value_and_watcher,
     .timeout = 10) {
        uint64_t i;

        arm_and_submit(w, UD_POLL, true);
        no_cqe_or_fail("a multishot poll posted before any set");
        for (i = 1; i <= 5; i++) {
                set_version_or_fail(v, i);
                poll_cqe_or_fail(UD_POLL, true, "a set under a multishot poll");
                get_version_or_fail(w, i);
                get_fails_with(w, -EAGAIN);
                /* The get drains the eventfd: that posts nothing. */
                no_cqe_or_fail("a multishot poll posted for a get");
        }

        remove_poll_or_fail(UD_POLL, UD_REMOVE);
}

/* With IORING_SETUP_DEFER_TASKRUN the wake-up of a poll by a set runs only
 * when the thread next waits on the ring, so a consumer that takes the
 * update first (a speculative get here; another CQE's handler or another
 * thread in a real program) can meet a CQE with nothing new behind it.  The
 * kernel completes the poll with the mask the wake-up carried, without
 * polling the fd again: observed on Linux 6.18 for single-shot and
 * multishot polls alike.  Whether it comes or not, the consumer's get says
 * -EAGAIN and the next set is seen. */
Test(uring, poll_cqe_with_nothing_new_gives_eagain, .timeout = 10) {
        int mode;

        for (mode = 0; mode < 2; mode++) {
                bool multishot = mode == 1;
                struct io_uring_params p;
                struct cqe c;
                int r;

                memset(&p, 0, sizeof(p));
                p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
                r = io_uring_queue_init_params(8, &ring, &p);
                if (r == -EINVAL)
                        cr_skip_test("the kernel lacks IORING_SETUP_DEFER_TASKRUN (Linux 6.1): "
                                     "cannot hold back a poll's wake-up");
                ring_setup_ok_or_skip(r, 8);
                value_and_watcher();

                arm_and_submit(w, UD_POLL, multishot);
                no_cqe_or_fail("a poll completed before any set");
                set_version_or_fail(v, 1);
                get_version_or_fail(w, 1);
                get_fails_with(w, -EAGAIN);
                cr_assert_not(fd_readable(ev_watcher_get_fd(w)));

                if (next_cqe(MUST_NOT_COME_MS, &c)) {
                        cr_log_info("%s poll: a CQE (res 0x%x, flags 0x%x) came after the "
                                    "consumer had taken the update",
                                    multishot ? "multishot" : "single-shot", (unsigned)c.res, c.flags);
                        cr_assert_eq(c.user_data, UD_POLL);
                        cr_assert(c.res > 0 && (c.res & POLLIN), "res %d", c.res);
                        cr_assert_eq(!!(c.flags & IORING_CQE_F_MORE), multishot);
                        get_fails_with(w, -EAGAIN);
                        if (!multishot)
                                arm_and_submit(w, UD_POLL, false);
                } else {
                        cr_log_info("%s poll: no CQE after the consumer had taken the update",
                                    multishot ? "multishot" : "single-shot");
                }
                /* The poll waits for the next set as if nothing happened. */
                no_cqe_or_fail("a second CQE with nothing new");
                set_version_or_fail(v, 2);
                poll_cqe_or_fail(UD_POLL, multishot, "the set after a CQE with nothing new");
                get_version_or_fail(w, 2);
                get_fails_with(w, -EAGAIN);

                if (multishot)
                        remove_poll_or_fail(UD_POLL, UD_REMOVE);
                fixture_fini();
        }
}

Test(uring, coalesced_sets_give_one_cqe_and_the_newest_snapshot, .timeout = 10) {
        int mode;

        for (mode = 0; mode < 2; mode++) {
                bool multishot = mode == 1;
                ev_value_snapshot *s;
                uint64_t i;
                int n = 0, r;

                ring_value_and_watcher();
                arm_and_submit(w, UD_POLL, multishot);

                for (i = 1; i <= 10; i++)
                        set_version_or_fail(v, i);
                poll_cqe_or_fail(UD_POLL, multishot, "ten sets");
                /* The eventfd was written once, so even a multishot poll
                 * posted once. */
                no_cqe_or_fail("a second CQE for coalesced sets");

                /* The consumer drains: one snapshot, the newest. */
                while ((r = ev_watcher_get(w, &s)) == 0) {
                        n++;
                        assert_snapshot_is_string(s, 10, "v10");
                        ev_snapshot_unref(s);
                }
                cr_assert_eq(r, -EAGAIN, "draining get: %s", strerror(-r));
                cr_assert_eq(n, 1, "%d snapshots for ten coalesced sets", n);
                get_fails_with(w, -EAGAIN);

                if (multishot)
                        remove_poll_or_fail(UD_POLL, UD_REMOVE);
                fixture_fini();
        }
}

Test(uring, poll_removed_before_watcher_close_leaves_no_cqe_behind, .timeout = 10) {
        int mode;

        for (mode = 0; mode < 2; mode++) {
                bool multishot = mode == 1;
                _cleanup_(ev_watcher_closep) ev_value_watcher *w2 = NULL;
                uint64_t ud_old, ud_new, i;
                int old_fd;

                ring_and_consumed_watcher();
                /* A reactor's user_data: the watcher itself. */
                ud_old = (uint64_t)(uintptr_t)w;
                old_fd = ev_watcher_get_fd(w);

                arm_and_submit(w, ud_old, multishot);
                no_cqe_or_fail("a poll completed with everything consumed");
                remove_poll_or_fail(ud_old, UD_REMOVE);
                w = ev_watcher_close(w);
                /* Nothing in the ring refers to the freed watcher. */
                no_poll_left_or_fail(ud_old, UD_REMOVE);

                /* A new watcher, likely on the same fd number and even at
                 * the same address, works; the old poll never speaks. */
                w2 = watch_consumed_or_fail(v);
                ud_new = (uint64_t)(uintptr_t)w2 ^ 1; /* differs from ud_old even at the same address */
                cr_log_info("%s: the new watcher got fd %d, the closed one had %d",
                            multishot ? "multishot" : "single-shot", ev_watcher_get_fd(w2), old_fd);
                arm_and_submit(w2, ud_new, multishot);
                for (i = 2; i <= 4; i++) {
                        set_version_or_fail(v, i);
                        poll_cqe_or_fail(ud_new, multishot, "a set after the old watcher was closed");
                        get_version_or_fail(w2, i);
                        get_fails_with(w2, -EAGAIN);
                        no_cqe_or_fail("a CQE for the closed watcher's poll");
                        if (!multishot)
                                arm_and_submit(w2, ud_new, false);
                }
                close_or_fail(v);
                poll_cqe_or_fail(ud_new, multishot, "the close of the value");
                no_cqe_or_fail("a CQE for the closed watcher's poll after the value's close");
                get_fails_with(w2, -EPIPE);

                if (multishot)
                        remove_poll_or_fail(ud_new, UD_REMOVE);
                fixture_fini();
        }
}

/* Why the removal comes first: ev_watcher_close does not end a poll.  The
 * poll holds the eventfd open, nothing writes it any more, and it stays
 * pending with the freed watcher's user_data until it is removed (or the
 * ring is torn down). */
Test(uring, poll_not_removed_outlives_watcher_close, .init = ring_value_and_watcher, .timeout = 10) {
        uint64_t ud = (uint64_t)(uintptr_t)w;

        arm_and_submit(w, ud, true);
        w = ev_watcher_close(w); /* the mistake */

        set_version_or_fail(v, 1);
        close_or_fail(v);
        no_cqe_or_fail("a CQE from the orphaned poll");
        /* The removal finds it: it was still pending. */
        remove_poll_or_fail(ud, UD_REMOVE);
}

Test(uring, value_close_completes_the_poll_and_the_fd_stays_readable, .init = ring_and_consumed_watcher,
     .timeout = 10) {
        arm_and_submit(w, UD_POLL, false);
        no_cqe_or_fail("a poll completed with everything consumed");
        close_or_fail(v);
        poll_cqe_or_fail(UD_POLL, false, "the close of the value");
        get_fails_with(w, -EPIPE);

        /* The trap: the fd stays readable, so a re-armed single-shot poll
         * completes at once, every time.  Stop re-arming on -EPIPE. */
        arm_and_submit(w, UD_POLL, false);
        poll_cqe_or_fail(UD_POLL, false, "a single-shot poll re-armed after the close");
        get_fails_with(w, -EPIPE);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        w = ev_watcher_close(w);
        v = ev_value_unref(v);

        /* A value closed without ever being set wakes its watcher too. */
        value_and_watcher();
        arm_and_submit(w, UD_POLL, true);
        no_cqe_or_fail("a multishot poll posted before the close");
        close_or_fail(v);
        poll_cqe_or_fail(UD_POLL, true, "the close of a never-set value");
        get_fails_with(w, -EPIPE);
        /* A multishot poll posts only on wake-ups: the close was the last. */
        no_cqe_or_fail("a multishot poll posted again after the close");
        remove_poll_or_fail(UD_POLL, UD_REMOVE);
}

Test(uring, value_close_after_an_unconsumed_set_gives_the_last_snapshot_then_epipe, .init = ring_value_and_watcher,
     .timeout = 10) {
        arm_and_submit(w, UD_POLL, true);

        set_version_or_fail(v, 1);
        poll_cqe_or_fail(UD_POLL, true, "the first set");
        /* The consumer has the CQE but has not got yet when more comes. */
        set_version_or_fail(v, 2);
        close_or_fail(v);
        /* The eventfd holds its one notification: nothing new is posted,
         * and the CQE already reaped is the one to act on. */
        no_cqe_or_fail("a CQE for an update made while one was unconsumed");
        get_version_or_fail(w, 2);
        get_fails_with(w, -EPIPE);
        get_fails_with(w, -EPIPE);

        remove_poll_or_fail(UD_POLL, UD_REMOVE);
}

Test(uring, multishot_poll_ended_by_a_removal_is_rearmed, .init = ring_value_and_watcher,
     .timeout = 10) {
        arm_and_submit(w, UD_POLL, true);
        set_version_or_fail(v, 1);
        poll_cqe_or_fail(UD_POLL, true, "the first set");
        get_version_or_fail(w, 1);

        /* The final CQE, -ECANCELED, lacks F_MORE (remove_poll_or_fail
         * asserts it): the poll is gone. */
        remove_poll_or_fail(UD_POLL, UD_REMOVE);
        set_version_or_fail(v, 2);
        no_cqe_or_fail("a CQE from a removed multishot poll");
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "the update is there, unseen");

        /* Re-armed, it reports the unseen update at once, then each set. */
        arm_and_submit(w, UD_POLL, true);
        poll_cqe_or_fail(UD_POLL, true, "a multishot poll re-armed over an unseen set");
        get_version_or_fail(w, 2);
        get_fails_with(w, -EAGAIN);
        set_version_or_fail(v, 3);
        poll_cqe_or_fail(UD_POLL, true, "a set after the re-arm");
        get_version_or_fail(w, 3);

        remove_poll_or_fail(UD_POLL, UD_REMOVE);
}

/* A reactor that falls behind on reaping loses its multishot poll: when
 * the completion queue is full the kernel ends the poll and queues a last
 * CQE without IORING_CQE_F_MORE as an overflow (observed on Linux 6.18; a
 * kernel that instead let every CQE overflow would keep the poll, and the
 * test handles both).  The consumer follows the rule, re-arming exactly
 * after a CQE without F_MORE, and sees every later set. */
Test(uring, multishot_poll_ended_by_a_full_completion_queue_is_rearmed, .timeout = 10) {
        struct io_uring_params p;
        struct cqe c;
        bool ended = false;
        unsigned n = 0, i, cycles;
        uint64_t version = 0;

        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = 2;
        ring_setup_ok_or_skip(io_uring_queue_init_params(1, &ring, &p), 1);
        value_and_watcher();
        arm_and_submit(w, UD_POLL, true);

        /* Each set is taken, so each writes the eventfd and wakes the poll,
         * but no CQE is reaped. */
        cycles = p.cq_entries + 3;
        for (i = 0; i < cycles; i++) {
                set_version_or_fail(v, ++version);
                get_version_or_fail(w, version);
        }
        while (next_cqe(MUST_NOT_COME_MS, &c)) {
                cr_assert_not(ended, "a CQE after the one without F_MORE");
                cr_assert_eq(c.user_data, UD_POLL);
                cr_assert(c.res > 0 && (c.res & POLLIN), "res %d", c.res);
                n++;
                if (!(c.flags & IORING_CQE_F_MORE))
                        ended = true;
        }
        cr_log_info("%u set/get cycles with a %u-entry CQ: %u CQEs, the poll %s", cycles,
                    p.cq_entries, n, ended ? "ended (last CQE without F_MORE)" : "kept going");
        cr_assert_leq(n, cycles);
        if (ended)
                arm_and_submit(w, UD_POLL, true);

        set_version_or_fail(v, ++version);
        poll_cqe_or_fail(UD_POLL, true, "a set after the overflow");
        get_version_or_fail(w, version);

        remove_poll_or_fail(UD_POLL, UD_REMOVE);
}

/* Why the header polls: IORING_OP_READ on the eventfd is wrong on every
 * kernel.  Older kernels honour its O_NONBLOCK and complete the read at
 * once with -EAGAIN, so a loop around it spins.  Newer ones (observed on
 * Linux 6.18) ignore O_NONBLOCK for a pollable file and park the read
 * until a set writes the eventfd; then the read drains the counter behind
 * the library's back: the fd is no longer readable while a snapshot is
 * unseen, and after a close it is not readable "forever" either. */
Test(uring, io_uring_read_on_the_eventfd_is_a_trap, .init = ring_and_consumed_watcher, .timeout = 10) {
        struct io_uring_sqe *sqe;
        struct cqe c;
        uint64_t counter = 0;
        int fd = ev_watcher_get_fd(w), i;

        sqe = sqe_or_fail();
        io_uring_prep_read(sqe, fd, &counter, sizeof(counter), 0);
        io_uring_sqe_set_data64(sqe, UD_READ);
        submit_or_fail(1);

        if (next_cqe(MUST_NOT_COME_MS, &c)) {
                cr_log_info("IORING_OP_READ on the eventfd with nothing new: completed at once, res %d", c.res);
                cr_assert_eq(c.user_data, UD_READ);
                cr_assert_eq(c.res, -EAGAIN, "read res %d (%s), expected -EAGAIN", c.res,
                             c.res < 0 ? strerror(-c.res) : "bytes");
                /* Resubmitting is a busy loop: each completes at once. */
                for (i = 0; i < 3; i++) {
                        sqe = sqe_or_fail();
                        io_uring_prep_read(sqe, fd, &counter, sizeof(counter), 0);
                        io_uring_sqe_set_data64(sqe, UD_READ);
                        submit_or_fail(1);
                        cr_assert(next_cqe(MUST_NOT_COME_MS, &c), "a repeated read did not complete at once");
                        cr_assert_eq(c.res, -EAGAIN);
                }
                /* The watcher is untouched. */
                set_version_or_fail(v, 2);
                cr_assert(fd_readable(fd));
                get_version_or_fail(w, 2);
                close_or_fail(v);
        } else {
                cr_log_info("IORING_OP_READ on the eventfd with nothing new: pending");
                set_version_or_fail(v, 2);
                c = any_cqe_or_fail("a pending read after a set");
                cr_assert_eq(c.user_data, UD_READ);
                cr_assert_eq(c.res, (int)sizeof(counter), "read res %d", c.res);
                cr_assert_eq(counter, 1);
                /* The read took the library's notification: the fd says
                 * nothing new, the get disagrees. */
                cr_assert_not(fd_readable(fd), "the fd is readable after the read drained it");
                get_version_or_fail(w, 2);

                sqe = sqe_or_fail();
                io_uring_prep_read(sqe, fd, &counter, sizeof(counter), 0);
                io_uring_sqe_set_data64(sqe, UD_READ);
                submit_or_fail(1);
                no_cqe_or_fail("a read completed with nothing new");
                close_or_fail(v);
                c = any_cqe_or_fail("a pending read after the value's close");
                cr_assert_eq(c.res, (int)sizeof(counter), "read res %d", c.res);
                /* Closed, but the fd is not readable: a poll now would
                 * wait forever. */
                cr_assert_not(fd_readable(fd), "the fd is readable after the read drained it");
                get_fails_with(w, -EPIPE);
        }
}

/* EV_VALUE_WATCH_SHARED_FD: the shared eventfd is never drained, so a
 * single-shot poll completes at once whether or not anything is new; a
 * multishot poll still posts once per set (each set writes the fd). */
Test(uring, shared_fd_watcher_single_shot_spins_multishot_works, .timeout = 10) {
        int i;

        ring_init_or_skip(8);
        v = value_new_or_fail();
        cr_assert_eq(ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &w), 0);
        set_version_or_fail(v, 1);
        get_version_or_fail(w, 1);
        get_fails_with(w, -EAGAIN);
        for (i = 0; i < 3; i++) {
                arm_and_submit(w, UD_POLL, false);
                poll_cqe_or_fail(UD_POLL, false, "a single-shot poll on a shared fd");
                get_fails_with(w, -EAGAIN);
        }

        /* Multishot: the fd is readable, so it posts once when armed, then
         * once per set. */
        arm_and_submit(w, UD_POLL, true);
        poll_cqe_or_fail(UD_POLL, true, "a multishot poll armed on a readable shared fd");
        get_fails_with(w, -EAGAIN);
        no_cqe_or_fail("a multishot poll on a shared fd posted without a set");
        for (i = 2; i <= 4; i++) {
                set_version_or_fail(v, (uint64_t)i);
                poll_cqe_or_fail(UD_POLL, true, "a set under a multishot poll on a shared fd");
                get_version_or_fail(w, (uint64_t)i);
                get_fails_with(w, -EAGAIN);
        }
        remove_poll_or_fail(UD_POLL, UD_REMOVE);
}

/* ------------------------------------------------------------ many */

#define MANY_VALUES 10
#define MANY_WATCHERS 1000
#define MANY_ROUNDS 6

/* One watcher of the large test; its address is its polls' user_data, and
 * that address with the low bit set is its removal's. */
struct slot {
        ev_value_watcher *w;
        uint64_t last_version; /* of the newest snapshot taken */
        unsigned cqes;
        bool armed;            /* a poll is pending */
        bool removed;          /* its removal's CQE was reaped */
};

/* The slot a user_data names; asserts that it names one.  *removal tells
 * whether it is the slot's removal rather than its poll. */
static struct slot *slot_of(struct slot *slots, uint64_t ud, bool *removal) {
        uintptr_t base = (uintptr_t)slots, p = (uintptr_t)(ud & ~UINT64_C(1));

        cr_assert(p >= base && p < base + MANY_WATCHERS * sizeof(*slots) &&
                          (p - base) % sizeof(*slots) == 0,
                  "CQE with user_data 0x%" PRIx64 " that names no watcher", ud);
        *removal = ud & 1;
        return (struct slot *)p;
}

/* What the reactor does with a poll CQE: get until -EAGAIN, then re-arm a
 * single-shot poll, or a multishot one whose CQE lacks F_MORE. */
static void many_on_cqe(struct slot *slots, const struct cqe *c,
                        bool multishot, uint64_t newest) {
        ev_value_snapshot *s;
        bool removal;
        struct slot *sl = slot_of(slots, c->user_data, &removal);
        long idx = (long)(sl - slots);
        char expected[32];
        int r, taken = 0;

        cr_assert_not(removal, "a removal's CQE while no removal was submitted");
        cr_assert(sl->armed, "CQE for watcher %ld, which has no poll pending", idx);
        cr_assert(c->res > 0 && (c->res & POLLIN), "watcher %ld: res %d", idx, c->res);
        /* The CQ ring (2048) holds every outstanding CQE, so no multishot
         * poll ends here. */
        cr_assert_eq(!!(c->flags & IORING_CQE_F_MORE), multishot, "watcher %ld: flags 0x%x", idx, c->flags);
        sl->cqes++;
        while ((r = ev_watcher_get(sl->w, &s)) == 0) {
                uint64_t version = ev_snapshot_version(s);

                cr_assert(version > sl->last_version && version <= newest,
                          "watcher %ld: version %" PRIu64 " after %" PRIu64 ", newest %" PRIu64, idx,
                          version, sl->last_version, newest);
                snprintf(expected, sizeof(expected), "v%" PRIu64, version);
                assert_snapshot_is_string(s, version, expected);
                sl->last_version = version;
                taken++;
                ev_snapshot_unref(s);
        }
        cr_assert_eq(r, -EAGAIN, "watcher %ld: get %s", idx, strerror(-r));
        /* The CQE was this watcher's: it had something new. */
        cr_assert_eq(taken, 1, "watcher %ld: %d snapshots for one CQE", idx, taken);
        if (!multishot) {
                sl->armed = false;
                arm(sl->w, (uint64_t)(uintptr_t)sl, false);
                sl->armed = true;
        }
}

/* Raises RLIMIT_NOFILE to what the test needs, or skips. */
static void nofile_or_skip(rlim_t need) {
        struct rlimit rl;

        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
        if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need) {
                if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
                        cr_skip_test("RLIMIT_NOFILE's hard limit %llu is below the %llu fds needed",
                                     (unsigned long long)rl.rlim_max, (unsigned long long)need);
                rl.rlim_cur = need;
                cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
        }
}

/* 1,000 watchers, 100 on each of 10 values, polled in one ring.  The sets
 * of odd rounds are not reaped before the next round, so they coalesce.
 * Every CQE maps back to its watcher, every watcher ends at the newest
 * version, and the removal of all polls yields exactly one -ECANCELED and
 * one 0 per watcher. */
static void many_watchers(bool multishot) {
        ev_value *values[MANY_VALUES];
        struct slot *slots;
        struct cqe c;
        uint64_t round;
        int64_t deadline;
        unsigned i, behind, cancelled = 0, removed = 0;

        nofile_or_skip(MANY_WATCHERS + 64);
        ring_init_or_skip(1024);
        slots = calloc(MANY_WATCHERS, sizeof(*slots));
        cr_assert_not_null(slots);
        for (i = 0; i < MANY_VALUES; i++)
                values[i] = value_new_or_fail();
        for (i = 0; i < MANY_WATCHERS; i++) {
                slots[i].w = watch_or_fail(values[i % MANY_VALUES]);
                arm(slots[i].w, (uint64_t)(uintptr_t)&slots[i], multishot);
                slots[i].armed = true;
        }
        cr_assert_geq(io_uring_submit(&ring), 0);
        no_cqe_or_fail("a poll completed before any set");

        for (round = 1; round <= MANY_ROUNDS; round++) {
                for (i = 0; i < MANY_VALUES; i++)
                        set_version_or_fail(values[i], round);
                if (round % 2)
                        continue;
                while (next_cqe(0, &c))
                        many_on_cqe(slots, &c, multishot, round);
                cr_assert_geq(io_uring_submit(&ring), 0);
        }

        deadline = now_ms() + MUST_COME_MS;
        for (;;) {
                for (behind = 0, i = 0; i < MANY_WATCHERS; i++)
                        behind += slots[i].last_version != MANY_ROUNDS;
                if (!behind)
                        break;
                cr_assert_lt(now_ms(), deadline, "%u watchers never saw version %d", behind, MANY_ROUNDS);
                cr_assert_geq(io_uring_submit(&ring), 0);
                if (next_cqe(100, &c))
                        many_on_cqe(slots, &c, multishot, MANY_ROUNDS);
        }
        cr_assert_geq(io_uring_submit(&ring), 0);
        no_cqe_or_fail("a CQE with every watcher up to date");
        for (i = 0; i < MANY_WATCHERS; i++) {
                cr_assert_eq(slots[i].cqes, MANY_ROUNDS / 2, "watcher %u: %u CQEs for %d coalesced rounds",
                             i, slots[i].cqes, MANY_ROUNDS);
                get_fails_with(slots[i].w, -EAGAIN);
        }

        /* Remove every poll; wait for both CQEs of each. */
        for (i = 0; i < MANY_WATCHERS; i++) {
                struct io_uring_sqe *sqe = sqe_or_fail();

                cr_assert_eq(ev_watcher_prep_poll_remove(sqe, (uint64_t)(uintptr_t)&slots[i],
                                                         (uint64_t)(uintptr_t)&slots[i] | 1),
                             0);
        }
        cr_assert_geq(io_uring_submit(&ring), 0);
        while (cancelled + removed < 2 * MANY_WATCHERS) {
                bool removal;
                struct slot *sl;

                c = any_cqe_or_fail("the CQEs of the removals");
                sl = slot_of(slots, c.user_data, &removal);
                if (removal) {
                        cr_assert_not(sl->removed, "watcher %ld: a second removal CQE", (long)(sl - slots));
                        cr_assert_eq(c.res, 0, "removal of watcher %ld: %s", (long)(sl - slots), strerror(-c.res));
                        sl->removed = true;
                        removed++;
                } else {
                        cr_assert(sl->armed, "watcher %ld: a second -ECANCELED", (long)(sl - slots));
                        cr_assert_eq(c.res, -ECANCELED, "watcher %ld: res %d", (long)(sl - slots), c.res);
                        cr_assert_not(c.flags & IORING_CQE_F_MORE);
                        sl->armed = false;
                        cancelled++;
                }
        }
        cr_assert_eq(cancelled, MANY_WATCHERS);
        cr_assert_eq(removed, MANY_WATCHERS);

        for (i = 0; i < MANY_WATCHERS; i++)
                ev_watcher_close(slots[i].w);
        for (i = 0; i < MANY_VALUES; i++)
                ev_value_unref(values[i]);
        free(slots);
}

Test(uring, thousand_watchers_single_shot_in_one_ring, .timeout = 10) {
        many_watchers(false);
}

Test(uring, thousand_watchers_multishot_in_one_ring, .timeout = 10) {
        many_watchers(true);
}
