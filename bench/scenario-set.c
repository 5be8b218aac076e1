/* SPDX-License-Identifier: MIT */
/*
 * Scenarios "set-idle" and "set-armed": what an ev_value_set costs with N
 * watchers.  In set-idle no watcher consumes, so after the first set every
 * watcher already holds a notification and the contract says a set writes
 * nothing: its cost must not grow with N.  It is measured against a set with
 * one watcher (target: N = 10,000 within 2x of that), and against the design
 * the library replaces, a producer that writes every one of N eventfds on
 * every update (target: 1000x cheaper at N = 10,000).  In set-armed every
 * watcher consumed the previous update, so a set must write all N eventfds;
 * the honest baseline is then a bare loop of N eventfd writes, and the
 * library's bookkeeping around them must stay within 10% of it.  Only the set
 * (or only the write loop) is timed; the gets that re-arm the watchers and
 * the reads that drain the baseline's eventfds happen between timings.  The
 * baselines write the watchers' own eventfds (a set-armed sample drains them
 * first and leaves each at one, the state the library expects of a signaled
 * watcher; set-idle never reads them): the comparison then runs on the same
 * kernel objects and fd-table slots, so it isolates the library's
 * bookkeeping, and N = 10,000 needs 10,000 descriptors, not 20,000.  On a
 * noisy VM, where a system call costs hundreds of nanoseconds or more, the
 * exact system-call counts of the seccomp trap (tests/syscall-trap.h) are the
 * strongest evidence, so each row's note carries them.
 */
#include "config.h"

#include <errno.h>
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

static const char set_payload[16] = "sixteen bytes!!";

/* A value with n watchers; fds[] are their eventfds, for the baselines. */
struct set_ctx {
        ev_value *value;
        ev_value_watcher **w;
        int *fds;
        size_t n;
        size_t cycles;     /* untimed re-arm + timed set per set-armed sample */
        size_t failures;   /* sets or writes that failed */
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

/* Sets that write nothing: every watcher is already signaled. */
static double measure_idle_sets(void *userdata) {
        struct set_ctx *ctx = userdata;
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < SET_BATCH; i++)
                set_once(ctx);
        return (double)(bench_now_ns() - t0) / SET_BATCH;
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

/* Untimed: every watcher takes the current snapshot, so all are armed. */
static void rearm_all(struct set_ctx *ctx) {
        ev_value_snapshot *s;

        for (size_t i = 0; i < ctx->n; i++)
                if (ev_watcher_get(ctx->w[i], &s) >= 0)
                        ev_snapshot_unref(s);
}

/* Untimed: every eventfd back to zero (each holds exactly one). */
static void drain_all(struct set_ctx *ctx) {
        uint64_t counter;

        for (size_t i = 0; i < ctx->n; i++)
                if (read(ctx->fds[i], &counter, sizeof(counter)) != sizeof(counter))
                        ctx->failures++;
}

static double measure_armed_set(void *userdata) {
        struct set_ctx *ctx = userdata;
        uint64_t total = 0;

        for (size_t c = 0; c < ctx->cycles; c++) {
                uint64_t t0;

                rearm_all(ctx);
                t0 = bench_now_ns();
                set_once(ctx);
                total += bench_now_ns() - t0;
        }
        return (double)total / (double)ctx->cycles;
}

static double measure_bare_writes(void *userdata) {
        struct set_ctx *ctx = userdata;
        uint64_t total = 0;

        for (size_t c = 0; c < ctx->cycles; c++) {
                uint64_t t0;

                drain_all(ctx);
                t0 = bench_now_ns();
                write_all(ctx);
                total += bench_now_ns() - t0;
        }
        return (double)total / (double)ctx->cycles;
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

static void set_report(const char *scenario, size_t n, const char *baseline,
                       struct bench_samples *mech, struct bench_samples *base, double target,
                       const char *note) {
        char variant[32];
        struct bench_row row = {
                .scenario = scenario,
                .variant = variant,
                .placement = "-",
                .mechanism = "ev_value_set 16 B",
                .unit = "ns/op",
                .median = bench_samples_quantile(mech, 0.5),
                .p99 = bench_samples_quantile(mech, 0.99),
                .baseline = baseline,
                .baseline_median = bench_samples_quantile(base, 0.5),
                .baseline_p99 = bench_samples_quantile(base, 0.99),
                .target = target,
                .note = note,
        };

        snprintf(variant, sizeof(variant), "N=%zu", n);
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

/* set-idle at one n, against one watcher (one) and the naive loop. */
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

        bench_interleave(bench_count(200, 20), measure_idle_sets, &ctx, &mech,
                         measure_idle_sets, one, &base);
        set_report("set-idle", n, "set with 1 idle watcher", &mech, &base, 2.0, note);
        samples_free(&mech, &base);

        bench_interleave(naive_rounds, measure_idle_sets, &ctx, &mech, measure_naive, &ctx,
                         &base);
        set_report("set-idle", n, "naive: write N eventfds", &mech, &base,
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
        return status < 0 ? -1 : n_fit < n_max ? 77 : 0;
}

/* set-armed at one n, against a bare loop of n eventfd writes. */
static int set_armed_one(size_t n) {
        struct bench_samples mech = { 0 }, base = { 0 };
        struct set_ctx ctx;
        size_t rounds = n >= 10000 ? bench_count(30, 2) :
                        n >= 1000  ? bench_count(100, 5) : bench_count(200, 20);
        char note[128];
        int r, status;

        r = set_ctx_init(&ctx, n);
        if (r < 0) {
                printf("# set-armed: N=%zu: setup failed: %s\n", n, strerror(-r));
                set_ctx_free(&ctx);
                return r;
        }
        ctx.cycles = n >= ARMED_WRITES ? 1 : ARMED_WRITES / n;
        status = count_armed(&ctx, note, sizeof(note));
        measure_armed_set(&ctx); /* warm up both paths */
        measure_bare_writes(&ctx);

        bench_interleave(rounds, measure_armed_set, &ctx, &mech, measure_bare_writes, &ctx,
                         &base);
        set_report("set-armed", n, "bare: write N eventfds", &mech, &base, 1.1, note);
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
