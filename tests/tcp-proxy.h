/* SPDX-License-Identifier: MIT */
/*
 * Test harness: a loopback TCP proxy on a thread of its own, put between
 * the library and one etcd member to inject connection faults: cut every
 * connection in progress (with a reset), or turn into a black hole that
 * accepts connections and then forwards nothing (a member that hangs).
 * Each call returns once the proxy's thread has applied it.  The thread
 * blocks every signal, so signals meant for the test never land on it.
 */
#ifndef EV_VALUE_TESTS_TCP_PROXY_H
#define EV_VALUE_TESTS_TCP_PROXY_H

#include <stdbool.h>

struct tcp_proxy;

/* Listen on 127.0.0.1:<free port> and forward every accepted connection to
 * upstream "host:port" (IPv4 literal).  An upstream that refuses gets the
 * client's connection reset. */
int tcp_proxy_start(const char *upstream_hostport, struct tcp_proxy **ret);
/* "http://127.0.0.1:P" */
const char *tcp_proxy_url(const struct tcp_proxy *p);
/* "127.0.0.1:P" */
const char *tcp_proxy_hostport(const struct tcp_proxy *p);
/* Close every connection in progress (both sides, with a reset: SO_LINGER
 * 0), keep listening; returns how many were cut (or -errno). */
int tcp_proxy_cut(struct tcp_proxy *p);
/* While on: accept connections but forward nothing in either direction and
 * close nothing (a member that hangs); off: forward again (connections
 * accepted while on are cut when it goes off).  0 or -errno. */
int tcp_proxy_set_blackhole(struct tcp_proxy *p, bool on);
/* Number of connections accepted so far. */
unsigned tcp_proxy_accepted(const struct tcp_proxy *p);
/* Stop the thread, close everything, free.  NULL ok. */
void tcp_proxy_free(struct tcp_proxy *p);

#endif
