/* SPDX-License-Identifier: MIT */
/*
 * ipc-consumer: watches the counter that ipc-producer serves on the socket
 * named by argv[1].  ev_value_connect() returns an ordinary watcher whose
 * fd is the connection itself: the loop polls that fd and nothing else,
 * and takes snapshots with ev_watcher_get() as it would from a local value.
 * The producer may not have made its socket yet, so the connect is retried
 * for up to 10 s while it fails with -ENOENT (no socket file yet) or
 * -ECONNREFUSED (nobody listening yet).  After each wake-up the loop gets
 * until -EAGAIN: a consumer that falls behind gets the newest count, never
 * a queue of old ones, and its versions only go up.  The stream ends with
 * -EPIPE once the producer closed the value and the final count was
 * taken.  The program prints nothing when all is well: it exits 0 when the
 * versions increased strictly and the last count was N (argv[2], default
 * 1000), and 1 with a message otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev-value-ipc.h>

static void die(const char *what, int r) {
        fprintf(stderr, "ipc-consumer: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

int main(int argc, char **argv) {
        const char *path = argc > 1 ? argv[1] : NULL;
        uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000;
        uint64_t last_version = 0, last_count = 0;
        ev_value_watcher *w = NULL;
        struct pollfd pfd;
        int r;

        if (!path) {
                fprintf(stderr, "usage: ipc-consumer PATH [COUNT]\n");
                return 2;
        }
        for (int tries = 0;; tries++) {
                const struct timespec pause = { .tv_nsec = 10 * 1000 * 1000 };

                r = ev_value_connect(path, 0, &w);
                if (r == 0)
                        break;
                if ((r != -ENOENT && r != -ECONNREFUSED) || tries == 1000)
                        die("ev_value_connect", r);
                nanosleep(&pause, NULL);
        }

        pfd = (struct pollfd){ .fd = ev_watcher_get_fd(w), .events = POLLIN };
        for (;;) {
                ev_value_snapshot *s;
                int ready = poll(&pfd, 1, 30000);

                if (ready < 0) {
                        if (errno == EINTR)
                                continue;
                        die("poll", -errno);
                }
                if (ready == 0)
                        die("no update for 30 s", -ETIMEDOUT);
                while ((r = ev_watcher_get(w, &s)) == 0) {
                        uint64_t version = ev_snapshot_version(s), count = 0;

                        if (ev_snapshot_size(s) == sizeof(count))
                                memcpy(&count, ev_snapshot_data(s), sizeof(count));
                        ev_snapshot_unref(s);
                        if (version <= last_version || count <= last_count) {
                                fprintf(stderr, "ipc-consumer: version %" PRIu64 " (count %"
                                        PRIu64 ") after version %" PRIu64 " (count %" PRIu64
                                        ")\n", version, count, last_version, last_count);
                                return EXIT_FAILURE;
                        }
                        last_version = version;
                        last_count = count;
                }
                if (r != -EAGAIN)
                        break; /* the end of the stream */
        }
        w = ev_watcher_close(w);

        if (r != -EPIPE)
                die("the stream ended without the producer's close", r);
        if (last_count != n) {
                fprintf(stderr, "ipc-consumer: ended at count %" PRIu64 ", expected %" PRIu64 "\n",
                        last_count, n);
                return EXIT_FAILURE;
        }
        return EXIT_SUCCESS;
}
