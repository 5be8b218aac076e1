/* SPDX-License-Identifier: MIT */
/*
 * Scenario "fan-out": one producer, K = 1, 4, 16 consumers, each consumer
 * on its own thread with its own epoll.  The producer stores a monotonic
 * timestamp every 50 us (busy-wait pacing, so a sleeping timer does not add
 * its own wake-up jitter); each consumer measures now minus the timestamp of
 * the update it got.  We also time the producer inside each publish and
 * count the fraction of updates each consumer saw.  The baseline is what a
 * program would write by hand with no library: the timestamp in one shared
 * atomic and one eventfd per consumer, every eventfd written on every
 * update; consumers epoll_wait, read their eventfd, load the timestamp.  It
 * has the same wake path as libevvalue (one eventfd write per woken
 * consumer, epoll, one read), so the latency ratio is the library's own
 * overhead, while the producer-cost ratio shows what libevvalue saves by
 * writing only to consumers that consumed their last notification.
 * Mechanism and baseline run alternately, three times each, samples pooled.
 * "two CPUs": the producer on cpu A, consumers spread over the other CPUs
 * (on a two-CPU machine all on cpu B); "one CPU": everything on cpu A, where
 * consumers run only by preempting the busy-waiting producer.  This file
 * also holds the harness (bench_fo_compare) that "peers" reuses.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <ev-value.h>

#include "bench.h"

#define FO_PERIOD_NS 50000u          /* one update every 50 us */
#define FO_TICK_MS 100               /* consumers recheck the stop flag this often */
#define FO_WARM_UP_NS 2000000000u    /* every consumer must hear the producer by then */

/* ---- the harness ---- */

struct fo_run;

struct fo_consumer {
        struct fo_run *run;
        int index;
        pthread_t thread;
        bool started;
        atomic_bool alive;     /* has received something: it is subscribed */
        uint64_t last, seen;   /* the last timestamp, distinct ones seen */
        int error;
        struct bench_samples latency;
};

struct fo_run {
        const struct bench_fo_ops *ops;
        void *ctx;
        int k;
        uint64_t duration_ns;
        atomic_bool stop;
        struct fo_consumer *consumer;
        struct bench_samples cost;
        uint64_t published;
        int error;
};

/* What one mechanism accumulates over its runs within a row. */
struct fo_pool {
        const struct bench_fo_ops *ops;
        struct bench_samples latency, cost;
        uint64_t *seen; /* per consumer index */
        uint64_t published;
        int error;
};

/* Where consumers run: the CPUs other than the producer's, round robin;
 * with --cpus A,B on a two-CPU machine that is B. */
struct fo_cpus {
        int n;
        int cpu[CPU_SETSIZE];
};

static void fo_cpus_init(struct fo_cpus *c, enum bench_placement p) {
        cpu_set_t set;

        c->n = 0;
        if (p == BENCH_ONE_CPU) {
                c->cpu[c->n++] = bench_opt.cpu_a;
                return;
        }
        if (sched_getaffinity(0, sizeof(set), &set) == 0)
                for (int i = 0; i < CPU_SETSIZE; i++)
                        if (CPU_ISSET(i, &set) && i != bench_opt.cpu_a)
                                c->cpu[c->n++] = i;
        if (c->n == 0)
                c->cpu[c->n++] = bench_opt.cpu_b;
}

static void fo_reserve(struct bench_samples *s, size_t n) {
        double *v = realloc(s->v, n * sizeof(*v));

        if (v) { /* growth stays possible: bench_samples_add reallocates */
                s->v = v;
                s->cap = n;
        }
}

static void fo_consumer_record(struct fo_consumer *c, uint64_t stamp, uint64_t now) {
        atomic_store_explicit(&c->alive, true, memory_order_relaxed);
        if (stamp == 0 || stamp == c->last)
                return; /* a warm-up message, or no update since the last one */
        c->last = stamp;
        c->seen++;
        bench_samples_add(&c->latency, (double)(now - stamp));
}

static void *fo_consumer_main(void *arg) {
        struct fo_consumer *c = arg;
        struct fo_run *run = c->run;
        uint64_t stamp;
        int r;

        while (!atomic_load(&run->stop)) {
                r = run->ops->consume(run->ctx, c->index, FO_TICK_MS, &stamp);
                if (r == 0)
                        fo_consumer_record(c, stamp, bench_now_ns());
                else if (r != -ETIMEDOUT) {
                        if (!atomic_load(&run->stop))
                                c->error = r;
                        break;
                }
        }
        return NULL;
}

static bool fo_all_alive(struct fo_run *run) {
        for (int i = 0; i < run->k; i++)
                if (!atomic_load(&run->consumer[i].alive))
                        return false;
        return true;
}

/* Publish warm-up messages (timestamp 0) until every consumer has one: a
 * ZeroMQ subscriber drops what precedes its subscription. */
static int fo_warm_up(struct fo_run *run) {
        uint64_t deadline = bench_now_ns() + FO_WARM_UP_NS;

        while (!fo_all_alive(run)) {
                int r = run->ops->publish(run->ctx, 0);

                if (r < 0)
                        return r;
                if (bench_now_ns() > deadline)
                        return -ETIMEDOUT;
                usleep(1000);
        }
        return 0;
}

/* The paced loop.  Busy-wait to the next 50 us slot; a publish that
 * overruns skips the slots it missed rather than bursting to catch up. */
static int fo_produce(struct fo_run *run) {
        uint64_t next = bench_now_ns(), end = next + run->duration_ns;

        for (;;) {
                uint64_t t0 = bench_now_ns(), t1;
                int r;

                if (t0 >= end)
                        return 0;
                if (t0 < next)
                        continue;
                r = run->ops->publish(run->ctx, t0);
                t1 = bench_now_ns();
                if (r < 0)
                        return r;
                bench_samples_add(&run->cost, (double)(t1 - t0));
                run->published++;
                while (next <= t1)
                        next += FO_PERIOD_NS;
        }
}

static void *fo_producer_main(void *arg) {
        struct fo_run *run = arg;

        run->error = fo_warm_up(run);
        if (run->error == 0)
                run->error = fo_produce(run);
        atomic_store(&run->stop, true);
        run->ops->stop(run->ctx);
        return NULL;
}

/* Start the consumers and the producer, wait for the end, join.  Consumers
 * wait at most FO_TICK_MS at a time, so a lost stop wake cannot hang. */
static int fo_run_threads(struct fo_run *run, const struct fo_cpus *cpus) {
        size_t expected = run->duration_ns / FO_PERIOD_NS + 16;
        pthread_t producer;
        int r = 0;

        fo_reserve(&run->cost, expected);
        for (int i = 0; i < run->k && r == 0; i++) {
                struct fo_consumer *c = &run->consumer[i];

                c->run = run;
                c->index = i;
                fo_reserve(&c->latency, expected);
                r = bench_thread_start(&c->thread, cpus->cpu[i % cpus->n], fo_consumer_main, c);
                c->started = r == 0;
        }
        if (r == 0)
                r = bench_thread_start(&producer, bench_opt.cpu_a, fo_producer_main, run);
        if (r == 0)
                pthread_join(producer, NULL);
        atomic_store(&run->stop, true);
        for (int i = 0; i < run->k; i++)
                if (run->consumer[i].started)
                        pthread_join(run->consumer[i].thread, NULL);
        return r;
}

static void fo_pool_add(struct fo_pool *pool, struct fo_run *run) {
        for (size_t j = 0; j < run->cost.n; j++)
                bench_samples_add(&pool->cost, run->cost.v[j]);
        pool->published += run->published;
        for (int i = 0; i < run->k; i++) {
                struct fo_consumer *c = &run->consumer[i];

                for (size_t j = 0; j < c->latency.n; j++)
                        bench_samples_add(&pool->latency, c->latency.v[j]);
                pool->seen[i] += c->seen;
                if (!pool->error)
                        pool->error = c->error;
        }
        if (!pool->error)
                pool->error = run->error;
}

/* One run of one mechanism, its samples added to pool. */
static void fo_run_once(struct fo_pool *pool, int k, uint64_t duration_ns,
                        const struct fo_cpus *cpus) {
        struct fo_run run = { .ops = pool->ops, .k = k, .duration_ns = duration_ns };
        int r;

        run.consumer = calloc((size_t)k, sizeof(*run.consumer));
        if (!run.consumer) {
                pool->error = -ENOMEM;
                return;
        }
        r = pool->ops->setup(&run.ctx, k);
        if (r == 0)
                r = fo_run_threads(&run, cpus);
        if (r == 0)
                fo_pool_add(pool, &run);
        else
                pool->error = r;
        if (run.ctx)
                pool->ops->teardown(run.ctx);
        for (int i = 0; i < k; i++)
                bench_samples_free(&run.consumer[i].latency);
        bench_samples_free(&run.cost);
        free(run.consumer);
}

static void fo_seen(const struct fo_pool *pool, int k, double *ret_min, double *ret_mean) {
        double min = INFINITY, sum = 0;

        for (int i = 0; i < k; i++) {
                double f = pool->published ? (double)pool->seen[i] / (double)pool->published : 0;

                min = f < min ? f : min;
                sum += f;
        }
        *ret_min = min;
        *ret_mean = sum / k;
}

static void fo_placement(char *buf, size_t size, enum bench_placement p,
                         const struct fo_cpus *cpus, char *where, size_t where_size) {
        if (p == BENCH_ONE_CPU || cpus->n == 1)
                snprintf(buf, size, "%s", bench_placement_name(p));
        else
                snprintf(buf, size, "%d CPUs", cpus->n + 1);
        if (cpus->n == 1)
                snprintf(where, where_size, "producer cpu %d, consumers cpu %d",
                         bench_opt.cpu_a, cpus->cpu[0]);
        else
                snprintf(where, where_size, "producer cpu %d, consumers over %d other CPUs",
                         bench_opt.cpu_a, cpus->n);
}

struct fo_row {
        const char *scenario, *variant;
        char placement[24], where[96];
        int k;
        size_t repeats;
        uint64_t duration_ns;
};

static void fo_report_latency(const struct fo_row *row, struct fo_pool pool[2],
                              double target) {
        double min[2], mean[2];
        char note[320];

        for (int i = 0; i < 2; i++)
                fo_seen(&pool[i], row->k, &min[i], &mean[i]);
        snprintf(note, sizeof(note),
                 "fraction seen min/mean %.3f/%.3f vs %.3f/%.3f; %s; "
                 "update every %u us, busy-wait pacing; %zu x %llu ms runs each, alternated",
                 min[0], mean[0], min[1], mean[1], row->where, FO_PERIOD_NS / 1000,
                 row->repeats, (unsigned long long)(row->duration_ns / 1000000));
        bench_report(&(struct bench_row){
                .scenario = row->scenario,
                .variant = row->variant,
                .placement = row->placement,
                .mechanism = pool[0].ops->name,
                .unit = "ns",
                .median = bench_samples_quantile(&pool[0].latency, 0.5),
                .p99 = bench_samples_quantile(&pool[0].latency, 0.99),
                .baseline = pool[1].ops->name,
                .baseline_median = bench_samples_quantile(&pool[1].latency, 0.5),
                .baseline_p99 = bench_samples_quantile(&pool[1].latency, 0.99),
                .target = target,
                .note = note,
        });
}

static void fo_report_cost(const struct fo_row *row, struct fo_pool pool[2]) {
        char variant[48], note[160];

        snprintf(variant, sizeof(variant), "%s cost", row->variant);
        snprintf(note, sizeof(note), "producer time per update; %llu vs %llu updates",
                 (unsigned long long)pool[0].published, (unsigned long long)pool[1].published);
        bench_report(&(struct bench_row){
                .scenario = row->scenario,
                .variant = variant,
                .placement = row->placement,
                .mechanism = pool[0].ops->publish_name,
                .unit = "ns/update",
                .median = bench_samples_quantile(&pool[0].cost, 0.5),
                .p99 = bench_samples_quantile(&pool[0].cost, 0.99),
                .baseline = pool[1].ops->publish_name,
                .baseline_median = bench_samples_quantile(&pool[1].cost, 0.5),
                .baseline_p99 = bench_samples_quantile(&pool[1].cost, 0.99),
                .note = note,
        });
}

static void fo_report_error(const struct fo_row *row, struct fo_pool pool[2]) {
        int i = pool[0].error ? 0 : 1;
        char note[160];

        snprintf(note, sizeof(note), "ERROR: %s: %s", pool[i].ops->name,
                 pool[i].error == -ETIMEDOUT ? "a consumer never heard the producer"
                                             : strerror(-pool[i].error));
        bench_report(&(struct bench_row){
                .scenario = row->scenario,
                .variant = row->variant,
                .placement = row->placement,
                .mechanism = pool[0].ops->name,
                .unit = "ns",
                .median = NAN,
                .p99 = NAN,
                .note = note,
        });
}

int bench_fo_compare(const char *scenario, const char *variant, enum bench_placement p, int k,
                     const struct bench_fo_ops *mech, const struct bench_fo_ops *base,
                     double target, bool cost_row) {
        struct fo_row row = {
                .scenario = scenario,
                .variant = variant,
                .k = k,
                .repeats = bench_count(3, 1),
                .duration_ns = bench_count(1000, 100) * UINT64_C(1000000),
        };
        struct fo_pool pool[2] = { { .ops = mech }, { .ops = base } };
        struct fo_cpus cpus;
        int failed;

        fo_cpus_init(&cpus, p);
        fo_placement(row.placement, sizeof(row.placement), p, &cpus, row.where,
                     sizeof(row.where));
        for (int i = 0; i < 2; i++) {
                pool[i].seen = calloc((size_t)k, sizeof(*pool[i].seen));
                if (!pool[i].seen)
                        pool[i].error = -ENOMEM;
        }
        for (size_t r = 0; r < row.repeats && !pool[0].error && !pool[1].error; r++)
                for (int j = 0; j < 2; j++) /* alternate who goes first */
                        fo_run_once(&pool[r % 2 ? 1 - j : j], k, row.duration_ns, &cpus);
        failed = pool[0].error || pool[1].error;
        if (failed)
                fo_report_error(&row, pool);
        else {
                fo_report_latency(&row, pool, target);
                if (cost_row)
                        fo_report_cost(&row, pool);
        }
        for (int i = 0; i < 2; i++) {
                bench_samples_free(&pool[i].latency);
                bench_samples_free(&pool[i].cost);
                free(pool[i].seen);
        }
        return failed ? -1 : 0;
}

/* ---- the mechanisms ---- */

/* Wait in epfd: 0 when something is ready, -ETIMEDOUT, or a negative errno;
 * an interrupted wait counts as a wake (the callers check again). */
static int fo_epoll_wait(int epfd, int timeout_ms) {
        struct epoll_event ev;
        int n = epoll_wait(epfd, &ev, 1, timeout_ms);

        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

/* An epoll instance per consumer, watching one fd. */
static int fo_epoll_new(int fd) {
        struct epoll_event ev = { .events = EPOLLIN };
        int epfd = epoll_create1(EPOLL_CLOEXEC);

        if (epfd < 0)
                return -errno;
        if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                int r = -errno;

                close(epfd);
                return r;
        }
        return epfd;
}

struct fo_evv {
        ev_value *value;
        int k;
        ev_value_watcher **watcher;
        int *epfd;
};

static void fo_evv_teardown(void *ctx) {
        struct fo_evv *e = ctx;

        for (int i = 0; i < e->k; i++) {
                if (e->epfd[i] >= 0)
                        close(e->epfd[i]);
                ev_watcher_close(e->watcher[i]);
        }
        ev_value_unref(e->value);
        free(e->watcher);
        free(e->epfd);
        free(e);
}

static int fo_evv_setup(void **ret_ctx, int k) {
        struct fo_evv *e = calloc(1, sizeof(*e));
        int r;

        if (!e)
                return -ENOMEM;
        e->watcher = calloc((size_t)k, sizeof(*e->watcher));
        e->epfd = malloc((size_t)k * sizeof(*e->epfd));
        r = e->watcher && e->epfd ? ev_value_new(&e->value) : -ENOMEM;
        for (int i = 0; i < k && r == 0; i++) {
                e->epfd[i] = -1;
                e->k = i + 1;
                r = ev_value_watch(e->value, 0, &e->watcher[i]);
                if (r == 0)
                        r = fo_epoll_new(ev_watcher_get_fd(e->watcher[i]));
                if (r >= 0) {
                        e->epfd[i] = r;
                        r = 0;
                }
        }
        if (r < 0) {
                fo_evv_teardown(e);
                return r;
        }
        *ret_ctx = e;
        return 0;
}

static int fo_evv_publish(void *ctx, uint64_t stamp) {
        struct fo_evv *e = ctx;

        return ev_value_set(e->value, &stamp, sizeof(stamp));
}

static void fo_evv_stop(void *ctx) {
        struct fo_evv *e = ctx;

        ev_value_close(e->value);
}

/* Sleep in epoll, then get: the same order as the baseline's wait, read. */
static int fo_evv_consume(void *ctx, int i, int timeout_ms, uint64_t *ret_stamp) {
        struct fo_evv *e = ctx;
        ev_value_snapshot *s;
        int r;

        for (;;) {
                r = fo_epoll_wait(e->epfd[i], timeout_ms);
                if (r < 0)
                        return r;
                r = ev_watcher_get(e->watcher[i], &s);
                if (r == 0)
                        break;
                if (r != -EAGAIN)
                        return r;
        }
        if (ev_snapshot_size(s) == sizeof(*ret_stamp))
                memcpy(ret_stamp, ev_snapshot_data(s), sizeof(*ret_stamp));
        else
                r = -EPROTO;
        ev_snapshot_unref(s);
        return r;
}

const struct bench_fo_ops bench_fo_evv_epoll = {
        .name = "libevvalue+epoll",
        .publish_name = "ev_value_set",
        .setup = fo_evv_setup,
        .teardown = fo_evv_teardown,
        .publish = fo_evv_publish,
        .stop = fo_evv_stop,
        .consume = fo_evv_consume,
};

/* The baseline: one shared timestamp, one eventfd (and epoll) per consumer. */
struct fo_raw {
        _Atomic uint64_t stamp;
        atomic_bool stopped;
        int k;
        int *efd, *epfd;
};

static void fo_raw_teardown(void *ctx) {
        struct fo_raw *raw = ctx;

        for (int i = 0; i < raw->k; i++) {
                if (raw->epfd[i] >= 0)
                        close(raw->epfd[i]);
                if (raw->efd[i] >= 0)
                        close(raw->efd[i]);
        }
        free(raw->efd);
        free(raw->epfd);
        free(raw);
}

static int fo_raw_setup(void **ret_ctx, int k) {
        struct fo_raw *raw = calloc(1, sizeof(*raw));
        int r = 0;

        if (!raw)
                return -ENOMEM;
        raw->efd = malloc((size_t)k * sizeof(*raw->efd));
        raw->epfd = malloc((size_t)k * sizeof(*raw->epfd));
        if (!raw->efd || !raw->epfd)
                r = -ENOMEM;
        for (int i = 0; i < k && r == 0; i++) {
                raw->k = i + 1;
                raw->epfd[i] = -1;
                raw->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                r = raw->efd[i] < 0 ? -errno : fo_epoll_new(raw->efd[i]);
                if (r >= 0) {
                        raw->epfd[i] = r;
                        r = 0;
                }
        }
        if (r < 0) {
                fo_raw_teardown(raw);
                return r;
        }
        *ret_ctx = raw;
        return 0;
}

static int fo_raw_wake_all(struct fo_raw *raw) {
        uint64_t one = 1;
        int r = 0;

        for (int i = 0; i < raw->k; i++)
                if (write(raw->efd[i], &one, sizeof(one)) < 0)
                        r = -errno;
        return r;
}

static int fo_raw_publish(void *ctx, uint64_t stamp) {
        struct fo_raw *raw = ctx;

        atomic_store(&raw->stamp, stamp);
        return fo_raw_wake_all(raw);
}

static void fo_raw_stop(void *ctx) {
        struct fo_raw *raw = ctx;

        atomic_store(&raw->stopped, true);
        fo_raw_wake_all(raw);
}

static int fo_raw_consume(void *ctx, int i, int timeout_ms, uint64_t *ret_stamp) {
        struct fo_raw *raw = ctx;
        uint64_t counter;
        int r;

        for (;;) {
                r = fo_epoll_wait(raw->epfd[i], timeout_ms);
                if (r < 0)
                        return r;
                if (read(raw->efd[i], &counter, sizeof(counter)) == sizeof(counter))
                        break;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
        if (atomic_load(&raw->stopped))
                return -EPIPE;
        *ret_stamp = atomic_load(&raw->stamp);
        return 0;
}

static const struct bench_fo_ops fo_raw_epoll = {
        .name = "raw eventfds + epoll",
        .publish_name = "store + write every efd",
        .setup = fo_raw_setup,
        .teardown = fo_raw_teardown,
        .publish = fo_raw_publish,
        .stop = fo_raw_stop,
        .consume = fo_raw_consume,
};

/* ---- the scenario ---- */

int bench_fan_out(void) {
        static const int ks[] = { 1, 4, 16 };
        static const enum bench_placement placements[] = { BENCH_TWO_CPUS, BENCH_ONE_CPU };
        int failed = 0;

        if (bench_raise_nofile(256) < 0)
                fprintf(stderr, "fan-out: cannot raise RLIMIT_NOFILE; continuing\n");
        printf("# fan-out: the producer publishes a monotonic timestamp every %u us, "
               "pacing by busy-waiting; latency = consumer's clock - that timestamp\n",
               FO_PERIOD_NS / 1000);
        for (size_t p = 0; p < 2; p++)
                for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
                        char variant[16];

                        snprintf(variant, sizeof(variant), "K=%d", ks[i]);
                        if (bench_fo_compare("fan-out", variant, placements[p], ks[i],
                                             &bench_fo_evv_epoll, &fo_raw_epoll, 1.15,
                                             true) < 0)
                                failed++;
                }
        return failed ? -1 : 0;
}
