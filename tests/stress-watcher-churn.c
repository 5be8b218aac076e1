/* SPDX-License-Identifier: MIT */
/*
 * Stress: watcher churn without sets.  10000 watchers (argv[1] or
 * EV_VALUE_STRESS_SCALE to change) are created and closed, 64 live at a
 * time, the oldest replaced each step, alternately on a value never set
 * (watchers start armed; get gives -EAGAIN) and on a value set once before
 * the churn (every other watcher takes that snapshot and re-arms, the others
 * stay signaled).  At a tenth of the run and at its end the program samples
 * the heap in use (mallinfo2), the resident set size (/proc/self/statm) and
 * the open fd count (/proc/self/fd): memory must not grow between the two
 * samples beyond a small bound and exactly 64 watcher fds must be open.
 * Then one set on each value must reach every live watcher: its fd is
 * readable and its get returns that version.  Memory bounds that a
 * sanitizer's or valgrind's allocator would break are skipped there, with
 * a message; those runs check leaks themselves.
 */
#include "config.h"

#include <stdlib.h> /* defines __GLIBC__ */
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#endif

#include "stress.h"

#define N_LIVE 64
/* Growth allowed between the samples: allocator slack, not a leak (one
 * leaked watcher per step would be hundreds of KiB). */
#define HEAP_GROWTH_MAX (16 * 1024)
#define RSS_GROWTH_MAX (512 * 1024)

struct sample {
        unsigned long iteration;
        uint64_t heap;          /* bytes in use per mallinfo2, 0 when unknown */
        uint64_t rss;
        int fds;
};

static const char first_data[] = "set before the churn";
static const char final_data[] = "the one set after the churn";

static uint64_t heap_in_use(void) {
#ifdef HAVE_MALLINFO2
        struct mallinfo2 mi = mallinfo2();

        return (uint64_t)mi.uordblks + (uint64_t)mi.hblkhd;
#else
        return 0;
#endif
}

static void take_sample(struct sample *s, unsigned long iteration, int fds_base) {
        s->iteration = iteration;
        s->heap = heap_in_use();
        s->rss = stress_rss_bytes();
        s->fds = stress_count_fds();
        check(s->fds < 0 || s->fds == fds_base + N_LIVE,
              "after %lu watchers: %d fds open, want %d (%d before the churn + %d live)",
              iteration, s->fds, fds_base + N_LIVE, fds_base, N_LIVE);
}

/* The final get on w, a watcher of value index which, must return final_data. */
static void check_final(ev_value_watcher *w, int which, unsigned long born) {
        ev_value_snapshot *s;
        int fd = ev_watcher_get_fd(w), r;

        check(stress_fd_readable(fd), "watcher #%lu (value %d): fd %d not readable after the set",
              born, which, fd);
        r = ev_watcher_get(w, &s);
        check(r == 0, "watcher #%lu (value %d): get after the set: %s", born, which, strerror(-r));
        check(ev_snapshot_version(s) == (uint64_t)(which + 1) &&
              ev_snapshot_size(s) == sizeof(final_data) &&
              memcmp(ev_snapshot_data(s), final_data, sizeof(final_data)) == 0,
              "watcher #%lu (value %d): got version %" PRIu64 ", size %zu; want version %d",
              born, which, ev_snapshot_version(s), ev_snapshot_size(s), which + 1);
        ev_snapshot_unref(s);
        check(!stress_fd_readable(fd), "watcher #%lu (value %d): fd readable after the get",
              born, which);
}

int main(int argc, char **argv) {
        ev_value *values[2];
        ev_value_watcher *live[N_LIVE] = { NULL };
        unsigned long born[N_LIVE] = { 0 };
        struct sample early, late;
        unsigned long n, i, early_at;
        int fds_base, slot;
        bool bounds_checked;
        int64_t start;

        stress_begin("stress-watcher-churn", 120);
        n = stress_count_arg(argc, argv, 10000, 10 * N_LIVE);
        early_at = n / 10;

        /* values[0] is never set before the churn; values[1] is set once. */
        check_ok(ev_value_new(&values[0]), "ev_value_new");
        check_ok(ev_value_new(&values[1]), "ev_value_new");
        check_ok(ev_value_set(values[1], first_data, sizeof(first_data)), "ev_value_set");
        fds_base = stress_count_fds();

        start = stress_now_ns();
        for (i = 1; i <= n; i++) {
                int which = (int)(i % 2), fd, r;
                ev_value_watcher *w;
                ev_value_snapshot *s;

                slot = (int)(i % N_LIVE);
                live[slot] = ev_watcher_close(live[slot]);
                r = ev_value_watch(values[which], 0, &w);
                check(r == 0, "watcher #%lu: ev_value_watch: %s", i, strerror(-r));
                fd = ev_watcher_get_fd(w);
                if (which == 0) {
                        check(!stress_fd_readable(fd), "watcher #%lu: fd readable on a value "
                              "never set", i);
                        r = ev_watcher_get(w, &s);
                        check(r == -EAGAIN, "watcher #%lu: get on a value never set: %s", i,
                              r == 0 ? "a snapshot" : strerror(-r));
                } else if (i % 4 == 1) {
                        check(stress_fd_readable(fd), "watcher #%lu: new watcher's fd not "
                              "readable on a set value", i);
                        r = ev_watcher_get(w, &s);
                        check(r == 0 && ev_snapshot_version(s) == 1,
                              "watcher #%lu: first get on a set value: %s", i, strerror(-r));
                        ev_snapshot_unref(s);
                }
                live[slot] = w;
                born[slot] = i;
                if (i == early_at)
                        take_sample(&early, i, fds_base);
        }
        take_sample(&late, n, fds_base);

        bounds_checked = !RUNNING_ON_VALGRIND && !UNDER_SANITIZER;
        if (bounds_checked) {
                check(late.heap <= early.heap + HEAP_GROWTH_MAX,
                      "heap in use grew from %" PRIu64 " to %" PRIu64 " bytes between watcher "
                      "%lu and %lu", early.heap, late.heap, early.iteration, late.iteration);
                check(late.rss <= early.rss + RSS_GROWTH_MAX,
                      "RSS grew from %" PRIu64 " to %" PRIu64 " bytes between watcher %lu and %lu",
                      early.rss, late.rss, early.iteration, late.iteration);
        } else {
                printf("stress-watcher-churn: memory bounds not checked: %s replaces the "
                       "allocator (it checks leaks itself)\n",
                       RUNNING_ON_VALGRIND ? "valgrind" : "a sanitizer");
        }

        /* Both values were untouched during the churn: one set each now. */
        check_ok(ev_value_set(values[0], final_data, sizeof(final_data)), "ev_value_set");
        check_ok(ev_value_set(values[1], final_data, sizeof(final_data)), "ev_value_set");
        for (slot = 0; slot < N_LIVE; slot++) {
                check_final(live[slot], (int)(born[slot] % 2), born[slot]);
                live[slot] = ev_watcher_close(live[slot]);
        }
        values[0] = ev_value_unref(values[0]);
        values[1] = ev_value_unref(values[1]);
        check(stress_count_fds() == fds_base, "%d fds open after closing every watcher, "
              "%d before the churn", stress_count_fds(), fds_base);

        printf("stress-watcher-churn: %lu watchers, %d live, in %.2f s; heap %" PRIu64
               " -> %" PRIu64 " bytes, RSS %" PRIu64 " -> %" PRIu64 " KiB, fds %d -> %d "
               "(watchers %lu -> %lu)\n",
               n, N_LIVE, stress_elapsed_s(start), early.heap, late.heap, early.rss / 1024,
               late.rss / 1024, early.fds, late.fds, early.iteration, late.iteration);
        return 0;
}
