/* SPDX-License-Identifier: MIT */
/*
 * Scenario "ipc": a value served to other processes (ev-value-ipc.h), each
 * cost against a raw socket doing the same job between the same processes
 * in the same run, interleaved round by round as bench/ipc-design-study.c
 * does.  Rows:
 *   wake        a ping-pong between two processes, each serving one value
 *               on an abstract socket and watching the other's: one sets,
 *               the other's watcher wakes (its loop polls the watcher's fd
 *               and its own server's fd, and runs ev_value_server_process
 *               when that one is readable), gets, and sets its own value
 *               in reply.  Baseline: a raw SOCK_SEQPACKET ping-pong of
 *               64-byte messages (poll, recv, send) between the same two
 *               processes.  One-way time = round trip / 2; target 1.25x,
 *               on two CPUs and on one.
 *   get         a remote watcher's first get with nothing new after a get
 *               that returned a snapshot: its time against a local
 *               watcher's (no target), and its system calls, counted
 *               exactly with the seccomp trap of common/syscall-trap.h
 *               (target: none).  The framework's target 0 means "no
 *               target", so "none" is an excess of at most 1e-9 calls per
 *               get over the local watcher's (which makes none): a single
 *               call misses it, and fails the scenario as in "get".
 *   idle peers  the producer's set with 1,000 connected watchers that
 *               never read (held by a child process) against the same set
 *               with 1 such watcher: a peer that has not looked costs a
 *               set nothing (target 2x).
 *   1 MiB       from the producer's set to the consumer in the other
 *               process holding the snapshot and having read every byte
 *               of it (timed before it lets go), against a write() of 1 MiB
 *               on a SOCK_STREAM socket pair between the same processes,
 *               read() in full into a warm buffer and read alike (no
 *               target: the sealed memfd saves the copies through the
 *               socket, and pays for a new file, a mapping and its page
 *               faults instead); and, as a second baseline, the same read()
 *               into memory mapped for it, as a consumer keeping the bytes
 *               as a snapshot would need.
 *   set-to-get  the same for the sizes around the inline limit
 *               (EV__IPC_INLINE_MAX), against one SOCK_SEQPACKET message of
 *               that size.
 *   threshold   what the library cannot be made to do (its inline limit is
 *               a constant): the raw cost, in one thread, of sending N bytes
 *               inline on a SOCK_SEQPACKET pair and copying them into a
 *               snapshot, against a sealed memfd (memfd_create, write,
 *               seal, SCM_RIGHTS, check the seals and the size, mmap, read,
 *               munmap), for N from 256 bytes to 64 KiB; the smallest N
 *               from which the memfd wins is printed, with the largest
 *               message a socket of the smallest SO_SNDBUF takes (the bound
 *               on inline data in this design): they inform
 *               EV__IPC_INLINE_MAX.
 * Cross-process times use CLOCK_MONOTONIC, which the two processes share.
 * The child processes never print; they report errors on the control
 * socket and exit.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev-value-ipc.h>

#include "../lib/ipc/protocol.h"
#include "bench.h"
#include "syscall-trap.h"

#define IPC_WAIT_MS 5000          /* a wait longer than this is an error */
#define IPC_IDLE_WAIT_MS 600000   /* a child waiting for the end of a measurement */
#define IPC_PP_BYTES 64           /* the raw ping-pong's message, as in the study */
#define IPC_SET_BATCH 1000        /* sets per sample in "idle peers" */
#define IPC_SETS_COUNTED 100      /* sets run under the seccomp trap */
#define IPC_FD_SLACK 256          /* descriptors beyond the peers' */
#define IPC_BIG (1u << 20)        /* the 1 MiB snapshot */

/* ---- the two processes' plumbing ---- */

enum ipc_ctl_type { CTL_READY = 1, CTL_GO, CTL_DONE, CTL_QUIT, CTL_ERROR };

/* One message on the control socket, a SOCK_SEQPACKET pair apart from
 * everything measured. */
struct ipc_ctl {
        uint32_t type;
        int32_t code;
        uint64_t a, b;
};

/* What a process's loop polls besides the fd it waits for: the control
 * socket (the other process's errors and death) and the servers it
 * drives. */
struct ipc_loop {
        int ctl;                        /* -1: none */
        ev_value_server *srv[2];        /* NULL: none */
        size_t processed;               /* ev_value_server_process calls */
};

static unsigned ipc_path_counter;

/* An abstract socket name of its own for each server. */
static void ipc_path(char *buf, size_t size, const char *what) {
        snprintf(buf, size, "@ev-value-bench-%ld-%s-%u", (long)getpid(), what,
                 ipc_path_counter++);
}

static int ctl_send(int fd, uint32_t type, int32_t code, uint64_t a, uint64_t b) {
        struct ipc_ctl m = { .type = type, .code = code, .a = a, .b = b };
        ssize_t n = send(fd, &m, sizeof(m), MSG_NOSIGNAL);

        if (n < 0)
                return -errno;
        return n == sizeof(m) ? 0 : -EIO;
}

/* Wait at most timeout_ms for fd to be readable, or with fd -1 for the
 * control socket to be, running ev_value_server_process whenever a
 * server's fd is readable: 1 when fd is readable, 0 when the control
 * socket is (or, while we wait for fd, when the other process is gone),
 * or a negative errno.  While we wait for fd, a control message waits
 * for its turn: the other process may be a step ahead. */
static int loop_wait(struct ipc_loop *l, int fd, int timeout_ms) {
        uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;

        for (;;) {
                struct pollfd p[4] = {
                        { .fd = l->ctl, .events = fd < 0 ? POLLIN : 0 },
                        { .fd = fd, .events = POLLIN },
                        { .fd = l->srv[0] ? ev_value_server_get_fd(l->srv[0]) : -1,
                          .events = POLLIN },
                        { .fd = l->srv[1] ? ev_value_server_get_fd(l->srv[1]) : -1,
                          .events = POLLIN },
                };
                uint64_t now = bench_now_ns();
                int n;

                if (now >= deadline)
                        return -ETIMEDOUT;
                n = poll(p, 4, (int)((deadline - now + 999999) / 1000000));
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                for (int i = 0; i < 2; i++)
                        if (p[2 + i].revents) {
                                int r = ev_value_server_process(l->srv[i]);

                                l->processed++;
                                if (r < 0)
                                        return r;
                        }
                if (p[1].revents)
                        return 1;
                if (p[0].revents)
                        return 0;
        }
}

/* Read one control message: 0, -EAGAIN, the other process's error, or
 * -ECONNRESET when it is gone. */
static int ctl_read(int fd, struct ipc_ctl *m) {
        ssize_t n = recv(fd, m, sizeof(*m), MSG_DONTWAIT);

        if (n < 0)
                return -errno;
        if (n == 0)
                return -ECONNRESET;
        if (n != sizeof(*m))
                return -EPROTO;
        if (m->type == CTL_ERROR)
                return m->code < 0 ? m->code : -EPROTO;
        return 0;
}

/* Wait for the next control message, serving meanwhile. */
static int ctl_next(struct ipc_loop *l, int timeout_ms, struct ipc_ctl *m) {
        for (;;) {
                int r = loop_wait(l, -1, timeout_ms);

                if (r < 0)
                        return r;
                r = ctl_read(l->ctl, m);
                if (r != -EAGAIN)
                        return r;
        }
}

/* Wait for a control message of this type. */
static int ctl_expect(struct ipc_loop *l, uint32_t type, int timeout_ms, struct ipc_ctl *m) {
        int r = ctl_next(l, timeout_ms, m);

        return r < 0 ? r : m->type == type ? 0 : -EPROTO;
}

/* The other process hung up while we waited for data: its error, if it
 * sent one before it went, else -ECONNRESET. */
static int ctl_interrupted(struct ipc_loop *l) {
        struct ipc_ctl m;
        int r;

        do
                r = ctl_read(l->ctl, &m);
        while (r == 0);
        return r == -EAGAIN ? -ECONNRESET : r;
}

/* The next snapshot of w, waiting (and serving) while there is none. */
static int watch_next(struct ipc_loop *l, ev_value_watcher *w, ev_value_snapshot **ret) {
        for (;;) {
                int r = ev_watcher_get(w, ret);

                if (r != -EAGAIN)
                        return r;
                r = loop_wait(l, ev_watcher_get_fd(w), IPC_WAIT_MS);
                if (r == 0)
                        r = ctl_interrupted(l);
                if (r < 0)
                        return r;
        }
}

/* Wait until w's snapshot holds the uint64_t expect; older ones (a stale
 * snapshot is allowed) are skipped. */
static int watch_u64(struct ipc_loop *l, ev_value_watcher *w, uint64_t expect) {
        for (;;) {
                ev_value_snapshot *s;
                uint64_t v;
                int r = watch_next(l, w, &s);

                if (r >= 0)
                        r = bench_take_u64(s, &v);
                if (r < 0)
                        return r;
                if (v == expect)
                        return 0;
                if (v > expect)
                        return -EPROTO;
        }
}

struct ipc_child {
        pid_t pid;
        int ctl;
};

/* Run fn(ctl, arg) in a child process, which exits 0 when it returns 0 and
 * sends its error on the control socket otherwise. */
static int ipc_fork(struct ipc_child *c, int (*fn)(int ctl, void *arg), void *arg) {
        int sv[2], r;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        fflush(stdout); /* the child never prints: nothing buffered may be printed twice */
        if (bench_opt.csv)
                fflush(bench_opt.csv);
        c->pid = fork();
        if (c->pid < 0) {
                r = -errno;
                close(sv[0]);
                close(sv[1]);
                return r;
        }
        if (c->pid == 0) {
                close(sv[0]);
                r = fn(sv[1], arg);
                if (r < 0)
                        ctl_send(sv[1], CTL_ERROR, r, 0, 0);
                _exit(r < 0 ? 1 : 0);
        }
        close(sv[1]);
        c->ctl = sv[0];
        return 0;
}

/* Tell the child to quit (or kill it when the run failed) and reap it:
 * 0, or -ECHILD when it did not exit cleanly. */
static int ipc_child_end(struct ipc_child *c, bool ok) {
        int status = 0;

        if (ok)
                ok = ctl_send(c->ctl, CTL_QUIT, 0, 0, 0) == 0;
        if (!ok)
                kill(c->pid, SIGKILL);
        close(c->ctl);
        while (waitpid(c->pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        return ok && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -ECHILD;
}

/* Every byte of data read, as 8-byte words, and what that sum must be
 * for size bytes of the value byte. */
static uint64_t sum_words(const void *data, size_t size) {
        const uint64_t *w = data;
        uint64_t sum = 0;

        for (size_t i = 0; i < size / sizeof(*w); i++)
                sum += w[i];
        return sum;
}

static uint64_t expected_sum(size_t size, unsigned char byte) {
        return (uint64_t)(size / 8) * (byte * UINT64_C(0x0101010101010101));
}

static void report(const char *variant, const char *placement, const char *mechanism,
                   const char *unit, struct bench_samples *mech, const char *baseline,
                   struct bench_samples *base, enum bench_compare compare, double target,
                   const char *note) {
        struct bench_row row = {
                .scenario = "ipc",
                .variant = variant,
                .placement = placement,
                .mechanism = mechanism,
                .unit = unit,
                .baseline = baseline,
                .compare = compare,
                .target = target,
                .note = note,
        };

        bench_row_stats(&row, mech, base);
        bench_report(&row);
}

static void report_error(const char *variant, const char *placement, const char *mechanism,
                         const char *what, int r) {
        bench_report_error("ipc", variant, placement, mechanism, what,
                           r == -ETIMEDOUT ? "no answer in time: a wake was lost"
                                           : strerror(-r));
}

/* ---- wake: a ping-pong between two processes ---- */

/* WAKE_UNSERVED is a diagnosis, not a way to run a producer: the loop
 * polls the watcher alone and never processes its server (nothing needs
 * accepting then, and each set collects the acknowledgements), so that
 * its difference from WAKE_EVV is what the producer's loop waking on
 * every acknowledgement costs. */
enum wake_design { WAKE_EVV, WAKE_RAW, WAKE_UNSERVED, N_WAKE_DESIGNS };

/* One process of the ping-pong: side 0 (the benchmark) sets first, side 1
 * (the child) answers. */
struct wake_proc {
        int side;
        enum bench_placement placement;
        char path[2][64];              /* the values of side 0 and side 1 */
        int raw;                       /* this side's end of the raw pair */
        struct ipc_loop loop, unserved; /* unserved: loop without its server */
        ev_value *value;
        ev_value_watcher *w;           /* the other side's value */
        uint64_t seq, raw_seq;
        size_t rounds, per_round;
        struct bench_samples ns[N_WAKE_DESIGNS]; /* side 0: one-way ns per round */
        size_t processed;              /* side 0: process calls in WAKE_EVV rounds */
};

static int wake_evv_round(struct wake_proc *p, struct ipc_loop *l) {
        uint64_t seq = ++p->seq;
        int r;

        if (p->side == 0) {
                r = ev_value_set(p->value, &seq, sizeof(seq));
                return r < 0 ? r : watch_u64(l, p->w, seq);
        }
        r = watch_u64(l, p->w, seq);
        return r < 0 ? r : ev_value_set(p->value, &seq, sizeof(seq));
}

static int wake_raw_send(struct wake_proc *p, uint64_t seq) {
        char msg[IPC_PP_BYTES] = { 0 };

        memcpy(msg, &seq, sizeof(seq));
        return send(p->raw, msg, sizeof(msg), MSG_NOSIGNAL) == sizeof(msg) ? 0 : -errno;
}

/* poll, then recv, as the study's baseline (and the control socket, as
 * the library's loop, so that a dead peer cannot hang us). */
static int wake_raw_recv(struct wake_proc *p, uint64_t seq) {
        struct ipc_loop bare = { .ctl = p->loop.ctl };
        char msg[IPC_PP_BYTES];
        uint64_t got;

        for (;;) {
                int r = loop_wait(&bare, p->raw, IPC_WAIT_MS);
                ssize_t n;

                if (r == 0)
                        r = ctl_interrupted(&bare);
                if (r < 0)
                        return r;
                n = recv(p->raw, msg, sizeof(msg), MSG_DONTWAIT);
                if (n < 0 && errno == EAGAIN)
                        continue;
                if (n < 0)
                        return -errno;
                if (n != sizeof(msg))
                        return n == 0 ? -ECONNRESET : -EPROTO;
                memcpy(&got, msg, sizeof(got));
                return got == seq ? 0 : -EPROTO;
        }
}

static int wake_raw_round(struct wake_proc *p) {
        uint64_t seq = ++p->raw_seq;
        int r;

        if (p->side == 0) {
                r = wake_raw_send(p, seq);
                return r < 0 ? r : wake_raw_recv(p, seq);
        }
        r = wake_raw_recv(p, seq);
        return r < 0 ? r : wake_raw_send(p, seq);
}

static int wake_rounds(struct wake_proc *p, enum wake_design d, size_t n) {
        for (size_t i = 0; i < n; i++) {
                int r = d == WAKE_RAW        ? wake_raw_round(p)
                        : d == WAKE_UNSERVED ? wake_evv_round(p, &p->unserved)
                                             : wake_evv_round(p, &p->loop);

                if (r < 0)
                        return r;
        }
        return 0;
}

/* Serve my value, connect to the other's once it is served, and wait
 * until each side's watcher has the other's first snapshot. */
static int wake_setup(struct wake_proc *p) {
        uint64_t zero = 0;
        struct ipc_ctl m;
        int r;

        bench_pin_self(bench_cpu(p->placement, p->side)); /* unpinned if it fails */
        r = ev_value_new(&p->value);
        if (r >= 0)
                r = ev_value_set(p->value, &zero, sizeof(zero));
        if (r >= 0)
                r = ev_value_serve_path(p->value, p->path[p->side], 0, &p->loop.srv[0]);
        if (r >= 0)
                r = ctl_send(p->loop.ctl, CTL_READY, 0, 0, 0);
        if (r >= 0)
                r = ctl_expect(&p->loop, CTL_READY, IPC_WAIT_MS, &m);
        if (r >= 0)
                r = ev_value_connect(p->path[!p->side], 0, &p->w);
        if (r >= 0)
                r = watch_u64(&p->loop, p->w, 0);
        if (r >= 0)
                r = ctl_send(p->loop.ctl, CTL_READY, 0, 0, 0);
        if (r >= 0)
                r = ctl_expect(&p->loop, CTL_READY, IPC_WAIT_MS, &m);
        return r < 0 ? r : 0;
}

static void wake_teardown(struct wake_proc *p) {
        ev_watcher_close(p->w);
        ev_value_server_free(p->loop.srv[0]);
        ev_value_unref(p->value);
        close(p->raw);
}

/* The child: answer every round the benchmark starts, until it quits. */
static int wake_child(int ctl, void *arg) {
        struct wake_proc *p = arg;
        struct ipc_ctl m;
        int r;

        p->side = 1;
        p->loop.ctl = p->unserved.ctl = ctl;
        r = wake_setup(p);
        while (r >= 0) {
                r = ctl_next(&p->loop, IPC_IDLE_WAIT_MS, &m);
                if (r < 0 || m.type == CTL_QUIT)
                        break;
                r = m.type == CTL_GO ? ctl_send(ctl, CTL_GO, 0, 0, 0) : -EPROTO;
                if (r >= 0)
                        r = wake_rounds(p, (enum wake_design)m.code, m.a);
        }
        wake_teardown(p);
        return r < 0 ? r : 0;
}

/* The benchmark's side: rounds of per_round round trips of each design,
 * the order rotating, both sides ready before each. */
static int wake_measure(struct wake_proc *p) {
        struct ipc_ctl m;
        int r = wake_setup(p);

        for (size_t i = 0; r >= 0 && i < N_WAKE_DESIGNS * p->rounds; i++) {
                enum wake_design d = (enum wake_design)((i + i / N_WAKE_DESIGNS) %
                                                        N_WAKE_DESIGNS);
                size_t processed = p->loop.processed;
                uint64_t t0;

                r = ctl_send(p->loop.ctl, CTL_GO, (int32_t)d, p->per_round, 0);
                if (r >= 0)
                        r = ctl_expect(&p->loop, CTL_GO, IPC_WAIT_MS, &m);
                if (r < 0)
                        break;
                t0 = bench_now_ns();
                r = wake_rounds(p, d, p->per_round);
                bench_samples_add(&p->ns[d], (double)(bench_now_ns() - t0) /
                                                     (2.0 * (double)p->per_round));
                if (d == WAKE_EVV)
                        p->processed += p->loop.processed - processed;
        }
        return r < 0 ? r : 0;
}

static int wake_compare(enum bench_placement placement, double target) {
        const char *where = bench_placement_name(placement);
        struct wake_proc p = {
                .placement = placement,
                .rounds = bench_count(20, 4),
                .per_round = bench_count(2000, 100),
                .raw = -1,
                .loop.ctl = -1,
        };
        struct ipc_child child;
        char note[320];
        int sv[2], r, rc;

        ipc_path(p.path[0], sizeof(p.path[0]), "wake0");
        ipc_path(p.path[1], sizeof(p.path[1]), "wake1");
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                report_error("wake", where, "libevvalue remote+poll", "socketpair", -errno);
                return -1;
        }
        p.raw = sv[1];
        r = ipc_fork(&child, wake_child, &p);
        close(sv[1]);
        p.raw = sv[0];
        if (r < 0) {
                close(sv[0]);
                report_error("wake", where, "libevvalue remote+poll", "fork", r);
                return -1;
        }
        p.loop.ctl = p.unserved.ctl = child.ctl;
        r = wake_measure(&p);
        wake_teardown(&p);
        rc = ipc_child_end(&child, r >= 0);
        if (r >= 0 && rc < 0)
                r = rc;
        if (r < 0) {
                report_error("wake", where, "libevvalue remote+poll", "ping-pong", r);
        } else {
                snprintf(note, sizeof(note),
                         "one way = round trip/2 between two processes (%s), median of %zu "
                         "rounds of %zu round trips, interleaved; producer loop's "
                         "ev_value_server_process calls per round trip %.2f",
                         placement == BENCH_ONE_CPU ? "both on one CPU"
                                                    : "one per CPU",
                         p.ns[0].n, p.per_round,
                         (double)p.processed / (double)(p.ns[0].n * p.per_round));
                report("wake", where, "libevvalue remote+poll", "ns", &p.ns[WAKE_EVV],
                       "raw SEQPACKET 64 B+poll", &p.ns[WAKE_RAW], BENCH_MEDIAN_RATIO, target,
                       note);
                snprintf(note, sizeof(note),
                         "diagnosis, no target: as above, but the loops poll the watcher "
                         "alone, never their server's fd (each set collects the "
                         "acknowledgements): the difference is the producer's loop waking "
                         "on each acknowledgement");
                report("wake unserved", where, "libevvalue remote+poll", "ns",
                       &p.ns[WAKE_UNSERVED], "raw SEQPACKET 64 B+poll", &p.ns[WAKE_RAW],
                       BENCH_MEDIAN_RATIO, 0, note);
        }
        for (int d = 0; d < N_WAKE_DESIGNS; d++)
                bench_samples_free(&p.ns[d]);
        return r < 0 ? -1 : 0;
}

/* ---- get: a remote get with nothing new ---- */

struct get_ctx {
        ev_value *value[2];            /* [0] served, [1] local */
        ev_value_watcher **w[2];       /* [0] remote watchers, [1] local ones */
        struct ipc_loop loop;          /* serves value[0] */
        size_t n;
        uint64_t round;
        size_t unexpected;             /* gets that did not return -EAGAIN */
        int error;
};

/* Set value[k] to the next round and get it on every watcher of k: the
 * next get of each is the first with nothing new. */
static int get_rearm(struct get_ctx *c, int k) {
        uint64_t payload[2] = { ++c->round, 0 };
        int r = ev_value_set(c->value[k], payload, sizeof(payload));

        for (size_t i = 0; r >= 0 && i < c->n; i++)
                for (;;) {
                        ev_value_snapshot *s;
                        uint64_t got;

                        r = k == 0 ? watch_next(&c->loop, c->w[k][i], &s)
                                   : ev_watcher_get(c->w[k][i], &s);
                        if (r < 0)
                                break;
                        memcpy(&got, ev_snapshot_data(s), sizeof(got));
                        ev_snapshot_unref(s);
                        if (got == c->round)
                                break;
                }
        return r < 0 ? r : 0;
}

static void get_all(struct get_ctx *c, int k) {
        for (size_t i = 0; i < c->n; i++) {
                ev_value_snapshot *s;
                int r = ev_watcher_get(c->w[k][i], &s);

                if (r != -EAGAIN)
                        c->unexpected++;
                if (r >= 0)
                        ev_snapshot_unref(s);
        }
}

static double get_measure(struct get_ctx *c, int k) {
        uint64_t t0;

        if (c->error)
                return NAN;
        c->error = get_rearm(c, k);
        if (c->error)
                return NAN;
        t0 = bench_now_ns();
        get_all(c, k);
        return (double)(bench_now_ns() - t0) / (double)c->n;
}

static double get_measure_remote(void *arg) {
        return get_measure(arg, 0);
}

static double get_measure_local(void *arg) {
        return get_measure(arg, 1);
}

static void get_all_remote(void *arg) {
        get_all(arg, 0);
}

static void get_all_local(void *arg) {
        get_all(arg, 1);
}

static int get_setup(struct get_ctx *c) {
        char path[64];
        int r;

        ipc_path(path, sizeof(path), "get");
        r = bench_raise_nofile(2 * c->n + IPC_FD_SLACK);
        for (int k = 0; r >= 0 && k < 2; k++) {
                c->w[k] = calloc(c->n, sizeof(*c->w[k]));
                r = c->w[k] ? ev_value_new(&c->value[k]) : -ENOMEM;
        }
        if (r >= 0)
                r = ev_value_serve_path(c->value[0], path, 0, &c->loop.srv[0]);
        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                /* One at a time, accepted at once: no backlog to fill. */
                r = ev_value_connect(path, 0, &c->w[0][i]);
                if (r >= 0)
                        r = ev_value_server_process(c->loop.srv[0]);
                if (r >= 0)
                        r = ev_value_watch(c->value[1], 0, &c->w[1][i]);
        }
        for (int k = 0; r >= 0 && k < 2; k++)
                r = get_rearm(c, k);
        return r < 0 ? r : 0;
}

static void get_teardown(struct get_ctx *c) {
        for (int k = 0; k < 2; k++) {
                for (size_t i = 0; c->w[k] && i < c->n; i++)
                        ev_watcher_close(c->w[k][i]);
                free(c->w[k]);
        }
        ev_value_server_free(c->loop.srv[0]);
        ev_value_unref(c->value[0]);
        ev_value_unref(c->value[1]);
}

/* Count the system calls of the first get with nothing new on every
 * watcher of k, runs times (each after a rearm): samples of calls per
 * get into *ret; the total in *ret_total.  Stops after a run that made
 * any (the trap faked its results, so the watchers are not to be trusted
 * after it). */
static int get_count(struct get_ctx *c, int k, size_t runs, struct bench_samples *ret,
                     size_t *ret_total, long *ret_first) {
        *ret_total = 0;
        for (size_t i = 0; i < runs && *ret_total == 0; i++) {
                struct trapped_call first = { .nr = -1 };
                size_t count = 0;
                int r = get_rearm(c, k);

                if (r >= 0)
                        r = syscall_trap_run(k == 0 ? get_all_remote : get_all_local, c,
                                             &first, 1, &count);
                if (r < 0)
                        return r;
                bench_samples_add(ret, (double)count / (double)c->n);
                *ret_total += count;
                if (count)
                        *ret_first = first.nr;
        }
        return 0;
}

static int get_compare(void) {
        struct get_ctx c = { .n = bench_count(256, 32), .loop.ctl = -1 };
        struct bench_samples t[2] = { { 0 } }, calls[2] = { { 0 } };
        const char *why = syscall_trap_unsupported();
        size_t total[2] = { 0 }, runs = bench_count(10, 2);
        long first = -1;
        char note[320];
        int r, status = 0;

        r = get_setup(&c);
        if (r < 0) {
                report_error("get no change", "-", "remote get -EAGAIN", "setup", r);
                get_teardown(&c);
                return -1;
        }
        bench_interleave(bench_count(200, 10), get_measure_remote, &c, &t[0],
                         get_measure_local, &c, &t[1]);
        if (c.error) {
                report_error("get no change", "-", "remote get -EAGAIN", "get", c.error);
                get_teardown(&c);
                return -1;
        }
        /* Counted last: a system call under the trap is faked and may
         * leave the watchers broken. */
        if (!why) {
                r = get_count(&c, 1, runs, &calls[1], &total[1], &first);
                if (r >= 0)
                        r = get_count(&c, 0, runs, &calls[0], &total[0], &first);
                if (r < 0) {
                        why = "the seccomp trap failed";
                        if (r != -ENOTSUP && r != -EPERM && r != -EINVAL) {
                                report_error("get no change", "-",
                                             "remote get -EAGAIN syscalls", "count", r);
                                status = -1;
                        }
                }
        }
        if (why)
                snprintf(note, sizeof(note), "syscalls not counted: %s", why);
        else if (total[0])
                snprintf(note, sizeof(note),
                         "%zu syscalls in %zu first remote gets after a snapshot (seccomp, "
                         "%zu watchers), EXPECTED 0; the first: number %ld",
                         total[0], calls[0].n * c.n, c.n, first);
        else
                snprintf(note, sizeof(note),
                         "0 syscalls in %zu first remote gets after a snapshot (seccomp, "
                         "%zu watchers); local: %zu",
                         calls[0].n * c.n, c.n, total[1]);
        if (!why && total[0])
                status = -1;
        report("get no change", "-", "remote get -EAGAIN", "ns/op", &t[0],
               "local get -EAGAIN", &t[1], BENCH_MEDIAN_RATIO, 0, note);
        if (!why)
                report("get no change", "-", "remote get -EAGAIN syscalls", "syscalls/get",
                       &calls[0], "local get -EAGAIN syscalls", &calls[1], BENCH_MEDIAN_EXCESS,
                       1e-9, note);
        if (c.unexpected) {
                printf("# ipc: %zu gets with nothing new did not return -EAGAIN\n",
                       c.unexpected);
                status = -1;
        }
        for (int k = 0; k < 2; k++) {
                bench_samples_free(&t[k]);
                bench_samples_free(&calls[k]);
        }
        get_teardown(&c);
        return status;
}

/* ---- idle peers: a set with 1,000 watchers that never read ---- */

struct idle_ctx {
        char path[2][64];              /* [0] the value with n peers, [1] with 1 */
        size_t n;
        ev_value *value[2];
        struct ipc_loop loop;
        uint64_t seq;
        int error;
};

/* ev_value_connect, again while the server's backlog is full. */
static int idle_connect(const char *path, ev_value_watcher **ret) {
        uint64_t deadline = bench_now_ns() + (uint64_t)IPC_WAIT_MS * 1000000u;

        for (;;) {
                int r = ev_value_connect(path, 0, ret);

                if (r != -EAGAIN || bench_now_ns() > deadline)
                        return r;
                usleep(1000);
        }
}

/* The child: n watchers of value 0 and one of value 1, never read. */
static int idle_child(int ctl, void *arg) {
        struct idle_ctx *c = arg;
        struct ipc_loop bare = { .ctl = ctl };
        ev_value_watcher **w = calloc(c->n + 1, sizeof(*w));
        struct ipc_ctl m;
        int r = w ? 0 : -ENOMEM;

        for (size_t i = 0; r >= 0 && i <= c->n; i++)
                r = idle_connect(c->path[i == c->n], &w[i]);
        if (r >= 0)
                r = ctl_send(ctl, CTL_READY, 0, 0, 0);
        if (r >= 0)
                r = ctl_expect(&bare, CTL_QUIT, IPC_IDLE_WAIT_MS, &m);
        for (size_t i = 0; w && i <= c->n; i++)
                ev_watcher_close(w[i]);
        free(w);
        return r < 0 ? r : 0;
}

static double idle_measure(struct idle_ctx *c, int k) {
        uint64_t payload[2] = { 0 }, t0 = bench_now_ns();

        for (int i = 0; i < IPC_SET_BATCH && !c->error; i++) {
                payload[0] = ++c->seq;
                c->error = ev_value_set(c->value[k], payload, sizeof(payload));
        }
        return c->error ? NAN : (double)(bench_now_ns() - t0) / IPC_SET_BATCH;
}

static double idle_measure_many(void *arg) {
        return idle_measure(arg, 0);
}

static double idle_measure_one(void *arg) {
        return idle_measure(arg, 1);
}

struct idle_counted {
        struct idle_ctx *c;
        int k;
};

static void idle_counted(void *arg) {
        struct idle_counted *ic = arg;
        uint64_t payload[2] = { 0 };

        for (int i = 0; i < IPC_SETS_COUNTED; i++) {
                payload[0] = ++ic->c->seq;
                ev_value_set(ic->c->value[ic->k], payload, sizeof(payload));
        }
}

/* "1.00 vs 1.00 syscalls/set", or why not. */
static void idle_count(struct idle_ctx *c, char *buf, size_t size) {
        const char *why = syscall_trap_unsupported();
        size_t count[2] = { 0 };

        for (int k = 0; !why && k < 2; k++) {
                struct idle_counted ic = { c, k };

                if (syscall_trap_run(idle_counted, &ic, NULL, 0, &count[k]) < 0)
                        why = "the seccomp trap failed";
        }
        if (why)
                snprintf(buf, size, "syscalls not counted: %s", why);
        else
                snprintf(buf, size, "%.2f vs %.2f syscalls/set (seccomp, %d sets)",
                         (double)count[0] / IPC_SETS_COUNTED,
                         (double)count[1] / IPC_SETS_COUNTED, IPC_SETS_COUNTED);
}

static int idle_compare(void) {
        struct idle_ctx c = { .n = bench_count(1000, 100), .loop.ctl = -1 };
        struct bench_samples t[2] = { { 0 } };
        struct ipc_child child = { .pid = -1 };
        uint64_t payload[2] = { 0 }, deadline;
        char variant[32], mechanism[32], counts[96], note[320];
        struct ipc_ctl m;
        bool ready = false;
        int r;

        snprintf(variant, sizeof(variant), "idle peers");
        snprintf(mechanism, sizeof(mechanism), "set, %zu idle peers", c.n);
        ipc_path(c.path[0], sizeof(c.path[0]), "idle-many");
        ipc_path(c.path[1], sizeof(c.path[1]), "idle-one");
        /* The server's end of every peer here, the watchers' in the child. */
        r = bench_raise_nofile(2 * c.n + IPC_FD_SLACK);
        for (int k = 0; r >= 0 && k < 2; k++) {
                r = ev_value_new(&c.value[k]);
                if (r >= 0)
                        r = ev_value_set(c.value[k], payload, sizeof(payload));
                if (r >= 0)
                        r = ev_value_serve_path(c.value[k], c.path[k], 0, &c.loop.srv[k]);
        }
        if (r >= 0)
                r = ipc_fork(&child, idle_child, &c);
        if (r >= 0) {
                /* Accept them all: each peer then holds its first state
                 * unread, for ever. */
                c.loop.ctl = child.ctl;
                deadline = bench_now_ns() + 4 * (uint64_t)IPC_WAIT_MS * 1000000u;
                while (r >= 0 && (!ready || ev_value_server_get_peer_count(c.loop.srv[0]) < c.n ||
                                  ev_value_server_get_peer_count(c.loop.srv[1]) < 1)) {
                        if (bench_now_ns() > deadline) {
                                r = -ETIMEDOUT;
                                break;
                        }
                        r = loop_wait(&c.loop, -1, 100);
                        if (r == -ETIMEDOUT)
                                r = 0;
                        else if (r == 0 && ready)
                                r = ctl_interrupted(&c.loop);
                        else if (r == 0) {
                                r = ctl_expect(&c.loop, CTL_READY, IPC_WAIT_MS, &m);
                                ready = r >= 0;
                        }
                }
        }
        if (r >= 0) {
                idle_measure(&c, 0); /* warm up */
                idle_measure(&c, 1);
                bench_interleave(bench_count(50, 5), idle_measure_many, &c, &t[0],
                                 idle_measure_one, &c, &t[1]);
                r = c.error;
        }
        if (r >= 0)
                idle_count(&c, counts, sizeof(counts));
        if (child.pid > 0) {
                int rc = ipc_child_end(&child, r >= 0);

                if (r >= 0 && rc < 0)
                        r = rc;
        }
        if (r < 0) {
                report_error(variant, "-", mechanism, "setup or set", r);
        } else {
                snprintf(note, sizeof(note),
                         "watchers in a child process that never read; %d sets per sample, "
                         "%zu samples; %s",
                         IPC_SET_BATCH, t[0].n, counts);
                report(variant, "-", mechanism, "ns/set", &t[0], "set, 1 idle peer", &t[1],
                       BENCH_MEDIAN_RATIO, 2.0, note);
        }
        for (int k = 0; k < 2; k++) {
                ev_value_server_free(c.loop.srv[k]);
                ev_value_unref(c.value[k]);
                bench_samples_free(&t[k]);
        }
        return r < 0 ? -1 : 0;
}

/* ---- set-to-get: a snapshot crossing to the other process ---- */

enum xfer_mech { XFER_EVV, XFER_STREAM, XFER_SEQPACKET, XFER_STREAM_NEW };

static const char *const xfer_names[] = {
        [XFER_EVV] = "libevvalue set to get",
        [XFER_STREAM] = "raw SOCK_STREAM write+read",
        [XFER_SEQPACKET] = "raw SEQPACKET send+recv",
        [XFER_STREAM_NEW] = "raw STREAM into new mmap",
};

struct xfer_proc {
        char path[64];
        int stream, seqpacket;         /* this process's ends of the raw pairs */
        struct ipc_loop loop;
        ev_value *value;               /* the producer's */
        ev_value_watcher *w;           /* the consumer's */
        unsigned char *buf;            /* the producer's data, the consumer's read buffer */
        unsigned char byte;            /* the producer's last fill */
};

/* Wait for size bytes of byte through mech and read every one: their sum,
 * and the time when the consumer had done so (before it lets go of the
 * snapshot or the memory).  XFER_STREAM reads into a warm buffer;
 * XFER_STREAM_NEW into memory mapped for the transfer, as a consumer that
 * keeps the bytes (a snapshot) would. */
static int xfer_receive(struct xfer_proc *p, enum xfer_mech mech, size_t size,
                        unsigned char byte, uint64_t *ret_sum, uint64_t *ret_t1) {
        struct ipc_loop bare = { .ctl = p->loop.ctl };
        int fd = mech == XFER_SEQPACKET ? p->seqpacket : p->stream;
        unsigned char *buf = p->buf;
        size_t got = 0;
        int r = 0;

        if (mech == XFER_EVV)
                for (;;) {
                        ev_value_snapshot *s;
                        const unsigned char *data;

                        r = watch_next(&p->loop, p->w, &s);
                        if (r < 0)
                                return r;
                        data = ev_snapshot_data(s);
                        if (ev_snapshot_size(s) == size && data[0] == byte) {
                                *ret_sum = sum_words(data, size);
                                *ret_t1 = bench_now_ns();
                                ev_snapshot_unref(s);
                                return 0;
                        }
                        ev_snapshot_unref(s);
                }
        if (mech == XFER_STREAM_NEW) {
                buf = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
                if (buf == MAP_FAILED)
                        return -errno;
        }
        while (r >= 0 && got < size) {
                ssize_t n;

                r = loop_wait(&bare, fd, IPC_WAIT_MS);
                if (r == 0)
                        r = ctl_interrupted(&bare);
                if (r < 0)
                        break;
                n = recv(fd, buf + got, size - got, MSG_DONTWAIT);
                if (n < 0 && errno == EAGAIN)
                        continue;
                if (n < 0)
                        r = -errno;
                else if (n == 0)
                        r = -ECONNRESET;
                else if (mech == XFER_SEQPACKET && (size_t)n != size)
                        r = -EPROTO;
                else
                        got += (size_t)n;
        }
        if (r >= 0) {
                *ret_sum = sum_words(buf, size);
                *ret_t1 = bench_now_ns();
        }
        if (buf != p->buf)
                munmap(buf, size);
        return r < 0 ? r : 0;
}

/* The child, the consumer: connect, then receive what the benchmark asks. */
static int xfer_child(int ctl, void *arg) {
        struct xfer_proc *p = arg;
        ev_value_snapshot *s;
        struct ipc_ctl m;
        uint64_t sum = 0, t1 = 0;
        int r;

        p->loop.ctl = ctl;
        bench_pin_self(bench_cpu(BENCH_TWO_CPUS, 1));
        memset(p->buf, 0, IPC_BIG); /* a warm read buffer for the baselines */
        r = ctl_expect(&p->loop, CTL_READY, IPC_WAIT_MS, &m);
        if (r >= 0)
                r = ev_value_connect(p->path, 0, &p->w);
        if (r >= 0)
                r = watch_next(&p->loop, p->w, &s);
        if (r >= 0) {
                ev_snapshot_unref(s);
                r = ctl_send(ctl, CTL_READY, 0, 0, 0);
        }
        while (r >= 0) {
                r = ctl_next(&p->loop, IPC_IDLE_WAIT_MS, &m);
                if (r < 0 || m.type == CTL_QUIT)
                        break;
                if (m.type != CTL_GO) {
                        r = -EPROTO;
                        break;
                }
                r = ctl_send(ctl, CTL_READY, 0, 0, 0);
                if (r >= 0)
                        r = xfer_receive(p, (enum xfer_mech)m.code, m.a, (unsigned char)m.b,
                                         &sum, &t1);
                if (r >= 0)
                        r = ctl_send(ctl, CTL_DONE, 0, t1, sum);
        }
        ev_watcher_close(p->w);
        return r < 0 ? r : 0;
}

static int xfer_send_all(int fd, const unsigned char *data, size_t size) {
        while (size > 0) {
                ssize_t n = send(fd, data, size, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                data += n;
                size -= (size_t)n;
        }
        return 0;
}

/* One transfer: fill, let the consumer get ready, time from the send to
 * its having read every byte. */
static int xfer_once(struct xfer_proc *p, enum xfer_mech mech, size_t size, double *ret_ns,
                     double *ret_send_ns) {
        unsigned char byte = p->byte = (unsigned char)(p->byte % 255 + 1);
        struct ipc_ctl m;
        uint64_t t0, t1;
        int r;

        memset(p->buf, byte, size);
        r = ctl_send(p->loop.ctl, CTL_GO, (int32_t)mech, size, byte);
        if (r >= 0)
                r = ctl_expect(&p->loop, CTL_READY, IPC_WAIT_MS, &m);
        if (r < 0)
                return r;
        t0 = bench_now_ns();
        switch (mech) {
        case XFER_EVV:
                r = ev_value_set(p->value, p->buf, size);
                break;
        case XFER_STREAM:
        case XFER_STREAM_NEW:
                r = xfer_send_all(p->stream, p->buf, size);
                break;
        default:
                r = send(p->seqpacket, p->buf, size, MSG_NOSIGNAL) == (ssize_t)size ? 0
                                                                                   : -errno;
                break;
        }
        t1 = bench_now_ns();
        if (r >= 0)
                r = ctl_expect(&p->loop, CTL_DONE, IPC_WAIT_MS, &m);
        if (r < 0)
                return r;
        if (m.b != expected_sum(size, byte))
                return -EPROTO;
        *ret_ns = (double)(m.a - t0);
        *ret_send_ns = (double)(t1 - t0);
        return 0;
}

/* Rounds of each of the n mechanisms at size, the order rotating: the
 * whole transfer's time into ns[i], the producer's call's alone into
 * send_ns[i]. */
static int xfer_rounds(struct xfer_proc *p, size_t size, const enum xfer_mech *mech, size_t n,
                       size_t rounds, struct bench_samples *ns, struct bench_samples *send_ns) {
        for (size_t i = 0; i < n * rounds; i++) {
                size_t which = (i + i / n) % n;
                double t, t_send;
                int r = xfer_once(p, mech[which], size, &t, &t_send);

                if (r < 0)
                        return r;
                bench_samples_add(&ns[which], t);
                bench_samples_add(&send_ns[which], t_send);
        }
        return 0;
}

static int xfer_compare(void) {
        static const size_t sizes[] = { 256, 1024, 2048, 4096, 16384, 65536 };
        const char *where = bench_placement_name(BENCH_TWO_CPUS);
        struct xfer_proc p = { .stream = -1, .seqpacket = -1, .loop.ctl = -1 };
        struct ipc_child child = { .pid = -1 };
        uint64_t initial = 0;
        int st[2] = { -1, -1 }, sq[2] = { -1, -1 }, r, failed = 0;
        struct ipc_ctl m;

        ipc_path(p.path, sizeof(p.path), "xfer");
        p.buf = malloc(IPC_BIG);
        r = p.buf ? 0 : -ENOMEM;
        if (r >= 0 && (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, st) < 0 ||
                       socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sq) < 0))
                r = -errno;
        if (r >= 0) {
                p.stream = st[1];
                p.seqpacket = sq[1];
                r = ipc_fork(&child, xfer_child, &p);
        }
        if (st[1] >= 0)
                close(st[1]);
        if (sq[1] >= 0)
                close(sq[1]);
        p.stream = st[0];
        p.seqpacket = sq[0];
        if (r >= 0) {
                p.loop.ctl = child.ctl;
                if (bench_pin_self(bench_cpu(BENCH_TWO_CPUS, 0)) < 0)
                        printf("# ipc: cannot pin to CPU %d; running unpinned\n",
                               bench_opt.cpu_a);
                r = ev_value_new(&p.value);
        }
        if (r >= 0)
                r = ev_value_set(p.value, &initial, sizeof(initial));
        if (r >= 0)
                r = ev_value_serve_path(p.value, p.path, 0, &p.loop.srv[0]);
        if (r >= 0)
                r = ctl_send(p.loop.ctl, CTL_READY, 0, 0, 0);
        if (r >= 0)
                r = ctl_expect(&p.loop, CTL_READY, IPC_WAIT_MS, &m);
        if (r < 0) {
                report_error("1 MiB", where, xfer_names[XFER_EVV], "setup", r);
                failed = 1;
        }

        for (size_t i = 0; !failed && i <= sizeof(sizes) / sizeof(sizes[0]); i++) {
                bool big = i == sizeof(sizes) / sizeof(sizes[0]);
                size_t size = big ? IPC_BIG : sizes[i], n = big ? 3 : 2;
                const enum xfer_mech mech[3] = { XFER_EVV, big ? XFER_STREAM : XFER_SEQPACKET,
                                                 XFER_STREAM_NEW };
                struct bench_samples ns[3] = { { 0 } }, send_ns[3] = { { 0 } };
                char variant[32], note[320];
                double unused;

                if (big)
                        snprintf(variant, sizeof(variant), "1 MiB");
                else
                        snprintf(variant, sizeof(variant), "N=%zu %s", size,
                                 size <= EV__IPC_INLINE_MAX ? "inline" : "memfd");
                xfer_once(&p, XFER_EVV, size, &unused, &unused); /* warm up */
                r = xfer_rounds(&p, size, mech, n,
                                big ? bench_count(100, 5) : bench_count(200, 10), ns, send_ns);
                if (r < 0) {
                        report_error(variant, where, xfer_names[XFER_EVV], "transfer", r);
                        failed = 1;
                }
                for (size_t k = 1; !failed && k < n; k++) {
                        snprintf(note, sizeof(note),
                                 "from the producer's send to the consumer (other process, "
                                 "other CPU) having read every byte; %zu transfers each, "
                                 "interleaved; of which the producer's call (set vs send): "
                                 "median %.0f vs %.0f ns",
                                 ns[0].n, bench_samples_quantile(&send_ns[0], 0.5),
                                 bench_samples_quantile(&send_ns[k], 0.5));
                        report(variant, where, xfer_names[XFER_EVV], "ns", &ns[0],
                               xfer_names[mech[k]], &ns[k], BENCH_MEDIAN_RATIO, 0, note);
                }
                for (size_t k = 0; k < n; k++) {
                        bench_samples_free(&ns[k]);
                        bench_samples_free(&send_ns[k]);
                }
        }

        ev_value_server_free(p.loop.srv[0]);
        ev_value_unref(p.value);
        if (child.pid > 0 && ipc_child_end(&child, !failed) < 0 && !failed) {
                report_error("1 MiB", where, xfer_names[XFER_EVV], "consumer", -ECHILD);
                failed = 1;
        }
        if (p.stream >= 0)
                close(p.stream);
        if (p.seqpacket >= 0)
                close(p.seqpacket);
        free(p.buf);
        return failed ? -1 : 0;
}

/* ---- threshold: inline against a sealed memfd, raw ---- */

struct thresh_ctx {
        int sv[2];                     /* a SOCK_SEQPACKET pair of default buffers */
        size_t size, batch;
        unsigned char *src, *rbuf;
        uint64_t sum;
        int error;
};

/* What a producer sends inline and a consumer keeps: the header and the
 * bytes in one message, received and copied into a snapshot's allocation,
 * which is read and freed. */
static int thresh_inline(struct thresh_ctx *c) {
        struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_STATE,
                                    .size = c->size };
        struct iovec iov[2] = { { &h, sizeof(h) }, { c->src, c->size } };
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 2 };
        void *copy;
        ssize_t n;

        if (sendmsg(c->sv[0], &msg, MSG_NOSIGNAL) < 0)
                return -errno;
        n = recv(c->sv[1], c->rbuf, sizeof(h) + c->size, 0);
        if (n != (ssize_t)(sizeof(h) + c->size))
                return n < 0 ? -errno : -EPROTO;
        copy = malloc(c->size);
        if (!copy)
                return -ENOMEM;
        memcpy(copy, c->rbuf + sizeof(h), c->size);
        c->sum += sum_words(copy, c->size);
        free(copy);
        return 0;
}

/* What a producer sends in a memfd and a consumer maps: memfd_create,
 * write, seal, a STATE of EV__IPC_MIN_MESSAGE bytes with the fd, close;
 * recvmsg, check the seals and the size, mmap, close, read, munmap. */
static int thresh_memfd(struct thresh_ctx *c) {
        const int seals = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
        union {
                struct ev__ipc_header h;
                char bytes[EV__IPC_MIN_MESSAGE];
        } out = { .h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_STATE,
                         .flags = EV__IPC_DATA_FD, .size = c->size } },
          in;
        union {
                struct cmsghdr align;
                char bytes[CMSG_SPACE(sizeof(int))];
        } cbuf;
        struct iovec iov = { &out, sizeof(out) };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf.bytes,
                              .msg_controllen = sizeof(cbuf.bytes) };
        struct cmsghdr *cm;
        struct stat st;
        void *map;
        int fd, r = 0;

        fd = memfd_create("ev-value-bench", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return -errno;
        if (write(fd, c->src, c->size) != (ssize_t)c->size ||
            fcntl(fd, F_ADD_SEALS, seals) < 0)
                r = -errno;
        if (r >= 0) {
                cm = &cbuf.align; /* CMSG_FIRSTHDR(&msg), never NULL here */
                cm->cmsg_level = SOL_SOCKET;
                cm->cmsg_type = SCM_RIGHTS;
                cm->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(cm), &fd, sizeof(int));
                if (sendmsg(c->sv[0], &msg, MSG_NOSIGNAL) < 0)
                        r = -errno;
        }
        close(fd);
        if (r < 0)
                return r;
        iov.iov_base = &in;
        msg.msg_controllen = sizeof(cbuf.bytes);
        if (recvmsg(c->sv[1], &msg, MSG_CMSG_CLOEXEC) != sizeof(in))
                return -EPROTO;
        cm = CMSG_FIRSTHDR(&msg);
        if (!cm || cm->cmsg_type != SCM_RIGHTS)
                return -EPROTO;
        memcpy(&fd, CMSG_DATA(cm), sizeof(int));
        if (fcntl(fd, F_GET_SEALS) != seals || fstat(fd, &st) < 0 ||
            (uint64_t)st.st_size != in.h.size)
                r = -EPROTO;
        map = r < 0 ? MAP_FAILED : mmap(NULL, c->size, PROT_READ, MAP_PRIVATE, fd, 0);
        close(fd);
        if (map == MAP_FAILED)
                return r < 0 ? r : -errno;
        c->sum += sum_words(map, c->size);
        munmap(map, c->size);
        return 0;
}

static double thresh_measure(struct thresh_ctx *c, int (*op)(struct thresh_ctx *)) {
        uint64_t t0 = bench_now_ns();

        for (size_t i = 0; i < c->batch && !c->error; i++)
                c->error = op(c);
        return c->error ? NAN : (double)(bench_now_ns() - t0) / (double)c->batch;
}

static double thresh_measure_memfd(void *arg) {
        return thresh_measure(arg, thresh_memfd);
}

static double thresh_measure_inline(void *arg) {
        return thresh_measure(arg, thresh_inline);
}

/* The largest message a SOCK_SEQPACKET socket of the smallest SO_SNDBUF
 * accepts (the server's end of a connection has that buffer, so inline
 * data cannot grow past it less the header), or 0 when unknown. */
static size_t thresh_min_sndbuf_message(void) {
        size_t lo = 0, hi = 65536;
        int sv[2], one = 1;
        char *buf = calloc(1, hi);

        if (!buf || socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
                free(buf);
                return 0;
        }
        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &one, sizeof(one)) == 0)
                while (lo < hi) { /* lo fits, hi + 1 does not */
                        size_t mid = lo + (hi - lo + 1) / 2;

                        if (send(sv[0], buf, mid, MSG_DONTWAIT | MSG_NOSIGNAL) == (ssize_t)mid) {
                                lo = mid;
                                recv(sv[1], buf, hi, 0);
                        } else {
                                hi = mid - 1;
                        }
                }
        close(sv[0]);
        close(sv[1]);
        free(buf);
        return lo;
}

static int thresh_compare(void) {
        static const size_t sizes[] = { 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536 };
        enum { N_SIZES = sizeof(sizes) / sizeof(sizes[0]) };
        struct thresh_ctx c = { .batch = bench_count(200, 20), .sv = { -1, -1 } };
        const size_t max = sizes[N_SIZES - 1];
        double ratio[N_SIZES];
        size_t crossover = 0;
        int r = 0;

        if (bench_pin_self(bench_opt.cpu_a) < 0)
                printf("# ipc: cannot pin to CPU %d; running unpinned\n", bench_opt.cpu_a);
        c.src = malloc(max);
        c.rbuf = malloc(sizeof(struct ev__ipc_header) + max);
        if (!c.src || !c.rbuf)
                r = -ENOMEM;
        else if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, c.sv) < 0)
                r = -errno;
        if (r < 0) {
                report_error("threshold", "-", "raw memfd+seal+SCM_RIGHTS+mmap", "setup", r);
                free(c.src);
                free(c.rbuf);
                return -1;
        }
        memset(c.src, 0x5a, max);
        memset(c.rbuf, 0, sizeof(struct ev__ipc_header) + max);
        for (size_t i = 0; i < N_SIZES && !c.error; i++) {
                struct bench_samples ns[2] = { { 0 } };
                char variant[32], note[200];

                c.size = sizes[i];
                snprintf(variant, sizeof(variant), "raw N=%zu", c.size);
                thresh_measure_memfd(&c); /* warm up */
                thresh_measure_inline(&c);
                bench_interleave(bench_count(30, 3), thresh_measure_memfd, &c, &ns[0],
                                 thresh_measure_inline, &c, &ns[1]);
                if (c.error) {
                        report_error(variant, "-", "raw memfd+seal+SCM_RIGHTS+mmap",
                                     "transfer", c.error);
                } else {
                        snprintf(note, sizeof(note),
                                 "one thread sends and receives, %zu per sample, %zu "
                                 "samples; ratio < 1: the memfd is cheaper",
                                 c.batch, ns[0].n);
                        report(variant, "-", "raw memfd+seal+SCM_RIGHTS+mmap", "ns/op", &ns[0],
                               "raw SEQPACKET inline+copy", &ns[1], BENCH_MEDIAN_RATIO, 0,
                               note);
                        ratio[i] = bench_samples_quantile(&ns[0], 0.5) /
                                   bench_samples_quantile(&ns[1], 0.5);
                }
                bench_samples_free(&ns[0]);
                bench_samples_free(&ns[1]);
        }
        if (!c.error) {
                size_t largest = thresh_min_sndbuf_message();

                printf("# ipc: a socket of the smallest SO_SNDBUF takes messages of up to %zu "
                       "bytes: inline data of up to %zu bytes after the %zu-byte header\n",
                       largest, largest > sizeof(struct ev__ipc_header)
                                        ? largest - sizeof(struct ev__ipc_header) : 0,
                       sizeof(struct ev__ipc_header));
                /* The smallest size from which the memfd wins at every size. */
                for (size_t i = N_SIZES; i-- > 0 && ratio[i] < 1;)
                        crossover = sizes[i];
                if (crossover)
                        printf("# ipc: the sealed memfd is cheaper than inline from %zu bytes "
                               "on (EV__IPC_INLINE_MAX is %d)\n",
                               crossover, EV__IPC_INLINE_MAX);
                else
                        printf("# ipc: inline is cheaper than a sealed memfd up to %zu bytes "
                               "(EV__IPC_INLINE_MAX is %d)\n",
                               max, EV__IPC_INLINE_MAX);
        }
        close(c.sv[0]);
        close(c.sv[1]);
        free(c.src);
        free(c.rbuf);
        return c.error ? -1 : 0;
}

/* ---- the scenario ---- */

/* Whether this kernel lets the library serve at all (ev_value_serve
 * probes the AF_UNIX accounting it relies on): 0, 77, or -1. */
static int ipc_supported(void) {
        ev_value_server *srv = NULL;
        ev_value *v = NULL;
        char path[64];
        int r;

        ipc_path(path, sizeof(path), "probe");
        r = ev_value_new(&v);
        if (r >= 0)
                r = ev_value_serve_path(v, path, 0, &srv);
        ev_value_server_free(srv);
        ev_value_unref(v);
        if (r == -EOPNOTSUPP) {
                printf("# ipc: this kernel cannot serve a value (ev_value_serve: %s)\n",
                       strerror(-r));
                return 77;
        }
        if (r < 0) {
                printf("# ipc: ev_value_serve_path: %s\n", strerror(-r));
                return -1;
        }
        return 0;
}

int bench_ipc(void) {
        cpu_set_t saved;
        bool restore = sched_getaffinity(0, sizeof(saved), &saved) == 0;
        int failed = 0, r = ipc_supported();

        if (r != 0)
                return r;
        failed += wake_compare(BENCH_TWO_CPUS, 1.25) < 0;
        failed += wake_compare(BENCH_ONE_CPU, 1.25) < 0;
        failed += get_compare() < 0;
        failed += idle_compare() < 0;
        failed += xfer_compare() < 0;
        failed += thresh_compare() < 0;
        if (restore)
                sched_setaffinity(0, sizeof(saved), &saved);
        return failed ? -1 : 0;
}
