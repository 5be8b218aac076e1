/* SPDX-License-Identifier: MIT */
/*
 * Snapshots: immutable, refcounted bytes.  A copied snapshot is one
 * allocation holding its header and its bytes; an owned snapshot points to
 * the caller's buffer and runs its destroy callback when the last
 * reference goes.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "ev-value-etcd.h" /* ev_snapshot_is_absent */

static ev_value_snapshot *snapshot_alloc(size_t inline_size) {
        ev_value_snapshot *s;

        if (inline_size > SIZE_MAX - sizeof(*s))
                return NULL;
        s = ev__fault(EV__FAULT_SNAPSHOT_ALLOC) ? NULL : malloc(sizeof(*s) + inline_size);
        if (!s)
                return NULL;
        if ((uintptr_t)s >> 48) {
                /* Beyond what value->current can hold (slot.c). */
                free(s);
                return NULL;
        }
        atomic_init(&s->n_ref, 1);
        s->version = 0;
        s->absent = false;
        s->size = 0;
        s->data = NULL;
        s->destroy = NULL;
        s->userdata = NULL;
        return s;
}

int ev__snapshot_new_copy(const void *data, size_t size, ev_value_snapshot **ret) {
        ev_value_snapshot *s = snapshot_alloc(size);

        if (!s)
                return -ENOMEM;
        s->size = size;
        s->data = s->inline_data;
        if (size > 0)
                memcpy(s->data, data, size);
        *ret = s;
        return 0;
}

int ev__snapshot_new_owned(void *data, size_t size,
                           void (*destroy)(void *data, void *userdata), void *userdata,
                           ev_value_snapshot **ret) {
        ev_value_snapshot *s = snapshot_alloc(0);

        if (!s)
                return -ENOMEM;
        s->size = size;
        s->data = data;
        s->destroy = destroy;
        s->userdata = userdata;
        *ret = s;
        return 0;
}

/* Free a snapshot that was never published: the caller keeps its data. */
void ev__snapshot_discard(ev_value_snapshot *s) {
        free(s);
}

EV_VALUE_PUBLIC const void *ev_snapshot_data(const ev_value_snapshot *s) {
        return s ? s->data : NULL;
}

EV_VALUE_PUBLIC size_t ev_snapshot_size(const ev_value_snapshot *s) {
        return s ? s->size : 0;
}

EV_VALUE_PUBLIC uint64_t ev_snapshot_version(const ev_value_snapshot *s) {
        return s ? s->version : 0;
}

/* Declared in <ev-value-etcd.h>, the only backend whose snapshots can be
 * absent; defined here because it must answer for every snapshot. */
EV_VALUE_PUBLIC bool ev_snapshot_is_absent(const ev_value_snapshot *s) {
        return s && s->absent;
}

EV_VALUE_PUBLIC ev_value_snapshot *ev_snapshot_ref(ev_value_snapshot *s) {
        if (s)
                atomic_fetch_add_explicit(&s->n_ref, 1, memory_order_relaxed);
        return s;
}

void ev__snapshot_destroy(ev_value_snapshot *s) {
        if (s->destroy)
                s->destroy(s->data, s->userdata);
        free(s);
}

EV_VALUE_PUBLIC ev_value_snapshot *ev_snapshot_unref(ev_value_snapshot *s) {
        /* acq_rel: every holder's reads happen before destroy and free.  (A
         * release plus a separate acquire fence would do, but ThreadSanitizer
         * does not model fences.) */
        if (s && atomic_fetch_sub_explicit(&s->n_ref, 1, memory_order_acq_rel) == 1)
                ev__snapshot_destroy(s);
        return NULL;
}
