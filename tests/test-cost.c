/* SPDX-License-Identifier: MIT */
/*
 * The cost rules of the contract, counted exactly: which system calls a get
 * and a set make.  The calls under test run on a thread of their own under a
 * seccomp filter that traps every system call into a SIGSYS handler, which
 * records the call's number and arguments and makes it return as if it had
 * succeeded without running it.  So "a get that finds nothing new makes no
 * system call" and "a set writes each eventfd at most once per unconsumed
 * update" are checked by counting, not by timing.  x86_64 only (the handler
 * sets the return register) and not under a sanitizer (whose allocator makes
 * system calls of its own); elsewhere the tests skip.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "ev-value.h"
#include "helpers.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNTING_SKIP "the sanitizer's allocator makes system calls of its own"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define COUNTING_SKIP "the sanitizer's allocator makes system calls of its own"
#endif
#endif
#if !defined(__x86_64__) && !defined(COUNTING_SKIP)
#define COUNTING_SKIP "system calls are counted with a seccomp trap that is x86_64-only"
#endif

#ifndef COUNTING_SKIP

#define MAX_TRAPPED 64

struct trapped_call {
        long nr;
        long fd;
};

static struct trapped_call trapped[MAX_TRAPPED];
static volatile sig_atomic_t n_trapped;

/* Record the trapped call and fake its success: writes and reads of 8 bytes
 * (eventfd traffic) return 8, anything else returns 0. */
static void on_sigsys(int sig, siginfo_t *info, void *context) {
        ucontext_t *uc = context;
        greg_t *regs = uc->uc_mcontext.gregs;
        long nr = info->si_syscall;

        (void)sig;
        if (n_trapped < MAX_TRAPPED) {
                trapped[n_trapped].nr = nr;
                trapped[n_trapped].fd = (long)regs[REG_RDI];
        }
        n_trapped = n_trapped + 1;
        regs[REG_RAX] = (nr == SYS_write || nr == SYS_read) ? (greg_t)regs[REG_RDX] : 0;
}

/* Trap every system call of the calling thread but the ones it needs to
 * return from the handler and to exit. */
static int trap_all_syscalls(void) {
        struct sock_filter filter[] = {
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
                BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_rt_sigreturn, 3, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_exit, 2, 0),
                BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_madvise, 1, 0),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_TRAP),
                BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
        };
        struct sock_fprog prog = {
                .len = sizeof(filter) / sizeof(filter[0]),
                .filter = filter,
        };

        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return -errno;
        if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
                return -errno;
        return 0;
}

struct counted_run {
        void (*body)(void *userdata);
        void *userdata;
        int setup_error;
        int n_syscalls;
};

static void *counted_thread(void *userdata) {
        struct counted_run *run = userdata;

        /* Give this thread its malloc arena now, so that the snapshots the
         * body allocates come from memory the allocator already has.  The
         * volatile keeps the compiler from eliding the pair. */
        void *volatile warm = malloc(256);

        free(warm);
        run->setup_error = trap_all_syscalls();
        if (run->setup_error == 0) {
                run->body(run->userdata);
                /* Before the thread's own exit path makes calls of its own. */
                run->n_syscalls = n_trapped;
        }
        return NULL;
}

/* Run body on a new thread with every system call trapped and recorded;
 * returns how many system calls it made. */
static int count_syscalls(void (*body)(void *), void *userdata) {
        struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
        struct counted_run run = { .body = body, .userdata = userdata };
        pthread_t thread;

        cr_assert_eq(sigaction(SIGSYS, &sa, NULL), 0);
        n_trapped = 0;
        cr_assert_eq(pthread_create(&thread, NULL, counted_thread, &run), 0);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        if (run.setup_error == -EINVAL || run.setup_error == -ENOSYS)
                cr_skip_test("seccomp filters are not available: %s", strerror(-run.setup_error));
        cr_assert_eq(run.setup_error, 0, "seccomp: %s", strerror(-run.setup_error));
        return run.n_syscalls;
}

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
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct get_loop loop = { .w = w };

        /* Never set: nothing new. */
        cr_assert_eq(count_syscalls(get_many, &loop), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], -EAGAIN);

        /* Set and consumed: nothing new again. */
        set_string_or_fail(v, "a");
        ev_snapshot_unref(get_or_fail(w));
        cr_assert_eq(count_syscalls(get_many, &loop), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], -EAGAIN);

        /* Closed and drained: -EPIPE, still without a system call. */
        cr_assert_eq(ev_value_close(v), 0);
        cr_assert_eq(ev_watcher_get(w, &(ev_value_snapshot *){ NULL }), -EPIPE);
        cr_assert_eq(count_syscalls(get_many, &loop), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], -EPIPE);

        ev_watcher_close(w);
        ev_value_unref(v);
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
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w[N_WATCHERS];
        struct set_loop loop = { .v = v, .n_sets = N_CALLS };

        for (int i = 0; i < N_WATCHERS; i++)
                w[i] = watch_or_fail(v);
        /* The first set signals every watcher; none consumes it. */
        set_string_or_fail(v, "first");

        cr_assert_eq(count_syscalls(set_many, &loop), 0);
        for (int i = 0; i < N_CALLS; i++)
                cr_assert_eq(loop.results[i], 0);
        cr_assert_eq(ev_value_get_version(v), 1 + N_CALLS);
        for (int i = 0; i < N_WATCHERS; i++) {
                ev_value_snapshot *s = get_or_fail(w[i]);

                cr_assert_eq(ev_snapshot_version(s), 1 + N_CALLS);
                ev_snapshot_unref(s);
                ev_watcher_close(w[i]);
        }
        ev_value_unref(v);
}

Test(cost, set_writes_each_armed_watcher_once, .timeout = 10) {
        enum { N_WATCHERS = 10 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w[N_WATCHERS];
        struct set_loop loop = { .v = v, .n_sets = 5 };
        bool written[N_WATCHERS] = { false };

        for (int i = 0; i < N_WATCHERS; i++)
                w[i] = watch_or_fail(v); /* never set: all armed */

        /* Five sets: the first writes each eventfd once, the next four
         * find every watcher already signaled. */
        cr_assert_eq(count_syscalls(set_many, &loop), N_WATCHERS);
        for (int t = 0; t < N_WATCHERS; t++) {
                cr_assert_eq(trapped[t].nr, SYS_write);
                for (int i = 0; i < N_WATCHERS; i++) {
                        if (trapped[t].fd == ev_watcher_get_fd(w[i])) {
                                cr_assert(!written[i], "watcher %d written twice", i);
                                written[i] = true;
                        }
                }
        }
        for (int i = 0; i < N_WATCHERS; i++) {
                cr_assert(written[i], "watcher %d not written", i);
                ev_watcher_close(w[i]);
        }
        ev_value_unref(v);
}

struct consume {
        ev_value_watcher *w;
        int result;
        uint64_t version;
};

static void get_once(void *userdata) {
        struct consume *c = userdata;
        ev_value_snapshot *s = NULL;

        c->result = ev_watcher_get(c->w, &s);
        c->version = ev_snapshot_version(s);
        ev_snapshot_unref(s);
}

Test(cost, successful_get_reads_its_eventfd_once, .timeout = 10) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        struct consume c = { .w = w };

        for (int i = 0; i < 10; i++)
                set_string_or_fail(v, "many sets, one get");
        cr_assert_eq(count_syscalls(get_once, &c), 1);
        cr_assert_eq(trapped[0].nr, SYS_read);
        cr_assert_eq(trapped[0].fd, ev_watcher_get_fd(w));
        cr_assert_eq(c.result, 0);
        cr_assert_eq(c.version, 10);

        ev_watcher_close(w);
        ev_value_unref(v);
}

#else

Test(cost, system_calls_counted) {
        cr_skip_test("%s", COUNTING_SKIP);
}

#endif
