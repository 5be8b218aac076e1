/* SPDX-License-Identifier: MIT */
/*
 * Two design explorations for waking many sleeping consumers, measured on
 * raw eventfds so that the numbers decide the design rather than follow it.
 * K consumer threads (pinned to cpu_b, the producer to cpu_a) each sleep in
 * their own epoll on a private eventfd (level-triggered) and on one shared
 * eventfd (edge-triggered).  The producer's cost to wake all K is measured
 * three ways, round by round: a loop of K write()s (what a set does today,
 * the baseline), the same K writes submitted to io_uring with one
 * io_uring_enter (explore-uring: adopt if it wins by 1.5x or more), and one
 * write() to the shared eventfd (explore-shared: the opt-in shared-fd mode
 * for edge-triggered consumers).  Each round waits until every consumer
 * has woken and gone back to sleep, so every notification is a real wake.
 */
#include "config.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include "bench.h"

#define MAX_CONSUMERS 64

struct wake_rig {
        size_t k;
        int own_fd[MAX_CONSUMERS];
        int shared_fd;
        atomic_size_t wakes;
        atomic_bool stop;
        pthread_t threads[MAX_CONSUMERS];
#ifdef HAVE_LIBURING
        struct io_uring ring;
        bool have_ring;
#endif
};

struct consumer_arg {
        struct wake_rig *rig;
        size_t index;
};

static struct consumer_arg consumer_args[MAX_CONSUMERS];

static void *consumer_main(void *userdata) {
        struct consumer_arg *arg = userdata;
        struct wake_rig *rig = arg->rig;
        int ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN, .data.u32 = 1 };
        uint64_t counter;

        bench_pin_self(bench_opt.cpu_b);
        epoll_ctl(ep, EPOLL_CTL_ADD, rig->own_fd[arg->index], &ev);
        ev = (struct epoll_event){ .events = EPOLLIN | EPOLLET, .data.u32 = 0 };
        epoll_ctl(ep, EPOLL_CTL_ADD, rig->shared_fd, &ev);
        while (!atomic_load(&rig->stop)) {
                struct epoll_event got[2];
                int n = epoll_wait(ep, got, 2, 50);

                for (int i = 0; i < n; i++) {
                        if (got[i].data.u32 == 1 &&
                            read(rig->own_fd[arg->index], &counter, sizeof(counter)) < 0)
                                continue;
                        atomic_fetch_add(&rig->wakes, 1);
                }
        }
        close(ep);
        return NULL;
}

static int rig_start(struct wake_rig *rig, size_t k) {
        memset(rig, 0, sizeof(*rig));
        rig->k = k;
        rig->shared_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        for (size_t i = 0; i < k; i++)
                rig->own_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
#ifdef HAVE_LIBURING
        rig->have_ring = io_uring_queue_init(MAX_CONSUMERS, &rig->ring, 0) == 0;
#endif
        for (size_t i = 0; i < k; i++) {
                consumer_args[i] = (struct consumer_arg){ .rig = rig, .index = i };
                if (pthread_create(&rig->threads[i], NULL, consumer_main, &consumer_args[i]))
                        return -EAGAIN;
        }
        usleep(20000); /* let every consumer reach epoll_wait */
        return 0;
}

static void rig_stop(struct wake_rig *rig) {
        atomic_store(&rig->stop, true);
        for (size_t i = 0; i < rig->k; i++)
                pthread_join(rig->threads[i], NULL);
        for (size_t i = 0; i < rig->k; i++)
                close(rig->own_fd[i]);
        close(rig->shared_fd);
#ifdef HAVE_LIBURING
        if (rig->have_ring)
                io_uring_queue_exit(&rig->ring);
#endif
}

static const uint64_t one = 1;

static void notify_write_loop(struct wake_rig *rig) {
        for (size_t i = 0; i < rig->k; i++)
                if (write(rig->own_fd[i], &one, sizeof(one)) < 0)
                        continue;
}

static void notify_shared(struct wake_rig *rig) {
        if (write(rig->shared_fd, &one, sizeof(one)) < 0)
                return;
}

#ifdef HAVE_LIBURING
static void notify_uring(struct wake_rig *rig) {
        struct io_uring_cqe *cqe;
        unsigned head, seen = 0;

        for (size_t i = 0; i < rig->k; i++) {
                /* The ring has MAX_CONSUMERS entries, so there is always one. */
                struct io_uring_sqe *sqe = io_uring_get_sqe(&rig->ring);

                if (!sqe)
                        return;
                io_uring_prep_write(sqe, rig->own_fd[i], &one, sizeof(one), 0);
        }
        io_uring_submit_and_wait(&rig->ring, (unsigned)rig->k);
        io_uring_for_each_cqe(&rig->ring, head, cqe)
                seen++;
        io_uring_cq_advance(&rig->ring, seen);
}
#endif

/* Time one notification, then wait (bounded) for all K wakes and let the
 * consumers fall asleep again. */
static double time_notify(struct wake_rig *rig, void (*notify)(struct wake_rig *)) {
        size_t target = atomic_load(&rig->wakes) + rig->k;
        uint64_t start = bench_now_ns(), cost, deadline;
        const struct timespec settle = { .tv_nsec = 200000 };

        notify(rig);
        cost = bench_now_ns() - start;
        deadline = bench_now_ns() + 100000000;
        while (atomic_load(&rig->wakes) < target && bench_now_ns() < deadline)
                sched_yield();
        nanosleep(&settle, NULL);
        return (double)cost;
}

struct notify_ctx {
        struct wake_rig *rig;
        void (*notify)(struct wake_rig *);
};

static double measure_notify(void *userdata) {
        struct notify_ctx *ctx = userdata;

        return time_notify(ctx->rig, ctx->notify);
}

static void compare(const char *scenario, size_t k, const char *mechanism,
                    void (*notify)(struct wake_rig *), double target) {
        struct wake_rig *rig = malloc(sizeof(*rig));
        struct notify_ctx base = { rig, notify_write_loop }, alt = { rig, notify };
        struct bench_samples a = { 0 }, b = { 0 };
        char variant[32];

        if (!rig || rig_start(rig, k) < 0) {
                printf("# %s K=%zu: cannot start consumers\n", scenario, k);
                free(rig);
                return;
        }
        bench_pin_self(bench_opt.cpu_a);
        bench_interleave(bench_count(600, 40), measure_notify, &alt, &a, measure_notify, &base,
                         &b);
        rig_stop(rig);
        snprintf(variant, sizeof(variant), "K=%zu", k);
        bench_report(&(struct bench_row){
                .scenario = scenario, .variant = variant, .placement = "two CPUs",
                .mechanism = mechanism, .unit = "ns/wake-all",
                .median = bench_samples_quantile(&a, 0.5), .p99 = bench_samples_quantile(&a, 0.99),
                .baseline = "loop of K eventfd writes",
                .baseline_median = bench_samples_quantile(&b, 0.5),
                .baseline_p99 = bench_samples_quantile(&b, 0.99), .target = target,
                .note = "producer cost to wake K sleeping epoll consumers; target = adopt" });
        bench_samples_free(&a);
        bench_samples_free(&b);
        free(rig);
}

static const size_t explore_k[] = { 1, 4, 16, 64 };

int bench_explore_uring(void) {
#ifdef HAVE_LIBURING
        struct io_uring probe;

        if (io_uring_queue_init(4, &probe, 0) < 0) {
                printf("# explore-uring: the kernel refuses io_uring\n");
                return 77;
        }
        io_uring_queue_exit(&probe);
        for (size_t i = 0; i < sizeof(explore_k) / sizeof(explore_k[0]); i++)
                compare("explore-uring", explore_k[i], "K writes in one io_uring_enter",
                        notify_uring, 1 / 1.5);
        return 0;
#else
        printf("# explore-uring: built without liburing\n");
        return 77;
#endif
}

int bench_explore_shared(void) {
        for (size_t i = 0; i < sizeof(explore_k) / sizeof(explore_k[0]); i++)
                compare("explore-shared", explore_k[i], "one write to a shared ET fd",
                        notify_shared, 1 / 1.5);
        return 0;
}
