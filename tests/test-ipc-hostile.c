/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of what a served value and a remote watcher do when the other
 * end of the connection is hostile.  A "raw peer" is a plain AF_UNIX
 * SOCK_SEQPACKET socket that speaks lib/ipc/protocol.h by hand against the
 * library's server; a "raw server" is a plain listening socket that
 * accepts a library consumer (ev_value_connect) and feeds it crafted
 * messages.  The server runs in the test's process, driven by hand with
 * ev_value_server_process, so that each step is deterministic; the churn
 * test connects its peers from a child process.  What is shown: a peer
 * that never reads costs the producer nothing that grows and never blocks
 * a set, and has at most one STATE queued; a peer that breaks the protocol
 * in any of the ways listed below is dropped (ERROR EPROTO or end of
 * stream) while a well-behaved watcher connected at the same time keeps
 * getting every newest value; a setter without the right gets -EPERM and
 * changes nothing; thousands of short-lived peers leak no fd; a consumer
 * fed a broken STATE returns -EPROTO from then on, leaks no fd and never
 * maps a memfd that could shrink under it (no SIGBUS); and a library
 * setter (in a child) given a REPLY that says SKIPPED when it may not
 * returns -EPROTO.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/sockios.h>
#include <malloc.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "helpers.h"
#include "protocol.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define HEADER_SIZE sizeof(struct ev__ipc_header)
#define SEALS_ALL (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define BIG_SIZE (EV__IPC_INLINE_MAX * 2) /* above EV__IPC_INLINE_MAX: travels in a memfd */

/* valgrind announces itself through the preloaded library it injects;
 * under it the loops that make thousands of calls run a tenth as long. */
static bool under_valgrind(void) {
        const char *p = getenv("LD_PRELOAD");

        return p && strstr(p, "vgpreload");
}

static unsigned scaled(unsigned n) {
        return under_valgrind() ? n / 10 : n;
}

/* ------------------------------------------------------------ sockets */

/* A unique abstract name ("@..."), and its address for raw sockets. */
static unsigned name_counter;

static void make_name(char name[64], struct sockaddr_un *addr, socklen_t *len) {
        size_t n;

        snprintf(name, 64, "@libevvalue-hostile-%d-%u", (int)getpid(), name_counter++);
        n = strlen(name);
        memset(addr, 0, sizeof(*addr));
        addr->sun_family = AF_UNIX;
        memcpy(addr->sun_path + 1, name + 1, n - 1);
        *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* Asserts that a listening SOCK_SEQPACKET socket is bound to addr. */
static int listen_or_fail(const struct sockaddr_un *addr, socklen_t len) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
        cr_assert_eq(bind(fd, (const struct sockaddr *)addr, len), 0, "bind: %s", strerror(errno));
        cr_assert_eq(listen(fd, 4096), 0, "listen: %s", strerror(errno));
        return fd;
}

/* Asserts that a raw socket connects to addr. */
static int raw_connect(const struct sockaddr_un *addr, socklen_t len) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        cr_assert_geq(fd, 0, "socket: %s", strerror(errno));
        cr_assert_eq(connect(fd, (const struct sockaddr *)addr, len), 0, "connect: %s",
                     strerror(errno));
        return fd;
}

/* sendmsg of n bytes and n_fds fds without blocking: bytes sent or -errno. */
static ssize_t send_raw(int fd, const void *buf, size_t n, const int *fds, size_t n_fds) {
        struct iovec iov = { .iov_base = (void *)buf, .iov_len = n };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        char control[CMSG_SPACE(sizeof(int) * 32)];
        ssize_t r;

        cr_assert_leq(n_fds, 32);
        if (n_fds > 0) {
                struct cmsghdr *c;

                memset(control, 0, sizeof(control));
                msg.msg_control = control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        r = sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
        return r < 0 ? -errno : r;
}

static struct ev__ipc_header header(uint16_t type, uint16_t flags, uint64_t state, uint64_t size) {
        return (struct ev__ipc_header){
                .magic = EV__IPC_MAGIC, .type = type, .flags = flags, .state = state, .size = size,
        };
}

/* Sends h followed by len bytes of data, the whole padded with zeros to
 * pad_to bytes; -errno or the bytes sent. */
static ssize_t send_message(int fd, const struct ev__ipc_header *h, const void *data, size_t len,
                            size_t pad_to, const int *fds, size_t n_fds) {
        static unsigned char buf[EV__IPC_MAX_MESSAGE + 4096];
        size_t n = HEADER_SIZE + len;

        cr_assert_leq(n, sizeof(buf));
        cr_assert_leq(pad_to, sizeof(buf));
        memset(buf, 0, sizeof(buf));
        memcpy(buf, h, HEADER_SIZE);
        if (len)
                memcpy(buf + HEADER_SIZE, data, len);
        if (n < pad_to)
                n = pad_to;
        return send_raw(fd, buf, n, fds, n_fds);
}

/* Asserts that a message of the peer's kind is sent whole. */
static void send_or_fail(int fd, const struct ev__ipc_header *h, const void *data, size_t len,
                         const int *fds, size_t n_fds) {
        ssize_t r = send_message(fd, h, data, len, 0, fds, n_fds);

        cr_assert_eq(r, (ssize_t)(HEADER_SIZE + len), "sendmsg: %s", strerror((int)-r));
}

static void send_hello(int fd, uint16_t flags) {
        struct ev__ipc_header h = header(EV__IPC_HELLO, flags, 0, 0);

        send_or_fail(fd, &h, NULL, 0, NULL, 0);
}

/* A message received by hand, with its fds. */
struct raw_msg {
        ssize_t n;
        struct ev__ipc_header h;
        unsigned char buf[EV__IPC_MAX_MESSAGE + 64];
        int fds[16];
        size_t n_fds;
        int msg_flags;
};

static void raw_msg_close(struct raw_msg *m) {
        for (size_t i = 0; i < m->n_fds; i++)
                close(m->fds[i]);
        m->n_fds = 0;
}

/* Receives one message within timeout_ms: its size (0: end of stream) or
 * -errno (-EAGAIN: nothing came).  The caller closes m's fds. */
static ssize_t recv_message(int fd, int timeout_ms, struct raw_msg *m) {
        char control[CMSG_SPACE(sizeof(int) * 16)];
        struct iovec iov = { .iov_base = m->buf, .iov_len = sizeof(m->buf) };
        struct msghdr msg = {
                .msg_iov = &iov, .msg_iovlen = 1,
                .msg_control = control, .msg_controllen = sizeof(control),
        };
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        memset(m, 0, sizeof(*m));
        if (poll(&pfd, 1, timeout_ms) == 0)
                return m->n = -EAGAIN;
        n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        if (n < 0)
                return m->n = -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++)
                                memcpy(&m->fds[m->n_fds++], CMSG_DATA(c) + i * sizeof(int),
                                       sizeof(int));
        m->msg_flags = msg.msg_flags;
        if ((size_t)n >= HEADER_SIZE)
                memcpy(&m->h, m->buf, HEADER_SIZE);
        return m->n = n;
}

/* Messages queued on fd now, each received and dropped. */
static unsigned drain_count(int fd) {
        struct raw_msg *m = malloc(sizeof(*m));
        unsigned n = 0;

        cr_assert_not_null(m);
        while (recv_message(fd, 0, m) > 0) {
                raw_msg_close(m);
                n++;
        }
        free(m);
        return n;
}

/* ------------------------------------------------------------ memfds */

/* Asserts that a memfd holds size bytes of byte, is file_size long and carries seals. */
static int memfd_or_fail(unsigned char byte, size_t size, size_t file_size, unsigned seals) {
        int fd = memfd_create("hostile", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        unsigned char *buf = malloc(size ? size : 1);

        cr_assert_geq(fd, 0, "memfd_create: %s", strerror(errno));
        cr_assert_not_null(buf);
        memset(buf, byte, size);
        cr_assert_eq(write(fd, buf, size), (ssize_t)size);
        free(buf);
        cr_assert_eq(ftruncate(fd, (off_t)file_size), 0);
        if (seals)
                cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0, "F_ADD_SEALS: %s", strerror(errno));
        return fd;
}

/* Asserts that fd's first bytes are still byte (a server or consumer wrote nothing). */
static void memfd_untouched(int fd, unsigned char byte, size_t size) {
        unsigned char *buf = malloc(size);

        cr_assert_not_null(buf);
        cr_assert_eq(pread(fd, buf, size, 0), (ssize_t)size);
        for (size_t i = 0; i < size; i++)
                cr_assert_eq(buf[i], byte, "byte %zu of the memfd changed", i);
        free(buf);
}

/* ------------------------------------------------------------ a served value */

struct served {
        ev_value *v;
        ev_value_server *srv;
        int lfd;
        char name[64];
        struct sockaddr_un addr;
        socklen_t addr_len;
};

static void serve_or_fail(struct served *s, unsigned flags) {
        int r;

        memset(s, 0, sizeof(*s));
        make_name(s->name, &s->addr, &s->addr_len);
        s->v = value_new_or_fail();
        s->lfd = listen_or_fail(&s->addr, s->addr_len);
        r = ev_value_serve(s->v, s->lfd, flags, &s->srv);
        cr_assert_eq(r, 0, "ev_value_serve: %s", strerror(-r));
}

static void served_free(struct served *s) {
        s->srv = ev_value_server_free(s->srv);
        close(s->lfd);
        s->v = ev_value_unref(s->v);
}

/* Runs the server's process while its fd is readable (bounded): every
 * message already sent to it is handled. */
static void pump(struct served *s) {
        int fd = ev_value_server_get_fd(s->srv);

        cr_assert_geq(fd, 0);
        for (int i = 0; i < 1000; i++) {
                int r = ev_value_server_process(s->srv);

                cr_assert_geq(r, 0, "ev_value_server_process: %s", strerror(-r));
                if (!fd_readable(fd))
                        return;
        }
        cr_assert_fail("the server's fd stayed readable through 1000 process calls");
}

static int raw_peer(struct served *s) {
        return raw_connect(&s->addr, s->addr_len);
}

/* Sets "v<version>" as the value's next version. */
static void set_next(struct served *s) {
        char buf[32];

        snprintf(buf, sizeof(buf), "v%llu",
                 (unsigned long long)ev_value_get_version(s->v) + 1);
        set_string_or_fail(s->v, buf);
}

/* A well-behaved watcher in the test's process, and the last version it got. */
struct good {
        ev_value_watcher *w;
        uint64_t last;
};

static void good_connect(struct served *s, struct good *g) {
        int r = ev_value_connect(s->name, 0, &g->w);

        cr_assert_eq(r, 0, "ev_value_connect(%s): %s", s->name, strerror(-r));
        g->last = 0;
        pump(s);
}

/* Asserts that the good watcher reaches the value's version, through
 * strictly increasing versions that each hold "v<version>". */
static void good_catches_up(struct served *s, struct good *g) {
        uint64_t want = ev_value_get_version(s->v);

        for (int i = 0; i < 200 && g->last < want; i++) {
                ev_value_snapshot *snap = NULL;
                int r;

                pump(s);
                r = ev_watcher_get(g->w, &snap);
                if (r == 0) {
                        char expect[32];

                        cr_assert_gt(ev_snapshot_version(snap), g->last,
                                     "version %llu after %llu",
                                     (unsigned long long)ev_snapshot_version(snap),
                                     (unsigned long long)g->last);
                        g->last = ev_snapshot_version(snap);
                        snprintf(expect, sizeof(expect), "v%llu", (unsigned long long)g->last);
                        cr_assert_str_eq(ev_snapshot_data(snap), expect);
                        ev_snapshot_unref(snap);
                } else {
                        struct pollfd pfd = { .fd = ev_watcher_get_fd(g->w), .events = POLLIN };

                        cr_assert_eq(r, -EAGAIN, "the good watcher's get: %s", strerror(-r));
                        poll(&pfd, 1, 20);
                }
        }
        cr_assert_eq(g->last, want, "the good watcher is at %llu, the value at %llu",
                     (unsigned long long)g->last, (unsigned long long)want);
}

/* Asserts that a peer of the server, which had peers_before peers with it,
 * is dropped: the count falls by one after process, and the peer reads
 * (after any STATE it had not read) ERROR EPROTO or the end of the stream. */
static void peer_is_dropped(struct served *s, int fd, size_t peers_before) {
        struct raw_msg *m = malloc(sizeof(*m));
        bool error_seen = false;

        cr_assert_not_null(m);
        pump(s);
        cr_assert_eq(ev_value_server_get_peer_count(s->srv), peers_before - 1,
                     "%zu peers after the violation, expected %zu",
                     ev_value_server_get_peer_count(s->srv), peers_before - 1);
        for (int i = 0; i < 16; i++) {
                ssize_t n = recv_message(fd, 5000, m);

                raw_msg_close(m);
                if (n == 0 || n == -ECONNRESET)
                        break;
                cr_assert_gt(n, 0, "recv: %s", strerror((int)-n));
                cr_assert_geq((size_t)n, HEADER_SIZE);
                if (m->h.type == EV__IPC_STATE && !error_seen)
                        continue;
                cr_assert_eq(m->h.type, EV__IPC_ERROR, "message of type %u, expected ERROR",
                             m->h.type);
                cr_assert_eq(m->h.code, EPROTO, "ERROR %u, expected EPROTO", m->h.code);
                error_seen = true;
        }
        free(m);
}

/* ------------------------------------------------------------ never reads */

static size_t heap_in_use(void) {
        struct mallinfo2 mi = mallinfo2();

        return mi.uordblks + mi.hblkhd;
}

static long resident_pages(void) {
        long size = 0, resident = 0;
        FILE *f = fopen("/proc/self/statm", "re");

        cr_assert_not_null(f);
        cr_assert_eq(fscanf(f, "%ld %ld", &size, &resident), 2);
        fclose(f);
        return resident;
}

/* Asserts that the first STATE queued on fd has a version <= max; returns it. */
static uint64_t state_version_of(struct raw_msg *m) {
        cr_assert_geq(m->n, (ssize_t)HEADER_SIZE);
        cr_assert_eq(m->h.magic, EV__IPC_MAGIC);
        cr_assert_eq(m->h.type, EV__IPC_STATE, "type %u, expected STATE", m->h.type);
        return m->h.state >> 1;
}

Test(never_reads, memory_flat_and_sets_do_not_block, .timeout = 120) {
        unsigned n_sets = scaled(10000);
        struct served s;
        struct raw_msg *m = malloc(sizeof(*m));
        int fd, inq = -1;
        size_t heap_before, heap_after;
        long rss_before, rss_after;
        uint64_t v;

        cr_assert_not_null(m);
        serve_or_fail(&s, 0);
        set_next(&s);
        fd = raw_peer(&s);
        send_hello(fd, 0);
        pump(&s);
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 1);
        /* Warm up the allocator and the code paths, then measure. */
        for (int i = 0; i < 100; i++)
                set_next(&s);
        heap_before = heap_in_use();
        rss_before = resident_pages();
        for (unsigned i = 0; i < n_sets; i++) {
                set_next(&s);
                if (i % 1000 == 0)
                        pump(&s);
        }
        heap_after = heap_in_use();
        rss_after = resident_pages();
        /* Under a sanitizer the allocator is the tool's, which keeps freed
         * memory in quarantine: its own leak check stands in. */
        if (!UNDER_SANITIZER) {
                cr_assert_leq(heap_after, heap_before + 64 * 1024,
                              "the heap grew from %zu to %zu bytes over %u sets", heap_before,
                              heap_after, n_sets);
                cr_assert_leq(rss_after, rss_before + 256, "resident pages grew from %ld to %ld",
                              rss_before, rss_after);
        }
        /* One message is queued: the first STATE. */
        cr_assert_eq(ioctl(fd, SIOCINQ, &inq), 0);
        cr_assert_eq(inq, EV__IPC_MIN_MESSAGE, "%d bytes queued, expected one STATE of %d", inq,
                     EV__IPC_MIN_MESSAGE);
        /* The peer reads at last: first the STATE it had, then, once the
         * server has seen that read, the newest. */
        cr_assert_gt(recv_message(fd, 5000, m), 0);
        v = state_version_of(m);
        raw_msg_close(m);
        cr_assert_leq(v, ev_value_get_version(s.v));
        pump(&s);
        cr_assert_gt(recv_message(fd, 5000, m), 0);
        v = state_version_of(m);
        raw_msg_close(m);
        cr_assert_eq(v, ev_value_get_version(s.v), "got version %llu, the newest is %llu",
                     (unsigned long long)v, (unsigned long long)ev_value_get_version(s.v));
        cr_assert_eq(drain_count(fd), 0);
        close(fd);
        free(m);
        served_free(&s);
}

Test(never_reads, one_state_in_flight, .timeout = 60) {
        unsigned n_sets = scaled(2000);
        struct served s;
        int fd, inq = -1, fds_before;

        serve_or_fail(&s, 0);
        set_next(&s);
        fd = raw_peer(&s);
        send_hello(fd, 0);
        pump(&s);
        fds_before = count_open_fds();
        /* Small and large snapshots alike. */
        for (unsigned i = 0; i < n_sets; i++) {
                if (i % 2) {
                        set_next(&s);
                } else {
                        char big[BIG_SIZE];

                        memset(big, 'x', sizeof(big));
                        cr_assert_eq(ev_value_set(s.v, big, sizeof(big)), 0);
                }
                if (i % 100 == 0)
                        pump(&s);
        }
        cr_assert_eq(count_open_fds(), fds_before, "the producer holds %d fds, %d before",
                     count_open_fds(), fds_before);
        cr_assert_eq(ioctl(fd, SIOCINQ, &inq), 0);
        cr_assert_leq(inq, (int)EV__IPC_MAX_MESSAGE, "%d bytes queued", inq);
        cr_assert_eq(drain_count(fd), 1, "more than one STATE was queued");
        close(fd);
        served_free(&s);
}

/* ------------------------------------------------------------ broken peers */

/* A memfd a violation sent, kept to check that the server wrote nothing in it. */
static int kept_fd = -1;
static size_t kept_size;

/* What a broken peer does after it connected (and its HELLO, when hello). */
typedef void (*violation_fn)(int fd);

/* Asserts that a peer that connects, says HELLO with hello_flags (unless
 * hello is false) and then commits violation is dropped, that the value
 * did not change, and that a good watcher keeps getting the newest. */
static void peer_violation(violation_fn violation, bool hello, uint16_t hello_flags) {
        struct served s;
        struct good g;
        uint64_t version;
        int fd;

        serve_or_fail(&s, EV_VALUE_SERVE_ALLOW_SET);
        set_next(&s);
        good_connect(&s, &g);
        good_catches_up(&s, &g);
        fd = raw_peer(&s);
        if (hello)
                send_hello(fd, hello_flags);
        pump(&s);
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 2);
        set_next(&s);
        good_catches_up(&s, &g);
        version = ev_value_get_version(s.v);
        violation(fd);
        peer_is_dropped(&s, fd, 2);
        cr_assert_eq(ev_value_get_version(s.v), version, "the value changed");
        if (kept_fd >= 0) {
                memfd_untouched(kept_fd, 'm', kept_size);
                close(kept_fd);
                kept_fd = -1;
        }
        for (int i = 0; i < 3; i++) {
                set_next(&s);
                good_catches_up(&s, &g);
        }
        close(fd);
        ev_watcher_close(g.w);
        served_free(&s);
}

static void send_random(int fd) {
        unsigned char buf[200];
        unsigned seed = 12345;

        for (size_t i = 0; i < sizeof(buf); i++)
                buf[i] = (unsigned char)(rand_r(&seed) >> 7);
        cr_assert_eq(send_raw(fd, buf, sizeof(buf), NULL, 0), (ssize_t)sizeof(buf));
}

static void send_wrong_magic_hello(int fd) {
        struct ev__ipc_header h = header(EV__IPC_HELLO, 0, 0, 0);

        h.magic = 0x65764932;
        send_or_fail(fd, &h, NULL, 0, NULL, 0);
}

static void send_unknown_type(int fd) {
        struct ev__ipc_header h = header(77, 0, 0, 0);

        send_or_fail(fd, &h, NULL, 0, NULL, 0);
}

static void send_state(int fd) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 99 << 1, 3);

        cr_assert_eq(send_message(fd, &h, "v9", 3, EV__IPC_MIN_MESSAGE, NULL, 0),
                     EV__IPC_MIN_MESSAGE);
}

static void send_second_hello(int fd) {
        send_hello(fd, 0);
}

static void send_reply(int fd) {
        struct ev__ipc_header h = header(EV__IPC_REPLY, 0, 0, 0);

        send_or_fail(fd, &h, NULL, 0, NULL, 0);
}

static void send_short_header(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, 0);

        cr_assert_eq(send_raw(fd, &h, HEADER_SIZE - 4, NULL, 0), (ssize_t)HEADER_SIZE - 4);
}

static void send_oversized(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, EV__IPC_INLINE_MAX + 100);
        static char data[EV__IPC_INLINE_MAX + 100];

        send_or_fail(fd, &h, data, sizeof(data), NULL, 0);
}

/* A valid inline SET, v<next> (the setter's control case). */
static void send_set_inline(int fd, const char *str) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, strlen(str) + 1);

        send_or_fail(fd, &h, str, strlen(str) + 1, NULL, 0);
}

static void send_set_lying_size(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, 100);

        send_or_fail(fd, &h, "v1000", 6, NULL, 0);
}

static void send_set_lying_size_short(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, 3);

        send_or_fail(fd, &h, "v1000", 6, NULL, 0);
}

/* A SET of BIG_SIZE bytes whose memfd is file_size long with seals. */
static void send_set_memfd(int fd, size_t file_size, unsigned seals) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, BIG_SIZE);
        int mfd = memfd_or_fail('m', file_size < BIG_SIZE ? file_size : BIG_SIZE, file_size, seals);

        send_or_fail(fd, &h, NULL, 0, &mfd, 1);
        /* peer_violation checks, once the server had it, that it wrote nothing. */
        kept_fd = mfd;
        kept_size = file_size < BIG_SIZE ? file_size : BIG_SIZE;
}

static void send_set_unsealed_memfd(int fd) {
        send_set_memfd(fd, BIG_SIZE, 0);
}

static void send_set_memfd_without_seal_write(int fd) {
        send_set_memfd(fd, BIG_SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

static void send_set_memfd_without_seal_shrink(int fd) {
        send_set_memfd(fd, BIG_SIZE, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL);
}

static void send_set_memfd_larger(int fd) {
        send_set_memfd(fd, BIG_SIZE + 4096, SEALS_ALL);
}

static void send_set_memfd_smaller(int fd) {
        send_set_memfd(fd, BIG_SIZE - 1, SEALS_ALL);
}

/* A SET whose DATA_FD is the write end of a pipe nobody reads... or
 * the read end nobody writes: a server that read it would block. */
static void send_set_pipe(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, BIG_SIZE);
        int p[2];

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        send_or_fail(fd, &h, NULL, 0, &p[0], 1);
        close(p[0]);
        close(p[1]);
}

static void send_set_three_fds(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, BIG_SIZE);
        int fds[3];

        for (int i = 0; i < 3; i++)
                fds[i] = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, SEALS_ALL);
        send_or_fail(fd, &h, NULL, 0, fds, 3);
        for (int i = 0; i < 3; i++)
                close(fds[i]);
}

/* More fds than the server's control buffer holds: MSG_CTRUNC. */
static void send_set_ctrunc(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, BIG_SIZE);
        int mfd = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, SEALS_ALL), fds[32];

        for (int i = 0; i < 32; i++)
                fds[i] = mfd;
        send_or_fail(fd, &h, NULL, 0, fds, 32);
        close(mfd);
}

static void send_set_flag_without_fd(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, BIG_SIZE);

        send_or_fail(fd, &h, NULL, 0, NULL, 0);
}

static void send_set_fd_without_flag(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, 6);
        int mfd = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, SEALS_ALL);

        send_or_fail(fd, &h, "v1000", 6, &mfd, 1);
        close(mfd);
}

static void send_set_memfd_too_small_for_fd(int fd) {
        /* 16 bytes travel inline: a memfd for them breaks the protocol. */
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, 16);
        int mfd = memfd_or_fail('m', 16, 16, SEALS_ALL);

        send_or_fail(fd, &h, NULL, 0, &mfd, 1);
        close(mfd);
}

static void send_nonzero_reserved(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, 6);

        h.reserved = 1;
        send_or_fail(fd, &h, "v1000", 6, NULL, 0);
}

static void send_set_socket_fd(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD, 0, BIG_SIZE);
        int sp[2];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
        send_or_fail(fd, &h, NULL, 0, &sp[0], 1);
        close(sp[0]);
        close(sp[1]);
}

/* A SET with a flag bit that no message has (the top one, far from the
 * bits in use: if it ever means something, pick another unknown one). */
static void send_set_unknown_flag(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, 1u << 15, 0, 6);

        send_or_fail(fd, &h, "v1000", 6, NULL, 0);
}

/* A SET with a flag of another type: a REPLY's SKIPPED. */
static void send_set_reply_flag(int fd) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_IF_CHANGED | EV__IPC_SKIPPED, 0, 6);

        send_or_fail(fd, &h, "v1000", 6, NULL, 0);
}

/* A watcher that sends anything after its HELLO. */
static void send_set_from_watcher(int fd) {
        send_set_inline(fd, "v1000");
}

Test(broken_peer, random_bytes_first, .timeout = 60) {
        peer_violation(send_random, false, 0);
}
Test(broken_peer, random_bytes_after_hello, .timeout = 60) {
        peer_violation(send_random, true, 0);
}
Test(broken_peer, wrong_magic, .timeout = 60) {
        peer_violation(send_wrong_magic_hello, false, 0);
}
Test(broken_peer, unknown_type_first, .timeout = 60) {
        peer_violation(send_unknown_type, false, 0);
}
Test(broken_peer, unknown_type_after_hello, .timeout = 60) {
        peer_violation(send_unknown_type, true, EV__IPC_SETTER);
}
Test(broken_peer, state_from_peer, .timeout = 60) {
        peer_violation(send_state, true, EV__IPC_SETTER);
}
Test(broken_peer, reply_from_peer, .timeout = 60) {
        peer_violation(send_reply, true, EV__IPC_SETTER);
}
Test(broken_peer, second_hello_watcher, .timeout = 60) {
        peer_violation(send_second_hello, true, 0);
}
Test(broken_peer, second_hello_setter, .timeout = 60) {
        peer_violation(send_second_hello, true, EV__IPC_SETTER);
}
Test(broken_peer, set_before_hello, .timeout = 60) {
        peer_violation(send_set_from_watcher, false, 0);
}
Test(broken_peer, watcher_sends_set, .timeout = 60) {
        peer_violation(send_set_from_watcher, true, 0);
}
Test(broken_peer, watcher_sends_random, .timeout = 60) {
        peer_violation(send_random, true, EV__IPC_SKIP_CURRENT);
}
Test(broken_peer, truncated_header, .timeout = 60) {
        peer_violation(send_short_header, true, EV__IPC_SETTER);
}
Test(broken_peer, oversized_message, .timeout = 60) {
        peer_violation(send_oversized, true, EV__IPC_SETTER);
}
Test(broken_peer, set_size_lies_long, .timeout = 60) {
        peer_violation(send_set_lying_size, true, EV__IPC_SETTER);
}
Test(broken_peer, set_size_lies_short, .timeout = 60) {
        peer_violation(send_set_lying_size_short, true, EV__IPC_SETTER);
}
Test(broken_peer, set_reserved_not_zero, .timeout = 60) {
        peer_violation(send_nonzero_reserved, true, EV__IPC_SETTER);
}
Test(broken_peer, set_unsealed_memfd, .timeout = 60) {
        peer_violation(send_set_unsealed_memfd, true, EV__IPC_SETTER);
}
Test(broken_peer, set_memfd_without_seal_write, .timeout = 60) {
        peer_violation(send_set_memfd_without_seal_write, true, EV__IPC_SETTER);
}
Test(broken_peer, set_memfd_without_seal_shrink, .timeout = 60) {
        peer_violation(send_set_memfd_without_seal_shrink, true, EV__IPC_SETTER);
}
Test(broken_peer, set_memfd_larger_than_size, .timeout = 60) {
        peer_violation(send_set_memfd_larger, true, EV__IPC_SETTER);
}
Test(broken_peer, set_memfd_smaller_than_size, .timeout = 60) {
        peer_violation(send_set_memfd_smaller, true, EV__IPC_SETTER);
}
Test(broken_peer, set_pipe_as_memfd, .timeout = 60) {
        peer_violation(send_set_pipe, true, EV__IPC_SETTER);
}
Test(broken_peer, set_socket_as_memfd, .timeout = 60) {
        peer_violation(send_set_socket_fd, true, EV__IPC_SETTER);
}
Test(broken_peer, set_three_fds, .timeout = 60) {
        peer_violation(send_set_three_fds, true, EV__IPC_SETTER);
}
Test(broken_peer, set_control_truncated, .timeout = 60) {
        peer_violation(send_set_ctrunc, true, EV__IPC_SETTER);
}
Test(broken_peer, set_data_fd_flag_without_fd, .timeout = 60) {
        peer_violation(send_set_flag_without_fd, true, EV__IPC_SETTER);
}
Test(broken_peer, set_inline_with_fd, .timeout = 60) {
        peer_violation(send_set_fd_without_flag, true, EV__IPC_SETTER);
}
Test(broken_peer, set_small_data_in_memfd, .timeout = 60) {
        peer_violation(send_set_memfd_too_small_for_fd, true, EV__IPC_SETTER);
}
Test(broken_peer, set_unknown_flag, .timeout = 60) {
        peer_violation(send_set_unknown_flag, true, EV__IPC_SETTER);
}
Test(broken_peer, set_flag_of_a_reply, .timeout = 60) {
        peer_violation(send_set_reply_flag, true, EV__IPC_SETTER);
}

/* Asserts that the setter on fd is answered REPLY, code 0, with flags. */
static void reply_ok_with(int fd, struct raw_msg *m, uint16_t flags) {
        cr_assert_gt(recv_message(fd, 5000, m), 0, "no REPLY");
        cr_assert_eq(m->h.type, EV__IPC_REPLY, "type %u, expected REPLY", m->h.type);
        cr_assert_eq(m->h.code, 0, "REPLY %u", m->h.code);
        cr_assert_eq(m->h.flags, flags, "REPLY with flags 0x%x, expected 0x%x", m->h.flags, flags);
}

/* A SET of BIG_SIZE bytes of byte in a sealed memfd, with flags. */
static void send_set_big(int fd, unsigned char byte, uint16_t flags) {
        struct ev__ipc_header h = header(EV__IPC_SET, EV__IPC_DATA_FD | flags, 0, BIG_SIZE);
        int mfd = memfd_or_fail(byte, BIG_SIZE, BIG_SIZE, SEALS_ALL);

        send_or_fail(fd, &h, NULL, 0, &mfd, 1);
        close(mfd);
}

/* The control cases: the same setter with valid SETs is answered 0 and
 * sets the value, so the violations above are refused for what they are;
 * with IF_CHANGED, inline and in a memfd, the same bytes are answered
 * SKIPPED and make no version. */
Test(broken_peer, valid_sets_are_accepted, .timeout = 60) {
        struct served s;
        struct good g;
        struct raw_msg *m = malloc(sizeof(*m));
        uint64_t version;
        int fd;
        struct ev__ipc_header h;
        ev_value_snapshot *snap;
        char str[32];

        cr_assert_not_null(m);
        serve_or_fail(&s, EV_VALUE_SERVE_ALLOW_SET);
        set_next(&s);
        good_connect(&s, &g);
        fd = raw_peer(&s);
        send_hello(fd, EV__IPC_SETTER);
        version = ev_value_get_version(s.v);
        snprintf(str, sizeof(str), "v%llu", (unsigned long long)version + 1);
        send_set_inline(fd, str);
        pump(&s);
        reply_ok_with(fd, m, 0);
        cr_assert_eq(ev_value_get_version(s.v), version + 1);
        good_catches_up(&s, &g);
        /* The same bytes with IF_CHANGED: answered SKIPPED, no version. */
        h = header(EV__IPC_SET, EV__IPC_IF_CHANGED, 0, strlen(str) + 1);
        send_or_fail(fd, &h, str, strlen(str) + 1, NULL, 0);
        pump(&s);
        reply_ok_with(fd, m, EV__IPC_SKIPPED);
        cr_assert_eq(ev_value_get_version(s.v), version + 1);
        /* A sealed memfd of the right size. */
        send_set_big(fd, 'm', 0);
        pump(&s);
        reply_ok_with(fd, m, 0);
        cr_assert_eq(ev_value_get_version(s.v), version + 2);
        snap = peek_or_fail(s.v);
        cr_assert_eq(ev_snapshot_size(snap), BIG_SIZE);
        cr_assert_eq(((const unsigned char *)ev_snapshot_data(snap))[BIG_SIZE - 1], 'm');
        ev_snapshot_unref(snap);
        /* In a memfd with IF_CHANGED: the same bytes skipped, others set. */
        send_set_big(fd, 'm', EV__IPC_IF_CHANGED);
        pump(&s);
        reply_ok_with(fd, m, EV__IPC_SKIPPED);
        cr_assert_eq(ev_value_get_version(s.v), version + 2);
        send_set_big(fd, 'n', EV__IPC_IF_CHANGED);
        pump(&s);
        reply_ok_with(fd, m, 0);
        cr_assert_eq(ev_value_get_version(s.v), version + 3);
        snap = peek_or_fail(s.v);
        cr_assert_eq(ev_snapshot_size(snap), BIG_SIZE);
        cr_assert_eq(((const unsigned char *)ev_snapshot_data(snap))[0], 'n');
        cr_assert_eq(((const unsigned char *)ev_snapshot_data(snap))[BIG_SIZE - 1], 'n');
        ev_snapshot_unref(snap);
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 2);
        close(fd);
        pump(&s);
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 1);
        ev_watcher_close(g.w);
        free(m);
        served_free(&s);
}

/* ------------------------------------------------------------ no right to set */

Test(setter, flood_without_allow_set, .timeout = 120) {
        unsigned n_flood = scaled(10000);
        struct served s;
        struct good g;
        struct raw_msg *m = malloc(sizeof(*m));
        uint64_t version;
        int fd;
        bool dropped = false;

        cr_assert_not_null(m);
        serve_or_fail(&s, 0);
        set_next(&s);
        good_connect(&s, &g);
        good_catches_up(&s, &g);
        version = ev_value_get_version(s.v);
        fd = raw_peer(&s);
        send_hello(fd, EV__IPC_SETTER);
        /* Answered -EPERM, set after set, while it reads its replies. */
        for (int i = 0; i < 20; i++) {
                send_set_inline(fd, "v1000");
                pump(&s);
                cr_assert_gt(recv_message(fd, 5000, m), 0, "no REPLY to SET %d", i);
                raw_msg_close(m);
                cr_assert_eq(m->h.type, EV__IPC_REPLY, "type %u, expected REPLY", m->h.type);
                cr_assert_eq(m->h.code, EPERM, "REPLY %u, expected EPERM", m->h.code);
                cr_assert_eq(ev_value_get_version(s.v), version, "the value changed");
        }
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 2);
        /* Then it stops reading: its replies pile up until it is dropped. */
        for (unsigned i = 0; i < n_flood && !dropped; i++) {
                struct ev__ipc_header h = header(EV__IPC_SET, 0, 0, 6);
                ssize_t r = send_message(fd, &h, "v1000", 6, 0, NULL, 0);

                if (r == -EAGAIN) {
                        pump(&s);
                        r = send_message(fd, &h, "v1000", 6, 0, NULL, 0);
                }
                if (r == -EPIPE || r == -ECONNRESET)
                        dropped = true;
                else if (r != -EAGAIN)
                        cr_assert_eq(r, (ssize_t)(HEADER_SIZE + 6), "send: %s", strerror((int)-r));
                if (i % 16 == 0)
                        pump(&s);
                dropped = dropped || ev_value_server_get_peer_count(s.srv) == 1;
        }
        pump(&s);
        cr_assert(dropped, "a setter that never reads its replies was not dropped");
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 1);
        cr_assert_eq(ev_value_get_version(s.v), version, "the value changed");
        set_next(&s);
        good_catches_up(&s, &g);
        close(fd);
        ev_watcher_close(g.w);
        free(m);
        served_free(&s);
}

Test(setter, remote_set_without_allow_set, .timeout = 60) {
        /* Static: the child keeps reaching it for valgrind until it exits. */
        static struct served s;
        uint64_t version;
        pid_t pid;
        int status = 0;

        serve_or_fail(&s, 0);
        set_next(&s);
        version = ev_value_get_version(s.v);
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int r = ev_value_remote_set(s.name, "v1000", 6, 30000);

                _exit(r == -EPERM ? 0 : 1);
        }
        while (waitpid(pid, &status, WNOHANG) == 0) {
                struct pollfd pfd = { .fd = ev_value_server_get_fd(s.srv), .events = POLLIN };

                if (poll(&pfd, 1, 50) > 0)
                        cr_assert_geq(ev_value_server_process(s.srv), 0);
        }
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "ev_value_remote_set did not fail with -EPERM");
        cr_assert_eq(ev_value_get_version(s.v), version, "the value changed");
        served_free(&s);
}

/* ------------------------------------------------------------ churn */

Test(churn, many_short_peers_leak_no_fd, .timeout = 300) {
        unsigned n_peers = scaled(5000);
        /* Static: the child keeps reaching it for valgrind until it exits. */
        static struct served s;
        struct good g;
        int fds_before, status = 0;
        pid_t pid;
        bool child_done = false;

        serve_or_fail(&s, EV_VALUE_SERVE_ALLOW_SET);
        set_next(&s);
        good_connect(&s, &g);
        fds_before = count_open_fds();
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                /* Watchers, setters and peers that say nothing, each gone
                 * at once; some with their HELLO unread. */
                for (unsigned i = 0; i < n_peers; i++) {
                        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
                        struct ev__ipc_header h = header(EV__IPC_HELLO, 0, 0, 0);

                        if (fd < 0)
                                _exit(2);
                        if (connect(fd, (struct sockaddr *)&s.addr, s.addr_len) < 0)
                                _exit(3);
                        if (i % 3 == 1)
                                h.flags = EV__IPC_SETTER;
                        if (i % 3 != 0 && send(fd, &h, sizeof(h), MSG_NOSIGNAL) < 0)
                                _exit(4);
                        close(fd);
                }
                _exit(0);
        }
        while (!child_done) {
                struct pollfd pfd = { .fd = ev_value_server_get_fd(s.srv), .events = POLLIN };

                set_next(&s);
                if (poll(&pfd, 1, 10) > 0)
                        cr_assert_geq(ev_value_server_process(s.srv), 0);
                if (waitpid(pid, &status, WNOHANG) == pid)
                        child_done = true;
        }
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child failed: %d", status);
        for (int i = 0; i < 500 && ev_value_server_get_peer_count(s.srv) > 1; i++) {
                struct pollfd pfd = { .fd = ev_value_server_get_fd(s.srv), .events = POLLIN };

                poll(&pfd, 1, 10);
                pump(&s);
        }
        cr_assert_eq(ev_value_server_get_peer_count(s.srv), 1, "%zu peers left",
                     ev_value_server_get_peer_count(s.srv));
        cr_assert_eq(count_open_fds(), fds_before, "%d fds open, %d before the churn",
                     count_open_fds(), fds_before);
        set_next(&s);
        good_catches_up(&s, &g);
        ev_watcher_close(g.w);
        served_free(&s);
}

/* ------------------------------------------------------------ a raw server */

/* A listening socket that accepts one library consumer and plays the
 * server by hand, with a state page made as the server makes it. */
struct raw_server {
        int lfd, cfd;
        char name[64];
        struct ev__ipc_page *page;
        int page_fd;
        ev_value_watcher *w;
        uint64_t sent; /* the last state sent */
};

static int page_or_fail(struct ev__ipc_page **ret, unsigned seals, size_t size) {
        int fd = memfd_create("page", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        void *p;

        cr_assert_geq(fd, 0);
        cr_assert_eq(ftruncate(fd, (off_t)size), 0);
        p = mmap(NULL, EV__IPC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        cr_assert_neq(p, MAP_FAILED);
        if (seals)
                cr_assert_eq(fcntl(fd, F_ADD_SEALS, seals), 0, "F_ADD_SEALS: %s", strerror(errno));
        *ret = p;
        return fd;
}

/* Connects a library consumer and reads its HELLO. */
static void raw_server_start(struct raw_server *rs, unsigned flags) {
        struct sockaddr_un addr;
        socklen_t len;
        struct raw_msg *m = malloc(sizeof(*m));
        int r;

        cr_assert_not_null(m);
        memset(rs, 0, sizeof(*rs));
        make_name(rs->name, &addr, &len);
        rs->lfd = listen_or_fail(&addr, len);
        r = ev_value_connect(rs->name, flags, &rs->w);
        cr_assert_eq(r, 0, "ev_value_connect: %s", strerror(-r));
        rs->cfd = accept4(rs->lfd, NULL, NULL, SOCK_CLOEXEC);
        cr_assert_geq(rs->cfd, 0, "accept: %s", strerror(errno));
        cr_assert_gt(recv_message(rs->cfd, 5000, m), 0, "no HELLO from the consumer");
        raw_msg_close(m);
        cr_assert_eq(m->n, (ssize_t)HEADER_SIZE);
        cr_assert_eq(m->h.magic, EV__IPC_MAGIC);
        cr_assert_eq(m->h.type, EV__IPC_HELLO);
        rs->page_fd = page_or_fail(&rs->page, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL |
                                                      F_SEAL_FUTURE_WRITE, EV__IPC_PAGE_SIZE);
        free(m);
        cr_assert_not(fd_readable(ev_watcher_get_fd(rs->w)), "readable before any STATE");
        get_fails_with(rs->w, -EAGAIN);
}

static void raw_server_stop(struct raw_server *rs) {
        rs->w = ev_watcher_close(rs->w);
        munmap(rs->page, EV__IPC_PAGE_SIZE);
        close(rs->page_fd);
        close(rs->cfd);
        close(rs->lfd);
}

/* Sends a STATE as the server does: inline (data_fd < 0) or with a memfd,
 * with the page on the first one, after publishing it in the page. */
static void raw_send_state(struct raw_server *rs, uint64_t state, const void *data, size_t size,
                           int data_fd) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, state, size);
        int fds[2];
        size_t n_fds = 0;
        ssize_t r;

        if (rs->sent == 0) {
                h.flags |= EV__IPC_PAGE_FD;
                fds[n_fds++] = rs->page_fd;
        }
        if (data_fd >= 0) {
                h.flags |= EV__IPC_DATA_FD;
                fds[n_fds++] = data_fd;
        }
        atomic_store(&rs->page->state, state);
        r = send_message(rs->cfd, &h, data, data_fd >= 0 ? 0 : size, EV__IPC_MIN_MESSAGE, fds,
                         n_fds);
        cr_assert_gt(r, 0, "sendmsg: %s", strerror((int)-r));
        rs->sent = state;
}

/* Asserts that the consumer's fd becomes readable within 5 s. */
static void consumer_readable(struct raw_server *rs) {
        struct pollfd pfd = { .fd = ev_watcher_get_fd(rs->w), .events = POLLIN };

        cr_assert_eq(poll(&pfd, 1, 5000), 1, "the consumer's fd did not become readable");
}

/* Asserts that the consumer's get gives -EPROTO now and on every later
 * try.  Right after a get that returned a snapshot, one get may answer
 * -EAGAIN from the state page without looking at the socket (a message
 * that does not move the page is not seen by it); the fd stays readable
 * and the next get looks. */
static void consumer_eproto_forever(struct raw_server *rs) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r;

        consumer_readable(rs);
        r = ev_watcher_get(rs->w, &s);
        if (r == -EAGAIN) {
                cr_assert_eq(s, SNAPSHOT_SENTINEL);
                cr_assert(rs->sent != 0, "-EAGAIN with a message waiting and no snapshot taken");
                consumer_readable(rs);
        } else {
                cr_assert_eq(r, -EPROTO, "ev_watcher_get: got %d (%s), expected -EPROTO", r,
                             strerror(-r));
        }
        for (int i = 0; i < 3; i++)
                get_fails_with(rs->w, -EPROTO);
        cr_assert_eq(ev_watcher_wait(rs->w, 0, -1, &s), -EPROTO);
        cr_assert_eq(s, SNAPSHOT_SENTINEL);
        get_fails_with(rs->w, -EPROTO);
}

/* What a broken server sends; first says whether a valid first STATE
 * ("v1", version 1, with the page) comes before. */
typedef void (*server_violation_fn)(struct raw_server *rs);

static void consumer_refuses(server_violation_fn violation, bool first) {
        struct raw_server rs;
        int fds_before = count_open_fds();

        raw_server_start(&rs, 0);
        if (first) {
                raw_send_state(&rs, 1 << 1, "v1", 3, -1);
                consumer_readable(&rs);
                get_string_or_fail(rs.w, 1, "v1");
        }
        violation(&rs);
        consumer_eproto_forever(&rs);
        /* A later valid STATE changes nothing (the consumer may have shut
         * the connection down: the send may fail). */
        {
                struct ev__ipc_header h = header(EV__IPC_STATE, 0, 50 << 1, 4);

                send_message(rs.cfd, &h, "v50", 4, EV__IPC_MIN_MESSAGE, NULL, 0);
        }
        get_fails_with(rs.w, -EPROTO);
        raw_server_stop(&rs);
        cr_assert_eq(count_open_fds(), fds_before, "%d fds open, %d before", count_open_fds(),
                     fds_before);
}

static void state_garbage(struct raw_server *rs) {
        send_random(rs->cfd);
}

static void state_size_lies(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 2 << 1, 500);

        cr_assert_eq(send_message(rs->cfd, &h, "v2", 3, EV__IPC_MIN_MESSAGE, NULL, 0),
                     EV__IPC_MIN_MESSAGE);
}

static void state_inline_too_big(struct raw_server *rs) {
        static char data[EV__IPC_INLINE_MAX + 1];
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 2 << 1, sizeof(data));

        cr_assert_gt(send_message(rs->cfd, &h, data, sizeof(data), 0, NULL, 0), 0);
}

static void state_backwards(struct raw_server *rs) {
        raw_send_state(rs, 5 << 1, "v5", 3, -1);
        consumer_readable(rs);
        get_string_or_fail(rs->w, 5, "v5");
        raw_send_state(rs, 3 << 1, "v3", 3, -1);
}

static void state_repeats(struct raw_server *rs) {
        raw_send_state(rs, 5 << 1, "v5", 3, -1);
        consumer_readable(rs);
        get_string_or_fail(rs->w, 5, "v5");
        raw_send_state(rs, 5 << 1, "v5", 3, -1);
}

static void state_version_zero(struct raw_server *rs) {
        raw_send_state(rs, 0, "v0", 3, -1);
}

static void state_memfd(struct raw_server *rs, size_t file_size, unsigned seals) {
        int mfd = memfd_or_fail('m', file_size < BIG_SIZE ? file_size : BIG_SIZE, file_size, seals);

        raw_send_state(rs, 2 << 1, NULL, BIG_SIZE, mfd);
        close(mfd);
}

static void state_memfd_unsealed(struct raw_server *rs) {
        state_memfd(rs, BIG_SIZE, 0);
}

static void state_memfd_without_seal_write(struct raw_server *rs) {
        state_memfd(rs, BIG_SIZE, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL);
}

static void state_memfd_larger(struct raw_server *rs) {
        state_memfd(rs, BIG_SIZE + 4096, SEALS_ALL);
}

static void state_memfd_smaller(struct raw_server *rs) {
        state_memfd(rs, BIG_SIZE - 1, SEALS_ALL);
}

/* A memfd that may shrink, which the server shrinks after sending it: a
 * consumer that mapped it would SIGBUS on reading it. */
static void state_memfd_shrinks(struct raw_server *rs) {
        int mfd = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL);

        raw_send_state(rs, 2 << 1, NULL, BIG_SIZE, mfd);
        cr_assert_eq(ftruncate(mfd, 0), 0, "ftruncate: %s", strerror(errno));
        close(mfd);
}

static void state_pipe(struct raw_server *rs) {
        int p[2];

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        raw_send_state(rs, 2 << 1, NULL, BIG_SIZE, p[0]);
        close(p[0]);
        close(p[1]);
}

static void state_page_unsealed(struct raw_server *rs) {
        struct ev__ipc_page *page;
        int fd = page_or_fail(&page, 0, EV__IPC_PAGE_SIZE);

        close(rs->page_fd);
        munmap(rs->page, EV__IPC_PAGE_SIZE);
        rs->page_fd = fd;
        rs->page = page;
        raw_send_state(rs, 1 << 1, "v1", 3, -1);
}

static void state_page_without_future_write(struct raw_server *rs) {
        struct ev__ipc_page *page;
        int fd = page_or_fail(&page, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, EV__IPC_PAGE_SIZE);

        close(rs->page_fd);
        munmap(rs->page, EV__IPC_PAGE_SIZE);
        rs->page_fd = fd;
        rs->page = page;
        raw_send_state(rs, 1 << 1, "v1", 3, -1);
}

static void state_page_too_small(struct raw_server *rs) {
        struct ev__ipc_page *page;
        int fd = page_or_fail(&page, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL |
                                             F_SEAL_FUTURE_WRITE, 64);

        close(rs->page_fd);
        munmap(rs->page, EV__IPC_PAGE_SIZE);
        rs->page_fd = fd;
        rs->page = page;
        raw_send_state(rs, 1 << 1, "v1", 3, -1);
}

static void state_page_is_pipe(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, EV__IPC_PAGE_FD, 1 << 1, 3);
        int p[2];

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0);
        cr_assert_gt(send_message(rs->cfd, &h, "v1", 3, EV__IPC_MIN_MESSAGE, &p[0], 1), 0);
        close(p[0]);
        close(p[1]);
}

static void state_first_without_page(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 1 << 1, 3);

        cr_assert_gt(send_message(rs->cfd, &h, "v1", 3, EV__IPC_MIN_MESSAGE, NULL, 0), 0);
}

static void state_three_fds(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, EV__IPC_DATA_FD, 2 << 1, BIG_SIZE);
        int fds[3];

        for (int i = 0; i < 3; i++)
                fds[i] = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, SEALS_ALL);
        cr_assert_gt(send_message(rs->cfd, &h, NULL, 0, 0, fds, 3), 0);
        for (int i = 0; i < 3; i++)
                close(fds[i]);
}

static void state_ctrunc(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, EV__IPC_DATA_FD, 2 << 1, BIG_SIZE);
        int mfd = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, SEALS_ALL), fds[32];

        for (int i = 0; i < 32; i++)
                fds[i] = mfd;
        cr_assert_gt(send_message(rs->cfd, &h, NULL, 0, 0, fds, 32), 0);
        close(mfd);
}

static void state_truncated(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 2 << 1, 3);

        cr_assert_eq(send_raw(rs->cfd, &h, HEADER_SIZE - 8, NULL, 0), (ssize_t)HEADER_SIZE - 8);
}

static void state_not_padded(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 2 << 1, 3);

        cr_assert_gt(send_message(rs->cfd, &h, "v2", 3, 0, NULL, 0), 0);
}

static void state_wrong_magic(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_STATE, 0, 2 << 1, 3);

        h.magic ^= 1;
        cr_assert_gt(send_message(rs->cfd, &h, "v2", 3, EV__IPC_MIN_MESSAGE, NULL, 0), 0);
}

static void reply_to_watcher(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_REPLY, 0, 0, 0);

        cr_assert_gt(send_message(rs->cfd, &h, NULL, 0, 0, NULL, 0), 0);
}

static void hello_to_watcher(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_HELLO, 0, 0, 0);

        cr_assert_gt(send_message(rs->cfd, &h, NULL, 0, 0, NULL, 0), 0);
}

static void error_eproto(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_ERROR, 0, 0, 0);

        h.code = EPROTO;
        cr_assert_gt(send_message(rs->cfd, &h, NULL, 0, 0, NULL, 0), 0);
}

/* An ERROR tells a watcher that it broke the protocol (EPROTO) or a limit
 * (EUSERS); any other code is a server's violation. */
static uint32_t error_code;

static void error_with_code(struct raw_server *rs) {
        struct ev__ipc_header h = header(EV__IPC_ERROR, 0, 0, 0);

        h.code = error_code;
        cr_assert_gt(send_message(rs->cfd, &h, NULL, 0, 0, NULL, 0), 0);
}

Test(broken_server, error_eagain, .timeout = 60) {
        error_code = EAGAIN;
        consumer_refuses(error_with_code, true);
}
Test(broken_server, error_enoent, .timeout = 60) {
        error_code = ENOENT;
        consumer_refuses(error_with_code, true);
}

Test(broken_server, error_eusers, .timeout = 60) {
        struct raw_server rs;
        int fds_before = count_open_fds();

        raw_server_start(&rs, 0);
        error_code = EUSERS;
        error_with_code(&rs);
        consumer_readable(&rs);
        get_fails_with(rs.w, -EUSERS);
        get_fails_with(rs.w, -EUSERS);
        raw_server_stop(&rs);
        cr_assert_eq(count_open_fds(), fds_before);
}

Test(broken_server, garbage, .timeout = 60) {
        consumer_refuses(state_garbage, true);
}
Test(broken_server, garbage_first, .timeout = 60) {
        consumer_refuses(state_garbage, false);
}
Test(broken_server, state_size_lies, .timeout = 60) {
        consumer_refuses(state_size_lies, true);
}
Test(broken_server, state_inline_too_big, .timeout = 60) {
        consumer_refuses(state_inline_too_big, true);
}
Test(broken_server, state_not_padded, .timeout = 60) {
        consumer_refuses(state_not_padded, true);
}
Test(broken_server, wrong_magic, .timeout = 60) {
        consumer_refuses(state_wrong_magic, true);
}
Test(broken_server, version_backwards, .timeout = 60) {
        consumer_refuses(state_backwards, true);
}
Test(broken_server, version_repeats, .timeout = 60) {
        consumer_refuses(state_repeats, true);
}
Test(broken_server, version_zero, .timeout = 60) {
        consumer_refuses(state_version_zero, false);
}
Test(broken_server, memfd_unsealed, .timeout = 60) {
        consumer_refuses(state_memfd_unsealed, true);
}
Test(broken_server, memfd_without_seal_write, .timeout = 60) {
        consumer_refuses(state_memfd_without_seal_write, true);
}
Test(broken_server, memfd_larger, .timeout = 60) {
        consumer_refuses(state_memfd_larger, true);
}
Test(broken_server, memfd_smaller, .timeout = 60) {
        consumer_refuses(state_memfd_smaller, true);
}
Test(broken_server, memfd_without_seal_shrink_truncated, .timeout = 60) {
        consumer_refuses(state_memfd_shrinks, true);
}
Test(broken_server, memfd_is_pipe, .timeout = 60) {
        consumer_refuses(state_pipe, true);
}
Test(broken_server, page_unsealed, .timeout = 60) {
        consumer_refuses(state_page_unsealed, false);
}
Test(broken_server, page_without_future_write, .timeout = 60) {
        consumer_refuses(state_page_without_future_write, false);
}
Test(broken_server, page_too_small, .timeout = 60) {
        consumer_refuses(state_page_too_small, false);
}
Test(broken_server, page_is_pipe, .timeout = 60) {
        consumer_refuses(state_page_is_pipe, false);
}
Test(broken_server, first_state_without_page, .timeout = 60) {
        consumer_refuses(state_first_without_page, false);
}
Test(broken_server, three_fds, .timeout = 60) {
        consumer_refuses(state_three_fds, true);
}
Test(broken_server, control_truncated, .timeout = 60) {
        consumer_refuses(state_ctrunc, true);
}
Test(broken_server, truncated_header, .timeout = 60) {
        consumer_refuses(state_truncated, true);
}
Test(broken_server, reply_on_watcher, .timeout = 60) {
        consumer_refuses(reply_to_watcher, true);
}
Test(broken_server, hello_on_watcher, .timeout = 60) {
        consumer_refuses(hello_to_watcher, true);
}
Test(broken_server, error_message, .timeout = 60) {
        consumer_refuses(error_eproto, true);
}

/* A raw server's answer to a library setter: a child calls
 * ev_value_remote_set_flags with set_flags, the test reads its HELLO and
 * SET and answers with reply.  Returns what the child's call returned. */
static int setter_given_reply(unsigned set_flags, const struct ev__ipc_header *reply) {
        struct sockaddr_un addr;
        socklen_t len;
        char name[64];
        struct raw_msg *m = malloc(sizeof(*m));
        int lfd, cfd, status = 0;
        pid_t pid;

        cr_assert_not_null(m);
        make_name(name, &addr, &len);
        lfd = listen_or_fail(&addr, len);
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0);
        if (pid == 0) {
                int r = ev_value_remote_set_flags(name, "v1", 3, set_flags, 30000);

                _exit(128 + r); /* r is -EPROTO...1 */
        }
        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        cr_assert_geq(cfd, 0, "accept: %s", strerror(errno));
        cr_assert_gt(recv_message(cfd, 30000, m), 0, "no HELLO from the setter");
        cr_assert_eq(m->h.type, EV__IPC_HELLO);
        cr_assert_gt(recv_message(cfd, 30000, m), 0, "no SET from the setter");
        cr_assert_eq(m->h.type, EV__IPC_SET);
        cr_assert_eq(m->h.flags, (set_flags & EV_VALUE_SET_IF_CHANGED) ? EV__IPC_IF_CHANGED : 0,
                     "SET with flags 0x%x for flags 0x%x", m->h.flags, set_flags);
        cr_assert_gt(send_message(cfd, reply, NULL, 0, 0, NULL, 0), 0);
        cr_assert_eq(waitpid(pid, &status, 0), pid);
        close(cfd);
        close(lfd);
        free(m);
        cr_assert(WIFEXITED(status), "the setter child died: status 0x%x", status);
        return WEXITSTATUS(status) - 128;
}

/* SKIPPED answers only an IF_CHANGED set that succeeded: any other use
 * would make a caller believe a set happened, or not, wrongly. */
Test(broken_server, remote_set_reply_flags, .timeout = 60) {
        struct ev__ipc_header plain = header(EV__IPC_REPLY, 0, 0, 0);
        struct ev__ipc_header skipped = header(EV__IPC_REPLY, EV__IPC_SKIPPED, 0, 0);
        struct ev__ipc_header refused_skipped = skipped;
        struct ev__ipc_header unknown = header(EV__IPC_REPLY, 1u << 15, 0, 0);
        int r;

        refused_skipped.code = EPERM;
        /* The control cases. */
        r = setter_given_reply(0, &plain);
        cr_assert_eq(r, 1, "a plain REPLY to a plain set: %d", r);
        r = setter_given_reply(EV_VALUE_SET_IF_CHANGED, &plain);
        cr_assert_eq(r, 1, "a plain REPLY to an IF_CHANGED set: %d", r);
        r = setter_given_reply(EV_VALUE_SET_IF_CHANGED, &skipped);
        cr_assert_eq(r, 0, "SKIPPED to an IF_CHANGED set: %d", r);
        /* The violations. */
        r = setter_given_reply(0, &skipped);
        cr_assert_eq(r, -EPROTO, "SKIPPED to a plain set: %d", r);
        r = setter_given_reply(EV_VALUE_SET_IF_CHANGED, &refused_skipped);
        cr_assert_eq(r, -EPROTO, "SKIPPED with EPERM: %d", r);
        r = setter_given_reply(EV_VALUE_SET_IF_CHANGED, &unknown);
        cr_assert_eq(r, -EPROTO, "a REPLY with an unknown flag: %d", r);
}

/* The control case: the same raw server's valid STATEs, inline and in a
 * sealed memfd, are taken, and the memfd's bytes outlive the connection. */
Test(broken_server, valid_states_are_accepted, .timeout = 60) {
        struct raw_server rs;
        int fds_before = count_open_fds(), mfd;
        ev_value_snapshot *snap;
        const unsigned char *p;

        raw_server_start(&rs, 0);
        raw_send_state(&rs, 1 << 1, "v1", 3, -1);
        consumer_readable(&rs);
        get_string_or_fail(rs.w, 1, "v1");
        get_fails_with(rs.w, -EAGAIN);
        mfd = memfd_or_fail('m', BIG_SIZE, BIG_SIZE, SEALS_ALL);
        raw_send_state(&rs, 7 << 1, NULL, BIG_SIZE, mfd);
        close(mfd);
        consumer_readable(&rs);
        snap = get_or_fail(rs.w);
        cr_assert_eq(ev_snapshot_version(snap), 7);
        cr_assert_eq(ev_snapshot_size(snap), BIG_SIZE);
        raw_send_state(&rs, 9 << 1 | 1, "v9", 3, -1);
        consumer_readable(&rs);
        get_string_or_fail(rs.w, 9, "v9");
        cr_assert_eq(shutdown(rs.cfd, SHUT_WR), 0);
        get_fails_with(rs.w, -EPIPE);
        get_fails_with(rs.w, -EPIPE);
        raw_server_stop(&rs);
        p = ev_snapshot_data(snap);
        for (size_t i = 0; i < BIG_SIZE; i++)
                cr_assert_eq(p[i], 'm');
        ev_snapshot_unref(snap);
        cr_assert_eq(count_open_fds(), fds_before, "%d fds open, %d before", count_open_fds(),
                     fds_before);
}
