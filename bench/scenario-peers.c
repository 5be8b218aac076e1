/* SPDX-License-Identifier: MIT */
/*
 * Scenario "peers": libevvalue against the other ways a program gets
 * "latest value, fd-pollable" today, on the protocols of "ping-pong" and
 * "fan-out".  ZeroMQ PUB/SUB over inproc with ZMQ_CONFLATE on every SUB is
 * the closest peer: it keeps only the newest message and exposes ZMQ_FD for
 * poll and epoll, so it is what a libevvalue user would otherwise pick; the
 * target is libevvalue at least 1.5x faster on a wake.  A mutex, a
 * condition variable and a version counter is the fastest thing that is not
 * fd-pollable (a futex wake, no eventfd): a reference row with no target,
 * showing what being pollable costs.  Each peer runs interleaved with
 * libevvalue+poll (ping-pong), or in fan-out with libevvalue+epoll on each
 * watcher's own eventfd and with EV_VALUE_WATCH_SHARED_FD (the value's one
 * eventfd, edge-triggered), all threads floating, in the harnesses of
 * scenario-ping-pong.c and scenario-fan-out.c.  A ZeroMQ round trip that
 * needed a resend is kept, with its time, and counted in the note.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#ifdef HAVE_LIBZMQ
#include <zmq.h>
#endif

#include "bench.h"

/* ---- mutex + condition variable + version counter ---- */

/* chan[s] carries the messages to side s; seen[s] is side s's last version. */
struct cv_pp {
        struct cv_chan {
                pthread_mutex_t lock;
                pthread_cond_t cond;
                uint64_t version, seq;
        } chan[2];
        uint64_t seen[2];
};

static void cv_teardown(void *ctx) {
        struct cv_pp *cv = ctx;

        for (int i = 0; i < 2; i++) {
                pthread_cond_destroy(&cv->chan[i].cond);
                pthread_mutex_destroy(&cv->chan[i].lock);
        }
        free(cv);
}

static int cv_setup(void **ret_ctx) {
        struct cv_pp *cv = calloc(1, sizeof(*cv));
        pthread_condattr_t attr;

        if (!cv)
                return -ENOMEM;
        pthread_condattr_init(&attr);
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
        for (int i = 0; i < 2; i++) {
                pthread_mutex_init(&cv->chan[i].lock, NULL);
                pthread_cond_init(&cv->chan[i].cond, &attr);
        }
        pthread_condattr_destroy(&attr);
        *ret_ctx = cv;
        return 0;
}

static int cv_send(void *ctx, int side, uint64_t seq) {
        struct cv_chan *c = &((struct cv_pp *)ctx)->chan[1 - side];

        pthread_mutex_lock(&c->lock);
        c->seq = seq;
        c->version++;
        pthread_cond_signal(&c->cond);
        pthread_mutex_unlock(&c->lock);
        return 0;
}

static int cv_recv(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        struct cv_pp *cv = ctx;
        struct cv_chan *c = &cv->chan[side];
        struct timespec deadline;
        int r = 0;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
        if (deadline.tv_nsec >= 1000000000) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000;
        }
        pthread_mutex_lock(&c->lock);
        while (c->version == cv->seen[side] && r == 0)
                r = pthread_cond_timedwait(&c->cond, &c->lock, &deadline);
        if (c->version != cv->seen[side]) {
                cv->seen[side] = c->version;
                *ret_seq = c->seq;
                r = 0;
        }
        pthread_mutex_unlock(&c->lock);
        return -r;
}

static const struct bench_pp_ops cv_ping_pong = {
        .name = "mutex+condvar+version",
        .setup = cv_setup,
        .teardown = cv_teardown,
        .send = cv_send,
        .recv = cv_recv,
};

#ifdef HAVE_LIBZMQ

/* ---- ZeroMQ PUB/SUB, ZMQ_CONFLATE, inproc ---- */

#define ZQ_STOP UINT64_MAX /* the fan-out's last message */

static void *zq_context(void) {
        void *zctx = zmq_ctx_new();

        if (zctx)
                zmq_ctx_set(zctx, ZMQ_BLOCKY, 0); /* linger 0: terminating never waits */
        return zctx;
}

static void *zq_pub(void *zctx, const char *endpoint) {
        void *s = zmq_socket(zctx, ZMQ_PUB);

        if (s && zmq_bind(s, endpoint) < 0) {
                zmq_close(s);
                s = NULL;
        }
        return s;
}

/* ZMQ_CONFLATE only takes effect when set before connect. */
static void *zq_sub(void *zctx, const char *endpoint, int *ret_fd) {
        void *s = zmq_socket(zctx, ZMQ_SUB);
        size_t len = sizeof(*ret_fd);
        int one = 1;

        if (s && (zmq_setsockopt(s, ZMQ_CONFLATE, &one, sizeof(one)) < 0 ||
                  zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0) < 0 || zmq_connect(s, endpoint) < 0 ||
                  zmq_getsockopt(s, ZMQ_FD, ret_fd, &len) < 0)) {
                zmq_close(s);
                s = NULL;
        }
        return s;
}

static int zq_error(void) {
        return errno ? -errno : -EIO;
}

/* ZMQ_FD is edge-triggered and does not mean "a message is queued": ask
 * ZMQ_EVENTS before every sleep and after every wake, sleep only when it
 * says no message is in.  epfd < 0: sleep in poll on fd. */
static int zq_recv(void *sub, int fd, int epfd, int timeout_ms, uint64_t *ret) {
        for (;;) {
                struct pollfd pfd = { .fd = fd, .events = POLLIN };
                struct epoll_event ev;
                size_t len = sizeof(int);
                int events, n;

                if (zmq_getsockopt(sub, ZMQ_EVENTS, &events, &len) < 0)
                        return zq_error();
                if (events & ZMQ_POLLIN) {
                        n = zmq_recv(sub, ret, sizeof(*ret), ZMQ_DONTWAIT);
                        if (n == (int)sizeof(*ret))
                                return 0;
                        if (n < 0 && errno != EAGAIN)
                                return zq_error();
                        continue;
                }
                n = epfd < 0 ? poll(&pfd, 1, timeout_ms) : epoll_wait(epfd, &ev, 1, timeout_ms);
                if (n == 0)
                        return -ETIMEDOUT;
                if (n < 0 && errno != EINTR)
                        return -errno;
        }
}

/* Ping-pong: side s publishes on pub[s]; sub[s] hears the other side. */
struct zq_pp {
        void *zctx;
        void *pub[2], *sub[2];
        int fd[2];
};

static void zq_pp_teardown(void *ctx) {
        struct zq_pp *z = ctx;

        for (int i = 0; i < 2; i++) {
                if (z->sub[i])
                        zmq_close(z->sub[i]);
                if (z->pub[i])
                        zmq_close(z->pub[i]);
        }
        if (z->zctx)
                zmq_ctx_term(z->zctx);
        free(z);
}

static int zq_pp_setup(void **ret_ctx) {
        static const char *const endpoint[2] = { "inproc://ping", "inproc://pong" };
        struct zq_pp *z = calloc(1, sizeof(*z));

        if (!z)
                return -ENOMEM;
        z->zctx = zq_context();
        for (int i = 0; i < 2 && z->zctx; i++)
                z->pub[i] = zq_pub(z->zctx, endpoint[i]);
        for (int i = 0; i < 2 && z->pub[0] && z->pub[1]; i++)
                z->sub[i] = zq_sub(z->zctx, endpoint[1 - i], &z->fd[i]);
        if (!z->sub[0] || !z->sub[1]) {
                int r = zq_error();

                zq_pp_teardown(z);
                return r;
        }
        *ret_ctx = z;
        return 0;
}

/* ZMQ_CONFLATE's double buffer (dbuffer.hpp) drops a write that finds the
 * reader holding its lock, "since writes are many and redundant": the
 * message waits in the back buffer until the next write, so a ping-pong,
 * which writes once and waits, can stall.  The harness resends, keeps the
 * round trip's time (resend wait included) and counts it. */
static int zq_pp_send(void *ctx, int side, uint64_t seq) {
        struct zq_pp *z = ctx;

        return zmq_send(z->pub[side], &seq, sizeof(seq), ZMQ_DONTWAIT) < 0 ? zq_error() : 0;
}

static int zq_pp_recv(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        struct zq_pp *z = ctx;

        return zq_recv(z->sub[side], z->fd[side], -1, timeout_ms, ret_seq);
}

static const struct bench_pp_ops zq_ping_pong = {
        .name = "ZeroMQ SUB CONFLATE+poll",
        .may_drop = true, /* see zq_pp_send */
        .setup = zq_pp_setup,
        .teardown = zq_pp_teardown,
        .send = zq_pp_send,
        .recv = zq_pp_recv,
};

/* Fan-out: one PUB, K SUBs, each SUB's ZMQ_FD in its consumer's epoll. */
struct zq_fo {
        void *zctx, *pub;
        int k;
        void **sub;
        int *fd, *epfd;
};

static void zq_fo_teardown(void *ctx) {
        struct zq_fo *z = ctx;

        for (int i = 0; i < z->k; i++) {
                if (z->epfd[i] >= 0)
                        close(z->epfd[i]);
                if (z->sub[i])
                        zmq_close(z->sub[i]);
        }
        if (z->pub)
                zmq_close(z->pub);
        if (z->zctx)
                zmq_ctx_term(z->zctx);
        free(z->sub);
        free(z->fd);
        free(z->epfd);
        free(z);
}

static int zq_fo_setup(void **ret_ctx, int k) {
        struct zq_fo *z = calloc(1, sizeof(*z));
        int r = 0;

        if (!z)
                return -ENOMEM;
        z->sub = calloc((size_t)k, sizeof(*z->sub));
        z->fd = calloc((size_t)k, sizeof(*z->fd));
        z->epfd = calloc((size_t)k, sizeof(*z->epfd));
        z->zctx = z->sub && z->fd && z->epfd ? zq_context() : NULL;
        z->pub = z->zctx ? zq_pub(z->zctx, "inproc://fan-out") : NULL;
        if (!z->pub)
                r = zq_error();
        for (int i = 0; i < k && r == 0; i++) {
                z->k = i + 1;
                z->epfd[i] = -1;
                z->sub[i] = zq_sub(z->zctx, "inproc://fan-out", &z->fd[i]);
                r = z->sub[i] ? bench_epoll_new(z->fd[i], EPOLLIN) : zq_error();
                if (r >= 0) {
                        z->epfd[i] = r;
                        r = 0;
                }
        }
        if (r < 0) {
                zq_fo_teardown(z);
                return r;
        }
        *ret_ctx = z;
        return 0;
}

static int zq_fo_publish(void *ctx, uint64_t seq) {
        struct zq_fo *z = ctx;

        return zmq_send(z->pub, &seq, sizeof(seq), ZMQ_DONTWAIT) < 0 ? zq_error() : 0;
}

/* The last message: conflation keeps it, so every consumer gets it. */
static void zq_fo_stop(void *ctx) {
        zq_fo_publish(ctx, ZQ_STOP);
}

static int zq_fo_consume(void *ctx, int i, int timeout_ms, uint64_t *ret_seq) {
        struct zq_fo *z = ctx;
        int r = zq_recv(z->sub[i], z->fd[i], z->epfd[i], timeout_ms, ret_seq);

        return r == 0 && *ret_seq == ZQ_STOP ? -EPIPE : r;
}

static const struct bench_fo_ops zq_fan_out = {
        .name = "ZeroMQ SUB CONFLATE+epoll",
        .publish_name = "zmq_send (PUB)",
        .setup = zq_fo_setup,
        .teardown = zq_fo_teardown,
        .publish = zq_fo_publish,
        .stop = zq_fo_stop,
        .consume = zq_fo_consume,
};

static int zq_rows(void) {
        static const int ks[] = { 1, 4, 16 };
        static const struct bench_fo_ops *const evv[] = { &bench_fo_evv_epoll,
                                                          &bench_fo_evv_shared };
        int major, minor, patch, failed = 0;

        zmq_version(&major, &minor, &patch);
        printf("# peers: ZeroMQ %d.%d.%d, PUB/SUB over inproc, ZMQ_CONFLATE on every SUB, "
               "ZMQ_FD checked with ZMQ_EVENTS; fan-out as in \"fan-out\", threads "
               "floating, libevvalue with its own fd per watcher and with SHARED_FD\n",
               major, minor, patch);
        for (int p = BENCH_TWO_CPUS; p <= BENCH_ONE_CPU; p++)
                if (bench_pp_compare("peers", "ping-pong", p, &bench_pp_evv_poll,
                                     &zq_ping_pong, 1 / 1.5) < 0)
                        failed++;
        for (size_t m = 0; m < sizeof(evv) / sizeof(evv[0]); m++)
                for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
                        char variant[16];

                        snprintf(variant, sizeof(variant), "K=%d", ks[i]);
                        if (bench_fo_compare("peers", variant, BENCH_FLOAT, ks[i], evv[m],
                                             &zq_fan_out, 0, true) < 0)
                                failed++;
                }
        return failed;
}

#else

static int zq_rows(void) {
        printf("# peers: ZeroMQ rows skipped: built without libzmq "
               "(install its -dev package and reconfigure)\n");
        return 0;
}

#endif

int bench_peers(void) {
        int failed = zq_rows();

        for (int p = BENCH_TWO_CPUS; p <= BENCH_ONE_CPU; p++)
                if (bench_pp_compare("peers", "ping-pong", p, &bench_pp_evv_poll,
                                     &cv_ping_pong, 0) < 0)
                        failed++;
        return failed ? -1 : 0;
}
