/* SPDX-License-Identifier: MIT */
/*
 * One watcher API whatever the backend: a unix address is a connection to
 * an ev_value_serve()d value, an etcd address an ev_value_etcd object run
 * on its own thread (EV_VALUE_ETCD_THREAD), so that every command waits on
 * an ordinary watcher with ev_watcher_wait() and never learns where the
 * value lives.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ev-value-ipc.h"
#include "evvalue.h"
#ifdef HAVE_ETCD
#include "ev-value-etcd.h"
#endif

#ifdef HAVE_ETCD
static int etcd_open(const struct address *a, ev_value_etcd **ret) {
        return ev_value_etcd_new(a->endpoints, a->key, EV_VALUE_ETCD_THREAD, ret);
}
#endif

int source_open(const struct address *a, unsigned watch_flags, struct source *ret) {
        struct source src = { .address = a };
        int r;

        if (a->kind == ADDRESS_UNIX) {
                r = ev_value_connect(a->path, watch_flags, &src.watcher);
                if (r < 0)
                        return r;
                *ret = src;
                return 0;
        }
#ifdef HAVE_ETCD
        ev_value_etcd *e;

        r = etcd_open(a, &e);
        if (r < 0)
                return r;
        r = ev_value_etcd_watch(e, watch_flags, &src.watcher);
        if (r < 0) {
                ev_value_etcd_free(e);
                return r;
        }
        src.etcd = e;
        *ret = src;
        return 0;
#else
        return -EPROTONOSUPPORT;
#endif
}

void source_close(struct source *src) {
        src->watcher = ev_watcher_close(src->watcher);
#ifdef HAVE_ETCD
        src->etcd = ev_value_etcd_free(src->etcd);
#endif
}

bool source_is_absent(const struct source *src, const ev_value_snapshot *s) {
#ifdef HAVE_ETCD
        return src->etcd && ev_snapshot_is_absent(s);
#else
        (void)src;
        (void)s;
        return false;
#endif
}

int source_next(struct source *src, int64_t deadline_ms, ev_value_snapshot **ret) {
        return ev_watcher_wait(src->watcher, time_left(deadline_ms), -1, ret);
}

#ifdef HAVE_ETCD
/* Whether the key's state equals data, read within timeout_ms: etcd's
 * plain put has no compare on the bytes, so --if-changed on etcd compares
 * with the state read first, which another writer may change meanwhile. */
static int etcd_equals(ev_value_etcd *e, const void *data, size_t size, int timeout_ms) {
        ev_value_watcher *w;
        ev_value_snapshot *s;
        int r = ev_value_etcd_watch(e, 0, &w);

        if (r < 0)
                return r;
        r = ev_watcher_wait(w, timeout_ms, -1, &s);
        ev_watcher_close(w);
        if (r < 0)
                return r;
        r = !ev_snapshot_is_absent(s) && ev_snapshot_size(s) == size &&
            (size == 0 || memcmp(ev_snapshot_data(s), data, size) == 0);
        ev_snapshot_unref(s);
        return r;
}

static int etcd_set(const struct address *a, const void *data, size_t size, unsigned flags,
                    int timeout_ms) {
        int64_t deadline = deadline_after(timeout_ms);
        ev_value_etcd *e;
        int r = etcd_open(a, &e);

        if (r < 0)
                return r;
        if (flags & EV_VALUE_SET_IF_CHANGED) {
                r = etcd_equals(e, data, size, timeout_ms);
                if (r != 0) {
                        ev_value_etcd_free(e);
                        return r < 0 ? r : 0;
                }
                timeout_ms = time_left(deadline);
        }
        r = ev_value_etcd_put(e, data, size, timeout_ms);
        ev_value_etcd_free(e);
        return r < 0 ? r : 1;
}
#endif

int source_set(const struct address *a, const void *data, size_t size, unsigned flags,
               int timeout_ms) {
        if (a->kind == ADDRESS_UNIX)
                return ev_value_remote_set_flags(a->path, data, size, flags, timeout_ms);
#ifdef HAVE_ETCD
        return etcd_set(a, data, size, flags, timeout_ms);
#else
        return -EPROTONOSUPPORT;
#endif
}

int source_delete(const struct address *a, int timeout_ms) {
#ifdef HAVE_ETCD
        ev_value_etcd *e;
        int r;

        if (a->kind != ADDRESS_ETCD)
                return -EINVAL;
        r = etcd_open(a, &e);
        if (r < 0)
                return r;
        r = ev_value_etcd_delete(e, timeout_ms);
        ev_value_etcd_free(e);
        return r;
#else
        (void)a;
        (void)timeout_ms;
        return -EPROTONOSUPPORT;
#endif
}
