/* SPDX-License-Identifier: MIT */
/*
 * libevent-consumer: an event value in a libevent 2 loop.  A producer thread
 * sets a small struct N_UPDATES times, alternating bursts of back-to-back
 * sets with paced ones, then closes the value.  main() runs
 * event_base_dispatch() with one persistent EV_READ event on the watcher's
 * eventfd; when it is readable, the callback calls ev_watcher_get() until
 * -EAGAIN, and on -EPIPE (closed, final snapshot taken) deletes the event,
 * which ends the dispatch.  libevent owns the EV_* macros (EV_READ,
 * EV_PERSIST), which is why ours are all EV_VALUE_*.  The program checks
 * that versions only grow, that each payload matches its version and that
 * the final version was seen: exits 0, or 1 on any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <ev-value.h>

#define N_UPDATES 1000

/* What the value holds: plain bytes, so a plain struct. */
struct reading {
        unsigned seq;           /* the version this set makes */
        char text[28];          /* "reading <seq>" */
};

/* One consumer's state: our watcher and what it has seen. */
struct consumer {
        ev_value_watcher *watcher;
        struct event *event;    /* libevent's, on the watcher's fd */
        uint64_t last;          /* version of the newest snapshot seen */
        unsigned n_seen;
};

static void die(const char *what, int r) {
        fprintf(stderr, "libevent-consumer: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static void *producer(void *userdata) {
        const struct timespec pause = { .tv_nsec = 200 * 1000 };
        ev_value *v = userdata;
        int r;

        for (unsigned i = 1; i <= N_UPDATES; i++) {
                struct reading rd = { .seq = i };

                snprintf(rd.text, sizeof(rd.text), "reading %u", i);
                r = ev_value_set(v, &rd, sizeof(rd));
                if (r < 0)
                        die("ev_value_set", r);
                /* 50 back-to-back sets, which the consumer sees coalesced,
                 * then 50 paced ones, which wake it one by one. */
                if (i / 50 % 2)
                        nanosleep(&pause, NULL);
        }
        r = ev_value_close(v);
        if (r < 0)
                die("ev_value_close", r);
        return NULL;
}

/* A snapshot must be newer than the last one seen and hold what the
 * producer set for its version. */
static void take(struct consumer *c, const ev_value_snapshot *s) {
        const struct reading *rd = ev_snapshot_data(s);
        char text[sizeof(rd->text)];

        if (ev_snapshot_size(s) != sizeof(*rd) || ev_snapshot_version(s) <= c->last ||
            rd->seq != ev_snapshot_version(s))
                die("snapshot out of order", -EBADMSG);
        snprintf(text, sizeof(text), "reading %u", rd->seq);
        if (strcmp(text, rd->text) != 0)
                die("snapshot payload", -EBADMSG);
        c->last = ev_snapshot_version(s);
        c->n_seen++;
}

/* Get until -EAGAIN (wait for the next wake-up) or -EPIPE (closed, final
 * snapshot taken).  Edge-triggered loops (EV_ET) need this drain, since no
 * new edge comes while a notification is pending; this level-triggered event
 * does not, and the extra get costs no system call. */
static int drain(struct consumer *c) {
        ev_value_snapshot *s;
        int r;

        while ((r = ev_watcher_get(c->watcher, &s)) == 0) {
                take(c, s);
                ev_snapshot_unref(s);
        }
        return r;
}

static void on_readable(evutil_socket_t fd, short what, void *arg) {
        struct consumer *c = arg;
        int r = drain(c);

        (void)fd;
        (void)what;
        if (r == -EPIPE)
                event_del(c->event);    /* readable for good now; the dispatch returns */
        else if (r != -EAGAIN)
                die("ev_watcher_get", r);
}

int main(void) {
        struct consumer c = { 0 };
        struct event_base *base;
        ev_value *v;
        pthread_t thread;
        int r;

        base = event_base_new();
        if (!base)
                die("event_base_new", -ENOMEM);
        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(v, 0, &c.watcher);
        if (r < 0)
                die("ev_value_watch", r);
        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);

        c.event = event_new(base, ev_watcher_get_fd(c.watcher), EV_READ | EV_PERSIST,
                            on_readable, &c);
        if (!c.event || event_add(c.event, NULL) < 0)
                die("event_new or event_add", -ENOMEM);
        if (event_base_dispatch(base) < 0)      /* until on_readable deletes the event */
                die("event_base_dispatch", -EIO);

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);
        if (c.last != N_UPDATES) {
                fprintf(stderr, "libevent-consumer: ended at version %" PRIu64 ", not %u\n",
                        c.last, N_UPDATES);
                return EXIT_FAILURE;
        }
        printf("libevent-consumer: saw %u of %u updates, final version %" PRIu64 "\n",
               c.n_seen, N_UPDATES, c.last);

        event_free(c.event);
        ev_watcher_close(c.watcher);
        ev_value_unref(v);
        event_base_free(base);
        return EXIT_SUCCESS;
}
