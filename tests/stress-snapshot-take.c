/* SPDX-License-Identifier: MIT */
/*
 * Stress: consumers taking the current snapshot without a lock while
 * producers replace it (the split reference count of lib/slot.c).  Two
 * producers publish owned snapshots; their destroy callback poisons the
 * bytes before freeing them and counts the call.  Four consumers take the
 * current snapshot in a tight loop, two with ev_value_get and two through
 * a watcher with ev_watcher_get, and check the bytes of every snapshot
 * they hold: a snapshot destroyed while still referenced shows the poison
 * (and is a use after free under ASan and valgrind), and none may be
 * newer than ev_value_get_version says.  At the end every
 * snapshot was destroyed exactly once: the destroy count equals the number
 * of sets.  Sets per producer default to 200000 (argv[1] or
 * EV_VALUE_STRESS_SCALE to change).
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>

#include "stress.h"

#define N_PRODUCERS 2
#define N_CONSUMERS 4
#define POISON UINT64_C(0xdeaddeaddeaddead)

struct payload {
        uint64_t seq;
        uint64_t checksum; /* of seq */
};

static ev_value *value;
static unsigned long n_sets;
static atomic_ulong destroyed;
static atomic_bool producers_done;

static void payload_destroy(void *data, void *userdata) {
        struct payload *p = data;

        (void)userdata;
        p->seq = POISON;
        p->checksum = POISON;
        atomic_fetch_add(&destroyed, 1);
        free(p);
}

static void publish(uint64_t seq) {
        struct payload *p = malloc(sizeof(*p));

        check(p, "malloc");
        p->seq = seq;
        p->checksum = stress_checksum(&p->seq, sizeof(p->seq));
        check_ok(ev_value_set_owned(value, p, sizeof(*p), payload_destroy, NULL),
                 "ev_value_set_owned");
}

static void *producer_run(void *arg) {
        uint64_t base = (uint64_t)(uintptr_t)arg * n_sets;

        for (unsigned long i = 0; i < n_sets; i++)
                publish(base + i + 1);
        return NULL;
}

static void check_snapshot(ev_value_snapshot *s) {
        const struct payload *p = ev_snapshot_data(s);

        check(ev_snapshot_size(s) == sizeof(*p), "size %zu", ev_snapshot_size(s));
        check(p->checksum == stress_checksum(&p->seq, sizeof(p->seq)),
              "a held snapshot was destroyed (seq %" PRIx64 ")", p->seq);
        check(ev_snapshot_version(s) <= ev_value_get_version(value),
              "snapshot %" PRIu64 " is newer than the value's version %" PRIu64,
              ev_snapshot_version(s), ev_value_get_version(value));
        ev_snapshot_unref(s);
}

/* Even consumers peek with ev_value_get, odd ones get through a watcher. */
static void *consumer_run(void *arg) {
        bool use_watcher = (uintptr_t)arg % 2;
        ev_value_watcher *w = NULL;
        unsigned long taken = 0;
        ev_value_snapshot *s;

        if (use_watcher)
                check_ok(ev_value_watch(value, 0, &w), "ev_value_watch");
        while (!atomic_load(&producers_done)) {
                int r = use_watcher ? ev_watcher_get(w, &s) : ev_value_get(value, &s);

                if (r == -EAGAIN)
                        continue;
                check_ok(r, use_watcher ? "ev_watcher_get" : "ev_value_get");
                check_snapshot(s);
                taken++;
        }
        ev_watcher_close(w);
        return (void *)(uintptr_t)taken;
}

int main(int argc, char **argv) {
        pthread_t producers[N_PRODUCERS], consumers[N_CONSUMERS];
        unsigned long taken = 0;
        void *result;
        int i, r;

        stress_begin("stress-snapshot-take", 120);
        n_sets = stress_count_arg(argc, argv, 200000, 1);
        check_ok(ev_value_new(&value), "ev_value_new");
        publish(0);
        for (i = 0; i < N_CONSUMERS; i++) {
                r = pthread_create(&consumers[i], NULL, consumer_run, (void *)(uintptr_t)i);
                check(r == 0, "pthread_create: %s", strerror(r));
        }
        for (i = 0; i < N_PRODUCERS; i++) {
                r = pthread_create(&producers[i], NULL, producer_run, (void *)(uintptr_t)i);
                check(r == 0, "pthread_create: %s", strerror(r));
        }
        for (i = 0; i < N_PRODUCERS; i++)
                pthread_join(producers[i], NULL);
        atomic_store(&producers_done, true);
        for (i = 0; i < N_CONSUMERS; i++) {
                pthread_join(consumers[i], &result);
                taken += (unsigned long)(uintptr_t)result;
        }
        check(ev_value_get_version(value) == 1 + N_PRODUCERS * n_sets, "version %" PRIu64,
              ev_value_get_version(value));
        ev_value_unref(value);
        check(atomic_load(&destroyed) == 1 + N_PRODUCERS * n_sets,
              "%lu snapshots destroyed, %lu set", atomic_load(&destroyed),
              1 + N_PRODUCERS * n_sets);
        printf("stress-snapshot-take: PASS: %lu sets, %lu snapshots taken and checked\n",
               N_PRODUCERS * n_sets, taken);
        return 0;
}
