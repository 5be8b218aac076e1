/* SPDX-License-Identifier: MIT */
/*
 * Count the system calls a piece of code makes, exactly: run it on a thread
 * of its own under a seccomp filter that traps every system call into a
 * SIGSYS handler, which records the call and returns as if it had succeeded
 * without running it.  Shared by the cost tests and the benchmark, which is why
 * it lives in neither tests/ nor bench/.
 */
#ifndef EV_VALUE_SYSCALL_TRAP_H
#define EV_VALUE_SYSCALL_TRAP_H

#include <stddef.h>

/* Why counting is impossible in this build, or NULL when it works:
 * the trap is x86_64-only, and a sanitizer's allocator makes system calls
 * of its own. */
const char *syscall_trap_unsupported(void);

struct trapped_call {
        long nr;        /* system call number */
        long arg0;      /* first argument, e.g. the fd of a read or write */
};

/* Run body(userdata) on a new thread with every system call trapped; store
 * the first max calls in calls[] and their total number in *ret_count.
 * Reads and writes appear to succeed in full; other calls return 0.
 * 0, or a negative errno when the trap cannot be set up. */
int syscall_trap_run(void (*body)(void *userdata), void *userdata,
                     struct trapped_call *calls, size_t max, size_t *ret_count);

#endif
