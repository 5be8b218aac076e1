/* SPDX-License-Identifier: MIT */
/*
 * The JSON of etcd v3's gateway: the bodies the library sends and the
 * checks of every answer it reads.  Nothing a server sends is trusted: a
 * revision is a decimal string in range, a key must be ours exactly, a
 * value valid base64, the shapes what etcd 3.4 sends (int64 fields as
 * strings, zero values omitted: a PUT event has no "type", a range that
 * finds nothing has no "kvs", an empty value no "value").  Also the buffer
 * that cuts the watch stream into its lines, one message each.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "etcd.h"

/* Deep enough for every answer the library reads, and no deeper. */
#define MESSAGE_DEPTH_MAX 8

void ev__etcd_kv_clear(struct ev__etcd_kv *kv) {
        free(kv->value);
        *kv = (struct ev__etcd_kv){ 0 };
}

/* {"key": base64(key), <extra>}, with extra a JSON fragment or "". */
static char *body_with_key(const char *key, size_t key_len, const char *extra) {
        char *b64 = ev__base64_encode(key, key_len), *body = NULL;

        if (b64 && asprintf(&body, "{\"key\":\"%s\"%s}", b64, extra) < 0)
                body = NULL;
        free(b64);
        return body;
}

char *ev__etcd_range_body(const char *key, size_t key_len) {
        return body_with_key(key, key_len, "");
}

char *ev__etcd_delete_body(const char *key, size_t key_len) {
        return body_with_key(key, key_len, "");
}

char *ev__etcd_put_body(const char *key, size_t key_len, const void *data, size_t size) {
        char *b64 = ev__base64_encode(size ? data : "", size), *extra = NULL, *body = NULL;

        if (b64 && asprintf(&extra, ",\"value\":\"%s\"", b64) >= 0)
                body = body_with_key(key, key_len, extra);
        free(b64);
        free(extra);
        return body;
}

/* A transaction that puts data unless the key holds exactly data: etcd
 * fails a compare of the value of a key that does not exist, so an absent
 * key takes the put, also of an empty value. */
char *ev__etcd_put_if_changed_body(const char *key, size_t key_len, const void *data,
                                   size_t size) {
        char *k = ev__base64_encode(key, key_len), *v = ev__base64_encode(size ? data : "", size);
        char *body = NULL;

        if (k && v &&
            asprintf(&body,
                     "{\"compare\":[{\"key\":\"%s\",\"target\":\"VALUE\",\"result\":\"EQUAL\","
                     "\"value\":\"%s\"}],"
                     "\"failure\":[{\"request_put\":{\"key\":\"%s\",\"value\":\"%s\"}}]}",
                     k, v, k, v) < 0)
                body = NULL;
        free(k);
        free(v);
        return body;
}

char *ev__etcd_watch_body(const char *key, size_t key_len, int64_t start_revision) {
        char *b64 = ev__base64_encode(key, key_len), *body = NULL;

        if (b64 && asprintf(&body,
                            "{\"create_request\":{\"key\":\"%s\",\"start_revision\":\"%" PRId64
                            "\",\"progress_notify\":true}}",
                            b64, start_revision) < 0)
                body = NULL;
        free(b64);
        return body;
}

/* Parse exactly one JSON object filling json[0..len). */
static int parse_object(const char *json, size_t len, struct json_object **ret) {
        struct json_tokener *tok;
        struct json_object *o;
        int r = -EBADMSG;

        if (len > INT32_MAX)
                return -EBADMSG;
        tok = json_tokener_new_ex(MESSAGE_DEPTH_MAX);
        if (!tok)
                return -ENOMEM;
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
        o = json_tokener_parse_ex(tok, json, (int)len);
        if (o && json_tokener_get_error(tok) == json_tokener_success &&
            tok->char_offset == (int)len && json_object_is_type(o, json_type_object)) {
                *ret = o;
                o = NULL;
                r = 0;
        }
        json_object_put(o);
        json_tokener_free(tok);
        return r;
}

/* The member `name` of o if it has type t; absent is not an error (zero
 * values are omitted), another type is. */
static int member(struct json_object *o, const char *name, json_type t,
                  struct json_object **ret) {
        struct json_object *m;

        if (!json_object_object_get_ex(o, name, &m) || json_object_is_type(m, json_type_null)) {
                *ret = NULL;
                return 0;
        }
        if (!json_object_is_type(m, t))
                return -EBADMSG;
        *ret = m;
        return 0;
}

/* An int64 field, a decimal string (0 when omitted); never negative. */
static int member_int64(struct json_object *o, const char *name, int64_t *ret) {
        struct json_object *m;
        const char *s;
        int64_t n = 0;
        int r = member(o, name, json_type_string, &m);

        if (r < 0)
                return r;
        if (m) {
                s = json_object_get_string(m);
                /* Below 10^18: no overflow; and no NUL inside ("\u0000"). */
                if (!*s || strlen(s) > 18 || strlen(s) != (size_t)json_object_get_string_len(m))
                        return -EBADMSG;
                for (; *s; s++) {
                        if (*s < '0' || *s > '9')
                                return -EBADMSG;
                        n = n * 10 + (*s - '0');
                }
        }
        *ret = n;
        return 0;
}

static int member_bool(struct json_object *o, const char *name, bool *ret) {
        struct json_object *m;
        int r = member(o, name, json_type_boolean, &m);

        if (r < 0)
                return r;
        *ret = m && json_object_get_boolean(m);
        return 0;
}

/* A base64 string member, decoded; an omitted one is empty. */
static int member_bytes(struct json_object *o, const char *name, unsigned char **ret,
                        size_t *ret_size) {
        struct json_object *m;
        int r = member(o, name, json_type_string, &m);

        if (r < 0)
                return r;
        if (!m) {
                *ret = NULL;
                *ret_size = 0;
                return 0;
        }
        return ev__base64_decode(json_object_get_string(m), (size_t)json_object_get_string_len(m),
                                 ret, ret_size);
}

/* "header": {"revision": ...}, the revision (0 when omitted). */
static int header_revision(struct json_object *o, int64_t *ret) {
        struct json_object *h;
        int r = member(o, "header", json_type_object, &h);

        if (r < 0)
                return r;
        if (!h) {
                *ret = 0;
                return 0;
        }
        return member_int64(h, "revision", ret);
}

/* A mvccpb.KeyValue of our key: present with its mod_revision and value
 * (or, deleted, the revision of the delete). */
static int parse_kv(struct json_object *o, const char *key, size_t key_len, bool deleted,
                    struct ev__etcd_kv *ret) {
        struct ev__etcd_kv kv = { .present = !deleted };
        unsigned char *k;
        size_t k_size;
        int r;

        if (!json_object_is_type(o, json_type_object))
                return -EBADMSG;
        r = member_bytes(o, "key", &k, &k_size);
        if (r < 0)
                return r;
        r = k_size == key_len && memcmp(k, key, key_len) == 0 ? 0 : -EBADMSG;
        free(k);
        if (r == 0)
                r = member_int64(o, "mod_revision", &kv.revision);
        if (r == 0 && kv.revision <= 0)
                r = -EBADMSG;
        if (r == 0 && !deleted)
                r = member_bytes(o, "value", &kv.value, &kv.size);
        if (r < 0)
                return r;
        *ret = kv;
        return 0;
}

static int range_from(struct json_object *o, const char *key, size_t key_len,
                      struct ev__etcd_range *ret) {
        struct ev__etcd_range range = { 0 };
        struct json_object *kvs;
        int r = header_revision(o, &range.revision);

        if (r == 0 && range.revision <= 0)
                r = -EBADMSG;
        if (r == 0)
                r = member(o, "kvs", json_type_array, &kvs);
        if (r < 0)
                return r;
        if (!kvs || json_object_array_length(kvs) == 0) {
                range.kv.revision = range.revision;
        } else {
                if (json_object_array_length(kvs) != 1)
                        return -EBADMSG;
                r = parse_kv(json_object_array_get_idx(kvs, 0), key, key_len, false, &range.kv);
                if (r < 0)
                        return r;
                if (range.kv.revision > range.revision) {
                        ev__etcd_kv_clear(&range.kv);
                        return -EBADMSG;
                }
        }
        *ret = range;
        return 0;
}

int ev__etcd_parse_range(const char *json, size_t len, const char *key, size_t key_len,
                         struct ev__etcd_range *ret) {
        struct json_object *o;
        int r = parse_object(json, len, &o);

        if (r < 0)
                return r;
        r = range_from(o, key, key_len, ret);
        json_object_put(o);
        return r;
}

/* The events of one watch response, each checked; the last one's state
 * is kept, since only the newest matters.  Revisions go up within one
 * response. */
static int events_from(struct json_object *events, const char *key, size_t key_len,
                       struct ev__etcd_kv *ret) {
        struct ev__etcd_kv last = { 0 };
        size_t i, n = json_object_array_length(events);

        for (i = 0; i < n; i++) {
                struct json_object *e = json_object_array_get_idx(events, i), *kv = NULL,
                                   *type = NULL;
                struct ev__etcd_kv next;
                bool deleted;
                int r = json_object_is_type(e, json_type_object) ? 0 : -EBADMSG;

                if (r == 0)
                        r = member(e, "type", json_type_string, &type);
                if (r == 0 && type &&
                    strlen(json_object_get_string(type)) != (size_t)json_object_get_string_len(type))
                        r = -EBADMSG;
                if (r == 0)
                        r = member(e, "kv", json_type_object, &kv);
                if (r == 0 && !kv)
                        r = -EBADMSG;
                deleted = type && strcmp(json_object_get_string(type), "DELETE") == 0;
                if (r == 0 && type && !deleted && strcmp(json_object_get_string(type), "PUT") != 0)
                        r = -EBADMSG;
                if (r == 0)
                        r = parse_kv(kv, key, key_len, deleted, &next);
                if (r == 0 && next.revision < last.revision) {
                        ev__etcd_kv_clear(&next);
                        r = -EBADMSG;
                }
                if (r < 0) {
                        ev__etcd_kv_clear(&last);
                        return r;
                }
                ev__etcd_kv_clear(&last);
                last = next;
        }
        *ret = last;
        return 0;
}

static int watch_result_from(struct json_object *res, const char *key, size_t key_len,
                             struct ev__etcd_watch_message *ret) {
        struct ev__etcd_watch_message m = { 0 };
        struct json_object *events;
        int64_t compact_revision = 0;
        bool created = false, canceled = false;
        int r = header_revision(res, &m.revision);

        if (r == 0)
                r = member_bool(res, "created", &created);
        if (r == 0)
                r = member_bool(res, "canceled", &canceled);
        if (r == 0)
                r = member_int64(res, "compact_revision", &compact_revision);
        if (r == 0)
                r = member(res, "events", json_type_array, &events);
        if (r < 0)
                return r;
        if (canceled)
                m.kind = compact_revision > 0 ? EV__ETCD_WATCH_COMPACTED : EV__ETCD_WATCH_CANCELED;
        else if (created)
                m.kind = EV__ETCD_WATCH_CREATED;
        else if (events && json_object_array_length(events) > 0)
                m.kind = EV__ETCD_WATCH_EVENTS;
        else
                m.kind = EV__ETCD_WATCH_PROGRESS;
        if (m.kind == EV__ETCD_WATCH_EVENTS) {
                r = events_from(events, key, key_len, &m.kv);
                if (r < 0)
                        return r;
        }
        *ret = m;
        return 0;
}

int ev__etcd_parse_watch(const char *json, size_t len, const char *key, size_t key_len,
                         struct ev__etcd_watch_message *ret) {
        struct json_object *o, *res, *error;
        int r = parse_object(json, len, &o);

        if (r < 0)
                return r;
        r = member(o, "error", json_type_object, &error);
        if (r == 0 && error) {
                /* The stream's own end: no leader, a member shutting down. */
                *ret = (struct ev__etcd_watch_message){ .kind = EV__ETCD_WATCH_CANCELED };
        } else if (r == 0) {
                r = member(o, "result", json_type_object, &res);
                if (r == 0)
                        r = res ? watch_result_from(res, key, key_len, ret) : -EBADMSG;
        }
        json_object_put(o);
        return r;
}

/* A gRPC status that another member may not share: the cluster or this
 * member is between leaders, or slow. */
static bool grpc_status_is_transient(int64_t code) {
        return code == 4 /* DEADLINE_EXCEEDED */ || code == 10 /* ABORTED */ ||
               code == 14 /* UNAVAILABLE */;
}

static int write_error_from(struct json_object *o) {
        struct json_object *message, *code;
        int r = member(o, "message", json_type_string, &message);

        if (r == 0)
                r = member(o, "code", json_type_int, &code);
        if (r < 0)
                return r;
        /* etcd's own limit, or below it gRPC's, 2 MiB by default (HTTP 429). */
        if (message && (strstr(json_object_get_string(message), "request is too large") ||
                        strstr(json_object_get_string(message), "message larger than max")))
                return -EMSGSIZE;
        if (code && grpc_status_is_transient(json_object_get_int64(code)))
                return -EAGAIN;
        if (message && (strstr(json_object_get_string(message), "no leader") ||
                        strstr(json_object_get_string(message), "timed out") ||
                        strstr(json_object_get_string(message), "leader changed")))
                return -EAGAIN;
        return -EIO;
}

int ev__etcd_parse_write(long http_status, const char *json, size_t len) {
        struct json_object *o;
        int64_t revision;
        bool succeeded = false;
        int r = parse_object(json, len, &o);

        if (r < 0)
                /* A proxy's or a dying member's page: worth another member. */
                return r == -ENOMEM ? r : (http_status >= 500 ? -EAGAIN : -EBADMSG);
        if (http_status == 200) {
                r = header_revision(o, &revision);
                if (r == 0 && revision <= 0)
                        r = -EBADMSG;
                if (r == 0)
                        r = member_bool(o, "succeeded", &succeeded);
                if (r == 0)
                        r = succeeded;
        } else {
                r = write_error_from(o);
        }
        json_object_put(o);
        return r;
}

int ev__etcd_buffer_append(struct ev__etcd_buffer *b, const void *data, size_t size) {
        size_t allocated;
        char *p;

        if (size > EV__ETCD_LINE_MAX - b->size)
                return -EMSGSIZE;
        if (b->size + size + 1 > b->allocated) {
                allocated = b->allocated ? b->allocated : 4096;
                while (allocated < b->size + size + 1)
                        allocated *= 2;
                p = realloc(b->data, allocated);
                if (!p)
                        return -ENOMEM;
                b->data = p;
                b->allocated = allocated;
        }
        memcpy(b->data + b->size, data, size);
        b->size += size;
        b->data[b->size] = '\0';
        return 0;
}

void ev__etcd_buffer_free(struct ev__etcd_buffer *b) {
        free(b->data);
        *b = (struct ev__etcd_buffer){ 0 };
}

int ev__etcd_buffer_take_lines(struct ev__etcd_buffer *b,
                               int (*fn)(const char *line, size_t len, void *userdata),
                               void *userdata) {
        size_t start = 0;
        char *nl;
        int r = 0;

        if (!b->data)
                return 0;
        while (r == 0 && start < b->size &&
               (nl = memchr(b->data + start, '\n', b->size - start))) {
                size_t len = (size_t)(nl - (b->data + start));

                if (len > 0)
                        r = fn(b->data + start, len, userdata);
                start += len + 1;
        }
        memmove(b->data, b->data + start, b->size - start);
        b->size -= start;
        if (b->data)
                b->data[b->size] = '\0';
        return r;
}
