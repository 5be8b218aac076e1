/* SPDX-License-Identifier: MIT */
/*
 * The notification protocol: how a set reaches the watchers it must wake,
 * without a lock that a consumer could hold.  lib/notify.pml models this
 * file step by step for spin (make check runs it): change both together.
 *
 * Each own-fd watcher has one atomic word, w->notify: the value state the
 * consumer has seen (seen = word >> NOTIFY_SEEN_SHIFT) and these flags:
 *   ARMED    the consumer waits for a state newer than seen, and its fd is
 *            clear.  Only the consumer arms; whoever clears ARMED, with
 *            one compare-and-swap so exactly one thread, writes the fd
 *            once.  So a watcher is written at most once per unconsumed
 *            update.
 *   WRITING  set with the clearing of ARMED, cleared by the signaller once
 *            its write is made: a consumer that finds its fd still empty
 *            waits for it (it is a system call away), and ev_watcher_close
 *            does not close the fd under it.
 *   HELD     the watcher is on value->armed, the lock-free stack of armed
 *            watchers, or in a batch a collector took from it; the holder
 *            owns w->next.  An armed watcher is always held.
 *   CLOSING  ev_watcher_close has begun: nobody signals or pushes it.
 *   DETACHED ev_watcher_close is done with it: whichever of the closer and
 *            the holder lets go last frees it.
 * A set stores its new state, then collects: it takes the whole stack with
 * one exchange and visits each watcher, signalling those whose seen state
 * is older than the value's and pushing the others back.  A consumer, after
 * a get, clears its fd, arms, pushes itself if nobody holds it, then reads
 * the state again and signals itself if a set came in between.  Whoever
 * pushes a watcher reads the state after the push, so no set can slip
 * between a push and the next collection unseen.  Consumers never wait for
 * a producer's lock and producers never wait for consumers: the only waits
 * are a consumer's, or a closer's, for a write already on its way to its
 * own fd.
 *
 * How a watcher is notified is notify_signal and notify_clear; the
 * protocol around them is the same whatever carries the notification.
 * Watchers in other processes are a backend's (lib/ipc/server.c): each set
 * calls the hooks attached to its value, after the local watchers.
 */
#include "config.h"

#include <poll.h>
#include <stdlib.h>
#include <unistd.h>

#include "internal.h"

#define NOTIFY_ARMED UINT64_C(1)
#define NOTIFY_WRITING UINT64_C(2)
#define NOTIFY_HELD UINT64_C(4)
#define NOTIFY_CLOSING UINT64_C(8)
#define NOTIFY_DETACHED UINT64_C(16)
#define NOTIFY_SEEN_SHIFT 5

/* How long a consumer or closer sleeps at a time while a write owed to its
 * fd is on its way.  The write ends the sleep at once; the timeout only
 * matters when something else (a forked child, an io_uring read) drained
 * the fd behind the library's back. */
#define NOTIFY_OWED_POLL_MS 1

static uint64_t notify_seen(uint64_t word) {
        return word >> NOTIFY_SEEN_SHIFT;
}

/* Make w's fd readable. */
static void notify_signal(ev_value_watcher *w) {
        ev__eventfd_signal(w->fd);
}

/* Sleep until fd is readable, or a short while. */
static void notify_sleep_owed(int fd) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        poll(&pfd, 1, NOTIFY_OWED_POLL_MS);
}

/* Consume w's notification, waiting for its write if it is still on its
 * way.  WRITING is read before the fd: the signaller clears it only after
 * its write, so when it was clear before a read that found the fd empty,
 * no write can still land. */
static void notify_clear(ev_value_watcher *w) {
        for (;;) {
                bool owed = atomic_load(&w->notify) & NOTIFY_WRITING;

                if (ev__eventfd_clear(w->fd) || !owed)
                        return;
                notify_sleep_owed(w->fd);
        }
}

/* Clear ARMED in *word (as loaded) with one swap, and if this thread did,
 * make the write.  False when the word changed: *word is reloaded. */
static bool notify_try_signal(ev_value_watcher *w, uint64_t *word) {
        if (!atomic_compare_exchange_weak(&w->notify, word,
                                          (*word & ~NOTIFY_ARMED) | NOTIFY_WRITING))
                return false;
        notify_signal(w);
        /* A collector that signalled w holds it until after this, so no
         * other collector can signal it meanwhile; the consumer's own
         * signal, which can, has no observer before its write is made. */
        atomic_fetch_and(&w->notify, ~NOTIFY_WRITING);
        return true;
}

/* Push w, which the caller holds, onto v's stack of armed watchers. */
static void notify_push(ev_value *v, ev_value_watcher *w) {
        ev_value_watcher *head = atomic_load_explicit(&v->armed, memory_order_relaxed);

        do
                w->next = head;
        while (!atomic_compare_exchange_weak(&v->armed, &head, w));
}

/* The consumer's own signal, when it armed too late for a set that came in
 * between: unless a collector cleared ARMED first. */
static void notify_signal_self(ev_value_watcher *w) {
        uint64_t word = atomic_load(&w->notify);

        while ((word & NOTIFY_ARMED) && !notify_try_signal(w, &word))
                ;
}

static bool notify_is_open_armed(uint64_t word) {
        return (word & (NOTIFY_ARMED | NOTIFY_CLOSING)) == NOTIFY_ARMED;
}

/* The holder lets w go: back onto the stack if it is (again) armed, else
 * released, and freed if its closer is done with it.  True when pushed
 * back. */
static bool notify_release(ev_value *v, ev_value_watcher *w) {
        uint64_t word = atomic_load(&w->notify);

        for (;;) {
                if (notify_is_open_armed(word)) {
                        notify_push(v, w);
                        return true;
                }
                if (atomic_compare_exchange_weak(&w->notify, &word, word & ~NOTIFY_HELD))
                        break;
        }
        if (word & NOTIFY_DETACHED)
                free(w);
        return false;
}

/* A collector's visit of w, which it holds: signal w if it has not seen
 * state, then release it.  True when pushed back. */
static bool notify_visit(ev_value *v, ev_value_watcher *w, uint64_t state) {
        uint64_t word = atomic_load(&w->notify);

        while (notify_is_open_armed(word) && state > notify_seen(word) &&
               !notify_try_signal(w, &word))
                ;
        return notify_release(v, w);
}

/* Take the stack and visit each watcher against the state as it is now.
 * Watchers pushed back armed were pushed after that state was read: if the
 * state moved since, a set may have taken the stack before they were back,
 * so visit again. */
static void notify_collect(ev_value *v) {
        for (;;) {
                ev_value_watcher *w, *next;
                bool pushed_back = false;
                uint64_t state;

                if (!atomic_load(&v->armed))
                        return;
                w = atomic_exchange(&v->armed, NULL);
                state = atomic_load(&v->state);
                for (; w; w = next) {
                        next = w->next; /* before the visit: w may be pushed or freed */
                        pushed_back |= notify_visit(v, w, state);
                }
                if (!pushed_back || atomic_load(&v->state) == state)
                        return;
        }
}

/* The backends' part of a set.  A hook attached while this set ran may
 * miss it: attaching publishes the current state itself. */
static void notify_hooks(ev_value *v) {
        if (atomic_load(&v->n_hooks) == 0)
                return;
        pthread_rwlock_rdlock(&v->hooks_lock);
        for (struct ev__notify_hook *h = v->hooks; h; h = h->next)
                h->publish(h);
        pthread_rwlock_unlock(&v->hooks_lock);
}

void ev__notify_publish(ev_value *v) {
        if (atomic_load(&v->n_shared) > 0)
                ev__eventfd_signal(atomic_load_explicit(&v->shared_fd, memory_order_relaxed));
        notify_collect(v);
        notify_hooks(v);
}

void ev__notify_add_hook(ev_value *v, struct ev__notify_hook *hook) {
        pthread_rwlock_wrlock(&v->hooks_lock);
        hook->next = v->hooks;
        v->hooks = hook;
        atomic_fetch_add(&v->n_hooks, 1);
        pthread_rwlock_unlock(&v->hooks_lock);
}

void ev__notify_remove_hook(ev_value *v, struct ev__notify_hook *hook) {
        struct ev__notify_hook **p;

        pthread_rwlock_wrlock(&v->hooks_lock);
        for (p = &v->hooks; *p; p = &(*p)->next)
                if (*p == hook) {
                        *p = hook->next;
                        atomic_fetch_sub(&v->n_hooks, 1);
                        break;
                }
        pthread_rwlock_unlock(&v->hooks_lock);
}

/* Arm w for states newer than seen, clearing its fd first unless it is
 * known clear; push it if nobody holds it; then check that no set came in
 * between.  Only the consumer arms, so once seen signalled the word stays
 * so until the swap below: the fd is cleared at most once.  The swap drops
 * a WRITING still set: the write it announced was consumed. */
static void notify_arm(ev_value_watcher *w, uint64_t seen, bool fd_clear) {
        uint64_t armed = NOTIFY_ARMED | NOTIFY_HELD | seen << NOTIFY_SEEN_SHIFT;
        uint64_t word = atomic_load(&w->notify);

        for (;;) {
                if (!(word & NOTIFY_ARMED) && !fd_clear) {
                        notify_clear(w);
                        fd_clear = true;
                }
                if (atomic_compare_exchange_weak(&w->notify, &word, armed))
                        break;
        }
        if (!(word & NOTIFY_HELD))
                notify_push(w->value, w);
        if (atomic_load(&w->value->state) > seen)
                notify_signal_self(w);
}

void ev__notify_attach(ev_value_watcher *w, uint64_t seen) {
        uint64_t state = atomic_load(&w->value->state);

        if (state > seen || (state & EV_VALUE_STATE_CLOSED)) {
                /* Readable at once, and forever once closed. */
                notify_signal(w);
                atomic_store(&w->notify, seen << NOTIFY_SEEN_SHIFT);
                return;
        }
        atomic_store(&w->notify, 0);
        notify_arm(w, seen, true);
}

void ev__notify_rearm(ev_value_watcher *w, uint64_t seen) {
        notify_arm(w, seen, false);
}

void ev__notify_detach(ev_value_watcher *w) {
        ev_value *v = w->value;
        uint64_t word = atomic_fetch_or(&w->notify, NOTIFY_CLOSING);

        /* Nobody signals it from now on; a write already on its way must
         * land before the fd number may be reused. */
        while (word & NOTIFY_WRITING) {
                notify_sleep_owed(w->fd);
                word = atomic_load(&w->notify);
        }
        close(w->fd);
        if (word & NOTIFY_HELD)
                notify_collect(v); /* lets it go now rather than at the next set */
        word = atomic_fetch_or(&w->notify, NOTIFY_DETACHED);
        if (!(word & NOTIFY_HELD))
                free(w);
}

void ev__notify_free_detached(ev_value *v) {
        ev_value_watcher *w = atomic_exchange(&v->armed, NULL), *next;

        for (; w; w = next) {
                next = w->next;
                free(w);
        }
}
