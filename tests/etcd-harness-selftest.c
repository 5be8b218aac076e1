/* SPDX-License-Identifier: MIT */
/*
 * Self-test of the etcd test harness (etcd-cluster.c, tcp-proxy.c) against
 * the real etcd: a 1-member cluster with etcdctl put and get; a 3-member
 * cluster that keeps a quorum with one member killed, loses its leader
 * with two, and recovers when both restart; a kill and restart of one
 * member; compaction; and a TCP proxy to one member that cuts its
 * connections and turns into a black hole and back.  At the end no etcd
 * may be left running and no temporary directory left on disk.  Prints
 * one line per phase with its duration in ms; exit 0 pass, 1 fail, 77
 * skip (etcd or etcdctl absent, with the reason).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etcd-cluster.h"
#include "tcp-proxy.h"

#define HEALTHY_MS 20000

static struct etcd_cluster *one, *three;
static struct tcp_proxy *proxy;
static CURL *curl;
static pid_t pids[1 + 3];
static char dirs[2][PATH_MAX];
static int64_t phase_start;

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void phase_begin(void) {
        phase_start = now_ms();
}

static void phase_end(const char *what) {
        printf("%-52s %6" PRId64 " ms\n", what, now_ms() - phase_start);
        fflush(stdout);
}

static void release_all(void) {
        tcp_proxy_free(proxy);
        proxy = NULL;
        etcd_cluster_free(one);
        one = NULL;
        etcd_cluster_free(three);
        three = NULL;
        if (curl)
                curl_easy_cleanup(curl);
        curl = NULL;
}

/* Reports a failed check with the members' logs, releases everything (so
 * that even a failure leaves nothing behind) and exits 1. */
#define CHECK(cond, ...)                                                                          \
        do {                                                                                      \
                if (!(cond)) {                                                                    \
                        fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);           \
                        fprintf(stderr, __VA_ARGS__);                                             \
                        fprintf(stderr, "\n");                                                    \
                        etcd_cluster_print_logs(one, stderr);                                     \
                        etcd_cluster_print_logs(three, stderr);                                   \
                        release_all();                                                            \
                        exit(1);                                                                  \
                }                                                                                 \
        } while (0)

static void chomp(char *s) {
        size_t n = strlen(s);

        while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r'))
                s[--n] = '\0';
}

static size_t discard(char *data, size_t size, size_t nmemb, void *userdata) {
        (void)data;
        (void)userdata;
        return size * nmemb;
}

/* GET url/health with the one curl handle (so that its connection is kept
 * alive between calls, through the proxy); the CURLcode. */
static CURLcode get_health(const char *base, long timeout_ms, long *code) {
        char url[64];

        snprintf(url, sizeof(url), "%s/health", base);
        curl_easy_setopt(curl, CURLOPT_URL, url);
        curl_easy_setopt(curl, CURLOPT_PROXY, "");
        curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout_ms);
        curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
        *code = 0;
        CURLcode rc = curl_easy_perform(curl);
        if (rc == CURLE_OK)
                curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, code);
        return rc;
}

static void wait_all_healthy(struct etcd_cluster *c) {
        for (unsigned i = 0; i < etcd_cluster_size(c); i++) {
                int r = etcd_cluster_wait_healthy(c, i, HEALTHY_MS);

                CHECK(r == 0, "member %u: %s", i, strerror(-r));
        }
}

static void put_get(struct etcd_cluster *c, int member, const char *key, const char *value) {
        const char *put[] = { "put", key, value, NULL };
        const char *get[] = { "get", key, "--print-value-only", NULL };
        char out[256];
        int r;

        r = etcd_cluster_etcdctl(c, member, NULL, 0, put);
        CHECK(r == 0, "etcdctl put %s %s: %d: %s", key, value, r, etcd_cluster_etcdctl_stderr(c));
        r = etcd_cluster_etcdctl(c, member, out, sizeof(out), get);
        CHECK(r == 0, "etcdctl get %s: %d: %s", key, r, etcd_cluster_etcdctl_stderr(c));
        chomp(out);
        CHECK(strcmp(out, value) == 0, "etcdctl get %s gave \"%s\", not \"%s\"", key, out, value);
}

int main(void) {
        struct stat st;
        long code;
        CURLcode rc;
        int64_t rev;
        int r, n;

        phase_begin();
        r = etcd_cluster_start(1, &one);
        if (r == -ENOENT) {
                fprintf(stderr, "SKIP: %s\n", etcd_cluster_absent_reason());
                return 77;
        }
        CHECK(r == 0, "start 1: %s", strerror(-r));
        phase_end("start 1 member (until healthy)");
        CHECK(etcd_cluster_size(one) == 1, "size %u", etcd_cluster_size(one));
        CHECK(strcmp(etcd_cluster_endpoints(one), etcd_cluster_member_url(one, 0)) == 0,
              "endpoints %s", etcd_cluster_endpoints(one));
        CHECK(etcd_cluster_member_running(one, 0), "member 0 not running");
        pids[0] = etcd_cluster_member_pid(one, 0);
        snprintf(dirs[0], sizeof(dirs[0]), "%s", etcd_cluster_dir(one));

        phase_begin();
        put_get(one, -1, "k", "v");
        phase_end("1 member: etcdctl put + get");

        phase_begin();
        r = etcd_cluster_start(3, &three);
        CHECK(r == 0, "start 3: %s", strerror(-r));
        phase_end("start 3 members (until all healthy)");
        for (unsigned i = 0; i < 3; i++)
                pids[1 + i] = etcd_cluster_member_pid(three, i);
        snprintf(dirs[1], sizeof(dirs[1]), "%s", etcd_cluster_dir(three));

        phase_begin();
        put_get(three, -1, "k3", "v3");
        phase_end("3 members: etcdctl put + get");

        phase_begin();
        CHECK(etcd_cluster_kill(three, 0) == 0, "kill 0");
        CHECK(!etcd_cluster_member_running(three, 0), "member 0 still running");
        CHECK(etcd_cluster_kill(three, 0) == 0, "kill 0 again");
        for (unsigned i = 1; i < 3; i++) {
                r = etcd_cluster_wait_healthy(three, i, HEALTHY_MS);
                CHECK(r == 0, "member %u after kill 0: %s", i, strerror(-r));
        }
        phase_end("kill m0: m1, m2 healthy (quorum)");

        phase_begin();
        CHECK(etcd_cluster_kill(three, 1) == 0, "kill 1");
        r = etcd_cluster_wait_healthy(three, 2, 3000);
        CHECK(r == -ETIMEDOUT, "member 2 with no quorum: %d, not -ETIMEDOUT", r);
        CHECK(etcd_cluster_member_running(three, 2), "member 2 not running");
        phase_end("kill m1: m2 not healthy for 3 s (no quorum)");

        phase_begin();
        CHECK(etcd_cluster_restart(three, 2) == -EBUSY, "restart of a running member");
        CHECK(etcd_cluster_restart(three, 0) == 0, "restart 0");
        CHECK(etcd_cluster_restart(three, 1) == 0, "restart 1");
        wait_all_healthy(three);
        phase_end("restart m0, m1: all healthy");
        pids[1] = etcd_cluster_member_pid(three, 0);
        pids[2] = etcd_cluster_member_pid(three, 1);

        phase_begin();
        put_get(three, -1, "k3", "v3-after");
        put_get(three, 0, "k0", "v0");
        phase_end("3 members: etcdctl put + get after recovery");

        /* One member down and back while the others keep the quorum: the
         * time a test waits for a member it killed. */
        phase_begin();
        CHECK(etcd_cluster_kill(three, 2) == 0, "kill 2");
        CHECK(etcd_cluster_restart(three, 2) == 0, "restart 2");
        r = etcd_cluster_wait_healthy(three, 2, HEALTHY_MS);
        CHECK(r == 0, "member 2 after restart: %s", strerror(-r));
        phase_end("kill + restart m2: m2 healthy");
        pids[3] = etcd_cluster_member_pid(three, 2);

        phase_begin();
        rev = etcd_cluster_compact(three);
        CHECK(rev > 0, "compact: %" PRId64 ": %s", rev, etcd_cluster_etcdctl_stderr(three));
        /* Again with no write in between: the same revision. */
        CHECK(etcd_cluster_compact(three) == rev, "second compact");
        phase_end("compact (twice)");

        phase_begin();
        curl = curl_easy_init();
        CHECK(curl, "curl_easy_init");
        r = tcp_proxy_start(etcd_cluster_member_hostport(three, 2), &proxy);
        CHECK(r == 0, "tcp_proxy_start: %s", strerror(-r));
        rc = get_health(tcp_proxy_url(proxy), 2000, &code);
        CHECK(rc == CURLE_OK && code == 200, "GET through the proxy: %s, %ld",
              curl_easy_strerror(rc), code);
        CHECK(tcp_proxy_accepted(proxy) == 1, "accepted %u", tcp_proxy_accepted(proxy));
        /* curl keeps its connection: one to cut. */
        n = tcp_proxy_cut(proxy);
        CHECK(n == 1, "cut %d connections, not 1", n);
        rc = get_health(tcp_proxy_url(proxy), 2000, &code);
        CHECK(rc == CURLE_OK && code == 200, "GET after cut: %s, %ld", curl_easy_strerror(rc),
              code);
        CHECK(tcp_proxy_accepted(proxy) == 2, "accepted %u", tcp_proxy_accepted(proxy));
        phase_end("proxy: GET, cut, GET");

        phase_begin();
        CHECK(tcp_proxy_set_blackhole(proxy, true) == 0, "blackhole on");
        rc = get_health(tcp_proxy_url(proxy), 1000, &code);
        CHECK(rc == CURLE_OPERATION_TIMEDOUT, "GET through a black hole: %s",
              curl_easy_strerror(rc));
        CHECK(tcp_proxy_set_blackhole(proxy, false) == 0, "blackhole off");
        rc = get_health(tcp_proxy_url(proxy), 2000, &code);
        CHECK(rc == CURLE_OK && code == 200, "GET after the black hole: %s, %ld",
              curl_easy_strerror(rc), code);
        phase_end("proxy: black hole (1 s timeout), then GET");

        phase_begin();
        /* With the proxy's upstream down, connections are reset. */
        CHECK(etcd_cluster_kill(three, 2) == 0, "kill 2");
        rc = get_health(tcp_proxy_url(proxy), 2000, &code);
        CHECK(rc != CURLE_OK && rc != CURLE_OPERATION_TIMEDOUT,
              "GET through the proxy to a dead member: %s", curl_easy_strerror(rc));
        phase_end("proxy: upstream killed, GET fails at once");

        phase_begin();
        release_all();
        phase_end("free");

        for (size_t k = 0; k < sizeof(pids) / sizeof(pids[0]); k++)
                CHECK(pids[k] > 0 && kill(pids[k], 0) < 0 && errno == ESRCH,
                      "etcd pid %ld still there", (long)pids[k]);
        CHECK(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "a child is left");
        for (size_t k = 0; k < 2; k++)
                CHECK(stat(dirs[k], &st) < 0 && errno == ENOENT, "%s still there", dirs[k]);
        curl_global_cleanup();
        printf("PASS\n");
        return 0;
}
