/* SPDX-License-Identifier: MIT */
/*
 * Private definitions of libevvalue-etcd, shared by the files of lib/etcd/:
 *   - message.c: the JSON the gateway speaks (bodies built, answers
 *     parsed and checked), with base64.c for keys and values;
 *   - endpoints.c: the cluster's client URLs, the failover order and the
 *     backoff between rounds;
 *   - loop.c: libcurl's multi interface behind one epoll fd and a timerfd;
 *   - follow.c: what keeps the key's state current (read, watch, check,
 *     fail over) and publishes it to the watchers;
 *   - write.c: put and delete, blocking, from any thread;
 *   - thread.c: EV_VALUE_ETCD_THREAD;
 *   - etcd.c: the public object.
 */
#ifndef EV_VALUE_ETCD_PRIVATE_H
#define EV_VALUE_ETCD_PRIVATE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "ev-value-etcd.h"

#define EV_VALUE_ETCD_PUBLIC __attribute__((visibility("default")))

/* How often a healthy follower confirms, with a linearizable read, that
 * its state is current (documented in ev_value_etcd_new(3)). */
#define EV__ETCD_CONTACT_INTERVAL_USEC UINT64_C(2000000)
/* How long a connection or a read may take before its member counts as
 * failed. */
#define EV__ETCD_REQUEST_TIMEOUT_MS 2000
/* The longest one attempt of a put or delete may take before the next
 * member is tried: above etcd's own request timeout (5 s plus two election
 * timeouts by default), so that an answer is rarely given up on. */
#define EV__ETCD_WRITE_ATTEMPT_MS 10000
/* Backoff after a whole round of endpoints failed: from the first, doubling,
 * up to the last; +-25% jitter. */
#define EV__ETCD_BACKOFF_FIRST_USEC UINT64_C(100000)
#define EV__ETCD_BACKOFF_MAX_USEC UINT64_C(2000000)
/* The longest line of the watch stream accepted: an event with a value at
 * etcd's default request limit (1.5 MiB) is about 2 MiB of base64. */
#define EV__ETCD_LINE_MAX ((size_t)8 << 20)

/* base64.c: the standard alphabet with padding, as Go's encoding/json. */
/* A NUL-terminated encoding of data, or NULL without memory. */
char *ev__base64_encode(const void *data, size_t size);
/* Decode exactly (padding required, nothing else allowed): 0, -EBADMSG or -ENOMEM. */
int ev__base64_decode(const char *text, size_t len, unsigned char **ret, size_t *ret_size);

/* message.c */
/* The key's state as an answer carried it. */
struct ev__etcd_kv {
        bool present;           /* false: the key does not exist (or was deleted) */
        int64_t revision;       /* present: mod_revision; else the revision of
                                 * the delete or of the read */
        unsigned char *value;   /* malloc'd, or NULL; size 0 when empty */
        size_t size;
};
void ev__etcd_kv_clear(struct ev__etcd_kv *kv);

/* An answer of /v3/kv/range for one key. */
struct ev__etcd_range {
        int64_t revision;       /* the store's revision when read */
        struct ev__etcd_kv kv;
};

/* One message of the watch stream. */
enum ev__etcd_watch_kind {
        EV__ETCD_WATCH_CREATED,
        EV__ETCD_WATCH_EVENTS,   /* kv is the last event's state */
        EV__ETCD_WATCH_PROGRESS, /* a header alone */
        EV__ETCD_WATCH_COMPACTED, /* canceled: history is gone, read again */
        EV__ETCD_WATCH_CANCELED, /* canceled for another reason, or an error */
};
struct ev__etcd_watch_message {
        enum ev__etcd_watch_kind kind;
        int64_t revision;       /* the header's, 0 when absent */
        struct ev__etcd_kv kv;  /* EVENTS only */
};

char *ev__etcd_range_body(const char *key, size_t key_len);
char *ev__etcd_watch_body(const char *key, size_t key_len, int64_t start_revision);
char *ev__etcd_put_body(const char *key, size_t key_len, const void *data, size_t size);
char *ev__etcd_delete_body(const char *key, size_t key_len);
char *ev__etcd_put_if_changed_body(const char *key, size_t key_len, const void *data,
                                   size_t size);
/* Parse what the gateway answered: 0, -EBADMSG for anything malformed or
 * about another key, -ENOMEM.  The outputs are written only on success. */
int ev__etcd_parse_range(const char *json, size_t len, const char *key, size_t key_len,
                         struct ev__etcd_range *ret);
int ev__etcd_parse_watch(const char *json, size_t len, const char *key, size_t key_len,
                         struct ev__etcd_watch_message *ret);
/* A put, delete or transaction's answer: 0 committed, 1 a transaction
 * whose compare held ("succeeded"); -EMSGSIZE too large; -EAGAIN for an
 * error another member may not have (no leader, timed out); -EIO for
 * another error; -EBADMSG when malformed. */
int ev__etcd_parse_write(long http_status, const char *json, size_t len);

/* A growing buffer for what a transfer receives. */
struct ev__etcd_buffer {
        char *data;
        size_t size, allocated;
};
/* Append; -ENOMEM, or -EMSGSIZE beyond EV__ETCD_LINE_MAX. */
int ev__etcd_buffer_append(struct ev__etcd_buffer *b, const void *data, size_t size);
void ev__etcd_buffer_free(struct ev__etcd_buffer *b);
/* Hand each complete line of b to fn and keep the rest; stops at fn's
 * first nonzero result and returns it. */
int ev__etcd_buffer_take_lines(struct ev__etcd_buffer *b,
                               int (*fn)(const char *line, size_t len, void *userdata),
                               void *userdata);

/* endpoints.c */
struct ev__etcd_endpoints {
        char **urls;            /* "http://host:port", no trailing slash */
        size_t n;
};
/* Parse a comma-separated list: 0, -EINVAL, -ENOMEM. */
int ev__etcd_endpoints_parse(const char *list, struct ev__etcd_endpoints *ret);
void ev__etcd_endpoints_free(struct ev__etcd_endpoints *e);
/* url + path, malloc'd. */
char *ev__etcd_url(const char *base, const char *path);
/* The wait before the next round after `rounds` whole rounds failed. */
uint64_t ev__etcd_backoff_usec(unsigned rounds, uint32_t *seed);

/* The curl options every request of the library shares: the body, the
 * headers (JSON, no "Expect", "hasleader"), HTTP/1.1, no signals. */
int ev__etcd_easy_setup(CURL *easy, const char *url, const char *body,
                        struct curl_slist *headers);
struct curl_slist *ev__etcd_headers_new(void);
/* Where a failed transfer leaves the member: -ECONNREFUSED, -EHOSTUNREACH
 * (nothing answered), -ETIMEDOUT, or -EIO. */
int ev__etcd_curl_error(CURLcode code);

/* loop.c: the transfers of the follower, driven through one epoll fd. */
struct ev__etcd_loop;
typedef void (*ev__etcd_done_fn)(CURL *easy, CURLcode result, void *userdata);
int ev__etcd_loop_new(ev__etcd_done_fn done, void *userdata, struct ev__etcd_loop **ret);
void ev__etcd_loop_free(struct ev__etcd_loop *l);
int ev__etcd_loop_get_fd(const struct ev__etcd_loop *l);
/* Start a transfer; its end is reported to done from ev__etcd_loop_process. */
int ev__etcd_loop_add(struct ev__etcd_loop *l, CURL *easy);
/* Stop a transfer without reporting it. */
void ev__etcd_loop_remove(struct ev__etcd_loop *l, CURL *easy);
/* The loop's next deadline (curl's or the caller's own), µs, UINT64_MAX none. */
uint64_t ev__etcd_loop_deadline(const struct ev__etcd_loop *l);
/* The caller's own deadline (UINT64_MAX: none); rearms the timerfd. */
void ev__etcd_loop_set_alarm(struct ev__etcd_loop *l, uint64_t at_usec);
/* Run what is ready, without blocking: 0 or -ENOMEM. */
int ev__etcd_loop_process(struct ev__etcd_loop *l);

/* follow.c */
struct ev__etcd_follower;
/* What a follower publishes to: the object's values (etcd.c). */
typedef void (*ev__etcd_publish_fn)(const struct ev__etcd_kv *kv, void *userdata);
int ev__etcd_follower_new(const struct ev__etcd_endpoints *endpoints, const char *key,
                          size_t key_len, ev__etcd_publish_fn publish, void *userdata,
                          struct ev__etcd_follower **ret);
void ev__etcd_follower_free(struct ev__etcd_follower *f);
int ev__etcd_follower_get_fd(const struct ev__etcd_follower *f);
uint64_t ev__etcd_follower_get_timeout(const struct ev__etcd_follower *f);
int ev__etcd_follower_process(struct ev__etcd_follower *f);
/* CLOCK_MONOTONIC µs of the last confirmation, 0 before the first. */
uint64_t ev__etcd_follower_last_contact(const struct ev__etcd_follower *f);
/* The member the follower trusts now, where writes go first. */
size_t ev__etcd_follower_endpoint(const struct ev__etcd_follower *f);

/* write.c */
struct ev__etcd_writer;
int ev__etcd_writer_new(const struct ev__etcd_endpoints *endpoints,
                        struct ev__etcd_writer **ret);
void ev__etcd_writer_free(struct ev__etcd_writer *w);
/* Send body to path, trying the members from `first`, within timeout_ms:
 * what ev__etcd_parse_write says of the answer, or why none came. */
int ev__etcd_writer_send(struct ev__etcd_writer *w, const char *path, const char *body,
                         size_t first, int timeout_ms);

/* thread.c */
struct ev__etcd_thread;
int ev__etcd_thread_start(struct ev__etcd_follower *f, struct ev__etcd_thread **ret);
void ev__etcd_thread_stop(struct ev__etcd_thread *t);

uint64_t ev__etcd_now_usec(void);

#endif
