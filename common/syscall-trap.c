/* SPDX-License-Identifier: MIT */
/*
 * The seccomp trap of syscall-trap.h.  The filter traps everything but the
 * calls the thread needs to return from the handler and to exit; the
 * handler (x86_64) records the call and sets the return register.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

#include "syscall-trap.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TRAP_UNSUPPORTED "the sanitizer's allocator makes system calls of its own"
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TRAP_UNSUPPORTED "the sanitizer's allocator makes system calls of its own"
#endif
#endif
#if !defined(__x86_64__) && !defined(TRAP_UNSUPPORTED)
#define TRAP_UNSUPPORTED "the seccomp trap sets the return register of x86_64 only"
#endif

#ifdef TRAP_UNSUPPORTED

const char *syscall_trap_unsupported(void) {
        return TRAP_UNSUPPORTED;
}

int syscall_trap_run(void (*body)(void *userdata), void *userdata,
                     struct trapped_call *calls, size_t max, size_t *ret_count) {
        return -ENOTSUP;
}

#else

#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

/* The one trapped thread's record; the handler runs on that thread. */
static struct trapped_call *trap_calls;
static size_t trap_max;
static volatile size_t trap_count;

static void on_sigsys(int sig, siginfo_t *info, void *context) {
        greg_t *regs = ((ucontext_t *)context)->uc_mcontext.gregs;
        long nr = info->si_syscall;

        if (trap_count < trap_max) {
                trap_calls[trap_count].nr = nr;
                trap_calls[trap_count].arg0 = (long)regs[REG_RDI];
        }
        trap_count = trap_count + 1;
        regs[REG_RAX] = (nr == SYS_write || nr == SYS_read) ? regs[REG_RDX] : 0;
}

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

struct trapped_run {
        void (*body)(void *userdata);
        void *userdata;
        int error;
        size_t count;
};

static void *trapped_thread(void *userdata) {
        struct trapped_run *run = userdata;
        /* Give this thread its malloc arena now, so that what the body
         * allocates comes from memory the allocator already has.  The
         * volatile keeps the compiler from eliding the pair. */
        void *volatile warm = malloc(256);

        free(warm);
        run->error = trap_all_syscalls();
        if (run->error == 0) {
                run->body(run->userdata);
                /* Before the thread's own exit path makes calls of its own. */
                run->count = trap_count;
        }
        return NULL;
}

const char *syscall_trap_unsupported(void) {
        return NULL;
}

int syscall_trap_run(void (*body)(void *userdata), void *userdata,
                     struct trapped_call *calls, size_t max, size_t *ret_count) {
        struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
        struct trapped_run run = { .body = body, .userdata = userdata };
        pthread_t thread;
        int r;

        if (sigaction(SIGSYS, &sa, NULL) < 0)
                return -errno;
        trap_calls = calls;
        trap_max = calls ? max : 0;
        trap_count = 0;
        r = pthread_create(&thread, NULL, trapped_thread, &run);
        if (r != 0)
                return -r;
        pthread_join(thread, NULL);
        if (run.error < 0)
                return run.error;
        *ret_count = run.count;
        return 0;
}

#endif
