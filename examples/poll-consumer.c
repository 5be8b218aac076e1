/* SPDX-License-Identifier: MIT */
/*
 * poll-consumer: the basic pattern.  A producer thread sets a small struct
 * N_UPDATES times, in bursts of BURST back-to-back sets every 40 ms, then
 * closes the value.  The main thread runs a poll() loop with the watcher's
 * fd next to another fd, a timerfd ticking every 100 ms.  When the watcher's
 * fd is readable, ev_watcher_get() takes the newest snapshot.  Updates that
 * arrive while the consumer is away are not queued: the get returns the
 * newest one, and the gaps in the version numbers show what was skipped.
 * -EPIPE means the value is closed and its final snapshot was already
 * returned; the program then checks that the last snapshot it saw is the
 * producer's last update.  Exits 0, or 1 on any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <ev-value.h>

#define N_UPDATES 30
#define BURST 3

/* What the value holds.  Snapshots are immutable bytes, so a plain struct
 * with an inline string is the easiest thing to share. */
struct reading {
        unsigned counter;
        char text[32];
};

static void die(const char *what, int r) {
        fprintf(stderr, "poll-consumer: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static void *producer(void *userdata) {
        ev_value *v = userdata;
        const struct timespec gap = { .tv_nsec = 40 * 1000 * 1000 };
        struct reading rd = { 0 };
        int r;

        for (unsigned i = 1; i <= N_UPDATES; i++) {
                rd.counter = i;
                snprintf(rd.text, sizeof(rd.text), "update %u of %u", i, N_UPDATES);
                r = ev_value_set(v, &rd, sizeof(rd));
                if (r < 0)
                        die("ev_value_set", r);
                if (i % BURST == 0 && i < N_UPDATES)
                        nanosleep(&gap, NULL);
        }
        /* Right after the last set: the consumer still gets the last
         * snapshot if it has not seen it yet, then -EPIPE. */
        r = ev_value_close(v);
        if (r < 0)
                die("ev_value_close", r);
        return NULL;
}

int main(void) {
        const struct itimerspec tick = {
                .it_interval = { .tv_nsec = 100 * 1000 * 1000 },
                .it_value = { .tv_nsec = 100 * 1000 * 1000 },
        };
        ev_value *v;
        ev_value_watcher *w;
        ev_value_snapshot *last = NULL; /* the newest seen; version 0 while NULL */
        ev_value_snapshot *final;
        const struct reading *rd;
        struct pollfd pfd[2];
        pthread_t thread;
        int timer_fd, r;

        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(v, 0, &w);
        if (r < 0)
                die("ev_value_watch", r);

        timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (timer_fd < 0 || timerfd_settime(timer_fd, 0, &tick, NULL) < 0)
                die("timerfd", -errno);

        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);

        pfd[0] = (struct pollfd){ .fd = ev_watcher_get_fd(w), .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = timer_fd, .events = POLLIN };
        for (;;) {
                ev_value_snapshot *s;

                if (poll(pfd, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll", -errno);
                }

                if (pfd[1].revents & POLLIN) {
                        uint64_t n_expired;

                        if (read(timer_fd, &n_expired, sizeof(n_expired)) < 0 && errno != EAGAIN)
                                die("read timerfd", -errno);
                        printf("tick: the value is at version %" PRIu64 "\n",
                               ev_value_get_version(v));
                }

                if (!(pfd[0].revents & POLLIN))
                        continue;
                r = ev_watcher_get(w, &s);
                if (r == -EAGAIN)
                        continue; /* nothing new after all; harmless */
                if (r == -EPIPE)
                        break;    /* closed, and we hold its final snapshot */
                if (r < 0)
                        die("ev_watcher_get", r);

                if (ev_snapshot_size(s) != sizeof(struct reading))
                        die("unexpected snapshot size", -EBADMSG);
                rd = ev_snapshot_data(s);
                printf("version %2" PRIu64 ": counter=%2u text=\"%s\" (skipped %" PRIu64 ")\n",
                       ev_snapshot_version(s), rd->counter, rd->text,
                       ev_snapshot_version(s) - ev_snapshot_version(last) - 1);

                /* Keep the newest snapshot; it stays valid whatever the
                 * producer does meanwhile. */
                ev_snapshot_unref(last);
                last = s;
        }

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);

        /* A closed value still answers ev_value_get() with its final state. */
        r = ev_value_get(v, &final);
        if (r < 0)
                die("ev_value_get", r);
        rd = ev_snapshot_data(last);
        if (!rd || ev_snapshot_version(last) != ev_snapshot_version(final) ||
            rd->counter != N_UPDATES) {
                fprintf(stderr, "poll-consumer: last snapshot seen is not the final one\n");
                return EXIT_FAILURE;
        }
        printf("closed; the last snapshot seen is the final one (version %" PRIu64 ")\n",
               ev_snapshot_version(final));

        ev_snapshot_unref(final);
        ev_snapshot_unref(last);
        ev_watcher_close(w);
        ev_value_unref(v);
        close(timer_fd);
        return EXIT_SUCCESS;
}
