/* SPDX-License-Identifier: MIT */
/*
 * What the etcd tests share: driving an ev_value_etcd's loop from the test
 * (poll its fd until its timeout, process) while waiting for a watcher to
 * reach a state, and a few readers of snapshots.  Used by criterion tests
 * and plain programs alike, so it asserts nothing itself: each function
 * returns what it found and the caller checks.
 */
#ifndef EV_VALUE_ETCD_TEST_H
#define EV_VALUE_ETCD_TEST_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "ev-value-etcd.h"

static inline int64_t etcd_test_now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline uint64_t etcd_test_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Run e's loop (when it has one: not with EV_VALUE_ETCD_THREAD) for at
 * most ms, returning early when w (if not NULL) is readable: 1 readable,
 * 0 time is up, < 0 an error. */
static inline int etcd_test_drive(ev_value_etcd *e, ev_value_watcher *w, int ms) {
        int64_t end = etcd_test_now_ms() + ms;
        int fd = ev_value_etcd_get_fd(e);

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = w ? ev_watcher_get_fd(w) : -1, .events = POLLIN },
                        { .fd = fd, .events = POLLIN },
                };
                int64_t left = end - etcd_test_now_ms();
                uint64_t at;
                int timeout = left > 0 ? (int)left : 0;

                if (fd >= 0 && ev_value_etcd_get_timeout(e, &at) == 0 && at != UINT64_MAX) {
                        uint64_t now = etcd_test_now_usec();
                        int until = at <= now ? 0 : (int)((at - now + 999) / 1000);

                        if (until < timeout)
                                timeout = until;
                }
                if (poll(pfd, fd >= 0 ? 2 : 1, timeout) < 0)
                        return -errno;
                if (fd >= 0) {
                        int r = ev_value_etcd_process(e);

                        if (r < 0)
                                return r;
                }
                if (pfd[0].revents & POLLIN)
                        return 1;
                if (etcd_test_now_ms() >= end)
                        return 0;
        }
}

/* A snapshot's bytes equal the NUL-terminated text (which is not absent). */
static inline bool etcd_test_is(const ev_value_snapshot *s, const char *text) {
        return !ev_snapshot_is_absent(s) && ev_snapshot_size(s) == strlen(text) &&
               memcmp(ev_snapshot_data(s), text, strlen(text)) == 0;
}

/* The state a watcher waits for: a text, or (text NULL) the absent key. */
static inline bool etcd_test_matches(const ev_value_snapshot *s, const char *text) {
        return text ? etcd_test_is(s, text) : ev_snapshot_is_absent(s);
}

/* Take w's snapshots, driving e, until one matches text (NULL: absent)
 * or timeout_ms passed.  Every version taken must exceed the one before
 * (*last_version, updated; may be NULL).  0 found, -ETIMEDOUT, -EILSEQ when
 * a version went back or repeated, or get's error. */
static inline int etcd_test_wait_for(ev_value_etcd *e, ev_value_watcher *w, const char *text,
                                     int timeout_ms, uint64_t *last_version) {
        int64_t end = etcd_test_now_ms() + timeout_ms;
        uint64_t seen = last_version ? *last_version : 0;

        for (;;) {
                ev_value_snapshot *s;
                int r = ev_watcher_get(w, &s);

                if (r == 0) {
                        bool match = etcd_test_matches(s, text);
                        uint64_t version = ev_snapshot_version(s);

                        ev_snapshot_unref(s);
                        if (version <= seen)
                                return -EILSEQ;
                        seen = version;
                        if (last_version)
                                *last_version = version;
                        if (match)
                                return 0;
                        continue;
                }
                if (r != -EAGAIN)
                        return r;
                if (etcd_test_now_ms() >= end)
                        return -ETIMEDOUT;
                r = etcd_test_drive(e, w, (int)(end - etcd_test_now_ms()));
                if (r < 0)
                        return r;
        }
}

#endif
