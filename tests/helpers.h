/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the criterion unit tests: readiness of an fd
 * without blocking, and set/get shorthands that fail the test on error.
 */
#ifndef EV_VALUE_TEST_HELPERS_H
#define EV_VALUE_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <string.h>

#include "ev-value.h"

/* Whether fd polls readable (POLLIN) right now. */
static inline bool fd_readable(int fd) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, 0);

        cr_assert_geq(n, 0, "poll: %s", strerror(errno));
        return n == 1 && (pfd.revents & POLLIN);
}

static inline ev_value *value_new_or_fail(void) {
        ev_value *v = NULL;

        cr_assert_eq(ev_value_new(&v), 0);
        cr_assert_not_null(v);
        return v;
}

static inline ev_value_watcher *watch_or_fail(ev_value *v) {
        ev_value_watcher *w = NULL;

        cr_assert_eq(ev_value_watch(v, 0, &w), 0);
        cr_assert_not_null(w);
        return w;
}

static inline void set_string_or_fail(ev_value *v, const char *s) {
        cr_assert_eq(ev_value_set(v, s, strlen(s) + 1), 0);
}

/* Get from w, which must succeed, and return the snapshot. */
static inline ev_value_snapshot *get_or_fail(ev_value_watcher *w) {
        ev_value_snapshot *s = NULL;
        int r = ev_watcher_get(w, &s);

        cr_assert_eq(r, 0, "ev_watcher_get: %s", strerror(-r));
        cr_assert_not_null(s);
        return s;
}

#endif
