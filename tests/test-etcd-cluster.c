/* SPDX-License-Identifier: MIT */
/*
 * libevvalue-etcd against a real three-member cluster, started for each
 * test on 127.0.0.1 (tests/etcd-cluster.c) and killed at its end, with
 * members killed by SIGKILL and restarted under it: the member a watcher
 * streams from, two members (no quorum: the staleness must show), all three,
 * and members at random while a writer puts.  Whatever happens, a
 * watcher's versions only increase and it ends at the key's latest state.
 * Without etcd every test skips and says why.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "ev-value-etcd.h"
#include "etcd-cluster.h"
#include "etcd-test.h"

/* Long enough for a new election and a restart on a loaded machine. */
#define RECOVERY_MS 30000

static struct etcd_cluster *cluster;

static void start_cluster(void) {
        int r = etcd_cluster_start(3, &cluster);

        if (r == -ENOENT)
                cr_skip_test("%s", etcd_cluster_absent_reason());
        cr_assert_eq(r, 0, "etcd_cluster_start: %s", strerror(-r));
}

static void stop_cluster(void) {
        etcd_cluster_free(cluster);
        cluster = NULL;
}

TestSuite(etcd_cluster, .init = start_cluster, .fini = stop_cluster, .timeout = 180);

static ev_value_etcd *open_key(const char *key, unsigned flags) {
        ev_value_etcd *e;
        int r = ev_value_etcd_new(etcd_cluster_endpoints(cluster), key, flags, &e);

        cr_assert_eq(r, 0, "ev_value_etcd_new: %s", strerror(-r));
        return e;
}

static ev_value_watcher *watch(ev_value_etcd *e) {
        ev_value_watcher *w;
        int r = ev_value_etcd_watch(e, 0, &w);

        cr_assert_eq(r, 0, "ev_value_etcd_watch: %s", strerror(-r));
        return w;
}

/* Put text, retrying through elections and restarts: what a careful
 * writer does.  0 once acknowledged, or the last error at the deadline. */
static int put_until_acknowledged(ev_value_etcd *e, const char *text, int timeout_ms) {
        int64_t end = etcd_test_now_ms() + timeout_ms;
        int r;

        while ((r = ev_value_etcd_put(e, text, strlen(text), 2000)) != 0 &&
               etcd_test_now_ms() < end)
                usleep(50 * 1000);
        return r;
}

static void kill_member(unsigned i) {
        cr_assert_eq(etcd_cluster_kill(cluster, i), 0, "kill member %u", i);
}

static void restart_member(unsigned i) {
        cr_assert_eq(etcd_cluster_restart(cluster, i), 0, "restart member %u", i);
}

/* A writer that puts 1, 2, 3... until told to stop, each until
 * acknowledged, so that the last acknowledged put is the key's value. */
struct writer {
        ev_value_etcd *e;
        atomic_bool stop;
        atomic_int acknowledged;    /* the last value acknowledged */
        atomic_int failures;
        int pace_ms;
};

static void *writer_run(void *userdata) {
        struct writer *w = userdata;
        char text[32];

        for (int i = 1; !atomic_load(&w->stop); i++) {
                snprintf(text, sizeof(text), "%d", i);
                if (ev_value_etcd_put(w->e, text, strlen(text), 3000) == 0)
                        atomic_store(&w->acknowledged, i);
                else
                        atomic_fetch_add(&w->failures, 1);
                usleep((useconds_t)w->pace_ms * 1000);
        }
        return NULL;
}

/* Wait (driving e) until w reaches the state `text`, its versions only
 * increasing. */
static void wait_for(ev_value_etcd *e, ev_value_watcher *w, const char *text, int timeout_ms,
                     uint64_t *version) {
        int r = etcd_test_wait_for(e, w, text, timeout_ms, version);

        cr_assert_eq(r, 0, "waiting for \"%s\": %s", text, strerror(-r));
}

Test(etcd_cluster, the_member_streamed_from_is_killed_mid_stream) {
        /* The follower starts with the first endpoint: member 0. */
        ev_value_etcd *e = open_key("/failover", EV_VALUE_ETCD_THREAD);
        ev_value_etcd *writer_e = open_key("/failover", 0);
        ev_value_watcher *w = watch(e);
        struct writer writer = { .e = writer_e, .pace_ms = 10 };
        char last[32];
        uint64_t version = 0;
        pthread_t thread;

        cr_assert_eq(put_until_acknowledged(writer_e, "0", RECOVERY_MS), 0);
        wait_for(e, w, "0", RECOVERY_MS, &version);
        cr_assert_eq(pthread_create(&thread, NULL, writer_run, &writer), 0);
        while (atomic_load(&writer.acknowledged) < 30)
                usleep(10 * 1000);
        kill_member(0);
        for (int64_t end = etcd_test_now_ms() + RECOVERY_MS;
             atomic_load(&writer.acknowledged) < 100 && etcd_test_now_ms() < end;)
                usleep(10 * 1000);
        atomic_store(&writer.stop, true);
        pthread_join(thread, NULL);
        cr_assert_geq(atomic_load(&writer.acknowledged), 100, "the writer stalled");
        snprintf(last, sizeof(last), "%d", atomic_load(&writer.acknowledged));
        wait_for(e, w, last, RECOVERY_MS, &version);
        ev_watcher_close(w);
        ev_value_etcd_free(writer_e);
        ev_value_etcd_free(e);
}

/* How stale e's view may be now, in ms: now - last contact. */
static int64_t staleness_ms(const ev_value_etcd *e) {
        uint64_t at;

        cr_assert_eq(ev_value_etcd_get_last_contact(e, &at), 0);
        return (int64_t)(etcd_test_now_usec() - at) / 1000;
}

Test(etcd_cluster, quorum_loss_shows_as_staleness_and_recovers) {
        ev_value_etcd *e = open_key("/quorum", 0);
        ev_value_watcher *w = watch(e);
        uint64_t version = 0;
        int64_t killed, stale_after = -1;

        cr_assert_eq(put_until_acknowledged(e, "healthy", RECOVERY_MS), 0);
        wait_for(e, w, "healthy", RECOVERY_MS, &version);
        kill_member(1);
        kill_member(2);
        killed = etcd_test_now_ms();
        /* Healthy, the contact is at most 2 s old: past 3 s, the view shows
         * as stale. */
        while (etcd_test_now_ms() - killed < 10000) {
                etcd_test_drive(e, w, 100);
                if (staleness_ms(e) > 3000) {
                        stale_after = etcd_test_now_ms() - killed;
                        break;
                }
        }
        cr_assert_geq(stale_after, 0, "still fresh 10 s after quorum was lost");
        cr_assert_leq(stale_after, 6000, "staleness showed only after %" PRId64 " ms", stale_after);
        cr_assert_eq(ev_value_etcd_put(e, "lost", 4, 1000), -ETIMEDOUT);
        restart_member(1);
        restart_member(2);
        cr_assert_eq(put_until_acknowledged(e, "recovered", RECOVERY_MS), 0);
        wait_for(e, w, "recovered", RECOVERY_MS, &version);
        for (int64_t end = etcd_test_now_ms() + RECOVERY_MS;
             staleness_ms(e) > 2500 && etcd_test_now_ms() < end;)
                etcd_test_drive(e, w, 100);
        cr_assert_leq(staleness_ms(e), 2500, "the contact did not resume");
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd_cluster, the_whole_cluster_restarts) {
        ev_value_etcd *e = open_key("/restart", EV_VALUE_ETCD_THREAD);
        ev_value_etcd *writer_e = open_key("/restart", 0);
        ev_value_watcher *w = watch(e);
        uint64_t version = 0;

        cr_assert_eq(put_until_acknowledged(writer_e, "before", RECOVERY_MS), 0);
        wait_for(e, w, "before", RECOVERY_MS, &version);
        for (unsigned i = 0; i < 3; i++)
                kill_member(i);
        usleep(500 * 1000);
        for (unsigned i = 0; i < 3; i++)
                restart_member(i);
        cr_assert_eq(put_until_acknowledged(writer_e, "after", RECOVERY_MS), 0);
        wait_for(e, w, "after", RECOVERY_MS, &version);
        ev_watcher_close(w);
        ev_value_etcd_free(writer_e);
        ev_value_etcd_free(e);
}

/* Members killed and restarted at random (one or two at a time) while a
 * writer puts: at the end the watcher holds the last acknowledged put. */
Test(etcd_cluster, random_kills_end_at_the_last_acknowledged_put, .timeout = 240) {
        ev_value_etcd *e = open_key("/random", EV_VALUE_ETCD_THREAD);
        ev_value_etcd *writer_e = open_key("/random", 0);
        ev_value_watcher *w = watch(e);
        struct writer writer = { .e = writer_e, .pace_ms = 20 };
        unsigned seed = (unsigned)getpid(), kills = 0;
        char last[32];
        uint64_t version = 0;
        pthread_t thread;

        cr_assert_eq(pthread_create(&thread, NULL, writer_run, &writer), 0);
        for (int64_t end = etcd_test_now_ms() + 15000; etcd_test_now_ms() < end;) {
                unsigned victim = (unsigned)rand_r(&seed) % 3;

                if (etcd_cluster_member_running(cluster, victim)) {
                        kill_member(victim);
                        kills++;
                }
                usleep((useconds_t)(300 + rand_r(&seed) % 1200) * 1000);
                /* Mostly bring it back; sometimes leave it down so that a
                 * second kill takes the quorum. */
                if (rand_r(&seed) % 4 != 0)
                        restart_member(victim);
                /* Watchers keep only increasing meanwhile. */
                etcd_test_wait_for(e, w, "never", 0, &version);
        }
        for (unsigned i = 0; i < 3; i++)
                if (!etcd_cluster_member_running(cluster, i))
                        restart_member(i);
        atomic_store(&writer.stop, true);
        pthread_join(thread, NULL);
        cr_log_info("%u kills, %d puts acknowledged, %d failed", kills,
                    atomic_load(&writer.acknowledged), atomic_load(&writer.failures));
        cr_assert_gt(kills, 3);
        /* The last acknowledged put, unless an unacknowledged one committed
         * after it: a final acknowledged put settles it. */
        snprintf(last, sizeof(last), "final %d", atomic_load(&writer.acknowledged));
        cr_assert_eq(put_until_acknowledged(writer_e, last, RECOVERY_MS), 0);
        wait_for(e, w, last, RECOVERY_MS, &version);
        ev_watcher_close(w);
        ev_value_etcd_free(writer_e);
        ev_value_etcd_free(e);
}
