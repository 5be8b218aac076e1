/* SPDX-License-Identifier: MIT */
/*
 * Servers: a value served to other processes on a listening socket.  The
 * producer's loop polls the server's epoll fd and calls process, which
 * accepts peers and reads their messages; sets reach the peers by
 * themselves, through the hook the server attaches to the value (notify.c):
 * the setting thread sends each peer that is ready the newest state.
 *
 * At most one STATE is in flight per peer.  The server's end of each
 * connection has the smallest send buffer, so while the peer has not read
 * its STATE that end is unwritable (checked when serving starts: Linux's
 * AF_UNIX accounting); the peer's recv makes it writable, which an epoll
 * of every peer for EPOLLOUT | EPOLLET (arm_fd) reports once.  A set
 * collects those acknowledgements with one epoll_wait and sends to the
 * peers that are ready and behind; a peer that does not read costs it
 * nothing.  A peer that acknowledges after the set that it missed is sent
 * the newer state by the next set or by process, which arm_fd wakes while
 * such a peer exists (and only then: arm_poll).
 *
 * Sets come from any thread, concurrently with process: whoever takes
 * `busy` does the work, and one that finds it taken leaves `pending` for
 * the holder, which publishes again before it lets go.  So a set never
 * waits, and sends never block (MSG_DONTWAIT).
 * lib/ipc/server.pml models this for spin.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "internal.h"
#include "protocol.h"

/* A peer of one uid beyond this many is refused with EUSERS. */
#define MAX_PEERS_PER_UID 4096
/* Work one process call does at most, so that it returns in bounded time. */
#define PROCESS_EVENTS 64
#define PROCESS_MESSAGES_PER_PEER 4
/* The send buffer a peer's last message may use (an ERROR, or a state at
 * the end), when an unread STATE fills the smallest one. */
#define FINAL_SNDBUF 65536

enum peer_role { PEER_NEW, PEER_WATCHER, PEER_SETTER };

struct peer {
        struct peer *prev, *next;               /* every peer of the server */
        struct peer *ready_prev, *ready_next;   /* on srv->ready */
        int fd;
        uid_t uid;
        enum peer_role role;
        bool ready;             /* a watcher whose last STATE was read */
        bool has_page;          /* the state page was sent */
        bool finished;          /* the close was sent and the write side shut */
        bool dead;              /* dropped: freed at the end of the busy section */
        uint64_t sent;          /* the state it was sent last */
};

struct uid_count {
        uid_t uid;
        size_t n;
};

struct ev_value_server {
        struct ev__notify_hook hook;
        ev_value *value;
        unsigned flags;
        uid_t euid;
        int listen_fd;
        bool listen_nonblocking;
        bool listen_polled;     /* in epoll_fd's interest: not when out of fds */
        bool owns_listen_fd;    /* made by serve_path: closed on free */
        char *path;             /* serve_path's file, unlinked on free; NULL otherwise */
        int epoll_fd;           /* listen_fd, arm_fd, every peer for EPOLLIN */
        int arm_fd;             /* every watcher for EPOLLOUT | EPOLLET */
        struct ev__ipc_page *page;
        int page_fd;
        atomic_flag busy;
        atomic_bool pending;
        uint64_t published;     /* the newest state published */
        size_t n_watchers;      /* peers registered in arm_fd */
        size_t n_in_flight;     /* watchers with an unread STATE */
        size_t n_stale;         /* of those, the ones behind published */
        bool arm_polled;        /* arm_fd is in epoll_fd's interest (arm_poll) */
        int data_fd;            /* memfd of data_version's snapshot, or -1 */
        uint64_t data_version;
        struct peer *peers, *ready, *dead;
        atomic_size_t n_peers;
        struct uid_count *uids;
        size_t n_uids;
        uint64_t buf[EV__IPC_MAX_MESSAGE / sizeof(uint64_t) + 1];
};

/* ------------------------------------------------------------ peer lists */

static void ready_add(ev_value_server *srv, struct peer *p) {
        if (p->ready)
                return;
        p->ready = true;
        p->ready_prev = NULL;
        p->ready_next = srv->ready;
        if (srv->ready)
                srv->ready->ready_prev = p;
        srv->ready = p;
}

static void ready_remove(ev_value_server *srv, struct peer *p) {
        if (!p->ready)
                return;
        p->ready = false;
        if (p->ready_prev)
                p->ready_prev->ready_next = p->ready_next;
        else
                srv->ready = p->ready_next;
        if (p->ready_next)
                p->ready_next->ready_prev = p->ready_prev;
}

static struct uid_count *uid_find(ev_value_server *srv, uid_t uid) {
        for (size_t i = 0; i < srv->n_uids; i++)
                if (srv->uids[i].uid == uid)
                        return &srv->uids[i];
        return NULL;
}

/* Count a peer of uid: 0, -EUSERS when uid has its maximum, or -ENOMEM. */
static int uid_take(ev_value_server *srv, uid_t uid) {
        struct uid_count *c = uid_find(srv, uid), *uids;

        if (c) {
                if (c->n >= MAX_PEERS_PER_UID)
                        return -EUSERS;
                c->n++;
                return 0;
        }
        uids = realloc(srv->uids, (srv->n_uids + 1) * sizeof(*uids));
        if (!uids)
                return -ENOMEM;
        srv->uids = uids;
        srv->uids[srv->n_uids++] = (struct uid_count){ .uid = uid, .n = 1 };
        return 0;
}

static void uid_release(ev_value_server *srv, uid_t uid) {
        struct uid_count *c = uid_find(srv, uid);

        if (c && --c->n == 0)
                *c = srv->uids[--srv->n_uids];
}

/* Make *fd's POLLIN part of the server's epoll, or not, as poll says;
 * *polled tells what it is (the data of *fd's event is fd itself). */
static void server_poll_fd(ev_value_server *srv, int *fd, bool *polled, bool poll) {
        struct epoll_event ev = { .events = poll ? EPOLLIN : 0, .data.ptr = fd };

        if (*polled != poll && epoll_ctl(srv->epoll_fd, EPOLL_CTL_MOD, *fd, &ev) == 0)
                *polled = poll;
}

/* Stop or resume polling the listening socket.  Out of fds, a waiting
 * peer cannot be accepted, and a readable listening socket would wake the
 * producer's loop again and again: it is polled again once a peer leaves
 * or a set is made. */
static void listen_pause(ev_value_server *srv, bool pause) {
        server_poll_fd(srv, &srv->listen_fd, &srv->listen_polled, !pause);
}

static bool peer_is_in_flight(const struct peer *p) {
        return p->role == PEER_WATCHER && !p->ready && !p->finished && !p->dead;
}

/* p was sent a STATE, which it has not read yet. */
static void in_flight_enter(ev_value_server *srv, struct peer *p) {
        srv->n_in_flight++;
        if (p->sent < srv->published)
                srv->n_stale++;
}

/* p read its STATE, or is finished or dropped. */
static void in_flight_leave(ev_value_server *srv, struct peer *p) {
        if (!peer_is_in_flight(p))
                return;
        srv->n_in_flight--;
        if (p->sent < srv->published)
                srv->n_stale--;
}

/* Poll arm_fd from the producer's loop only while a peer is in flight with
 * an old state: its acknowledgement must then wake process, which sends it
 * the newer one.  Otherwise a peer's read would wake the producer's loop
 * for nothing, once per update and peer. */
static void arm_poll(ev_value_server *srv, bool poll) {
        server_poll_fd(srv, &srv->arm_fd, &srv->arm_polled, poll);
}

/* Let a peer's last message through even if an unread one fills its
 * buffer, and send it: the peer is about to be closed. */
static int peer_send_last(struct peer *p, const struct ev__ipc_header *h, const void *data,
                          int page_fd, int data_fd) {
        int size = FINAL_SNDBUF;

        setsockopt(p->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
        return ev__ipc_send(p->fd, h, data, page_fd, data_fd);
}

/* Close p's connection.  Removed from the epolls first: a forked child
 * may hold the same socket, which would keep it registered. */
static void peer_close(ev_value_server *srv, struct peer *p) {
        epoll_ctl(srv->epoll_fd, EPOLL_CTL_DEL, p->fd, NULL);
        if (p->role == PEER_WATCHER) {
                epoll_ctl(srv->arm_fd, EPOLL_CTL_DEL, p->fd, NULL);
                srv->n_watchers--;
        }
        close(p->fd);
}

/* Drop p, telling it why when code is not 0.  Freed at the end of the busy
 * section: an event of the batch being handled may still name it. */
static void peer_drop(ev_value_server *srv, struct peer *p, int code) {
        if (p->dead)
                return;
        if (code) {
                struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_ERROR,
                                            .code = (uint32_t)code };

                peer_send_last(p, &h, NULL, -1, -1);
        }
        in_flight_leave(srv, p);
        ready_remove(srv, p);
        if (p->prev)
                p->prev->next = p->next;
        else
                srv->peers = p->next;
        if (p->next)
                p->next->prev = p->prev;
        peer_close(srv, p);
        listen_pause(srv, false); /* an fd is free */
        uid_release(srv, p->uid);
        atomic_fetch_sub(&srv->n_peers, 1);
        p->dead = true;
        p->next = srv->dead;
        srv->dead = p;
}

static void free_dead(ev_value_server *srv) {
        struct peer *p, *next;

        for (p = srv->dead; p; p = next) {
                next = p->next;
                free(p);
        }
        srv->dead = NULL;
}

/* ------------------------------------------------------------ publishing */

/* The newest state and its snapshot (NULL for version 0). */
static uint64_t current_state(ev_value *v, ev_value_snapshot **ret) {
        ev_value_snapshot *s = ev__value_take_current(v);
        uint64_t state = atomic_load(&v->state), mine;

        if (!s) {
                *ret = NULL;
                return state & EV_VALUE_STATE_CLOSED; /* never set: 0, or closed */
        }
        /* A newer set may be under way: its own publish sends it. */
        mine = s->version << 1;
        *ret = s;
        return state == (mine | EV_VALUE_STATE_CLOSED) ? state : mine;
}

/* The memfd of s's bytes, made once per version for every peer. */
static int data_memfd(ev_value_server *srv, const ev_value_snapshot *s) {
        int fd;

        if (srv->data_fd >= 0 && srv->data_version == s->version)
                return srv->data_fd;
        fd = ev__memfd_new_sealed(s->data, s->size);
        if (fd < 0)
                return fd;
        if (srv->data_fd >= 0)
                close(srv->data_fd);
        srv->data_fd = fd;
        srv->data_version = s->version;
        return fd;
}

/* Send p the state (and s, unless p has it) without blocking: 0, -EAGAIN
 * when p has not read its last one, or another negative errno. */
static int peer_send_state(ev_value_server *srv, struct peer *p, uint64_t state,
                           const ev_value_snapshot *s, bool last) {
        struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_STATE, .state = state };
        const void *data = s ? s->data : NULL;
        int page_fd = p->has_page ? -1 : srv->page_fd, data_fd = -1, r;

        if (!s || (s->version << 1) <= (p->sent & ~EV_VALUE_STATE_CLOSED)) {
                h.flags |= EV__IPC_NO_DATA; /* only the close is news */
        } else {
                h.size = s->size;
                if (s->size > EV__IPC_INLINE_MAX) {
                        data_fd = data_memfd(srv, s);
                        if (data_fd < 0)
                                return data_fd;
                        h.flags |= EV__IPC_DATA_FD;
                }
        }
        if (page_fd >= 0)
                h.flags |= EV__IPC_PAGE_FD;
        r = last ? peer_send_last(p, &h, data, page_fd, data_fd)
                 : ev__ipc_send(p->fd, &h, data, page_fd, data_fd);
        if (r == 0) {
                p->sent = state;
                p->has_page = true;
        }
        return r;
}

/* After the close: the final state, even past an unread one, then the end
 * of the stream, so that the peer's fd stays readable. */
static void peer_finish(ev_value_server *srv, struct peer *p, uint64_t state,
                        const ev_value_snapshot *s) {
        /* A peer that skipped the current state was sent nothing yet: it
         * needs the close (and the page) all the same. */
        if (p->sent < state || !p->has_page)
                peer_send_state(srv, p, state, s, true);
        shutdown(p->fd, SHUT_WR);
        in_flight_leave(srv, p);
        p->finished = true;
        ready_remove(srv, p);
}

/* Mark the peers that read their last STATE ready; drop those that hung up. */
static void collect_acknowledgements(ev_value_server *srv) {
        struct epoll_event ev[PROCESS_EVENTS];
        int n;

        /* A value served to nobody costs its sets no system call. */
        if (srv->n_watchers == 0)
                return;
        do {
                n = epoll_wait(srv->arm_fd, ev, PROCESS_EVENTS, 0);
                for (int i = 0; i < n; i++) {
                        struct peer *p = ev[i].data.ptr;

                        if (p->dead || p->finished)
                                continue;
                        if (ev[i].events & (EPOLLERR | EPOLLHUP)) {
                                peer_drop(srv, p, 0);
                        } else {
                                in_flight_leave(srv, p);
                                ready_add(srv, p);
                        }
                }
        } while (n == PROCESS_EVENTS);
}

/* Send the newest state to every ready peer that lacks it; after the
 * close, finish every peer.  For the holder of busy. */
static void publish_locked(ev_value_server *srv) {
        ev_value_snapshot *s;
        uint64_t state = current_state(srv->value, &s);
        struct peer *p, *next;

        if (state > srv->published) {
                atomic_store_explicit(&srv->page->state, state, memory_order_release);
                srv->published = state;
                srv->n_stale = srv->n_in_flight; /* they all have older ones */
        }
        collect_acknowledgements(srv);
        if (state & EV_VALUE_STATE_CLOSED) {
                for (p = srv->peers; p; p = p->next)
                        if (p->role == PEER_WATCHER && !p->finished)
                                peer_finish(srv, p, state, s);
        } else {
                for (p = srv->ready; p; p = next) {
                        int r;

                        next = p->ready_next;
                        if (p->sent >= state)
                                continue;
                        r = peer_send_state(srv, p, state, s, false);
                        if (r == 0 || r == -EAGAIN) {
                                ready_remove(srv, p); /* its read will say when */
                                in_flight_enter(srv, p);
                        } else if (r != -ENOMEM && r != -EMFILE && r != -ENFILE) {
                                peer_drop(srv, p, 0);
                        }
                }
        }
        arm_poll(srv, srv->n_stale > 0);
        ev_snapshot_unref(s);
}

/* Let go of busy; publish again for the sets that found it taken. */
static void server_unlock(ev_value_server *srv) {
        for (;;) {
                free_dead(srv);
                atomic_flag_clear(&srv->busy);
                if (!atomic_load(&srv->pending) || atomic_flag_test_and_set(&srv->busy))
                        return;
                atomic_store(&srv->pending, false);
                publish_locked(srv);
        }
}

/* process and free wait for a set's publish, which never waits itself. */
static void server_lock(ev_value_server *srv) {
        while (atomic_flag_test_and_set(&srv->busy))
                sched_yield();
}

static void server_publish(struct ev__notify_hook *hook) {
        ev_value_server *srv = (ev_value_server *)hook;

        atomic_store(&srv->pending, true);
        if (atomic_flag_test_and_set(&srv->busy))
                return; /* the holder publishes for us */
        atomic_store(&srv->pending, false);
        listen_pause(srv, false);
        publish_locked(srv);
        server_unlock(srv);
}

/* ------------------------------------------------------------ peers' messages */

static bool peer_may_set(const ev_value_server *srv, const struct peer *p) {
        return (srv->flags & EV_VALUE_SERVE_ALLOW_SET) && (p->uid == srv->euid || p->uid == 0);
}

static void unmap_data(void *data, void *userdata) {
        munmap(data, (size_t)(uintptr_t)userdata);
}

/* A remote set whose data came in a memfd, mapped here read-only.  Without
 * IF_CHANGED the mapping itself becomes the snapshot, with no copy.  With
 * it, the compare must be made under the value's lock, with the set, or
 * another set could come between them: ev_value_set_flags does both there,
 * copying the bytes when they differ (the core cannot compare and adopt in
 * one step; ev_value_update would copy as well), so the mapping is dropped. */
static int peer_set_memfd(ev_value_server *srv, const struct ev__ipc_message *m, unsigned flags) {
        size_t size = (size_t)m->header.size;
        const void *data;
        int r = ev__memfd_map_sealed(m->data_fd, size, &data);

        if (r < 0)
                return r;
        if (flags) {
                r = ev_value_set_flags(srv->value, data, size, flags);
                munmap((void *)data, size);
                return r;
        }
        r = ev_value_set_owned(srv->value, (void *)data, size, unmap_data, (void *)(uintptr_t)size);
        if (r < 0)
                munmap((void *)data, size);
        return r < 0 ? r : 1;
}

/* A remote set's outcome, as ev_value_set_flags gives it: 1 when set, 0
 * when skipped, or a negative errno for the REPLY. */
static int peer_set(ev_value_server *srv, struct peer *p, const struct ev__ipc_message *m) {
        unsigned flags = (m->header.flags & EV__IPC_IF_CHANGED) ? EV_VALUE_SET_IF_CHANGED : 0;

        if (!peer_may_set(srv, p))
                return -EPERM;
        if (m->header.size > EV__IPC_MAX_SET_SIZE)
                return -EMSGSIZE;
        if (m->data_fd >= 0)
                return peer_set_memfd(srv, m, flags);
        return ev_value_set_flags(srv->value, m->data, (size_t)m->header.size, flags);
}

/* A new watcher: it has seen nothing, or the current state. */
static int peer_watch(ev_value_server *srv, struct peer *p, unsigned flags) {
        struct epoll_event ev = { .events = EPOLLOUT | EPOLLET, .data.ptr = p };
        ev_value_snapshot *s;

        if (epoll_ctl(srv->arm_fd, EPOLL_CTL_ADD, p->fd, &ev) < 0)
                return -errno;
        p->role = PEER_WATCHER;
        srv->n_watchers++;
        if (flags & EV__IPC_SKIP_CURRENT) {
                p->sent = current_state(srv->value, &s);
                ev_snapshot_unref(s);
        }
        ready_add(srv, p);
        return 0;
}

/* Handle one message of p: 0, or the errno to drop p with (-1: no message). */
static int peer_handle(ev_value_server *srv, struct peer *p, struct ev__ipc_message *m) {
        struct ev__ipc_header reply = { .magic = EV__IPC_MAGIC, .type = EV__IPC_REPLY };
        int r;

        if (m->header.type == EV__IPC_HELLO && p->role == PEER_NEW) {
                if (m->header.flags & EV__IPC_SETTER) {
                        p->role = PEER_SETTER;
                        return 0;
                }
                return peer_watch(srv, p, m->header.flags) < 0 ? -1 : 0;
        }
        if (m->header.type != EV__IPC_SET || p->role != PEER_SETTER)
                return EPROTO;
        r = peer_set(srv, p, m);
        if (r == -EPROTO)
                return EPROTO;
        /* The set's own publish found busy taken (by this process call):
         * publish now, so that the answer comes after the watchers were
         * sent the new state.  A skipped set made no state to send. */
        if (r == 1)
                publish_locked(srv);
        if (r == 0)
                reply.flags = EV__IPC_SKIPPED;
        reply.code = r < 0 ? (uint32_t)-r : 0;
        /* A setter that does not read its answers is dropped, not queued for. */
        return ev__ipc_send(p->fd, &reply, NULL, -1, -1) < 0 ? -1 : 0;
}

/* Read a few of p's messages, dropping it at the end of its stream or at
 * its first fault. */
static void peer_read(ev_value_server *srv, struct peer *p) {
        for (int i = 0; i < PROCESS_MESSAGES_PER_PEER && !p->dead; i++) {
                struct ev__ipc_message m;
                int r = ev__ipc_recv(p->fd, srv->buf, false, &m);

                if (r == -EAGAIN)
                        return;
                if (r <= 0) {
                        peer_drop(srv, p, r == -EPROTO ? EPROTO : 0);
                        return;
                }
                r = peer_handle(srv, p, &m);
                ev__ipc_message_close(&m);
                if (r != 0)
                        peer_drop(srv, p, r > 0 ? r : 0);
        }
}

static int peer_new(ev_value_server *srv, int fd) {
        struct epoll_event ev = { .events = EPOLLIN };
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct peer *p;
        int size = 0, r;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        r = uid_take(srv, cred.uid);
        if (r == -EUSERS) {
                struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_ERROR,
                                            .code = EUSERS };

                ev__ipc_send(fd, &h, NULL, -1, -1);
        }
        if (r < 0)
                return r;
        p = calloc(1, sizeof(*p));
        /* The smallest send buffer: an unread STATE fills it (see above). */
        if (!p || setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) < 0) {
                uid_release(srv, cred.uid);
                free(p);
                return -ENOMEM;
        }
        p->fd = fd;
        p->uid = cred.uid;
        ev.data.ptr = p;
        if (epoll_ctl(srv->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
                uid_release(srv, cred.uid);
                free(p);
                return -errno;
        }
        p->next = srv->peers;
        if (srv->peers)
                srv->peers->prev = p;
        srv->peers = p;
        atomic_fetch_add(&srv->n_peers, 1);
        peer_read(srv, p); /* its HELLO is usually there already */
        return 0;
}

static bool listen_ready(const ev_value_server *srv) {
        struct pollfd pfd = { .fd = srv->listen_fd, .events = POLLIN };

        return srv->listen_nonblocking || poll(&pfd, 1, 0) == 1;
}

/* Accept the peers waiting, a bounded number per call. */
static void accept_peers(ev_value_server *srv) {
        for (int i = 0; i < PROCESS_EVENTS && listen_ready(srv); i++) {
                int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0) {
                        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
                            errno == ENOMEM)
                                listen_pause(srv, true);
                        return;
                }
                if (peer_new(srv, fd) < 0)
                        close(fd);
        }
}

EV_VALUE_PUBLIC int ev_value_server_process(ev_value_server *srv) {
        struct epoll_event ev[PROCESS_EVENTS];
        int n;

        if (!srv)
                return -EINVAL;
        server_lock(srv);
        n = epoll_wait(srv->epoll_fd, ev, PROCESS_EVENTS, 0);
        for (int i = 0; i < n; i++) {
                if (ev[i].data.ptr == &srv->listen_fd)
                        accept_peers(srv);
                else if (ev[i].data.ptr != &srv->arm_fd && !((struct peer *)ev[i].data.ptr)->dead)
                        peer_read(srv, ev[i].data.ptr);
        }
        publish_locked(srv); /* acknowledgements, and newcomers' first state */
        server_unlock(srv);
        return n > 0 ? n : 0;
}

/* ------------------------------------------------------------ serving */

/* Whether a socket of the smallest send buffer takes the largest STATE,
 * and stays unwritable while the smallest one is unread, until its peer
 * reads it: what the acknowledgements need (Linux's AF_UNIX accounting). */
static int probe_acknowledgement(void) {
        static const char data[EV__IPC_INLINE_MAX];
        struct ev__ipc_header largest = { .magic = EV__IPC_MAGIC, .type = EV__IPC_STATE,
                                          .state = 2, .size = sizeof(data) };
        struct ev__ipc_header smallest = { .magic = EV__IPC_MAGIC, .type = EV__IPC_STATE,
                                           .state = 3, .flags = EV__IPC_NO_DATA };
        char buf[EV__IPC_MAX_MESSAGE];
        struct pollfd pfd = { .events = POLLOUT };
        int sv[2], size = 0, r = -EOPNOTSUPP;

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                return -errno;
        pfd.fd = sv[0];
        if (setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof(size)) == 0 &&
            ev__ipc_send(sv[0], &largest, data, -1, -1) == 0 &&
            recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0 &&
            ev__ipc_send(sv[0], &smallest, NULL, -1, -1) == 0 && poll(&pfd, 1, 0) == 0 &&
            recv(sv[1], buf, sizeof(buf), MSG_DONTWAIT) > 0 && poll(&pfd, 1, 0) == 1)
                r = 0;
        close(sv[0]);
        close(sv[1]);
        return r;
}

static int epoll_add(int epoll_fd, int fd, uint32_t events, void *ptr) {
        struct epoll_event ev = { .events = events, .data.ptr = ptr };

        return epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void server_destroy(ev_value_server *srv) {
        if (srv->page)
                munmap(srv->page, EV__IPC_PAGE_SIZE);
        if (srv->page_fd >= 0)
                close(srv->page_fd);
        if (srv->data_fd >= 0)
                close(srv->data_fd);
        if (srv->arm_fd >= 0)
                close(srv->arm_fd);
        if (srv->epoll_fd >= 0)
                close(srv->epoll_fd);
        free(srv->uids);
        free(srv->path);
        free(srv);
}

/* The server's own fds and page, before it is attached to the value. */
static int server_open(ev_value_server *srv) {
        int r;

        srv->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        if (srv->epoll_fd < 0)
                return -errno;
        srv->arm_fd = epoll_create1(EPOLL_CLOEXEC);
        if (srv->arm_fd < 0)
                return -errno;
        r = ev__memfd_new_page(&srv->page);
        if (r < 0)
                return r;
        srv->page_fd = r;
        r = epoll_add(srv->epoll_fd, srv->listen_fd, EPOLLIN, &srv->listen_fd);
        if (r == 0) /* polled by arm_poll */
                r = epoll_add(srv->epoll_fd, srv->arm_fd, 0, &srv->arm_fd);
        return r;
}

static int server_new(ev_value *v, int listen_fd, unsigned flags, ev_value_server **ret) {
        ev_value_server *srv;
        int r = probe_acknowledgement();

        if (r < 0)
                return r;
        srv = calloc(1, sizeof(*srv));
        if (!srv)
                return -ENOMEM;
        srv->hook.publish = server_publish;
        srv->flags = flags;
        srv->euid = geteuid();
        srv->listen_fd = listen_fd;
        srv->listen_nonblocking = fcntl(listen_fd, F_GETFL) & O_NONBLOCK;
        srv->listen_polled = true;
        srv->epoll_fd = srv->arm_fd = srv->page_fd = srv->data_fd = -1;
        atomic_flag_clear(&srv->busy);
        r = server_open(srv);
        if (r < 0) {
                server_destroy(srv);
                return r;
        }
        srv->value = ev_value_ref(v);
        ev__notify_add_hook(v, &srv->hook);
        /* Sets made before the hook was attached: publish them now. */
        server_publish(&srv->hook);
        *ret = srv;
        return 0;
}

EV_VALUE_PUBLIC int ev_value_serve(ev_value *v, int listen_fd, unsigned flags,
                                   ev_value_server **ret) {
        int r;

        if (!v || listen_fd < 0 || !ret || (flags & ~(unsigned)EV_VALUE_SERVE_ALLOW_SET))
                return -EINVAL;
        r = ev__ipc_check_socket(listen_fd, true);
        if (r < 0)
                return r;
        return server_new(v, listen_fd, flags, ret);
}

/* The file at path is a socket nobody listens on: a dead server's. */
static bool socket_is_stale(const struct sockaddr_un *address, unsigned len) {
        int fd = ev__ipc_connect(address, len);

        if (fd >= 0) {
                close(fd);
                return false;
        }
        return fd == -ECONNREFUSED;
}

/* Bind fd to path, replacing a stale socket file; never another file. */
static int bind_path(int fd, const char *path, const struct sockaddr_un *address, unsigned len) {
        struct stat st;

        if (path[0] != '@' && lstat(path, &st) == 0) {
                if (!S_ISSOCK(st.st_mode))
                        return -EEXIST;
                if (!socket_is_stale(address, len))
                        return -EADDRINUSE;
                unlink(path);
        }
        if (bind(fd, (const struct sockaddr *)address, len) < 0)
                return -errno;
        /* Access is decided by the directory and by the flags. */
        if (path[0] != '@' && chmod(path, 0666) < 0) {
                int r = -errno;

                unlink(path);
                return r;
        }
        return 0;
}

EV_VALUE_PUBLIC int ev_value_serve_path(ev_value *v, const char *path, unsigned flags,
                                        ev_value_server **ret) {
        struct sockaddr_un address;
        unsigned len;
        char *copy = NULL;
        int fd, r;

        if (!v || !ret || (flags & ~(unsigned)EV_VALUE_SERVE_ALLOW_SET))
                return -EINVAL;
        r = ev__ipc_address(path, &address, &len);
        if (r < 0)
                return r;
        if (path[0] != '@' && !(copy = strdup(path)))
                return -ENOMEM;
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0) {
                free(copy);
                return -errno;
        }
        r = bind_path(fd, path, &address, len);
        if (r == 0) {
                r = listen(fd, SOMAXCONN) < 0 ? -errno : server_new(v, fd, flags, ret);
                if (r < 0 && copy)
                        unlink(copy); /* the file this call made */
        }
        if (r < 0) {
                free(copy);
                close(fd);
                return r;
        }
        (*ret)->path = copy;
        (*ret)->owns_listen_fd = true;
        return 0;
}

EV_VALUE_PUBLIC int ev_value_server_get_fd(const ev_value_server *srv) {
        return srv ? srv->epoll_fd : -EINVAL;
}

EV_VALUE_PUBLIC size_t ev_value_server_get_peer_count(const ev_value_server *srv) {
        return srv ? atomic_load(&srv->n_peers) : 0;
}

/* Disconnect a peer at the end: a watcher gets the newest state if it
 * lacks it, past an unread one. */
static void peer_disconnect(ev_value_server *srv, struct peer *p, uint64_t state,
                            const ev_value_snapshot *s) {
        if (p->role == PEER_WATCHER && !p->finished && p->sent < state)
                peer_send_state(srv, p, state, s, true);
        peer_close(srv, p);
        free(p);
}

EV_VALUE_PUBLIC ev_value_server *ev_value_server_free(ev_value_server *srv) {
        ev_value_snapshot *s;
        struct peer *p, *next;
        uint64_t state;

        if (!srv)
                return NULL;
        /* After this no set publishes to it. */
        ev__notify_remove_hook(srv->value, &srv->hook);
        server_lock(srv);
        /* A watcher's get that trusts the page would take the end below
         * for nothing new: the page tells it to ask the socket. */
        atomic_store(&srv->page->gone, 1);
        state = current_state(srv->value, &s);
        for (p = srv->peers; p; p = next) {
                next = p->next;
                peer_disconnect(srv, p, state, s);
        }
        ev_snapshot_unref(s);
        free_dead(srv);
        if (srv->path)
                unlink(srv->path);
        if (srv->owns_listen_fd)
                close(srv->listen_fd);
        ev_value_unref(srv->value);
        server_destroy(srv);
        return NULL;
}
