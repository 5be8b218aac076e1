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

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

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
/* Flags of ev_value_set_flags(). */
enum {
        /* Skip the set, and every notification, when the bytes equal the
         * current snapshot's. */
        EV_VALUE_SET_IF_CHANGED = 1u << 0,
};

/* ev_value_set() with flags: 1 when set, 0 when skipped. */
int ev_value_set_flags(ev_value *v, const void *data, size_t size, unsigned flags);
/* The function of ev_value_update(): > 0 set *ret_data, 0 keep, < 0 fail. */
typedef int (*ev_value_update_fn)(const ev_value_snapshot *current, void *userdata,
                                  const void **ret_data, size_t *ret_size);
/* Read-modify-write, serialised with every set: 1 when set, 0 when kept. */
int ev_value_update(ev_value *v, ev_value_update_fn fn, void *userdata);
/* Take a reference to the current snapshot; -EAGAIN when never set. */
int ev_value_get(ev_value *v, ev_value_snapshot **ret);
/* Number of successful sets so far; 0 for NULL. */
uint64_t ev_value_get_version(const ev_value *v);
/* Number of watchers of v not yet closed; 0 for NULL. */
size_t ev_value_get_watcher_count(const ev_value *v);
/* Refuse further sets and wake every watcher; idempotent. */
int ev_value_close(ev_value *v);
/* Flags of ev_value_watch(). */
enum {
        /* Share one eventfd per value among all such watchers, for
         * edge-triggered consumers: a set costs one write for all of them. */
        EV_VALUE_WATCH_SHARED_FD = 1u << 0,
        /* Count the snapshot current at watch time as seen: report only
         * later sets (and the close). */
        EV_VALUE_WATCH_SKIP_CURRENT = 1u << 1,
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
/* The predicate of ev_watcher_wait_until(). */
typedef bool (*ev_value_predicate)(const ev_value_snapshot *s, void *userdata);
/* ev_watcher_wait() until a snapshot satisfies pred; others are consumed. */
int ev_watcher_wait_until(ev_value_watcher *w, ev_value_predicate pred, void *userdata,
                          int timeout_ms, int cancel_fd, ev_value_snapshot **ret);
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

/* For __attribute__((cleanup)): release *p if it is not NULL. */
static inline void ev_value_unrefp(ev_value **p) {
        if (*p)
                *p = ev_value_unref(*p);
}

static inline void ev_watcher_closep(ev_value_watcher **p) {
        if (*p)
                *p = ev_watcher_close(*p);
}

static inline void ev_snapshot_unrefp(ev_value_snapshot **p) {
        if (*p)
                *p = ev_snapshot_unref(*p);
}

/*
 * EV_VALUE_DEFINE_TYPED(prefix, type) defines static inline functions that
 * set and read a value holding exactly one `type`, copied in and out, so
 * that callers never cast or pass a size:
 *   int prefix_set(ev_value *v, const type *data);
 *   int prefix_set_if_changed(ev_value *v, const type *data);  1 set, 0 same
 *   int prefix_peek(ev_value *v, type *ret);                ev_value_get()
 *   int prefix_get(ev_value_watcher *w, type *ret);         ev_watcher_get()
 *   int prefix_wait(ev_value_watcher *w, int timeout_ms, int cancel_fd,
 *                   type *ret);                              ev_watcher_wait()
 * A snapshot whose size is not sizeof(type) (set through the untyped API)
 * gives -EBADMSG and leaves *ret alone.  The functions are marked unused so
 * that a file using some of them draws no -Wunused-function (clang warns
 * for static inline functions defined in the main file).
 */
#define EV_VALUE_TYPED_FUNCTION_ __attribute__((unused)) static inline
#define EV_VALUE_DEFINE_TYPED(prefix, type)                                            \
        EV_VALUE_TYPED_FUNCTION_ int prefix##_copy_out_(ev_value_snapshot *s,          \
                                                       type *ret) {                    \
                int r = -EBADMSG;                                                      \
                if (ev_snapshot_size(s) == sizeof(type)) {                             \
                        memcpy(ret, ev_snapshot_data(s), sizeof(type));                \
                        r = 0;                                                         \
                }                                                                      \
                ev_snapshot_unref(s);                                                  \
                return r;                                                              \
        }                                                                              \
        EV_VALUE_TYPED_FUNCTION_ int prefix##_set(ev_value *v, const type *data) {     \
                return ev_value_set(v, data, sizeof(type));                            \
        }                                                                              \
        EV_VALUE_TYPED_FUNCTION_ int prefix##_set_if_changed(ev_value *v,              \
                                                            const type *data) {        \
                return ev_value_set_flags(v, data, sizeof(type), EV_VALUE_SET_IF_CHANGED); \
        }                                                                              \
        EV_VALUE_TYPED_FUNCTION_ int prefix##_peek(ev_value *v, type *ret) {           \
                ev_value_snapshot *s;                                                  \
                int r = ret ? ev_value_get(v, &s) : -EINVAL;                           \
                return r < 0 ? r : prefix##_copy_out_(s, ret);                         \
        }                                                                              \
        EV_VALUE_TYPED_FUNCTION_ int prefix##_get(ev_value_watcher *w, type *ret) {    \
                ev_value_snapshot *s;                                                  \
                int r = ret ? ev_watcher_get(w, &s) : -EINVAL;                         \
                return r < 0 ? r : prefix##_copy_out_(s, ret);                         \
        }                                                                              \
        EV_VALUE_TYPED_FUNCTION_ int prefix##_wait(ev_value_watcher *w, int timeout_ms, \
                                                   int cancel_fd, type *ret) {         \
                ev_value_snapshot *s;                                                  \
                int r = ret ? ev_watcher_wait(w, timeout_ms, cancel_fd, &s) : -EINVAL; \
                return r < 0 ? r : prefix##_copy_out_(s, ret);                         \
        }                                                                              \
        struct ev_value_typed_##prefix##_semicolon_ /* lets the use end with ';' */

#ifdef __cplusplus
}
#endif

#endif /* EV_VALUE_H */
