/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of watcher fds in epoll sets, the way an event loop uses them.
 * Level-triggered: epoll reports exactly the watchers that have something
 * unseen, keeps reporting them until they get, and stops after.
 * Edge-triggered: every set produces one edge per watcher that had consumed
 * the previous one, and sets while a watcher has not consumed produce no
 * edge at all, since each eventfd is written at most once per unconsumed
 * update; the consumer that finally gets sees the newest snapshot.  A close
 * of the value reports every watcher, and a watcher removed from the set
 * before ev_watcher_close leaves the set working.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "helpers.h"

#define N_WATCHERS 4

/* Two values, two watchers on each: w[0], w[1] on v[0]; w[2], w[3] on v[1]. */
struct loop {
        int epfd;
        ev_value *v[2];
        ev_value_watcher *w[N_WATCHERS];
};

static void loop_init(struct loop *l, uint32_t events) {
        int i;

        l->epfd = epoll_create1(EPOLL_CLOEXEC);
        cr_assert_geq(l->epfd, 0, "epoll_create1: %s", strerror(errno));
        l->v[0] = value_new_or_fail();
        l->v[1] = value_new_or_fail();
        for (i = 0; i < N_WATCHERS; i++) {
                struct epoll_event ev = { .events = events, .data.ptr = NULL };

                l->w[i] = watch_or_fail(l->v[i / 2]);
                ev.data.ptr = l->w[i];
                cr_assert_eq(epoll_ctl(l->epfd, EPOLL_CTL_ADD, ev_watcher_get_fd(l->w[i]), &ev), 0,
                             "epoll_ctl ADD: %s", strerror(errno));
        }
}

static void loop_fini(struct loop *l) {
        int i;

        for (i = 0; i < N_WATCHERS; i++) {
                if (!l->w[i])
                        continue;
                cr_assert_eq(epoll_ctl(l->epfd, EPOLL_CTL_DEL, ev_watcher_get_fd(l->w[i]), NULL), 0);
                ev_watcher_close(l->w[i]);
        }
        close(l->epfd);
        ev_value_unref(l->v[0]);
        ev_value_unref(l->v[1]);
}

/* The set of watchers epoll reports within timeout_ms, as a bit mask over
 * l->w[]; each may be reported once per call, and only with EPOLLIN. */
static unsigned loop_ready(const struct loop *l, int timeout_ms) {
        struct epoll_event evs[N_WATCHERS + 1];
        unsigned mask = 0;
        int n, i, j;

        n = epoll_wait(l->epfd, evs, N_WATCHERS + 1, timeout_ms);
        cr_assert_geq(n, 0, "epoll_wait: %s", strerror(errno));
        for (i = 0; i < n; i++) {
                for (j = 0; j < N_WATCHERS; j++)
                        if (evs[i].data.ptr == l->w[j])
                                break;
                cr_assert_lt(j, N_WATCHERS, "epoll reported an unknown pointer");
                cr_assert_eq(mask & (1u << j), 0, "watcher %d reported twice", j);
                cr_assert(evs[i].events & EPOLLIN, "watcher %d reported without EPOLLIN", j);
                mask |= 1u << j;
        }
        return mask;
}

#define assert_ready(l, expected) do {                                          \
        unsigned got_ = loop_ready((l), 0);                                     \
        cr_assert_eq(got_, (unsigned)(expected),                                \
                     "epoll reported watchers 0x%x, expected 0x%x",             \
                     got_, (unsigned)(expected));                               \
} while (0)

Test(epoll, level_reports_exactly_the_watchers_with_unseen_data, .timeout = 10) {
        struct loop l;

        loop_init(&l, EPOLLIN);
        assert_ready(&l, 0x0);

        set_string_or_fail(l.v[0], "a1");
        assert_ready(&l, 0x3);
        set_string_or_fail(l.v[1], "b1");
        assert_ready(&l, 0xf);

        get_string_or_fail(l.w[0], 1, "a1");
        assert_ready(&l, 0xe);
        get_string_or_fail(l.w[3], 1, "b1");
        assert_ready(&l, 0x6);
        get_string_or_fail(l.w[1], 1, "a1");
        get_string_or_fail(l.w[2], 1, "b1");
        assert_ready(&l, 0x0);

        /* A set on one value reports only its own watchers. */
        set_string_or_fail(l.v[1], "b2");
        assert_ready(&l, 0xc);
        get_string_or_fail(l.w[2], 2, "b2");
        get_string_or_fail(l.w[3], 2, "b2");
        assert_ready(&l, 0x0);

        loop_fini(&l);
}

Test(epoll, level_keeps_reporting_until_get, .timeout = 10) {
        struct loop l;
        int i;

        loop_init(&l, EPOLLIN);
        set_string_or_fail(l.v[0], "a1");
        get_string_or_fail(l.w[0], 1, "a1");
        for (i = 0; i < 5; i++)
                assert_ready(&l, 0x2);
        /* More sets keep it reported, and bring w[0] back. */
        set_string_or_fail(l.v[0], "a2");
        for (i = 0; i < 5; i++)
                assert_ready(&l, 0x3);
        get_string_or_fail(l.w[1], 2, "a2");
        get_string_or_fail(l.w[0], 2, "a2");
        assert_ready(&l, 0x0);

        loop_fini(&l);
}

struct setter {
        pthread_barrier_t barrier;
        ev_value *v;
        int r;
};

static void *setter_main(void *arg) {
        struct setter *t = arg;

        pthread_barrier_wait(&t->barrier);
        t->r = ev_value_set(t->v, "b1", sizeof("b1"));
        return NULL;
}

Test(epoll, blocking_epoll_wait_is_woken_by_a_set_from_another_thread, .timeout = 10) {
        struct loop l;
        struct setter t;
        pthread_t thread;
        unsigned mask;

        loop_init(&l, EPOLLIN);
        t.v = l.v[1];
        t.r = 1;
        cr_assert_eq(pthread_barrier_init(&t.barrier, NULL, 2), 0);
        cr_assert_eq(pthread_create(&thread, NULL, setter_main, &t), 0);
        pthread_barrier_wait(&t.barrier);
        /* Blocks until the set (a bounded wait so a missed wake fails). */
        mask = loop_ready(&l, 5000);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0);
        /* Both watchers of v[1] are readable now, even if the first
         * epoll_wait returned between the two eventfd writes. */
        cr_assert_neq(mask, 0, "epoll_wait timed out without the set");
        cr_assert_eq(mask & 0x3, 0, "watchers of the other value were reported");
        assert_ready(&l, 0xc);
        pthread_barrier_destroy(&t.barrier);
        loop_fini(&l);
}

Test(epoll, edge_each_set_reports_each_watcher_once, .timeout = 10) {
        struct loop l;

        loop_init(&l, EPOLLIN | EPOLLET);
        assert_ready(&l, 0x0);
        set_string_or_fail(l.v[0], "a1");
        set_string_or_fail(l.v[1], "b1");
        assert_ready(&l, 0xf);
        /* Not consumed, but the edge was: nothing more to report. */
        assert_ready(&l, 0x0);
        assert_ready(&l, 0x0);
        /* The data is still there for whoever gets. */
        cr_assert(fd_readable(ev_watcher_get_fd(l.w[0])));
        get_string_or_fail(l.w[0], 1, "a1");
        get_string_or_fail(l.w[3], 1, "b1");
        assert_ready(&l, 0x0);

        loop_fini(&l);
}

Test(epoll, edge_sets_while_unconsumed_make_no_new_event, .timeout = 10) {
        struct loop l;
        char buf[16];
        int i;

        loop_init(&l, EPOLLIN | EPOLLET);
        set_string_or_fail(l.v[0], "a1");
        assert_ready(&l, 0x3);
        /* w[0] and w[1] hold an unconsumed update: each eventfd was written
         * once and must not be written again, or an edge would show here. */
        for (i = 2; i <= 10; i++) {
                snprintf(buf, sizeof(buf), "a%d", i);
                set_string_or_fail(l.v[0], buf);
                assert_ready(&l, 0x0);
        }
        /* The consumer that finally gets sees the newest, once. */
        get_string_or_fail(l.w[0], 10, "a10");
        get_fails_with(l.w[0], -EAGAIN);
        get_string_or_fail(l.w[1], 10, "a10");
        get_fails_with(l.w[1], -EAGAIN);
        assert_ready(&l, 0x0);

        loop_fini(&l);
}

Test(epoll, edge_next_set_after_get_makes_a_new_edge, .timeout = 10) {
        struct loop l;
        int round;

        loop_init(&l, EPOLLIN | EPOLLET);
        for (round = 1; round <= 5; round++) {
                char buf[16];

                snprintf(buf, sizeof(buf), "a%d", round);
                set_string_or_fail(l.v[0], buf);
                assert_ready(&l, 0x3);
                assert_ready(&l, 0x0);
                /* Drain as an edge-triggered loop must: until -EAGAIN. */
                get_string_or_fail(l.w[0], (uint64_t)round, buf);
                get_fails_with(l.w[0], -EAGAIN);
                get_string_or_fail(l.w[1], (uint64_t)round, buf);
                get_fails_with(l.w[1], -EAGAIN);
                assert_ready(&l, 0x0);
        }
        /* A watcher that did not drain gets no new edge; the other does. */
        set_string_or_fail(l.v[0], "a6");
        assert_ready(&l, 0x3);
        get_string_or_fail(l.w[0], 6, "a6");
        get_fails_with(l.w[0], -EAGAIN);
        set_string_or_fail(l.v[0], "a7");
        assert_ready(&l, 0x1);
        get_string_or_fail(l.w[1], 7, "a7");
        get_string_or_fail(l.w[0], 7, "a7");

        loop_fini(&l);
}

Test(epoll, edge_value_close_reports_every_drained_watcher, .timeout = 10) {
        struct loop l;
        int i;

        loop_init(&l, EPOLLIN | EPOLLET);
        set_string_or_fail(l.v[0], "a1");
        set_string_or_fail(l.v[1], "b1");
        assert_ready(&l, 0xf);
        for (i = 0; i < N_WATCHERS; i++)
                ev_snapshot_unref(get_or_fail(l.w[i]));
        assert_ready(&l, 0x0);

        close_or_fail(l.v[0]);
        assert_ready(&l, 0x3);
        close_or_fail(l.v[1]);
        assert_ready(&l, 0xc);
        for (i = 0; i < N_WATCHERS; i++)
                get_fails_with(l.w[i], -EPIPE);
        /* Closing again is not a new update. */
        close_or_fail(l.v[0]);
        assert_ready(&l, 0x0);

        loop_fini(&l);
}

Test(epoll, level_value_close_reports_every_watcher_forever, .timeout = 10) {
        struct loop l;
        int i;

        loop_init(&l, EPOLLIN);
        set_string_or_fail(l.v[0], "a1");
        get_string_or_fail(l.w[0], 1, "a1");
        /* w[0] drained, w[1] holds the last snapshot unseen. */
        assert_ready(&l, 0x2);
        close_or_fail(l.v[0]);
        assert_ready(&l, 0x3);
        get_string_or_fail(l.w[1], 1, "a1");
        get_fails_with(l.w[0], -EPIPE);
        get_fails_with(l.w[1], -EPIPE);
        /* A closed value's watchers stay reported. */
        for (i = 0; i < 3; i++)
                assert_ready(&l, 0x3);
        /* A never-set value's watchers are reported by its close too. */
        close_or_fail(l.v[1]);
        assert_ready(&l, 0xf);
        get_fails_with(l.w[2], -EPIPE);
        assert_ready(&l, 0xf);

        loop_fini(&l);
}

Test(epoll, remove_from_epoll_before_watcher_close, .timeout = 10) {
        struct loop l;
        struct epoll_event ev = { .events = EPOLLIN };
        int fd;

        loop_init(&l, EPOLLIN);
        set_string_or_fail(l.v[0], "a1");
        assert_ready(&l, 0x3);

        /* Remove w[1], unconsumed, from the set, then close it. */
        fd = ev_watcher_get_fd(l.w[1]);
        cr_assert_eq(epoll_ctl(l.epfd, EPOLL_CTL_DEL, fd, NULL), 0, "epoll_ctl DEL: %s", strerror(errno));
        assert_ready(&l, 0x1);
        l.w[1] = ev_watcher_close(l.w[1]);
        assert_ready(&l, 0x1);

        /* The rest of the set keeps working. */
        get_string_or_fail(l.w[0], 1, "a1");
        assert_ready(&l, 0x0);
        set_string_or_fail(l.v[0], "a2");
        assert_ready(&l, 0x1);
        get_string_or_fail(l.w[0], 2, "a2");

        /* A new watcher, likely on the same fd number, can be added anew. */
        l.w[1] = watch_or_fail(l.v[0]);
        ev.data.ptr = l.w[1];
        cr_assert_eq(epoll_ctl(l.epfd, EPOLL_CTL_ADD, ev_watcher_get_fd(l.w[1]), &ev), 0,
                     "epoll_ctl ADD: %s", strerror(errno));
        assert_ready(&l, 0x2);
        get_string_or_fail(l.w[1], 2, "a2");
        assert_ready(&l, 0x0);

        loop_fini(&l);
}
