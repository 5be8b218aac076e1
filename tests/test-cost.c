/* SPDX-License-Identifier: MIT */
/*
 * The rules of libevvalue(7) "Cost", counted exactly: which system calls a get
 * and a set make.  The calls under test run on a thread of their own under
 * a seccomp trap that records every system call instead of running it.  So
 * "a get that finds nothing new makes no system call" and "a set writes each
 * eventfd at most once per unconsumed update" are checked by counting, not
 * by timing (see syscall-trap.h; where counting is impossible the tests skip
 * and say why).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>

#include "ev-value-ipc.h"
#include "helpers.h"
#include "syscall-count.h"

#define MAX_TRAPPED 64

static struct trapped_call trapped[MAX_TRAPPED];

#define N_CALLS 1000

struct get_loop {
        ev_value_watcher *w;
        int results[N_CALLS];
};

static void get_many(void *userdata) {
        struct get_loop *loop = userdata;
        ev_value_snapshot *s;

        for (int i = 0; i < N_CALLS; i++)
                loop->results[i] = ev_watcher_get(loop->w, &s);
}

Test(cost, get_with_nothing_new_makes_no_system_call, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct get_loop loop = { .w = w };

        /* Never set: nothing new. */
        cr_assert_eq(count_syscalls(get_many, &loop, trapped, MAX_TRAPPED), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], -EAGAIN);

        /* Set and consumed: nothing new again. */
        set_string_or_fail(v, "a");
        ev_snapshot_unref(get_or_fail(w));
        cr_assert_eq(count_syscalls(get_many, &loop, trapped, MAX_TRAPPED), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], -EAGAIN);

        /* Closed and drained: -EPIPE, still without a system call. */
        close_or_fail(v);
        get_fails_with(w, -EPIPE);
        cr_assert_eq(count_syscalls(get_many, &loop, trapped, MAX_TRAPPED), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], -EPIPE);
}

struct set_loop {
        ev_value *v;
        int n_sets;
        int results[N_CALLS];
};

static void set_many(void *userdata) {
        struct set_loop *loop = userdata;
        char byte = 'x';

        for (int i = 0; i < loop->n_sets; i++)
                loop->results[i] = ev_value_set(loop->v, &byte, 1);
}

Test(cost, set_to_watchers_already_signaled_makes_no_system_call, .timeout = 10) {
        enum { N_WATCHERS = 100 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *w[N_WATCHERS];
        struct set_loop loop = { .v = v, .n_sets = N_CALLS };

        for (int i = 0; i < N_WATCHERS; i++)
                w[i] = watch_or_fail(v);
        /* The first set signals every watcher; none consumes it. */
        set_string_or_fail(v, "first");

        cr_assert_eq(count_syscalls(set_many, &loop, trapped, MAX_TRAPPED), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], 0);
        cr_assert_eq(ev_value_get_version(v), 1 + N_CALLS);
        for (int i = 0; i < N_WATCHERS; i++) {
                ev_value_snapshot *s = get_or_fail(w[i]);

                cr_assert_eq(ev_snapshot_version(s), 1 + N_CALLS);
                ev_snapshot_unref(s);
                ev_watcher_close(w[i]);
        }
}

Test(cost, set_of_a_value_served_to_nobody_makes_no_system_call, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_server_freep) ev_value_server *srv = NULL;
        struct set_loop loop = { .v = v, .n_sets = N_CALLS };
        char path[64];

        snprintf(path, sizeof(path), "@evvalue-test-cost-%ld", (long)getpid());
        cr_assert_eq(ev_value_serve_path(v, path, 0, &srv), 0);
        set_string_or_fail(v, "first");

        cr_assert_eq(count_syscalls(set_many, &loop, trapped, MAX_TRAPPED), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], 0);
        cr_assert_eq(ev_value_get_version(v), 1 + N_CALLS);
}

Test(cost, set_writes_each_armed_watcher_once, .timeout = 10) {
        enum { N_WATCHERS = 10 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *w[N_WATCHERS];
        struct set_loop loop = { .v = v, .n_sets = 5 };
        bool written[N_WATCHERS] = { false };

        for (int i = 0; i < N_WATCHERS; i++)
                w[i] = watch_or_fail(v); /* never set: all armed */

        /* Five sets: the first writes each eventfd once, the next four
         * find every watcher already signaled. */
        cr_assert_eq(count_syscalls(set_many, &loop, trapped, MAX_TRAPPED), N_WATCHERS);
        for (int t = 0; t < N_WATCHERS; t++) {
                cr_assert_eq(trapped[t].nr, SYS_write);
                for (int i = 0; i < N_WATCHERS; i++) {
                        if (trapped[t].arg0 == ev_watcher_get_fd(w[i])) {
                                cr_assert(!written[i], "watcher %d written twice", i);
                                written[i] = true;
                        }
                }
        }
        for (int i = 0; i < N_WATCHERS; i++) {
                cr_assert(written[i], "watcher %d not written", i);
                ev_watcher_close(w[i]);
        }
}

Test(cost, successful_get_reads_its_eventfd_once, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct get_call c = { .w = w };

        for (int i = 0; i < 10; i++)
                set_string_or_fail(v, "many sets, one get");
        cr_assert_eq(count_syscalls(get_call_once, &c, trapped, MAX_TRAPPED), 1);
        cr_assert_eq(trapped[0].nr, SYS_read);
        cr_assert_eq(trapped[0].arg0, ev_watcher_get_fd(w));
        cr_assert_eq(c.result, 0);
        cr_assert_eq(c.version, 10);
}
