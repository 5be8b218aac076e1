/* SPDX-License-Identifier: MIT */
/*
 * select-consumer: an event value in a select() loop, next to a pipe.  A
 * producer thread sets a small struct N_UPDATES times, alternating bursts of
 * back-to-back sets with paced ones, closes the value, then closes its end
 * of a pipe.  main() select()s on the watcher's eventfd and the pipe's read
 * end until both are finished: when the eventfd is readable it calls
 * ev_watcher_get() until -EAGAIN, and on -EPIPE (closed, final snapshot
 * taken) leaves the eventfd out of the set, since it stays readable for
 * good; the pipe is finished at EOF.  Either may come first.  The program
 * checks that versions only grow, that each payload matches its version and
 * that the final version was seen: exits 0, or 1 on any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>

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

/* Closed by the producer when it ends: the other fd of the select() set,
 * standing in for the sockets and signal pipes of a real program. */
static int done_pipe[2];

static void die(const char *what, int r) {
        fprintf(stderr, "select-consumer: %s: %s\n", what, strerror(-r));
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
        close(done_pipe[1]);    /* EOF on the other end: this thread is done */
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
 * comes while a notification is pending; select() is level-triggered and
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

int main(void) {
        struct consumer c = { 0 };
        bool watching = true, piping = true;
        ev_value *v;
        pthread_t thread;
        int fd, nfds, r;

        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        r = ev_value_watch(v, 0, &c.watcher);
        if (r < 0)
                die("ev_value_watch", r);
        if (pipe(done_pipe) < 0)
                die("pipe", -errno);
        fd = ev_watcher_get_fd(c.watcher);
        /* select() takes only fds below FD_SETSIZE (1024): FD_SET() on a
         * bigger one writes past the fd_set.  The eventfd is one more fd of
         * the process, so a program with many files open needs poll() or
         * epoll instead. */
        if (fd >= FD_SETSIZE || done_pipe[0] >= FD_SETSIZE)
                die("an fd too big for select()", -EMFILE);
        nfds = (fd > done_pipe[0] ? fd : done_pipe[0]) + 1;
        r = pthread_create(&thread, NULL, producer, v);
        if (r != 0)
                die("pthread_create", -r);

        while (watching || piping) {
                fd_set readable;

                FD_ZERO(&readable);     /* select() overwrites the set: rebuild it */
                if (watching)
                        FD_SET(fd, &readable);
                if (piping)
                        FD_SET(done_pipe[0], &readable);
                if (select(nfds, &readable, NULL, NULL, NULL) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("select", -errno);
                }
                if (watching && FD_ISSET(fd, &readable)) {
                        r = drain(&c);
                        if (r == -EPIPE)
                                watching = false;       /* readable for good now */
                        else if (r != -EAGAIN)
                                die("ev_watcher_get", r);
                }
                if (piping && FD_ISSET(done_pipe[0], &readable)) {
                        char byte;
                        ssize_t n = read(done_pipe[0], &byte, 1);

                        if (n < 0)
                                die("read", -errno);
                        piping = n > 0;         /* until EOF */
                }
        }

        r = pthread_join(thread, NULL);
        if (r != 0)
                die("pthread_join", -r);
        if (c.last != N_UPDATES) {
                fprintf(stderr, "select-consumer: ended at version %" PRIu64 ", not %u\n",
                        c.last, N_UPDATES);
                return EXIT_FAILURE;
        }
        printf("select-consumer: saw %u of %u updates, final version %" PRIu64 "\n",
               c.n_seen, N_UPDATES, c.last);

        close(done_pipe[0]);
        ev_watcher_close(c.watcher);
        ev_value_unref(v);
        return EXIT_SUCCESS;
}
