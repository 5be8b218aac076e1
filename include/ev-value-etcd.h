/* SPDX-License-Identifier: MIT */
/*
 * libevvalue-etcd: a value stored under one etcd key, watched through
 * ordinary ev_value_watchers by processes on any machine that reaches the
 * cluster.  It speaks etcd v3's JSON gateway over HTTP/1.1 (libcurl) and is
 * driven like sd-bus: the caller's loop polls ev_value_etcd_get_fd() and
 * calls ev_value_etcd_process(), or the flag EV_VALUE_ETCD_THREAD runs that
 * loop on a thread of the library's own.  The man pages
 * (ev_value_etcd_new(3), libevvalue(7)) are the reference.
 */
#ifndef EV_VALUE_ETCD_H
#define EV_VALUE_ETCD_H

#include "ev-value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ev_value_etcd ev_value_etcd; /* one key of one etcd cluster */

/* Flags of ev_value_etcd_new(). */
enum {
        /* Run the loop on one thread of the library's own, joined by
         * ev_value_etcd_free(); get_fd, get_timeout and process then
         * return -EOPNOTSUPP. */
        EV_VALUE_ETCD_THREAD = 1u << 0,
};

/* Watch key on the cluster whose client URLs endpoints lists (comma-separated http://host:port). */
int ev_value_etcd_new(const char *endpoints, const char *key, unsigned flags,
                      ev_value_etcd **ret);
/* The fd the caller's loop polls for POLLIN before ev_value_etcd_process(). */
int ev_value_etcd_get_fd(const ev_value_etcd *e);
/* When to call ev_value_etcd_process() at the latest: CLOCK_MONOTONIC µs, UINT64_MAX for never. */
int ev_value_etcd_get_timeout(const ev_value_etcd *e, uint64_t *ret_usec);
/* Advance the transfers and timers; never blocks. */
int ev_value_etcd_process(ev_value_etcd *e);
/* An ordinary watcher of the key's state (flags as for ev_value_watch()). */
int ev_value_etcd_watch(ev_value_etcd *e, unsigned flags, ev_value_watcher **ret);
/* The key's last known state; -EAGAIN until the first read completed. */
int ev_value_etcd_get(ev_value_etcd *e, ev_value_snapshot **ret);
/* Write the key and wait at most timeout_ms (-1: no limit) until etcd committed it. */
int ev_value_etcd_put(ev_value_etcd *e, const void *data, size_t size, int timeout_ms);
/* ev_value_etcd_put() with flags (EV_VALUE_SET_IF_CHANGED): 1 when put, 0 when skipped. */
int ev_value_etcd_put_flags(ev_value_etcd *e, const void *data, size_t size, unsigned flags,
                            int timeout_ms);
/* Delete the key and wait at most timeout_ms (-1: no limit) until etcd committed it. */
int ev_value_etcd_delete(ev_value_etcd *e, int timeout_ms);
/* When a member with a leader last confirmed the state current: CLOCK_MONOTONIC µs. */
int ev_value_etcd_get_last_contact(const ev_value_etcd *e, uint64_t *ret_usec);
/* True for the state of a key that does not exist; false for an empty value and any local snapshot. */
bool ev_snapshot_is_absent(const ev_value_snapshot *s);
/* Stop everything; watchers get their last unseen snapshot, then -ECONNRESET.  NULL ok; returns NULL. */
ev_value_etcd *ev_value_etcd_free(ev_value_etcd *e);

/* For __attribute__((cleanup)): free *p if it is not NULL. */
static inline void ev_value_etcd_freep(ev_value_etcd **p) {
        if (*p)
                *p = ev_value_etcd_free(*p);
}

#ifdef __cplusplus
}
#endif

#endif /* EV_VALUE_ETCD_H */
