/* SPDX-License-Identifier: MIT */
/*
 * The public object: one key of one cluster.  Its state lives in an
 * ordinary ev_value, so its watchers are ordinary watchers and cost what a
 * local watcher costs; the follower (follow.c) publishes each state it
 * learns through ev__value_set_version, with the key's mod_revision as the
 * version, and this file decides what is new: a state is applied only if
 * its revision is above the last one (etcd 3.4 can repeat events), and an
 * absent key found absent again wakes nobody.
 *
 * EV_VALUE_WATCH_SKIP_CURRENT before the first read must count the first
 * state read as seen, which no watcher of the value can do (its first
 * state is news to it).  Such watchers watch a second value, `late`, that
 * is given every state but the first.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"
#include "internal.h"

struct ev_value_etcd {
        unsigned flags;
        struct ev__etcd_endpoints endpoints;
        char *key;
        size_t key_len;
        pthread_mutex_t lock;       /* the state below, and which value a watcher joins */
        ev_value *value;            /* the key's state */
        ev_value *late;             /* NULL, or every state but the first */
        bool have_state;            /* the first state was published */
        bool absent;                /* the last state published */
        uint64_t version;           /* its revision */
        struct ev__etcd_follower *follower;
        struct ev__etcd_writer *writer;
        struct ev__etcd_thread *thread;
};

/* Under e->lock: whether kv is news to the watchers. */
static bool etcd_is_new_locked(const ev_value_etcd *e, const struct ev__etcd_kv *kv) {
        if (kv->revision <= 0 || (uint64_t)kv->revision <= e->version)
                return false;
        return kv->present || !e->have_state || !e->absent;
}

/* The follower's publish: called on the loop's thread. */
static void etcd_publish(const struct ev__etcd_kv *kv, void *userdata) {
        ev_value_etcd *e = userdata;
        bool absent = !kv->present;
        uint64_t version = (uint64_t)kv->revision;

        pthread_mutex_lock(&e->lock);
        if (etcd_is_new_locked(e, kv) &&
            ev__value_set_version(e->value, kv->value, kv->size, absent, version) == 1) {
                if (e->late && e->have_state)
                        ev__value_set_version(e->late, kv->value, kv->size, absent, version);
                e->have_state = true;
                e->absent = absent;
                e->version = version;
        }
        pthread_mutex_unlock(&e->lock);
}

static int etcd_start(ev_value_etcd *e) {
        int r = ev_value_new(&e->value);

        if (r == 0)
                r = ev__etcd_writer_new(&e->endpoints, &e->writer);
        if (r == 0)
                r = ev__etcd_follower_new(&e->endpoints, e->key, e->key_len, etcd_publish, e,
                                          &e->follower);
        if (r == 0 && (e->flags & EV_VALUE_ETCD_THREAD))
                r = ev__etcd_thread_start(e->follower, &e->thread);
        return r;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_new(const char *endpoints, const char *key,
                                           unsigned flags, ev_value_etcd **ret) {
        ev_value_etcd *e;
        int r;

        if (!endpoints || !key || !*key || (flags & ~(unsigned)EV_VALUE_ETCD_THREAD) || !ret)
                return -EINVAL;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        pthread_mutex_init(&e->lock, NULL);
        e->flags = flags;
        r = ev__etcd_endpoints_parse(endpoints, &e->endpoints);
        if (r < 0) {
                pthread_mutex_destroy(&e->lock);
                free(e);
                return r;
        }
        /* Refcounted by curl, and thread-safe since 7.84. */
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                ev__etcd_endpoints_free(&e->endpoints);
                pthread_mutex_destroy(&e->lock);
                free(e);
                return -ENOMEM;
        }
        e->key_len = strlen(key);
        e->key = strdup(key);
        r = e->key ? etcd_start(e) : -ENOMEM;
        if (r < 0) {
                ev_value_etcd_free(e);
                return r;
        }
        *ret = e;
        return 0;
}

EV_VALUE_ETCD_PUBLIC ev_value_etcd *ev_value_etcd_free(ev_value_etcd *e) {
        if (!e)
                return NULL;
        /* The loop first, so that nothing publishes after the end. */
        ev__etcd_thread_stop(e->thread);
        ev__etcd_follower_free(e->follower);
        ev__etcd_writer_free(e->writer);
        if (e->value)
                ev__value_end(e->value, -ECONNRESET);
        if (e->late)
                ev__value_end(e->late, -ECONNRESET);
        ev_value_unref(e->value);
        ev_value_unref(e->late);
        ev__etcd_endpoints_free(&e->endpoints);
        free(e->key);
        pthread_mutex_destroy(&e->lock);
        free(e);
        curl_global_cleanup();
        return NULL;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_get_fd(const ev_value_etcd *e) {
        if (!e)
                return -EINVAL;
        if (e->thread)
                return -EOPNOTSUPP;
        return ev__etcd_follower_get_fd(e->follower);
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_get_timeout(const ev_value_etcd *e, uint64_t *ret_usec) {
        if (!e || !ret_usec)
                return -EINVAL;
        if (e->thread)
                return -EOPNOTSUPP;
        *ret_usec = ev__etcd_follower_get_timeout(e->follower);
        return 0;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_process(ev_value_etcd *e) {
        if (!e)
                return -EINVAL;
        if (e->thread)
                return -EOPNOTSUPP;
        return ev__etcd_follower_process(e->follower);
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_watch(ev_value_etcd *e, unsigned flags,
                                             ev_value_watcher **ret) {
        ev_value *v;
        int r = 0;

        if (!e || (flags & ~(unsigned)(EV_VALUE_WATCH_SHARED_FD | EV_VALUE_WATCH_SKIP_CURRENT)) ||
            !ret)
                return -EINVAL;
        pthread_mutex_lock(&e->lock);
        v = e->value;
        if ((flags & EV_VALUE_WATCH_SKIP_CURRENT) && !e->have_state) {
                if (!e->late)
                        r = ev_value_new(&e->late);
                v = e->late;
        }
        if (r == 0)
                r = ev_value_watch(v, flags, ret);
        pthread_mutex_unlock(&e->lock);
        return r;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_get(ev_value_etcd *e, ev_value_snapshot **ret) {
        if (!e || !ret)
                return -EINVAL;
        return ev_value_get(e->value, ret);
}

/* Send body (freed here) to path: what ev__etcd_writer_send says. */
static int etcd_write(ev_value_etcd *e, const char *path, char *body, int timeout_ms) {
        int r;

        if (!body)
                return -ENOMEM;
        r = ev__etcd_writer_send(e->writer, path, body, ev__etcd_follower_endpoint(e->follower),
                                 timeout_ms);
        free(body);
        return r;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_put(ev_value_etcd *e, const void *data, size_t size,
                                           int timeout_ms) {
        int r = ev_value_etcd_put_flags(e, data, size, 0, timeout_ms);

        return r < 0 ? r : 0;
}

/* With EV_VALUE_SET_IF_CHANGED, a transaction whose compare holds (the
 * writer's answer 1) when the key already has the bytes: then nothing is
 * written, and 0 is returned. */
EV_VALUE_ETCD_PUBLIC int ev_value_etcd_put_flags(ev_value_etcd *e, const void *data, size_t size,
                                                 unsigned flags, int timeout_ms) {
        int r;

        if (!e || (!data && size > 0) || (flags & ~(unsigned)EV_VALUE_SET_IF_CHANGED) ||
            timeout_ms < -1)
                return -EINVAL;
        if (!(flags & EV_VALUE_SET_IF_CHANGED)) {
                r = etcd_write(e, "/v3/kv/put", ev__etcd_put_body(e->key, e->key_len, data, size),
                               timeout_ms);
                return r < 0 ? r : 1;
        }
        r = etcd_write(e, "/v3/kv/txn",
                       ev__etcd_put_if_changed_body(e->key, e->key_len, data, size), timeout_ms);
        return r < 0 ? r : !r;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_delete(ev_value_etcd *e, int timeout_ms) {
        int r;

        if (!e || timeout_ms < -1)
                return -EINVAL;
        r = etcd_write(e, "/v3/kv/deleterange", ev__etcd_delete_body(e->key, e->key_len),
                       timeout_ms);
        return r < 0 ? r : 0;
}

EV_VALUE_ETCD_PUBLIC int ev_value_etcd_get_last_contact(const ev_value_etcd *e,
                                                        uint64_t *ret_usec) {
        uint64_t at;

        if (!e || !ret_usec)
                return -EINVAL;
        at = ev__etcd_follower_last_contact(e->follower);
        if (at == 0)
                return -EAGAIN;
        *ret_usec = at;
        return 0;
}
