/* SPDX-License-Identifier: MIT */
/*
 * ipc-producer: serves a counter to other processes, the way a service
 * does.  The value is served on the socket named by argv[1] (a path, or
 * '@name' for an abstract socket) or, when systemd started the program
 * through socket activation, on the listening socket it passed as fd 3
 * (LISTEN_FDS, read here by hand so that the example needs no libsystemd).
 * The loop polls the server's fd and calls ev_value_server_process(), which
 * accepts consumers and reads what they send without blocking; a set needs
 * no help from the loop to reach them.  Once a first consumer is
 * connected, the loop sets the counter to 1, 2, ... N (argv[2], default
 * 1000), one per turn, then closes the value: every consumer gets the
 * final count, then -EPIPE.  A turn waits at most a millisecond, less when
 * a consumer's read wakes the server's fd.  The loop goes on processing until the
 * consumers have hung up (or 10 s have passed), then frees the server,
 * which unlinks the path, and exits 0.  ipc-consumer is the other side:
 *
 *   ipc-producer /tmp/counter.sock & ipc-consumer /tmp/counter.sock
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ev-value-ipc.h>

static void die(const char *what, int r) {
        fprintf(stderr, "ipc-producer: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* sd_listen_fds(3) by hand: fd 3 when systemd passed this process a
 * socket, else -1. */
static int socket_from_systemd(void) {
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");

        if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid() ||
            strtol(fds, NULL, 10) < 1)
                return -1;
        /* Not for our children, as sd_listen_fds(1) does. */
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0)
                die("fcntl on the socket from systemd", -errno);
        return 3;
}

int main(int argc, char **argv) {
        const char *path = argc > 1 ? argv[1] : NULL;
        uint64_t n = argc > 2 ? strtoull(argv[2], NULL, 10) : 1000, count = 0;
        int listen_fd = socket_from_systemd();
        int64_t deadline = now_ms() + 30000; /* for the first consumer */
        bool started = false, closed = false;
        ev_value_server *srv = NULL;
        ev_value *v = NULL;
        int r;

        if (listen_fd < 0 && !path) {
                fprintf(stderr, "usage: ipc-producer PATH [COUNT]\n");
                return 2;
        }
        r = ev_value_new(&v);
        if (r < 0)
                die("ev_value_new", r);
        /* The socket systemd made, which we keep and close after free; or
         * one we make at path, which free unlinks. */
        if (listen_fd >= 0)
                r = ev_value_serve(v, listen_fd, 0, &srv);
        else
                r = ev_value_serve_path(v, path, 0, &srv);
        if (r < 0)
                die("ev_value_serve", r);

        for (;;) {
                struct pollfd pfd = { .fd = ev_value_server_get_fd(srv), .events = POLLIN };
                size_t peers;

                /* A turn at least every millisecond while counting;
                 * otherwise wake up when a consumer comes or goes, or to
                 * check the time. */
                if (poll(&pfd, 1, started && !closed ? 1 : 100) < 0 && errno != EINTR)
                        die("poll", -errno);
                if (pfd.revents & POLLIN) {
                        r = ev_value_server_process(srv);
                        if (r < 0)
                                die("ev_value_server_process", r);
                }
                peers = ev_value_server_get_peer_count(srv);

                if (!started && peers > 0)
                        started = true;
                if (started && !closed) {
                        /* Reaches every consumer from here, in the set. */
                        count++;
                        r = ev_value_set(v, &count, sizeof(count));
                        if (r < 0)
                                die("ev_value_set", r);
                        if (count == n) {
                                r = ev_value_close(v);
                                if (r < 0)
                                        die("ev_value_close", r);
                                closed = true;
                                deadline = now_ms() + 10000;
                        }
                } else if (closed && peers == 0) {
                        break; /* every consumer saw the end and hung up */
                } else if (now_ms() > deadline) {
                        fprintf(stderr, "ipc-producer: %s\n", closed ? "consumers still "
                                "connected 10 s after the close" : "no consumer came in 30 s");
                        if (!closed)
                                return EXIT_FAILURE;
                        break;
                }
        }

        srv = ev_value_server_free(srv);
        v = ev_value_unref(v);
        if (listen_fd >= 0)
                close(listen_fd);
        return EXIT_SUCCESS;
}
