/* SPDX-License-Identifier: MIT */
/*
 * Test harness: the loopback TCP proxy of tcp-proxy.h.  One thread polls
 * the listening socket, an eventfd that carries commands, and both sockets
 * of every connection; it alone touches the connections, so they need no
 * lock.  A command (cut, blackhole, stop) is posted under a mutex, the
 * eventfd wakes the thread, and the caller waits on a condition variable
 * until the thread has applied it.  Each direction of a connection has a
 * small buffer; a side is not read while its buffer toward the other side
 * is full, and an end of stream is passed on with shutdown(SHUT_WR) once
 * that buffer is flushed.  Connections are closed with a reset (SO_LINGER
 * 0) when cut or on an error, and normally when both directions ended.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "tcp-proxy.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF_SIZE 8192

enum command { CMD_NONE, CMD_CUT, CMD_BLACKHOLE_ON, CMD_BLACKHOLE_OFF, CMD_STOP };

/* Data read from one side, to be written to the other. */
struct pipe_buf {
        size_t start, end;
        /* The side read from reached end of stream. */
        bool eof;
        /* That end of stream was passed on (shutdown(SHUT_WR) of the other). */
        bool shut;
        char data[BUF_SIZE];
};

struct conn {
        /* 0: the client's socket, 1: the upstream's. */
        int fd[2];
        /* buf[0]: from the client to upstream; buf[1]: the other way. */
        struct pipe_buf buf[2];
        bool connecting;
        /* Accepted while in black hole mode, never connected upstream. */
        bool held;
};

struct tcp_proxy {
        pthread_t thread;
        int listen_fd;
        int wake_fd;
        struct sockaddr_in upstream;
        char url[32];
        char hostport[24];
        atomic_uint accepted;

        /* The command in flight, under lock.  busy from the post of a
         * command until its caller took the result: one at a time. */
        pthread_mutex_t lock;
        pthread_cond_t cond;
        bool busy;
        enum command cmd;
        bool cmd_done;
        int cmd_result;

        /* The thread's alone. */
        struct conn **conns;
        size_t n_conns, cap_conns;
        bool blackhole;
        struct pollfd *pfds;
        size_t cap_pfds;
};

static void close_reset(int fd) {
        struct linger l = { .l_onoff = 1, .l_linger = 0 };

        if (fd < 0)
                return;
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof(l));
        close(fd);
}

static void conn_close(struct tcp_proxy *p, size_t k, bool reset) {
        struct conn *c = p->conns[k];

        for (int s = 0; s < 2; s++) {
                if (reset)
                        close_reset(c->fd[s]);
                else if (c->fd[s] >= 0)
                        close(c->fd[s]);
        }
        free(c);
        p->conns[k] = p->conns[--p->n_conns];
}

static int cut_all(struct tcp_proxy *p, bool held_only) {
        int n = 0;

        for (size_t k = p->n_conns; k-- > 0;)
                if (!held_only || p->conns[k]->held) {
                        conn_close(p, k, true);
                        n++;
                }
        return n;
}

static int connect_upstream(struct tcp_proxy *p, struct conn *c) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -errno;
        c->fd[1] = fd;
        if (connect(fd, (const struct sockaddr *)&p->upstream, sizeof(p->upstream)) == 0)
                return 0;
        if (errno != EINPROGRESS)
                return -errno;
        c->connecting = true;
        return 0;
}

static void accept_all(struct tcp_proxy *p) {
        for (;;) {
                struct conn *c;
                int fd = accept4(p->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (fd < 0)
                        /* EAGAIN: all taken; anything else (EMFILE...): a
                         * test that runs out of fds has bigger problems. */
                        return;
                atomic_fetch_add(&p->accepted, 1);
                if (p->n_conns == p->cap_conns) {
                        size_t cap = p->cap_conns ? 2 * p->cap_conns : 16;
                        struct conn **conns = realloc(p->conns, cap * sizeof(*conns));

                        if (!conns) {
                                close_reset(fd);
                                continue;
                        }
                        p->conns = conns;
                        p->cap_conns = cap;
                }
                c = calloc(1, sizeof(*c));
                if (!c) {
                        close_reset(fd);
                        continue;
                }
                c->fd[0] = fd;
                c->fd[1] = -1;
                p->conns[p->n_conns++] = c;
                if (p->blackhole)
                        c->held = true;
                else if (connect_upstream(p, c) < 0)
                        conn_close(p, p->n_conns - 1, true);
        }
}

/* The poll events side s of c wants; 0 when none. */
static short conn_events(const struct conn *c, int s) {
        const struct pipe_buf *from = &c->buf[s], *to = &c->buf[1 - s];
        short ev = 0;

        if (c->connecting)
                return s == 1 ? POLLOUT : 0;
        if (!from->eof && from->end < BUF_SIZE)
                ev |= POLLIN;
        if (to->end > to->start)
                ev |= POLLOUT;
        return ev;
}

/* Moves data between the sides of c after poll said revents; false when c
 * is finished (closed by the caller: reset when *reset). */
static bool conn_step(struct conn *c, const short revents[2], bool *reset) {
        *reset = true;
        if (c->connecting) {
                int err = 0;
                socklen_t len = sizeof(err);

                if (!revents[1])
                        return true;
                if (getsockopt(c->fd[1], SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0)
                        return false;
                c->connecting = false;
                return true;
        }
        for (int s = 0; s < 2; s++) {
                struct pipe_buf *b = &c->buf[s];

                if (revents[s] & (POLLIN | POLLHUP | POLLERR) && !b->eof && b->end < BUF_SIZE) {
                        ssize_t n = recv(c->fd[s], b->data + b->end, BUF_SIZE - b->end, 0);

                        if (n > 0)
                                b->end += (size_t)n;
                        else if (n == 0)
                                b->eof = true;
                        else if (errno != EAGAIN && errno != EINTR)
                                return false;
                }
        }
        for (int s = 0; s < 2; s++) {
                struct pipe_buf *b = &c->buf[s];
                int to = c->fd[1 - s];

                /* Non-blocking: try at once rather than wait for a poll
                 * round that asked for POLLOUT. */
                if (b->end > b->start) {
                        ssize_t n = send(to, b->data + b->start, b->end - b->start,
                                         MSG_NOSIGNAL);

                        if (n > 0)
                                b->start += (size_t)n;
                        else if (n < 0 && errno != EAGAIN && errno != EINTR)
                                return false;
                }
                if (b->start == b->end) {
                        b->start = b->end = 0;
                } else if (b->end == BUF_SIZE && b->start > 0) {
                        memmove(b->data, b->data + b->start, b->end - b->start);
                        b->end -= b->start;
                        b->start = 0;
                }
                if (b->eof && b->end == 0 && !b->shut) {
                        shutdown(to, SHUT_WR);
                        b->shut = true;
                }
        }
        if (c->buf[0].shut && c->buf[1].shut) {
                *reset = false;
                return false;
        }
        /* A side that hung up with nothing left to read, while nothing can
         * be written to it: poll would report POLLHUP forever. */
        for (int s = 0; s < 2; s++)
                if ((revents[s] & (POLLHUP | POLLERR)) && c->buf[s].eof &&
                    c->buf[1 - s].end > c->buf[1 - s].start)
                        return false;
        return true;
}

/* After a wake-up: applies the pending command, if any; false on CMD_STOP. */
static bool apply_command(struct tcp_proxy *p) {
        bool go_on = true;
        uint64_t v;

        if (read(p->wake_fd, &v, sizeof(v)) < 0) {
                /* EAGAIN: a spurious wake-up; the command, if any, is below. */
        }
        pthread_mutex_lock(&p->lock);
        switch (p->cmd) {
        case CMD_NONE:
                pthread_mutex_unlock(&p->lock);
                return true;
        case CMD_CUT:
                p->cmd_result = cut_all(p, false);
                break;
        case CMD_BLACKHOLE_ON:
                p->blackhole = true;
                p->cmd_result = 0;
                break;
        case CMD_BLACKHOLE_OFF:
                if (p->blackhole)
                        cut_all(p, true);
                p->blackhole = false;
                p->cmd_result = 0;
                break;
        case CMD_STOP:
                cut_all(p, false);
                p->cmd_result = 0;
                go_on = false;
                break;
        }
        p->cmd = CMD_NONE;
        p->cmd_done = true;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return go_on;
}

static void *proxy_thread(void *arg) {
        struct tcp_proxy *p = arg;

        for (;;) {
                size_t n = 2;

                if (p->cap_pfds < 2 + 2 * p->n_conns) {
                        size_t cap = 2 + 2 * p->cap_conns;
                        struct pollfd *pfds = realloc(p->pfds, cap * sizeof(*pfds));

                        if (pfds) {
                                p->pfds = pfds;
                                p->cap_pfds = cap;
                        }
                        /* Else poll what fits and try again next time. */
                }
                p->pfds[0] = (struct pollfd){ .fd = p->listen_fd, .events = POLLIN };
                p->pfds[1] = (struct pollfd){ .fd = p->wake_fd, .events = POLLIN };
                /* A connection's two entries are at 2 + 2k and 3 + 2k; a
                 * side with nothing to wait for is left out (fd -1): poll
                 * would report its POLLHUP in a loop. */
                for (size_t k = 0; k < p->n_conns && n + 2 <= p->cap_pfds; k++) {
                        const struct conn *c = p->conns[k];

                        for (int s = 0; s < 2; s++) {
                                short ev = p->blackhole || c->held ? 0 : conn_events(c, s);

                                p->pfds[n++] = (struct pollfd){ .fd = ev ? c->fd[s] : -1,
                                                                .events = ev };
                        }
                }
                if (poll(p->pfds, n, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        /* ENOMEM: breathe, then again. */
                        usleep(1000);
                        continue;
                }
                if (p->pfds[1].revents && !apply_command(p))
                        return NULL;
                if (p->pfds[1].revents)
                        /* The connections may have changed under the
                         * entries: poll afresh. */
                        continue;
                /* Backwards, as conn_close moves the last one into k. */
                for (size_t k = (n - 2) / 2; k-- > 0;) {
                        short revents[2] = { p->pfds[2 + 2 * k].revents,
                                             p->pfds[3 + 2 * k].revents };
                        bool reset;

                        if (!revents[0] && !revents[1])
                                continue;
                        if (!conn_step(p->conns[k], revents, &reset))
                                conn_close(p, k, reset);
                }
                if (p->pfds[0].revents)
                        accept_all(p);
        }
}

static int parse_hostport(const char *hostport, struct sockaddr_in *a) {
        char host[INET_ADDRSTRLEN];
        const char *colon = strrchr(hostport, ':');
        char *end;
        unsigned long port;

        if (!colon || (size_t)(colon - hostport) >= sizeof(host))
                return -EINVAL;
        memcpy(host, hostport, (size_t)(colon - hostport));
        host[colon - hostport] = '\0';
        errno = 0;
        port = strtoul(colon + 1, &end, 10);
        if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
                return -EINVAL;
        memset(a, 0, sizeof(*a));
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
                return -EINVAL;
        return 0;
}

int tcp_proxy_start(const char *upstream_hostport, struct tcp_proxy **ret) {
        struct sockaddr_in a = {
                .sin_family = AF_INET,
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        socklen_t len = sizeof(a);
        struct tcp_proxy *p;
        sigset_t all, old;
        int r;

        if (!upstream_hostport || !ret)
                return -EINVAL;
        p = calloc(1, sizeof(*p));
        if (!p)
                return -ENOMEM;
        p->listen_fd = p->wake_fd = -1;
        r = parse_hostport(upstream_hostport, &p->upstream);
        if (r < 0)
                goto fail;
        p->cap_pfds = 2;
        p->pfds = calloc(p->cap_pfds, sizeof(*p->pfds));
        if (!p->pfds) {
                r = -ENOMEM;
                goto fail;
        }
        p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        p->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (p->listen_fd < 0 || p->wake_fd < 0 ||
            bind(p->listen_fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(p->listen_fd, (struct sockaddr *)&a, &len) < 0 ||
            listen(p->listen_fd, 128) < 0) {
                r = -errno;
                goto fail;
        }
        snprintf(p->hostport, sizeof(p->hostport), "127.0.0.1:%u", ntohs(a.sin_port));
        snprintf(p->url, sizeof(p->url), "http://%s", p->hostport);
        atomic_init(&p->accepted, 0);
        pthread_mutex_init(&p->lock, NULL);
        pthread_cond_init(&p->cond, NULL);
        /* The thread inherits the mask: a signal the test waits for
         * (sigwait, signalfd) must not be handled on it. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = -pthread_create(&p->thread, NULL, proxy_thread, p);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (r < 0) {
                pthread_cond_destroy(&p->cond);
                pthread_mutex_destroy(&p->lock);
                goto fail;
        }
        *ret = p;
        return 0;
fail:
        if (p->listen_fd >= 0)
                close(p->listen_fd);
        if (p->wake_fd >= 0)
                close(p->wake_fd);
        free(p->pfds);
        free(p);
        return r;
}

/* Posts cmd and waits until the thread has applied it. */
static int command(struct tcp_proxy *p, enum command cmd) {
        uint64_t one = 1;
        int r;

        pthread_mutex_lock(&p->lock);
        /* Another thread's command first. */
        while (p->busy)
                pthread_cond_wait(&p->cond, &p->lock);
        p->busy = true;
        p->cmd = cmd;
        p->cmd_done = false;
        if (write(p->wake_fd, &one, sizeof(one)) < 0) {
                /* EAGAIN only: the counter is already non-zero, the
                 * thread wakes all the same. */
        }
        while (!p->cmd_done)
                pthread_cond_wait(&p->cond, &p->lock);
        r = p->cmd_result;
        p->busy = false;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
        return r;
}

const char *tcp_proxy_url(const struct tcp_proxy *p) {
        return p->url;
}

const char *tcp_proxy_hostport(const struct tcp_proxy *p) {
        return p->hostport;
}

int tcp_proxy_cut(struct tcp_proxy *p) {
        return command(p, CMD_CUT);
}

int tcp_proxy_set_blackhole(struct tcp_proxy *p, bool on) {
        return command(p, on ? CMD_BLACKHOLE_ON : CMD_BLACKHOLE_OFF);
}

unsigned tcp_proxy_accepted(const struct tcp_proxy *p) {
        return atomic_load(&((struct tcp_proxy *)p)->accepted);
}

void tcp_proxy_free(struct tcp_proxy *p) {
        if (!p)
                return;
        command(p, CMD_STOP);
        pthread_join(p->thread, NULL);
        pthread_cond_destroy(&p->cond);
        pthread_mutex_destroy(&p->lock);
        close(p->listen_fd);
        close(p->wake_fd);
        free(p->conns);
        free(p->pfds);
        free(p);
}
