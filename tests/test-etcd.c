/* SPDX-License-Identifier: MIT */
/*
 * libevvalue-etcd against one real etcd member, started for each test on
 * 127.0.0.1 with fresh ports and data dir (tests/etcd-cluster.c), killed at
 * its end: the watchers' semantics (first state, newest only, versions are
 * mod_revisions, absent vs empty), writes from this process, from another
 * and from etcdctl, the end at free, staleness, and the connection faults a
 * TCP proxy injects (cuts, a member that hangs, compaction meanwhile).
 * Without etcd every test skips and says why.
 */
#include <criterion/criterion.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ev-value-etcd.h"
#include "etcd-cluster.h"
#include "etcd-test.h"
#include "tcp-proxy.h"

#define WAIT_MS 10000

static struct etcd_cluster *cluster;

static void start_member(void) {
        int r = etcd_cluster_start(1, &cluster);

        if (r == -ENOENT)
                cr_skip_test("%s", etcd_cluster_absent_reason());
        cr_assert_eq(r, 0, "etcd_cluster_start: %s", strerror(-r));
}

static void stop_member(void) {
        etcd_cluster_free(cluster);
        cluster = NULL;
}

TestSuite(etcd, .init = start_member, .fini = stop_member, .timeout = 60);

/* etcdctl on the member: its stdout, the exit status asserted 0. */
static void etcdctl(char *out, size_t size, const char *const *args) {
        int r = etcd_cluster_etcdctl(cluster, -1, out, size, args);

        cr_assert_eq(r, 0, "etcdctl %s failed: %d", args[0], r);
}

/* The key's mod_revision as etcdctl reads it. */
static uint64_t etcdctl_mod_revision(const char *key) {
        char out[4096], *p;

        etcdctl(out, sizeof(out), (const char *const[]){ "get", key, "-w", "json", NULL });
        p = strstr(out, "\"mod_revision\":");
        cr_assert(p, "no mod_revision in %s", out);
        return strtoull(p + strlen("\"mod_revision\":"), NULL, 10);
}

static ev_value_etcd *open_key(const char *endpoints, const char *key, unsigned flags) {
        ev_value_etcd *e;
        int r = ev_value_etcd_new(endpoints, key, flags, &e);

        cr_assert_eq(r, 0, "ev_value_etcd_new: %s", strerror(-r));
        return e;
}

static ev_value_watcher *watch(ev_value_etcd *e, unsigned flags) {
        ev_value_watcher *w;
        int r = ev_value_etcd_watch(e, flags, &w);

        cr_assert_eq(r, 0, "ev_value_etcd_watch: %s", strerror(-r));
        return w;
}

static void put(ev_value_etcd *e, const char *text) {
        int r = ev_value_etcd_put(e, text, strlen(text), WAIT_MS);

        cr_assert_eq(r, 0, "put %s: %s", text, strerror(-r));
}

static void wait_for(ev_value_etcd *e, ev_value_watcher *w, const char *text, uint64_t *version) {
        int r = etcd_test_wait_for(e, w, text, WAIT_MS, version);

        cr_assert_eq(r, 0, "waiting for %s: %s", text ? text : "(absent)", strerror(-r));
}

/* Take w's next snapshot, driving e, within WAIT_MS. */
static ev_value_snapshot *next_snapshot(ev_value_etcd *e, ev_value_watcher *w) {
        int64_t end = etcd_test_now_ms() + WAIT_MS;
        ev_value_snapshot *s;
        int r;

        while ((r = ev_watcher_get(w, &s)) == -EAGAIN && etcd_test_now_ms() < end)
                etcd_test_drive(e, w, 100);
        cr_assert_eq(r, 0, "no snapshot: %s", strerror(-r));
        return s;
}

/* Nothing new for w while e's loop runs for ms: neither readable nor got. */
static void assert_quiet(ev_value_etcd *e, ev_value_watcher *w, int ms) {
        struct pollfd pfd = { .fd = ev_watcher_get_fd(w), .events = POLLIN };
        ev_value_snapshot *s;

        cr_assert_eq(etcd_test_drive(e, w, ms), 0, "the watcher woke");
        cr_assert_eq(poll(&pfd, 1, 0), 0);
        cr_assert_eq(ev_watcher_get(w, &s), -EAGAIN);
}

Test(etcd, first_get_is_the_current_state_with_its_mod_revision) {
        ev_value_etcd *e;
        ev_value_watcher *w;
        ev_value_snapshot *s;
        uint64_t revision;

        etcdctl(NULL, 0, (const char *const[]){ "put", "/first", "one", NULL });
        etcdctl(NULL, 0, (const char *const[]){ "put", "/first", "two", NULL });
        revision = etcdctl_mod_revision("/first");
        e = open_key(etcd_cluster_endpoints(cluster), "/first", 0);
        cr_assert_eq(ev_value_etcd_get(e, &s), -EAGAIN, "a state before the first read");
        w = watch(e, 0);
        s = next_snapshot(e, w);
        cr_assert(etcd_test_is(s, "two"));
        cr_assert_eq(ev_snapshot_version(s), revision);
        ev_snapshot_unref(s);
        cr_assert_eq(ev_value_etcd_get(e, &s), 0);
        cr_assert(etcd_test_is(s, "two"));
        ev_snapshot_unref(s);
        assert_quiet(e, w, 300);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd, absent_key_then_empty_value_then_delete) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/absent", 0);
        ev_value_watcher *w = watch(e, 0);
        ev_value_snapshot *s = next_snapshot(e, w);
        uint64_t version;

        cr_assert(ev_snapshot_is_absent(s), "a key never written is absent");
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_gt(ev_snapshot_version(s), 0, "the version of the read");
        version = ev_snapshot_version(s);
        ev_snapshot_unref(s);

        cr_assert_eq(ev_value_etcd_put(e, NULL, 0, WAIT_MS), 0);
        s = next_snapshot(e, w);
        cr_assert_not(ev_snapshot_is_absent(s), "an empty value is not absent");
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_gt(ev_snapshot_version(s), version);
        cr_assert_eq(ev_snapshot_version(s), etcdctl_mod_revision("/absent"));
        version = ev_snapshot_version(s);
        ev_snapshot_unref(s);

        cr_assert_eq(ev_value_etcd_delete(e, WAIT_MS), 0);
        s = next_snapshot(e, w);
        cr_assert(ev_snapshot_is_absent(s));
        cr_assert_gt(ev_snapshot_version(s), version, "the revision of the delete");
        ev_snapshot_unref(s);
        /* Deleting what is absent changes nothing a watcher can see. */
        cr_assert_eq(ev_value_etcd_delete(e, WAIT_MS), 0);
        assert_quiet(e, w, 500);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

/* EV_VALUE_SET_IF_CHANGED: etcd compares the bytes and puts in one
 * transaction.  Equal bytes make no revision and wake nobody; an absent
 * key is written, also with an empty value, which then counts as equal. */
Test(etcd, put_if_changed_writes_only_other_bytes) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/if-changed", 0);
        ev_value_watcher *w = watch(e, 0);
        ev_value_snapshot *s = next_snapshot(e, w);
        uint64_t revision = 0;

        cr_assert(ev_snapshot_is_absent(s));
        ev_snapshot_unref(s);
        cr_assert_eq(ev_value_etcd_put_flags(e, NULL, 0, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 1,
                     "an empty value on an absent key was skipped");
        s = next_snapshot(e, w);
        cr_assert_not(ev_snapshot_is_absent(s));
        cr_assert_eq(ev_snapshot_size(s), 0);
        ev_snapshot_unref(s);
        cr_assert_eq(ev_value_etcd_put_flags(e, "", 0, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 0,
                     "an empty value put again");

        cr_assert_eq(ev_value_etcd_put_flags(e, "same", 4, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 1);
        wait_for(e, w, "same", &revision);
        cr_assert_eq(ev_value_etcd_put_flags(e, "same", 4, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 0);
        cr_assert_eq(etcdctl_mod_revision("/if-changed"), revision, "equal bytes made a revision");
        assert_quiet(e, w, 500);
        /* A prefix, and a longer value, are other bytes. */
        cr_assert_eq(ev_value_etcd_put_flags(e, "sam", 3, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 1);
        wait_for(e, w, "sam", NULL);
        cr_assert_eq(ev_value_etcd_put_flags(e, "same", 4, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 1);
        wait_for(e, w, "same", NULL);
        /* Without the flag, equal bytes are a change, as with put. */
        cr_assert_eq(ev_value_etcd_put_flags(e, "same", 4, 0, WAIT_MS), 1);
        s = next_snapshot(e, w);
        cr_assert(etcd_test_is(s, "same"));
        ev_snapshot_unref(s);

        cr_assert_eq(ev_value_etcd_delete(e, WAIT_MS), 0);
        wait_for(e, w, NULL, NULL);
        cr_assert_eq(ev_value_etcd_put_flags(e, "same", 4, EV_VALUE_SET_IF_CHANGED, WAIT_MS), 1,
                     "a deleted key was not written");
        wait_for(e, w, "same", NULL);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd, a_local_snapshot_is_never_absent) {
        ev_value *v;
        ev_value_snapshot *s;

        cr_assert_eq(ev_value_new(&v), 0);
        cr_assert_eq(ev_value_set(v, NULL, 0), 0);
        cr_assert_eq(ev_value_get(v, &s), 0);
        cr_assert_not(ev_snapshot_is_absent(s));
        cr_assert_not(ev_snapshot_is_absent(NULL));
        ev_snapshot_unref(s);
        ev_value_unref(v);
}

Test(etcd, etcdctl_put_seen_and_library_put_read_by_etcdctl) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/ctl", 0);
        ev_value_watcher *w = watch(e, 0);
        char out[256];

        etcdctl(NULL, 0, (const char *const[]){ "put", "/ctl", "from etcdctl", NULL });
        wait_for(e, w, "from etcdctl", NULL);
        put(e, "from the library");
        etcdctl(out, sizeof(out), (const char *const[]){ "get", "/ctl", "--print-value-only", NULL });
        cr_assert_str_eq(out, "from the library\n");
        wait_for(e, w, "from the library", NULL);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd, a_key_is_matched_exactly_never_as_a_prefix) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/exact", 0);
        ev_value_watcher *w = watch(e, 0);

        wait_for(e, w, NULL, NULL);
        etcdctl(NULL, 0, (const char *const[]){ "put", "/exact/child", "x", NULL });
        etcdctl(NULL, 0, (const char *const[]){ "put", "/exactly", "x", NULL });
        assert_quiet(e, w, 500);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd, put_in_one_process_watch_from_another) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/ipc", 0);
        ev_value_watcher *w = watch(e, 0);
        int status;
        pid_t pid;

        wait_for(e, w, NULL, NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                /* A new object of its own: one made before fork is not usable. */
                ev_value_etcd *child;
                int r = ev_value_etcd_new(etcd_cluster_endpoints(cluster), "/ipc", 0, &child);

                if (r == 0)
                        r = ev_value_etcd_put(child, "from the child", 14, WAIT_MS);
                ev_value_etcd_free(child);
                _exit(r == 0 ? 0 : 1);
        }
        wait_for(e, w, "from the child", NULL);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

struct puts {
        ev_value_etcd *e;
        int n;
        int failed;
};

static void *put_many(void *userdata) {
        struct puts *p = userdata;
        char text[32];

        for (int i = 1; i <= p->n; i++) {
                snprintf(text, sizeof(text), "%d", i);
                if (ev_value_etcd_put(p->e, text, strlen(text), WAIT_MS) != 0)
                        p->failed++;
        }
        return NULL;
}

/* The loop runs in this thread while another puts: the writes need no loop. */
Test(etcd, a_thousand_puts_end_at_the_last_with_increasing_versions, .timeout = 120) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/many", 0);
        ev_value_watcher *w = watch(e, 0);
        struct puts p = { .e = e, .n = 1000 };
        uint64_t version = 0;
        pthread_t thread;
        int r;

        cr_assert_eq(pthread_create(&thread, NULL, put_many, &p), 0);
        r = etcd_test_wait_for(e, w, "1000", 60000, &version);
        pthread_join(thread, NULL);
        cr_assert_eq(p.failed, 0, "%d puts failed", p.failed);
        cr_assert_eq(r, 0, "the last put was not seen: %s", strerror(-r));
        cr_assert_eq(version, etcdctl_mod_revision("/many"));
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd, skip_current_before_the_first_read_skips_the_first_state) {
        ev_value_etcd *e;
        ev_value_watcher *early, *all, *late;
        ev_value_snapshot *s;

        etcdctl(NULL, 0, (const char *const[]){ "put", "/skip", "old", NULL });
        e = open_key(etcd_cluster_endpoints(cluster), "/skip", 0);
        early = watch(e, EV_VALUE_WATCH_SKIP_CURRENT);
        all = watch(e, 0);
        wait_for(e, all, "old", NULL);
        /* Read: a watcher that skips now counts "old" as seen too. */
        late = watch(e, EV_VALUE_WATCH_SKIP_CURRENT);
        assert_quiet(e, early, 300);
        cr_assert_eq(ev_watcher_get(late, &s), -EAGAIN);
        put(e, "new");
        wait_for(e, early, "new", NULL);
        wait_for(e, late, "new", NULL);
        wait_for(e, all, "new", NULL);
        ev_watcher_close(early);
        ev_watcher_close(all);
        ev_watcher_close(late);
        ev_value_etcd_free(e);
}

Test(etcd, free_gives_the_last_unseen_state_then_connreset) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/free", 0);
        ev_value_watcher *w = watch(e, 0);
        struct pollfd pfd = { .fd = ev_watcher_get_fd(w), .events = POLLIN };
        ev_value_snapshot *s;

        wait_for(e, w, NULL, NULL);
        put(e, "last");
        /* Until the watcher's fd says the put arrived, without taking it. */
        cr_assert_eq(etcd_test_drive(e, w, WAIT_MS), 1);
        ev_value_etcd_free(e);
        cr_assert_eq(ev_watcher_get(w, &s), 0);
        cr_assert(etcd_test_is(s, "last"));
        ev_snapshot_unref(s);
        for (int i = 0; i < 3; i++) {
                cr_assert_eq(ev_watcher_get(w, &s), -ECONNRESET);
                cr_assert_eq(ev_watcher_wait(w, 0, -1, &s), -ECONNRESET);
                cr_assert_eq(poll(&pfd, 1, 0), 1, "the fd stays readable");
        }
        ev_watcher_close(w);
}

Test(etcd, the_thread_flag_runs_the_loop) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/thread", EV_VALUE_ETCD_THREAD);
        ev_value_watcher *w = watch(e, 0);
        ev_value_snapshot *s;
        uint64_t at;

        cr_assert_eq(ev_value_etcd_get_fd(e), -EOPNOTSUPP);
        cr_assert_eq(ev_value_etcd_get_timeout(e, &at), -EOPNOTSUPP);
        cr_assert_eq(ev_value_etcd_process(e), -EOPNOTSUPP);
        cr_assert_eq(ev_watcher_wait(w, WAIT_MS, -1, &s), 0);
        cr_assert(ev_snapshot_is_absent(s));
        ev_snapshot_unref(s);
        put(e, "threaded");
        cr_assert_eq(ev_watcher_wait(w, WAIT_MS, -1, &s), 0);
        cr_assert(etcd_test_is(s, "threaded"));
        ev_snapshot_unref(s);
        ev_value_etcd_free(e);
        cr_assert_eq(ev_watcher_wait(w, WAIT_MS, -1, &s), -ECONNRESET);
        ev_watcher_close(w);
}

Test(etcd, last_contact_advances_while_healthy) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/contact", 0);
        ev_value_watcher *w = watch(e, 0);
        uint64_t first, later;

        cr_assert_eq(ev_value_etcd_get_last_contact(e, &first), -EAGAIN);
        wait_for(e, w, NULL, NULL);
        cr_assert_eq(ev_value_etcd_get_last_contact(e, &first), 0);
        cr_assert_leq(first, etcd_test_now_usec());
        /* A quiet key: the contact interval (2 s) alone must refresh it. */
        assert_quiet(e, w, 3000);
        cr_assert_eq(ev_value_etcd_get_last_contact(e, &later), 0);
        cr_assert_gt(later, first);
        cr_assert_lt(etcd_test_now_usec() - later, 2500000, "stale by %" PRIu64 " µs",
                     etcd_test_now_usec() - later);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

Test(etcd, too_large_a_put_is_emsgsize) {
        ev_value_etcd *e = open_key(etcd_cluster_endpoints(cluster), "/large", 0);
        size_t size = 3000 * 1000;
        char *data = calloc(1, size);

        cr_assert(data);
        /* Above etcd's limit, and above gRPC's (2 MiB), which answers first. */
        cr_assert_eq(ev_value_etcd_put(e, data, 1600 * 1000, WAIT_MS), -EMSGSIZE);
        cr_assert_eq(ev_value_etcd_put(e, data, size, WAIT_MS), -EMSGSIZE);
        cr_assert_eq(ev_value_etcd_put(e, data, 1400 * 1000, WAIT_MS), 0);
        /* The transaction carries the bytes twice: to compare, to put. */
        cr_assert_eq(ev_value_etcd_put_flags(e, data, 1400 * 1000, EV_VALUE_SET_IF_CHANGED,
                                             WAIT_MS), -EMSGSIZE);
        cr_assert_eq(ev_value_etcd_put_flags(e, data, 700 * 1000, EV_VALUE_SET_IF_CHANGED,
                                             WAIT_MS), 1);
        free(data);
        ev_value_etcd_free(e);
}

/* Connections cut between the library and the member: each reconnection
 * reads the key again, and a read that finds the same state wakes nobody. */
Test(etcd, reconnections_resume_and_wake_nobody) {
        struct tcp_proxy *proxy;
        ev_value_etcd *e, *writer;
        ev_value_watcher *w;
        char endpoints[256];
        uint64_t version = 0;
        unsigned accepted;

        cr_assert_eq(tcp_proxy_start(etcd_cluster_member_hostport(cluster, 0), &proxy), 0);
        snprintf(endpoints, sizeof(endpoints), "%s,%s", tcp_proxy_url(proxy), tcp_proxy_url(proxy));
        e = open_key(endpoints, "/cut", 0);
        writer = open_key(etcd_cluster_endpoints(cluster), "/cut", 0);
        w = watch(e, 0);
        put(writer, "before");
        cr_assert_eq(etcd_test_wait_for(e, w, "before", WAIT_MS, &version), 0);
        for (int i = 0; i < 5; i++) {
                accepted = tcp_proxy_accepted(proxy);
                cr_assert_gt(tcp_proxy_cut(proxy), 0, "nothing was connected");
                /* Reconnected (a new connection) without waking anyone. */
                for (int64_t end = etcd_test_now_ms() + WAIT_MS;
                     tcp_proxy_accepted(proxy) == accepted && etcd_test_now_ms() < end;)
                        cr_assert_eq(etcd_test_drive(e, w, 50), 0, "woke on a reconnection");
                cr_assert_gt(tcp_proxy_accepted(proxy), accepted);
                assert_quiet(e, w, 200);
        }
        put(writer, "after");
        cr_assert_eq(etcd_test_wait_for(e, w, "after", WAIT_MS, &version), 0);
        ev_watcher_close(w);
        ev_value_etcd_free(writer);
        ev_value_etcd_free(e);
        tcp_proxy_free(proxy);
}

/* The watcher cannot reach the member while the key is written, deleted
 * and the history compacted past all of it (the delete at the compaction
 * revision itself, which etcd 3.4 can lose from a watch). */
Test(etcd, compaction_while_disconnected) {
        struct tcp_proxy *proxy;
        ev_value_etcd *e, *writer;
        ev_value_watcher *w;
        uint64_t version = 0, deleted_at;
        char revision[32];

        cr_assert_eq(tcp_proxy_start(etcd_cluster_member_hostport(cluster, 0), &proxy), 0);
        e = open_key(tcp_proxy_url(proxy), "/compacted", 0);
        writer = open_key(etcd_cluster_endpoints(cluster), "/compacted", 0);
        w = watch(e, 0);
        put(writer, "seen");
        cr_assert_eq(etcd_test_wait_for(e, w, "seen", WAIT_MS, &version), 0);
        cr_assert_eq(tcp_proxy_set_blackhole(proxy, true), 0);
        tcp_proxy_cut(proxy);
        put(writer, "unseen");
        cr_assert_eq(ev_value_etcd_delete(writer, WAIT_MS), 0);
        cr_assert_gt(etcd_cluster_compact(cluster), 0);
        deleted_at = 0;
        {
                ev_value_watcher *probe = watch(writer, 0);
                ev_value_snapshot *s;

                cr_assert_eq(etcd_test_wait_for(writer, probe, NULL, WAIT_MS, NULL), 0);
                cr_assert_eq(ev_value_etcd_get(writer, &s), 0);
                deleted_at = ev_snapshot_version(s);
                ev_snapshot_unref(s);
                ev_watcher_close(probe);
        }
        snprintf(revision, sizeof(revision), "%" PRIu64, deleted_at);
        etcd_test_drive(e, w, 500);
        cr_assert_eq(tcp_proxy_set_blackhole(proxy, false), 0);
        cr_assert_eq(etcd_test_wait_for(e, w, NULL, 3 * WAIT_MS, &version), 0,
                     "the delete at %s was lost", revision);
        cr_assert_geq(version, deleted_at);
        ev_watcher_close(w);
        ev_value_etcd_free(writer);
        ev_value_etcd_free(e);
        tcp_proxy_free(proxy);
}

/* A member that accepts connections and answers nothing: the library must
 * not block, and must notice within the request timeout. */
Test(etcd, a_member_that_hangs_blocks_nothing) {
        struct tcp_proxy *proxy;
        ev_value_etcd *e;
        ev_value_watcher *w;
        int64_t start, slowest = 0;

        cr_assert_eq(tcp_proxy_start(etcd_cluster_member_hostport(cluster, 0), &proxy), 0);
        cr_assert_eq(tcp_proxy_set_blackhole(proxy, true), 0);
        start = etcd_test_now_ms();
        e = open_key(tcp_proxy_url(proxy), "/hang", 0);
        cr_assert_lt(etcd_test_now_ms() - start, 1000, "ev_value_etcd_new blocked");
        w = watch(e, 0);
        for (int64_t end = etcd_test_now_ms() + 3000; etcd_test_now_ms() < end;) {
                int64_t before = etcd_test_now_ms();

                cr_assert_eq(ev_value_etcd_process(e), 0);
                if (etcd_test_now_ms() - before > slowest)
                        slowest = etcd_test_now_ms() - before;
                etcd_test_drive(e, w, 20);
        }
        cr_assert_lt(slowest, 1000, "ev_value_etcd_process blocked %" PRId64 " ms", slowest);
        cr_assert_gt(tcp_proxy_accepted(proxy), 1, "the hung read was not given up and retried");
        cr_assert_eq(tcp_proxy_set_blackhole(proxy, false), 0);
        wait_for(e, w, NULL, NULL);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
        tcp_proxy_free(proxy);
}

/* No member at all: writes fail at once, and the follower backs off
 * instead of spinning. */
Test(etcd, no_member_answers) {
        struct tcp_proxy *proxy;
        char endpoints[256];
        ev_value_etcd *e;
        ev_value_watcher *w;
        int processed = 0;

        /* A port nothing listens on: the proxy's, once it is freed. */
        cr_assert_eq(tcp_proxy_start(etcd_cluster_member_hostport(cluster, 0), &proxy), 0);
        snprintf(endpoints, sizeof(endpoints), "%s", tcp_proxy_url(proxy));
        tcp_proxy_free(proxy);
        e = open_key(endpoints, "/nobody", 0);
        cr_assert_eq(ev_value_etcd_put(e, "x", 1, WAIT_MS), -ECONNREFUSED);
        cr_assert_eq(ev_value_etcd_put_flags(e, "x", 1, EV_VALUE_SET_IF_CHANGED, WAIT_MS),
                     -ECONNREFUSED);
        cr_assert_eq(ev_value_etcd_delete(e, -1), -ECONNREFUSED);
        w = watch(e, 0);
        for (int64_t end = etcd_test_now_ms() + 2000; etcd_test_now_ms() < end; processed++) {
                struct pollfd pfd = { .fd = ev_value_etcd_get_fd(e), .events = POLLIN };
                uint64_t at, now = etcd_test_now_usec();

                cr_assert_eq(ev_value_etcd_get_timeout(e, &at), 0);
                cr_assert_neq(at, UINT64_MAX, "no timer while nothing answers");
                poll(&pfd, 1, at <= now ? 0 : (int)((at - now + 999) / 1000));
                cr_assert_eq(ev_value_etcd_process(e), 0);
        }
        cr_assert_eq(ev_watcher_get(w, &(ev_value_snapshot *){ NULL }), -EAGAIN);
        /* Each wake costs a refused connection; with backoff from 100 ms
         * doubling, two seconds hold a handful of rounds, not thousands. */
        cr_assert_lt(processed, 200, "%d wakes in 2 s: the follower spins", processed);
        ev_watcher_close(w);
        ev_value_etcd_free(e);
}

/* Arguments, without a cluster. */
Test(etcd_args, every_function_checks_its_arguments) {
        static const char *const bad_endpoints[] = {
                "", ",", "http://", "http://:2379", "http://h", "http://h:", "http://h:0",
                "http://h:65536", "http://h:1,", ",http://h:1", "http://h:1,,http://h:2",
                "https://h:1", "ftp://h:1", "h:1", "http://h:1/x", "http://h h:1",
                "http://[::1:1", "http://h:1 ",
        };
        ev_value_etcd *e = (ev_value_etcd *)1;
        ev_value_watcher *w;
        ev_value_snapshot *s;
        uint64_t at;

        for (size_t i = 0; i < sizeof(bad_endpoints) / sizeof(bad_endpoints[0]); i++) {
                cr_assert_eq(ev_value_etcd_new(bad_endpoints[i], "k", 0, &e), -EINVAL,
                             "endpoints \"%s\" accepted", bad_endpoints[i]);
                cr_assert_eq(e, (ev_value_etcd *)1, "output written on failure");
        }
        cr_assert_eq(ev_value_etcd_new(NULL, "k", 0, &e), -EINVAL);
        cr_assert_eq(ev_value_etcd_new("http://127.0.0.1:1", NULL, 0, &e), -EINVAL);
        cr_assert_eq(ev_value_etcd_new("http://127.0.0.1:1", "", 0, &e), -EINVAL);
        cr_assert_eq(ev_value_etcd_new("http://127.0.0.1:1", "k", 1u << 7, &e), -EINVAL);
        cr_assert_eq(ev_value_etcd_new("http://127.0.0.1:1", "k", 0, NULL), -EINVAL);
        cr_assert_eq(e, (ev_value_etcd *)1);

        cr_assert_eq(ev_value_etcd_get_fd(NULL), -EINVAL);
        cr_assert_eq(ev_value_etcd_get_timeout(NULL, &at), -EINVAL);
        cr_assert_eq(ev_value_etcd_process(NULL), -EINVAL);
        cr_assert_eq(ev_value_etcd_watch(NULL, 0, &w), -EINVAL);
        cr_assert_eq(ev_value_etcd_get(NULL, &s), -EINVAL);
        cr_assert_eq(ev_value_etcd_put(NULL, "x", 1, 0), -EINVAL);
        cr_assert_eq(ev_value_etcd_put_flags(NULL, "x", 1, 0, 0), -EINVAL);
        cr_assert_eq(ev_value_etcd_delete(NULL, 0), -EINVAL);
        cr_assert_eq(ev_value_etcd_get_last_contact(NULL, &at), -EINVAL);
        cr_assert_null(ev_value_etcd_free(NULL));

        cr_assert_eq(ev_value_etcd_new("http://127.0.0.1:1,http://localhost:2/,http://[::1]:3",
                                       "k", 0, &e), 0, "valid endpoints refused");
        cr_assert_eq(ev_value_etcd_get_timeout(e, NULL), -EINVAL);
        cr_assert_eq(ev_value_etcd_watch(e, 0, NULL), -EINVAL);
        cr_assert_eq(ev_value_etcd_watch(e, 1u << 7, &w), -EINVAL);
        cr_assert_eq(ev_value_etcd_get(e, NULL), -EINVAL);
        cr_assert_eq(ev_value_etcd_get(e, &s), -EAGAIN);
        cr_assert_eq(ev_value_etcd_put(e, NULL, 1, 0), -EINVAL);
        cr_assert_eq(ev_value_etcd_put(e, "x", 1, -2), -EINVAL);
        cr_assert_eq(ev_value_etcd_put_flags(e, NULL, 1, EV_VALUE_SET_IF_CHANGED, 0), -EINVAL);
        cr_assert_eq(ev_value_etcd_put_flags(e, "x", 1, 1u << 1, 0), -EINVAL);
        cr_assert_eq(ev_value_etcd_put_flags(e, "x", 1, EV_VALUE_SET_IF_CHANGED, -2), -EINVAL);
        cr_assert_eq(ev_value_etcd_delete(e, -2), -EINVAL);
        cr_assert_eq(ev_value_etcd_get_last_contact(e, NULL), -EINVAL);
        cr_assert_eq(ev_value_etcd_get_last_contact(e, &at), -EAGAIN);
        cr_assert_geq(ev_value_etcd_get_fd(e), 0);
        ev_value_etcd_free(e);
}
