/* SPDX-License-Identifier: MIT */
/*
 * libev-consumer: an event value in a libev loop.  A producer thread sets a
 * small struct N_UPDATES times, alternating bursts of back-to-back sets with
 * paced ones, then closes the value.  main() runs ev_run() with one ev_io on
 * the watcher's eventfd; when it is readable, the callback calls
 * ev_watcher_get() until -EAGAIN, and on -EPIPE (closed, final snapshot
 * taken) stops the ev_io, which ends ev_run().  The names do not clash:
 * libev's base watcher type is struct ev_watcher, which ev_io extends, and
 * ours is ev_value_watcher; both appear below.  The program checks that
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
#include <time.h>

#include <ev.h>
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
        fprintf(stderr, "libev-consumer: %s: %s\n", what, strerror(-r));
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
 * snapshot taken).  Edge-triggered loops need this drain, since no new edge
 * comes while a notification is pending; libev's level-triggered ev_io does
 * not, and the extra get costs no system call. */
static int drain(struct consumer *c) {
        ev_value_snapshot *s;
        int r;

        while ((r = ev_watcher_get(c->watcher, &s)) == 0) {
                take(c, s);
                ev_snapshot_unref(s);
        }
        return r;
}

static void on_readable(struct ev_loop *loop, ev_io *io, int revents) {
        int r = drain(io->data);

        (void)revents;
        if (r == -EPIPE)
                ev_io_stop(loop, io);   /* readable for good now; ev_run() returns */
        else if (r != -EAGAIN)
                die("ev_watcher_get", r);
}

int main(void) {
        struct ev_loop *loop = ev_default_loop(0);
        struct consumer c = { 0 };
        ev_io io;               /* libev's watcher: a struct ev_watcher inside */
        ev_value *v;
        pthread_t thread;
        int r;

        if (!loop)
                die("ev_default_loop", -ENOMEM);
        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(v, 0, &c.watcher);   /* ours: an ev_value_watcher */
        if (r < 0)
                die("ev_value_watch", r);
        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);

        ev_io_init(&io, on_readable, ev_watcher_get_fd(c.watcher), EV_READ);
        io.data = &c;
        ev_io_start(loop, &io);
        ev_run(loop, 0);        /* until on_readable stops the only ev_io */

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);
        if (c.last != N_UPDATES) {
                fprintf(stderr, "libev-consumer: ended at version %" PRIu64 ", not %u\n",
                        c.last, N_UPDATES);
                return EXIT_FAILURE;
        }
        printf("libev-consumer: saw %u of %u updates, final version %" PRIu64 "\n",
               c.n_seen, N_UPDATES, c.last);

        ev_watcher_close(c.watcher);
        ev_value_unref(v);
        ev_loop_destroy(loop);
        return EXIT_SUCCESS;
}
