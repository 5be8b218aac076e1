/* SPDX-License-Identifier: MIT */
/*
 * Following the key: what keeps the watchers' state current whatever the
 * cluster does.  One member at a time is followed, in three steps:
 *   READING   a linearizable range read of the key (it needs a leader);
 *             its state is published, and its revision starts the watch;
 *   WATCHING  a watch from that revision + 1, with progress notifications
 *             and "hasleader", so that a member that loses its leader ends
 *             the stream instead of going silent; every contact interval a
 *             read of the key confirms, with a leader, that nothing was
 *             missed, and refreshes the last contact;
 *   WAITING   after every member failed in a row: a backoff, so that a
 *             process without network does not spin.
 * Every (re)connection reads before it watches, rather than resuming the
 * watch at the last revision + 1: the read costs one round trip, and it
 * covers what etcd 3.4 gets wrong around a compaction (a delete at the
 * compaction revision can be lost).  A compacted watch reads again on the
 * same member; any other failure (refused, reset, a stream that ends, a
 * read without answer within the request timeout, no leader) moves to the
 * next member.  What is published is filtered by etcd.c, which applies a
 * state only if it is newer than the last: 3.4 can repeat events.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etcd.h"

enum follow_step { FOLLOW_READING, FOLLOW_WATCHING, FOLLOW_WAITING };

/* How a watch stream ended, as its messages said. */
enum watch_end { WATCH_ENDED, WATCH_COMPACTED };

struct ev__etcd_follower {
        struct ev__etcd_loop *loop;
        const struct ev__etcd_endpoints *endpoints;
        const char *key;
        size_t key_len;
        ev__etcd_publish_fn publish;
        void *userdata;
        struct curl_slist *headers;
        enum follow_step step;
        atomic_size_t member;       /* the index of the member followed */
        unsigned failures;          /* members failed in a row */
        uint64_t wake_at;           /* WAITING: µs */
        uint64_t next_check;        /* WATCHING: µs of the next contact read */
        CURL *read;                 /* the read in progress, or NULL */
        uint64_t read_started;      /* µs */
        struct ev__etcd_buffer read_answer;
        CURL *watch;                /* the watch stream, or NULL */
        struct ev__etcd_buffer watch_lines;
        enum watch_end watch_end;
        _Atomic uint64_t last_contact; /* µs, 0: never */
        uint32_t seed;
};

static void follower_fail_member(struct ev__etcd_follower *f);
static void follower_done(CURL *easy, CURLcode result, void *userdata);

static const char *follower_url(const struct ev__etcd_follower *f) {
        return f->endpoints->urls[atomic_load(&f->member)];
}

static void follower_stop_read(struct ev__etcd_follower *f) {
        if (!f->read)
                return;
        ev__etcd_loop_remove(f->loop, f->read);
        curl_easy_cleanup(f->read);
        f->read = NULL;
        ev__etcd_buffer_free(&f->read_answer);
}

static void follower_stop_watch(struct ev__etcd_follower *f) {
        if (!f->watch)
                return;
        ev__etcd_loop_remove(f->loop, f->watch);
        curl_easy_cleanup(f->watch);
        f->watch = NULL;
        ev__etcd_buffer_free(&f->watch_lines);
}

/* A POST of body to the followed member's path, answered to write_fn. */
static CURL *follower_request(struct ev__etcd_follower *f, const char *path, char *body,
                              curl_write_callback write_fn) {
        char *url = ev__etcd_url(follower_url(f), path);
        CURL *easy = url && body ? curl_easy_init() : NULL;

        if (easy && (ev__etcd_easy_setup(easy, url, body, f->headers) < 0 ||
                     curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, write_fn) != CURLE_OK ||
                     curl_easy_setopt(easy, CURLOPT_WRITEDATA, f) != CURLE_OK ||
                     curl_easy_setopt(easy, CURLOPT_PRIVATE, f) != CURLE_OK ||
                     ev__etcd_loop_add(f->loop, easy) < 0)) {
                curl_easy_cleanup(easy);
                easy = NULL;
        }
        free(url);
        free(body);
        return easy;
}

static size_t follower_read_write(char *data, size_t size, size_t n, void *userdata) {
        struct ev__etcd_follower *f = userdata;

        return ev__etcd_buffer_append(&f->read_answer, data, size * n) < 0 ? 0 : size * n;
}

/* Read the key from the followed member; false without memory. */
static bool follower_start_read(struct ev__etcd_follower *f) {
        f->read = follower_request(f, "/v3/kv/range", ev__etcd_range_body(f->key, f->key_len),
                                   follower_read_write);
        if (f->read && curl_easy_setopt(f->read, CURLOPT_TIMEOUT_MS,
                                        (long)EV__ETCD_REQUEST_TIMEOUT_MS) != CURLE_OK)
                follower_stop_read(f);
        f->read_started = ev__etcd_now_usec();
        return f->read != NULL;
}

/* One line of the watch stream: nonzero ends the stream. */
static int follower_watch_line(const char *line, size_t len, void *userdata) {
        struct ev__etcd_follower *f = userdata;
        struct ev__etcd_watch_message m;
        int r = ev__etcd_parse_watch(line, len, f->key, f->key_len, &m);

        if (r < 0)
                return r;
        switch (m.kind) {
        case EV__ETCD_WATCH_CREATED:
        case EV__ETCD_WATCH_PROGRESS:
                return 0;
        case EV__ETCD_WATCH_EVENTS:
                f->publish(&m.kv, f->userdata);
                ev__etcd_kv_clear(&m.kv);
                return 0;
        case EV__ETCD_WATCH_COMPACTED:
                f->watch_end = WATCH_COMPACTED;
                return 1;
        case EV__ETCD_WATCH_CANCELED:
        default:
                return 1;
        }
}

/* What the watch stream brings, as it comes: a short count stops it (its
 * end is handled when curl reports it done, outside this callback). */
static size_t follower_watch_write(char *data, size_t size, size_t n, void *userdata) {
        struct ev__etcd_follower *f = userdata;
        long status = 0;

        curl_easy_getinfo(f->watch, CURLINFO_RESPONSE_CODE, &status);
        if (status != 200 || ev__etcd_buffer_append(&f->watch_lines, data, size * n) < 0 ||
            ev__etcd_buffer_take_lines(&f->watch_lines, follower_watch_line, f) != 0)
                return 0;
        return size * n;
}

static bool follower_start_watch(struct ev__etcd_follower *f, int64_t start_revision) {
        f->watch_end = WATCH_ENDED;
        f->watch = follower_request(f, "/v3/watch",
                                    ev__etcd_watch_body(f->key, f->key_len, start_revision),
                                    follower_watch_write);
        return f->watch != NULL;
}

/* Start over on the followed member: read, then watch. */
static void follower_start(struct ev__etcd_follower *f) {
        f->step = FOLLOW_READING;
        if (!follower_start_read(f))
                follower_fail_member(f);
}

/* The followed member failed: the next one at once, unless every member
 * failed in a row; then wait before the next round. */
static void follower_fail_member(struct ev__etcd_follower *f) {
        size_t n = f->endpoints->n;

        follower_stop_read(f);
        follower_stop_watch(f);
        atomic_store(&f->member, (atomic_load(&f->member) + 1) % n);
        f->failures++;
        if (f->failures % n != 0) {
                follower_start(f);
                return;
        }
        f->step = FOLLOW_WAITING;
        f->wake_at = ev__etcd_now_usec() + ev__etcd_backoff_usec(f->failures / n, &f->seed);
}

/* A read ended: its state is published and confirms the contact. */
static void follower_read_done(struct ev__etcd_follower *f, CURLcode result) {
        struct ev__etcd_range range;
        long status = 0;
        int r = -EIO;

        curl_easy_getinfo(f->read, CURLINFO_RESPONSE_CODE, &status);
        if (result == CURLE_OK && status == 200)
                r = ev__etcd_parse_range(f->read_answer.data, f->read_answer.size, f->key,
                                         f->key_len, &range);
        curl_easy_cleanup(f->read);
        f->read = NULL;
        ev__etcd_buffer_free(&f->read_answer);
        if (r < 0) {
                follower_fail_member(f);
                return;
        }
        f->publish(&range.kv, f->userdata);
        ev__etcd_kv_clear(&range.kv);
        atomic_store(&f->last_contact, f->read_started);
        f->failures = 0;
        f->next_check = ev__etcd_now_usec() + EV__ETCD_CONTACT_INTERVAL_USEC;
        if (f->step == FOLLOW_READING) {
                f->step = FOLLOW_WATCHING;
                if (!follower_start_watch(f, range.revision + 1))
                        follower_fail_member(f);
        }
}

static void follower_watch_done(struct ev__etcd_follower *f) {
        enum watch_end end = f->watch_end;

        follower_stop_read(f);
        curl_easy_cleanup(f->watch);
        f->watch = NULL;
        ev__etcd_buffer_free(&f->watch_lines);
        if (end == WATCH_COMPACTED)
                follower_start(f);
        else
                follower_fail_member(f);
}

static void follower_done(CURL *easy, CURLcode result, void *userdata) {
        struct ev__etcd_follower *f = userdata;

        if (easy == f->read)
                follower_read_done(f, result);
        else if (easy == f->watch)
                follower_watch_done(f);
}

/* The follower's own alarm for the loop: a backoff's end or the next
 * contact read. */
static uint64_t follower_alarm(const struct ev__etcd_follower *f) {
        if (f->step == FOLLOW_WAITING)
                return f->wake_at;
        if (f->step == FOLLOW_WATCHING && !f->read)
                return f->next_check;
        return UINT64_MAX;
}

static void follower_run_alarm(struct ev__etcd_follower *f) {
        uint64_t now = ev__etcd_now_usec();

        if (f->step == FOLLOW_WAITING && now >= f->wake_at) {
                follower_start(f);
        } else if (f->step == FOLLOW_WATCHING && !f->read && now >= f->next_check) {
                if (!follower_start_read(f))
                        follower_fail_member(f);
        }
}

int ev__etcd_follower_new(const struct ev__etcd_endpoints *endpoints, const char *key,
                          size_t key_len, ev__etcd_publish_fn publish, void *userdata,
                          struct ev__etcd_follower **ret) {
        struct ev__etcd_follower *f = calloc(1, sizeof(*f));
        int r;

        if (!f)
                return -ENOMEM;
        f->endpoints = endpoints;
        f->key = key;
        f->key_len = key_len;
        f->publish = publish;
        f->userdata = userdata;
        f->seed = (uint32_t)ev__etcd_now_usec() ^ (uint32_t)getpid() ^ (uint32_t)(uintptr_t)f;
        f->seed |= 1;
        f->headers = ev__etcd_headers_new();
        r = f->headers ? ev__etcd_loop_new(follower_done, f, &f->loop) : -ENOMEM;
        if (r < 0) {
                curl_slist_free_all(f->headers);
                free(f);
                return r;
        }
        follower_start(f);
        ev__etcd_loop_set_alarm(f->loop, follower_alarm(f));
        *ret = f;
        return 0;
}

void ev__etcd_follower_free(struct ev__etcd_follower *f) {
        if (!f)
                return;
        follower_stop_read(f);
        follower_stop_watch(f);
        ev__etcd_loop_free(f->loop);
        curl_slist_free_all(f->headers);
        free(f);
}

int ev__etcd_follower_get_fd(const struct ev__etcd_follower *f) {
        return ev__etcd_loop_get_fd(f->loop);
}

uint64_t ev__etcd_follower_get_timeout(const struct ev__etcd_follower *f) {
        return ev__etcd_loop_deadline(f->loop);
}

int ev__etcd_follower_process(struct ev__etcd_follower *f) {
        int r = ev__etcd_loop_process(f->loop);

        follower_run_alarm(f);
        ev__etcd_loop_set_alarm(f->loop, follower_alarm(f));
        return r;
}

uint64_t ev__etcd_follower_last_contact(const struct ev__etcd_follower *f) {
        return atomic_load(&f->last_contact);
}

size_t ev__etcd_follower_endpoint(const struct ev__etcd_follower *f) {
        return atomic_load(&f->member);
}
