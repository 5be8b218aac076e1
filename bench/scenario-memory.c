/* SPDX-License-Identifier: MIT */
/*
 * Scenario "memory": what 10,000 watchers on one value cost in memory, and
 * what a snapshot costs.  User-space bytes come from the allocator itself
 * (mallinfo2's uordblks, the bytes of chunks in use, headers included),
 * measured around creating 10,000 watchers or holding 10,000 snapshots of
 * distinct versions: the structs are opaque, so the allocator's count is the
 * honest one and includes its rounding.  The target is a budget, not a
 * ratio, so these rows have no baseline: at most 128 user-space bytes per
 * watcher.  The kernel's share, the eventfd behind each watcher, is read
 * twice: as the slab pages /proc/meminfo reports (SReclaimable +
 * SUnreclaim, whole pages, so it includes partly used slabs) and as
 * active objects times object size per cache in /proc/slabinfo (root only),
 * which also names the caches that grew.  The slab is shared with the rest
 * of the system, so each kernel measurement is repeated and the median
 * reported, with the largest as p99.
 */
#include "config.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "ev-value.h"

#define MEM_N 10000
#define MEM_TARGET 128.0      /* user-space bytes per watcher */
#define MEM_FD_SLACK 64
#define SLAB_MAX_CACHES 512
#define SLAB_NAME 32
#define SLAB_SHOWN 4          /* caches named in the note */

/* One reading of /proc/slabinfo: active bytes per cache. */
struct slab_reading {
        size_t n;
        char name[SLAB_MAX_CACHES][SLAB_NAME];
        double bytes[SLAB_MAX_CACHES];
};

/* What one repetition measured, per watcher or per snapshot. */
struct mem_rep {
        double watcher;            /* user bytes per watcher */
        double meminfo;            /* kernel slab bytes per eventfd, from meminfo */
        double slabinfo;           /* the same from slabinfo; NAN when unreadable */
        struct slab_reading delta; /* per-cache growth, bytes per eventfd */
};

static size_t heap_in_use(void) {
        return mallinfo2().uordblks;
}

/* SReclaimable + SUnreclaim in bytes, or -1. */
static double meminfo_slab_bytes(void) {
        FILE *f = fopen("/proc/meminfo", "re");
        char line[128];
        unsigned long kb, sum = 0;
        int found = 0;

        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f)) {
                if (sscanf(line, "SReclaimable: %lu kB", &kb) == 1 ||
                    sscanf(line, "SUnreclaim: %lu kB", &kb) == 1) {
                        sum += kb;
                        found++;
                }
        }
        fclose(f);
        return found == 2 ? (double)sum * 1024 : -1;
}

/* Fill r from /proc/slabinfo; -errno when it cannot be read. */
static int slabinfo_read(struct slab_reading *r) {
        FILE *f = fopen("/proc/slabinfo", "re");
        char line[512];

        r->n = 0;
        if (!f)
                return -errno;
        while (fgets(line, sizeof(line), f) && r->n < SLAB_MAX_CACHES) {
                unsigned long active, total, size;
                char name[SLAB_NAME];

                if (sscanf(line, "%31s %lu %lu %lu", name, &active, &total, &size) != 4)
                        continue; /* the two header lines */
                memcpy(r->name[r->n], name, sizeof(name));
                r->bytes[r->n] = (double)active * (double)size;
                r->n++;
        }
        fclose(f);
        return r->n > 0 ? 0 : -ENODATA;
}

/* delta = (after - before) / n, cache by cache (same order in both). */
static double slabinfo_delta(const struct slab_reading *before,
                             const struct slab_reading *after, size_t n,
                             struct slab_reading *delta) {
        double total = 0;

        delta->n = 0;
        for (size_t i = 0; i < after->n && i < before->n; i++) {
                if (strcmp(before->name[i], after->name[i]) != 0)
                        continue; /* a cache came or went meanwhile */
                memcpy(delta->name[delta->n], after->name[i], SLAB_NAME);
                delta->bytes[delta->n] = (after->bytes[i] - before->bytes[i]) / (double)n;
                total += delta->bytes[delta->n];
                delta->n++;
        }
        return total;
}

static void close_all(ev_value_watcher **w, size_t n) {
        for (size_t i = 0; i < n; i++)
                w[i] = ev_watcher_close(w[i]);
}

/* Give the kernel time to free what close() deferred to RCU (dentries,
 * files), so it does not cancel out the next repetition's growth. */
static void settle(void) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };

        nanosleep(&ts, NULL);
}

/* Create MEM_N watchers on v, reading the allocator and the slab around
 * it; the watchers stay open for the caller to close. */
static int mem_rep_run(ev_value *v, ev_value_watcher **w, struct mem_rep *rep,
                       struct slab_reading *scratch) {
        struct slab_reading *before = scratch, *after = scratch + 1;
        bool have_slabinfo = slabinfo_read(before) == 0;
        double slab0 = meminfo_slab_bytes();
        size_t heap0 = heap_in_use();
        int r = 0;

        for (size_t i = 0; i < MEM_N && r >= 0; i++)
                r = ev_value_watch(v, 0, &w[i]);
        if (r < 0)
                return r;
        rep->watcher = (double)(heap_in_use() - heap0) / MEM_N;
        rep->meminfo = slab0 < 0 ? NAN : (meminfo_slab_bytes() - slab0) / MEM_N;
        rep->slabinfo = NAN;
        rep->delta.n = 0;
        if (have_slabinfo && slabinfo_read(after) == 0)
                rep->slabinfo = slabinfo_delta(before, after, MEM_N, &rep->delta);
        return 0;
}

/* User bytes per snapshot of a size-byte set, held by MEM_N references. */
static int mem_snapshot_bytes(size_t size, double *ret) {
        static const char payload[16] = "sixteen bytes!!";
        ev_value_snapshot **s = calloc(MEM_N, sizeof(*s));
        ev_value *v = NULL;
        size_t heap0, i = 0;
        int r = s ? ev_value_new(&v) : -ENOMEM;

        if (r >= 0)
                r = ev_value_set(v, payload, size); /* the one the loop replaces */
        heap0 = heap_in_use();
        for (; r >= 0 && i < MEM_N; i++) {
                r = ev_value_set(v, payload, size);
                if (r >= 0)
                        r = ev_value_get(v, &s[i]);
        }
        if (r >= 0)
                *ret = (double)(heap_in_use() - heap0) / MEM_N;
        for (size_t j = 0; s && j < MEM_N; j++)
                ev_snapshot_unref(s[j]);
        free(s);
        ev_value_unref(v);
        return r < 0 ? r : 0;
}

static double median_of(struct bench_samples *s, double *ret_max) {
        *ret_max = bench_samples_quantile(s, 1.0);
        return bench_samples_quantile(s, 0.5);
}

static void mem_report(const char *variant, const char *mechanism, double median,
                       double max, const char *note) {
        struct bench_row row = {
                .scenario = "memory",
                .variant = variant,
                .placement = "-",
                .mechanism = mechanism,
                .unit = "bytes",
                .median = median,
                .p99 = max,
                .note = note,
        };

        bench_report(&row);
}

/* The note of the slabinfo row: the caches that grew most, per eventfd,
 * from the repetition whose total is the median. */
static void slab_note(const struct mem_rep *rep, char *note, size_t size) {
        const struct slab_reading *d = &rep->delta;
        bool shown[SLAB_MAX_CACHES] = { false };
        size_t len;

        len = (size_t)snprintf(note, size, "/proc/slabinfo active_objs*objsize delta:");
        for (int k = 0; k < SLAB_SHOWN; k++) {
                size_t best = d->n;

                for (size_t i = 0; i < d->n; i++)
                        if (!shown[i] && (best == d->n || d->bytes[i] > d->bytes[best]))
                                best = i;
                if (best == d->n || d->bytes[best] < 4 || len >= size)
                        break;
                shown[best] = true;
                len += (size_t)snprintf(note + len, size - len, " %s %+.0f", d->name[best],
                                        d->bytes[best]);
        }
        if (len < size)
                snprintf(note + len, size - len, "; fd table (vmalloc) not in slab");
}

static int compare_slabinfo(const void *a, const void *b) {
        double x = ((const struct mem_rep *)a)->slabinfo;
        double y = ((const struct mem_rep *)b)->slabinfo;

        return (x > y) - (x < y);
}

static void mem_report_watchers(struct mem_rep *reps, size_t n_reps) {
        struct bench_samples user = { 0 }, meminfo = { 0 }, slab = { 0 };
        double median, max;
        char note[256];

        for (size_t i = 0; i < n_reps; i++) {
                bench_samples_add(&user, reps[i].watcher);
                bench_samples_add(&meminfo, reps[i].meminfo);
                if (!isnan(reps[i].slabinfo))
                        bench_samples_add(&slab, reps[i].slabinfo);
        }
        median = median_of(&user, &max);
        snprintf(note, sizeof(note), "target <= %.0f: %s (mallinfo2 uordblks delta / %d)",
                 MEM_TARGET, median <= MEM_TARGET ? "met" : "MISSED", MEM_N);
        mem_report("N=10000", "user bytes/watcher", median, max, note);

        median = median_of(&meminfo, &max);
        snprintf(note, sizeof(note), "/proc/meminfo SReclaimable+SUnreclaim delta, median of %zu;"
                 " whole slab pages, system-wide", n_reps);
        mem_report("N=10000", "kernel slab bytes/eventfd", median, max, note);

        if (slab.n == n_reps) {
                qsort(reps, n_reps, sizeof(*reps), compare_slabinfo);
                median = median_of(&slab, &max);
                slab_note(&reps[(slab.n - 1) / 2], note, sizeof(note));
                mem_report("N=10000", "kernel obj bytes/eventfd", median, max, note);
        } else {
                printf("# memory: /proc/slabinfo is not readable (root only): per-cache"
                       " breakdown skipped\n");
        }
        bench_samples_free(&user);
        bench_samples_free(&meminfo);
        bench_samples_free(&slab);
}

static int mem_report_snapshots(void) {
        static const size_t sizes[] = { 16, 0 };

        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                char variant[32];
                double bytes = 0;
                int r = mem_snapshot_bytes(sizes[i], &bytes);

                if (r < 0) {
                        printf("# memory: snapshots of %zu bytes: %s\n", sizes[i], strerror(-r));
                        return -1;
                }
                snprintf(variant, sizeof(variant), "%zu-byte set", sizes[i]);
                mem_report(variant, "user bytes/snapshot", bytes, bytes,
                           "mallinfo2 uordblks delta over 10000 held snapshots");
        }
        return 0;
}

int bench_memory(void) {
        size_t n_reps = bench_count(5, 3);
        struct slab_reading *scratch = malloc(2 * sizeof(*scratch));
        struct mem_rep *reps = calloc(n_reps, sizeof(*reps));
        ev_value_watcher **w = calloc(MEM_N, sizeof(*w));
        ev_value *v = NULL;
        int r = bench_raise_nofile(MEM_N + MEM_FD_SLACK);

        if (bench_pin_self(bench_opt.cpu_a) < 0)
                printf("# memory: cannot pin to CPU %d; running unpinned\n", bench_opt.cpu_a);
        if (r < 0)
                printf("# memory: cannot raise RLIMIT_NOFILE to %d: %s; watchers skipped\n",
                       MEM_N + MEM_FD_SLACK, strerror(-r));
        else if (!scratch || !reps || !w || ev_value_new(&v) < 0)
                r = -ENOMEM;
        for (size_t i = 0; v && r >= 0 && i < n_reps; i++) {
                r = mem_rep_run(v, w, &reps[i], scratch);
                close_all(w, MEM_N);
                settle();
        }
        if (r >= 0)
                mem_report_watchers(reps, n_reps);
        else if (r != -EPERM)
                printf("# memory: creating %d watchers: %s\n", MEM_N, strerror(-r));
        ev_value_unref(v);
        free(w);
        free(reps);
        free(scratch);
        if (mem_report_snapshots() < 0)
                return -1;
        return r == -EMFILE || r == -EPERM ? 77 : r < 0 ? -1 : 0;
}
