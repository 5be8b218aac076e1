/* SPDX-License-Identifier: MIT */
/*
 * The helpers of bench.h: time, placement, limits, statistics, the
 * interleaving of a mechanism with its baseline, and the report (a
 * readable table on stdout and, with --csv, one CSV line per row).
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "bench.h"

struct bench_options bench_opt = { .cpu_a = 0, .cpu_b = 1 };

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
        return p == BENCH_TWO_CPUS ? "two CPUs" : "one CPU";
}

int bench_cpu(enum bench_placement p, int thread_index) {
        return (p == BENCH_TWO_CPUS && thread_index == 1) ? bench_opt.cpu_b : bench_opt.cpu_a;
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
        printf("%-14s %-12s %-9s %-30s %10s %10s  %-26s %10s %8s %8s  %s\n", "scenario",
               "variant", "placement", "mechanism", "median", "p99", "baseline", "median",
               "ratio", "target", "note");
        if (bench_opt.csv)
                fprintf(bench_opt.csv, "scenario,variant,placement,mechanism,unit,median,p99,"
                                       "baseline,baseline_median,baseline_p99,ratio,target,"
                                       "met,note\n");
}

void bench_report(const struct bench_row *row) {
        double ratio = row->baseline ? row->median / row->baseline_median : NAN;
        const char *met = "";
        char target[16] = "-", ratio_text[16];

        print_header();
        if (row->baseline && row->target > 0) {
                met = ratio <= row->target ? "met" : "MISSED";
                /* A target like 0.001 ("1000x cheaper") needs more digits. */
                snprintf(target, sizeof(target), row->target < 0.01 ? "<=%.3g" : "<=%.2f",
                         row->target);
        }
        snprintf(ratio_text, sizeof(ratio_text), ratio < 0.01 ? "%.2e" : "%.3f", ratio);
        printf("%-14s %-12s %-9s %-30s %10.1f %10.1f  %-26s %10.1f %8s %8s  %s%s%s%s %s\n",
               row->scenario, row->variant, row->placement, row->mechanism, row->median,
               row->p99, row->baseline ? row->baseline : "-",
               row->baseline ? row->baseline_median : NAN, ratio_text, target, met,
               *met ? " " : "", row->unit, row->note ? "," : "", row->note ? row->note : "");
        if (bench_opt.csv)
                fprintf(bench_opt.csv, "%s,%s,%s,%s,%s,%.3f,%.3f,%s,%.3f,%.3f,%.6g,%.6g,%s,\"%s\"\n",
                        row->scenario, row->variant, row->placement, row->mechanism, row->unit,
                        row->median, row->p99, row->baseline ? row->baseline : "",
                        row->baseline ? row->baseline_median : NAN,
                        row->baseline ? row->baseline_p99 : NAN, ratio, row->target, met,
                        row->note ? row->note : "");
        fflush(stdout);
}

int bench_thread_start(pthread_t *ret, int cpu, void *(*fn)(void *), void *arg) {
        pthread_attr_t attr;
        cpu_set_t set;
        int r;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        r = pthread_attr_init(&attr);
        if (r == 0)
                r = pthread_attr_setaffinity_np(&attr, sizeof(set), &set);
        if (r == 0)
                r = pthread_create(ret, &attr, fn, arg);
        pthread_attr_destroy(&attr);
        return -r;
}
