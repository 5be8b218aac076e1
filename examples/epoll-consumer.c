/* SPDX-License-Identifier: MIT */
/*
 * epoll-consumer: many watchers in one epoll set.  Three values,
 * "temperature", "pressure" and "status", are updated by one producer thread
 * at different rates; each closes after its last update, at a different
 * time.  The main thread watches temperature twice (two consumers of one
 * value each need their own watcher) and the others once, with
 * epoll_event.data.ptr pointing at a small per-watcher struct.  The set is
 * edge-triggered (EPOLLET), so the drain rule applies: after each event,
 * call ev_watcher_get() until -EAGAIN (nothing more; wait for the next edge)
 * or -EPIPE (closed, final snapshot taken).  A watcher's eventfd is written
 * at most once per unconsumed update, so a set or a close that comes while
 * a notification is pending raises no new edge: a consumer that took one
 * snapshot per event could wait forever for a value that has moved on, or
 * closed.  On -EPIPE the watcher is taken out of the epoll set
 * (EPOLL_CTL_DEL) before ev_watcher_close() closes its fd.
 * When every value is closed the program checks that each watcher ended with
 * its value's final data and exits 0 (1 on any error).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include <ev-value.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

enum { TEMPERATURE, PRESSURE, STATUS };

/* One value and its update schedule, in producer ticks of 15 ms. */
struct source {
        const char *name;
        unsigned period;        /* ticks between updates */
        unsigned n_updates;     /* updates before the value closes */
        ev_value *value;
};

static struct source sources[] = {
        [TEMPERATURE] = { "temperature", 2, 6 },
        [PRESSURE] = { "pressure", 3, 6 },
        [STATUS] = { "status", 8, 3 },
};

/* One watcher: what epoll_event.data.ptr points at. */
struct consumer {
        const char *name;
        struct source *source;
        ev_value_watcher *watcher;
        ev_value_snapshot *last;        /* the newest snapshot seen */
};

static void die(const char *what, int r) {
        fprintf(stderr, "epoll-consumer: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

/* The values hold short strings, NUL included, of varying length. */
static void set_text(struct source *src, unsigned i) {
        static const char *const status[] = { "starting", "running", "stopping" };
        char text[32];
        int r;

        if (src == &sources[TEMPERATURE])
                snprintf(text, sizeof(text), "%.1f C", 20.0 + 0.4 * i);
        else if (src == &sources[PRESSURE])
                snprintf(text, sizeof(text), "%u hPa", 1010 + i);
        else
                snprintf(text, sizeof(text), "%s", status[i % ARRAY_SIZE(status)]);
        r = ev_value_set(src->value, text, strlen(text) + 1);
        if (r < 0)
                die("ev_value_set", r);
}

static void *producer(void *userdata) {
        const struct timespec tick = { .tv_nsec = 15 * 1000 * 1000 };
        unsigned n_open = ARRAY_SIZE(sources);

        for (unsigned t = 1; n_open > 0; t++) {
                for (size_t i = 0; i < ARRAY_SIZE(sources); i++) {
                        struct source *src = &sources[i];
                        unsigned n = t / src->period;

                        if (t % src->period != 0 || n > src->n_updates)
                                continue;
                        set_text(src, n - 1);
                        if (n == src->n_updates) {
                                int r = ev_value_close(src->value);

                                if (r < 0)
                                        die("ev_value_close", r);
                                n_open--;
                        }
                }
                nanosleep(&tick, NULL);
        }
        return NULL;
}

int main(void) {
        struct consumer consumers[] = {
                { "temperature/a", &sources[TEMPERATURE] },
                { "temperature/b", &sources[TEMPERATURE] },
                { "pressure", &sources[PRESSURE] },
                { "status", &sources[STATUS] },
        };
        size_t n_watching = ARRAY_SIZE(consumers);
        pthread_t thread;
        bool ok = true;
        int ep, r;

        for (size_t i = 0; i < ARRAY_SIZE(sources); i++) {
                r = ev_value_new(&sources[i].value);
                if (r < 0)
                        die("ev_value_new", r);
        }

        ep = epoll_create1(EPOLL_CLOEXEC);
        if (ep < 0)
                die("epoll_create1", -errno);
        for (size_t i = 0; i < ARRAY_SIZE(consumers); i++) {
                struct consumer *c = &consumers[i];
                struct epoll_event ev = { .events = EPOLLIN | EPOLLET, .data.ptr = c };

                r = ev_value_watch(c->source->value, 0, &c->watcher);
                if (r < 0)
                        die("ev_value_watch", r);
                if (epoll_ctl(ep, EPOLL_CTL_ADD, ev_watcher_get_fd(c->watcher), &ev) < 0)
                        die("epoll_ctl ADD", -errno);
        }

        r = pthread_create(&thread, NULL, producer, NULL);
        if (r != 0)
                die("pthread_create", -r);

        while (n_watching > 0) {
                struct epoll_event events[ARRAY_SIZE(consumers)];
                int n = epoll_wait(ep, events, ARRAY_SIZE(events), -1);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        die("epoll_wait", -errno);
                }
                for (int i = 0; i < n; i++) {
                        struct consumer *c = events[i].data.ptr;
                        ev_value_snapshot *s;

                        /* Edge-triggered: drain, or the next set or the
                         * close may raise no edge. */
                        while ((r = ev_watcher_get(c->watcher, &s)) == 0) {
                                printf("%-14s version %" PRIu64 ": %.*s\n", c->name,
                                       ev_snapshot_version(s), (int)ev_snapshot_size(s),
                                       (const char *)ev_snapshot_data(s));
                                ev_snapshot_unref(c->last);
                                c->last = s;
                        }
                        if (r == -EAGAIN)
                                continue;       /* all taken: wait for the next edge */
                        if (r != -EPIPE)
                                die("ev_watcher_get", r);

                        /* Closed and its final snapshot taken.  Out of the
                         * set first, then close the watcher (which closes
                         * the fd). */
                        if (epoll_ctl(ep, EPOLL_CTL_DEL, ev_watcher_get_fd(c->watcher), NULL) < 0)
                                die("epoll_ctl DEL", -errno);
                        c->watcher = ev_watcher_close(c->watcher);
                        n_watching--;
                        printf("%-14s closed\n", c->name);
                }
        }

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);

        /* Every watcher must have ended with its value's final snapshot,
         * which ev_value_get() still returns after the close. */
        for (size_t i = 0; i < ARRAY_SIZE(consumers); i++) {
                struct consumer *c = &consumers[i];
                ev_value_snapshot *final;
                bool same;

                r = ev_value_get(c->source->value, &final);
                if (r < 0)
                        die("ev_value_get", r);
                same = c->last &&
                       ev_snapshot_version(c->last) == c->source->n_updates &&
                       ev_snapshot_version(c->last) == ev_snapshot_version(final) &&
                       ev_snapshot_size(c->last) == ev_snapshot_size(final) &&
                       memcmp(ev_snapshot_data(c->last), ev_snapshot_data(final),
                              ev_snapshot_size(final)) == 0;
                printf("%-14s ended with %s: %s\n", c->name,
                       same ? "the final value" : "a STALE value",
                       (const char *)ev_snapshot_data(final));
                ok = ok && same;
                ev_snapshot_unref(final);
                c->last = ev_snapshot_unref(c->last);
        }

        for (size_t i = 0; i < ARRAY_SIZE(sources); i++)
                sources[i].value = ev_value_unref(sources[i].value);
        close(ep);
        return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
