/* SPDX-License-Identifier: MIT */
/*
 * Scenario "fan-out": one producer, K = 1, 4, 16 consumers, each consumer
 * on its own thread with its own epoll.  The producer publishes update 1,
 * 2, 3... every 50 us (busy-wait pacing, so a sleeping timer does not add
 * its own wake-up jitter) and notes when it published each.  Latency is
 * reported two ways: per update seen (a consumer's clock when it got an
 * update minus that update's publish time), and per update published (for
 * every update and every consumer, the time until that consumer first got
 * it or a newer one: what a reader of the value sees as staleness,
 * including the updates conflation skipped).  We also time the producer
 * inside each publish and count the fraction of the published updates
 * each consumer saw (min and mean over consumers).  Consumers use their
 * watcher's own eventfd, level-triggered, or all share the value's one
 * eventfd (EV_VALUE_WATCH_SHARED_FD), edge-triggered, draining with
 * ev_watcher_get after each edge.  Each is held to what a program would
 * write by hand with no library: the update in one shared atomic, and one
 * eventfd per consumer written on every update (consumers epoll_wait, read
 * their eventfd, load the update), or one shared eventfd written once per
 * update (consumers epoll edge-triggered, load the update).  The wake path
 * is the same, so the latency ratio is the library's own overhead, while
 * the producer-cost ratio shows what libevvalue saves by writing only to
 * consumers that consumed their last notification.  Mechanism and
 * baseline run alternately, three times each, samples pooled.  "float":
 * no thread is pinned, the scheduler spreads them over every CPU; "one
 * CPU": everything on cpu A, where consumers run only by preempting the
 * busy-waiting producer.  This file also holds the harness
 * (bench_fo_compare) that "peers" reuses.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
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

/* A consumer got update seq at time t. */
struct fo_seen {
        uint64_t seq, t;
};

struct fo_consumer {
        struct fo_run *run;
        int index;
        pthread_t thread;
        bool started;
        atomic_bool alive;     /* has received something: it is subscribed */
        struct fo_seen *seen;  /* the distinct updates it got, in order */
        size_t n_seen;
        int error;
};

struct fo_run {
        const struct bench_fo_ops *ops;
        void *ctx;
        int k;
        enum bench_placement placement;
        uint64_t duration_ns;
        atomic_bool stop;
        struct fo_consumer *consumer;
        uint64_t *published_at; /* [seq]: when update seq was published */
        size_t capacity;        /* updates a run can publish, plus one */
        struct bench_samples cost;
        uint64_t published;
        int error;
};

/* What one mechanism accumulates over its runs within a row. */
struct fo_pool {
        const struct bench_fo_ops *ops;
        struct bench_samples per_seen, per_published, cost;
        uint64_t *seen;         /* per consumer index */
        uint64_t published;
        uint64_t never_seen;    /* (update, consumer) pairs the run's end cut off */
        int error;
};

static void fo_consumer_record(struct fo_consumer *c, uint64_t seq, uint64_t now) {
        atomic_store_explicit(&c->alive, true, memory_order_relaxed);
        if (seq == 0 || (c->n_seen > 0 && seq == c->seen[c->n_seen - 1].seq))
                return; /* a warm-up message, or no update since the last one */
        if (c->n_seen < c->run->capacity)
                c->seen[c->n_seen++] = (struct fo_seen){ .seq = seq, .t = now };
}

static void *fo_consumer_main(void *arg) {
        struct fo_consumer *c = arg;
        struct fo_run *run = c->run;
        uint64_t seq;
        int r;

        while (!atomic_load(&run->stop)) {
                r = run->ops->consume(run->ctx, c->index, FO_TICK_MS, &seq);
                if (r == 0)
                        fo_consumer_record(c, seq, bench_now_ns());
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

/* Publish warm-up messages (update 0) until every consumer has one: a
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
 * overruns skips the slots it missed rather than bursting to catch up.
 * The publish time is noted before the publish, so consumers never read
 * it unwritten. */
static int fo_produce(struct fo_run *run) {
        uint64_t next = bench_now_ns(), end = next + run->duration_ns;

        while (run->published + 1 < run->capacity) {
                uint64_t t0 = bench_now_ns(), t1, seq = run->published + 1;
                int r;

                if (t0 >= end)
                        return 0;
                if (t0 < next)
                        continue;
                run->published_at[seq] = t0;
                r = run->ops->publish(run->ctx, seq);
                t1 = bench_now_ns();
                if (r < 0)
                        return r;
                bench_samples_add(&run->cost, (double)(t1 - t0));
                run->published = seq;
                while (next <= t1)
                        next += FO_PERIOD_NS;
        }
        return 0;
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
static int fo_run_threads(struct fo_run *run) {
        pthread_t producer;
        int r = 0;

        bench_samples_reserve(&run->cost, run->capacity);
        for (int i = 0; i < run->k && r == 0; i++) {
                struct fo_consumer *c = &run->consumer[i];

                c->run = run;
                c->index = i;
                c->seen = malloc(run->capacity * sizeof(*c->seen));
                r = c->seen ? bench_thread_start(&c->thread, bench_cpu(run->placement, 1),
                                                 fo_consumer_main, c)
                            : -ENOMEM;
                c->started = r == 0;
        }
        if (r == 0)
                r = bench_thread_start(&producer, bench_cpu(run->placement, 0), fo_producer_main,
                                       run);
        if (r == 0)
                pthread_join(producer, NULL);
        atomic_store(&run->stop, true);
        for (int i = 0; i < run->k; i++)
                if (run->consumer[i].started)
                        pthread_join(run->consumer[i].thread, NULL);
        return r;
}

/* Both latencies of one consumer: per update it saw, and per update
 * published (each update u before the one it saw, since the one it saw
 * before, is first covered when it saw that one). */
static void fo_pool_add_consumer(struct fo_pool *pool, const struct fo_run *run,
                                 const struct fo_consumer *c) {
        uint64_t covered = 0;

        for (size_t j = 0; j < c->n_seen; j++) {
                const struct fo_seen *seen = &c->seen[j];

                bench_samples_add(&pool->per_seen,
                                  (double)(seen->t - run->published_at[seen->seq]));
                for (uint64_t u = covered + 1; u <= seen->seq; u++)
                        bench_samples_add(&pool->per_published,
                                          (double)(seen->t - run->published_at[u]));
                covered = seen->seq > covered ? seen->seq : covered;
        }
        pool->never_seen += run->published - covered;
        pool->seen[c->index] += c->n_seen;
}

static void fo_pool_add(struct fo_pool *pool, struct fo_run *run) {
        for (size_t j = 0; j < run->cost.n; j++)
                bench_samples_add(&pool->cost, run->cost.v[j]);
        pool->published += run->published;
        for (int i = 0; i < run->k; i++) {
                fo_pool_add_consumer(pool, run, &run->consumer[i]);
                if (!pool->error)
                        pool->error = run->consumer[i].error;
        }
        if (!pool->error)
                pool->error = run->error;
}

static void fo_run_free(struct fo_run *run) {
        if (run->ctx)
                run->ops->teardown(run->ctx);
        for (int i = 0; run->consumer && i < run->k; i++)
                free(run->consumer[i].seen);
        bench_samples_free(&run->cost);
        free(run->consumer);
        free(run->published_at);
}

/* One run of one mechanism, its samples added to pool. */
static void fo_run_once(struct fo_pool *pool, int k, enum bench_placement p,
                        uint64_t duration_ns) {
        struct fo_run run = {
                .ops = pool->ops,
                .k = k,
                .placement = p,
                .duration_ns = duration_ns,
                .capacity = duration_ns / FO_PERIOD_NS + 16,
        };
        int r;

        run.consumer = calloc((size_t)k, sizeof(*run.consumer));
        run.published_at = calloc(run.capacity, sizeof(*run.published_at));
        r = run.consumer && run.published_at ? pool->ops->setup(&run.ctx, k) : -ENOMEM;
        if (r == 0)
                r = fo_run_threads(&run);
        if (r == 0)
                fo_pool_add(pool, &run);
        else
                pool->error = r;
        fo_run_free(&run);
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

struct fo_row {
        const char *scenario, *variant;
        enum bench_placement placement;
        int k;
        size_t repeats;
        uint64_t duration_ns;
};

/* A row of the fan-out: variant "K=4 seen"..., mechanism and baseline
 * named by the pools' ops (name, or publish_name for the cost row). */
static void fo_row_report(const struct fo_row *row, const char *suffix, const char *mechanism,
                          const char *baseline, const char *unit, struct bench_samples *m,
                          struct bench_samples *b, double target, const char *note) {
        char variant[48];
        struct bench_row out = {
                .scenario = row->scenario,
                .variant = variant,
                .placement = bench_placement_name(row->placement),
                .mechanism = mechanism,
                .unit = unit,
                .baseline = baseline,
                .target = target,
                .note = note,
        };

        snprintf(variant, sizeof(variant), "%s %s", row->variant, suffix);
        bench_row_stats(&out, m, b);
        bench_report(&out);
}

static void fo_report_latency(const struct fo_row *row, struct fo_pool pool[2],
                              double target) {
        double min[2], mean[2];
        char where[64], note[400];

        for (int i = 0; i < 2; i++)
                fo_seen(&pool[i], row->k, &min[i], &mean[i]);
        bench_placement_note(where, sizeof(where), row->placement);
        snprintf(note, sizeof(note),
                 "latency per update seen; fraction of the published updates seen min/mean "
                 "%.3f/%.3f vs %.3f/%.3f; %s; update every %u us, busy-wait pacing; "
                 "%zu x %llu ms runs each, alternated",
                 min[0], mean[0], min[1], mean[1], where, FO_PERIOD_NS / 1000, row->repeats,
                 (unsigned long long)(row->duration_ns / 1000000));
        fo_row_report(row, "seen", pool[0].ops->name, pool[1].ops->name, "ns",
                      &pool[0].per_seen, &pool[1].per_seen, target, note);
        snprintf(note, sizeof(note),
                 "latency per update published: until each consumer got it or a newer one; "
                 "%llu vs %llu (update, consumer) pairs, %llu vs %llu cut off by the run's end "
                 "(left out); %s",
                 (unsigned long long)pool[0].per_published.n,
                 (unsigned long long)pool[1].per_published.n,
                 (unsigned long long)pool[0].never_seen, (unsigned long long)pool[1].never_seen,
                 where);
        fo_row_report(row, "published", pool[0].ops->name, pool[1].ops->name, "ns",
                      &pool[0].per_published, &pool[1].per_published, target, note);
}

static void fo_report_cost(const struct fo_row *row, struct fo_pool pool[2]) {
        char note[160];

        snprintf(note, sizeof(note), "producer time per update; %llu vs %llu updates",
                 (unsigned long long)pool[0].published, (unsigned long long)pool[1].published);
        fo_row_report(row, "cost", pool[0].ops->publish_name, pool[1].ops->publish_name,
                      "ns/update", &pool[0].cost, &pool[1].cost, 0, note);
}

static void fo_report_error(const struct fo_row *row, struct fo_pool pool[2]) {
        const struct fo_pool *failed = &pool[pool[0].error ? 0 : 1];

        bench_report_error(row->scenario, row->variant, bench_placement_name(row->placement),
                           pool[0].ops->name, failed->ops->name,
                           failed->error == -ETIMEDOUT ? "a consumer never heard the producer"
                                                       : strerror(-failed->error));
}

static void fo_pool_free(struct fo_pool *pool) {
        bench_samples_free(&pool->per_seen);
        bench_samples_free(&pool->per_published);
        bench_samples_free(&pool->cost);
        free(pool->seen);
}

int bench_fo_compare(const char *scenario, const char *variant, enum bench_placement p, int k,
                     const struct bench_fo_ops *mech, const struct bench_fo_ops *base,
                     double target, bool cost_row) {
        struct fo_row row = {
                .scenario = scenario,
                .variant = variant,
                .placement = p,
                .k = k,
                .repeats = bench_count(3, 1),
                .duration_ns = bench_count(1000, 100) * UINT64_C(1000000),
        };
        struct fo_pool pool[2] = { { .ops = mech }, { .ops = base } };
        int failed;

        for (int i = 0; i < 2; i++) {
                pool[i].seen = calloc((size_t)k, sizeof(*pool[i].seen));
                if (!pool[i].seen)
                        pool[i].error = -ENOMEM;
        }
        for (size_t r = 0; r < row.repeats && !pool[0].error && !pool[1].error; r++)
                for (int j = 0; j < 2; j++) /* alternate who goes first */
                        fo_run_once(&pool[r % 2 ? 1 - j : j], k, p, row.duration_ns);
        failed = pool[0].error || pool[1].error;
        if (failed)
                fo_report_error(&row, pool);
        else {
                fo_report_latency(&row, pool, target);
                if (cost_row)
                        fo_report_cost(&row, pool);
        }
        for (int i = 0; i < 2; i++)
                fo_pool_free(&pool[i]);
        return failed ? -1 : 0;
}

/* ---- the mechanisms ---- */

/* libevvalue: k watchers of one value, each in its own epoll instance;
 * with EV_VALUE_WATCH_SHARED_FD they all return the value's one eventfd,
 * registered edge-triggered. */
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

static int fo_evv_setup_flags(void **ret_ctx, int k, unsigned flags) {
        struct fo_evv *e = calloc(1, sizeof(*e));
        uint32_t events = flags & EV_VALUE_WATCH_SHARED_FD ? EPOLLIN | EPOLLET : EPOLLIN;
        int r;

        if (!e)
                return -ENOMEM;
        e->watcher = calloc((size_t)k, sizeof(*e->watcher));
        e->epfd = malloc((size_t)k * sizeof(*e->epfd));
        r = e->watcher && e->epfd ? ev_value_new(&e->value) : -ENOMEM;
        for (int i = 0; i < k && r == 0; i++) {
                e->epfd[i] = -1;
                e->k = i + 1;
                r = ev_value_watch(e->value, flags, &e->watcher[i]);
                if (r == 0)
                        r = bench_epoll_new(ev_watcher_get_fd(e->watcher[i]), events);
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

static int fo_evv_setup(void **ret_ctx, int k) {
        return fo_evv_setup_flags(ret_ctx, k, 0);
}

static int fo_evv_setup_shared(void **ret_ctx, int k) {
        return fo_evv_setup_flags(ret_ctx, k, EV_VALUE_WATCH_SHARED_FD);
}

static int fo_evv_publish(void *ctx, uint64_t seq) {
        struct fo_evv *e = ctx;

        return ev_value_set(e->value, &seq, sizeof(seq));
}

static void fo_evv_stop(void *ctx) {
        struct fo_evv *e = ctx;

        ev_value_close(e->value);
}

/* Sleep in epoll, then get: the same order as the baseline's wait, read. */
static int fo_evv_consume(void *ctx, int i, int timeout_ms, uint64_t *ret_seq) {
        struct fo_evv *e = ctx;
        ev_value_snapshot *s;
        int r;

        for (;;) {
                r = bench_epoll_wait(e->epfd[i], timeout_ms);
                if (r < 0)
                        return r;
                r = ev_watcher_get(e->watcher[i], &s);
                if (r == 0)
                        return bench_take_u64(s, ret_seq);
                if (r != -EAGAIN)
                        return r;
        }
}

/* Edge-triggered: drain with gets until -EAGAIN, keeping the newest, and
 * sleep only when the drain found nothing (an edge that came before our
 * last get was consumed by it). */
static int fo_evv_consume_shared(void *ctx, int i, int timeout_ms, uint64_t *ret_seq) {
        struct fo_evv *e = ctx;
        ev_value_snapshot *s;
        bool got = false;
        int r;

        for (;;) {
                while ((r = ev_watcher_get(e->watcher[i], &s)) == 0) {
                        r = bench_take_u64(s, ret_seq);
                        if (r < 0)
                                return r;
                        got = true;
                }
                if (got || r != -EAGAIN)
                        return got ? 0 : r; /* -EPIPE comes at the next call */
                r = bench_epoll_wait(e->epfd[i], timeout_ms);
                if (r < 0)
                        return r;
        }
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

const struct bench_fo_ops bench_fo_evv_shared = {
        .name = "libevvalue SHARED_FD+epoll ET",
        .publish_name = "ev_value_set (shared fd)",
        .setup = fo_evv_setup_shared,
        .teardown = fo_evv_teardown,
        .publish = fo_evv_publish,
        .stop = fo_evv_stop,
        .consume = fo_evv_consume_shared,
};

/* The baselines: the update in one atomic; one eventfd per consumer
 * (level-triggered, read on each wake), or one eventfd for all (shared,
 * edge-triggered, never read; each consumer remembers the last update it
 * loaded).  Each consumer has its own epoll instance. */
struct fo_raw {
        _Atomic uint64_t seq;
        atomic_bool stopped;
        bool shared;
        int k, n_efd;
        int *efd, *epfd;
        uint64_t *last;        /* shared: per consumer */
};

static void fo_raw_teardown(void *ctx) {
        struct fo_raw *raw = ctx;

        for (int i = 0; i < raw->k; i++)
                if (raw->epfd[i] >= 0)
                        close(raw->epfd[i]);
        for (int i = 0; i < raw->n_efd; i++)
                close(raw->efd[i]);
        free(raw->efd);
        free(raw->epfd);
        free(raw->last);
        free(raw);
}

/* Consumer i's eventfd (made here) and epoll instance. */
static int fo_raw_add(struct fo_raw *raw, int i) {
        int r;

        raw->epfd[i] = -1;
        if (i == 0 || !raw->shared) {
                raw->efd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (raw->efd[i] < 0)
                        return -errno;
                raw->n_efd++;
        }
        raw->k = i + 1;
        r = raw->shared ? bench_epoll_new(raw->efd[0], EPOLLIN | EPOLLET)
                        : bench_epoll_new(raw->efd[i], EPOLLIN);
        if (r < 0)
                return r;
        raw->epfd[i] = r;
        return 0;
}

static int fo_raw_new(void **ret_ctx, int k, bool shared) {
        struct fo_raw *raw = calloc(1, sizeof(*raw));
        int r = 0;

        if (!raw)
                return -ENOMEM;
        raw->shared = shared;
        raw->efd = malloc((size_t)k * sizeof(*raw->efd));
        raw->epfd = malloc((size_t)k * sizeof(*raw->epfd));
        raw->last = malloc((size_t)k * sizeof(*raw->last));
        if (!raw->efd || !raw->epfd || !raw->last)
                r = -ENOMEM;
        for (int i = 0; i < k && r == 0; i++)
                raw->last[i] = UINT64_MAX; /* never published: update 0 counts as new */
        for (int i = 0; i < k && r == 0; i++)
                r = fo_raw_add(raw, i);
        if (r < 0) {
                fo_raw_teardown(raw);
                return r;
        }
        *ret_ctx = raw;
        return 0;
}

static int fo_raw_setup(void **ret_ctx, int k) {
        return fo_raw_new(ret_ctx, k, false);
}

static int fo_raw_setup_et(void **ret_ctx, int k) {
        return fo_raw_new(ret_ctx, k, true);
}

static int fo_raw_wake_all(struct fo_raw *raw) {
        uint64_t one = 1;
        int r = 0;

        for (int i = 0; i < raw->n_efd; i++)
                if (write(raw->efd[i], &one, sizeof(one)) < 0)
                        r = -errno;
        return r;
}

static int fo_raw_publish(void *ctx, uint64_t seq) {
        struct fo_raw *raw = ctx;

        atomic_store(&raw->seq, seq);
        return fo_raw_wake_all(raw);
}

static void fo_raw_stop(void *ctx) {
        struct fo_raw *raw = ctx;

        atomic_store(&raw->stopped, true);
        fo_raw_wake_all(raw);
}

static int fo_raw_consume(void *ctx, int i, int timeout_ms, uint64_t *ret_seq) {
        struct fo_raw *raw = ctx;
        uint64_t counter;
        int r;

        for (;;) {
                r = bench_epoll_wait(raw->epfd[i], timeout_ms);
                if (r < 0)
                        return r;
                if (read(raw->efd[i], &counter, sizeof(counter)) == sizeof(counter))
                        break;
                if (errno != EAGAIN && errno != EINTR)
                        return -errno;
        }
        if (atomic_load(&raw->stopped))
                return -EPIPE;
        *ret_seq = atomic_load(&raw->seq);
        return 0;
}

/* Edge-triggered: load first, sleep only when nothing changed since the
 * last load (a store after it comes with a write, hence an edge). */
static int fo_raw_consume_et(void *ctx, int i, int timeout_ms, uint64_t *ret_seq) {
        struct fo_raw *raw = ctx;
        int r;

        for (;;) {
                uint64_t seq = atomic_load(&raw->seq);

                if (atomic_load(&raw->stopped))
                        return -EPIPE;
                if (seq != raw->last[i]) {
                        raw->last[i] = seq;
                        *ret_seq = seq;
                        return 0;
                }
                r = bench_epoll_wait(raw->epfd[i], timeout_ms);
                if (r < 0)
                        return r;
        }
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

static const struct bench_fo_ops fo_raw_epoll_et = {
        .name = "raw shared eventfd+epoll ET",
        .publish_name = "store + write the one efd",
        .setup = fo_raw_setup_et,
        .teardown = fo_raw_teardown,
        .publish = fo_raw_publish,
        .stop = fo_raw_stop,
        .consume = fo_raw_consume_et,
};

/* ---- the scenario ---- */

int bench_fan_out(void) {
        static const int ks[] = { 1, 4, 16 };
        static const enum bench_placement placements[] = { BENCH_FLOAT, BENCH_ONE_CPU };
        static const struct {
                const struct bench_fo_ops *mech, *base;
        } pairs[] = {
                { &bench_fo_evv_epoll, &fo_raw_epoll },
                { &bench_fo_evv_shared, &fo_raw_epoll_et },
        };
        int failed = 0;

        if (bench_raise_nofile(256) < 0)
                fprintf(stderr, "fan-out: cannot raise RLIMIT_NOFILE; continuing\n");
        printf("# fan-out: the producer publishes update 1, 2, 3... every %u us, pacing by "
               "busy-waiting; latency = consumer's clock - the update's publish time\n",
               FO_PERIOD_NS / 1000);
        for (size_t p = 0; p < 2; p++)
                for (size_t m = 0; m < sizeof(pairs) / sizeof(pairs[0]); m++)
                        for (size_t i = 0; i < sizeof(ks) / sizeof(ks[0]); i++) {
                                char variant[16];

                                snprintf(variant, sizeof(variant), "K=%d", ks[i]);
                                if (bench_fo_compare("fan-out", variant, placements[p], ks[i],
                                                     pairs[m].mech, pairs[m].base, 1.15,
                                                     true) < 0)
                                        failed++;
                        }
        return failed ? -1 : 0;
}
