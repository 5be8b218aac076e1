/* SPDX-License-Identifier: MIT */
/*
 * ev-value-demo: what libevvalue does, in about two seconds.  A producer
 * thread sets one value to a struct {seq, timestamp, text}, sleeping 100 us
 * between updates, for two seconds, then closes it.  Four consumer threads
 * watch it, each with its own watcher and its own way of waiting: poll(),
 * epoll_wait() and ev_watcher_wait() are fast, and a second
 * ev_watcher_wait() consumer is deliberately slow: it naps 200 ms after each
 * update it takes.  The fast consumers see nearly every update.  The slow
 * one skips hundreds at a time, yet what it gets is never stale: each get
 * returns the newest value, and no queue grows anywhere.  All four end with
 * the producer's final update, then -EPIPE.  A shared cancel eventfd, in
 * every consumer's wait, is how main would stop them early.  Exits 0, or 1
 * if a consumer missed the final update or saw a seq that did not increase.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <ev-value.h>

#define MSEC (INT64_C(1000) * 1000)     /* in nanoseconds */
#define RUN_TIME (2000 * MSEC)
#define PERIOD (MSEC / 10)
#define REPORT_INTERVAL (500 * MSEC)
#define SLOW_NAP (200 * MSEC)
#define WAIT_TIMEOUT_MS 1000

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* What the value holds. */
struct sample {
        uint64_t seq;
        int64_t timestamp;      /* CLOCK_MONOTONIC ns, just before the set */
        char text[24];
};

struct consumer {
        const char *name;
        const char *how;
        void *(*run)(void *consumer);
        int64_t nap;            /* after each update; 0 for a fast consumer */
        ev_value_watcher *watcher;
        pthread_t thread;
        /* Written by the consumer's thread, read by main after the join. */
        int64_t next_report;
        uint64_t n_seen, n_skipped, last_seq;
        unsigned n_disorder;    /* seqs that did not increase: must stay 0 */
        bool cancelled;
};

/* Readable means "stop now", for every consumer at once. */
static int cancel_fd = -1;

static void die(const char *what, int r) {
        fprintf(stderr, "ev-value-demo: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static int64_t now(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 * MSEC + ts.tv_nsec;
}

static void nap(int64_t ns) {
        struct timespec ts = { .tv_sec = ns / (1000 * MSEC), .tv_nsec = ns % (1000 * MSEC) };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static void *producer(void *userdata) {
        ev_value *v = userdata;
        int64_t end = now() + RUN_TIME;
        struct sample s = { 0 };
        int r;

        do {
                s.seq++;
                s.timestamp = now();
                snprintf(s.text, sizeof(s.text), "sample %" PRIu64, s.seq);
                r = ev_value_set(v, &s, sizeof(s));
                if (r < 0)
                        die("ev_value_set", r);
                nap(PERIOD);
        } while (now() < end);

        /* Every consumer gets this last update if it has not yet, then -EPIPE. */
        r = ev_value_close(v);
        if (r < 0)
                die("ev_value_close", r);
        return NULL;
}

/* Account for one update, print about it, and drop it. */
static void consume(struct consumer *c, ev_value_snapshot *snap) {
        const struct sample *s = ev_snapshot_data(snap);
        uint64_t skipped = 0;

        if (ev_snapshot_size(snap) != sizeof(*s))
                die("unexpected snapshot size", -EBADMSG);
        if (s->seq > c->last_seq)
                skipped = s->seq - c->last_seq - 1;
        else
                c->n_disorder++;
        c->n_seen++;
        c->n_skipped += skipped;
        c->last_seq = s->seq;

        if (c->nap > 0) {
                printf("%-5s  got %-12s skipped %4" PRIu64 ", %.2f ms old\n",
                       c->name, s->text, skipped, (double)(now() - s->timestamp) / MSEC);
                /* "Processing" it; the snapshot stays valid however many
                 * updates the producer makes meanwhile. */
                nap(c->nap);
        } else if (now() >= c->next_report) {
                printf("%-5s  at seq %5" PRIu64 ": seen %5" PRIu64 ", skipped %4" PRIu64 "\n",
                       c->name, s->seq, c->n_seen, c->n_skipped);
                c->next_report = now() + REPORT_INTERVAL;
        }
        ev_snapshot_unref(snap);
}

/* Take the newest update if there is one.  False once the value is closed
 * and its final update has been taken. */
static bool take(struct consumer *c) {
        ev_value_snapshot *snap;
        int r = ev_watcher_get(c->watcher, &snap);

        if (r == -EPIPE)
                return false;
        if (r == -EAGAIN)
                return true;    /* nothing new after all; harmless */
        if (r < 0)
                die("ev_watcher_get", r);
        consume(c, snap);
        return true;
}

static void *poll_consumer(void *userdata) {
        struct consumer *c = userdata;
        struct pollfd pfd[] = {
                { .fd = ev_watcher_get_fd(c->watcher), .events = POLLIN },
                { .fd = cancel_fd, .events = POLLIN },
        };

        for (;;) {
                if (poll(pfd, ARRAY_SIZE(pfd), -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll", -errno);
                }
                /* The watcher first: the final update beats a cancel. */
                if (pfd[0].revents & POLLIN) {
                        if (!take(c))
                                return NULL;
                } else if (pfd[1].revents & POLLIN) {
                        c->cancelled = true;
                        return NULL;
                }
        }
}

static void *epoll_consumer(void *userdata) {
        struct consumer *c = userdata;
        int fds[] = { ev_watcher_get_fd(c->watcher), cancel_fd };
        int ep = epoll_create1(EPOLL_CLOEXEC);
        bool more = true;

        if (ep < 0)
                die("epoll_create1", -errno);
        for (size_t i = 0; i < ARRAY_SIZE(fds); i++) {
                struct epoll_event ev = { .events = EPOLLIN, .data.fd = fds[i] };

                if (epoll_ctl(ep, EPOLL_CTL_ADD, fds[i], &ev) < 0)
                        die("epoll_ctl", -errno);
        }

        while (more) {
                struct epoll_event events[ARRAY_SIZE(fds)];
                bool ready = false, cancelled = false;
                int n = epoll_wait(ep, events, ARRAY_SIZE(events), -1);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        die("epoll_wait", -errno);
                }
                for (int i = 0; i < n; i++) {
                        if (events[i].data.fd == cancel_fd)
                                cancelled = true;
                        else
                                ready = true;
                }
                if (ready) {
                        more = take(c);
                } else if (cancelled) {
                        c->cancelled = true;
                        more = false;
                }
        }
        /* Closing the epoll instance takes the watcher's fd out of it, as
         * ev_watcher_close() (in main) requires. */
        close(ep);
        return NULL;
}

static void *wait_consumer(void *userdata) {
        struct consumer *c = userdata;

        for (;;) {
                ev_value_snapshot *snap;
                int r = ev_watcher_wait(c->watcher, WAIT_TIMEOUT_MS, cancel_fd, &snap);

                if (r == -EPIPE)
                        return NULL;
                if (r == -ECANCELED) {
                        c->cancelled = true;
                        return NULL;
                }
                if (r == -ETIMEDOUT) {
                        printf("%-5s  no update for %d ms\n", c->name, WAIT_TIMEOUT_MS);
                        continue;
                }
                if (r < 0)
                        die("ev_watcher_wait", r);
                consume(c, snap);
        }
}

int main(void) {
        struct consumer consumers[] = {
                { "poll", "poll()", poll_consumer },
                { "epoll", "epoll_wait()", epoll_consumer },
                { "wait", "ev_watcher_wait()", wait_consumer },
                { "slow", "ev_watcher_wait()", wait_consumer, SLOW_NAP },
        };
        const struct sample *final;
        ev_value_snapshot *final_snap;
        pthread_t thread;
        uint64_t one = 1;
        int64_t start;
        bool ok = true;
        ev_value *v;
        int r;

        cancel_fd = eventfd(0, EFD_CLOEXEC);
        if (cancel_fd < 0)
                die("eventfd", -errno);
        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);

        printf("A producer sets one value for %" PRId64 " s, sleeping %" PRId64 " us"
               " between updates.\n"
               "Four watchers: poll, epoll and wait take each update as it comes;\n"
               "slow takes one, then naps %" PRId64 " ms.\n\n",
               RUN_TIME / (1000 * MSEC), PERIOD / 1000, SLOW_NAP / MSEC);
        start = now();
        for (size_t i = 0; i < ARRAY_SIZE(consumers); i++) {
                struct consumer *c = &consumers[i];

                r = ev_value_watch(v, 0, &c->watcher);
                if (r < 0)
                        die("ev_value_watch", r);
                c->next_report = start + REPORT_INTERVAL;
                r = pthread_create(&c->thread, NULL, c->run, c);
                if (r != 0)
                        die("pthread_create", -r);
        }
        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);
        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);

        /* The value is closed, so every consumer is about to take the final
         * update and see -EPIPE; both take precedence over a readable cancel
         * fd, so cancelling now cuts no one short.  It only matters to a
         * consumer that would otherwise hang. */
        if (write(cancel_fd, &one, sizeof(one)) < 0)
                die("write cancel_fd", -errno);
        for (size_t i = 0; i < ARRAY_SIZE(consumers); i++) {
                r = pthread_join(consumers[i].thread, NULL);
                if (r != 0)
                        die("pthread_join", -r);
        }

        /* A closed value still answers ev_value_get() with its final state. */
        r = ev_value_get(v, &final_snap);
        if (r < 0)
                die("ev_value_get", r);
        final = ev_snapshot_data(final_snap);
        printf("\n%" PRIu64 " updates, then closed; all consumers done after %.2f s.\n\n",
               final->seq, (double)(now() - start) / (1000 * MSEC));
        printf("consumer  waits with         updates seen  skipped  last seq  final?\n");
        for (size_t i = 0; i < ARRAY_SIZE(consumers); i++) {
                struct consumer *c = &consumers[i];
                bool good = !c->cancelled && c->n_disorder == 0 && c->last_seq == final->seq;

                printf("%-8s  %-17s  %12" PRIu64 "  %7" PRIu64 "  %8" PRIu64 "  %s\n",
                       c->name, c->how, c->n_seen, c->n_skipped, c->last_seq,
                       good ? "yes" : c->n_disorder ? "NO (seq went backwards)" : "NO");
                ok = ok && good;
                c->watcher = ev_watcher_close(c->watcher);
        }

        ev_snapshot_unref(final_snap);
        ev_value_unref(v);
        close(cancel_fd);
        return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
