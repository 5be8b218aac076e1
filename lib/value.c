/* SPDX-License-Identifier: MIT */
/*
 * Values: the producer's side.  Producers serialise on the value's lock
 * only to assign the next version: a set copies its data before taking it
 * and notifies after releasing it, and no consumer ever takes it (see
 * internal.h).  Destroy callbacks of replaced snapshots run after the lock
 * is released, so they may call back into the library.
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
        v = ev__fault(EV__FAULT_VALUE_ALLOC) ? NULL : aligned_alloc(_Alignof(ev_value), sizeof(*v));
        if (!v)
                return -ENOMEM;
        atomic_init(&v->state, 0);
        atomic_init(&v->current, 0);
        atomic_init(&v->n_ref, 1);
        atomic_init(&v->n_watchers, 0);
        atomic_init(&v->n_shared, 0);
        atomic_init(&v->shared_fd, -1);
        pthread_mutex_init(&v->lock, NULL);
        v->end_error = -EPIPE;
        atomic_init(&v->armed, NULL);
        atomic_init(&v->n_hooks, 0);
        pthread_rwlock_init(&v->hooks_lock, NULL);
        v->hooks = NULL;
        *ret = v;
        return 0;
}

EV_VALUE_PUBLIC ev_value *ev_value_ref(ev_value *v) {
        if (v)
                atomic_fetch_add_explicit(&v->n_ref, 1, memory_order_relaxed);
        return v;
}

EV_VALUE_PUBLIC ev_value *ev_value_unref(ev_value *v) {
        int shared_fd;

        /* acq_rel for the same reason as in ev_snapshot_unref. */
        if (!v || atomic_fetch_sub_explicit(&v->n_ref, 1, memory_order_acq_rel) != 1)
                return NULL;
        /* Live watchers hold references: only closed ones can be left. */
        ev__notify_free_detached(v);
        ev__slot_release(atomic_load(&v->current));
        shared_fd = atomic_load(&v->shared_fd);
        if (shared_fd >= 0)
                close(shared_fd);
        pthread_mutex_destroy(&v->lock);
        pthread_rwlock_destroy(&v->hooks_lock);
        free(v);
        return NULL;
}

static bool value_is_closed_locked(const ev_value *v) {
        return atomic_load_explicit(&v->state, memory_order_relaxed) & EV_VALUE_STATE_CLOSED;
}

/* The end of every set, entered with v->lock held: when r is 1, make s
 * current as `version` (0: the next one); release the lock; then notify
 * the watchers and drop the replaced snapshot, whose destroy callback may
 * call into the library.  Returns r. */
static int value_commit_version_unlock(ev_value *v, int r, ev_value_snapshot *s,
                                       uint64_t version) {
        uint64_t state, replaced;

        if (r != 1) {
                pthread_mutex_unlock(&v->lock);
                return r;
        }
        state = atomic_load_explicit(&v->state, memory_order_relaxed);
        s->version = version ? version : (state >> 1) + 1;
        /* The snapshot first, then the state that announces it, so that a
         * consumer that reads the new state finds it (or a newer one).  The
         * store is sequentially consistent: it must be visible before
         * notify.c looks for armed watchers, as a consumer's push must be
         * before it reads the state again. */
        replaced = ev__slot_replace_locked(&v->current, s);
        atomic_store(&v->state, s->version << 1);
        pthread_mutex_unlock(&v->lock);
        ev__notify_publish(v);
        ev__slot_release(replaced);
        return 1;
}

static int value_commit_unlock(ev_value *v, int r, ev_value_snapshot *s) {
        return value_commit_version_unlock(v, r, s, 0);
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

        if (snapshot_holds(ev__slot_peek_locked(&v->current), data, size))
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
        int r = fn(ev__slot_peek_locked(&v->current), userdata, &data, &size);

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

ev_value_snapshot *ev__value_take_current(ev_value *v) {
        ev_value_snapshot *s = ev__slot_take(&v->current);
        uint64_t state;

        /* A set makes its snapshot current a moment before it stores the
         * state that counts it.  If s is that set's, store the state for
         * it (the set's own store writes the same), so that no snapshot
         * handed out is newer than ev_value_get_version says.  Versions
         * may jump (ev__value_set_version), so raise rather than add. */
        if (!s)
                return NULL;
        state = atomic_load(&v->state);
        while ((state >> 1) < s->version &&
               !atomic_compare_exchange_weak(&v->state, &state, s->version << 1))
                ;
        return s;
}

EV_VALUE_PUBLIC int ev_value_get(ev_value *v, ev_value_snapshot **ret) {
        ev_value_snapshot *s;

        if (!v || !ret)
                return -EINVAL;
        s = ev__value_take_current(v);
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

/* The highest version a state can hold: notify.c keeps a state in the
 * upper bits of one word, and the state keeps the version above its
 * closed bit. */
#define VALUE_VERSION_MAX (UINT64_MAX >> 8)

int ev__value_set_version(ev_value *v, const void *data, size_t size, bool absent,
                          uint64_t version) {
        ev_value_snapshot *s;
        int r;

        if (!v || (!data && size > 0) || version == 0)
                return -EINVAL;
        if (version > VALUE_VERSION_MAX)
                return -EOVERFLOW;
        r = ev__snapshot_new_copy(data, size, &s);
        if (r < 0)
                return r;
        s->absent = absent;
        pthread_mutex_lock(&v->lock);
        if (value_is_closed_locked(v))
                r = -EPIPE;
        else
                r = version > ev_value_get_version(v) ? 1 : 0;
        r = value_commit_version_unlock(v, r, s, version);
        if (r != 1)
                ev__snapshot_discard(s);
        return r;
}

int ev__value_end(ev_value *v, int error) {
        uint64_t state;

        if (!v || error >= 0)
                return -EINVAL;
        pthread_mutex_lock(&v->lock);
        state = atomic_load_explicit(&v->state, memory_order_relaxed);
        if (state & EV_VALUE_STATE_CLOSED) {
                pthread_mutex_unlock(&v->lock);
                return 0;
        }
        v->end_error = error;
        atomic_store(&v->state, state | EV_VALUE_STATE_CLOSED);
        pthread_mutex_unlock(&v->lock);
        ev__notify_publish(v);
        return 0;
}

EV_VALUE_PUBLIC int ev_value_close(ev_value *v) {
        return v ? ev__value_end(v, -EPIPE) : -EINVAL;
}
