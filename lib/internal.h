/* SPDX-License-Identifier: MIT */
/*
 * Private definitions shared by the files of lib/: the layout of a value and
 * of a watcher, the notification lists that connect them, and the internal
 * helpers each file offers the others.
 *
 * The notification protocol, all under value->lock:
 *   - a watcher on value->armed has seen the value's current state and its
 *     eventfd counter is zero;
 *   - a watcher on value->signaled has had its eventfd written once and not
 *     yet consumed it, or the value is closed;
 *   - a set or close writes the eventfd of every armed watcher, then moves
 *     the whole armed list to the signaled list in one splice, so watchers
 *     that already hold a notification cost a set nothing;
 *   - a get that finds a new state clears its eventfd and re-arms (unless
 *     the value is closed: then the eventfd stays readable forever).
 * value->state (version << 1 | closed) is also published atomically, so a
 * get that finds nothing new compares two integers and makes no system call.
 */
#ifndef EV_VALUE_INTERNAL_H
#define EV_VALUE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ev-value.h"
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
        ev_value_snapshot *current; /* NULL until the first set */
        struct ev__list armed;      /* watchers whose eventfd is clear */
        struct ev__list signaled;   /* watchers whose eventfd is readable */
};

struct ev_value_watcher {
        ev_value *value;         /* referenced: a watcher keeps its value alive */
        struct ev__list node;    /* on value->armed or value->signaled */
        uint64_t seen_state;     /* value->state at the last get; 0 before */
        int fd;                  /* eventfd, EFD_CLOEXEC | EFD_NONBLOCK */
        bool signaled;           /* under value->lock: on value->signaled */
        atomic_flag busy;        /* held by the one get or wait in progress */
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
void ev__eventfd_signal(int fd);
void ev__eventfd_clear(int fd);

#endif
