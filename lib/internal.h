/* SPDX-License-Identifier: MIT */
/*
 * Private definitions shared by the files of lib/: the layout of a value,
 * of a watcher and of a snapshot, and the internal calls each file offers
 * the others.  No lock is shared between producers and consumers:
 *   - producers (set, update, close) serialise on value->lock, which they
 *     hold only to assign the next version: no system call, no wait, and
 *     no consumer ever takes it;
 *   - consumers take the current snapshot through value->current, a
 *     split reference count (slot.c), and compare value->state with their
 *     own seen state, without a lock;
 *   - the notification protocol that connects a set to the watchers it
 *     must wake (a lock-free stack of armed watchers and one atomic word
 *     per watcher) is all in notify.c, which lib/notify.pml models.
 */
#ifndef EV_VALUE_INTERNAL_H
#define EV_VALUE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev-value.h"
#include "fault.h"

#define EV_VALUE_PUBLIC __attribute__((visibility("default")))
/* Exported in the map's LIBEVVALUE_PRIVATE node for the project's other
 * libraries (libevvalue-etcd), built from the same tree: not an ABI. */
#define EV_VALUE_PRIVATE __attribute__((visibility("default")))

/* Low bit of value->state; the version is state >> 1.  A state only ever
 * grows: each set adds VERSION_ONE, the close sets CLOSED. */
#define EV_VALUE_STATE_CLOSED UINT64_C(1)
#define EV_VALUE_STATE_VERSION_ONE UINT64_C(2)

/* Separates what consumers write (the armed stack, the borrow count of
 * the current snapshot) from what they only read (the state), so that one
 * consumer's push or borrow does not evict the state from the other
 * consumers' caches: a get with nothing new reads the state alone. */
#define EV_VALUE_CACHE_LINE 64

struct ev_value {
        /* version << 1 | closed; stored by producers under lock, read
         * anywhere. */
        _Atomic uint64_t state;
        atomic_ulong n_ref;
        atomic_size_t n_watchers;   /* live watchers of either kind */
        atomic_size_t n_shared;     /* live shared-fd watchers */
        atomic_int shared_fd;       /* -1 until the first shared-fd watcher */
        pthread_mutex_t lock;       /* serialises producers, and only them */
        /* What a watcher's get returns once it has seen the close: -EPIPE,
         * or a backend's own end (ev__value_end).  Written before the
         * state that announces the close. */
        int end_error;
        /* Watchers waiting for a state newer than their own (notify.c). */
        _Alignas(EV_VALUE_CACHE_LINE) _Atomic(ev_value_watcher *) armed;
        /* The current snapshot as a split reference count (slot.c). */
        _Atomic uint64_t current;
        /* Backends that hear of every set (notify.c): servers of lib/ipc. */
        atomic_size_t n_hooks;
        pthread_rwlock_t hooks_lock; /* sets read, attach and detach write */
        struct ev__notify_hook *hooks;
};

struct ev__remote;

struct ev_value_watcher {
        ev_value *value;            /* referenced: a watcher keeps its value alive;
                                     * NULL for a remote watcher */
        struct ev__remote *remote;  /* lib/ipc/remote.c's state, or NULL */
        /* The notification word of notify.c: seen << 3 | flags. */
        _Atomic uint64_t notify;
        ev_value_watcher *next;     /* link on value->armed, or in a collected batch */
        uint64_t seen_state;        /* the consumer's: value->state at its last get */
        int fd;                     /* eventfd, EFD_CLOEXEC | EFD_NONBLOCK; for a
                                     * remote watcher its connection */
        bool shared;                /* fd is value->shared_fd, not owned */
        atomic_flag busy;           /* held by the one get or wait in progress */
};

struct ev_value_snapshot {
        atomic_ulong n_ref;
        uint64_t version;
        bool absent;            /* a backend's "no such key" (ev_snapshot_is_absent) */
        size_t size;
        void *data;             /* inline_data, or adopted by set_owned */
        void (*destroy)(void *data, void *userdata);
        void *userdata;
        max_align_t inline_data[];
};

/* snapshot.c */
int ev__snapshot_new_copy(const void *data, size_t size, ev_value_snapshot **ret);
int ev__snapshot_new_owned(void *data, size_t size,
                           void (*destroy)(void *data, void *userdata), void *userdata,
                           ev_value_snapshot **ret);
void ev__snapshot_discard(ev_value_snapshot *s);
/* Drop a reference known to be the last one, without an atomic operation. */
void ev__snapshot_destroy(ev_value_snapshot *s);

/* value.c */
/* lib/etcd: make a copy of data current as version `version` (with gaps:
 * a key's mod_revision), when it is above the value's version: 1; 0 when
 * it is not (nothing changes, nobody wakes); -EPIPE once ended; -ENOMEM;
 * -EOVERFLOW for a version a state cannot hold. */
EV_VALUE_PRIVATE int ev__value_set_version(ev_value *v, const void *data, size_t size,
                                           bool absent, uint64_t version);
/* Close v so that its watchers end with `error` (< 0) instead of -EPIPE. */
EV_VALUE_PRIVATE int ev__value_end(ev_value *v, int error);
/* A new reference to the current snapshot, or NULL; lock-free.  The
 * value's state counts it by the time this returns. */
ev_value_snapshot *ev__value_take_current(ev_value *v);

/* slot.c: value->current */
/* A new reference to the current snapshot, or NULL; lock-free. */
ev_value_snapshot *ev__slot_take(_Atomic uint64_t *slot);
/* The current snapshot, for a producer holding value->lock; no reference. */
ev_value_snapshot *ev__slot_peek_locked(_Atomic uint64_t *slot);
/* Make s current, under value->lock; returns what ev__slot_release needs. */
uint64_t ev__slot_replace_locked(_Atomic uint64_t *slot, ev_value_snapshot *s);
/* Drop the slot's reference to the snapshot ev__slot_replace_locked
 * replaced, after unlocking: its destroy callback may call the library. */
void ev__slot_release(uint64_t replaced);

/* notify.c: the notification protocol. */
/* A backend that must hear of every set, after the local watchers were
 * notified: publish runs in the setting thread, under a read lock that
 * ev__notify_remove_hook waits for. */
struct ev__notify_hook {
        void (*publish)(struct ev__notify_hook *hook);
        struct ev__notify_hook *next;
};
void ev__notify_add_hook(ev_value *v, struct ev__notify_hook *hook);
/* After it returns, no publish of hook is running or will run. */
void ev__notify_remove_hook(ev_value *v, struct ev__notify_hook *hook);
/* A new own-fd watcher starts having seen `seen`: armed, or signalled at once. */
void ev__notify_attach(ev_value_watcher *w, uint64_t seen);
/* After a get that saw `seen` (value open): clear the fd and re-arm. */
void ev__notify_rearm(ev_value_watcher *w, uint64_t seen);
/* After a producer stored a new state: wake every armed watcher behind it. */
void ev__notify_publish(ev_value *v);
/* ev_watcher_close: after it, nothing the protocol does reaches w's fd;
 * frees w, or leaves that to whoever still holds it. */
void ev__notify_detach(ev_value_watcher *w);
/* ev_value_unref: free the detached watchers still on the armed stack. */
void ev__notify_free_detached(ev_value *v);

/* watcher.c */
/* CLOCK_MONOTONIC in nanoseconds, for every timeout of the library. */
int64_t ev__monotonic_ns(void);
/* A watcher whose fd and get belong to a backend (lib/ipc/remote.c). */
int ev__watcher_new_remote(int fd, struct ev__remote *remote, ev_value_watcher **ret);

/* lib/ipc/remote.c: the get of a remote watcher, for a caller holding
 * w->busy; its end (-EPIPE, -ECONNRESET, -EPROTO...) once reached with
 * nothing unseen, else 0; and its close, which frees the remote state. */
int ev__remote_take(struct ev__remote *r, ev_value_snapshot **ret);
int ev__remote_end(const struct ev__remote *r);
void ev__remote_free(struct ev__remote *r);

/* eventfd.c */
int ev__eventfd_new(void);
void ev__eventfd_signal(int fd);
bool ev__eventfd_clear(int fd);

#endif
