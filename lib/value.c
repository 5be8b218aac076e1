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

/* Make s current with the next version.  On -EPIPE s is discarded without
 * running its destroy callback: the caller keeps its data. */
static int value_publish(ev_value *v, ev_value_snapshot *s) {
        struct notify_batch batch;
        ev_value_snapshot *old;
        uint64_t state;

        pthread_mutex_lock(&v->lock);
        state = atomic_load_explicit(&v->state, memory_order_relaxed);
        if (state & EV_VALUE_STATE_CLOSED) {
                pthread_mutex_unlock(&v->lock);
                ev__snapshot_discard(s);
                return -EPIPE;
        }
        s->version = (state >> 1) + 1;
        old = v->current;
        v->current = s;
        /* Sequentially consistent so the new state is visible before any
         * eventfd write below can wake a consumer. */
        atomic_store(&v->state, state + EV_VALUE_STATE_VERSION_ONE);
        notify_collect(v, &batch);
        pthread_mutex_unlock(&v->lock);

        notify_flush(v, &batch);
        ev_snapshot_unref(old);
        return 0;
}

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
