/* SPDX-License-Identifier: MIT */
/*
 * Watchers: one consumer's view of a value.  ev_watcher_get compares the
 * value's published state with the state it last returned; only when they
 * differ does it take the current snapshot and re-arm its eventfd, both
 * without a lock (slot.c, notify.c).  ev_watcher_wait sleeps in ppoll on
 * the watcher's eventfd and the caller's cancel fd against a monotonic
 * deadline.  A remote watcher (lib/ipc/remote.c) has the same get, wait
 * and close; only what its get does is the backend's.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* What a new watcher has seen: nothing (state 0, which a set or close
 * changes) unless it skips the current snapshot: then everything so far. */
static uint64_t watcher_start_seen(ev_value *v, unsigned flags) {
        if (flags & EV_VALUE_WATCH_SKIP_CURRENT)
                return atomic_load(&v->state);
        return 0;
}

/* Give w its own eventfd, armed or readable as its state calls for. */
static int watcher_attach_own_fd(ev_value_watcher *w, ev_value *v, unsigned flags) {
        int fd = ev__eventfd_new();

        if (fd < 0)
                return fd;
        w->fd = fd;
        w->value = v;
        w->seen_state = watcher_start_seen(v, flags);
        ev__notify_attach(w, w->seen_state);
        return 0;
}

/* The value's shared eventfd, created on first use. */
static int value_shared_fd(ev_value *v) {
        int fd = atomic_load(&v->shared_fd), unset = -1;

        if (fd >= 0)
                return fd;
        fd = ev__eventfd_new();
        if (fd < 0)
                return fd;
        /* Another watcher may have installed one meanwhile: use it. */
        if (!atomic_compare_exchange_strong(&v->shared_fd, &unset, fd)) {
                close(fd);
                fd = unset;
        }
        return fd;
}

/* Give w the value's shared eventfd. */
static int watcher_attach_shared_fd(ev_value_watcher *w, ev_value *v, unsigned flags) {
        int fd = value_shared_fd(v);

        if (fd < 0)
                return fd;
        w->fd = fd;
        w->shared = true;
        w->value = v;
        w->seen_state = watcher_start_seen(v, flags);
        /* Sets made while no shared watcher lived wrote nothing; make the
         * fd readable so a new edge-triggered registration reports at
         * once.  (A set that counts this watcher writes it too: harmless,
         * the shared fd is never drained.) */
        if (atomic_fetch_add(&v->n_shared, 1) == 0 && atomic_load(&v->state) != 0)
                ev__eventfd_signal(fd);
        return 0;
}

EV_VALUE_PUBLIC int ev_value_watch(ev_value *v, unsigned flags, ev_value_watcher **ret) {
        ev_value_watcher *w;
        int r;

        if (!v || (flags & ~(unsigned)(EV_VALUE_WATCH_SHARED_FD | EV_VALUE_WATCH_SKIP_CURRENT)) ||
            !ret)
                return -EINVAL;
        w = ev__fault(EV__FAULT_WATCHER_ALLOC) ? NULL : calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        atomic_flag_clear(&w->busy);
        if (flags & EV_VALUE_WATCH_SHARED_FD)
                r = watcher_attach_shared_fd(w, v, flags);
        else
                r = watcher_attach_own_fd(w, v, flags);
        if (r < 0) {
                free(w);
                return r;
        }
        ev_value_ref(v);
        atomic_fetch_add_explicit(&v->n_watchers, 1, memory_order_relaxed);
        *ret = w;
        return 0;
}

int ev__watcher_new_remote(int fd, struct ev__remote *remote, ev_value_watcher **ret) {
        ev_value_watcher *w = ev__fault(EV__FAULT_WATCHER_ALLOC) ? NULL : calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        atomic_flag_clear(&w->busy);
        w->fd = fd;
        w->remote = remote;
        *ret = w;
        return 0;
}

EV_VALUE_PUBLIC int ev_watcher_get_fd(const ev_value_watcher *w) {
        return w ? w->fd : -EINVAL;
}

/* The state changed since w's last get: take the newest snapshot, or
 * -EPIPE when it changed only by closing; then re-arm unless closed.  The
 * snapshot is stored before the state that announces it, so it is at
 * least as new as `state`, and may be newer (the state then counts it
 * too: ev__value_take_current). */
static int watcher_take_new(ev_value_watcher *w, uint64_t state, ev_value_snapshot **ret) {
        ev_value *v = w->value;
        ev_value_snapshot *s = ev__value_take_current(v);
        uint64_t seen = state;

        if (s && s->version > w->seen_state >> 1) {
                seen = s->version << 1;
                /* Closed after it: then its end is seen too. */
                if (atomic_load(&v->state) == (seen | EV_VALUE_STATE_CLOSED))
                        seen |= EV_VALUE_STATE_CLOSED;
        } else {
                s = ev_snapshot_unref(s);
        }
        w->seen_state = seen;
        if (!(seen & EV_VALUE_STATE_CLOSED) && !w->shared)
                ev__notify_rearm(w, seen);
        if (!s)
                return v->end_error;
        *ret = s;
        return 0;
}

/* The body of ev_watcher_get, for a caller that holds w->busy.  The state
 * is never below the one seen (ev__value_take_current makes it count the
 * snapshot taken); <= rather than == only so that nothing here relies on
 * it. */
static int watcher_take(ev_value_watcher *w, ev_value_snapshot **ret) {
        uint64_t state;

        if (w->remote)
                return ev__remote_take(w->remote, ret);
        state = atomic_load_explicit(&w->value->state, memory_order_acquire);
        if (state <= w->seen_state)
                return (state & EV_VALUE_STATE_CLOSED) ? w->value->end_error : -EAGAIN;
        return watcher_take_new(w, state, ret);
}

static bool watcher_try_acquire(ev_value_watcher *w) {
        return !atomic_flag_test_and_set_explicit(&w->busy, memory_order_acquire);
}

static void watcher_release(ev_value_watcher *w) {
        atomic_flag_clear_explicit(&w->busy, memory_order_release);
}

EV_VALUE_PUBLIC int ev_watcher_get(ev_value_watcher *w, ev_value_snapshot **ret) {
        int r;

        if (!w || !ret)
                return -EINVAL;
        if (!watcher_try_acquire(w))
                return -EBUSY;
        r = watcher_take(w, ret);
        watcher_release(w);
        return r;
}

int64_t ev__monotonic_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* A wait's timeout.  The clock is read only once the wait must sleep: a
 * wait that finds its snapshot, or a zero timeout, never reads it. */
struct wait_deadline {
        int timeout_ms;         /* as given: < 0 forever */
        bool started;           /* at is set */
        int64_t at;             /* monotonic ns */
};

static struct wait_deadline wait_deadline(int timeout_ms) {
        return (struct wait_deadline){ .timeout_ms = timeout_ms };
}

/* Nanoseconds left, starting the clock on first use; -1 for forever. */
static int64_t wait_left(struct wait_deadline *d) {
        int64_t left, now;

        if (d->timeout_ms < 0)
                return -1;
        if (d->timeout_ms == 0)
                return 0;
        now = ev__monotonic_ns();
        if (!d->started) {
                d->at = now + (int64_t)d->timeout_ms * 1000000;
                d->started = true;
        }
        left = d->at - now;
        return left > 0 ? left : 0;
}

/* Sleep until w's eventfd or cancel_fd is ready or left_ns pass; < 0
 * means forever.  Fills pfd[].revents; EINTR leaves them 0. */
static int watcher_poll(struct pollfd pfd[2], nfds_t nfds, int64_t left_ns) {
        struct timespec ts = { .tv_sec = left_ns / 1000000000, .tv_nsec = left_ns % 1000000000 };

        pfd[0].revents = pfd[1].revents = 0;
        if (ppoll(pfd, nfds, left_ns < 0 ? NULL : &ts, NULL) < 0 && errno != EINTR)
                return -errno;
        if (pfd[0].revents & POLLNVAL)
                return -EBADF; /* the caller closed the watcher's fd */
        return 0;
}

/* The body of ev_watcher_wait, for a caller that holds w->busy.  Every pass
 * applies the documented precedence: new snapshot or -EPIPE, then cancel,
 * then timeout.  Without a cancel fd, an expired deadline needs no poll. */
static int watcher_wait(ev_value_watcher *w, struct wait_deadline *d, int cancel_fd,
                        ev_value_snapshot **ret) {
        struct pollfd pfd[2] = {
                { .fd = w->fd, .events = POLLIN },
                { .fd = cancel_fd, .events = POLLIN },
        };
        nfds_t nfds = cancel_fd >= 0 ? 2 : 1;
        bool polled = false;
        int64_t left;
        int r;

        for (;;) {
                r = watcher_take(w, ret);
                if (r != -EAGAIN)
                        return r;
                if (polled) {
                        if (pfd[1].revents & POLLNVAL)
                                return -EBADF;
                        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
                                return -ECANCELED;
                }
                left = wait_left(d);
                if (left == 0 && (polled || cancel_fd < 0))
                        return -ETIMEDOUT;
                r = watcher_poll(pfd, nfds, left);
                if (r < 0)
                        return r;
                polled = true;
        }
}

/* The checks every wait makes before it may take w->busy. */
static int wait_check(const ev_value_watcher *w, int cancel_fd, ev_value_snapshot **ret) {
        if (!w || !ret || cancel_fd < -1)
                return -EINVAL;
        if (w->shared)
                return -EOPNOTSUPP; /* a shared fd stays readable: poll cannot sleep on it */
        return 0;
}

EV_VALUE_PUBLIC int ev_watcher_wait(ev_value_watcher *w, int timeout_ms, int cancel_fd,
                                    ev_value_snapshot **ret) {
        struct wait_deadline d = wait_deadline(timeout_ms);
        int r = wait_check(w, cancel_fd, ret);

        if (r < 0)
                return r;
        if (!watcher_try_acquire(w))
                return -EBUSY;
        r = watcher_wait(w, &d, cancel_fd, ret);
        watcher_release(w);
        return r;
}

/* -EPIPE (or its value's or remote watcher's end) once w has seen everything its value
 * will ever have, else 0. */
static int watcher_end(const ev_value_watcher *w) {
        uint64_t state;

        if (w->remote)
                return ev__remote_end(w->remote);
        state = atomic_load_explicit(&w->value->state, memory_order_acquire);
        return state == w->seen_state && (state & EV_VALUE_STATE_CLOSED) ? w->value->end_error : 0;
}

/* After a rejected snapshot: -EPIPE when it was the closed value's last,
 * else -ECANCELED or -ETIMEDOUT, or 0 to go on; so that a producer that
 * keeps setting rejected snapshots cannot hold a waiter past its deadline
 * or its cancellation. */
static int wait_interrupted(const ev_value_watcher *w, struct wait_deadline *d, int cancel_fd) {
        struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };
        int end = watcher_end(w);

        if (end < 0)
                return end;
        if (cancel_fd >= 0 && poll(&pfd, 1, 0) == 1)
                return pfd.revents & POLLNVAL ? -EBADF : -ECANCELED;
        if (wait_left(d) == 0)
                return -ETIMEDOUT;
        return 0;
}

EV_VALUE_PUBLIC int ev_watcher_wait_until(ev_value_watcher *w, ev_value_predicate pred,
                                          void *userdata, int timeout_ms, int cancel_fd,
                                          ev_value_snapshot **ret) {
        struct wait_deadline d = wait_deadline(timeout_ms);
        ev_value_snapshot *s;
        int r = pred ? wait_check(w, cancel_fd, ret) : -EINVAL;

        if (r < 0)
                return r;
        if (!watcher_try_acquire(w))
                return -EBUSY;
        /* One deadline for the whole wait: rejected snapshots do not
         * restart the timeout. */
        while ((r = watcher_wait(w, &d, cancel_fd, &s)) == 0 && !pred(s, userdata)) {
                ev_snapshot_unref(s);
                r = wait_interrupted(w, &d, cancel_fd);
                if (r < 0)
                        break;
        }
        watcher_release(w);
        if (r == 0)
                *ret = s;
        return r;
}

EV_VALUE_PUBLIC ev_value_watcher *ev_watcher_close(ev_value_watcher *w) {
        ev_value *v;

        if (!w)
                return NULL;
        if (w->remote) {
                ev__remote_free(w->remote); /* closes the connection */
                free(w);
                return NULL;
        }
        v = w->value;
        atomic_fetch_sub_explicit(&v->n_watchers, 1, memory_order_relaxed);
        if (w->shared) {
                /* The shared fd belongs to the value and lives as long. */
                atomic_fetch_sub(&v->n_shared, 1);
                free(w);
        } else {
                ev__notify_detach(w);
        }
        ev_value_unref(v);
        return NULL;
}
