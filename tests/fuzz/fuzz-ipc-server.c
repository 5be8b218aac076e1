/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer harness for the server of a served value (lib/ipc/server.c):
 * each input is a session in which two raw peers, plain AF_UNIX
 * SOCK_SEQPACKET sockets connected to the server's listening socket, send
 * it messages made from the input's bytes (any header, any fds: sealed,
 * unsealed or resized memfds, pipes, too many fds), read or ignore what it
 * sends, hang up, while the producer sets and closes the value and a
 * well-behaved library watcher (ev_value_connect) watches it.  After every
 * step it traps on the first broken rule of ev_value_serve(3): process
 * fails; the value's version goes back, or changes by a remote set that
 * the server must refuse (no EV_VALUE_SERVE_ALLOW_SET); the server counts
 * more peers than are connected; the good watcher gets an error, a version
 * that does not grow, or bytes that differ from the value's, or does not
 * reach the newest version once the producer's loop has run; and, at the
 * end of the input, an fd of the process is left open.
 *
 * The input: byte 0 chooses the flags (bit 0: EV_VALUE_SERVE_ALLOW_SET,
 * bit 1: the good watcher uses EV_VALUE_WATCH_SKIP_CURRENT); then records,
 * an op byte (mod N_OPS) and its operands, read as far as the input goes
 * (missing bytes read as 0):
 *   CONNECT p         (re)connect raw peer p (p = operand & 1)
 *   HELLO p f         HELLO with flags f
 *   MESSAGE p t f m s k   a message of type t (mod 8) and flags f; m: bits
 *                     0-3 the fds (see send_fds), bit 4 wrong magic, bit 5
 *                     reserved set, bit 6 code set, bit 7 state set; s:
 *                     the size class (see message_size); k: bit 0 the
 *                     size field lies, bits 1-7 the data's seed
 *   RAW p n bytes...  n bytes of the input as one message
 *   READ p            receive what waits for p (fds closed)
 *   CLOSE p           close p
 *   SHUT p            shut p's write side down
 *   SET s             the producer sets (s: size class, bit 7 big)
 *   PROCESS           one ev_value_server_process
 *   GOOD              run the producer's loop until the good watcher has
 *                     the newest version
 *   GOOD_GET          one get on the good watcher
 *   VCLOSE            close the value
 *   VALID_SET p s     HELLO(SETTER) was p's, a valid SET of size class s
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memfd_create, pipe2, accept4 */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define HEADER_SIZE sizeof(struct ev__ipc_header)
#define SEALS_ALL (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define N_PEERS 2
#define MAX_STEPS 256

enum op_code {
        OP_CONNECT,
        OP_HELLO,
        OP_MESSAGE,
        OP_RAW,
        OP_READ,
        OP_CLOSE,
        OP_SHUT,
        OP_SET,
        OP_PROCESS,
        OP_GOOD,
        OP_GOOD_GET,
        OP_VCLOSE,
        OP_VALID_SET,
        N_OPS
};

__attribute__((noreturn, format(printf, 2, 3)))
static void fail(int line, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "fuzz-ipc-server.c:%d: rule broken: ", line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        __builtin_trap();
}

#define CHECK(cond, ...) \
        do { \
                if (!(cond)) \
                        fail(__LINE__, __VA_ARGS__); \
        } while (0)

/* ------------------------------------------------------------ the input */

struct input {
        const uint8_t *p;
        size_t n;
};

static uint8_t take(struct input *in) {
        uint8_t b = 0;

        if (in->n > 0) {
                b = *in->p++;
                in->n--;
        }
        return b;
}

/* ------------------------------------------------------------ the session */

static struct session {
        ev_value *v;
        ev_value_server *srv;
        int lfd;
        struct sockaddr_un addr;
        socklen_t addr_len;
        char name[64];
        bool allow_set;
        bool closed;
        uint64_t version;       /* the highest version seen so far */
        uint64_t own_sets;      /* the producer's successful sets */
        int peer[N_PEERS];      /* raw peers, -1 when not connected */
        ev_value_watcher *good;
        uint64_t good_last;     /* the version the good watcher got last */
        bool good_ended;        /* it got -EPIPE */
        unsigned counter;
} S;

static unsigned char buf[EV__IPC_MAX_MESSAGE + 4096];

static int count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = -1;

        CHECK(d, "opendir: %s", strerror(errno));
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

static void fill(unsigned char *p, size_t n, unsigned seed) {
        for (size_t i = 0; i < n; i++)
                p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

/* A memfd of file_size bytes (the data's pattern) with seals; -1 if none could be made. */
static int memfd_with(size_t file_size, unsigned seals, unsigned seed) {
        int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        static unsigned char data[8192];

        if (fd < 0)
                return -1;
        fill(data, sizeof(data), seed);
        if (write(fd, data, file_size < sizeof(data) ? file_size : sizeof(data)) < 0 ||
            ftruncate(fd, (off_t)file_size) < 0 || (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
                close(fd);
                return -1;
        }
        return fd;
}

/* The process's invariants after every step. */
static void check_server(void) {
        uint64_t version = ev_value_get_version(S.v);

        CHECK(version >= S.version, "version went from %llu back to %llu",
              (unsigned long long)S.version, (unsigned long long)version);
        S.version = version;
        if (!S.allow_set)
                CHECK(version == S.own_sets, "version %llu without ALLOW_SET, the producer set %llu",
                      (unsigned long long)version, (unsigned long long)S.own_sets);
}

static void process_once(void) {
        int r = ev_value_server_process(S.srv);

        CHECK(r >= 0, "ev_value_server_process: %d (%s)", r, strerror(-r));
}

/* process while the server's fd is readable, a bounded number of times. */
static void pump(void) {
        struct pollfd pfd = { .fd = ev_value_server_get_fd(S.srv), .events = POLLIN };

        for (int i = 0; i < 64; i++) {
                process_once();
                if (poll(&pfd, 1, 0) != 1)
                        break;
        }
        check_server();
}

/* A peer counts from accept to drop: never more than are connected once
 * process has seen every hang-up. */
static void check_peer_count(void) {
        size_t connected = S.good ? 1 : 0, n;

        for (int i = 0; i < N_PEERS; i++)
                connected += S.peer[i] >= 0;
        n = ev_value_server_get_peer_count(S.srv);
        CHECK(n <= connected, "%zu peers counted, %zu connected", n, connected);
}

/* One get on the good watcher: only 0, -EAGAIN, or -EPIPE after the
 * close; growing versions holding the value's bytes.  Returns r. */
static int good_get(void) {
        ev_value_snapshot *s = NULL;
        int r;

        if (!S.good)
                return -EAGAIN;
        r = ev_watcher_get(S.good, &s);
        if (r == 0) {
                uint64_t version = ev_snapshot_version(s);
                ev_value_snapshot *cur = NULL;

                CHECK(!S.good_ended, "a snapshot after -EPIPE");
                CHECK(version > S.good_last, "good watcher: version %llu after %llu",
                      (unsigned long long)version, (unsigned long long)S.good_last);
                CHECK(version <= ev_value_get_version(S.v), "version %llu from the future",
                      (unsigned long long)version);
                S.good_last = version;
                if (ev_value_get(S.v, &cur) == 0) {
                        if (ev_snapshot_version(cur) == version)
                                CHECK(ev_snapshot_size(cur) == ev_snapshot_size(s) &&
                                              memcmp(ev_snapshot_data(cur), ev_snapshot_data(s),
                                                     ev_snapshot_size(s)) == 0,
                                      "good watcher: the bytes of version %llu differ",
                                      (unsigned long long)version);
                        ev_snapshot_unref(cur);
                }
                ev_snapshot_unref(s);
        } else if (r == -EPIPE) {
                CHECK(S.closed, "good watcher: -EPIPE, the value is not closed");
                S.good_ended = true;
        } else {
                CHECK(r == -EAGAIN, "good watcher: %d (%s)", r, strerror(-r));
                CHECK(!S.good_ended, "-EAGAIN after -EPIPE");
        }
        return r;
}

/* Runs the loop until the good watcher holds the newest version. */
static void good_catch_up(void) {
        uint64_t want;

        if (!S.good)
                return;
        for (int i = 0; i < 16; i++) {
                pump();
                want = ev_value_get_version(S.v);
                if (good_get() == -EPIPE || (!S.closed && S.good_last >= want))
                        break;
        }
        want = ev_value_get_version(S.v);
        CHECK(S.good_last == want, "the good watcher is at version %llu, the value at %llu",
              (unsigned long long)S.good_last, (unsigned long long)want);
        CHECK(!S.closed || S.good_ended, "no -EPIPE after the close");
}

static void peer_close(int i) {
        if (S.peer[i] >= 0)
                close(S.peer[i]);
        S.peer[i] = -1;
}

static void peer_connect(int i) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        peer_close(i);
        CHECK(fd >= 0, "socket: %s", strerror(errno));
        if (connect(fd, (struct sockaddr *)&S.addr, S.addr_len) < 0) {
                /* The backlog may be full if the loop has not run. */
                CHECK(errno == EAGAIN, "connect: %s", strerror(errno));
                close(fd);
                return;
        }
        S.peer[i] = fd;
}

static void send_with_fds(int fd, const void *p, size_t n, const int *fds, size_t n_fds) {
        struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        char control[CMSG_SPACE(sizeof(int) * 16)];

        if (fd < 0)
                return;
        if (n_fds > 0) {
                struct cmsghdr *c;

                memset(control, 0, sizeof(control));
                msg.msg_control = control;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                c = CMSG_FIRSTHDR(&msg);
                if (!c)
                        return;
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        /* The server may have dropped the peer, or its buffer be full. */
        (void)sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* The size class s: inline sizes up to EV__IPC_INLINE_MAX + 8, or (bit 7)
 * memfd sizes just above it. */
static size_t message_size(uint8_t s) {
        if (s & 0x80)
                return EV__IPC_INLINE_MAX + 1 + (size_t)(s & 0x7f) * 48;
        return (size_t)(s & 0x7f) * 17;
}

/* Makes the fds of mode (bits 0-3) for a message of size bytes. */
static size_t make_fds(unsigned mode, size_t size, unsigned seed, int fds[16]) {
        int p[2];
        size_t n = 0;

        switch (mode & 15) {
        case 0:
                return 0;
        case 1: /* what a valid SET carries */
        case 2:
                fds[n] = memfd_with(size, SEALS_ALL, seed);
                break;
        case 3: /* unsealed */
                fds[n] = memfd_with(size, 0, seed);
                break;
        case 4: /* no F_SEAL_WRITE */
                fds[n] = memfd_with(size, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL, seed);
                break;
        case 5: /* no F_SEAL_SHRINK */
                fds[n] = memfd_with(size, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL, seed);
                break;
        case 6: /* one byte larger */
                fds[n] = memfd_with(size + 1, SEALS_ALL, seed);
                break;
        case 7: /* one byte smaller */
                fds[n] = memfd_with(size ? size - 1 : 0, SEALS_ALL, seed);
                break;
        case 8: /* a pipe */
                if (pipe2(p, O_CLOEXEC) < 0)
                        return 0;
                close(p[1]);
                fds[n] = p[0];
                break;
        case 9: /* a socket */
                if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) < 0)
                        return 0;
                close(p[1]);
                fds[n] = p[0];
                break;
        case 10: /* two and three sealed memfds */
        case 11:
                for (n = 0; n < (mode & 15) - 8; n++) {
                        fds[n] = memfd_with(size, SEALS_ALL, seed);
                        if (fds[n] < 0)
                                break;
                }
                return n;
        case 12: /* more than the server's control buffer holds: MSG_CTRUNC */
                fds[0] = memfd_with(size, SEALS_ALL, seed);
                if (fds[0] < 0)
                        return 0;
                for (n = 1; n < 16; n++)
                        fds[n] = dup(fds[0]);
                for (size_t i = 1; i < n; i++)
                        if (fds[i] < 0)
                                fds[i] = fds[0];
                return n;
        case 13: /* the server's own kind of page, as data */
                fds[n] = memfd_with(EV__IPC_PAGE_SIZE, F_SEAL_SHRINK | F_SEAL_GROW |
                                                              F_SEAL_SEAL | F_SEAL_FUTURE_WRITE,
                                    seed);
                break;
        case 14: /* an eventfd-like non-file: /dev/null */
                fds[n] = open("/dev/null", O_RDWR | O_CLOEXEC);
                break;
        default: /* a regular memfd of the right size, sealed all but F_SEAL_SEAL */
                fds[n] = memfd_with(size, F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW, seed);
                break;
        }
        return fds[0] >= 0 ? 1 : 0;
}

static void close_fds(int *fds, size_t n) {
        for (size_t i = 0; i < n; i++) {
                bool seen = false;

                for (size_t j = 0; j < i; j++)
                        seen = seen || fds[j] == fds[i];
                if (!seen && fds[i] >= 0)
                        close(fds[i]);
        }
}

static void op_message(struct input *in) {
        int i = take(in) & 1;
        uint8_t type = take(in) & 7, flags = take(in), mode = take(in), s = take(in), k = take(in);
        size_t size = message_size(s), inline_len;
        struct ev__ipc_header h = {
                .magic = EV__IPC_MAGIC, .type = type, .flags = flags, .size = size,
        };
        int fds[16];
        size_t n_fds;

        if (mode & 0x10)
                h.magic ^= 1u << (k & 31);
        if (mode & 0x20)
                h.reserved = 1u + k;
        if (mode & 0x40)
                h.code = k;
        if (mode & 0x80)
                h.state = (uint64_t)k << 1;
        inline_len = (flags & EV__IPC_DATA_FD) ? 0 : size;
        if (k & 1) /* the size field lies */
                h.size = size + 1 + (k >> 1);
        if (inline_len > EV__IPC_INLINE_MAX + 8)
                inline_len = EV__IPC_INLINE_MAX + 8;
        memset(buf, 0, sizeof(buf));
        memcpy(buf, &h, HEADER_SIZE);
        fill(buf + HEADER_SIZE, inline_len, k >> 1);
        n_fds = make_fds(mode, size, k >> 1, fds);
        send_with_fds(S.peer[i], buf, HEADER_SIZE + inline_len, fds, n_fds);
        close_fds(fds, n_fds);
}

static void op_raw(struct input *in) {
        int i = take(in) & 1;
        size_t n = take(in);

        if (n > in->n)
                n = in->n;
        memcpy(buf, in->p, n);
        in->p += n;
        in->n -= n;
        send_with_fds(S.peer[i], buf, n, NULL, 0);
}

static void op_read(int i) {
        char control[CMSG_SPACE(sizeof(int) * 8)];

        if (S.peer[i] < 0)
                return;
        for (int k = 0; k < 8; k++) {
                struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
                struct msghdr msg = {
                        .msg_iov = &iov, .msg_iovlen = 1,
                        .msg_control = control, .msg_controllen = sizeof(control),
                };
                ssize_t n = recvmsg(S.peer[i], &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
                struct ev__ipc_header h;

                if (n <= 0)
                        return;
                for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
                                for (size_t j = 0; j < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                                     j++) {
                                        int fd;

                                        memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof(int));
                                        close(fd);
                                }
                /* What the server sends is always well formed. */
                CHECK((size_t)n >= HEADER_SIZE, "a message of %zd bytes from the server", n);
                memcpy(&h, buf, HEADER_SIZE);
                CHECK(h.magic == EV__IPC_MAGIC, "a message with magic 0x%x", h.magic);
                CHECK(h.type == EV__IPC_STATE || h.type == EV__IPC_REPLY ||
                              h.type == EV__IPC_ERROR,
                      "a message of type %u from the server", h.type);
                CHECK(!(msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)), "a truncated message");
                if (h.type == EV__IPC_STATE) {
                        CHECK((h.state >> 1) <= ev_value_get_version(S.v),
                              "a STATE from the future");
                        CHECK(n >= EV__IPC_MIN_MESSAGE, "a STATE of %zd bytes", n);
                }
                if (h.type == EV__IPC_REPLY && !S.allow_set)
                        CHECK(h.code == EPERM, "REPLY %u without ALLOW_SET", h.code);
        }
}

static void op_set(uint8_t s) {
        static unsigned char data[EV__IPC_INLINE_MAX + 8192];
        size_t size = (s & 0x80) ? EV__IPC_INLINE_MAX + 1 + (size_t)(s & 0x7f) * 48
                                 : (size_t)(s & 0x7f);
        int r;

        fill(data, size, (unsigned)S.own_sets + s);
        r = ev_value_set(S.v, data, size);
        if (S.closed) {
                CHECK(r == -EPIPE, "set after close: %d", r);
        } else {
                CHECK(r == 0, "ev_value_set: %d (%s)", r, strerror(-r));
                S.own_sets++;
        }
        check_server();
}

static void op_valid_set(struct input *in) {
        int i = take(in) & 1;
        uint8_t s = take(in);
        size_t size = (s & 0x80) ? EV__IPC_INLINE_MAX + 1 + (size_t)(s & 0x7f) * 48
                                 : (size_t)(s & 0x7f);
        struct ev__ipc_header hello = { .magic = EV__IPC_MAGIC, .type = EV__IPC_HELLO,
                                        .flags = EV__IPC_SETTER };
        struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_SET, .size = size };
        int fd = -1;

        peer_connect(i);
        send_with_fds(S.peer[i], &hello, HEADER_SIZE, NULL, 0);
        memset(buf, 0, sizeof(buf));
        if (size > EV__IPC_INLINE_MAX) {
                h.flags = EV__IPC_DATA_FD;
                fd = memfd_with(size, SEALS_ALL, s);
                memcpy(buf, &h, HEADER_SIZE);
                if (fd >= 0)
                        send_with_fds(S.peer[i], buf, HEADER_SIZE, &fd, 1);
                if (fd >= 0)
                        close(fd);
        } else {
                memcpy(buf, &h, HEADER_SIZE);
                fill(buf + HEADER_SIZE, size, s);
                send_with_fds(S.peer[i], buf, HEADER_SIZE + size, NULL, 0);
        }
}

static void session_start(uint8_t config) {
        size_t n;
        int r;

        memset(&S, 0, sizeof(S));
        S.peer[0] = S.peer[1] = -1;
        S.allow_set = config & 1;
        snprintf(S.name, sizeof(S.name), "@libevvalue-fuzz-ipc-server-%d", (int)getpid());
        n = strlen(S.name);
        S.addr.sun_family = AF_UNIX;
        memcpy(S.addr.sun_path + 1, S.name + 1, n - 1);
        S.addr_len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
        S.lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        CHECK(S.lfd >= 0, "socket: %s", strerror(errno));
        CHECK(bind(S.lfd, (struct sockaddr *)&S.addr, S.addr_len) == 0, "bind: %s",
              strerror(errno));
        CHECK(listen(S.lfd, 64) == 0, "listen: %s", strerror(errno));
        CHECK(ev_value_new(&S.v) == 0, "ev_value_new");
        r = ev_value_serve(S.v, S.lfd, S.allow_set ? EV_VALUE_SERVE_ALLOW_SET : 0, &S.srv);
        CHECK(r == 0, "ev_value_serve: %d (%s)", r, strerror(-r));
        r = ev_value_connect(S.name, (config & 2) ? EV_VALUE_WATCH_SKIP_CURRENT : 0, &S.good);
        CHECK(r == 0, "ev_value_connect: %d (%s)", r, strerror(-r));
        pump();
}

static void session_end(void) {
        ev_value_snapshot *s = NULL;
        int r;

        /* The good watcher has the newest state, then the end. */
        good_catch_up();
        for (int i = 0; i < N_PEERS; i++)
                peer_close(i);
        pump();
        check_peer_count();
        S.srv = ev_value_server_free(S.srv);
        /* A get right after one that returned a snapshot trusts the state
         * page and may give -EAGAIN once; the next one asks the socket. */
        r = ev_watcher_get(S.good, &s);
        if (r == -EAGAIN && !S.good_ended)
                r = ev_watcher_get(S.good, &s);
        CHECK(r == (S.closed ? -EPIPE : -ECONNRESET), "after the server's free: %d (%s)", r,
              strerror(-r));
        S.good = ev_watcher_close(S.good);
        close(S.lfd);
        S.v = ev_value_unref(S.v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct input in = { data, size };
        int fds_before = count_open_fds(), fds_after;

        session_start(take(&in));
        for (int step = 0; step < MAX_STEPS && in.n > 0; step++) {
                uint8_t op = take(&in) % N_OPS;

                switch (op) {
                case OP_CONNECT:
                        peer_connect(take(&in) & 1);
                        break;
                case OP_HELLO: {
                        int i = take(&in) & 1;
                        struct ev__ipc_header h = { .magic = EV__IPC_MAGIC,
                                                    .type = EV__IPC_HELLO,
                                                    .flags = take(&in) & 0x1f };

                        send_with_fds(S.peer[i], &h, HEADER_SIZE, NULL, 0);
                        break;
                }
                case OP_MESSAGE:
                        op_message(&in);
                        break;
                case OP_RAW:
                        op_raw(&in);
                        break;
                case OP_READ:
                        op_read(take(&in) & 1);
                        break;
                case OP_CLOSE:
                        peer_close(take(&in) & 1);
                        break;
                case OP_SHUT: {
                        int i = take(&in) & 1;

                        if (S.peer[i] >= 0)
                                shutdown(S.peer[i], SHUT_WR);
                        break;
                }
                case OP_SET:
                        op_set(take(&in));
                        break;
                case OP_PROCESS:
                        process_once();
                        check_server();
                        break;
                case OP_GOOD:
                        good_catch_up();
                        check_peer_count();
                        break;
                case OP_GOOD_GET:
                        good_get();
                        break;
                case OP_VCLOSE:
                        CHECK(ev_value_close(S.v) == 0, "ev_value_close");
                        S.closed = true;
                        break;
                case OP_VALID_SET:
                        op_valid_set(&in);
                        break;
                }
                check_server();
        }
        session_end();
        fds_after = count_open_fds();
        CHECK(fds_after == fds_before, "%d fds open after the input, %d before", fds_after,
              fds_before);
        return 0;
}

#ifdef EV_FUZZ_REPLAY_CORPUS
/* The replay (replay.c, its main renamed by -Dmain=ev_fuzz_replay_main)
 * runs this harness's own seed corpus when make check names none. */
#undef main
int ev_fuzz_replay_main(int argc, char **argv);
int main(int argc, char **argv);

int main(int argc, char **argv) {
        const char *top_srcdir = getenv("top_srcdir");
        static char corpus[4096];
        char *args[] = { argv[0], corpus, NULL };

        if (argc > 1)
                return ev_fuzz_replay_main(argc, argv);
        snprintf(corpus, sizeof(corpus), "%s/%s", top_srcdir ? top_srcdir : ".",
                 EV_FUZZ_REPLAY_CORPUS);
        return ev_fuzz_replay_main(2, args);
}
#endif
