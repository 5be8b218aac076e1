/* SPDX-License-Identifier: MIT */
/*
 * Private definitions shared by the files of lib/: the layout of a value and
 * of a watcher, the notification lists that connect them, and the internal
 * helpers each file offers the others.
 *
 * The notification protocol; the lists are under value->lock:
 *   - a watcher on value->armed has seen the value's current state and its
 *     eventfd counter is zero;
 *   - a watcher on value->signaled is owed exactly one eventfd write, made
 *     or about to be made, that it has not consumed; or the value is closed;
 *   - a set or close collects every armed watcher, marks it signaled and
 *     moves the whole armed list to the signaled list in one splice, so
 *     watchers that already hold a notification cost a set nothing; it
 *     makes the writes after releasing the lock, so that a consumer it
 *     wakes never finds the lock taken by the producer's system calls;
 *   - pending_writes counts the collected writes not yet made: a get that
 *     finds its eventfd still empty waits for that write before clearing
 *     it, and ev_watcher_close waits for it before closing the fd, so a set
 *     never writes to a closed, possibly reused, fd number;
 *   - a get that finds a new state clears its eventfd and re-arms (unless
 *     the value is closed: then the eventfd stays readable forever).
 * value->state (version << 1 | closed) is also published atomically, so a
 * get that finds nothing new compares two integers and makes no system call.
 * lib/notify.pml models this protocol step by step for spin (make check
 * runs it): change the model with the code.
 *
 * Watchers made with EV_VALUE_WATCH_SHARED_FD are on neither list: they all
 * use value->shared_fd, which every set and the close write once, whatever
 * the watchers consumed, and which is never drained.  It is readable from
 * the first set on, so it is only useful edge-triggered.
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
#include "list.h"

#define EV_VALUE_PUBLIC __attribute__((visibility("default")))

/* Low bit of value->state; the version is state >> 1. */
#define EV_VALUE_STATE_CLOSED UINT64_C(1)
#define EV_VALUE_STATE_VERSION_ONE UINT64_C(2)

struct ev_value {
        atomic_ulong n_ref;
        /* version << 1 | closed; written under lock, read anywhere. */
        _Atomic uint64_t state;
        pthread_mutex_t lock;
        pthread_cond_t writes_done; /* a closer waits here for pending_writes */
        atomic_uint closers_waiting;
        ev_value_snapshot *current; /* NULL until the first set */
        struct ev__list armed;      /* watchers whose eventfd is clear */
        struct ev__list signaled;   /* watchers whose eventfd is readable */
        int shared_fd;              /* -1 until the first shared-fd watcher */
        size_t n_shared;            /* live shared-fd watchers */
        atomic_size_t n_watchers;   /* live watchers of either kind */
};

struct ev_value_watcher {
        ev_value *value;         /* referenced: a watcher keeps its value alive */
        struct ev__list node;    /* on value->armed or value->signaled, or alone */
        uint64_t seen_state;     /* value->state at the last get; 0 before */
        int fd;                  /* eventfd, EFD_CLOEXEC | EFD_NONBLOCK */
        bool shared;             /* fd is value->shared_fd, not owned */
        bool signaled;           /* under value->lock: on value->signaled */
        atomic_flag busy;        /* held by the one get or wait in progress */
        atomic_uint pending_writes; /* collected by a set, not yet written */
        ev_value_watcher *batch_next; /* the collecting set's list */
};

struct ev_value_snapshot {
        atomic_ulong n_ref;
        uint64_t version;
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

/* eventfd.c */
int ev__eventfd_new(void);
void ev__eventfd_signal(int fd);
bool ev__eventfd_clear(int fd);

#endif
