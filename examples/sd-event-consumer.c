/* SPDX-License-Identifier: MIT */
/*
 * sd-event-consumer: an event value in a systemd sd-event loop.  A producer
 * thread sets a small struct N_UPDATES times, alternating bursts of
 * back-to-back sets with paced ones, then closes the value.  main() runs
 * sd_event_loop() with one I/O source on the watcher's eventfd; when it is
 * readable, the handler calls ev_watcher_get() until -EAGAIN, and on -EPIPE
 * (closed, final snapshot taken) calls sd_event_exit().  A handler's error
 * goes through sd_event_exit() too: returned, sd-event would only disable
 * the source and the loop would wait forever.  The program checks that
 * versions only grow, that each payload matches its version and that the
 * final version was seen: exits 0, or 1 on any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>

#include <systemd/sd-event.h>
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
        uint64_t last;          /* version of the newest snapshot seen */
        unsigned n_seen;
};

static void die(const char *what, int r) {
        fprintf(stderr, "sd-event-consumer: %s: %s\n", what, strerror(-r));
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
 * snapshot taken).  An I/O source added with EPOLLIN | EPOLLET needs this
 * drain, since no new edge comes while a notification is pending; this
 * level-triggered one does not, and the extra get costs no system call. */
static int drain(struct consumer *c) {
        ev_value_snapshot *s;
        int r;

        while ((r = ev_watcher_get(c->watcher, &s)) == 0) {
                take(c, s);
                ev_snapshot_unref(s);
        }
        return r;
}

static int on_readable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        int r = drain(userdata);

        (void)fd;
        (void)revents;
        if (r == -EAGAIN)
                return 0;
        /* -EPIPE: done (and readable for good); anything else: an error. */
        return sd_event_exit(sd_event_source_get_event(src), r == -EPIPE ? 0 : r);
}

int main(void) {
        struct consumer c = { 0 };
        sd_event_source *src;
        sd_event *e;
        ev_value *v;
        pthread_t thread;
        int r;

        r = sd_event_new(&e);
        if (r < 0)
                die("sd_event_new", r);
        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(v, 0, &c.watcher);
        if (r < 0)
                die("ev_value_watch", r);
        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);

        r = sd_event_add_io(e, &src, ev_watcher_get_fd(c.watcher), EPOLLIN, on_readable, &c);
        if (r < 0)
                die("sd_event_add_io", r);
        r = sd_event_loop(e);   /* until on_readable calls sd_event_exit() */
        if (r < 0)
                die("ev_watcher_get, or sd_event_loop", r);

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);
        if (c.last != N_UPDATES) {
                fprintf(stderr, "sd-event-consumer: ended at version %" PRIu64 ", not %u\n",
                        c.last, N_UPDATES);
                return EXIT_FAILURE;
        }
        printf("sd-event-consumer: saw %u of %u updates, final version %" PRIu64 "\n",
               c.n_seen, N_UPDATES, c.last);

        /* The source out of sd-event's epoll set before the watcher closes
         * its fd. */
        sd_event_source_unref(src);
        ev_watcher_close(c.watcher);
        ev_value_unref(v);
        sd_event_unref(e);
        return EXIT_SUCCESS;
}
