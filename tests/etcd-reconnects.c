/* SPDX-License-Identifier: MIT */
/*
 * A thousand reconnections, for valgrind and AddressSanitizer to find any
 * leak or misuse on the paths a connection fault takes: the library
 * follows one real etcd member through a TCP proxy (tests/tcp-proxy.c)
 * that cuts every connection, a thousand times, each time waiting until
 * the library read the key again; then a put must still be seen.  A plain
 * program (exit 0 pass, 1 fail, 77 skip) so that make check-valgrind can
 * run it.  EV_VALUE_RECONNECTS sets the count.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ev-value-etcd.h"
#include "etcd-cluster.h"
#include "etcd-test.h"
#include "tcp-proxy.h"

#define WAIT_MS 30000

static int fail(const char *what, int r) {
        fprintf(stderr, "etcd-reconnects: %s: %s\n", what, strerror(r < 0 ? -r : r));
        return 1;
}

/* Cut every connection and drive e until it reconnected: it read the key
 * again (its last contact moves past the moment of the cut), or, when the
 * cut caught a request before its answer (curl then sends it again on a
 * new connection), it connected anew and had 20 ms to go on. */
static int cut_and_reconnect(struct tcp_proxy *proxy, ev_value_etcd *e, ev_value_watcher *w) {
        unsigned accepted = tcp_proxy_accepted(proxy);
        uint64_t cut_at, contact = 0;
        int64_t start = etcd_test_now_ms(), end = start + WAIT_MS;

        tcp_proxy_cut(proxy);
        cut_at = etcd_test_now_usec();
        while (ev_value_etcd_get_last_contact(e, &contact) == 0 && contact <= cut_at &&
               !(tcp_proxy_accepted(proxy) > accepted && etcd_test_now_ms() - start >= 20)) {
                struct pollfd pfd[2] = {
                        { .fd = ev_value_etcd_get_fd(e), .events = POLLIN },
                        { .fd = ev_watcher_get_fd(w), .events = POLLIN },
                };

                if (etcd_test_now_ms() > end)
                        return -ETIMEDOUT;
                /* One wake at a time (the fd, or the timerfd inside it). */
                poll(pfd, 2, 10);
                if (pfd[1].revents & POLLIN)
                        return -EILSEQ; /* the same state woke the watcher */
                ev_value_etcd_process(e);
        }
        return 0;
}

static int run(struct etcd_cluster *cluster, int count) {
        struct tcp_proxy *proxy;
        ev_value_etcd *e = NULL, *writer = NULL;
        ev_value_watcher *w = NULL;
        char endpoints[256];
        uint64_t version = 0;
        int r = tcp_proxy_start(etcd_cluster_member_hostport(cluster, 0), &proxy);

        if (r < 0)
                return fail("tcp_proxy_start", r);
        /* The proxy twice: a failed member is followed by the next at once,
         * while one alone would wait out the backoff each time. */
        snprintf(endpoints, sizeof(endpoints), "%s,%s", tcp_proxy_url(proxy), tcp_proxy_url(proxy));
        r = ev_value_etcd_new(endpoints, "/reconnects", 0, &e);
        if (r == 0)
                r = ev_value_etcd_new(etcd_cluster_endpoints(cluster), "/reconnects", 0, &writer);
        if (r == 0)
                r = ev_value_etcd_watch(e, 0, &w);
        if (r == 0)
                r = ev_value_etcd_put(writer, "before", 6, WAIT_MS);
        if (r == 0)
                r = etcd_test_wait_for(e, w, "before", WAIT_MS, &version);
        for (int i = 0; r == 0 && i < count; i++)
                r = cut_and_reconnect(proxy, e, w);
        if (r == 0)
                r = ev_value_etcd_put(writer, "after", 5, WAIT_MS);
        if (r == 0)
                r = etcd_test_wait_for(e, w, "after", WAIT_MS, &version);
        if (r == 0 && tcp_proxy_accepted(proxy) < (unsigned)count)
                r = -EPROTO;
        if (r < 0)
                fail("following through reconnections", r);
        else
                printf("etcd-reconnects: %d reconnections, %u connections accepted\n", count,
                       tcp_proxy_accepted(proxy));
        ev_watcher_close(w);
        ev_value_etcd_free(writer);
        ev_value_etcd_free(e);
        tcp_proxy_free(proxy);
        return r < 0;
}

int main(void) {
        const char *env = getenv("EV_VALUE_RECONNECTS");
        struct etcd_cluster *cluster;
        int r = etcd_cluster_start(1, &cluster);

        if (r == -ENOENT) {
                printf("etcd-reconnects: SKIP: %s\n", etcd_cluster_absent_reason());
                return 77;
        }
        if (r < 0)
                return fail("etcd_cluster_start", r);
        r = run(cluster, env ? atoi(env) : 1000);
        etcd_cluster_free(cluster);
        return r;
}
