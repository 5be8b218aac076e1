/* SPDX-License-Identifier: MIT */
/*
 * The threads an etcd object meets at once, for ThreadSanitizer
 * (make check-stress): the library's own thread (EV_VALUE_ETCD_THREAD)
 * publishing what a real etcd member sends, two writers putting, two
 * consumers blocked in ev_watcher_wait on watchers of their own, one
 * thread peeking (get, last contact) and one opening and closing
 * watchers, some with EV_VALUE_WATCH_SKIP_CURRENT.  Every consumer's
 * versions only increase and it ends at the last put; after free, every
 * watcher ends with -ECONNRESET.  Plain program: exit 0 pass, 1 fail, 77
 * skip (no etcd).
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ev-value-etcd.h"
#include "etcd-cluster.h"
#include "etcd-test.h"

#define PUTS_PER_WRITER 100
#define WAIT_MS 30000

struct shared {
        ev_value_etcd *e;
        atomic_bool done;
        atomic_int failures;
};

static void failed(struct shared *sh, const char *what, int r) {
        fprintf(stderr, "stress-etcd-threads: %s: %s\n", what, strerror(r < 0 ? -r : r));
        atomic_fetch_add(&sh->failures, 1);
}

struct writer {
        struct shared *sh;
        int id;
};

static void *writer_run(void *userdata) {
        struct writer *w = userdata;
        char text[32];

        for (int i = 0; i < PUTS_PER_WRITER; i++) {
                int r;

                snprintf(text, sizeof(text), "w%d-%d", w->id, i);
                r = ev_value_etcd_put(w->sh->e, text, strlen(text), WAIT_MS);
                if (r < 0)
                        failed(w->sh, "put", r);
        }
        return NULL;
}

struct consumer {
        struct shared *sh;
        ev_value_watcher *w;
};

/* Wait until "end", versions only increasing. */
static void *consumer_run(void *userdata) {
        struct consumer *c = userdata;
        uint64_t last = 0;

        for (;;) {
                ev_value_snapshot *s;
                int r = ev_watcher_wait(c->w, WAIT_MS, -1, &s);
                bool end;

                if (r < 0) {
                        failed(c->sh, "consumer wait", r);
                        return NULL;
                }
                if (ev_snapshot_version(s) <= last)
                        failed(c->sh, "consumer: a version did not increase", EILSEQ);
                last = ev_snapshot_version(s);
                end = etcd_test_is(s, "end");
                ev_snapshot_unref(s);
                if (end)
                        return NULL;
        }
}

/* Peek and open/close watchers until the writers are done. */
static void *churn_run(void *userdata) {
        struct shared *sh = userdata;
        unsigned flags[] = { 0, EV_VALUE_WATCH_SKIP_CURRENT, EV_VALUE_WATCH_SHARED_FD };

        for (unsigned i = 0; !atomic_load(&sh->done); i++) {
                ev_value_watcher *w;
                ev_value_snapshot *s;
                uint64_t at;
                int r = ev_value_etcd_watch(sh->e, flags[i % 3], &w);

                if (r < 0) {
                        failed(sh, "watch", r);
                        return NULL;
                }
                if (ev_watcher_get(w, &s) == 0)
                        ev_snapshot_unref(s);
                ev_watcher_close(w);
                if (ev_value_etcd_get(sh->e, &s) == 0)
                        ev_snapshot_unref(s);
                (void)ev_value_etcd_get_last_contact(sh->e, &at);
        }
        return NULL;
}

static int run(struct etcd_cluster *cluster) {
        struct shared sh = { 0 };
        struct writer writers[2];
        struct consumer consumers[2];
        pthread_t writer_threads[2], consumer_threads[2], churn;
        ev_value_snapshot *s;
        int r = ev_value_etcd_new(etcd_cluster_endpoints(cluster), "/stress", EV_VALUE_ETCD_THREAD,
                                  &sh.e);

        if (r < 0) {
                failed(&sh, "ev_value_etcd_new", r);
                return 1;
        }
        for (int i = 0; i < 2; i++) {
                consumers[i] = (struct consumer){ .sh = &sh };
                r = ev_value_etcd_watch(sh.e, i ? EV_VALUE_WATCH_SKIP_CURRENT : 0, &consumers[i].w);
                if (r < 0) {
                        failed(&sh, "watch", r);
                        return 1;
                }
                pthread_create(&consumer_threads[i], NULL, consumer_run, &consumers[i]);
        }
        pthread_create(&churn, NULL, churn_run, &sh);
        for (int i = 0; i < 2; i++) {
                writers[i] = (struct writer){ .sh = &sh, .id = i };
                pthread_create(&writer_threads[i], NULL, writer_run, &writers[i]);
        }
        for (int i = 0; i < 2; i++)
                pthread_join(writer_threads[i], NULL);
        r = ev_value_etcd_put(sh.e, "end", 3, WAIT_MS);
        if (r < 0)
                failed(&sh, "the last put", r);
        for (int i = 0; i < 2; i++)
                pthread_join(consumer_threads[i], NULL);
        atomic_store(&sh.done, true);
        pthread_join(churn, NULL);
        ev_value_etcd_free(sh.e);
        for (int i = 0; i < 2; i++) {
                r = ev_watcher_get(consumers[i].w, &s);
                if (r != -ECONNRESET)
                        failed(&sh, "a watcher after free", r < 0 ? r : EPROTO);
                ev_watcher_close(consumers[i].w);
        }
        if (atomic_load(&sh.failures) == 0)
                printf("stress-etcd-threads: %d puts from 2 threads, 2 consumers at \"end\"\n",
                       2 * PUTS_PER_WRITER + 1);
        return atomic_load(&sh.failures) != 0;
}

int main(void) {
        struct etcd_cluster *cluster;
        int r = etcd_cluster_start(1, &cluster);

        if (r == -ENOENT) {
                printf("stress-etcd-threads: SKIP: %s\n", etcd_cluster_absent_reason());
                return 77;
        }
        if (r < 0) {
                fprintf(stderr, "stress-etcd-threads: etcd_cluster_start: %s\n", strerror(-r));
                return 1;
        }
        r = run(cluster);
        etcd_cluster_free(cluster);
        return r;
}
