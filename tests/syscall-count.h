/* SPDX-License-Identifier: MIT */
/*
 * count_syscalls() for the criterion tests: the seccomp trap of
 * common/syscall-trap.h, skipping the test (and saying why) where counting
 * is impossible, and failing it when the trap cannot be set up or the body
 * made more calls than could be recorded.
 */
#ifndef EV_VALUE_TEST_SYSCALL_COUNT_H
#define EV_VALUE_TEST_SYSCALL_COUNT_H

#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "syscall-trap.h"

/* Runs body(userdata) on a thread of its own with every system call trapped,
 * the first max of them recorded in calls[] (which may be NULL when max is
 * 0); returns how many system calls it made. */
static inline size_t count_syscalls(void (*body)(void *), void *userdata,
                                    struct trapped_call *calls, size_t max) {
        const char *unsupported = syscall_trap_unsupported();
        size_t count = 0;
        int r;

        if (unsupported)
                cr_skip_test("cannot count system calls: %s", unsupported);
        r = syscall_trap_run(body, userdata, calls, max, &count);
        if (r == -EINVAL || r == -ENOSYS)
                cr_skip_test("seccomp filters are not available: %s", strerror(-r));
        cr_assert_eq(r, 0, "seccomp: %s", strerror(-r));
        if (calls)
                cr_assert_leq(count, max, "%zu system calls, more than the %zu recorded",
                              count, max);
        return count;
}

#endif
