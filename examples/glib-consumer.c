/* SPDX-License-Identifier: MIT */
/*
 * glib-consumer: an event value in a GLib main loop.  A producer thread sets
 * a small struct N_UPDATES times, alternating bursts of back-to-back sets
 * with paced ones, then closes the value.  main() runs a GMainLoop with one
 * g_unix_fd_add() source on the watcher's eventfd; when it is readable, the
 * callback calls ev_watcher_get() until -EAGAIN, and on -EPIPE (closed,
 * final snapshot taken) quits the loop and returns G_SOURCE_REMOVE, since
 * the fd stays readable for good.  The program checks that versions only
 * grow, that each payload matches its version and that the final version
 * was seen: exits 0, or 1 on any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <glib-unix.h>
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
        GMainLoop *loop;
        uint64_t last;          /* version of the newest snapshot seen */
        unsigned n_seen;
};

static void die(const char *what, int r) {
        fprintf(stderr, "glib-consumer: %s: %s\n", what, strerror(-r));
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
 * comes while a notification is pending; GLib polls level-triggered and does
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

static gboolean on_readable(gint fd, GIOCondition condition, gpointer userdata) {
        struct consumer *c = userdata;
        int r = drain(c);

        (void)fd;
        (void)condition;
        if (r == -EAGAIN)
                return G_SOURCE_CONTINUE;
        if (r != -EPIPE)
                die("ev_watcher_get", r);
        g_main_loop_quit(c->loop);
        return G_SOURCE_REMOVE;         /* readable for good now */
}

int main(void) {
        struct consumer c = { 0 };
        ev_value *v;
        pthread_t thread;
        int r;

        c.loop = g_main_loop_new(NULL, FALSE);
        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(v, 0, &c.watcher);
        if (r < 0)
                die("ev_value_watch", r);
        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);

        g_unix_fd_add(ev_watcher_get_fd(c.watcher), G_IO_IN, on_readable, &c);
        g_main_loop_run(c.loop);        /* until on_readable quits it */

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);
        if (c.last != N_UPDATES) {
                fprintf(stderr, "glib-consumer: ended at version %" PRIu64 ", not %u\n",
                        c.last, N_UPDATES);
                return EXIT_FAILURE;
        }
        printf("glib-consumer: saw %u of %u updates, final version %" PRIu64 "\n",
               c.n_seen, N_UPDATES, c.last);

        /* The source is gone (G_SOURCE_REMOVE), so the fd may close. */
        ev_watcher_close(c.watcher);
        ev_value_unref(v);
        g_main_loop_unref(c.loop);
        return EXIT_SUCCESS;
}
