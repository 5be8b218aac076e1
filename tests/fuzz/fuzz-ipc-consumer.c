/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer harness for the consumer side of a served value
 * (lib/ipc/remote.c): each input is a session in which a fake server, the
 * other end of a socketpair whose first end went to ev_value_connect_fd,
 * sends the library's watcher messages made from the input's bytes: STATEs
 * that are valid or not (versions that go back or repeat, sizes that lie,
 * memfds unsealed, resized, shrunk after sending or replaced by pipes,
 * state pages unsealed, missing or twice, too many fds), raw bytes, REPLY
 * and ERROR messages, lies in the state page, and the end of the stream.
 * After every get it traps on the first broken rule of ev_value_connect(3):
 * a return other than 0, -EAGAIN, -EPIPE, -ECONNRESET, -EPROTO (or -EUSERS,
 * a server's refusal); a version that does not grow; bytes that are not
 * the ones the fake server sent for that version, or not aligned; a
 * snapshot while the fd is not readable, or two -EAGAIN in a row while it
 * is readable (the first may come from the state page's shortcut); an end
 * (-EPIPE, -ECONNRESET, -EPROTO) that is not forever; a second message from
 * the consumer after its HELLO.  At the end of the input the watcher is
 * closed and every fd of the process must be closed too; the snapshots
 * still held keep their bytes.
 *
 * The input: byte 0 chooses the connect flags (bit 0:
 * EV_VALUE_WATCH_SKIP_CURRENT); then records, an op byte (mod N_OPS) and
 * its operands (missing bytes read as 0):
 *   STATE d m s       a STATE: d the version step (0 repeat, 1-127 forward,
 *                     128-255 back by d - 127), m: bit 0 closed, bits 1-3
 *                     the page (see page_mode), bits 4-7 the data (see
 *                     data_mode); s the size class
 *   RAW n bytes...    n bytes of the input as one message
 *   GET               one get, checked
 *   WAIT              one ev_watcher_wait with timeout 0, checked as a get
 *   PAGE d            the page shows the last state sent plus d - 128
 *   SHUT              the fake server shuts its write side down
 *   CLOSE             the fake server closes its end
 *   ERROR c           ERROR with code c, or (bit 7) REPLY with code c & 0x7f
 *   HOLD              keep the last snapshot returned (up to 4)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* memfd_create, pipe2 */
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define HEADER_SIZE sizeof(struct ev__ipc_header)
#define SEALS_ALL (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define SEALS_PAGE (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL | F_SEAL_FUTURE_WRITE)
#define MAX_STEPS 256
#define N_SENT MAX_STEPS /* every STATE sent, for the check of the bytes */
#define N_HELD 4

enum op_code {
        OP_STATE,
        OP_RAW,
        OP_GET,
        OP_WAIT,
        OP_PAGE,
        OP_SHUT,
        OP_CLOSE,
        OP_ERROR,
        OP_HOLD,
        N_OPS
};

__attribute__((noreturn, format(printf, 2, 3)))
static void fail(int line, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "fuzz-ipc-consumer.c:%d: rule broken: ", line);
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

/* A STATE the fake server sent: its version's bytes are fill(size, seed). */
struct sent {
        uint64_t version;
        size_t size;
        unsigned seed;
};

static struct session {
        int fd;                 /* the fake server's end, -1 once closed */
        ev_value_watcher *w;
        int wfd;
        struct ev__ipc_page *page;
        int page_fd;
        bool page_sent;
        uint64_t state;         /* the last state the fake server sent */
        struct sent sent[N_SENT];
        unsigned n_sent;
        uint64_t last;          /* the version the last snapshot had */
        int end;                /* the end the watcher returned, 0 before */
        bool last_gave_snapshot;
        bool last_was_eagain_readable;
        ev_value_snapshot *held[N_HELD];
        struct sent held_rec[N_HELD];   /* what each held snapshot must hold */
        ev_value_snapshot *latest;
        struct sent latest_rec;
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

static int memfd_with(size_t file_size, size_t data_size, unsigned seals, unsigned seed) {
        static unsigned char data[EV__IPC_INLINE_MAX + 8192];
        int fd = memfd_create("fuzz", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        if (fd < 0)
                return -1;
        if (data_size > sizeof(data))
                data_size = sizeof(data);
        fill(data, data_size, seed);
        if (write(fd, data, data_size) < 0 || ftruncate(fd, (off_t)file_size) < 0 ||
            (seals && fcntl(fd, F_ADD_SEALS, seals) < 0)) {
                close(fd);
                return -1;
        }
        return fd;
}

/* A page as the fake server's mode asks: 0 valid, 1 unsealed, 2 no
 * F_SEAL_FUTURE_WRITE, 3 too small, 4 a pipe. */
static int bad_page(unsigned mode) {
        int p[2];

        switch (mode) {
        case 1:
                return memfd_with(EV__IPC_PAGE_SIZE, 0, 0, 0);
        case 2:
                return memfd_with(EV__IPC_PAGE_SIZE, 0, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
                                  0);
        case 3:
                return memfd_with(64, 0, SEALS_PAGE, 0);
        default:
                if (pipe2(p, O_CLOEXEC) < 0)
                        return -1;
                close(p[1]);
                return p[0];
        }
}

static bool watcher_readable(void) {
        struct pollfd pfd = { .fd = S.wfd, .events = POLLIN };

        return poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLIN | POLLHUP | POLLERR));
}

static bool snapshot_is(const ev_value_snapshot *s, const struct sent *x) {
        static unsigned char expect[EV__IPC_INLINE_MAX + 8192];

        if (x->version != ev_snapshot_version(s) || x->size != ev_snapshot_size(s))
                return false;
        fill(expect, x->size, x->seed);
        return memcmp(expect, ev_snapshot_data(s), x->size) == 0;
}

/* Whether s is one of the STATEs sent; *ret: which. */
static bool sent_matches(const ev_value_snapshot *s, struct sent *ret) {
        for (unsigned i = 0; i < N_SENT && i < S.n_sent; i++)
                if (snapshot_is(s, &S.sent[i])) {
                        *ret = S.sent[i];
                        return true;
                }
        return false;
}

/* One get (or a wait with timeout 0), checked. */
static void checked_get(bool wait) {
        ev_value_snapshot *s = NULL;
        bool readable = watcher_readable();
        int r = wait ? ev_watcher_wait(S.w, 0, -1, &s) : ev_watcher_get(S.w, &s);

        if (wait && r == -ETIMEDOUT)
                r = -EAGAIN;
        CHECK(r == 0 || r == -EAGAIN || r == -EPIPE || r == -ECONNRESET || r == -EPROTO ||
                      r == -EUSERS,
              "get: %d (%s)", r, strerror(-r));
        if (S.end)
                CHECK(r == S.end, "get: %d (%s) after the end %d (%s)", r, strerror(-r), S.end,
                      strerror(-S.end));
        if (r == 0) {
                uint64_t version = ev_snapshot_version(s);

                CHECK(readable, "a snapshot while the fd was not readable");
                CHECK(version > S.last, "version %llu after %llu", (unsigned long long)version,
                      (unsigned long long)S.last);
                CHECK(sent_matches(s, &S.latest_rec),
                      "version %llu (%zu bytes): not what the server sent",
                      (unsigned long long)version, ev_snapshot_size(s));
                CHECK(ev_snapshot_size(s) == 0 ||
                              (uintptr_t)ev_snapshot_data(s) % alignof(max_align_t) == 0,
                      "unaligned data");
                S.last = version;
                ev_snapshot_unref(S.latest);
                S.latest = s;
        } else if (r == -EAGAIN) {
                /* The page's shortcut may answer once right after a
                 * snapshot; the next get must look at the socket. */
                CHECK(!readable || S.last_gave_snapshot,
                      "-EAGAIN while the fd is readable, twice in a row");
        } else {
                S.end = r;
        }
        S.last_gave_snapshot = r == 0;
}

static void send_with_fds(const void *p, size_t n, const int *fds, size_t n_fds) {
        struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
        struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
        char control[CMSG_SPACE(sizeof(int) * 16)];

        if (S.fd < 0)
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
        (void)sendmsg(S.fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static void remember(uint64_t version, size_t size, unsigned seed) {
        S.sent[S.n_sent % N_SENT] = (struct sent){ version, size, seed };
        S.n_sent++;
}

/* A STATE.  Page modes (bits 1-3 of m): 0 the page on the first STATE
 * only, as a server does; 1 never; 2 always; 3 unsealed, 4 without
 * F_SEAL_FUTURE_WRITE, 5 too small, 6 a pipe (in place of the first
 * page); 7 the valid page but the page's state left behind.  Data modes
 * (bits 4-7): 0 inline; 1 a sealed memfd; 2 unsealed; 3 one byte larger;
 * 4 one byte smaller; 5 without F_SEAL_SHRINK, shrunk after sending;
 * 6 a pipe; 7 inline with a size field that lies; 8 NO_DATA; 9 inline and
 * a memfd; 10 three fds; 11 sixteen fds (MSG_CTRUNC); 12 not padded;
 * 13 without F_SEAL_WRITE; 14 an empty memfd; 15 inline, then the same
 * bytes as a memfd. */
static void op_state(struct input *in) {
        uint8_t d = take(in), m = take(in), sc = take(in);
        unsigned page_mode = (m >> 1) & 7, data_mode = m >> 4;
        uint64_t version = S.state >> 1;
        bool closed = m & 1, with_page = false, honest = true;
        size_t size, inline_len, pad = EV__IPC_MIN_MESSAGE;
        struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_STATE };
        unsigned seed = d * 7u + sc;
        int fds[16], p[2], shrink_fd = -1;
        size_t n_fds = 0;

        if (d >= 128)
                version = version > (uint64_t)(d - 127) ? version - (d - 127) : 0;
        else
                version += d;
        h.state = version << 1 | closed;
        switch (data_mode) {
        case 0: case 7: case 8: case 9: case 12:
                size = (size_t)sc * 8 + (sc & 7);
                if (size > EV__IPC_INLINE_MAX)
                        size = EV__IPC_INLINE_MAX;
                break;
        default:
                size = EV__IPC_INLINE_MAX + 1 + (size_t)sc * 32;
                break;
        }
        h.size = size;
        /* The page first, when it comes. */
        if ((page_mode == 0 && !S.page_sent) || page_mode == 2 || page_mode == 7)
                with_page = page_mode != 7 || !S.page_sent;
        if (with_page) {
                fds[n_fds++] = dup(S.page_fd);
                h.flags |= EV__IPC_PAGE_FD;
        } else if (page_mode >= 3 && page_mode <= 6) {
                fds[n_fds++] = bad_page(page_mode - 2);
                h.flags |= EV__IPC_PAGE_FD;
        }
        inline_len = size;
        switch (data_mode) {
        case 1: case 2: case 3: case 4: case 5: case 13: case 14: case 15: {
                static const unsigned seals[16] = {
                        [1] = SEALS_ALL, [3] = SEALS_ALL, [4] = SEALS_ALL,
                        [5] = F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SEAL,
                        [13] = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL,
                        [14] = SEALS_ALL, [15] = SEALS_ALL,
                };
                size_t file_size = data_mode == 3 ? size + 1 : data_mode == 4 ? size - 1
                                 : data_mode == 14 ? 0 : size;

                if (data_mode == 15) {
                        size = sc & 0x7f;
                        h.size = size;
                        file_size = size;
                }
                fds[n_fds] = memfd_with(file_size, data_mode == 14 ? 0 : size, seals[data_mode],
                                        seed);
                if (data_mode == 5)
                        shrink_fd = fds[n_fds];
                n_fds++;
                h.flags |= EV__IPC_DATA_FD;
                inline_len = 0;
                pad = 0;
                honest = data_mode == 1;
                break;
        }
        case 6:
                if (pipe2(p, O_CLOEXEC) == 0) {
                        close(p[1]);
                        fds[n_fds++] = p[0];
                }
                h.flags |= EV__IPC_DATA_FD;
                inline_len = 0;
                pad = 0;
                honest = false;
                break;
        case 7: /* past the padding too, or the lie would be true */
                h.size = (size + HEADER_SIZE < EV__IPC_MIN_MESSAGE ? EV__IPC_MIN_MESSAGE - HEADER_SIZE
                                                                   : size) + 1 + (sc >> 4);
                honest = false;
                break;
        case 8:
                h.flags |= EV__IPC_NO_DATA;
                h.size = 0;
                inline_len = 0;
                break;
        case 9:
                fds[n_fds++] = memfd_with(size, size, SEALS_ALL, seed);
                honest = false;
                break;
        case 10:
                for (int i = 0; i < 3; i++)
                        fds[n_fds++] = memfd_with(size, size, SEALS_ALL, seed);
                h.flags |= EV__IPC_DATA_FD;
                inline_len = 0;
                pad = 0;
                honest = false;
                break;
        case 11:
                fds[n_fds] = memfd_with(size, size, SEALS_ALL, seed);
                for (n_fds++; n_fds < 16; n_fds++)
                        fds[n_fds] = dup(fds[0] >= 0 ? fds[0] : 0);
                h.flags |= EV__IPC_DATA_FD;
                inline_len = 0;
                pad = 0;
                honest = false;
                break;
        case 12:
                pad = 0;
                honest = size + HEADER_SIZE >= EV__IPC_MIN_MESSAGE;
                break;
        default:
                break;
        }
        memset(buf, 0, sizeof(buf));
        memcpy(buf, &h, HEADER_SIZE);
        fill(buf + HEADER_SIZE, inline_len, seed);
        if (honest && data_mode != 8)
                remember(version, size, seed);
        if (page_mode != 7)
                atomic_store(&S.page->state, h.state);
        if (with_page)
                S.page_sent = true;
        send_with_fds(buf, HEADER_SIZE + inline_len < pad ? pad : HEADER_SIZE + inline_len, fds,
                      n_fds);
        if (shrink_fd >= 0)
                (void)ftruncate(shrink_fd, 0);
        for (size_t i = 0; i < n_fds; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        S.state = h.state;
}

static void op_raw(struct input *in) {
        size_t n = take(in);

        if (n > in->n)
                n = in->n;
        memcpy(buf, in->p, n);
        in->p += n;
        in->n -= n;
        send_with_fds(buf, n, NULL, 0);
}

/* ERROR with code c (c & 0x80: REPLY with code c & 0x7f).  Codes the
 * fuzzer starts from: EPROTO, EUSERS, 0. */
static void op_error(uint8_t c) {
        struct ev__ipc_header h = { .magic = EV__IPC_MAGIC, .type = EV__IPC_ERROR, .code = c };

        if (c & 0x80) {
                h.type = EV__IPC_REPLY;
                h.code = c & 0x7f;
        }
        send_with_fds(&h, HEADER_SIZE, NULL, 0);
}

static void session_start(uint8_t config) {
        unsigned flags = (config & 1) ? EV_VALUE_WATCH_SKIP_CURRENT : 0;
        struct ev__ipc_header h;
        int sv[2], r;
        void *p;
        ssize_t n;

        memset(&S, 0, sizeof(S));
        CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0, "socketpair: %s",
              strerror(errno));
        r = ev_value_connect_fd(sv[0], flags, &S.w);
        CHECK(r == 0, "ev_value_connect_fd: %d (%s)", r, strerror(-r));
        S.fd = sv[1];
        S.wfd = ev_watcher_get_fd(S.w);
        CHECK(S.wfd == sv[0], "the watcher's fd %d is not its connection %d", S.wfd, sv[0]);
        n = recv(S.fd, buf, sizeof(buf), MSG_DONTWAIT);
        CHECK(n == (ssize_t)HEADER_SIZE, "the consumer's HELLO: %zd bytes", n);
        memcpy(&h, buf, HEADER_SIZE);
        CHECK(h.magic == EV__IPC_MAGIC && h.type == EV__IPC_HELLO &&
                      h.flags == ((flags & EV_VALUE_WATCH_SKIP_CURRENT) ? EV__IPC_SKIP_CURRENT : 0),
              "a bad HELLO");
        S.page_fd = memfd_with(EV__IPC_PAGE_SIZE, 0, 0, 0);
        CHECK(S.page_fd >= 0, "memfd_create: %s", strerror(errno));
        p = mmap(NULL, EV__IPC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, S.page_fd, 0);
        CHECK(p != MAP_FAILED, "mmap: %s", strerror(errno));
        CHECK(fcntl(S.page_fd, F_ADD_SEALS, SEALS_PAGE) == 0, "F_ADD_SEALS: %s", strerror(errno));
        S.page = p;
        CHECK(!watcher_readable(), "readable before any STATE");
}

static void session_end(void) {
        checked_get(false);
        checked_get(false);
        /* The consumer sent nothing after its HELLO. */
        if (S.fd >= 0) {
                ssize_t n = recv(S.fd, buf, sizeof(buf), MSG_DONTWAIT);

                CHECK(n <= 0, "the consumer sent a message of %zd bytes after its HELLO", n);
        }
        S.w = ev_watcher_close(S.w);
        if (S.fd >= 0)
                close(S.fd);
        munmap(S.page, EV__IPC_PAGE_SIZE);
        close(S.page_fd);
        /* The snapshots outlive the connection. */
        for (int i = 0; i < N_HELD; i++) {
                if (!S.held[i])
                        continue;
                CHECK(snapshot_is(S.held[i], &S.held_rec[i]), "a held snapshot changed");
                S.held[i] = ev_snapshot_unref(S.held[i]);
        }
        S.latest = ev_snapshot_unref(S.latest);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct input in = { data, size };
        int fds_before = count_open_fds(), fds_after;

        session_start(take(&in));
        for (int step = 0; step < MAX_STEPS && in.n > 0; step++) {
                switch (take(&in) % N_OPS) {
                case OP_STATE:
                        op_state(&in);
                        break;
                case OP_RAW:
                        op_raw(&in);
                        break;
                case OP_GET:
                        checked_get(false);
                        break;
                case OP_WAIT:
                        checked_get(true);
                        break;
                case OP_PAGE:
                        atomic_store(&S.page->state, S.state + take(&in) - 128);
                        break;
                case OP_SHUT:
                        if (S.fd >= 0)
                                shutdown(S.fd, SHUT_WR);
                        break;
                case OP_CLOSE:
                        if (S.fd >= 0)
                                close(S.fd);
                        S.fd = -1;
                        break;
                case OP_ERROR:
                        op_error(take(&in));
                        break;
                case OP_HOLD:
                        for (int i = 0; i < N_HELD; i++)
                                if (!S.held[i] && S.latest) {
                                        S.held[i] = ev_snapshot_ref(S.latest);
                                        S.held_rec[i] = S.latest_rec;
                                        break;
                                }
                        break;
                }
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
