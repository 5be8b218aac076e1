/* SPDX-License-Identifier: MIT */
/*
 * One watcher API whatever the backend: a unix address is a connection to
 * an ev_value_serve()d value, an etcd address an ev_value_etcd object
 * (etcd.c), so that every command waits on an ordinary watcher with
 * ev_watcher_wait() and never learns where the value lives.
 */
#include "config.h"

#include <errno.h>

#include "ev-value-etcd.h"
#include "ev-value-ipc.h"
#include "evvalue.h"

int source_open(const struct address *a, unsigned watch_flags, struct source *ret) {
        struct source src = { .address = a };
        int r = a->kind == ADDRESS_UNIX
                        ? ev_value_connect(a->path, watch_flags, &src.watcher)
                        : etcd_watch(a, watch_flags, &src.etcd, &src.watcher);

        if (r < 0)
                return r;
        *ret = src;
        return 0;
}

void source_close(struct source *src) {
        src->watcher = ev_watcher_close(src->watcher);
        src->etcd = etcd_close(src->etcd);
}

bool source_is_absent(const struct source *src, const ev_value_snapshot *s) {
        return src->etcd && ev_snapshot_is_absent(s);
}

int source_next(struct source *src, int64_t deadline_ms, ev_value_snapshot **ret) {
        return ev_watcher_wait(src->watcher, time_left(deadline_ms), -1, ret);
}

int source_set(const struct address *a, const void *data, size_t size, unsigned flags,
               int timeout_ms) {
        if (a->kind == ADDRESS_UNIX)
                return ev_value_remote_set_flags(a->path, data, size, flags, timeout_ms);
        return etcd_set(a, data, size, flags, timeout_ms);
}

int source_delete(const struct address *a, int timeout_ms) {
        return a->kind == ADDRESS_ETCD ? etcd_delete(a, timeout_ms) : -EINVAL;
}
