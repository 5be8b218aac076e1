/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of EV_VALUE_WATCH_SHARED_FD: watchers that use their value's
 * one shared eventfd instead of one of their own.  The shared fd is an
 * eventfd like every watcher's, one per value, created at the first such
 * watch and closed with the value; every set and the close write it once
 * while a shared watcher lives, whatever the watchers consumed, and the
 * library never reads it.  So it is readable from the first set on, for
 * good, and made for edge-triggered epoll: each set is an edge in every
 * epoll that has it, edges coalesce until the next epoll_wait, and a new
 * registration of a readable fd reports at once.  The tests check those
 * edges with one EPOLLET epoll per consumer, the writes by counting system
 * calls (syscall-trap.h) and by reading the eventfd's counter from
 * /proc/self/fdinfo, the fd's lifetime by counting /proc/self/fd, and that
 * own-fd watchers of the same value keep their exact readiness rule.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "helpers.h"
#include "syscall-count.h"

/* ------------------------------------------------------------- helpers */

/* Asserts that a get returns version and str, then that the next gives -EAGAIN:
 * the drain an edge-triggered consumer does after each event. */
static void drain_string_or_fail(ev_value_watcher *w, uint64_t version, const char *str) {
        get_string_or_fail(w, version, str);
        get_fails_with(w, -EAGAIN);
}

/* Asserts that fd is open and an eventfd according to /proc/self/fd. */
static void assert_is_eventfd(int fd) {
        char path[64], target[64];
        ssize_t n;

        cr_assert_neq(fcntl(fd, F_GETFD), -1, "fd %d is not open: %s", fd, strerror(errno));
        snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
        n = readlink(path, target, sizeof(target) - 1);
        cr_assert_gt(n, 0, "readlink %s: %s", path, strerror(errno));
        target[n] = '\0';
        cr_assert_str_eq(target, "anon_inode:[eventfd]", "fd %d is %s", fd, target);
}

/* Number of open fds in this process, the directory's own included.  Reads
 * a /proc/self/fd directory opened by the caller, so that counting needs no
 * new fd (which matters at a lowered RLIMIT_NOFILE). */
static int count_fds_in(DIR *proc_fd) {
        struct dirent *d;
        int n = 0;

        rewinddir(proc_fd);
        errno = 0;
        while ((d = readdir(proc_fd)))
                if (d->d_name[0] != '.')
                        n++;
        cr_assert_eq(errno, 0, "readdir /proc/self/fd: %s", strerror(errno));
        return n;
}

static DIR *open_proc_fd_or_skip(void) {
        DIR *d = opendir("/proc/self/fd");

        if (!d)
                cr_skip_test("cannot open /proc/self/fd: %s", strerror(errno));
        return d;
}

/* ------------------------------------------- edge-triggered consumers */

/* One consumer: a watcher in an epoll instance of its own, edge-triggered. */
struct consumer {
        int epfd;
        ev_value_watcher *w;
};

static void consumer_init(struct consumer *c, ev_value_watcher *w) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = c };

        c->w = w;
        c->epfd = epoll_create1(EPOLL_CLOEXEC);
        cr_assert_geq(c->epfd, 0, "epoll_create1: %s", strerror(errno));
        cr_assert_eq(epoll_ctl(c->epfd, EPOLL_CTL_ADD, ev_watcher_get_fd(w), &ev), 0,
                     "epoll_ctl ADD: %s", strerror(errno));
}

/* Remove the watcher from the epoll, close both; the value stays. */
static void consumer_fini(struct consumer *c) {
        if (!c->w)
                return;
        cr_assert_eq(epoll_ctl(c->epfd, EPOLL_CTL_DEL, ev_watcher_get_fd(c->w), NULL), 0,
                     "epoll_ctl DEL: %s", strerror(errno));
        close(c->epfd);
        c->w = ev_watcher_close(c->w);
}

/* How many events the consumer's epoll reports within timeout_ms: 0 or 1,
 * and only EPOLLIN for this consumer. */
static int consumer_events(struct consumer *c, int timeout_ms) {
        struct epoll_event evs[2];
        int n = epoll_wait(c->epfd, evs, 2, timeout_ms);

        cr_assert_geq(n, 0, "epoll_wait: %s", strerror(errno));
        cr_assert_leq(n, 1, "one fd reported %d times", n);
        if (n == 1) {
                cr_assert_eq(evs[0].data.ptr, c, "epoll reported an unknown pointer");
                cr_assert(evs[0].events & EPOLLIN, "reported without EPOLLIN: 0x%x",
                          (unsigned)evs[0].events);
        }
        return n;
}

/* Asserts that each of the k consumers' epolls reports expected (0 or 1)
 * events right now. */
static void assert_reports(struct consumer *cs, int k, int expected) {
        for (int i = 0; i < k; i++) {
                int n = consumer_events(&cs[i], 0);

                cr_assert_eq(n, expected, "consumer %d: %d events, expected %d", i, n, expected);
        }
}

/* k consumers of v, each a shared-fd watcher in an epoll of its own. */
static void consumers_init(struct consumer *cs, int k, ev_value *v) {
        for (int i = 0; i < k; i++)
                consumer_init(&cs[i], watch_shared_or_fail(v));
}

static void consumers_fini(struct consumer *cs, int k) {
        for (int i = 0; i < k; i++)
                consumer_fini(&cs[i]);
}

/* ------------------------------------------------- counting system calls */

#define MAX_TRAPPED 64

static struct trapped_call trapped[MAX_TRAPPED];

/* Asserts that trapped[0..n) are n writes, n_to_a of them to fd_a and the
 * rest to fd_b (-1: none expected). */
static void assert_trapped_writes(size_t n, int fd_a, size_t n_to_a, int fd_b) {
        size_t to_a = 0, to_b = 0;

        for (size_t i = 0; i < n; i++) {
                cr_assert_eq(trapped[i].nr, SYS_write, "call %zu is system call %ld, not write",
                             i, trapped[i].nr);
                if (trapped[i].arg0 == fd_a)
                        to_a++;
                else if (fd_b >= 0 && trapped[i].arg0 == fd_b)
                        to_b++;
                else
                        cr_assert_fail("call %zu writes fd %ld, expected %d or %d",
                                       i, trapped[i].arg0, fd_a, fd_b);
        }
        cr_assert_eq(to_a, n_to_a, "%zu writes to fd %d, expected %zu", to_a, fd_a, n_to_a);
        cr_assert_eq(to_b, n - n_to_a, "%zu writes to fd %d, expected %zu", to_b, fd_b, n - n_to_a);
}

#define MAX_SETS 8

struct set_loop {
        ev_value *v;
        int n_sets;
        int results[MAX_SETS];
};

static void set_many(void *userdata) {
        struct set_loop *loop = userdata;

        for (int i = 0; i < loop->n_sets; i++)
                loop->results[i] = ev_value_set(loop->v, "x", 2);
}

/* Asserts that n trapped sets of v all succeed; returns their system calls. */
static size_t count_sets(ev_value *v, int n) {
        struct set_loop loop = { .v = v, .n_sets = n };
        size_t count;

        cr_assert_leq(n, MAX_SETS);
        count = count_syscalls(set_many, &loop, trapped, MAX_TRAPPED);
        for (int i = 0; i < n; i++)
                cr_assert_eq(loop.results[i], 0, "set %d: %s", i, strerror(-loop.results[i]));
        return count;
}

/* --------------------------------------------------------- the shared fd */

Test(shared_fd, watchers_of_a_value_share_one_cloexec_nonblocking_eventfd, .timeout = 10) {
        enum { K = 4 };
        DIR *proc_fd = open_proc_fd_or_skip();
        int before = count_fds_in(proc_fd);
        ev_value *v = value_new_or_fail(), *v2 = value_new_or_fail();
        ev_value_watcher *ws[K], *own, *w2;
        int fd;

        for (int i = 0; i < K; i++)
                ws[i] = watch_shared_or_fail(v);
        fd = ev_watcher_get_fd(ws[0]);
        for (int i = 1; i < K; i++)
                cr_assert_eq(ev_watcher_get_fd(ws[i]), fd, "shared watcher %d has fd %d, not %d",
                             i, ev_watcher_get_fd(ws[i]), fd);
        cr_assert_eq(count_fds_in(proc_fd), before + 1, "%d shared watchers opened %d fds",
                     K, count_fds_in(proc_fd) - before);
        assert_is_eventfd(fd);
        cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC, "the shared fd lacks FD_CLOEXEC");
        cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK, "the shared fd lacks O_NONBLOCK");

        /* An own-fd watcher of the same value has its own fd. */
        own = watch_or_fail(v);
        cr_assert_neq(ev_watcher_get_fd(own), fd, "an own-fd watcher got the shared fd");
        cr_assert_eq(count_fds_in(proc_fd), before + 2);

        /* Another value has a shared fd of its own. */
        w2 = watch_shared_or_fail(v2);
        cr_assert_neq(ev_watcher_get_fd(w2), fd, "two values share one fd");
        cr_assert_neq(ev_watcher_get_fd(w2), ev_watcher_get_fd(own));
        assert_is_eventfd(ev_watcher_get_fd(w2));
        cr_assert_eq(count_fds_in(proc_fd), before + 3);

        /* The same fd for the watchers' whole lives, sets and close included. */
        set_string_or_fail(v, "a1");
        close_or_fail(v);
        for (int i = 0; i < K; i++)
                cr_assert_eq(ev_watcher_get_fd(ws[i]), fd);
        cr_assert_eq(count_fds_in(proc_fd), before + 3);

        for (int i = 0; i < K; i++)
                ev_watcher_close(ws[i]);
        ev_watcher_close(own);
        ev_watcher_close(w2);
        ev_value_unref(v);
        ev_value_unref(v2);
        closedir(proc_fd);
}

/* -------------------------------------------------- edge-triggered epoll */

Test(shared_fd, edge_a_set_reports_once_in_every_epoll, .timeout = 10) {
        enum { K = 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct consumer cs[K];

        consumers_init(cs, K, v);
        assert_reports(cs, K, 0);

        set_string_or_fail(v, "a1");
        assert_reports(cs, K, 1);
        /* No second report until the next set, consumed or not. */
        assert_reports(cs, K, 0);
        assert_reports(cs, K, 0);
        for (int i = 0; i < K; i++)
                drain_string_or_fail(cs[i].w, 1, "a1");
        assert_reports(cs, K, 0);

        consumers_fini(cs, K);
}

Test(shared_fd, edge_sets_before_epoll_wait_coalesce_and_get_returns_the_newest, .timeout = 10) {
        enum { K = 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct consumer cs[K];

        consumers_init(cs, K, v);
        set_string_or_fail(v, "a1");
        set_string_or_fail(v, "a2");
        assert_reports(cs, K, 1);
        assert_reports(cs, K, 0);
        for (int i = 0; i < K; i++)
                drain_string_or_fail(cs[i].w, 2, "a2");

        /* Again once the consumers have drained: three sets, one report. */
        set_string_or_fail(v, "a3");
        set_string_or_fail(v, "a4");
        set_string_or_fail(v, "a5");
        assert_reports(cs, K, 1);
        assert_reports(cs, K, 0);
        for (int i = 0; i < K; i++)
                drain_string_or_fail(cs[i].w, 5, "a5");
        assert_reports(cs, K, 0);

        consumers_fini(cs, K);
}

Test(shared_fd, edge_the_next_set_after_draining_reports_again, .timeout = 10) {
        enum { K = 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct consumer cs[K];

        consumers_init(cs, K, v);
        for (int round = 1; round <= 5; round++) {
                char buf[16];

                snprintf(buf, sizeof(buf), "a%d", round);
                set_string_or_fail(v, buf);
                assert_reports(cs, K, 1);
                assert_reports(cs, K, 0);
                for (int i = 0; i < K; i++)
                        drain_string_or_fail(cs[i].w, (uint64_t)round, buf);
                assert_reports(cs, K, 0);
        }

        consumers_fini(cs, K);
}

Test(shared_fd, edge_every_set_reports_even_to_consumers_that_did_not_get, .timeout = 10) {
        enum { K = 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct consumer cs[K];

        /* The price of one write per set: no coalescing per consumer.  An
         * own-fd watcher with an unconsumed update gets no new edge; a
         * shared-fd one gets one per set. */
        consumers_init(cs, K, v);
        set_string_or_fail(v, "a1");
        assert_reports(cs, K, 1);
        set_string_or_fail(v, "a2");
        assert_reports(cs, K, 1);
        /* Half of them drain, the others do not; the next set reaches all. */
        drain_string_or_fail(cs[0].w, 2, "a2");
        drain_string_or_fail(cs[1].w, 2, "a2");
        set_string_or_fail(v, "a3");
        assert_reports(cs, K, 1);
        assert_reports(cs, K, 0);
        for (int i = 0; i < K; i++)
                drain_string_or_fail(cs[i].w, 3, "a3");

        consumers_fini(cs, K);
}

/* A consumer thread: one epoll_wait, then a drain; asserts nothing. */
struct sleeper {
        struct consumer c;
        pthread_t thread;
        atomic_int tid;          /* 0 until the thread is about to wait */
        int n_events;
        int n_got;
        uint64_t version;
        int last_r;
};

static void *sleeper_main(void *arg) {
        struct sleeper *t = arg;
        struct epoll_event ev;

        atomic_store(&t->tid, (int)syscall(SYS_gettid));
        do
                t->n_events = epoll_wait(t->c.epfd, &ev, 1, 5000);
        while (t->n_events < 0 && errno == EINTR);
        for (;;) {
                ev_value_snapshot *s;
                int r = ev_watcher_get(t->c.w, &s);

                if (r < 0) {
                        t->last_r = r;
                        break;
                }
                t->n_got++;
                t->version = ev_snapshot_version(s);
                ev_snapshot_unref(s);
        }
        return NULL;
}

/* Whether thread tid is asleep (state S), as far as /proc tells. */
static bool thread_sleeping(int tid) {
        char path[64], buf[512], *p;
        size_t n;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/task/%d/stat", tid);
        f = fopen(path, "re");
        if (!f)
                return false;
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] == 'S';
}

Test(shared_fd, one_set_wakes_every_consumer_asleep_in_epoll_wait, .timeout = 10) {
        enum { K = 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct sleeper ts[K];
        int64_t deadline;

        memset(ts, 0, sizeof(ts));
        for (int i = 0; i < K; i++) {
                consumer_init(&ts[i].c, watch_shared_or_fail(v));
                atomic_init(&ts[i].tid, 0);
                cr_assert_eq(pthread_create(&ts[i].thread, NULL, sleeper_main, &ts[i]), 0);
        }
        /* Best effort to set while they sleep; an edge made before a thread
         * reaches epoll_wait is reported all the same. */
        deadline = now_ms() + 1000;
        for (int i = 0; i < K; i++)
                while ((atomic_load(&ts[i].tid) == 0 || !thread_sleeping(atomic_load(&ts[i].tid))) &&
                       now_ms() < deadline)
                        sched_yield();

        set_string_or_fail(v, "wake up");
        for (int i = 0; i < K; i++) {
                cr_assert_eq(pthread_join(ts[i].thread, NULL), 0);
                cr_assert_eq(ts[i].n_events, 1, "consumer %d: epoll_wait gave %d", i, ts[i].n_events);
                cr_assert_eq(ts[i].n_got, 1, "consumer %d got %d snapshots", i, ts[i].n_got);
                cr_assert_eq(ts[i].version, 1);
                cr_assert_eq(ts[i].last_r, -EAGAIN, "consumer %d drained to %d", i, ts[i].last_r);
                consumer_fini(&ts[i].c);
        }
}

/* ------------------------------------------------------ what a set costs */

Test(shared_fd, a_set_makes_one_write_to_the_shared_fd_for_1_or_16_watchers, .timeout = 10) {
        static const int ks[] = { 1, 16 };

        for (size_t t = 0; t < sizeof(ks) / sizeof(ks[0]); t++) {
                ev_value *v = value_new_or_fail();
                ev_value_watcher *ws[16];
                int k = ks[t], fd;
                size_t n;

                for (int i = 0; i < k; i++)
                        ws[i] = watch_shared_or_fail(v);
                fd = ev_watcher_get_fd(ws[0]);

                /* Never set: nothing consumed. */
                n = count_sets(v, 1);
                cr_assert_eq(n, 1, "K=%d: a set made %zu system calls", k, n);
                assert_trapped_writes(n, fd, 1, -1);

                /* Whatever the watchers consumed: here every other one. */
                for (int i = 0; i < k; i += 2)
                        ev_snapshot_unref(get_or_fail(ws[i]));
                n = count_sets(v, 1);
                cr_assert_eq(n, 1, "K=%d: a set made %zu system calls", k, n);
                assert_trapped_writes(n, fd, 1, -1);

                /* One write per set, none coalesced. */
                n = count_sets(v, 5);
                cr_assert_eq(n, 5, "K=%d: five sets made %zu system calls", k, n);
                assert_trapped_writes(n, fd, 5, -1);

                for (int i = 0; i < k; i++)
                        ev_watcher_close(ws[i]);
                ev_value_unref(v);
        }
}

struct owned_then_close {
        ev_value *v;
        char *data;
        struct destroy_log *log;
        int r_owned, r_close, r_close_again, r_set;
};

static void set_owned_then_close(void *userdata) {
        struct owned_then_close *c = userdata;

        c->r_owned = ev_value_set_owned(c->v, c->data, strlen(c->data) + 1, record_destroy, c->log);
        c->r_close = ev_value_close(c->v);
        c->r_close_again = ev_value_close(c->v);
        c->r_set = ev_value_set(c->v, "late", 5);
}

Test(shared_fd, set_owned_and_the_close_write_the_shared_fd_once_each, .timeout = 10) {
        enum { K = 4 };
        struct destroy_log log = { 0 };
        char data[] = "owned";
        ev_value *v = value_new_or_fail();
        ev_value_watcher *ws[K];
        struct owned_then_close c = { .v = v, .data = data, .log = &log };
        size_t n;

        for (int i = 0; i < K; i++)
                ws[i] = watch_shared_or_fail(v);
        /* set_owned: one write; close: one; a second close and a refused
         * set: none. */
        n = count_syscalls(set_owned_then_close, &c, trapped, MAX_TRAPPED);
        cr_assert_eq(c.r_owned, 0);
        cr_assert_eq(c.r_close, 0);
        cr_assert_eq(c.r_close_again, 0);
        cr_assert_eq(c.r_set, -EPIPE);
        cr_assert_eq(n, 2, "set_owned, close, close, refused set made %zu system calls", n);
        assert_trapped_writes(n, ev_watcher_get_fd(ws[0]), 2, -1);

        for (int i = 0; i < K; i++) {
                get_string_or_fail(ws[i], 1, "owned");
                get_fails_with(ws[i], -EPIPE);
                ev_watcher_close(ws[i]);
        }
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(shared_fd, an_armed_own_fd_watcher_adds_one_write_to_its_own_fd, .timeout = 10) {
        enum { K = 16 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *ws[K], *own;
        int fd;
        size_t n;

        for (int i = 0; i < K; i++)
                ws[i] = watch_shared_or_fail(v);
        own = watch_or_fail(v); /* never set: armed */
        fd = ev_watcher_get_fd(ws[0]);

        n = count_sets(v, 1);
        cr_assert_eq(n, 2, "a set made %zu system calls, expected 2", n);
        assert_trapped_writes(n, fd, 1, ev_watcher_get_fd(own));

        /* The own-fd watcher holds its notification: the shared fd only. */
        n = count_sets(v, 3);
        cr_assert_eq(n, 3, "three sets made %zu system calls, expected 3", n);
        assert_trapped_writes(n, fd, 3, -1);

        /* Consumed, it is armed again and costs one write again.  (Its
         * counter is zero: the trapped write did not happen; the get copes.) */
        get_string_or_fail(own, 4, "x");
        n = count_sets(v, 1);
        cr_assert_eq(n, 2, "a set made %zu system calls, expected 2", n);
        assert_trapped_writes(n, fd, 1, ev_watcher_get_fd(own));

        ev_watcher_close(own);
        for (int i = 0; i < K; i++)
                ev_watcher_close(ws[i]);
}

Test(shared_fd, a_set_with_no_shared_watcher_left_writes_nothing, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_shared_or_fail(v);
        int fd = ev_watcher_get_fd(w);
        size_t n;

        set_string_or_fail(v, "a1");
        cr_assert_eq(eventfd_counter(fd), 1);
        ev_watcher_close(w);
        /* The value keeps the fd, but nobody listens: no write. */
        set_string_or_fail(v, "a2");
        cr_assert_eq(eventfd_counter(fd), 1, "a set wrote the shared fd of no watcher");
        n = count_sets(v, 3);
        cr_assert_eq(n, 0, "sets with no watcher made %zu system calls", n);
}

Test(shared_fd, get_never_reads_the_shared_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_shared_or_fail(v);
        struct get_call c = { .w = w };
        size_t n;

        set_string_or_fail(v, "a1");
        set_string_or_fail(v, "a2");
        /* A get that returns a snapshot: no read, no system call at all. */
        n = count_syscalls(get_call_once, &c, trapped, MAX_TRAPPED);
        cr_assert_eq(c.result, 0);
        cr_assert_eq(c.version, 2);
        cr_assert_eq(n, 0, "a successful get made %zu system calls", n);
        /* Nothing new. */
        n = count_syscalls(get_call_once, &c, trapped, MAX_TRAPPED);
        cr_assert_eq(c.result, -EAGAIN);
        cr_assert_eq(n, 0, "an -EAGAIN get made %zu system calls", n);
        /* Closed: the last snapshot was seen, -EPIPE. */
        close_or_fail(v);
        n = count_syscalls(get_call_once, &c, trapped, MAX_TRAPPED);
        cr_assert_eq(c.result, -EPIPE);
        cr_assert_eq(n, 0, "an -EPIPE get made %zu system calls", n);
}

Test(shared_fd, the_counter_grows_by_one_per_set_and_close_whatever_was_consumed, .timeout = 10) {
        enum { K = 4 };
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *ws[K], *own;
        char *data = strdup_or_fail("owned");
        int fd;

        /* The same rule as the counted system calls, seen from the kernel
         * (and so also under valgrind): the counter only ever grows. */
        for (int i = 0; i < K; i++)
                ws[i] = watch_shared_or_fail(v);
        own = watch_or_fail(v);
        fd = ev_watcher_get_fd(ws[0]);
        cr_assert_eq(eventfd_counter(fd), 0);

        set_string_or_fail(v, "a1");
        cr_assert_eq(eventfd_counter(fd), 1);
        for (int i = 0; i < K; i++)
                drain_string_or_fail(ws[i], 1, "a1");
        cr_assert_eq(eventfd_counter(fd), 1, "a get changed the shared counter");

        for (int i = 2; i <= 6; i++) {
                set_string_or_fail(v, "a");
                cr_assert_eq(eventfd_counter(fd), (uint64_t)i);
                ev_snapshot_unref(get_or_fail(ws[i % K]));
        }
        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        cr_assert_eq(eventfd_counter(fd), 7);
        close_or_fail(v);
        cr_assert_eq(eventfd_counter(fd), 8);
        close_or_fail(v);
        cr_assert_eq(ev_value_set(v, "late", 5), -EPIPE);
        cr_assert_eq(eventfd_counter(fd), 8, "a second close or a refused set wrote the fd");
        for (int i = 0; i < K; i++) {
                get_string_or_fail(ws[i], 7, "owned");
                get_fails_with(ws[i], -EPIPE);
        }
        cr_assert_eq(eventfd_counter(fd), 8);
        /* The own-fd watcher never holds more than one write. */
        cr_assert_eq(eventfd_counter(ev_watcher_get_fd(own)), 1);

        ev_watcher_close(own);
        for (int i = 0; i < K; i++)
                ev_watcher_close(ws[i]);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

/* ------------------------------------------------- readiness of the fd */

Test(shared_fd, never_set_not_readable_until_the_first_set_then_readable_for_good,
     .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct consumer c;
        int fd;

        consumer_init(&c, watch_shared_or_fail(v));
        fd = ev_watcher_get_fd(c.w);
        cr_assert_not(fd_readable(fd), "the shared fd of a value never set is readable");
        cr_assert_eq(consumer_events(&c, 0), 0);
        get_fails_with(c.w, -EAGAIN);
        cr_assert_not(fd_readable(fd));

        set_string_or_fail(v, "a1");
        cr_assert(fd_readable(fd), "the first set did not make the shared fd readable");
        cr_assert_eq(consumer_events(&c, 0), 1);
        drain_string_or_fail(c.w, 1, "a1");
        /* The library never drains it: readable with nothing new. */
        cr_assert(fd_readable(fd), "the shared fd was drained");
        cr_assert_eq(consumer_events(&c, 0), 0);

        consumer_fini(&c);
}

Test(shared_fd, watch_on_a_set_value_reports_at_once_and_gets_the_current_snapshot,
     .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        struct consumer c1, c2;

        set_string_or_fail(v, "a1");
        set_string_or_fail(v, "a2");
        consumer_init(&c1, watch_shared_or_fail(v));
        cr_assert(fd_readable(ev_watcher_get_fd(c1.w)));
        cr_assert_eq(consumer_events(&c1, 0), 1, "a new registration of a set value did not report");
        cr_assert_eq(consumer_events(&c1, 0), 0);
        drain_string_or_fail(c1.w, 2, "a2");

        /* A later shared watcher, on the fd that already exists. */
        consumer_init(&c2, watch_shared_or_fail(v));
        cr_assert_eq(ev_watcher_get_fd(c2.w), ev_watcher_get_fd(c1.w));
        cr_assert_eq(consumer_events(&c2, 0), 1, "a second registration did not report");
        drain_string_or_fail(c2.w, 2, "a2");
        cr_assert_eq(consumer_events(&c1, 0), 0, "a watch made an edge for the others");

        consumer_fini(&c1);
        consumer_fini(&c2);
}

Test(shared_fd, watch_on_a_closed_value_reports_at_once, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *set = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *unset = value_new_or_fail();
        struct consumer c1, c2;

        set_string_or_fail(set, "final");
        close_or_fail(set);
        close_or_fail(unset);
        consumer_init(&c1, watch_shared_or_fail(set));
        consumer_init(&c2, watch_shared_or_fail(unset));
        cr_assert_eq(consumer_events(&c1, 0), 1);
        cr_assert_eq(consumer_events(&c2, 0), 1);
        get_string_or_fail(c1.w, 1, "final");
        get_fails_with(c1.w, -EPIPE);
        get_fails_with(c2.w, -EPIPE);

        consumer_fini(&c1);
        consumer_fini(&c2);
}

Test(shared_fd, watch_on_a_value_set_while_no_shared_watcher_lived_reports_at_once,
     .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *v2 = value_new_or_fail();
        struct consumer c;

        /* The shared fd exists but was never written: its first shared
         * watcher left before the value was ever set. */
        ev_watcher_close(watch_shared_or_fail(v));
        set_string_or_fail(v, "a1");
        consumer_init(&c, watch_shared_or_fail(v));
        cr_assert(fd_readable(ev_watcher_get_fd(c.w)),
                  "a shared watcher of a set value is not readable");
        cr_assert_eq(consumer_events(&c, 0), 1, "a new registration of a set value did not report");
        drain_string_or_fail(c.w, 1, "a1");
        consumer_fini(&c);

        /* The same with a close instead of a set. */
        ev_watcher_close(watch_shared_or_fail(v2));
        close_or_fail(v2);
        consumer_init(&c, watch_shared_or_fail(v2));
        cr_assert_eq(consumer_events(&c, 0), 1, "a new registration of a closed value did not report");
        get_fails_with(c.w, -EPIPE);
        consumer_fini(&c);
}

/* ------------------------------------------------------------- the close */

Test(shared_fd, close_makes_an_edge_then_the_last_unseen_snapshot_then_epipe, .timeout = 10) {
        enum { K = 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_unrefp) ev_value *unset = value_new_or_fail();
        struct consumer cs[K], c;

        consumers_init(cs, K, v);
        set_string_or_fail(v, "last");
        assert_reports(cs, K, 1);
        /* Two consumers took the last snapshot, two did not. */
        drain_string_or_fail(cs[0].w, 1, "last");
        drain_string_or_fail(cs[1].w, 1, "last");
        assert_reports(cs, K, 0);

        close_or_fail(v);
        assert_reports(cs, K, 1);
        assert_reports(cs, K, 0);
        for (int i = 0; i < 2; i++) {
                get_fails_with(cs[i].w, -EPIPE);
                get_fails_with(cs[i].w, -EPIPE);
        }
        for (int i = 2; i < K; i++) {
                get_string_or_fail(cs[i].w, 1, "last");
                get_fails_with(cs[i].w, -EPIPE);
                get_fails_with(cs[i].w, -EPIPE);
        }
        /* Closing again is not news. */
        close_or_fail(v);
        assert_reports(cs, K, 0);

        /* A value closed without a set: an edge, then -EPIPE. */
        consumer_init(&c, watch_shared_or_fail(unset));
        cr_assert_eq(consumer_events(&c, 0), 0);
        close_or_fail(unset);
        cr_assert_eq(consumer_events(&c, 0), 1);
        get_fails_with(c.w, -EPIPE);

        consumer_fini(&c);
        consumers_fini(cs, K);
}

/* ------------------------------------------------------------- the wait */

Test(shared_fd, wait_gives_eopnotsupp_after_the_argument_checks, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_shared_or_fail(v);
        _cleanup_(ev_watcher_closep) ev_value_watcher *own = watch_or_fail(v);
        _cleanup_(closep) int cancel_fd = eventfd(1, EFD_CLOEXEC); /* readable */

        cr_assert_geq(cancel_fd, 0, "eventfd: %s", strerror(errno));
        /* Bad arguments first, and *ret is not written either way. */
        cr_assert_eq(ev_watcher_wait(w, 0, -1, NULL), -EINVAL);
        cr_assert_eq(ev_watcher_wait(w, -1, -1, NULL), -EINVAL);
        wait_fails_with(w, 0, -2, -EINVAL);

        /* Never set, where a wait would time out. */
        wait_fails_with(w, 0, -1, -EOPNOTSUPP);
        wait_fails_with(w, 50, -1, -EOPNOTSUPP);
        wait_fails_with(w, 0, cancel_fd, -EOPNOTSUPP);
        /* Set and unseen, where a wait would return it: it is left for get. */
        set_string_or_fail(v, "a1");
        wait_fails_with(w, -1, -1, -EOPNOTSUPP);
        wait_fails_with(w, -1, cancel_fd, -EOPNOTSUPP);
        drain_string_or_fail(w, 1, "a1");
        /* Seen, where a wait on the always readable fd would spin forever. */
        wait_fails_with(w, -1, -1, -EOPNOTSUPP);
        /* Closed with an unseen snapshot, which a wait on an own fd would
         * return (ev_watcher_wait(3)): it is left for get too. */
        set_string_or_fail(v, "a2");
        close_or_fail(v);
        wait_fails_with(w, -1, -1, -EOPNOTSUPP);
        get_string_or_fail(w, 2, "a2");
        /* Closed and seen. */
        wait_fails_with(w, -1, -1, -EOPNOTSUPP);
        get_fails_with(w, -EPIPE);

        /* An own-fd watcher of the same value waits as ever. */
        wait_string_or_fail(own, -1, -1, 2, "a2");
        wait_fails_with(own, -1, -1, -EPIPE);
}

/* ------------------------------------------------------- the fd's lifetime */

Test(shared_fd, closing_some_watchers_keeps_the_fd_open_for_the_rest, .timeout = 10) {
        enum { K = 4 };
        ev_value *v = value_new_or_fail();
        struct consumer cs[K];
        ev_value_watcher *late;
        int fd;

        consumers_init(cs, K, v);
        fd = ev_watcher_get_fd(cs[0].w);
        set_string_or_fail(v, "a1");
        assert_reports(cs, K, 1);

        for (int i = 0; i < K - 1; i++) {
                consumer_fini(&cs[i]);
                cr_assert_neq(fcntl(fd, F_GETFD), -1, "closing %d of %d watchers closed the fd: %s",
                              i + 1, K, strerror(errno));
                assert_is_eventfd(fd);
        }
        set_string_or_fail(v, "a2");
        cr_assert_eq(consumer_events(&cs[K - 1], 0), 1, "the set did not reach the last watcher");
        drain_string_or_fail(cs[K - 1].w, 2, "a2");

        /* A new shared watcher gets the same fd, readable. */
        late = watch_shared_or_fail(v);
        cr_assert_eq(ev_watcher_get_fd(late), fd);
        cr_assert(fd_readable(fd));
        drain_string_or_fail(late, 2, "a2");
        ev_watcher_close(late);

        /* The producer lets go: the watcher keeps the value and the fd. */
        v = ev_value_unref(v);
        cr_assert_neq(fcntl(fd, F_GETFD), -1, "the fd died with the producer's reference");
        assert_is_eventfd(fd);
        get_fails_with(cs[K - 1].w, -EAGAIN);

        consumer_fini(&cs[K - 1]);
}

Test(shared_fd, a_watcher_after_every_other_closed_gets_a_working_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *ws[2];
        struct consumer c;

        ws[0] = watch_shared_or_fail(v);
        ws[1] = watch_shared_or_fail(v);
        set_string_or_fail(v, "a1");
        ev_watcher_close(ws[0]);
        ev_watcher_close(ws[1]);

        /* The value lives on, and so does its fd. */
        consumer_init(&c, watch_shared_or_fail(v));
        assert_is_eventfd(ev_watcher_get_fd(c.w));
        cr_assert_eq(consumer_events(&c, 0), 1, "a new registration of a set value did not report");
        drain_string_or_fail(c.w, 1, "a1");
        set_string_or_fail(v, "a2");
        cr_assert_eq(consumer_events(&c, 0), 1, "the set did not reach the new watcher");
        drain_string_or_fail(c.w, 2, "a2");

        consumer_fini(&c);
}

Test(shared_fd, no_fd_is_left_after_the_watchers_and_the_value_are_gone, .timeout = 10) {
        enum { K = 16 };
        DIR *proc_fd = open_proc_fd_or_skip();
        int before = count_fds_in(proc_fd);
        ev_value_watcher *ws[K], *own[2];
        ev_value *v;
        int fd;

        /* Watchers closed first, then the value. */
        v = value_new_or_fail();
        for (int i = 0; i < K; i++)
                ws[i] = watch_shared_or_fail(v);
        own[0] = watch_or_fail(v);
        own[1] = watch_or_fail(v);
        fd = ev_watcher_get_fd(ws[0]);
        cr_assert_eq(count_fds_in(proc_fd), before + 3);
        set_string_or_fail(v, "a1");
        ev_snapshot_unref(get_or_fail(ws[0]));
        close_or_fail(v);
        for (int i = 0; i < K; i++)
                ev_watcher_close(ws[i]);
        ev_watcher_close(own[0]);
        ev_watcher_close(own[1]);
        ev_value_unref(v);
        cr_assert_eq(count_fds_in(proc_fd), before, "%d fds left", count_fds_in(proc_fd) - before);
        cr_assert_eq(fcntl(fd, F_GETFD), -1, "the shared fd %d is still open", fd);

        /* The value unreferenced first: the last watcher takes the fd along. */
        v = value_new_or_fail();
        for (int i = 0; i < K; i++)
                ws[i] = watch_shared_or_fail(v);
        own[0] = watch_or_fail(v);
        fd = ev_watcher_get_fd(ws[0]);
        set_string_or_fail(v, "a1");
        v = ev_value_unref(v);
        ev_watcher_close(own[0]);
        for (int i = 0; i < K - 1; i++)
                ev_watcher_close(ws[i]);
        cr_assert_eq(count_fds_in(proc_fd), before + 1);
        ev_watcher_close(ws[K - 1]);
        cr_assert_eq(count_fds_in(proc_fd), before, "%d fds left", count_fds_in(proc_fd) - before);
        cr_assert_eq(fcntl(fd, F_GETFD), -1, "the shared fd %d is still open", fd);

        closedir(proc_fd);
}

/* Fds that fill every free number below a lowered RLIMIT_NOFILE. */
#define MAX_FILLERS 64

struct fd_limit {
        struct rlimit saved;
        int fillers[MAX_FILLERS];
        int n_fillers;
};

/* Lower the soft limit to the number of open fds and fill the numbers
 * still free below it, so that the next fd cannot be created.  Skips when
 * the limit is not enforced (valgrind keeps its own fd table and only
 * pretends to apply RLIMIT_NOFILE). */
static void exhaust_fds(struct fd_limit *lim, DIR *proc_fd) {
        struct rlimit rl;

        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim->saved), 0);
        rl = lim->saved;
        rl.rlim_cur = (rlim_t)count_fds_in(proc_fd);
        cr_assert_lt(rl.rlim_cur, lim->saved.rlim_cur, "the soft limit is already tiny");
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));
        for (lim->n_fillers = 0; lim->n_fillers < MAX_FILLERS; lim->n_fillers++) {
                int fd = fcntl(dirfd(proc_fd), F_DUPFD_CLOEXEC, 0);

                if (fd < 0) {
                        cr_assert_eq(errno, EMFILE, "dup: %s", strerror(errno));
                        return;
                }
                lim->fillers[lim->n_fillers] = fd;
        }
        cr_skip_test("RLIMIT_NOFILE is not enforced here (running under valgrind?)");
}

static void restore_fds(struct fd_limit *lim) {
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim->saved), 0, "setrlimit: %s", strerror(errno));
        for (int i = 0; i < lim->n_fillers; i++)
                close(lim->fillers[i]);
        lim->n_fillers = 0;
}

Test(shared_fd, emfile_when_the_shared_fd_cannot_be_created_leaks_nothing, .timeout = 10) {
        struct destroy_log log = { 0 };
        DIR *proc_fd = open_proc_fd_or_skip();
        int start = count_fds_in(proc_fd), before;
        struct fd_limit lim;
        ev_value *v = value_new_or_fail(), *other = value_new_or_fail();
        ev_value_watcher *w, *o1, *o2;
        char *data = strdup_or_fail("owned");
        int fd;

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        o1 = watch_shared_or_fail(other); /* other's shared fd exists */

        exhaust_fds(&lim, proc_fd);
        before = count_fds_in(proc_fd);
        for (int i = 0; i < 3; i++) {
                int r;

                w = WATCHER_SENTINEL;
                r = ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &w);
                cr_assert_eq(r, -EMFILE, "ev_value_watch(SHARED_FD) at the fd limit: got %d (%s)",
                             r, strerror(-r));
                cr_assert_eq(w, WATCHER_SENTINEL, "a failed ev_value_watch wrote *ret");
                cr_assert_eq(count_fds_in(proc_fd), before, "a failed ev_value_watch left an fd");
        }
        /* A value whose shared fd exists needs no new fd for more watchers. */
        o2 = watch_shared_or_fail(other);
        cr_assert_eq(ev_watcher_get_fd(o2), ev_watcher_get_fd(o1));
        cr_assert_eq(count_fds_in(proc_fd), before);

        /* Room again: the watch succeeds, is readable, and gets. */
        restore_fds(&lim);
        w = watch_shared_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "the watcher of a set value is not readable");
        drain_string_or_fail(w, 1, "owned");
        /* The failed watches left no phantom watcher behind: with the one
         * real watcher gone, the close writes nothing. */
        fd = ev_watcher_get_fd(w);
        ev_watcher_close(w);
        close_or_fail(v);
        cr_assert_eq(eventfd_counter(fd), 1, "a close wrote the shared fd of no watcher");

        ev_watcher_close(o1);
        ev_watcher_close(o2);
        ev_value_unref(other);
        /* The failed watches took no reference on v: its owned snapshot
         * goes with the one reference the test holds. */
        cr_assert_eq(atomic_load(&log.calls), 0);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1, "a failed ev_value_watch kept the value alive");
        cr_assert_eq(count_fds_in(proc_fd), start, "%d fds left", count_fds_in(proc_fd) - start);
        closedir(proc_fd);
}

/* ---------------------------------------------------- own-fd beside shared */

Test(shared_fd, an_own_fd_watcher_beside_shared_ones_keeps_its_exact_readiness, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *own = watch_or_fail(v), *ws[2];
        struct consumer c_own, c_shared;
        int fd;

        ws[0] = watch_shared_or_fail(v);
        ws[1] = watch_shared_or_fail(v);
        fd = ev_watcher_get_fd(own);

        /* Readable iff a get would succeed, whatever the shared ones do. */
        cr_assert_not(fd_readable(fd));
        get_fails_with(own, -EAGAIN);
        set_string_or_fail(v, "a1");
        cr_assert(fd_readable(fd));
        drain_string_or_fail(ws[0], 1, "a1");
        drain_string_or_fail(ws[1], 1, "a1");
        cr_assert(fd_readable(fd), "a shared watcher's get cleared the own fd");
        get_string_or_fail(own, 1, "a1");
        cr_assert_not(fd_readable(fd), "readable after the get");
        get_fails_with(own, -EAGAIN);
        cr_assert(fd_readable(ev_watcher_get_fd(ws[0])));

        set_string_or_fail(v, "a2");
        set_string_or_fail(v, "a3");
        cr_assert(fd_readable(fd));
        get_string_or_fail(own, 3, "a3");
        cr_assert_not(fd_readable(fd));
        get_fails_with(own, -EAGAIN);

        /* Edge-triggered side by side: the own fd has one edge per
         * unconsumed update, the shared fd one per set. */
        consumer_init(&c_own, own);
        consumer_init(&c_shared, ws[0]);
        cr_assert_eq(consumer_events(&c_own, 0), 0);
        cr_assert_eq(consumer_events(&c_shared, 0), 1); /* readable at registration */
        set_string_or_fail(v, "a4");
        cr_assert_eq(consumer_events(&c_own, 0), 1);
        cr_assert_eq(consumer_events(&c_shared, 0), 1);
        set_string_or_fail(v, "a5");
        cr_assert_eq(consumer_events(&c_own, 0), 0, "an unconsumed own fd was written again");
        cr_assert_eq(consumer_events(&c_shared, 0), 1);
        cr_assert(fd_readable(fd));
        get_string_or_fail(own, 5, "a5");
        cr_assert_not(fd_readable(fd));

        /* Closed: readable for good; the last get, then -EPIPE. */
        close_or_fail(v);
        cr_assert_eq(consumer_events(&c_own, 0), 1);
        cr_assert_eq(consumer_events(&c_shared, 0), 1);
        cr_assert(fd_readable(fd));
        get_fails_with(own, -EPIPE);
        cr_assert(fd_readable(fd));
        get_string_or_fail(ws[0], 5, "a5");
        get_fails_with(ws[0], -EPIPE);
        get_string_or_fail(ws[1], 5, "a5");
        get_fails_with(ws[1], -EPIPE);

        consumer_fini(&c_own);
        consumer_fini(&c_shared);
        ev_watcher_close(ws[1]);
}
