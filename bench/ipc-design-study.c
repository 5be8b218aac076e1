/* SPDX-License-Identifier: MIT */
/*
 * Design study for values served to other processes, which chose the
 * "wake" design that lib/ipc/server.c builds on: the wake latency of
 * one set reaching a watcher in another process, as a ping-pong between
 * two processes that each serve one value and watch the other's, for
 * four notification designs, each against a raw SOCK_SEQPACKET ping-pong
 * measured in the same run, interleaved round by round:
 *   raw      send 64 B; the peer polls the socket and recvs.          (baseline)
 *   seqpkt   the watcher's fd is its SOCK_SEQPACKET connection: a set
 *            sends the 64-byte update; the get recvs it and sends an
 *            8-byte acknowledgement, which the next set collects with a
 *            non-blocking recv before it sends.
 *   eventfd  the consumer's eventfd, passed to the producer: a set copies
 *            64 B into a shared page (seqlock) and writes the eventfd; the
 *            get reads the eventfd and copies the page; the acknowledgement
 *            is a store into the shared page (no system call).
 *   epoll    as eventfd, but the consumer polls an epoll fd holding its
 *            eventfd and the connection (which reports the producer's
 *            death): the fd a consumer's loop would poll.
 *   epoll+ack as epoll, but the acknowledgement is an 8-byte message on the
 *            connection, which the set collects with one epoll_wait(0) on
 *            the server's epoll of connections and a recv per peer: so that
 *            a set visits only the peers that acknowledged.
 *   wake     the watcher's fd is its connection, and the bytes are in the
 *            shared page: a set copies them there, then sends a 256-byte
 *            wake to a peer that consumed the previous one.  The producer's
 *            socket has the minimum SO_SNDBUF, so an unread wake keeps it
 *            unwritable: the consumer's recv is the acknowledgement, which
 *            the set collects with one epoll_wait(0) for EPOLLOUT|EPOLLET.
 *            The get recvs the wake, then copies the page.
 * Every design checks that each get sees the next version.  Built by
 * `make bench/ipc-design-study`; not run by make bench.
 * Usage: ipc-design-study [--rounds N] [--same-cpu]
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum design { RAW, SEQPKT, EVENTFD, EPOLL, EPOLL_ACK, WAKE, N_DESIGNS };
static const char *const names[] = { "raw", "seqpkt", "eventfd", "epoll", "epoll+ack", "wake" };

/* One direction's shared page: the producer's seqlock-protected bytes and
 * the consumer's acknowledgement. */
struct page {
        _Atomic uint64_t seq;
        _Atomic uint64_t acked;
        char data[64];
};

/* What each side of the ping-pong owns: its connection, the eventfd it
 * waits on, the eventfd it signals, the page it writes and the one it reads. */
struct side {
        int prod_sock, cons_sock;  /* the connection of the value I serve, of the one I watch */
        int my_efd, peer_efd;
        int ep;
        int srv_ep;                /* the producer's epoll of its connections */
        int arm_ep;                /* EPOLLOUT | EPOLLET of its connections */
        int armed;
        struct page *out, *in;
        uint64_t version, seen;
};

static void die(const char *what) {
        perror(what);
        exit(1);
}

static uint64_t now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void pin(int cpu) {
        cpu_set_t set;

        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0)
                die("sched_setaffinity");
}

static void wait_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };

        while (poll(&p, 1, -1) < 0)
                if (errno != EINTR)
                        die("poll");
}

/* The producer's seqlock write of the version into its page. */
static void page_write(struct page *page, uint64_t version) {
        atomic_fetch_add(&page->seq, 1);
        memcpy(page->data, &version, sizeof(version));
        atomic_fetch_add(&page->seq, 1);
}

/* The consumer's seqlock copy of the page; returns the version it holds. */
static uint64_t page_read(struct page *page) {
        char copy[sizeof(page->data)];
        uint64_t seq, version;

        do {
                seq = atomic_load(&page->seq);
                memcpy(copy, page->data, sizeof(copy));
        } while ((seq & 1) || seq != atomic_load(&page->seq));
        memcpy(&version, copy, sizeof(version));
        return version;
}

static void set(struct side *s, enum design d) {
        char msg[64] = { 0 };
        uint64_t ack;

        s->version++;
        switch (d) {
        case RAW:
                memcpy(msg, &s->version, sizeof(s->version));
                if (send(s->prod_sock, msg, sizeof(msg), 0) < 0)
                        die("send");
                break;
        case SEQPKT:
                while (recv(s->prod_sock, &ack, sizeof(ack), MSG_DONTWAIT) > 0)
                        ;
                memcpy(msg, &s->version, sizeof(s->version));
                if (send(s->prod_sock, msg, sizeof(msg), 0) < 0)
                        die("send");
                break;
        case EPOLL_ACK: {
                struct epoll_event ev;
                int armed = s->version == 1;

                if (epoll_wait(s->srv_ep, &ev, 1, 0) == 1)
                        while (recv(s->prod_sock, &ack, sizeof(ack), MSG_DONTWAIT) > 0)
                                armed = ack == s->version - 1;
                page_write(s->out, s->version);
                if (armed && eventfd_write(s->peer_efd, 1) < 0)
                        die("eventfd_write");
                break;
        }
        case WAKE: {
                struct epoll_event ev;
                char wake[256] = { 0 };

                page_write(s->out, s->version);
                if (epoll_wait(s->arm_ep, &ev, 1, 0) == 1)
                        s->armed = 1;
                if (s->armed) {
                        if (send(s->prod_sock, wake, sizeof(wake), MSG_DONTWAIT) < 0)
                                die("send wake");
                        s->armed = 0;
                }
                break;
        }
        case EVENTFD:
        case EPOLL:
                page_write(s->out, s->version);
                /* One in flight: signal only a consumer that acknowledged. */
                if (atomic_load(&s->out->acked) == s->version - 1 &&
                    eventfd_write(s->peer_efd, 1) < 0)
                        die("eventfd_write");
                break;
        default:
                abort();
        }
}

static void get(struct side *s, enum design d) {
        char msg[64];
        uint64_t v = 0;
        eventfd_t n;
        struct epoll_event ev;

        switch (d) {
        case RAW:
        case SEQPKT:
                wait_readable(s->cons_sock);
                if (recv(s->cons_sock, msg, sizeof(msg), 0) != sizeof(msg))
                        die("recv");
                memcpy(&v, msg, sizeof(v));
                if (d == SEQPKT && send(s->cons_sock, &v, sizeof(v), 0) < 0)
                        die("send ack");
                break;
        case WAKE:
                wait_readable(s->cons_sock);
                if (recv(s->cons_sock, msg, sizeof(msg), MSG_TRUNC) != 256)
                        die("recv wake");
                v = page_read(s->in);
                break;
        case EVENTFD:
        case EPOLL:
        case EPOLL_ACK:
                if (d != EVENTFD) {
                        while (epoll_wait(s->ep, &ev, 1, -1) < 0)
                                if (errno != EINTR)
                                        die("epoll_wait");
                } else {
                        wait_readable(s->my_efd);
                }
                if (eventfd_read(s->my_efd, &n) < 0)
                        die("eventfd_read");
                v = page_read(s->in);
                atomic_store(&s->in->acked, v);
                if (d == EPOLL_ACK && send(s->cons_sock, &v, sizeof(v), 0) < 0)
                        die("send ack");
                break;
        default:
                abort();
        }
        if (v != s->seen + 1) {
                fprintf(stderr, "%s: version %llu after %llu\n", names[d],
                        (unsigned long long)v, (unsigned long long)s->seen);
                exit(1);
        }
        s->seen = v;
}

/* Whether an unread 256-byte message keeps a SOCK_SEQPACKET socket of the
 * minimum SO_SNDBUF unwritable until its peer recvs it, as the wake design
 * needs (true of Linux 6.x's AF_UNIX accounting; not promised by any API). */
static int unread_wake_blocks_writes(void) {
        char wake[256] = { 0 };
        int sv[2], min_sndbuf = 1, blocked, released;
        struct pollfd p = { .events = POLLOUT };

        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0 ||
            setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &min_sndbuf, sizeof(min_sndbuf)) < 0 ||
            send(sv[0], wake, sizeof(wake), MSG_DONTWAIT) < 0)
                die("wake probe");
        p.fd = sv[0];
        blocked = poll(&p, 1, 0) == 0;
        if (recv(sv[1], wake, sizeof(wake), 0) < 0)
                die("wake probe recv");
        released = poll(&p, 1, 0) == 1;
        close(sv[0]);
        close(sv[1]);
        return blocked && released;
}

static int cmp_u64(const void *a, const void *b) {
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

        return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
        int rounds = 20, per_round = 2000, same_cpu = 0;
        int sv[2][2], ctl[2], efd[2];
        struct page *pages;
        pid_t child;

        for (int i = 1; i < argc; i++) {
                if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
                        rounds = atoi(argv[++i]);
                else if (!strcmp(argv[i], "--same-cpu"))
                        same_cpu = 1;
                else {
                        fprintf(stderr, "usage: ipc-design-study [--rounds N] [--same-cpu]\n");
                        return 2;
                }
        }
        /* ctl: the handshakes between rounds, apart from the measured socket. */
        /* sv[k]: the connection of side k's value; side k holds sv[k][0]. */
        if (!unread_wake_blocks_writes()) {
                fprintf(stderr, "ipc-design-study: an unread wake leaves the socket writable "
                                "on this kernel; the wake design cannot work here\n");
                return 1;
        }
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv[0]) < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv[1]) < 0 ||
            socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0)
                die("socketpair");
        efd[0] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        efd[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        pages = mmap(NULL, 2 * sizeof(struct page), PROT_READ | PROT_WRITE,
                     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        if (efd[0] < 0 || efd[1] < 0 || pages == MAP_FAILED)
                die("setup");

        child = fork();
        if (child < 0)
                die("fork");
        int me = child == 0;
        struct side s = { .prod_sock = sv[me][0], .cons_sock = sv[!me][1], .my_efd = efd[me], .peer_efd = efd[!me],
                          .out = &pages[me], .in = &pages[!me] };
        close(sv[me][1]);
        close(sv[!me][0]);
        close(ctl[!me]);
        int hs = ctl[me];
        pin(same_cpu ? 0 : me);
        s.ep = epoll_create1(EPOLL_CLOEXEC);
        struct epoll_event ev = { .events = EPOLLIN };
        if (s.ep < 0 || epoll_ctl(s.ep, EPOLL_CTL_ADD, s.my_efd, &ev) < 0 ||
            epoll_ctl(s.ep, EPOLL_CTL_ADD, s.cons_sock, &ev) < 0)
                die("epoll");
        int min_sndbuf = 1;
        struct epoll_event out = { .events = EPOLLOUT | EPOLLET };
        s.arm_ep = epoll_create1(EPOLL_CLOEXEC);
        if (setsockopt(s.prod_sock, SOL_SOCKET, SO_SNDBUF, &min_sndbuf, sizeof(min_sndbuf)) < 0 ||
            s.arm_ep < 0 || epoll_ctl(s.arm_ep, EPOLL_CTL_ADD, s.prod_sock, &out) < 0)
                die("arm epoll");
        s.srv_ep = epoll_create1(EPOLL_CLOEXEC);
        if (s.srv_ep < 0 || epoll_ctl(s.srv_ep, EPOLL_CTL_ADD, s.prod_sock, &ev) < 0)
                die("epoll");

        uint64_t *samples[N_DESIGNS];
        for (int d = 0; d < N_DESIGNS; d++)
                samples[d] = calloc((size_t)rounds, sizeof(uint64_t));
        for (int r = 0; r < rounds; r++) {
                for (int d = 0; d < N_DESIGNS; d++) {
                        /* Each design restarts the versions and the pages. */
                        s.version = s.seen = 0;
                        atomic_store(&s.out->acked, 0);
                        atomic_store(&s.out->seq, 0);
                        s.armed = 0;
                        /* Both sides reset before either sets: a handshake. */
                        char b = 0;
                        if (send(hs, &b, 1, 0) < 0 || recv(hs, &b, 1, 0) < 0)
                                die("handshake");
                        uint64_t t0 = now_ns();
                        for (int i = 0; i < per_round; i++) {
                                if (me == 0) {
                                        set(&s, (enum design)d);
                                        get(&s, (enum design)d);
                                } else {
                                        get(&s, (enum design)d);
                                        set(&s, (enum design)d);
                                }
                        }
                        samples[d][r] = (now_ns() - t0) / (2u * (uint64_t)per_round);
                        /* Both done: drain seqpkt's last acknowledgement. */
                        uint64_t ack;
                        if (send(hs, &b, 1, 0) < 0 || recv(hs, &b, 1, 0) < 0)
                                die("handshake");
                        while (recv(s.prod_sock, &ack, sizeof(ack), MSG_DONTWAIT) > 0)
                                ;
                }
        }
        if (me == 1)
                _exit(0);
        waitpid(child, NULL, 0);
        uint64_t med[N_DESIGNS];
        for (int d = 0; d < N_DESIGNS; d++) {
                qsort(samples[d], (size_t)rounds, sizeof(uint64_t), cmp_u64);
                med[d] = samples[d][rounds / 2];
        }
        printf("one-way wake latency, %s, median of %d rounds of %d round trips\n",
               same_cpu ? "one CPU" : "two CPUs", rounds, per_round);
        for (int d = 0; d < N_DESIGNS; d++)
                printf("  %-8s %7llu ns  %.2fx raw  [rounds %llu-%llu ns]\n", names[d],
                       (unsigned long long)med[d], (double)med[d] / (double)med[RAW],
                       (unsigned long long)samples[d][0],
                       (unsigned long long)samples[d][rounds - 1]);
        return 0;
}
