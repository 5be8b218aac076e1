/* SPDX-License-Identifier: MIT */
/*
 * etcd-watch ENDPOINTS KEY [COUNT]: prints each state of one etcd key, as
 * "<version> absent" or "<version> <value>" (bytes outside printable ASCII,
 * and the backslash, as \xNN), the version being the key's mod_revision.
 * The ev_value_etcd is driven sd-bus style from this program's poll() loop:
 * it polls ev_value_etcd_get_fd() beside the watcher's fd, with the timeout
 * of ev_value_etcd_get_timeout(), and calls ev_value_etcd_process() when
 * that fd is readable or the time has come.  After each wake-up it gets
 * until -EAGAIN: a consumer that falls behind gets the newest state, never
 * a queue.  Exits 0 after COUNT states (no COUNT: runs until killed), 1 on
 * error.  ENDPOINTS: comma-separated http://host:port of one cluster.
 */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <ev-value-etcd.h>

/* r when it is not an error; otherwise says what failed and exits 1. */
static int check(const char *what, int r) {
        if (r >= 0)
                return r;
        fprintf(stderr, "etcd-watch: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

/* poll()'s timeout until `when`, an absolute CLOCK_MONOTONIC time in µs:
 * milliseconds rounded up, so as not to wake early; -1 for no timer. */
static int poll_timeout(uint64_t when) {
        struct timespec ts;
        uint64_t now;

        if (when == UINT64_MAX)
                return -1;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        now = (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
        if (when <= now)
                return 0;
        return (when - now) / 1000 >= INT_MAX ? INT_MAX : (int)((when - now + 999) / 1000);
}

static void print_state(const ev_value_snapshot *s) {
        const unsigned char *p = ev_snapshot_data(s);

        printf("%" PRIu64 " %s", ev_snapshot_version(s), ev_snapshot_is_absent(s) ? "absent" : "");
        for (size_t i = 0; i < ev_snapshot_size(s); i++)
                printf(p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\' ? "%c" : "\\x%02x", p[i]);
        putchar('\n');
}

int main(int argc, char **argv) {
        uint64_t count = argc > 3 ? strtoull(argv[3], NULL, 10) : 0, printed = 0, when;
        ev_value_etcd *e;
        ev_value_watcher *w;
        ev_value_snapshot *s;
        struct pollfd pfd[2];
        int r;

        if (argc < 3 || argc > 4) {
                fprintf(stderr, "usage: etcd-watch ENDPOINTS KEY [COUNT]\n");
                return 2;
        }
        setvbuf(stdout, NULL, _IOLBF, 0); /* each state at once, also into a pipe */
        check("ev_value_etcd_new", ev_value_etcd_new(argv[1], argv[2], 0, &e));
        check("ev_value_etcd_watch", ev_value_etcd_watch(e, 0, &w));
        pfd[0] = (struct pollfd){ .fd = ev_value_etcd_get_fd(e), .events = POLLIN };
        pfd[1] = (struct pollfd){ .fd = ev_watcher_get_fd(w), .events = POLLIN };

        while (count == 0 || printed < count) {
                /* Again before every poll: each process() may change it. */
                check("ev_value_etcd_get_timeout", ev_value_etcd_get_timeout(e, &when));
                if (poll(pfd, 2, poll_timeout(when)) < 0) {
                        if (errno == EINTR)
                                continue;
                        check("poll", -errno);
                }
                if ((pfd[0].revents & POLLIN) || poll_timeout(when) == 0)
                        check("ev_value_etcd_process", ev_value_etcd_process(e));
                if (!(pfd[1].revents & POLLIN))
                        continue;
                while ((r = ev_watcher_get(w, &s)) == 0) {
                        print_state(s);
                        ev_snapshot_unref(s);
                        if (++printed == count)
                                break;
                }
                if (r != -EAGAIN)
                        check("ev_watcher_get", r);
        }
        ev_watcher_close(w);
        ev_value_etcd_free(e);
        return EXIT_SUCCESS;
}
