/* SPDX-License-Identifier: MIT */
/*
 * The shared frame of ev-value-bench: options, timing, thread placement,
 * sample statistics, and the one report function every scenario calls.
 * Each scenario measures a mechanism of libevvalue and, in the same run and
 * interleaved round by round, its baseline (raw eventfds, poll, an atomic
 * instruction), and reports both with their ratio: on a noisy VM absolute
 * times mean little, ratios measured side by side mean a lot.
 */
#ifndef EV_VALUE_BENCH_H
#define EV_VALUE_BENCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ev-value.h>

struct bench_options {
        bool quick;          /* --quick: the whole run in a few seconds */
        int cpu_a, cpu_b;    /* --cpus A,B: "two CPUs" pins to A and B, "one CPU" to A */
        const char *only;    /* --scenario NAME[,NAME...]: run just those */
        FILE *csv;           /* --csv FILE: one line per result row */
        int runs;            /* --runs N: repeat everything N times, then summarise */
        int run;             /* the current run, from 1 */
};

extern struct bench_options bench_opt;

/* Remember the CPUs the process may use, before any scenario pins the
 * main thread: "float" threads get all of them back.  Call first. */
void bench_init(void);

/* Scale a count down in --quick mode (never below 1). */
size_t bench_count(size_t full, size_t quick);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t bench_now_ns(void);

/* Pin the calling thread to one CPU; 0 or a negative errno. */
int bench_pin_self(int cpu);

/* A new epoll instance watching fd for events; the epoll fd or a negative
 * errno. */
int bench_epoll_new(int fd, uint32_t events);
/* Wait at most timeout_ms for fd to be readable (poll) or for an event of
 * epfd (epoll_wait): 0, -ETIMEDOUT, or a negative errno.  An interrupted
 * wait counts as a wake: the callers check and wait again. */
int bench_poll_fd(int fd, int timeout_ms);
int bench_epoll_wait(int epfd, int timeout_ms);

/* Copy the uint64_t a snapshot carries to *ret and release the snapshot;
 * 0, or -EPROTO when it holds something else. */
int bench_take_u64(ev_value_snapshot *s, uint64_t *ret);

/* Raise RLIMIT_NOFILE's soft limit to at least n; 0 or a negative errno. */
int bench_raise_nofile(size_t n);

/* Where the threads of a scenario run: pinned to cpu_a and cpu_b, all
 * pinned to cpu_a, or unpinned (the scheduler places and moves them). */
enum bench_placement { BENCH_TWO_CPUS, BENCH_ONE_CPU, BENCH_FLOAT };
const char *bench_placement_name(enum bench_placement p);
/* The CPU of thread 0 or 1 of a scenario under placement p, or
 * BENCH_ANY_CPU for a floating thread. */
#define BENCH_ANY_CPU (-1)
int bench_cpu(enum bench_placement p, int thread_index);
/* Where a producer (thread 0) and its consumers ran, for a row's note:
 * "producer cpu 0, consumers cpu 1", "all threads on cpu 0", "threads
 * float (no pinning)". */
void bench_placement_note(char *buf, size_t size, enum bench_placement p);

/* What the calling thread has done: read() and write() calls (syscr and
 * syscw of /proc/thread-self/io; 0 when it cannot be read, see ok) and
 * voluntary context switches (getrusage RUSAGE_THREAD ru_nvcsw), i.e.
 * sleeps. */
struct bench_thread_counts {
        bool ok;              /* the read and write counts are real */
        uint64_t reads, writes, sleeps;
};
void bench_thread_counts(struct bench_thread_counts *ret);
/* The counts since start, less the read() that took start itself. */
void bench_thread_counts_since(const struct bench_thread_counts *start,
                               struct bench_thread_counts *ret);

/* A growable set of samples (nanoseconds, or any unit). */
struct bench_samples {
        double *v;
        size_t n, cap;
};
void bench_samples_add(struct bench_samples *s, double x);
/* Make room for n samples ahead of a timed loop (best effort: adding
 * still grows the set when this failed). */
void bench_samples_reserve(struct bench_samples *s, size_t n);
double bench_samples_quantile(struct bench_samples *s, double q); /* sorts */
void bench_samples_free(struct bench_samples *s);

/* Run measure_a and measure_b alternately, rounds times each, adding one
 * sample per call to a and b.  Each call returns the cost of one batch
 * (e.g. ns per operation averaged over a batch). */
void bench_interleave(size_t rounds,
                      double (*measure_a)(void *ctx), void *ctx_a, struct bench_samples *a,
                      double (*measure_b)(void *ctx), void *ctx_b, struct bench_samples *b);

/* What a row's target bounds: the ratio of the medians (the default), the
 * ratio of the p99s, or the excess of the median over the baseline's, in
 * the row's unit ("at most one more sleep per 1000 sets"). */
enum bench_compare { BENCH_MEDIAN_RATIO, BENCH_P99_RATIO, BENCH_MEDIAN_EXCESS };

/* One result row.  The comparison printed is compare's (median ratio
 * unless said); target is the value it must stay at or below (0: no
 * target), and met says whether it did (a target needs a baseline).  note
 * is free text (syscall counts, fractions).  Every row with a baseline or
 * a target also feeds the final summary and the count of targets met. */
struct bench_row {
        const char *scenario;    /* "get", "set-idle", "ping-pong"... */
        const char *variant;     /* "N=100", "poll", "K=4"... */
        const char *placement;   /* "two CPUs", "one CPU", or "-" */
        const char *mechanism;   /* what was measured */
        const char *unit;        /* "ns/op", "ns", "bytes"... */
        double median, p99;
        const char *baseline;    /* baseline mechanism, or NULL */
        double baseline_median, baseline_p99;
        enum bench_compare compare;
        double target;           /* max of compare's value, 0 for none */
        const char *note;
};
void bench_report(const struct bench_row *row);
/* Fill row's median and p99 from mech, and its baseline's from base. */
void bench_row_stats(struct bench_row *row, struct bench_samples *mech,
                     struct bench_samples *base);
/* A row that says a mechanism failed instead of giving numbers: the note
 * reads "ERROR: failed: why". */
void bench_report_error(const char *scenario, const char *variant, const char *placement,
                        const char *mechanism, const char *failed, const char *why);
/* After the last run: per row, the median of its compared value over the
 * runs, its range, and in how many runs it met its target. */
void bench_summary_print(void);
/* After the last run, even a single one: how many rows with a target met
 * it and which missed it (with --runs, judged by the median over the
 * runs).  A miss is reported, never an error: on a noisy machine a target
 * is a question to look into, not a failed build. */
void bench_targets_print(void);

/* A scenario: name for --scenario, and the function that runs it. */
struct bench_scenario {
        const char *name;
        const char *summary;
        int (*run)(void);        /* 0, or 77 when skipped (say why), or -1 */
};

/* The scenarios, defined one per file. */
int bench_get(void);
int bench_set_idle(void);
int bench_set_armed(void);
int bench_ping_pong(void);
int bench_fan_out(void);
int bench_peers(void);
int bench_memory(void);
int bench_producer_under_load(void);
int bench_ipc(void);
/* scenario-etcd.c, built only when configure found libevvalue-etcd's
 * dependencies (HAVE_ETCD_BENCH); otherwise ev-value-bench.c lists a stub
 * that skips and says why. */
int bench_etcd(void);

/* Start fn(arg) on a new thread pinned to cpu, or floating over the CPUs
 * of bench_init for BENCH_ANY_CPU; 0 or a negative errno. */
int bench_thread_start(pthread_t *ret, int cpu, void *(*fn)(void *), void *arg);

/* The two-thread ping-pong harness of scenario-ping-pong.c, reused by
 * scenario-peers.c.  A mechanism carries a sequence number from side 0 (the
 * initiator) to side 1 (the echo) and back; recv waits at most timeout_ms
 * and returns 0, -ETIMEDOUT or a negative errno.  A lost message is an
 * error unless may_drop is set. */
struct bench_pp_ops {
        const char *name;
        bool may_drop;  /* may lose a message (ZMQ_CONFLATE): resend, count */
        int (*setup)(void **ret_ctx);
        void (*teardown)(void *ctx);
        int (*send)(void *ctx, int side, uint64_t seq);
        int (*recv)(void *ctx, int side, int timeout_ms, uint64_t *ret_seq);
};
extern const struct bench_pp_ops bench_pp_evv_poll;
/* Measure mech and base interleaved in placement p and report one row;
 * 0, or -1 after reporting an error row. */
int bench_pp_compare(const char *scenario, const char *variant, enum bench_placement p,
                     const struct bench_pp_ops *mech, const struct bench_pp_ops *base,
                     double target);

/* The one-producer, K-consumer harness of scenario-fan-out.c, reused by
 * scenario-peers.c.  The producer publishes update numbers 1, 2, 3... (0
 * while warming up); consumer i waits at most timeout_ms for the newest
 * one (0, -ETIMEDOUT, or a negative errno); stop wakes every consumer so
 * it notices the end promptly. */
struct bench_fo_ops {
        const char *name;
        const char *publish_name;    /* what the producer-cost row measures */
        int (*setup)(void **ret_ctx, int k);
        void (*teardown)(void *ctx);
        int (*publish)(void *ctx, uint64_t seq);
        void (*stop)(void *ctx);
        int (*consume)(void *ctx, int i, int timeout_ms, uint64_t *ret_seq);
};
extern const struct bench_fo_ops bench_fo_evv_epoll;
/* The same with EV_VALUE_WATCH_SHARED_FD, the fd in epoll edge-triggered. */
extern const struct bench_fo_ops bench_fo_evv_shared;
/* Alternate runs of mech and base with k consumers in placement p and
 * report the latency rows, per update seen and per update published (and,
 * with cost_row, the producer-cost row); 0, or -1 after reporting an
 * error row. */
int bench_fo_compare(const char *scenario, const char *variant, enum bench_placement p, int k,
                     const struct bench_fo_ops *mech, const struct bench_fo_ops *base,
                     double target, bool cost_row);

#endif
