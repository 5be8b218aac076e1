/* SPDX-License-Identifier: MIT */
/*
 * Scenarios "set-idle" and "set-armed": what an ev_value_set costs with N
 * watchers.  In set-idle no watcher consumes, so after the first set every
 * watcher already holds a notification, which a set leaves alone
 * (ev_value_set(3), and "Cost" in libevvalue(7)): its cost must not grow
 * with N.  Its floor is what any set must
 * do: copy the 16 bytes into a new allocation, publish the pointer with one
 * atomic exchange and free the one it replaces (target: within 1.5x of
 * that, at every N).  It is also measured against a set with one watcher
 * (N = 10,000 within 2x of that), and against the design the library
 * replaces, a producer that writes every one of N eventfds on every update
 * (1000x cheaper at N = 10,000).  In set-armed every watcher consumed the
 * previous update, so a set must write all N eventfds; the honest baseline
 * is then the same 16-byte malloc, memcpy and free plus a bare loop of N
 * eventfd writes, and the library's bookkeeping around them must stay
 * within 10% of it at every N.  As in real use, the consumer runs on the
 * other CPU: before each timed set a helper thread pinned to cpu B gets
 * every watcher (draining its eventfd and re-arming it), or for the
 * baseline reads every eventfd, while the producer is pinned to cpu A, so
 * the set finds the watchers' state in the other CPU's cache.  Only the
 * set (or the copy and the write loop) is timed.  The baselines write the
 * watchers' own eventfds (set-idle never reads them): the comparison then
 * runs on the same kernel objects and fd-table slots, so it isolates the
 * library's bookkeeping, and N = 10,000 needs 10,000 descriptors, not
 * 20,000.  On a noisy VM, where a system call costs hundreds of nanoseconds
 * or more, the exact system-call counts of the seccomp trap
 * (common/syscall-trap.h) are the strongest evidence, so each row's note
 * carries them.
 */
#include "config.h"

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "bench.h"
#include "ev-value.h"
#include "syscall-trap.h"

#define SET_BATCH 1000     /* sets per sample when a set writes nothing */
#define NAIVE_WRITES 1000  /* at least this many writes per naive-loop sample */
#define ARMED_WRITES 200   /* at least this many writes per set-armed sample */
#define IDLE_COUNTED 1000  /* sets run under the seccomp trap in set-idle */
#define FD_SLACK 64        /* descriptors beyond the benchmark's own */
#define SPINS 1000         /* pause-spins before a waiting thread yields its CPU */

static const char set_payload[16] = "sixteen bytes!!";

struct set_ctx;

/* The helper thread of set-armed, on cpu B: it runs one job at a time for
 * the producer and spins between jobs, so a handshake costs a cache-line
 * transfer, not a wake-up. */
struct remote {
        pthread_t thread;
        atomic_uint requested, done;    /* job generations */
        void (*job)(struct set_ctx *ctx); /* NULL: stop */
        struct set_ctx *ctx;
};

/* A value with n watchers; fds[] are their eventfds, for the baselines. */
struct set_ctx {
        ev_value *value;
        ev_value_watcher **w;
        int *fds;
        size_t n;
        size_t cycles;     /* untimed re-arm + timed set per set-armed sample */
        size_t failures;   /* sets or writes that failed */
        struct remote *remote;
};

static void set_ctx_free(struct set_ctx *ctx) {
        for (size_t i = 0; ctx->w && i < ctx->n; i++)
                ev_watcher_close(ctx->w[i]);
        free(ctx->w);
        free(ctx->fds);
        ev_value_unref(ctx->value);
        *ctx = (struct set_ctx){ 0 };
}

/* n watchers, all armed, on a new value. */
static int set_ctx_init(struct set_ctx *ctx, size_t n) {
        int r;

        *ctx = (struct set_ctx){ .n = n };
        ctx->w = calloc(n, sizeof(*ctx->w));
        ctx->fds = calloc(n, sizeof(*ctx->fds));
        if (!ctx->w || !ctx->fds)
                return -ENOMEM;
        r = ev_value_new(&ctx->value);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = ev_value_watch(ctx->value, 0, &ctx->w[i]);
                if (r >= 0)
                        ctx->fds[i] = ev_watcher_get_fd(ctx->w[i]);
        }
        return r < 0 ? r : 0;
}

static void set_once(struct set_ctx *ctx) {
        if (ev_value_set(ctx->value, set_payload, sizeof(set_payload)) < 0)
                ctx->failures++;
}

static void write_all(struct set_ctx *ctx) {
        uint64_t one = 1;

        for (size_t i = 0; i < ctx->n; i++)
                if (write(ctx->fds[i], &one, sizeof(one)) != sizeof(one))
                        ctx->failures++;
}

/* A 16-byte copy in a new allocation, the least a set can allocate. */
static char *copy_payload(struct set_ctx *ctx) {
        char *p = malloc(sizeof(set_payload));

        if (p)
                memcpy(p, set_payload, sizeof(set_payload));
        else
                ctx->failures++;
        return p;
}

/* set-idle's floor: the copy published with one atomic exchange, the one
 * it replaces freed.  Starts and ends empty (see bench_set_idle). */
static _Atomic(char *) floor_slot;

static void floor_publish(struct set_ctx *ctx) {
        char *p = copy_payload(ctx);

        if (p)
                free(atomic_exchange(&floor_slot, p));
}

/* The floor plus the two atomic read-modify-writes that any set needs
 * which many producers may call and which must find sleeping consumers
 * without a lock: one to order the producers, one as the store-load
 * barrier between publishing and looking for armed watchers.  Not a
 * target: the least such a set can cost. */
static atomic_ulong floor_order, floor_barrier;

static void floor_publish_ordered(struct set_ctx *ctx) {
        atomic_fetch_add(&floor_order, 1);
        floor_publish(ctx);
        atomic_fetch_add(&floor_barrier, 1);
}

/* set-armed's allocation: the copy made and freed; the empty asm says the
 * bytes are used, so the compiler keeps the malloc, memcpy and free. */
static void copy_and_free(struct set_ctx *ctx) {
        char *p = copy_payload(ctx);

        __asm__ volatile("" : : "r"(p) : "memory");
        free(p);
}

/* ns per call of publish, timed over a batch. */
static double measure_batch(struct set_ctx *ctx, void (*publish)(struct set_ctx *ctx)) {
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < SET_BATCH; i++)
                publish(ctx);
        return (double)(bench_now_ns() - t0) / SET_BATCH;
}

static double measure_floor(void *userdata) {
        return measure_batch(userdata, floor_publish);
}

static double measure_floor_ordered(void *userdata) {
        return measure_batch(userdata, floor_publish_ordered);
}

/* Sets that write nothing: every watcher is already signaled. */
static double measure_idle_sets(void *userdata) {
        return measure_batch(userdata, set_once);
}

/* The naive producer: write every eventfd, as many passes as make
 * NAIVE_WRITES writes (at least one); ns per pass.  The counters grow by
 * one a write, far from overflowing, and set-idle never reads them. */
static double measure_naive(void *userdata) {
        struct set_ctx *ctx = userdata;
        size_t passes = ctx->n >= NAIVE_WRITES ? 1 : NAIVE_WRITES / ctx->n;
        uint64_t t0 = bench_now_ns();

        for (size_t p = 0; p < passes; p++)
                write_all(ctx);
        return (double)(bench_now_ns() - t0) / (double)passes;
}

/* Every watcher takes the current snapshot, so all are armed (run on the
 * helper's CPU). */
static void rearm_all(struct set_ctx *ctx) {
        ev_value_snapshot *s;

        for (size_t i = 0; i < ctx->n; i++)
                if (ev_watcher_get(ctx->w[i], &s) >= 0)
                        ev_snapshot_unref(s);
}

/* Every eventfd back to zero, each holds exactly one (on the helper's CPU). */
static void drain_all(struct set_ctx *ctx) {
        uint64_t counter;

        for (size_t i = 0; i < ctx->n; i++)
                if (read(ctx->fds[i], &counter, sizeof(counter)) != sizeof(counter))
                        ctx->failures++;
}

static void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
}

/* Wait until *a is no longer old and return it: spin first (the answer
 * usually comes within microseconds), then yield, so that a helper whose
 * CPU is busy with other work gets it back. */
static unsigned wait_change(atomic_uint *a, unsigned old) {
        unsigned v;

        for (int spins = 0; (v = atomic_load_explicit(a, memory_order_acquire)) == old;
             spins++) {
                if (spins < SPINS)
                        cpu_relax();
                else
                        sched_yield();
        }
        return v;
}

static void *remote_main(void *arg) {
        struct remote *rm = arg;
        unsigned seen = 0;

        for (;;) {
                void (*job)(struct set_ctx *ctx);

                seen = wait_change(&rm->requested, seen);
                job = rm->job;
                if (job)
                        job(rm->ctx);
                atomic_store_explicit(&rm->done, seen, memory_order_release);
                if (!job)
                        return NULL;
        }
}

/* Run job(ctx) on the helper's CPU and wait for it. */
static void remote_run(struct set_ctx *ctx, void (*job)(struct set_ctx *ctx)) {
        struct remote *rm = ctx->remote;
        unsigned gen = atomic_load_explicit(&rm->requested, memory_order_relaxed);

        rm->job = job;
        rm->ctx = ctx;
        atomic_store_explicit(&rm->requested, gen + 1, memory_order_release);
        wait_change(&rm->done, gen);
}

/* ctx->cycles times: rearm on the helper's CPU, untimed, then timed; the
 * mean time of timed. */
static double measure_rearmed(struct set_ctx *ctx, void (*rearm)(struct set_ctx *ctx),
                              void (*timed)(struct set_ctx *ctx)) {
        uint64_t total = 0;

        for (size_t c = 0; c < ctx->cycles; c++) {
                uint64_t t0;

                remote_run(ctx, rearm);
                t0 = bench_now_ns();
                timed(ctx);
                total += bench_now_ns() - t0;
        }
        return (double)total / (double)ctx->cycles;
}

static void copy_and_write_all(struct set_ctx *ctx) {
        copy_and_free(ctx);
        write_all(ctx);
}

static double measure_armed_set(void *userdata) {
        return measure_rearmed(userdata, rearm_all, set_once);
}

static double measure_bare_writes(void *userdata) {
        return measure_rearmed(userdata, drain_all, copy_and_write_all);
}

static void idle_counted(void *userdata) {
        for (int i = 0; i < IDLE_COUNTED; i++)
                set_once(userdata);
}

static void one_set_counted(void *userdata) {
        set_once(userdata);
}

/* Why the seccomp count is impossible, written into note; NULL if it works. */
static const char *count_unsupported(int r, char *note, size_t size) {
        const char *why = syscall_trap_unsupported();

        if (why)
                snprintf(note, size, "syscalls not counted: %s", why);
        else if (r < 0)
                snprintf(note, size, "syscalls not counted: seccomp: %s", strerror(-r));
        return why || r < 0 ? note : NULL;
}

/* set-idle: count the system calls of IDLE_COUNTED sets; expected 0. */
static int count_idle(struct set_ctx *ctx, char *note, size_t size) {
        size_t count = 0;
        int r = syscall_trap_unsupported() ? 0 : syscall_trap_run(idle_counted, ctx, NULL, 0,
                                                                   &count);

        if (count_unsupported(r, note, size))
                return 0;
        snprintf(note, size, "%g syscalls/set (seccomp count over %d sets)%s",
                 (double)count / IDLE_COUNTED, IDLE_COUNTED, count ? " EXPECTED 0" : "");
        return count ? -1 : 0;
}

/* How many of calls[] are writes to one of ctx's watcher fds, each fd
 * counted once; the rest are unexpected. */
static size_t count_watcher_writes(struct set_ctx *ctx, const struct trapped_call *calls,
                                   size_t n_calls) {
        int max_fd = 0;
        bool *hit;
        size_t writes = 0;

        for (size_t i = 0; i < ctx->n; i++)
                if (ev_watcher_get_fd(ctx->w[i]) > max_fd)
                        max_fd = ev_watcher_get_fd(ctx->w[i]);
        hit = calloc((size_t)max_fd + 1, 2 * sizeof(*hit));
        if (!hit)
                return 0;
        for (size_t i = 0; i < ctx->n; i++)
                hit[ev_watcher_get_fd(ctx->w[i])] = true;
        for (size_t i = 0; i < n_calls; i++) {
                long fd = calls[i].arg0;

                if (calls[i].nr != SYS_write || fd < 0 || fd > max_fd || !hit[fd] ||
                    hit[max_fd + 1 + fd])
                        continue;
                hit[max_fd + 1 + fd] = true; /* a second write to it is unexpected */
                writes++;
        }
        free(hit);
        return writes;
}

/* set-armed: count the system calls of one set with every watcher armed;
 * expected exactly one write to each watcher's eventfd.  Run right after
 * the watchers were created (all armed).  The trap fakes the writes, so the
 * eventfds stay at zero; the next get reads nothing and re-arms as usual. */
static int count_armed(struct set_ctx *ctx, char *note, size_t size) {
        size_t max = ctx->n + FD_SLACK, count = 0, writes;
        struct trapped_call *calls = calloc(max, sizeof(*calls));
        bool ok;
        int r;

        if (!calls) {
                snprintf(note, size, "syscalls not counted: out of memory");
                return 0;
        }
        r = syscall_trap_unsupported() ? 0 : syscall_trap_run(one_set_counted, ctx, calls, max,
                                                               &count);
        if (count_unsupported(r, note, size)) {
                free(calls);
                return 0;
        }
        writes = count_watcher_writes(ctx, calls, count < max ? count : max);
        free(calls);
        ok = writes == ctx->n && count == writes;
        snprintf(note, size, "eventfd writes/set: %zu, other syscalls: %zu (seccomp count of"
                 " one set)%s", writes, count - writes, ok ? "" : " EXPECTED N and 0");
        return ok ? 0 : -1;
}

static void set_report(const char *scenario, size_t n, const char *placement,
                       const char *baseline, struct bench_samples *mech,
                       struct bench_samples *base, double target, const char *note) {
        char variant[32];
        struct bench_row row = {
                .scenario = scenario,
                .variant = variant,
                .placement = placement,
                .mechanism = "ev_value_set 16 B",
                .unit = "ns/op",
                .baseline = baseline,
                .target = target,
                .note = note,
        };

        snprintf(variant, sizeof(variant), "N=%zu", n);
        bench_row_stats(&row, mech, base);
        bench_report(&row);
}

static void samples_free(struct bench_samples *a, struct bench_samples *b) {
        bench_samples_free(a);
        bench_samples_free(b);
}

/* Raise RLIMIT_NOFILE for n watchers; when it cannot be raised, say why
 * and return the largest n the current limit allows. */
static size_t set_fit_limit(const char *scenario, size_t n) {
        struct rlimit rl;
        int r = bench_raise_nofile(n + 1 + FD_SLACK);

        if (r >= 0)
                return n;
        printf("# %s: cannot raise RLIMIT_NOFILE to %zu: %s; skipping larger N\n", scenario,
               n + 1 + FD_SLACK, strerror(-r));
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur < 1 + FD_SLACK)
                return 0;
        return rl.rlim_cur - 1 - FD_SLACK;
}

/* set-idle at one n, against the floor, one watcher (one) and the naive
 * loop. */
static int set_idle_one(size_t n, struct set_ctx *one) {
        struct bench_samples mech = { 0 }, base = { 0 };
        struct set_ctx ctx;
        size_t naive_rounds = n >= 10000 ? bench_count(30, 3) : bench_count(100, 10);
        char note[128];
        int r, status;

        r = set_ctx_init(&ctx, n);
        if (r < 0) {
                printf("# set-idle: N=%zu: setup failed: %s\n", n, strerror(-r));
                set_ctx_free(&ctx);
                return r;
        }
        set_once(&ctx); /* the one set that signals every watcher */
        measure_idle_sets(&ctx);
        status = count_idle(&ctx, note, sizeof(note));

        bench_interleave(bench_count(200, 20), measure_idle_sets, &ctx, &mech, measure_floor,
                         &ctx, &base);
        set_report("set-idle", n, "-", "malloc+memcpy+xchg+free", &mech, &base, 1.5, note);
        samples_free(&mech, &base);

        if (n == 1) {
                bench_interleave(bench_count(200, 20), measure_idle_sets, &ctx, &mech,
                                 measure_floor_ordered, &ctx, &base);
                set_report("set-idle", n, "-", "floor + 2 atomic RMWs", &mech, &base, 0, note);
                samples_free(&mech, &base);
        }

        bench_interleave(bench_count(200, 20), measure_idle_sets, &ctx, &mech,
                         measure_idle_sets, one, &base);
        set_report("set-idle", n, "-", "set with 1 idle watcher", &mech, &base, 2.0, note);
        samples_free(&mech, &base);

        bench_interleave(naive_rounds, measure_idle_sets, &ctx, &mech, measure_naive, &ctx,
                         &base);
        set_report("set-idle", n, "-", "naive: write N eventfds", &mech, &base,
                   n >= 10000 ? 0.001 : 0, note);
        samples_free(&mech, &base);
        if (ctx.failures)
                status = -1;
        set_ctx_free(&ctx);
        return status;
}

int bench_set_idle(void) {
        static const size_t ns[] = { 1, 100, 10000 };
        size_t n_max = 10000, n_fit = set_fit_limit("set-idle", n_max);
        struct set_ctx one;
        int r, status = 0;

        if (bench_pin_self(bench_opt.cpu_a) < 0)
                printf("# set-idle: cannot pin to CPU %d; running unpinned\n", bench_opt.cpu_a);
        r = set_ctx_init(&one, 1);
        if (r < 0) {
                printf("# set-idle: setup failed: %s\n", strerror(-r));
                set_ctx_free(&one);
                return -1;
        }
        set_once(&one);
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                if (ns[i] > n_fit)
                        continue;
                if (set_idle_one(ns[i], &one) < 0)
                        status = -1;
        }
        if (one.failures)
                status = -1;
        set_ctx_free(&one);
        free(atomic_exchange(&floor_slot, NULL));
        return status < 0 ? -1 : n_fit < n_max ? 77 : 0;
}

/* Start and stop the helper of set-armed on cpu B. */
static int remote_start(struct set_ctx *ctx, struct remote *rm) {
        *rm = (struct remote){ .ctx = ctx };
        ctx->remote = rm;
        return bench_thread_start(&rm->thread, bench_opt.cpu_b, remote_main, rm);
}

static void remote_stop(struct set_ctx *ctx) {
        remote_run(ctx, NULL);
        pthread_join(ctx->remote->thread, NULL);
        ctx->remote = NULL;
}

/* set-armed's timings, re-armed from cpu B, with a warm-up of both. */
static void set_armed_measure(struct set_ctx *ctx, size_t rounds, struct bench_samples *mech,
                              struct bench_samples *base) {
        measure_armed_set(ctx);
        measure_bare_writes(ctx);
        bench_interleave(rounds, measure_armed_set, ctx, mech, measure_bare_writes, ctx, base);
}

/* set-armed at one n, against the copy and a bare loop of n eventfd writes. */
static int set_armed_one(size_t n) {
        struct bench_samples mech = { 0 }, base = { 0 };
        struct set_ctx ctx;
        struct remote rm;
        size_t rounds = n >= 10000 ? bench_count(30, 2) :
                        n >= 1000  ? bench_count(100, 5) : bench_count(200, 20);
        char note[128], full_note[200];
        int r, status;

        r = set_ctx_init(&ctx, n);
        if (r < 0) {
                printf("# set-armed: N=%zu: setup failed: %s\n", n, strerror(-r));
                set_ctx_free(&ctx);
                return r;
        }
        ctx.cycles = n >= ARMED_WRITES ? 1 : ARMED_WRITES / n;
        status = count_armed(&ctx, note, sizeof(note));
        r = remote_start(&ctx, &rm);
        if (r < 0) {
                printf("# set-armed: N=%zu: no helper on cpu %d: %s\n", n, bench_opt.cpu_b,
                       strerror(-r));
                set_ctx_free(&ctx);
                return r;
        }
        set_armed_measure(&ctx, rounds, &mech, &base);
        remote_stop(&ctx);
        snprintf(full_note, sizeof(full_note), "producer cpu %d, re-armed from cpu %d; %s",
                 bench_opt.cpu_a, bench_opt.cpu_b, note);
        set_report("set-armed", n, bench_placement_name(BENCH_TWO_CPUS),
                   "malloc/cpy/free + N writes", &mech, &base, 1.1, full_note);
        samples_free(&mech, &base);
        if (ctx.failures)
                status = -1;
        set_ctx_free(&ctx);
        return status;
}

int bench_set_armed(void) {
        static const size_t ns[] = { 1, 100, 1000, 10000 };
        size_t n_max = bench_opt.quick ? 1000 : 10000, n_fit = set_fit_limit("set-armed", n_max);
        int status = 0;

        if (bench_pin_self(bench_opt.cpu_a) < 0)
                printf("# set-armed: cannot pin to CPU %d; running unpinned\n", bench_opt.cpu_a);
        for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
                if (ns[i] > n_fit)
                        continue;
                if (set_armed_one(ns[i]) < 0)
                        status = -1;
        }
        return status < 0 ? -1 : n_fit < n_max ? 77 : 0;
}
