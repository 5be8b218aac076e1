/* SPDX-License-Identifier: MIT */
/*
 * Scenario "ping-pong": the wake latency of a value between two threads.
 * Each thread owns one value's watcher; the initiator sets the echo's
 * value, the echo wakes (in poll, in epoll, or in ev_watcher_wait), gets
 * the snapshot and sets the initiator's value, and the initiator times the
 * round trip and halves it.  Each way of waiting is held to its own raw
 * equivalent, the same protocol on two raw eventfds (wait, read the
 * eventfd, write the other's): libevvalue+poll against eventfd+poll,
 * libevvalue+epoll against eventfd+epoll, and ev_watcher_wait against
 * eventfd+ppoll, both given the same finite timeout (the harness's: 1000 ms
 * for the initiator, 100 ms for the echo, to ppoll as that many ms in a
 * timespec).  That is the least any eventfd-signalled mechanism can cost,
 * so each ratio is exactly libevvalue's overhead on a wake (its
 * bookkeeping, snapshot allocation and refcounts); targets: within 1.1x,
 * the wait on one CPU (across CPUs the VM's wake-up noise swamps the
 * difference, so that row has no target).  Both run in the same process,
 * pinned the same way, in alternating blocks, so the VM's drift between
 * runs cancels.  Each row's note also gives what the initiator thread did
 * per round trip, read() and write() calls (/proc/thread-self/io) and
 * sleeps (voluntary context switches): the calls that wait (poll, epoll,
 * ppoll) have no such counter, and clock_gettime is no system call (the
 * vDSO), so neither is counted.  This file also holds the two-thread
 * harness (bench_pp_compare) that scenario "peers" reuses.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <ev-value.h>

#include "bench.h"

#define PP_STOP UINT64_MAX          /* the sequence number that ends an echo */
#define PP_WAIT_MS 1000             /* a round trip slower than this is an error */
#define PP_TICK_MS 100              /* the echo rechecks its stop flag this often */
#define PP_RESEND_MS 50             /* a may_drop mechanism resends after this */
#define PP_HANDSHAKE_NS 2000000000u /* peers that lose early messages get this long */

/* ---- the harness ---- */

/* One mechanism of a row: its channels, its echo thread, its samples. */
struct pp_side {
        const struct bench_pp_ops *ops;
        void *ctx;
        pthread_t echo;
        bool echo_started;
        atomic_bool stop;
        atomic_int echo_error;
        uint64_t seq;
        size_t block;
        size_t resent;    /* measured round trips that needed a resend */
        int error;
        struct bench_samples half_rt; /* round trip / 2, ns */
        struct bench_thread_counts counts; /* the initiator's, over the samples */
        size_t blocks;                     /* in counts */
};

static void *pp_echo_main(void *arg) {
        struct pp_side *s = arg;
        uint64_t seq;
        int r;

        while (!atomic_load(&s->stop)) {
                r = s->ops->recv(s->ctx, 1, PP_TICK_MS, &seq);
                if (r == -ETIMEDOUT)
                        continue;
                if (r == 0 && seq == PP_STOP)
                        break;
                if (r == 0)
                        r = s->ops->send(s->ctx, 1, seq);
                if (r < 0) {
                        atomic_store(&s->echo_error, r);
                        break;
                }
        }
        return NULL;
}

/* Send the next sequence number and wait for its echo; older echoes (left
 * over from a resend) are skipped.  A mechanism that may drop a message
 * gets it resent every PP_RESEND_MS; *ret_resent says whether that
 * happened.  Up to timeout_ms in all. */
static int pp_round_trip(struct pp_side *s, int timeout_ms, bool *ret_resent) {
        int wait_ms = s->ops->may_drop && timeout_ms > PP_RESEND_MS ? PP_RESEND_MS : timeout_ms;
        uint64_t seq = ++s->seq, got = 0;
        int r = s->ops->send(s->ctx, 0, seq), waited = 0;

        *ret_resent = false;
        while (r == 0 && got < seq) {
                r = s->ops->recv(s->ctx, 0, wait_ms, &got);
                if (r == -ETIMEDOUT && s->ops->may_drop && (waited += wait_ms) < timeout_ms) {
                        *ret_resent = true;
                        r = s->ops->send(s->ctx, 0, seq);
                }
        }
        return r;
}

/* The first exchange, retried: a ZeroMQ subscriber drops what is published
 * before its subscription arrives. */
static int pp_handshake(struct pp_side *s) {
        uint64_t deadline = bench_now_ns() + PP_HANDSHAKE_NS;
        bool resent;
        int r;

        do
                r = pp_round_trip(s, 10, &resent);
        while (r == -ETIMEDOUT && bench_now_ns() < deadline);
        for (size_t i = 0; r == 0 && i < bench_count(200, 20); i++)
                r = pp_round_trip(s, PP_WAIT_MS, &resent); /* warm caches and the scheduler */
        return r;
}

/* Add what the initiator did over one block to the side's counts. */
static void pp_count(struct pp_side *s, const struct bench_thread_counts *block) {
        s->counts.ok = block->ok && (s->blocks++ == 0 || s->counts.ok);
        s->counts.reads += block->reads;
        s->counts.writes += block->writes;
        s->counts.sleeps += block->sleeps;
}

/* One block of round trips, one sample each; returns the block's mean.  A
 * round trip that needed a resend is sampled like any other (it is what
 * the user waits) and counted. */
static double pp_measure(void *arg) {
        struct pp_side *s = arg;
        struct bench_thread_counts start, block;
        double sum = 0;

        if (s->error)
                return NAN;
        bench_thread_counts(&start);
        for (size_t i = 0; i < s->block; i++) {
                uint64_t t0 = bench_now_ns();
                bool resent;
                int r = pp_round_trip(s, PP_WAIT_MS, &resent);
                double half = (double)(bench_now_ns() - t0) / 2;

                if (r < 0) {
                        s->error = r;
                        return NAN;
                }
                s->resent += resent;
                sum += half;
                bench_samples_add(&s->half_rt, half);
        }
        bench_thread_counts_since(&start, &block);
        pp_count(s, &block);
        return sum / (double)s->block;
}

struct pp_row {
        struct pp_side side[2]; /* the mechanism, then its baseline */
        size_t rounds;
};

static void *pp_initiator_main(void *arg) {
        struct pp_row *row = arg;
        struct bench_samples means[2] = { { 0 } };

        for (int i = 0; i < 2; i++)
                row->side[i].error = pp_handshake(&row->side[i]);
        bench_interleave(row->rounds, pp_measure, &row->side[0], &means[0], pp_measure,
                         &row->side[1], &means[1]);
        for (int i = 0; i < 2; i++) {
                if (!row->side[i].error)
                        row->side[i].ops->send(row->side[i].ctx, 0, PP_STOP);
                bench_samples_free(&means[i]);
        }
        return NULL;
}

/* Set up the mechanism and start its echo; on failure s->error says why. */
static int pp_side_start(struct pp_side *s, const struct bench_pp_ops *ops,
                         enum bench_placement p, size_t block) {
        s->ops = ops;
        s->block = block;
        s->error = ops->setup(&s->ctx);
        if (s->error < 0) {
                s->ctx = NULL;
                return s->error;
        }
        s->error = bench_thread_start(&s->echo, bench_cpu(p, 1), pp_echo_main, s);
        s->echo_started = s->error == 0;
        return s->error;
}

/* Stop and join the echo (it rechecks its flag every PP_TICK_MS, so a lost
 * stop message cannot hang us), then free the mechanism. */
static void pp_side_stop(struct pp_side *s) {
        atomic_store(&s->stop, true);
        if (s->echo_started)
                pthread_join(s->echo, NULL);
        if (s->ctx)
                s->ops->teardown(s->ctx);
        if (!s->error)
                s->error = atomic_load(&s->echo_error);
        bench_samples_free(&s->half_rt);
}

/* What the initiator did per round trip: "1.00r 1.00w 1.00s". */
static void pp_per_round_trip(char *buf, size_t size, const struct pp_side *s) {
        double n = (double)s->half_rt.n;

        if (s->counts.ok && n > 0)
                snprintf(buf, size, "%.2fr %.2fw %.2fs", (double)s->counts.reads / n,
                         (double)s->counts.writes / n, (double)s->counts.sleeps / n);
        else
                snprintf(buf, size, "n/a");
}

static void pp_report(struct pp_row *row, const char *scenario, const char *variant,
                      enum bench_placement p, double target) {
        struct pp_side *m = &row->side[0], *b = &row->side[1];
        char note[320], per_rt[2][48], resent[96] = "";
        struct bench_row out = {
                .scenario = scenario,
                .variant = variant,
                .placement = bench_placement_name(p),
                .mechanism = m->ops->name,
                .unit = "ns",
                .baseline = b->ops->name,
                .target = target,
                .note = note,
        };

        pp_per_round_trip(per_rt[0], sizeof(per_rt[0]), m);
        pp_per_round_trip(per_rt[1], sizeof(per_rt[1]), b);
        if (m->ops->may_drop || b->ops->may_drop)
                snprintf(resent, sizeof(resent),
                         "; round trips that needed a resend after %d ms (kept): %zu vs %zu",
                         PP_RESEND_MS, m->resent, b->resent);
        snprintf(note, sizeof(note),
                 "round trip/2, %zu samples each in blocks of %zu; initiator per round trip, "
                 "read()s r, write()s w, sleeps s: %s vs %s%s",
                 m->half_rt.n, m->block, per_rt[0], per_rt[1], resent);
        bench_row_stats(&out, &m->half_rt, &b->half_rt);
        bench_report(&out);
}

static void pp_report_error(const struct pp_row *row, const char *scenario,
                            const char *variant, enum bench_placement p) {
        const struct pp_side *s = &row->side[row->side[0].error ? 0 : 1];

        bench_report_error(scenario, variant, bench_placement_name(p), row->side[0].ops->name,
                           s->ops->name,
                           s->error == -ETIMEDOUT ? "no answer in time: a wake was lost"
                                                  : strerror(-s->error));
}

int bench_pp_compare(const char *scenario, const char *variant, enum bench_placement p,
                     const struct bench_pp_ops *mech, const struct bench_pp_ops *base,
                     double target) {
        struct pp_row row = { .rounds = bench_count(30, 4) };
        size_t block = bench_count(1000, 200);
        pthread_t initiator;
        bool failed;

        row.side[1].ops = base;
        if (pp_side_start(&row.side[0], mech, p, block) == 0)
                pp_side_start(&row.side[1], base, p, block);
        if (!row.side[0].error && !row.side[1].error) {
                /* Not straight into side[0].error: the initiator writes it. */
                int r = bench_thread_start(&initiator, bench_cpu(p, 0), pp_initiator_main,
                                           &row);

                if (r == 0)
                        pthread_join(initiator, NULL);
                else
                        row.side[0].error = r;
        }
        for (int i = 0; i < 2; i++)
                if (!row.side[i].error)
                        row.side[i].error = atomic_load(&row.side[i].echo_error);
        failed = row.side[0].error || row.side[1].error;
        /* Stopping frees the samples: report first. */
        if (failed)
                pp_report_error(&row, scenario, variant, p);
        else
                pp_report(&row, scenario, variant, p, target);
        for (int i = 0; i < 2; i++)
                pp_side_stop(&row.side[i]);
        return failed ? -1 : 0;
}

/* ---- the mechanisms ---- */

/* libevvalue: value[s] carries the messages to side s, watched by side s
 * through watcher[s] (and epfd[s] for the epoll variant). */
struct pp_evv {
        ev_value *value[2];
        ev_value_watcher *watcher[2];
        int epfd[2];
};

static void pp_evv_teardown(void *ctx) {
        struct pp_evv *e = ctx;

        for (int i = 0; i < 2; i++) {
                if (e->epfd[i] >= 0)
                        close(e->epfd[i]);
                ev_watcher_close(e->watcher[i]);
                ev_value_unref(e->value[i]);
        }
        free(e);
}

static int pp_evv_setup(void **ret_ctx) {
        struct pp_evv *e = calloc(1, sizeof(*e));
        int r = 0;

        if (!e)
                return -ENOMEM;
        e->epfd[0] = e->epfd[1] = -1;
        for (int i = 0; i < 2 && r == 0; i++) {
                r = ev_value_new(&e->value[i]);
                if (r == 0)
                        r = ev_value_watch(e->value[i], 0, &e->watcher[i]);
                if (r == 0)
                        r = bench_epoll_new(ev_watcher_get_fd(e->watcher[i]), EPOLLIN);
                if (r >= 0) {
                        e->epfd[i] = r;
                        r = 0;
                }
        }
        if (r < 0) {
                pp_evv_teardown(e);
                return r;
        }
        *ret_ctx = e;
        return 0;
}

static int pp_evv_send(void *ctx, int side, uint64_t seq) {
        struct pp_evv *e = ctx;

        return ev_value_set(e->value[1 - side], &seq, sizeof(seq));
}

/* Get first (free when nothing is new), sleep in poll or epoll only when
 * there is nothing. */
static int pp_evv_recv(struct pp_evv *e, int side, bool use_epoll, int timeout_ms,
                       uint64_t *ret_seq) {
        ev_value_snapshot *s;
        int r;

        for (;;) {
                r = ev_watcher_get(e->watcher[side], &s);
                if (r == 0)
                        return bench_take_u64(s, ret_seq);
                if (r != -EAGAIN)
                        return r;
                r = use_epoll ? bench_epoll_wait(e->epfd[side], timeout_ms)
                              : bench_poll_fd(ev_watcher_get_fd(e->watcher[side]), timeout_ms);
                if (r < 0)
                        return r;
        }
}

static int pp_evv_recv_poll(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        return pp_evv_recv(ctx, side, false, timeout_ms, ret_seq);
}

static int pp_evv_recv_epoll(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        return pp_evv_recv(ctx, side, true, timeout_ms, ret_seq);
}

static int pp_evv_recv_wait(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        struct pp_evv *e = ctx;
        ev_value_snapshot *s;
        int r = ev_watcher_wait(e->watcher[side], timeout_ms, -1, &s);

        return r < 0 ? r : bench_take_u64(s, ret_seq);
}

const struct bench_pp_ops bench_pp_evv_poll = {
        .name = "libevvalue+poll",
        .setup = pp_evv_setup,
        .teardown = pp_evv_teardown,
        .send = pp_evv_send,
        .recv = pp_evv_recv_poll,
};

static const struct bench_pp_ops pp_evv_epoll = {
        .name = "libevvalue+epoll",
        .setup = pp_evv_setup,
        .teardown = pp_evv_teardown,
        .send = pp_evv_send,
        .recv = pp_evv_recv_epoll,
};

static const struct bench_pp_ops pp_evv_wait = {
        .name = "libevvalue+watcher_wait",
        .setup = pp_evv_setup,
        .teardown = pp_evv_teardown,
        .send = pp_evv_send,
        .recv = pp_evv_recv_wait,
};

/* The baselines: efd[s] wakes side s (through epfd[s] for epoll), slot[s]
 * carries its sequence number. */
struct pp_raw {
        int efd[2], epfd[2];
        _Atomic uint64_t slot[2];
};

static void pp_raw_teardown(void *ctx) {
        struct pp_raw *raw = ctx;

        for (int i = 0; i < 2; i++) {
                if (raw->epfd[i] >= 0)
                        close(raw->epfd[i]);
                if (raw->efd[i] >= 0)
                        close(raw->efd[i]);
        }
        free(raw);
}

static int pp_raw_setup(void **ret_ctx) {
        struct pp_raw *raw = calloc(1, sizeof(*raw));
        int r = 0;

        if (!raw)
                return -ENOMEM;
        raw->efd[0] = raw->efd[1] = raw->epfd[0] = raw->epfd[1] = -1;
        for (int i = 0; i < 2 && r == 0; i++) {
                raw->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                r = raw->efd[i] < 0 ? -errno : bench_epoll_new(raw->efd[i], EPOLLIN);
                if (r >= 0) {
                        raw->epfd[i] = r;
                        r = 0;
                }
        }
        if (r < 0) {
                pp_raw_teardown(raw);
                return r;
        }
        *ret_ctx = raw;
        return 0;
}

static int pp_raw_send(void *ctx, int side, uint64_t seq) {
        struct pp_raw *raw = ctx;
        uint64_t one = 1;

        atomic_store(&raw->slot[1 - side], seq);
        return write(raw->efd[1 - side], &one, sizeof(one)) < 0 ? -errno : 0;
}

/* ppoll with timeout_ms as a relative timespec, as poll(2) semantics
 * (negative: forever). */
static int pp_ppoll_fd(int fd, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        struct timespec ts = { .tv_sec = timeout_ms / 1000,
                               .tv_nsec = (long)(timeout_ms % 1000) * 1000000 };
        int n = ppoll(&pfd, 1, timeout_ms < 0 ? NULL : &ts, NULL);

        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

enum pp_wait { PP_POLL, PP_EPOLL, PP_PPOLL };

static int pp_raw_wait(struct pp_raw *raw, int side, enum pp_wait how, int timeout_ms) {
        switch (how) {
        case PP_EPOLL:
                return bench_epoll_wait(raw->epfd[side], timeout_ms);
        case PP_PPOLL:
                return pp_ppoll_fd(raw->efd[side], timeout_ms);
        default:
                return bench_poll_fd(raw->efd[side], timeout_ms);
        }
}

/* Wait, then read the eventfd; a wake that reads nothing waits again. */
static int pp_raw_recv(struct pp_raw *raw, int side, enum pp_wait how, int timeout_ms,
                       uint64_t *ret_seq) {
        uint64_t counter;
        int r;

        for (;;) {
                r = pp_raw_wait(raw, side, how, timeout_ms);
                if (r < 0)
                        return r;
                if (read(raw->efd[side], &counter, sizeof(counter)) == sizeof(counter))
                        break;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
        *ret_seq = atomic_load(&raw->slot[side]);
        return 0;
}

static int pp_raw_recv_poll(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        return pp_raw_recv(ctx, side, PP_POLL, timeout_ms, ret_seq);
}

static int pp_raw_recv_epoll(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        return pp_raw_recv(ctx, side, PP_EPOLL, timeout_ms, ret_seq);
}

static int pp_raw_recv_ppoll(void *ctx, int side, int timeout_ms, uint64_t *ret_seq) {
        return pp_raw_recv(ctx, side, PP_PPOLL, timeout_ms, ret_seq);
}

static const struct bench_pp_ops pp_raw_poll = {
        .name = "raw eventfd + poll",
        .setup = pp_raw_setup,
        .teardown = pp_raw_teardown,
        .send = pp_raw_send,
        .recv = pp_raw_recv_poll,
};

static const struct bench_pp_ops pp_raw_epoll = {
        .name = "raw eventfd + epoll",
        .setup = pp_raw_setup,
        .teardown = pp_raw_teardown,
        .send = pp_raw_send,
        .recv = pp_raw_recv_epoll,
};

static const struct bench_pp_ops pp_raw_ppoll = {
        .name = "raw eventfd+ppoll(timeout)",
        .setup = pp_raw_setup,
        .teardown = pp_raw_teardown,
        .send = pp_raw_send,
        .recv = pp_raw_recv_ppoll,
};

/* ---- the scenario ---- */

int bench_ping_pong(void) {
        /* target[p]: two CPUs, one CPU (0: none) */
        static const struct {
                const char *variant;
                const struct bench_pp_ops *mech, *base;
                double target[2];
        } variants[] = {
                { "poll", &bench_pp_evv_poll, &pp_raw_poll, { 1.1, 1.1 } },
                { "epoll", &pp_evv_epoll, &pp_raw_epoll, { 1.1, 1.1 } },
                { "wait", &pp_evv_wait, &pp_raw_ppoll, { 0, 1.1 } },
        };
        static const enum bench_placement placements[] = { BENCH_TWO_CPUS, BENCH_ONE_CPU };
        int failed = 0;

        for (size_t p = 0; p < 2; p++)
                for (size_t v = 0; v < sizeof(variants) / sizeof(variants[0]); v++)
                        if (bench_pp_compare("ping-pong", variants[v].variant, placements[p],
                                             variants[v].mech, variants[v].base,
                                             variants[v].target[p]) < 0)
                                failed++;
        return failed ? -1 : 0;
}
