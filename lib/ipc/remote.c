/* SPDX-License-Identifier: MIT */
/*
 * Remote watchers: an ordinary ev_value_watcher whose fd is its connection
 * to a server (server.c).  The fd is readable when a STATE message waits,
 * and forever once the watcher reached its end.  A get first reads the
 * state page the server maps into every peer: when it shows nothing newer
 * than what the watcher returned last, the get is over without a system
 * call.  Otherwise it receives the waiting message, checks it, and
 * returns its snapshot.  Every message is checked (protocol.c, memfd.c);
 * a server that breaks the protocol ends the watcher with -EPROTO.
 *
 * The page cannot show the server's death, which only the socket reports.
 * So a get trusts the page only right after it returned a snapshot: a
 * second get in a row that finds nothing new asks the socket, and a loop
 * woken by the hang-up learns of it on that call.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "internal.h"
#include "protocol.h"

struct ev__remote {
        int fd;                             /* the connection, also the watcher's fd */
        const struct ev__ipc_page *page;    /* NULL until the first STATE */
        uint64_t seen;                      /* state of what get returned last */
        int end;                            /* 0, or what every get returns from now */
        bool trust_page;                    /* the last get returned a snapshot and
                                             * saw the stream alive with nothing more */
        bool ended;                         /* the stream ended after messages[] */
        /* The last batch received; those from next on are still to apply
         * (a get that ran out of memory keeps them for the next). */
        size_t n_messages, next;
        struct ev__ipc_message messages[EV__IPC_MAX_BATCH];
        uint64_t buf[EV__IPC_MAX_BATCH][EV__IPC_MAX_MESSAGE / sizeof(uint64_t) + 1];
};

static uint64_t page_state(const struct ev__remote *r) {
        return atomic_load_explicit(&r->page->state, memory_order_acquire);
}

/* The watcher has reached its end: make its fd readable for good, as a
 * local watcher's is once its value is closed. */
static int remote_finish(struct ev__remote *r, int end) {
        if (!r->end) {
                r->end = end;
                shutdown(r->fd, SHUT_RDWR);
        }
        return r->end;
}

/* The stream ended, the watcher having received state: the close reached
 * it if a message or the page said so for the version it has, else the
 * connection was lost. */
static int remote_lost(const struct ev__remote *r, uint64_t state) {
        bool closed = (state & EV_VALUE_STATE_CLOSED) ||
                      (r->page && page_state(r) == (state | EV_VALUE_STATE_CLOSED));

        return closed ? -EPIPE : -ECONNRESET;
}

static void unmap_snapshot(void *data, void *userdata) {
        munmap(data, (size_t)(uintptr_t)userdata);
}

/* The snapshot a STATE carries, version set; -ENOMEM keeps the message. */
static int remote_snapshot(const struct ev__ipc_message *m, ev_value_snapshot **ret) {
        size_t size = (size_t)m->header.size;
        const void *data;
        int r;

        if (m->data_fd < 0) {
                r = ev__snapshot_new_copy(m->data, size, ret);
        } else {
                r = ev__memfd_map_sealed(m->data_fd, size, &data);
                if (r < 0)
                        return r;
                r = ev__snapshot_new_owned((void *)data, size, unmap_snapshot,
                                           (void *)(uintptr_t)size, ret);
                if (r < 0)
                        munmap((void *)data, size);
        }
        if (r == 0)
                (*ret)->version = m->header.state >> 1;
        return r;
}

/* Apply a checked STATE: map the page it brings, check that it moves the
 * state forward, and make its snapshot unless it only closes. */
static int remote_apply(struct ev__remote *r, struct ev__ipc_message *m, uint64_t *state,
                        ev_value_snapshot **s) {
        const struct ev__ipc_page *page;
        int k;

        if (m->header.type != EV__IPC_STATE) {
                /* The server says why it dropped this peer; any other
                 * error it might name is a violation. */
                bool known = m->header.type == EV__IPC_ERROR &&
                             (m->header.code == EPROTO || m->header.code == EUSERS);

                return known ? -(int)m->header.code : -EPROTO;
        }
        if ((m->page_fd >= 0) == (r->page != NULL) || m->header.state <= *state ||
            ((m->header.flags & EV__IPC_NO_DATA) ? (m->header.state >> 1) < (*state >> 1)
                                                  : (m->header.state >> 1) <= (*state >> 1)))
                return -EPROTO;
        if (m->page_fd >= 0) {
                k = ev__memfd_map_page(m->page_fd, &page);
                if (k < 0)
                        return k == -ENOMEM ? -ENOMEM : -EPROTO;
                r->page = page;
                close(m->page_fd);
                m->page_fd = -1;
        }
        if (!(m->header.flags & EV__IPC_NO_DATA)) {
                ev_value_snapshot *next;

                k = remote_snapshot(m, &next);
                if (k < 0)
                        return k;
                ev_snapshot_unref(*s);
                *s = next;
        }
        *state = m->header.state;
        ev__ipc_message_close(m);
        return 0;
}

static void remote_drop_batch(struct ev__remote *r) {
        for (; r->next < r->n_messages; r->next++)
                ev__ipc_message_close(&r->messages[r->next]);
}

/* Apply the messages of the last batch not yet applied. */
static int remote_apply_batch(struct ev__remote *r, uint64_t *state, ev_value_snapshot **s) {
        while (r->next < r->n_messages) {
                int k = remote_apply(r, &r->messages[r->next], state, s);

                if (k == -ENOMEM)
                        return k; /* kept: the next get tries again */
                ev__ipc_message_close(&r->messages[r->next]);
                r->next++;
                if (k < 0) {
                        remote_drop_batch(r);
                        return k;
                }
        }
        return 0;
}

/* Receive everything that waits, two messages per system call: the newest
 * snapshot in *s, the state in *state.  0 once a batch came up short with
 * the stream alive (nothing more waited then), or the end it reached.  So
 * a get that returns a snapshot has also seen whether the server still
 * lives, and an edge-triggered loop that drains until -EAGAIN cannot miss
 * a hang-up that came with its last update. */
static int remote_receive(struct ev__remote *r, uint64_t *state, ev_value_snapshot **s) {
        void *bufs[EV__IPC_MAX_BATCH] = { r->buf[0], r->buf[1] };
        int k = remote_apply_batch(r, state, s); /* what a get out of memory kept */

        for (;;) {
                if (k < 0)
                        return k;
                if (r->ended)
                        return remote_lost(r, *state);
                k = ev__ipc_recv_batch(r->fd, bufs, EV__IPC_MAX_BATCH, true, r->messages, &r->ended);
                r->n_messages = r->next = 0;
                if (k == -EAGAIN)
                        return 0;
                if (k < 0)
                        return k == -EPROTO ? k : remote_lost(r, *state);
                r->n_messages = (size_t)k;
                k = remote_apply_batch(r, state, s);
                if (k == 0 && !r->ended && r->n_messages < EV__IPC_MAX_BATCH)
                        return 0;
        }
}

int ev__remote_take(struct ev__remote *r, ev_value_snapshot **ret) {
        ev_value_snapshot *s = NULL;
        uint64_t state = r->seen;
        int end;

        if (r->end)
                return r->end;
        if (r->trust_page && !atomic_load(&r->page->gone) && page_state(r) <= r->seen) {
                r->trust_page = false;
                return -EAGAIN;
        }
        end = remote_receive(r, &state, &s);
        if (end == -ENOMEM && !s)
                return -ENOMEM;
        if (end == -EPROTO || end == -EUSERS)
                s = ev_snapshot_unref(s); /* a broken stream's snapshots are not returned */
        r->seen = state;
        if (end == 0 && (state & EV_VALUE_STATE_CLOSED))
                end = -EPIPE;
        if (end < 0 && end != -ENOMEM)
                remote_finish(r, end);
        r->trust_page = s != NULL && end == 0;
        if (!s)
                return r->end ? r->end : -EAGAIN;
        *ret = s;
        return 0;
}

int ev__remote_end(const struct ev__remote *r) {
        return r->end;
}

void ev__remote_free(struct ev__remote *r) {
        remote_drop_batch(r);
        if (r->page)
                munmap((void *)r->page, EV__IPC_PAGE_SIZE);
        close(r->fd);
        free(r);
}

static int send_hello(int fd, unsigned flags) {
        struct ev__ipc_header h = {
                .magic = EV__IPC_MAGIC,
                .type = EV__IPC_HELLO,
                .flags = (flags & EV_VALUE_WATCH_SKIP_CURRENT) ? EV__IPC_SKIP_CURRENT : 0,
        };

        return ev__ipc_send(fd, &h, NULL, -1, -1);
}

EV_VALUE_PUBLIC int ev_value_connect_fd(int fd, unsigned flags, ev_value_watcher **ret) {
        ev_value_watcher *w = NULL;
        struct ev__remote *r;
        int k;

        if (fd < 0 || !ret || (flags & ~(unsigned)(EV_VALUE_WATCH_SHARED_FD |
                                                  EV_VALUE_WATCH_SKIP_CURRENT)))
                return -EINVAL;
        if (flags & EV_VALUE_WATCH_SHARED_FD)
                return -EOPNOTSUPP;
        k = ev__ipc_check_socket(fd, false);
        if (k < 0)
                return k;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->fd = fd;
        k = ev__watcher_new_remote(fd, r, &w);
        /* Every call on the connection passes MSG_DONTWAIT: the fd's own
         * flags stay the caller's. */
        if (k == 0)
                k = send_hello(fd, flags);
        if (k < 0) {
                free(w);
                free(r);
                return k;
        }
        *ret = w;
        return 0;
}

EV_VALUE_PUBLIC int ev_value_connect(const char *path, unsigned flags, ev_value_watcher **ret) {
        struct sockaddr_un address;
        unsigned length;
        int fd, k;

        if (!ret || (flags & ~(unsigned)(EV_VALUE_WATCH_SHARED_FD | EV_VALUE_WATCH_SKIP_CURRENT)))
                return -EINVAL;
        if (flags & EV_VALUE_WATCH_SHARED_FD)
                return -EOPNOTSUPP;
        k = ev__ipc_address(path, &address, &length);
        if (k < 0)
                return k;
        fd = ev__ipc_connect(&address, length);
        if (fd < 0)
                return fd;
        k = ev_value_connect_fd(fd, flags, ret);
        if (k < 0)
                close(fd);
        return k;
}
