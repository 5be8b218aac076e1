/* SPDX-License-Identifier: MIT */
/*
 * libevvalue: event values watched through eventfds.
 *
 * An ev_value holds immutable, refcounted snapshots that producers replace
 * with ev_value_set().  Each consumer opens an ev_value_watcher, whose
 * eventfd becomes readable when a snapshot it has not seen exists, and calls
 * the non-blocking ev_watcher_get() to take the newest one.  Functions that
 * can fail return 0 (or a positive value) on success and a negative errno
 * on failure; output parameters are written only on success.  The man pages
 * (libevvalue(7) and one page per function family) are the reference.
 */
#ifndef EV_VALUE_H
#define EV_VALUE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ev_value ev_value;                   /* the event value */
typedef struct ev_value_watcher ev_value_watcher;   /* one consumer's view */
typedef struct ev_value_snapshot ev_value_snapshot; /* immutable data */

/* Create a value that holds no data yet (version 0). */
int ev_value_new(ev_value **ret);
/* Take a reference on v; returns v (NULL when v is NULL). */
ev_value *ev_value_ref(ev_value *v);
/* Drop a reference on v; NULL is accepted; returns NULL. */
ev_value *ev_value_unref(ev_value *v);
/* Copy size bytes into a new snapshot, make it current, notify watchers. */
int ev_value_set(ev_value *v, const void *data, size_t size);
/* Like ev_value_set() but adopt data; destroy(data, userdata) runs once. */
int ev_value_set_owned(ev_value *v, void *data, size_t size,
                       void (*destroy)(void *data, void *userdata), void *userdata);
/* Take a reference to the current snapshot; -EAGAIN when never set. */
int ev_value_get(ev_value *v, ev_value_snapshot **ret);
/* Number of successful sets so far; 0 for NULL. */
uint64_t ev_value_get_version(const ev_value *v);
/* Refuse further sets and wake every watcher; idempotent. */
int ev_value_close(ev_value *v);
/* Flags of ev_value_watch(). */
enum {
        /* Share one eventfd per value among all such watchers, for
         * edge-triggered consumers: a set costs one write for all of them. */
        EV_VALUE_WATCH_SHARED_FD = 1u << 0,
};

/* Create a watcher with its own eventfd (or the value's shared one). */
int ev_value_watch(ev_value *v, unsigned flags, ev_value_watcher **ret);

/* The watcher's eventfd, readable when ev_watcher_get() would not give -EAGAIN. */
int ev_watcher_get_fd(const ev_value_watcher *w);
/* Take the newest unseen snapshot without blocking (-EAGAIN, -EPIPE, -EBUSY). */
int ev_watcher_get(ev_value_watcher *w, ev_value_snapshot **ret);
/* Block until ev_watcher_get() succeeds, timeout_ms expires or cancel_fd is readable. */
int ev_watcher_wait(ev_value_watcher *w, int timeout_ms, int cancel_fd,
                    ev_value_snapshot **ret);
/* Unregister w and close its eventfd; NULL is accepted; returns NULL. */
ev_value_watcher *ev_watcher_close(ev_value_watcher *w);

/* The bytes: a copy aligned for any type, or the adopted buffer; NULL for NULL. */
const void *ev_snapshot_data(const ev_value_snapshot *s);
/* The snapshot's size in bytes; 0 for NULL. */
size_t ev_snapshot_size(const ev_value_snapshot *s);
/* The value's version that this snapshot became; 0 for NULL. */
uint64_t ev_snapshot_version(const ev_value_snapshot *s);
/* Take a reference on s; returns s (NULL when s is NULL). */
ev_value_snapshot *ev_snapshot_ref(ev_value_snapshot *s);
/* Drop a reference on s; NULL is accepted; returns NULL. */
ev_value_snapshot *ev_snapshot_unref(ev_value_snapshot *s);

#ifdef __cplusplus
}
#endif

#endif /* EV_VALUE_H */
