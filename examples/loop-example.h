/* SPDX-License-Identifier: MIT */
/*
 * What the event-loop examples (select-, libev-, libevent-, sd-event- and
 * glib-consumer.c) share, so that each of them shows only its loop: a
 * producer thread that sets a small struct N_UPDATES times, alternating
 * bursts of back-to-back sets (which the consumer sees coalesced) with
 * paced ones (which wake it one by one), then closes the value; and the
 * consumer's side, the drain every loop calls when the watcher's fd is
 * readable and the checks that versions only grow, that each payload
 * matches its version and that the final version was seen.
 */
#ifndef EV_VALUE_LOOP_EXAMPLE_H
#define EV_VALUE_LOOP_EXAMPLE_H

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev-value.h>

#define N_UPDATES 1000

/* What the value holds: plain bytes, so a plain struct. */
struct reading {
        unsigned seq;           /* the version this set makes */
        char text[28];          /* "reading <seq>" */
};

/* A value, its producer and one consumer's watcher. */
struct example {
        const char *name;       /* the program, for messages */
        ev_value *value;
        ev_value_watcher *watcher;
        pthread_t producer;
        int done_fd;            /* closed by the producer when it ends, or -1 */
        uint64_t last;          /* version of the newest snapshot seen */
        unsigned n_seen;
};

static const char *example_name = "example";

static void die(const char *what, int r) {
        fprintf(stderr, "%s: %s: %s\n", example_name, what, strerror(-r));
        exit(EXIT_FAILURE);
}

static void *example_produce(void *userdata) {
        const struct timespec pause = { .tv_nsec = 200 * 1000 };
        struct example *ex = userdata;
        int r;

        for (unsigned i = 1; i <= N_UPDATES; i++) {
                struct reading rd = { .seq = i };

                snprintf(rd.text, sizeof(rd.text), "reading %u", i);
                r = ev_value_set(ex->value, &rd, sizeof(rd));
                if (r < 0)
                        die("ev_value_set", r);
                if (i / 50 % 2)
                        nanosleep(&pause, NULL);
        }
        r = ev_value_close(ex->value);
        if (r < 0)
                die("ev_value_close", r);
        if (ex->done_fd >= 0)
                close(ex->done_fd);
        return NULL;
}

/* Make the value and the watcher, and start the producer. */
static void example_start(struct example *ex, const char *name, int done_fd) {
        int r;

        example_name = name;
        *ex = (struct example){ .name = name, .done_fd = done_fd };
        r = ev_value_new(&ex->value);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(ex->value, 0, &ex->watcher);
        if (r < 0)
                die("ev_value_watch", r);
        r = pthread_create(&ex->producer, NULL, example_produce, ex);
        if (r != 0)
                die("pthread_create", -r);
}

/* A snapshot must be newer than the last one seen and hold what the
 * producer set for its version. */
static void example_take(struct example *ex, const ev_value_snapshot *s) {
        const struct reading *rd = ev_snapshot_data(s);
        char text[sizeof(rd->text)];

        if (ev_snapshot_size(s) != sizeof(*rd) || ev_snapshot_version(s) <= ex->last ||
            rd->seq != ev_snapshot_version(s))
                die("snapshot out of order", -EBADMSG);
        snprintf(text, sizeof(text), "reading %u", rd->seq);
        if (strcmp(text, rd->text) != 0)
                die("snapshot payload", -EBADMSG);
        ex->last = ev_snapshot_version(s);
        ex->n_seen++;
}

/* What every loop calls when the watcher's fd is readable: get until
 * -EAGAIN (wait for the next wake-up) or -EPIPE (closed, final snapshot
 * taken; the fd is readable for good, so take it out of the loop).  An
 * edge-triggered loop needs the whole drain, since no new edge comes while
 * a notification is pending; for a level-triggered one the last get costs
 * no system call. */
static int example_drain(struct example *ex) {
        ev_value_snapshot *s;
        int r;

        while ((r = ev_watcher_get(ex->watcher, &s)) == 0) {
                example_take(ex, s);
                ev_snapshot_unref(s);
        }
        return r;
}

/* After the loop, with the fd out of it: join the producer, check that
 * the final version was seen, and release everything.  The exit status. */
static int example_finish(struct example *ex) {
        int r = pthread_join(ex->producer, NULL);

        if (r != 0)
                die("pthread_join", -r);
        ex->watcher = ev_watcher_close(ex->watcher);
        ex->value = ev_value_unref(ex->value);
        if (ex->last != N_UPDATES) {
                fprintf(stderr, "%s: ended at version %" PRIu64 ", not %u\n", ex->name,
                        ex->last, N_UPDATES);
                return EXIT_FAILURE;
        }
        printf("%s: saw %u of %u updates, final version %" PRIu64 "\n", ex->name, ex->n_seen,
               N_UPDATES, ex->last);
        return EXIT_SUCCESS;
}

#endif
