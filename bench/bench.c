/* SPDX-License-Identifier: MIT */
/*
 * The helpers of bench.h: time, placement, per-thread counters, limits,
 * statistics, the interleaving of a mechanism with its baseline, and the
 * report (a readable table on stdout and, with --csv, one CSV line per
 * row), with the summary over repeated runs and the check of the targets.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

struct bench_options bench_opt = { .cpu_a = 0, .cpu_b = 1, .runs = 1, .run = 1 };

/* The CPUs the process started with: where floating threads may run. */
static cpu_set_t float_cpus;

void bench_init(void) {
        if (sched_getaffinity(0, sizeof(float_cpus), &float_cpus) == 0)
                return;
        CPU_ZERO(&float_cpus);
        for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; i++)
                CPU_SET(i, &float_cpus);
}

size_t bench_count(size_t full, size_t quick) {
        size_t n = bench_opt.quick ? quick : full;

        return n ? n : 1;
}

uint64_t bench_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int bench_pin_self(int cpu) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return -pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

int bench_epoll_new(int fd, uint32_t events) {
        struct epoll_event ev = { .events = events };
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

int bench_take_u64(ev_value_snapshot *s, uint64_t *ret) {
        int r = 0;

        if (ev_snapshot_size(s) == sizeof(*ret))
                memcpy(ret, ev_snapshot_data(s), sizeof(*ret));
        else
                r = -EPROTO;
        ev_snapshot_unref(s);
        return r;
}

int bench_poll_fd(int fd, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, timeout_ms);

        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

int bench_epoll_wait(int epfd, int timeout_ms) {
        struct epoll_event ev;
        int n = epoll_wait(epfd, &ev, 1, timeout_ms);

        if (n < 0)
                return errno == EINTR ? 0 : -errno;
        return n == 0 ? -ETIMEDOUT : 0;
}

int bench_raise_nofile(size_t n) {
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        if (rl.rlim_cur >= n)
                return 0;
        if (rl.rlim_max < n) {
                rl.rlim_max = n; /* works as root; otherwise fails below */
        }
        rl.rlim_cur = n;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
                return -errno;
        return 0;
}

const char *bench_placement_name(enum bench_placement p) {
        return p == BENCH_TWO_CPUS ? "two CPUs" : p == BENCH_ONE_CPU ? "one CPU" : "float";
}

int bench_cpu(enum bench_placement p, int thread_index) {
        if (p == BENCH_FLOAT)
                return BENCH_ANY_CPU;
        return (p == BENCH_TWO_CPUS && thread_index == 1) ? bench_opt.cpu_b : bench_opt.cpu_a;
}

void bench_placement_note(char *buf, size_t size, enum bench_placement p) {
        if (p == BENCH_FLOAT)
                snprintf(buf, size, "threads float (no pinning)");
        else if (p == BENCH_ONE_CPU)
                snprintf(buf, size, "all threads on cpu %d", bench_opt.cpu_a);
        else
                snprintf(buf, size, "producer cpu %d, consumers cpu %d", bench_opt.cpu_a,
                         bench_opt.cpu_b);
}

/* syscr and syscw from /proc/thread-self/io, in one read() (the file is a
 * few lines), so that each reading costs exactly one counted read. */
static bool read_io_counts(uint64_t *ret_reads, uint64_t *ret_writes) {
        char buf[512];
        const char *r, *w;
        ssize_t n;
        int fd = open("/proc/thread-self/io", O_RDONLY | O_CLOEXEC);

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        r = strstr(buf, "syscr:");
        w = strstr(buf, "syscw:");
        if (!r || !w)
                return false;
        *ret_reads = strtoull(r + 6, NULL, 10);
        *ret_writes = strtoull(w + 6, NULL, 10);
        return true;
}

void bench_thread_counts(struct bench_thread_counts *ret) {
        struct rusage ru;

        *ret = (struct bench_thread_counts){ 0 };
        ret->ok = read_io_counts(&ret->reads, &ret->writes);
        if (getrusage(RUSAGE_THREAD, &ru) == 0)
                ret->sleeps = (uint64_t)ru.ru_nvcsw;
}

void bench_thread_counts_since(const struct bench_thread_counts *start,
                               struct bench_thread_counts *ret) {
        struct bench_thread_counts now;

        bench_thread_counts(&now);
        /* The kernel counts a read() after it returns: start's own read
         * shows in now, now's does not. */
        *ret = (struct bench_thread_counts){
                .ok = start->ok && now.ok && now.reads > start->reads,
                .reads = now.reads - start->reads - 1,
                .writes = now.writes - start->writes,
                .sleeps = now.sleeps - start->sleeps,
        };
        if (!ret->ok)
                ret->reads = ret->writes = 0;
}

void bench_samples_add(struct bench_samples *s, double x) {
        if (s->n == s->cap) {
                size_t cap = s->cap ? 2 * s->cap : 256;
                double *v = realloc(s->v, cap * sizeof(*v));

                if (!v)
                        return; /* the sample is dropped; statistics use the rest */
                s->v = v;
                s->cap = cap;
        }
        s->v[s->n++] = x;
}

void bench_samples_reserve(struct bench_samples *s, size_t n) {
        double *v;

        if (n <= s->cap)
                return;
        v = realloc(s->v, n * sizeof(*v));
        if (v) {
                s->v = v;
                s->cap = n;
        }
}

static int compare_double(const void *a, const void *b) {
        double x = *(const double *)a, y = *(const double *)b;

        return (x > y) - (x < y);
}

double bench_samples_quantile(struct bench_samples *s, double q) {
        size_t i;

        if (s->n == 0)
                return NAN;
        qsort(s->v, s->n, sizeof(*s->v), compare_double);
        i = (size_t)ceil(q * (double)s->n);
        if (i > 0)
                i--;
        if (i >= s->n)
                i = s->n - 1;
        return s->v[i];
}

void bench_samples_free(struct bench_samples *s) {
        free(s->v);
        *s = (struct bench_samples){ 0 };
}

void bench_interleave(size_t rounds,
                      double (*measure_a)(void *ctx), void *ctx_a, struct bench_samples *a,
                      double (*measure_b)(void *ctx), void *ctx_b, struct bench_samples *b) {
        for (size_t r = 0; r < rounds; r++) {
                /* Alternate which goes first so neither always runs warm. */
                if (r % 2 == 0) {
                        bench_samples_add(a, measure_a(ctx_a));
                        bench_samples_add(b, measure_b(ctx_b));
                } else {
                        bench_samples_add(b, measure_b(ctx_b));
                        bench_samples_add(a, measure_a(ctx_a));
                }
        }
}

static void print_header(void) {
        static bool printed;

        if (printed)
                return;
        printed = true;
        printf("%-19s %-14s %-9s %-30s %10s %10s  %-26s %10s %9s %9s  %s\n", "scenario",
               "variant", "placement", "mechanism", "median", "p99", "baseline", "median",
               "ratio", "target", "note");
        if (bench_opt.csv)
                fprintf(bench_opt.csv, "scenario,variant,placement,mechanism,unit,median,p99,"
                                       "baseline,baseline_median,baseline_p99,ratio,target,"
                                       "met,note,compared,run\n");
}

/* The value a row's target bounds, and how to print it and its target. */
static double compared_value(const struct bench_row *row) {
        switch (row->compare) {
        case BENCH_P99_RATIO:
                return row->p99 / row->baseline_p99;
        case BENCH_MEDIAN_EXCESS:
                return row->median - row->baseline_median;
        default:
                return row->median / row->baseline_median;
        }
}

static const char *const compare_names[] = {
        [BENCH_MEDIAN_RATIO] = "median ratio",
        [BENCH_P99_RATIO] = "p99 ratio",
        [BENCH_MEDIAN_EXCESS] = "median excess",
};

static void format_compared(char *buf, size_t size, enum bench_compare c, double x) {
        if (c == BENCH_MEDIAN_EXCESS)
                snprintf(buf, size, "%+.3g", x);
        else
                snprintf(buf, size, x < 0.01 ? "%s%.2e" : "%s%.3f",
                         c == BENCH_P99_RATIO ? "p99:" : "", x);
}

static void format_target(char *buf, size_t size, enum bench_compare c, double target) {
        if (c == BENCH_MEDIAN_EXCESS)
                snprintf(buf, size, "<=base+%g", target);
        else /* a target like 0.001 ("1000x cheaper") needs more digits */
                snprintf(buf, size, target < 0.01 ? "%s<=%.3g" : "%s<=%.2f",
                         c == BENCH_P99_RATIO ? "p99" : "", target);
}

static void summary_add(const struct bench_row *row, double value, const char *met);

void bench_row_stats(struct bench_row *row, struct bench_samples *mech,
                     struct bench_samples *base) {
        row->median = bench_samples_quantile(mech, 0.5);
        row->p99 = bench_samples_quantile(mech, 0.99);
        row->baseline_median = bench_samples_quantile(base, 0.5);
        row->baseline_p99 = bench_samples_quantile(base, 0.99);
}

void bench_report_error(const char *scenario, const char *variant, const char *placement,
                        const char *mechanism, const char *failed, const char *why) {
        char note[200];

        snprintf(note, sizeof(note), "ERROR: %s: %s", failed, why);
        bench_report(&(struct bench_row){
                .scenario = scenario,
                .variant = variant,
                .placement = placement,
                .mechanism = mechanism,
                .unit = "-",
                .median = NAN,
                .p99 = NAN,
                .note = note,
        });
}

void bench_report(const struct bench_row *row) {
        double value = row->baseline ? compared_value(row) : NAN;
        const char *met = "";
        char target[24] = "-", value_text[24];

        print_header();
        if (row->target > 0) {
                /* A target without a baseline cannot be checked: missed. */
                met = row->baseline && value <= row->target ? "met" : "MISSED";
                format_target(target, sizeof(target), row->compare, row->target);
        }
        format_compared(value_text, sizeof(value_text), row->compare, value);
        printf("%-19s %-14s %-9s %-30s %10.1f %10.1f  %-26s %10.1f %9s %9s  %s%s%s%s %s\n",
               row->scenario, row->variant, row->placement, row->mechanism, row->median,
               row->p99, row->baseline ? row->baseline : "-",
               row->baseline ? row->baseline_median : NAN, value_text, target, met,
               *met ? " " : "", row->unit, row->note ? "," : "", row->note ? row->note : "");
        if (bench_opt.csv)
                fprintf(bench_opt.csv,
                        "%s,%s,%s,%s,%s,%.3f,%.3f,%s,%.3f,%.3f,%.6g,%.6g,%s,\"%s\",%s,%d\n",
                        row->scenario, row->variant, row->placement, row->mechanism, row->unit,
                        row->median, row->p99, row->baseline ? row->baseline : "",
                        row->baseline ? row->baseline_median : NAN,
                        row->baseline ? row->baseline_p99 : NAN, value, row->target, met,
                        row->note ? row->note : "", compare_names[row->compare], bench_opt.run);
        fflush(stdout);
        if (row->baseline || row->target > 0)
                summary_add(row, value, met);
}

/* ---- the summary over --runs, and the targets ---- */

/* One row of the table, identified by everything but its numbers; a row
 * reported again in a later run adds to the same entry. */
struct summary_entry {
        char *scenario, *variant, *placement, *mechanism, *baseline;
        enum bench_compare compare;
        double target;
        size_t met;
        struct bench_samples values;
};

static struct summary_entry *summary;
static size_t summary_n, summary_cap;
/* Reports that could not be kept (out of memory): the counts say so. */
static size_t summary_lost;

static const char *row_baseline(const struct bench_row *row) {
        return row->baseline ? row->baseline : "-";
}

static bool summary_same(const struct summary_entry *e, const struct bench_row *row) {
        return strcmp(e->scenario, row->scenario) == 0 && strcmp(e->variant, row->variant) == 0 &&
               strcmp(e->placement, row->placement) == 0 &&
               strcmp(e->mechanism, row->mechanism) == 0 &&
               strcmp(e->baseline, row_baseline(row)) == 0 && e->compare == row->compare;
}

static struct summary_entry *summary_find(const struct bench_row *row) {
        struct summary_entry *e;

        for (size_t i = 0; i < summary_n; i++)
                if (summary_same(&summary[i], row))
                        return &summary[i];
        if (summary_n == summary_cap) {
                size_t cap = summary_cap ? 2 * summary_cap : 64;

                e = realloc(summary, cap * sizeof(*e));
                if (!e)
                        return NULL;
                summary = e;
                summary_cap = cap;
        }
        e = &summary[summary_n];
        *e = (struct summary_entry){
                .scenario = strdup(row->scenario), .variant = strdup(row->variant),
                .placement = strdup(row->placement), .mechanism = strdup(row->mechanism),
                .baseline = strdup(row_baseline(row)), .compare = row->compare,
                .target = row->target,
        };
        if (!e->scenario || !e->variant || !e->placement || !e->mechanism || !e->baseline)
                return NULL; /* the row is left out of the summary; the strings leak */
        summary_n++;
        return e;
}

static void summary_add(const struct bench_row *row, double value, const char *met) {
        struct summary_entry *e = summary_find(row);
        size_t n;

        if (!e) {
                summary_lost++;
                return;
        }
        n = e->values.n;
        bench_samples_add(&e->values, value);
        if (e->values.n == n) {
                summary_lost++;
                return;
        }
        if (strcmp(met, "met") == 0)
                e->met++;
}

/* The verdict on an entry's target: its value, or with --runs the median
 * of its values over the runs, at or below the target. */
static bool summary_met(struct summary_entry *e) {
        return bench_samples_quantile(&e->values, 0.5) <= e->target;
}

static void summary_print_entry(struct summary_entry *e) {
        char median[24], min[24], max[24], target[24] = "-", met[48] = "-";
        size_t n = e->values.n;

        format_compared(median, sizeof(median), e->compare,
                        bench_samples_quantile(&e->values, 0.5));
        format_compared(min, sizeof(min), e->compare, e->values.v[0]); /* sorted now */
        format_compared(max, sizeof(max), e->compare, e->values.v[n - 1]);
        if (e->target > 0) {
                format_target(target, sizeof(target), e->compare, e->target);
                snprintf(met, sizeof(met), "met %zu/%zu", e->met, n);
        }
        printf("%-19s %-14s %-9s %-30s %-26s %10s %10s %10s %10s  %s\n", e->scenario,
               e->variant, e->placement, e->mechanism, e->baseline, median, min, max, target,
               met);
}

void bench_summary_print(void) {
        printf("\n## summary of %d runs: per row, the compared value (ratio to the baseline, "
               "or excess over it) as median [min, max] over the runs\n",
               bench_opt.runs);
        printf("%-19s %-14s %-9s %-30s %-26s %10s %10s %10s %10s  %s\n", "scenario", "variant",
               "placement", "mechanism", "baseline", "median", "min", "max", "target",
               "met in runs");
        for (size_t i = 0; i < summary_n; i++)
                if (summary[i].values.n > 0)
                        summary_print_entry(&summary[i]);
        fflush(stdout);
}

void bench_targets_print(void) {
        size_t met = 0, missed = 0;

        for (size_t i = 0; i < summary_n; i++)
                if (summary[i].target > 0 && summary[i].values.n > 0)
                        summary_met(&summary[i]) ? met++ : missed++;
        printf("\ntargets: %zu met, %zu missed%s", met, missed, missed ? ":" : "");
        for (size_t i = 0; i < summary_n; i++) {
                struct summary_entry *e = &summary[i];
                char value[24], target[24];

                if (e->target <= 0 || e->values.n == 0 || summary_met(e))
                        continue;
                format_compared(value, sizeof(value), e->compare,
                                bench_samples_quantile(&e->values, 0.5));
                format_target(target, sizeof(target), e->compare, e->target);
                printf("\n  %s %s%s%s, %s vs %s: %s, target %s", e->scenario, e->variant,
                       strcmp(e->placement, "-") ? ", " : "",
                       strcmp(e->placement, "-") ? e->placement : "", e->mechanism, e->baseline,
                       value, target);
        }
        printf("\n");
        if (bench_opt.runs > 1)
                printf("(with --runs, a row's verdict is its median over the %d runs)\n",
                       bench_opt.runs);
        if (summary_lost)
                printf("(%zu reports left out: out of memory)\n", summary_lost);
        fflush(stdout);
}

int bench_thread_start(pthread_t *ret, int cpu, void *(*fn)(void *), void *arg) {
        pthread_attr_t attr;
        cpu_set_t set;
        int r;

        /* Set even to float: a new thread inherits its creator's pinning. */
        if (cpu == BENCH_ANY_CPU)
                set = float_cpus;
        else {
                CPU_ZERO(&set);
                CPU_SET(cpu, &set);
        }
        r = pthread_attr_init(&attr);
        if (r == 0)
                r = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        if (r == 0)
                r = pthread_create(ret, &attr, fn, arg);
        pthread_attr_destroy(&attr);
        return -r;
}
