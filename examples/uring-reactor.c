/* SPDX-License-Identifier: MIT */
/*
 * uring-reactor: watchers, a timer, a cancel eventfd and a socket in one
 * io_uring.  Two producer threads update eight values at different rates
 * for about 1.5 s, then close them.  The main thread owns one ring and
 * submits to it everything it waits for: a poll on each of 64 watchers (8
 * per value), whose user_data names the watcher; a 250 ms IORING_OP_TIMEOUT
 * that prints a status line and is re-armed; a poll on a cancel eventfd,
 * which a watchdog thread writes if the demo overruns; and an accept on a
 * TCP listener on 127.0.0.1, then receives, for a client thread that sends
 * one line.  Half the watchers use a multishot poll, re-armed only when a
 * CQE arrives without IORING_CQE_F_MORE; the other half a single-shot poll,
 * re-armed after every CQE.  On a watcher's CQE the reactor calls
 * ev_watcher_get() until -EAGAIN and keeps the newest snapshot: updates are
 * not queued, so a slow watcher skips to the newest.  -EPIPE means the value
 * is closed and its final snapshot was taken; a poll still armed is then
 * removed with ev_watcher_prep_poll_remove(), and the watcher is closed once
 * the poll's last CQE and the removal's CQE are both in, because the ring
 * holds the eventfd until then.  The program exits when every watcher is
 * closed and the client's line has arrived, after checking that each
 * watcher ended with its value's final snapshot: 0 on success, 1 on
 * failure, 77 when the kernel refuses io_uring.
 */
/* First: <liburing.h> asks for the POSIX declarations it needs, which
 * works only before any system header (and matters with -std=c11). */
#include <ev-value-uring.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define N_VALUES 8
#define WATCHERS_PER_VALUE 8
#define N_WATCHERS (N_VALUES * WATCHERS_PER_VALUE)
#define N_PRODUCERS 2
#define TICK_MS 5               /* the producers' clock */
#define N_TICKS 300             /* 1.5 s of updates */
#define STATUS_MS 250
#define WATCHDOG_MS 5000
#define QUEUE_DEPTH 256         /* SQ entries; get_sqe() submits early if they run out */
#define CLIENT_LINE "hello from the client"

/* user_data: what a CQE is for and, for a watcher, which one (0 is unused). */
enum tag_kind {
        TAG_WATCHER = 1,        /* a watcher's poll */
        TAG_REMOVE,             /* the removal of a watcher's poll */
        TAG_STATUS,
        TAG_CANCEL,
        TAG_ACCEPT,
        TAG_RECV,
};
#define TAG(kind, index) ((uint64_t)(kind) << 32 | (uint32_t)(index))

/* What a value holds: a plain struct, so a snapshot is just its bytes. */
struct reading {
        unsigned seq;           /* 1, 2, ...: the value's version */
        char text[28];
};

/* One value; its producer sets it every period ticks. */
struct source {
        ev_value *value;
        unsigned period;
};

static struct source sources[N_VALUES];

/* One watcher, and what the reactor knows of its poll. */
struct consumer {
        unsigned id;                    /* index in reactor.consumers */
        unsigned source;
        bool multishot;
        ev_value_watcher *watcher;      /* NULL once closed */
        ev_value_snapshot *last;        /* the newest snapshot taken */
        bool poll_armed;                /* submitted; its last CQE not seen yet */
        bool closing;                   /* -EPIPE seen: waiting for the ring to let go */
        bool removing;                  /* removal submitted; its CQE not seen yet */
};

struct reactor {
        struct io_uring ring;
        struct consumer consumers[N_WATCHERS];
        unsigned n_open;                /* watchers not closed yet */
        int cancel_fd;
        bool cancelled;
        int listen_fd, conn_fd;
        char line[64];                  /* what the client sent; NUL-terminated */
        size_t line_len;
        bool line_done;
        struct __kernel_timespec status_interval;
        unsigned n_status;
        /* What the two re-arm styles cost, for the last line. */
        unsigned n_cqes, n_empty_cqes, n_snapshots, n_rearm_single, n_rearm_multishot;
};

static void die(const char *what, int r) {
        fprintf(stderr, "uring-reactor: %s: %s\n", what, strerror(-r));
        exit(EXIT_FAILURE);
}

static void skip(const char *what, int r) {
        printf("uring-reactor: SKIP: %s: %s\n", what, strerror(-r));
        exit(77);
}

/* ---------------------------------------------------------------- threads */

static void publish(unsigned i, unsigned seq) {
        struct reading rd = { .seq = seq };
        int r;

        snprintf(rd.text, sizeof(rd.text), "value %u update %u", i, seq);
        r = ev_value_set(sources[i].value, &rd, sizeof(rd));
        if (r < 0)
                die("ev_value_set", r);
}

/* Producer p owns values p, p + N_PRODUCERS, ... */
static void *producer(void *userdata) {
        const struct timespec tick = { .tv_nsec = TICK_MS * 1000 * 1000 };
        unsigned first = (unsigned)(uintptr_t)userdata;
        int r;

        for (unsigned t = 1; t <= N_TICKS; t++) {
                for (unsigned i = first; i < N_VALUES; i += N_PRODUCERS)
                        if (t % sources[i].period == 0)
                                publish(i, t / sources[i].period);
                nanosleep(&tick, NULL);
        }
        for (unsigned i = first; i < N_VALUES; i += N_PRODUCERS) {
                r = ev_value_close(sources[i].value);
                if (r < 0)
                        die("ev_value_close", r);
        }
        return NULL;
}

static void *client(void *userdata) {
        const struct sockaddr_in *addr = userdata;
        const char line[] = CLIENT_LINE "\n";
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                die("socket", -errno);
        if (connect(fd, (const struct sockaddr *)addr, sizeof(*addr)) < 0)
                die("connect", -errno);
        if (send(fd, line, strlen(line), MSG_NOSIGNAL) < 0)
                die("send", -errno);
        close(fd);
        return NULL;
}

/* Write the cancel eventfd if the demo is not over in WATCHDOG_MS, so that a
 * lost wake-up fails the program instead of hanging it.  main writes the
 * same eventfd when the demo is over, which ends this thread. */
static void *watchdog(void *userdata) {
        struct pollfd pfd = { .fd = (int)(intptr_t)userdata, .events = POLLIN };
        int n = poll(&pfd, 1, WATCHDOG_MS);

        if (n < 0)
                die("poll", -errno);
        if (n == 0 && eventfd_write(pfd.fd, 1) < 0)
                die("eventfd_write", -errno);
        return NULL;
}

/* ---------------------------------------------------------------- submissions */

/* A free SQE; when the SQ is full, submit what it holds to make room. */
static struct io_uring_sqe *get_sqe(struct reactor *rc) {
        struct io_uring_sqe *sqe = io_uring_get_sqe(&rc->ring);
        int r;

        if (sqe)
                return sqe;
        r = io_uring_submit(&rc->ring);
        if (r < 0)
                die("io_uring_submit", r);
        sqe = io_uring_get_sqe(&rc->ring);
        if (!sqe)
                die("io_uring_get_sqe", -EBUSY);
        return sqe;
}

static void arm_watcher(struct reactor *rc, struct consumer *c) {
        struct io_uring_sqe *sqe = get_sqe(rc);
        uint64_t tag = TAG(TAG_WATCHER, c->id);
        int r;

        if (c->multishot)
                r = ev_watcher_prep_poll_multishot(sqe, c->watcher, tag);
        else
                r = ev_watcher_prep_poll(sqe, c->watcher, tag);
        if (r < 0)
                die("ev_watcher_prep_poll", r);
        c->poll_armed = true;
}

static void arm_status(struct reactor *rc) {
        struct io_uring_sqe *sqe = get_sqe(rc);

        /* count 0: a pure timer, which completes with -ETIME. */
        io_uring_prep_timeout(sqe, &rc->status_interval, 0, 0);
        io_uring_sqe_set_data64(sqe, TAG(TAG_STATUS, 0));
}

static void arm_cancel(struct reactor *rc) {
        struct io_uring_sqe *sqe = get_sqe(rc);

        io_uring_prep_poll_add(sqe, rc->cancel_fd, POLLIN);
        io_uring_sqe_set_data64(sqe, TAG(TAG_CANCEL, 0));
}

static void arm_accept(struct reactor *rc) {
        struct io_uring_sqe *sqe = get_sqe(rc);

        io_uring_prep_accept(sqe, rc->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        io_uring_sqe_set_data64(sqe, TAG(TAG_ACCEPT, 0));
}

static void arm_recv(struct reactor *rc) {
        struct io_uring_sqe *sqe = get_sqe(rc);

        io_uring_prep_recv(sqe, rc->conn_fd, rc->line + rc->line_len,
                           sizeof(rc->line) - 1 - rc->line_len, 0);
        io_uring_sqe_set_data64(sqe, TAG(TAG_RECV, 0));
}

/* ---------------------------------------------------------------- watchers */

static const struct reading *reading_of(const ev_value_snapshot *s) {
        return ev_snapshot_data(s);
}

/* Every watcher of value i is closed. */
static bool value_done(const struct reactor *rc, unsigned i) {
        for (unsigned j = 0; j < WATCHERS_PER_VALUE; j++)
                if (rc->consumers[i * WATCHERS_PER_VALUE + j].watcher)
                        return false;
        return true;
}

/* Close c once the ring no longer polls its eventfd. */
static void close_watcher_when_idle(struct reactor *rc, struct consumer *c) {
        if (c->poll_armed || c->removing)
                return;
        c->watcher = ev_watcher_close(c->watcher);
        rc->n_open--;
        if (value_done(rc, c->source))
                printf("value %u closed: its %u watchers are closed, the last one at \"%s\"\n",
                       c->source, WATCHERS_PER_VALUE, reading_of(c->last)->text);
}

/* The value is closed and c has taken its final snapshot.  A single-shot
 * poll is not armed after its CQE, so c can close at once; a multishot poll
 * still armed must be removed first. */
static void stop_watcher(struct reactor *rc, struct consumer *c) {
        struct io_uring_sqe *sqe;
        int r;

        c->closing = true;
        if (c->poll_armed) {
                sqe = get_sqe(rc);
                r = ev_watcher_prep_poll_remove(sqe, TAG(TAG_WATCHER, c->id),
                                                TAG(TAG_REMOVE, c->id));
                if (r < 0)
                        die("ev_watcher_prep_poll_remove", r);
                c->removing = true;
        }
        close_watcher_when_idle(rc, c);
}

/* ev_watcher_get() until it gives -EAGAIN (nothing more) or -EPIPE
 * (closed), keeping the newest snapshot. */
static int take_snapshots(struct reactor *rc, struct consumer *c) {
        ev_value_snapshot *s;
        bool any = false;
        int r;

        while ((r = ev_watcher_get(c->watcher, &s)) == 0) {
                if (ev_snapshot_size(s) != sizeof(struct reading))
                        die("unexpected snapshot size", -EBADMSG);
                ev_snapshot_unref(c->last);
                c->last = s;
                rc->n_snapshots++;
                any = true;
        }
        if (r != -EAGAIN && r != -EPIPE)
                die("ev_watcher_get", r);
        if (!any && r == -EAGAIN)
                rc->n_empty_cqes++;
        return r;
}

static void on_watcher_cqe(struct reactor *rc, struct consumer *c, int res, unsigned flags) {
        if (!(flags & IORING_CQE_F_MORE))
                c->poll_armed = false;  /* this poll posts nothing more */
        if (c->closing) {
                /* -ECANCELED, or a wake-up that raced with the removal; it
                 * may come before or after the removal's own CQE. */
                close_watcher_when_idle(rc, c);
                return;
        }
        if (res == -EINVAL && c->multishot)     /* IORING_POLL_ADD_MULTI unknown */
                skip("multishot poll (Linux 5.13)", res);
        if (res < 0)
                die("watcher poll", res);

        rc->n_cqes++;
        if (take_snapshots(rc, c) == -EPIPE) {
                stop_watcher(rc, c);
                return;
        }
        if (!c->poll_armed) {
                rc->n_rearm_single += !c->multishot;
                rc->n_rearm_multishot += c->multishot;
                arm_watcher(rc, c);
        }
}

static void on_remove_cqe(struct reactor *rc, struct consumer *c, int res) {
        /* -ENOENT: the poll ended on its own; its last CQE is ours anyway. */
        if (res < 0 && res != -ENOENT)
                die("poll remove", res);
        c->removing = false;
        close_watcher_when_idle(rc, c);
}

/* ---------------------------------------------------------------- the rest of the ring */

/* One line: per value, the newest seq any of its watchers took. */
static void on_status(struct reactor *rc, int res) {
        if (res != -ETIME)
                die("status timeout", res);
        rc->n_status++;
        printf("%5u ms  newest seq per value:", rc->n_status * STATUS_MS);
        for (unsigned i = 0; i < N_VALUES; i++) {
                unsigned newest = 0;

                for (unsigned j = 0; j < WATCHERS_PER_VALUE; j++) {
                        const struct reading *rd =
                                reading_of(rc->consumers[i * WATCHERS_PER_VALUE + j].last);

                        if (rd && rd->seq > newest)
                                newest = rd->seq;
                }
                printf(" %3u", newest);
        }
        printf("  (%u watchers open)\n", rc->n_open);
        arm_status(rc);
}

static void on_cancel(struct reactor *rc, int res) {
        if (res < 0)
                die("cancel poll", res);
        rc->cancelled = true;
}

static void on_accept(struct reactor *rc, int res) {
        if (res < 0)
                die("accept", res);
        rc->conn_fd = res;
        arm_recv(rc);
}

/* Receive until a newline, the end of the stream or a full buffer. */
static void on_recv(struct reactor *rc, int res) {
        char *newline;

        if (res < 0)
                die("recv", res);
        rc->line_len += (size_t)res;
        newline = memchr(rc->line, '\n', rc->line_len);
        if (res > 0 && !newline && rc->line_len < sizeof(rc->line) - 1) {
                arm_recv(rc);
                return;
        }
        if (newline)
                *newline = '\0';
        printf("client sent \"%s\" over TCP, accepted and received in the same ring\n",
               rc->line);
        close(rc->conn_fd);
        rc->conn_fd = -1;
        rc->line_done = true;
}

static struct consumer *consumer_of(struct reactor *rc, uint64_t tag) {
        uint32_t id = (uint32_t)tag;

        if (id >= N_WATCHERS)
                die("CQE for an unknown watcher", -EBADMSG);
        return &rc->consumers[id];
}

static void dispatch(struct reactor *rc, const struct io_uring_cqe *cqe) {
        uint64_t tag = io_uring_cqe_get_data64(cqe);

        switch (tag >> 32) {
        case TAG_WATCHER:
                on_watcher_cqe(rc, consumer_of(rc, tag), cqe->res, cqe->flags);
                break;
        case TAG_REMOVE:
                on_remove_cqe(rc, consumer_of(rc, tag), cqe->res);
                break;
        case TAG_STATUS:
                on_status(rc, cqe->res);
                break;
        case TAG_CANCEL:
                on_cancel(rc, cqe->res);
                break;
        case TAG_ACCEPT:
                on_accept(rc, cqe->res);
                break;
        case TAG_RECV:
                on_recv(rc, cqe->res);
                break;
        default:
                die("CQE with an unknown tag", -EBADMSG);
        }
}

/* Submit, wait for at least one CQE, handle every CQE there is. */
static void run(struct reactor *rc) {
        while ((rc->n_open > 0 || !rc->line_done) && !rc->cancelled) {
                struct io_uring_cqe *cqe;
                unsigned head, n = 0;
                int r = io_uring_submit_and_wait(&rc->ring, 1);

                if (r == -EINTR)
                        continue;
                if (r < 0)
                        die("io_uring_submit_and_wait", r);
                io_uring_for_each_cqe(&rc->ring, head, cqe) {
                        dispatch(rc, cqe);
                        n++;
                }
                io_uring_cq_advance(&rc->ring, n);
        }
}

/* ---------------------------------------------------------------- setup */

/* A ring that can do all of the above, or exit 77 saying why not. */
static void open_ring(struct reactor *rc) {
        static const int ops[] = {
                IORING_OP_POLL_ADD, IORING_OP_POLL_REMOVE, IORING_OP_TIMEOUT,
                IORING_OP_ACCEPT, IORING_OP_RECV,
        };
        struct io_uring_probe *probe;
        int r = io_uring_queue_init(QUEUE_DEPTH, &rc->ring, 0);

        if (r == -ENOSYS || r == -EPERM || r == -EACCES)
                skip("io_uring_queue_init", r);
        if (r < 0)
                die("io_uring_queue_init", r);
        probe = io_uring_get_probe_ring(&rc->ring);
        if (!probe)
                skip("io_uring_get_probe_ring (Linux 5.6)", -EOPNOTSUPP);
        for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
                if (!io_uring_opcode_supported(probe, ops[i]))
                        skip("an io_uring opcode this needs", -EOPNOTSUPP);
        io_uring_free_probe(probe);
}

/* Values, then 8 watchers on each: even ones with a multishot poll, odd
 * ones with a single-shot poll. */
static void open_watchers(struct reactor *rc) {
        int r;

        for (unsigned i = 0; i < N_VALUES; i++) {
                sources[i].period = i + 1;
                r = ev_value_new(&sources[i].value);
                if (r < 0)
                        die("ev_value_new", r);
                for (unsigned j = 0; j < WATCHERS_PER_VALUE; j++) {
                        struct consumer *c = &rc->consumers[i * WATCHERS_PER_VALUE + j];

                        *c = (struct consumer){
                                .id = i * WATCHERS_PER_VALUE + j,
                                .source = i,
                                .multishot = j % 2 == 0,
                        };
                        r = ev_value_watch(sources[i].value, 0, &c->watcher);
                        if (r < 0)
                                die("ev_value_watch", r);
                        arm_watcher(rc, c);
                        rc->n_open++;
                }
        }
}

/* A listener on 127.0.0.1 and an ephemeral port, which *addr receives. */
static void open_listener(struct reactor *rc, struct sockaddr_in *addr) {
        socklen_t len = sizeof(*addr);

        *addr = (struct sockaddr_in){
                .sin_family = AF_INET,
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        rc->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (rc->listen_fd < 0)
                die("socket", -errno);
        if (bind(rc->listen_fd, (struct sockaddr *)addr, sizeof(*addr)) < 0 ||
            listen(rc->listen_fd, 1) < 0 ||
            getsockname(rc->listen_fd, (struct sockaddr *)addr, &len) < 0)
                die("listener", -errno);
}

/* Every watcher ended with its value's final snapshot, which ev_value_get()
 * still returns after the close. */
static bool check_final(struct reactor *rc) {
        bool ok = true;
        int r;

        for (unsigned i = 0; i < N_VALUES; i++) {
                ev_value_snapshot *final;
                unsigned final_seq;

                r = ev_value_get(sources[i].value, &final);
                if (r < 0)
                        die("ev_value_get", r);
                final_seq = reading_of(final)->seq;
                if (final_seq != N_TICKS / sources[i].period) {
                        fprintf(stderr, "value %u: final seq %u, expected %u\n",
                                i, final_seq, N_TICKS / sources[i].period);
                        ok = false;
                }
                for (unsigned j = 0; j < WATCHERS_PER_VALUE; j++) {
                        struct consumer *c = &rc->consumers[i * WATCHERS_PER_VALUE + j];
                        const struct reading *rd = reading_of(c->last);

                        if (!rd || rd->seq != final_seq ||
                            ev_snapshot_version(c->last) != ev_snapshot_version(final)) {
                                fprintf(stderr, "watcher %u of value %u ended at seq %u, not %u\n",
                                        j, i, rd ? rd->seq : 0, final_seq);
                                ok = false;
                        }
                        c->last = ev_snapshot_unref(c->last);
                }
                ev_snapshot_unref(final);
        }
        if (strcmp(rc->line, CLIENT_LINE) != 0) {
                fprintf(stderr, "the client's line came out as \"%s\"\n", rc->line);
                ok = false;
        }
        return ok;
}

static void start(pthread_t *thread, void *(*fn)(void *), void *arg) {
        int r = pthread_create(thread, NULL, fn, arg);

        if (r != 0)
                die("pthread_create", -r);
}

static void join(pthread_t thread) {
        int r = pthread_join(thread, NULL);

        if (r != 0)
                die("pthread_join", -r);
}

int main(void) {
        struct reactor rc = {
                .status_interval = { .tv_nsec = STATUS_MS * 1000 * 1000 },
                .conn_fd = -1,
        };
        pthread_t producers[N_PRODUCERS], client_thread, watchdog_thread;
        struct sockaddr_in addr;
        bool ok;

        open_ring(&rc);
        rc.cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (rc.cancel_fd < 0)
                die("eventfd", -errno);
        open_listener(&rc, &addr);
        open_watchers(&rc);
        arm_status(&rc);
        arm_cancel(&rc);
        arm_accept(&rc);
        printf("one ring: %u watchers on %u values, a %u ms timer, a cancel eventfd, "
               "127.0.0.1:%u\n", N_WATCHERS, N_VALUES, STATUS_MS, ntohs(addr.sin_port));

        for (unsigned p = 0; p < N_PRODUCERS; p++)
                start(&producers[p], producer, (void *)(uintptr_t)p);
        start(&client_thread, client, &addr);
        start(&watchdog_thread, watchdog, (void *)(intptr_t)rc.cancel_fd);

        run(&rc);
        if (rc.cancelled) {
                /* Something is stuck: report it and leave the rest to exit. */
                fprintf(stderr, "uring-reactor: cancelled after %d ms: %u watchers open, %s\n",
                        WATCHDOG_MS, rc.n_open,
                        rc.line_done ? "the client's line in" : "no line from the client");
                return EXIT_FAILURE;
        }

        /* Over: release the watchdog, then wait for everyone. */
        if (eventfd_write(rc.cancel_fd, 1) < 0)
                die("eventfd_write", -errno);
        for (unsigned p = 0; p < N_PRODUCERS; p++)
                join(producers[p]);
        join(client_thread);
        join(watchdog_thread);

        ok = check_final(&rc);
        printf("%u watcher CQEs (%u with nothing new), %u snapshots taken, "
               "re-armed %u single-shot and %u multishot polls\n",
               rc.n_cqes, rc.n_empty_cqes, rc.n_snapshots, rc.n_rearm_single,
               rc.n_rearm_multishot);
        printf("%s\n", ok ? "every watcher ended with its value's final seq"
                          : "FAILED: some watcher missed its value's final seq");

        for (unsigned i = 0; i < N_VALUES; i++)
                sources[i].value = ev_value_unref(sources[i].value);
        /* Tears down the requests still pending: the status timer and the
         * cancel poll. */
        io_uring_queue_exit(&rc.ring);
        close(rc.listen_fd);
        close(rc.cancel_fd);
        return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
