/* SPDX-License-Identifier: MIT */
/*
 * libevvalue across processes: a value served by one process over an
 * AF_UNIX SOCK_SEQPACKET socket and watched by others through ordinary
 * ev_value_watchers.  The producer's loop polls ev_value_server_get_fd()
 * and calls ev_value_server_process(); a set reaches remote watchers
 * itself.  A consumer's loop polls the watcher's fd and nothing else.  The
 * man pages (ev_value_serve(3), ev_value_connect(3), libevvalue(7)) are the
 * reference.
 */
#ifndef EV_VALUE_IPC_H
#define EV_VALUE_IPC_H

#include "ev-value.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ev_value_server ev_value_server; /* a value served on a socket */

/* Flags of ev_value_serve() and ev_value_serve_path(). */
enum {
        /* Peers with the server's effective uid (or uid 0) may set the
         * value with ev_value_remote_set(). */
        EV_VALUE_SERVE_ALLOW_SET = 1u << 0,
};

/* Serve v on listen_fd, a listening AF_UNIX SOCK_SEQPACKET socket the caller keeps. */
int ev_value_serve(ev_value *v, int listen_fd, unsigned flags, ev_value_server **ret);
/* Create, bind and listen on path (a leading '@' names an abstract socket), then serve v. */
int ev_value_serve_path(ev_value *v, const char *path, unsigned flags, ev_value_server **ret);
/* The fd the producer's loop polls for POLLIN before ev_value_server_process(). */
int ev_value_server_get_fd(const ev_value_server *srv);
/* Accept peers, read their messages, drop broken ones; never blocks. */
int ev_value_server_process(ev_value_server *srv);
/* Peers connected now; 0 for NULL. */
size_t ev_value_server_get_peer_count(const ev_value_server *srv);
/* Disconnect every peer and stop serving; NULL is accepted; returns NULL. */
ev_value_server *ev_value_server_free(ev_value_server *srv);

/* Watch the value served on path: an ordinary watcher whose fd is the connection. */
int ev_value_connect(const char *path, unsigned flags, ev_value_watcher **ret);
/* ev_value_connect() on a connected socket, adopted on success. */
int ev_value_connect_fd(int fd, unsigned flags, ev_value_watcher **ret);
/* Set the value served on path, waiting at most timeout_ms (-1: no limit) for the answer. */
int ev_value_remote_set(const char *path, const void *data, size_t size, int timeout_ms);
/* ev_value_remote_set() with flags (EV_VALUE_SET_IF_CHANGED): 1 when set, 0 when skipped. */
int ev_value_remote_set_flags(const char *path, const void *data, size_t size,
                              unsigned flags, int timeout_ms);

/* For __attribute__((cleanup)): free *p if it is not NULL. */
static inline void ev_value_server_freep(ev_value_server **p) {
        if (*p)
                *p = ev_value_server_free(*p);
}

#ifdef __cplusplus
}
#endif

#endif /* EV_VALUE_IPC_H */
