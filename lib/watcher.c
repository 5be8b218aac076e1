/* SPDX-License-Identifier: MIT */
/*
 * Watchers: one consumer's view of a value.  ev_watcher_get compares the
 * value's published state with the state it last returned and only takes the
 * value's lock when they differ; ev_watcher_wait sleeps in ppoll on the
 * watcher's eventfd and the caller's cancel fd against a monotonic deadline.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

/* Under v->lock: what a new watcher has seen.  Nothing (state 0, which a
 * set or close changes) unless it skips the current snapshot: then
 * everything so far. */
static void watcher_start_seen_locked(ev_value_watcher *w, ev_value *v, unsigned flags) {
        if (flags & EV_VALUE_WATCH_SKIP_CURRENT)
                w->seen_state = atomic_load_explicit(&v->state, memory_order_relaxed);
}

/* Give w its own eventfd and put it on the list its state calls for. */
static int watcher_attach_own_fd(ev_value_watcher *w, ev_value *v, unsigned flags) {
        int fd = ev__eventfd_new();
        uint64_t state;

        if (fd < 0)
                return fd;
        w->fd = fd;
        pthread_mutex_lock(&v->lock);
        watcher_start_seen_locked(w, v, flags);
        /* Armed when nothing is unseen and the value is open; otherwise
         * readable at once, and forever once closed. */
        state = atomic_load_explicit(&v->state, memory_order_relaxed);
        if (state == w->seen_state && !(state & EV_VALUE_STATE_CLOSED)) {
                ev__list_add(&v->armed, &w->node);
        } else {
                ev__eventfd_signal(fd);
                w->signaled = true;
                ev__list_add(&v->signaled, &w->node);
        }
        pthread_mutex_unlock(&v->lock);
        return 0;
}

/* Give w the value's shared eventfd, creating it on first use. */
static int watcher_attach_shared_fd(ev_value_watcher *w, ev_value *v, unsigned flags) {
        int r = 0;

        ev__list_init(&w->node);
        w->shared = true;
        pthread_mutex_lock(&v->lock);
        if (v->shared_fd < 0) {
                r = ev__eventfd_new();
                if (r >= 0)
                        v->shared_fd = r;
        }
        if (r >= 0) {
                /* Sets made while no shared watcher lived wrote nothing; make
                 * the fd readable so a new edge-triggered registration
                 * reports at once. */
                if (v->n_shared == 0 && atomic_load_explicit(&v->state, memory_order_relaxed) != 0)
                        ev__eventfd_signal(v->shared_fd);
                v->n_shared++;
                w->fd = v->shared_fd;
                watcher_start_seen_locked(w, v, flags);
        }
        pthread_mutex_unlock(&v->lock);
        return r < 0 ? r : 0;
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
        w->seen_state = 0;
        atomic_flag_clear(&w->busy);
        atomic_init(&w->pending_writes, 0);
        if (flags & EV_VALUE_WATCH_SHARED_FD)
                r = watcher_attach_shared_fd(w, v, flags);
        else
                r = watcher_attach_own_fd(w, v, flags);
        if (r < 0) {
                free(w);
                return r;
        }
        w->value = ev_value_ref(v);
        atomic_fetch_add_explicit(&v->n_watchers, 1, memory_order_relaxed);
        *ret = w;
        return 0;
}

EV_VALUE_PUBLIC int ev_watcher_get_fd(const ev_value_watcher *w) {
        return w ? w->fd : -EINVAL;
}

/* Clear w's eventfd.  If the write a set owes it has not landed yet, wait
 * for it (it is a system call away), so that it cannot land after the
 * clear and leave the fd readable with nothing new.  pending_writes is read
 * before the fd: a set decrements it only after its write, so when it was
 * zero before a read that found the fd empty, no write can still land.
 * (Read after the fd, a write and its decrement could both fall between
 * the two reads and be missed.) */
static void watcher_clear_fd(ev_value_watcher *w) {
        struct pollfd pfd = { .fd = w->fd, .events = POLLIN };

        for (;;) {
                bool owed = atomic_load(&w->pending_writes) > 0;

                if (ev__eventfd_clear(w->fd) || !owed)
                        return;
                poll(&pfd, 1, 10);
        }
}

/* Take the newest snapshot this watcher has not returned, under the lock,
 * and re-arm its eventfd unless the value is closed. */
static int watcher_take_locked(ev_value_watcher *w, ev_value_snapshot **ret) {
        ev_value *v = w->value;
        ev_value_snapshot *s = NULL;
        uint64_t state;

        pthread_mutex_lock(&v->lock);
        state = atomic_load_explicit(&v->state, memory_order_relaxed);
        if ((state >> 1) > (w->seen_state >> 1))
                s = ev_snapshot_ref(v->current);
        w->seen_state = state;
        if (!(state & EV_VALUE_STATE_CLOSED) && w->signaled) {
                watcher_clear_fd(w);
                w->signaled = false;
                ev__list_del(&w->node);
                ev__list_add(&v->armed, &w->node);
        }
        pthread_mutex_unlock(&v->lock);

        if (!s)
                return -EPIPE; /* the state changed, but only by closing */
        *ret = s;
        return 0;
}

/* The body of ev_watcher_get, for a caller that holds w->busy. */
static int watcher_take(ev_value_watcher *w, ev_value_snapshot **ret) {
        uint64_t state = atomic_load_explicit(&w->value->state, memory_order_acquire);

        if (state == w->seen_state)
                return (state & EV_VALUE_STATE_CLOSED) ? -EPIPE : -EAGAIN;
        return watcher_take_locked(w, ret);
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

static int64_t monotonic_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Sleep until w's eventfd or cancel_fd is ready or the deadline passes;
 * deadline < 0 means forever.  Fills pfd[].revents; EINTR leaves them 0. */
static int watcher_poll(struct pollfd pfd[2], nfds_t nfds, int64_t deadline) {
        struct timespec ts, *timeout = NULL;

        pfd[0].revents = pfd[1].revents = 0;
        if (deadline >= 0) {
                int64_t left = deadline - monotonic_ns();

                if (left < 0)
                        left = 0;
                ts.tv_sec = left / 1000000000;
                ts.tv_nsec = left % 1000000000;
                timeout = &ts;
        }
        if (ppoll(pfd, nfds, timeout, NULL) < 0 && errno != EINTR)
                return -errno;
        if (pfd[0].revents & POLLNVAL)
                return -EBADF; /* the caller closed the watcher's fd */
        return 0;
}

/* The monotonic deadline of a wait of timeout_ms from now; -1 for none. */
static int64_t wait_deadline(int timeout_ms) {
        return timeout_ms < 0 ? -1 : monotonic_ns() + (int64_t)timeout_ms * 1000000;
}

/* The body of ev_watcher_wait, for a caller that holds w->busy.  Every pass
 * applies the documented precedence: new snapshot or -EPIPE, then cancel,
 * then timeout.  Without a cancel fd, an expired deadline needs no poll. */
static int watcher_wait(ev_value_watcher *w, int64_t deadline, int cancel_fd,
                        ev_value_snapshot **ret) {
        struct pollfd pfd[2] = {
                { .fd = w->fd, .events = POLLIN },
                { .fd = cancel_fd, .events = POLLIN },
        };
        nfds_t nfds = cancel_fd >= 0 ? 2 : 1;
        bool polled = false;
        int r;

        for (;;) {
                r = watcher_take(w, ret);
                if (r != -EAGAIN)
                        return r;
                if (polled || (cancel_fd < 0 && deadline >= 0 && monotonic_ns() >= deadline)) {
                        if (pfd[1].revents & POLLNVAL)
                                return -EBADF;
                        if (pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
                                return -ECANCELED;
                        if (deadline >= 0 && monotonic_ns() >= deadline)
                                return -ETIMEDOUT;
                }
                r = watcher_poll(pfd, nfds, deadline);
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
        int r = wait_check(w, cancel_fd, ret);

        if (r < 0)
                return r;
        if (!watcher_try_acquire(w))
                return -EBUSY;
        r = watcher_wait(w, wait_deadline(timeout_ms), cancel_fd, ret);
        watcher_release(w);
        return r;
}

/* After a rejected snapshot: -EPIPE when it was the closed value's last,
 * else -ECANCELED or -ETIMEDOUT, or 0 to go on; so that a producer that
 * keeps setting rejected snapshots cannot hold a waiter past its deadline
 * or its cancellation. */
static int wait_interrupted(const ev_value_watcher *w, int64_t deadline, int cancel_fd) {
        uint64_t state = atomic_load_explicit(&w->value->state, memory_order_acquire);
        struct pollfd pfd = { .fd = cancel_fd, .events = POLLIN };

        if (state == w->seen_state && (state & EV_VALUE_STATE_CLOSED))
                return -EPIPE;
        if (cancel_fd >= 0 && poll(&pfd, 1, 0) == 1)
                return pfd.revents & POLLNVAL ? -EBADF : -ECANCELED;
        if (deadline >= 0 && monotonic_ns() >= deadline)
                return -ETIMEDOUT;
        return 0;
}

EV_VALUE_PUBLIC int ev_watcher_wait_until(ev_value_watcher *w, ev_value_predicate pred,
                                          void *userdata, int timeout_ms, int cancel_fd,
                                          ev_value_snapshot **ret) {
        int64_t deadline = wait_deadline(timeout_ms);
        ev_value_snapshot *s;
        int r = pred ? wait_check(w, cancel_fd, ret) : -EINVAL;

        if (r < 0)
                return r;
        if (!watcher_try_acquire(w))
                return -EBUSY;
        /* One deadline for the whole wait: rejected snapshots do not
         * restart the timeout. */
        while ((r = watcher_wait(w, deadline, cancel_fd, &s)) == 0 && !pred(s, userdata)) {
                ev_snapshot_unref(s);
                r = wait_interrupted(w, deadline, cancel_fd);
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
        v = w->value;
        /* Unlink under the lock, then wait for the writes sets collected
         * before: after that no set can reach this fd, so a set never writes
         * to a reused fd number.  The shared fd belongs to the value and
         * lives as long as it does. */
        pthread_mutex_lock(&v->lock);
        ev__list_del(&w->node);
        if (w->shared)
                v->n_shared--;
        atomic_fetch_add(&v->closers_waiting, 1);
        while (atomic_load(&w->pending_writes) > 0)
                pthread_cond_wait(&v->writes_done, &v->lock);
        atomic_fetch_sub(&v->closers_waiting, 1);
        pthread_mutex_unlock(&v->lock);
        atomic_fetch_sub_explicit(&v->n_watchers, 1, memory_order_relaxed);
        if (!w->shared)
                close(w->fd);
        ev_value_unref(v);
        free(w);
        return NULL;
}
