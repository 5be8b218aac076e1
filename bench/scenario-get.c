/* SPDX-License-Identifier: MIT */
/*
 * Scenario "get": the cost of an ev_watcher_get that finds nothing new, the
 * call a consumer makes after every spurious wake-up and whenever it polls a
 * value instead of waiting on it.  Such a get must refuse a concurrent get on
 * the same watcher, so it cannot be cheaper than one atomic read-modify-write
 * on shared memory: that instruction, in a loop of the same length, is the
 * floor it is held to (target: within 3x).  The second baseline is what the
 * call would cost if it asked the kernel, a read() of an empty non-blocking
 * eventfd.  A timing cannot prove that no system call hides on the path, so
 * the system calls of 100,000 gets are also counted, exactly, with the
 * seccomp trap of common/syscall-trap.h.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "bench.h"
#include "ev-value.h"
#include "syscall-trap.h"

#define GET_BATCH 10000      /* gets, or atomics, per sample */
#define READ_BATCH 1000      /* read()s per sample: each is a system call */
#define GET_COUNTED 100000   /* gets run under the seccomp trap */

struct get_ctx {
        ev_value *value;
        ev_value_watcher *w;
        int empty_fd;        /* an eventfd never written, for the read() baseline */
        size_t unexpected;   /* gets that did not return -EAGAIN, reads that did not fail */
};

/* The atomic baseline's shared variable: a real object in memory, so every
 * fetch_add is a locked instruction the compiler may not merge or drop. */
static atomic_ulong get_floor_counter;

static double measure_get(void *userdata) {
        struct get_ctx *ctx = userdata;
        ev_value_snapshot *s;
        uint64_t t0 = bench_now_ns();

        for (int i = 0; i < GET_BATCH; i++)
                if (ev_watcher_get(ctx->w, &s) != -EAGAIN)
                        ctx->unexpected++;
        return (double)(bench_now_ns() - t0) / GET_BATCH;
}

static double measure_atomic(void *userdata) {
        uint64_t t0 = bench_now_ns();

        (void)userdata;
        for (int i = 0; i < GET_BATCH; i++)
                atomic_fetch_add(&get_floor_counter, 1);
        return (double)(bench_now_ns() - t0) / GET_BATCH;
}

static double measure_read(void *userdata) {
        struct get_ctx *ctx = userdata;
        uint64_t counter, t0 = bench_now_ns();

        for (int i = 0; i < READ_BATCH; i++)
                if (read(ctx->empty_fd, &counter, sizeof(counter)) >= 0)
                        ctx->unexpected++;
        return (double)(bench_now_ns() - t0) / READ_BATCH;
}

/* A value set once and a watcher that has taken that snapshot: from now
 * on every get finds nothing new. */
static int get_setup(struct get_ctx *ctx) {
        static const char payload[16] = "no change";
        ev_value_snapshot *s;
        int r;

        r = ev_value_new(&ctx->value);
        if (r < 0)
                return r;
        r = ev_value_set(ctx->value, payload, sizeof(payload));
        if (r >= 0)
                r = ev_value_watch(ctx->value, 0, &ctx->w);
        if (r >= 0)
                r = ev_watcher_get(ctx->w, &s);
        if (r < 0)
                return r;
        ev_snapshot_unref(s);
        ctx->empty_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return ctx->empty_fd < 0 ? -errno : 0;
}

static void get_teardown(struct get_ctx *ctx) {
        if (ctx->empty_fd >= 0)
                close(ctx->empty_fd);
        ev_watcher_close(ctx->w);
        ev_value_unref(ctx->value);
}

static void get_counted(void *userdata) {
        struct get_ctx *ctx = userdata;
        ev_value_snapshot *s;

        for (int i = 0; i < GET_COUNTED; i++)
                if (ev_watcher_get(ctx->w, &s) != -EAGAIN)
                        ctx->unexpected++;
}

/* Count the system calls of GET_COUNTED gets into note; -1 when there
 * were some (ev_watcher_get(3): a get that fails with -EAGAIN makes
 * no system call). */
static int get_count_syscalls(struct get_ctx *ctx, char *note, size_t size) {
        const char *why = syscall_trap_unsupported();
        size_t count = 0;
        int r;

        if (why) {
                snprintf(note, size, "syscalls not counted: %s", why);
                return 0;
        }
        r = syscall_trap_run(get_counted, ctx, NULL, 0, &count);
        if (r < 0) {
                snprintf(note, size, "syscalls not counted: seccomp: %s", strerror(-r));
                return 0;
        }
        snprintf(note, size, "%g syscalls/call (seccomp count over %d calls)%s",
                 (double)count / GET_COUNTED, GET_COUNTED, count ? " EXPECTED 0" : "");
        return count ? -1 : 0;
}

static void get_report(const char *baseline, struct bench_samples *mech,
                       struct bench_samples *base, double target, const char *note) {
        struct bench_row row = {
                .scenario = "get",
                .variant = "no change",
                .placement = "-",
                .mechanism = "ev_watcher_get -EAGAIN",
                .unit = "ns/op",
                .baseline = baseline,
                .target = target,
                .note = note,
        };

        bench_row_stats(&row, mech, base);
        bench_report(&row);
}

int bench_get(void) {
        struct get_ctx ctx = { .empty_fd = -1 };
        struct bench_samples get_a = { 0 }, atomic = { 0 }, get_r = { 0 }, rd = { 0 };
        size_t rounds = bench_count(200, 20);
        char note[128];
        int r, status;

        if (bench_pin_self(bench_opt.cpu_a) < 0)
                printf("# get: cannot pin to CPU %d; running unpinned\n", bench_opt.cpu_a);
        r = get_setup(&ctx);
        if (r < 0) {
                printf("# get: setup failed: %s\n", strerror(-r));
                get_teardown(&ctx);
                return -1;
        }
        measure_get(&ctx); /* warm the caches and bind the PLT entries */
        measure_atomic(&ctx);
        measure_read(&ctx);
        status = get_count_syscalls(&ctx, note, sizeof(note));

        bench_interleave(rounds, measure_get, &ctx, &get_a, measure_atomic, &ctx, &atomic);
        bench_interleave(rounds, measure_get, &ctx, &get_r, measure_read, &ctx, &rd);
        get_report("atomic_fetch_add", &get_a, &atomic, 3.0, note);
        get_report("read() of empty eventfd", &get_r, &rd, 0, note);
        if (ctx.unexpected) {
                printf("# get: %zu calls found something new or read an empty eventfd\n",
                       ctx.unexpected);
                status = -1;
        }

        bench_samples_free(&get_a);
        bench_samples_free(&atomic);
        bench_samples_free(&get_r);
        bench_samples_free(&rd);
        get_teardown(&ctx);
        return status;
}
