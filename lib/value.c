/* SPDX-License-Identifier: MIT */
/*
 * Values: the producer's side.  A set publishes a new snapshot and signals
 * the armed watchers under the value's lock (see internal.h); destroy
 * callbacks of replaced snapshots run after the lock is released, so they
 * may call back into the library.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

EV_VALUE_PUBLIC int ev_value_new(ev_value **ret) {
        ev_value *v;

        if (!ret)
                return -EINVAL;
        v = ev__fault(EV__FAULT_VALUE_ALLOC) ? NULL : calloc(1, sizeof(*v));
        if (!v)
                return -ENOMEM;
        atomic_init(&v->n_ref, 1);
        atomic_init(&v->state, 0);
        atomic_init(&v->closers_waiting, 0);
        atomic_init(&v->n_watchers, 0);
        pthread_mutex_init(&v->lock, NULL);
        pthread_cond_init(&v->writes_done, NULL);
        ev__list_init(&v->armed);
        ev__list_init(&v->signaled);
        v->shared_fd = -1;
        *ret = v;
        return 0;
}

EV_VALUE_PUBLIC ev_value *ev_value_ref(ev_value *v) {
        if (v)
                atomic_fetch_add_explicit(&v->n_ref, 1, memory_order_relaxed);
        return v;
}

EV_VALUE_PUBLIC ev_value *ev_value_unref(ev_value *v) {
        /* acq_rel for the same reason as in ev_snapshot_unref. */
        if (!v || atomic_fetch_sub_explicit(&v->n_ref, 1, memory_order_acq_rel) != 1)
                return NULL;
        /* Watchers hold references, so none is left on the lists. */
        ev_snapshot_unref(v->current);
        if (v->shared_fd >= 0)
                close(v->shared_fd);
        pthread_cond_destroy(&v->writes_done);
        pthread_mutex_destroy(&v->lock);
        free(v);
        return NULL;
}

/* The eventfd writes a set or close owes: collected under the lock, made
 * after it is released. */
struct notify_batch {
        ev_value_watcher *first;
        int shared_fd; /* -1 when no shared-fd watcher lives */
};

/* Under v->lock: mark every armed watcher signaled, collect it into batch
 * and move the whole armed list to the signaled list. */
static void notify_collect(ev_value *v, struct notify_batch *batch) {
        struct ev__list *node;

        batch->first = NULL;
        batch->shared_fd = v->n_shared > 0 ? v->shared_fd : -1;
        for (node = v->armed.next; node != &v->armed; node = node->next) {
                ev_value_watcher *w = ev__container_of(node, ev_value_watcher, node);

                w->signaled = true;
                atomic_fetch_add(&w->pending_writes, 1);
                w->batch_next = batch->first;
                batch->first = w;
        }
        ev__list_splice(&v->armed, &v->signaled);
}

/* Without the lock: make the collected writes, then wake any closer
 * waiting for them. */
static void notify_flush(ev_value *v, const struct notify_batch *batch) {
        ev_value_watcher *w = batch->first;

        if (batch->shared_fd >= 0)
                ev__eventfd_signal(batch->shared_fd);
        while (w) {
                /* Read next first: once written, w may be consumed, re-armed
                 * and collected by another set; once pending_writes drops,
                 * it may be closed and freed. */
                ev_value_watcher *next = w->batch_next;

                ev__eventfd_signal(w->fd);
                atomic_fetch_sub(&w->pending_writes, 1);
                w = next;
        }
        if (atomic_load(&v->closers_waiting) > 0) {
                pthread_mutex_lock(&v->lock);
                pthread_cond_broadcast(&v->writes_done);
                pthread_mutex_unlock(&v->lock);
        }
}

static bool value_is_closed_locked(const ev_value *v) {
        return atomic_load_explicit(&v->state, memory_order_relaxed) & EV_VALUE_STATE_CLOSED;
}

/* Under v->lock, the value open: make s current with the next version and
 * collect the watchers to notify.  Returns the snapshot s replaces, which
 * the caller drops after unlocking and flushing the batch. */
static ev_value_snapshot *value_replace_locked(ev_value *v, ev_value_snapshot *s,
                                               struct notify_batch *batch) {
        uint64_t state = atomic_load_explicit(&v->state, memory_order_relaxed);
        ev_value_snapshot *old = v->current;

        s->version = (state >> 1) + 1;
        v->current = s;
        /* Sequentially consistent so the new state is visible before any
         * eventfd write of the batch can wake a consumer. */
        atomic_store(&v->state, state + EV_VALUE_STATE_VERSION_ONE);
        notify_collect(v, batch);
        return old;
}

/* The end of every set, entered with v->lock held: when r is 1, make s
 * current with the next version; release the lock; then make the writes
 * and drop the replaced snapshot, whose destroy callback may call into the
 * library.  Returns r. */
static int value_commit_unlock(ev_value *v, int r, ev_value_snapshot *s) {
        struct notify_batch batch;
        ev_value_snapshot *old;

        if (r != 1) {
                pthread_mutex_unlock(&v->lock);
                return r;
        }
        old = value_replace_locked(v, s, &batch);
        pthread_mutex_unlock(&v->lock);
        notify_flush(v, &batch);
        ev_snapshot_unref(old);
        return 1;
}

/* Make s current with the next version: 0, or -EPIPE when the value is
 * closed; then s is discarded without running its destroy callback, and
 * the caller keeps its data. */
static int value_publish(ev_value *v, ev_value_snapshot *s) {
        int r;

        pthread_mutex_lock(&v->lock);
        r = value_commit_unlock(v, value_is_closed_locked(v) ? -EPIPE : 1, s);
        if (r < 0)
                ev__snapshot_discard(s);
        return r < 0 ? r : 0;
}

static bool snapshot_holds(const ev_value_snapshot *s, const void *data, size_t size) {
        return s && s->size == size && (size == 0 || memcmp(s->data, data, size) == 0);
}

/* Under v->lock, the value open: copy data into *ret (1) unless the current
 * snapshot holds the same bytes (0).  Compared before the copy, so a
 * skipped set costs no allocation and cannot fail for want of memory. */
static int value_copy_if_changed_locked(ev_value *v, const void *data, size_t size,
                                        ev_value_snapshot **ret) {
        int r;

        if (snapshot_holds(v->current, data, size))
                return 0;
        r = ev__snapshot_new_copy(data, size, ret);
        return r < 0 ? r : 1;
}

EV_VALUE_PUBLIC int ev_value_set_flags(ev_value *v, const void *data, size_t size,
                                       unsigned flags) {
        ev_value_snapshot *s = NULL;
        int r;

        if (!v || (!data && size > 0) || (flags & ~(unsigned)EV_VALUE_SET_IF_CHANGED))
                return -EINVAL;
        if (!(flags & EV_VALUE_SET_IF_CHANGED)) {
                r = ev_value_set(v, data, size);
                return r < 0 ? r : 1;
        }
        pthread_mutex_lock(&v->lock);
        r = value_is_closed_locked(v) ? -EPIPE : value_copy_if_changed_locked(v, data, size, &s);
        return value_commit_unlock(v, r, s);
}

/* The copy is made before taking the lock, so that consumers never wait
 * for it. */
EV_VALUE_PUBLIC int ev_value_set(ev_value *v, const void *data, size_t size) {
        ev_value_snapshot *s;
        int r;

        if (!v || (!data && size > 0))
                return -EINVAL;
        r = ev__snapshot_new_copy(data, size, &s);
        if (r < 0)
                return r;
        return value_publish(v, s);
}

EV_VALUE_PUBLIC int ev_value_set_owned(ev_value *v, void *data, size_t size,
                                       void (*destroy)(void *data, void *userdata),
                                       void *userdata) {
        ev_value_snapshot *s;
        int r;

        if (!v || (!data && size > 0))
                return -EINVAL;
        r = ev__snapshot_new_owned(data, size, destroy, userdata, &s);
        if (r < 0)
                return r;
        return value_publish(v, s);
}

/* Under v->lock, the value open: ask fn for the next bytes and copy them
 * into *ret: 1, or 0 when fn keeps the value, or a negative errno. */
static int value_update_locked(ev_value *v, ev_value_update_fn fn, void *userdata,
                               ev_value_snapshot **ret) {
        const void *data = NULL;
        size_t size = 0;
        int r = fn(v->current, userdata, &data, &size);

        if (r <= 0)
                return r;
        if (!data && size > 0)
                return -EINVAL;
        r = ev__snapshot_new_copy(data, size, ret);
        return r < 0 ? r : 1;
}

EV_VALUE_PUBLIC int ev_value_update(ev_value *v, ev_value_update_fn fn, void *userdata) {
        ev_value_snapshot *s = NULL;
        int r;

        if (!v || !fn)
                return -EINVAL;
        /* fn runs under the lock that serialises sets, so no set can land
         * between what fn read and what it wrote. */
        pthread_mutex_lock(&v->lock);
        r = value_is_closed_locked(v) ? -EPIPE : value_update_locked(v, fn, userdata, &s);
        return value_commit_unlock(v, r, s);
}

EV_VALUE_PUBLIC int ev_value_get(ev_value *v, ev_value_snapshot **ret) {
        ev_value_snapshot *s;

        if (!v || !ret)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        s = ev_snapshot_ref(v->current);
        pthread_mutex_unlock(&v->lock);
        if (!s)
                return -EAGAIN;
        *ret = s;
        return 0;
}

EV_VALUE_PUBLIC uint64_t ev_value_get_version(const ev_value *v) {
        if (!v)
                return 0;
        return atomic_load_explicit(&v->state, memory_order_acquire) >> 1;
}

EV_VALUE_PUBLIC size_t ev_value_get_watcher_count(const ev_value *v) {
        return v ? atomic_load_explicit(&v->n_watchers, memory_order_relaxed) : 0;
}

EV_VALUE_PUBLIC int ev_value_close(ev_value *v) {
        struct notify_batch batch = { .first = NULL, .shared_fd = -1 };
        uint64_t state;

        if (!v)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        state = atomic_load_explicit(&v->state, memory_order_relaxed);
        if (!(state & EV_VALUE_STATE_CLOSED)) {
                atomic_store(&v->state, state | EV_VALUE_STATE_CLOSED);
                notify_collect(v, &batch);
        }
        pthread_mutex_unlock(&v->lock);
        notify_flush(v, &batch);
        return 0;
}
