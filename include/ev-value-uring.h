/* SPDX-License-Identifier: MIT */
/*
 * libevvalue in io_uring reactors: helpers that prepare the submission that
 * waits for a watcher, named and shaped after liburing's io_uring_prep_*.
 * Installed only when libevvalue was built with liburing.  Like liburing's
 * own prep helpers they are static inline, so libevvalue.so does not link
 * liburing and an application pays for io_uring only if it uses it.
 *
 * The recipe (ev_watcher_prep_poll(3) has it in full):
 *   1. prepare a poll on the watcher's eventfd with ev_watcher_prep_poll()
 *      or ev_watcher_prep_poll_multishot() and your user_data, and submit;
 *   2. on its CQE, call ev_watcher_get() until it returns -EAGAIN (nothing
 *      more) or -EPIPE (the value is closed); a poll may post a CQE when
 *      nothing is new any more, and then the get just returns -EAGAIN;
 *   3. re-arm: a single-shot poll after every CQE, a multishot poll when a
 *      CQE arrives without IORING_CQE_F_MORE;
 *   4. before ev_watcher_close(), cancel a pending poll with
 *      ev_watcher_prep_poll_remove() and wait for both CQEs, which may
 *      come in either order.
 * Never read the eventfd with IORING_OP_READ: older kernels complete the
 * read at once with -EAGAIN (a loop around it spins), newer ones wait and
 * then drain the counter behind the library's back, losing notifications.
 */
#ifndef EV_VALUE_URING_H
#define EV_VALUE_URING_H

/* liburing first: it defines _GNU_SOURCE for itself, which only works
 * before any system header. */
#include <liburing.h>
#include <errno.h>
#include <poll.h>
#include <stdint.h>

#include <ev-value.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Prepare a single-shot poll that completes when w has something new. */
static inline int ev_watcher_prep_poll(struct io_uring_sqe *sqe, const ev_value_watcher *w,
                                       uint64_t user_data) {
        int fd = ev_watcher_get_fd(w);

        if (!sqe || fd < 0)
                return -EINVAL;
        io_uring_prep_poll_add(sqe, fd, POLLIN);
        io_uring_sqe_set_data64(sqe, user_data);
        return 0;
}

/* Prepare a multishot poll that posts a CQE each time w gets something new. */
static inline int ev_watcher_prep_poll_multishot(struct io_uring_sqe *sqe,
                                                 const ev_value_watcher *w,
                                                 uint64_t user_data) {
        int fd = ev_watcher_get_fd(w);

        if (!sqe || fd < 0)
                return -EINVAL;
        io_uring_prep_poll_multishot(sqe, fd, POLLIN);
        io_uring_sqe_set_data64(sqe, user_data);
        return 0;
}

/* Prepare the removal of the poll submitted with poll_user_data (before
 * ev_watcher_close); the removal's own CQE carries user_data. */
static inline int ev_watcher_prep_poll_remove(struct io_uring_sqe *sqe, uint64_t poll_user_data,
                                              uint64_t user_data) {
        if (!sqe)
                return -EINVAL;
        io_uring_prep_poll_remove(sqe, poll_user_data);
        io_uring_sqe_set_data64(sqe, user_data);
        return 0;
}

#ifdef __cplusplus
}
#endif

#endif /* EV_VALUE_URING_H */
