/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of <ev-value-ipc.h>, across real processes over real sockets.
 * A producer child serves a value on a fresh path in a directory of its
 * own (or an abstract '@' name with the test's pid in it) and runs the
 * loop a service runs: poll ev_value_server_get_fd(), call
 * ev_value_server_process(), and set from that loop.  The test's process
 * drives it through a control socket, one command and one reply at a time,
 * which is also every handshake: a reply to a set comes after the set
 * returned, so what the set sent is already in the consumers' sockets.
 * Consumers are the test's own process, or children that report through a
 * pipe; no child asserts, and nothing waits on a sleep.  The tests cover
 * the arguments of every function; the first state of a new watcher, its
 * bytes (inline and in a memfd) and SKIP_CURRENT; a set that reaches
 * watchers without the producer's loop; 100 consumer processes; poll,
 * epoll EPOLLET and io_uring loops; wait, wait_until and the typed
 * functions on a remote watcher; a producer that closes, frees, or is
 * killed, and a consumer that is killed; remote sets and their policy,
 * another uid included (as root, with the user evvalue-test), and
 * EV_VALUE_SET_IF_CHANGED applied by the server, inline and in a memfd;
 * socket activation; and 10,000 connections that leak no fd.  Under
 * tests/run-valgrind.sh (EV_VALUE_STRESS_SCALE) the big counts shrink.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pwd.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifdef HAVE_LIBURING
#include <liburing.h>

#include "ev-value-uring.h"
#endif
#include "ev-value-ipc.h"
#include "helpers.h"

/* How long to wait for what must come: long, for a slow machine under
 * valgrind; a test that works never waits that long. */
#define MUST_COME_MS 20000

/* The largest remote set a server accepts (ev_value_serve(3)). */
#define REMOTE_SET_MAX (UINT64_C(64) << 20)

/* n, or n * EV_VALUE_STRESS_SCALE (tests/run-valgrind.sh sets 0.05), never
 * below min. */
static unsigned scaled(unsigned n, unsigned min) {
        const char *env = getenv("EV_VALUE_STRESS_SCALE");
        double scale = env ? strtod(env, NULL) : 1.0;
        unsigned r;

        if (!(scale > 0.0) || scale > 1.0)
                scale = 1.0;
        r = (unsigned)(n * scale);
        return r < min ? min : r;
}

/* ------------------------------------------------------- the directory */

/* The test's directory, "" until made.  Under /tmp rather than $TMPDIR:
 * a socket's path must fit sun_path (108 bytes). */
static char dir[64];

/* Removes the directory and what the tests left in it (a flat directory). */
static void suite_fini(void) {
        DIR *d;
        struct dirent *e;

        if (!dir[0])
                return;
        d = opendir(dir);
        if (d) {
                while ((e = readdir(d))) {
                        char path[sizeof(dir) + sizeof(e->d_name) + 1];

                        if (e->d_name[0] == '.')
                                continue;
                        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
                        if (unlink(path) < 0)
                                rmdir(path);
                }
                closedir(d);
        }
        rmdir(dir);
        dir[0] = 0;
}

TestSuite(ipc_args, .fini = suite_fini);
TestSuite(ipc, .fini = suite_fini);
TestSuite(ipc_end, .fini = suite_fini);
TestSuite(ipc_remote_set, .fini = suite_fini);

/* Asserts that the test's directory exists (made on first use, mode 0755
 * so that another uid reaches a socket in it); returns the path of name in
 * it, in a buffer of the caller's. */
static const char *path_in_dir(char *buf, size_t size, const char *name) {
        if (!dir[0]) {
                snprintf(dir, sizeof(dir), "/tmp/evvalue-ipc.XXXXXX");
                cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
                cr_assert_eq(chmod(dir, 0755), 0, "chmod %s: %s", dir, strerror(errno));
        }
        snprintf(buf, size, "%s/%s", dir, name);
        return buf;
}

#define PATH_IN_DIR(buf, name) path_in_dir(buf, sizeof(buf), name)

/* An abstract socket's name, unique to this test process. */
static const char *abstract_name(char *buf, size_t size, const char *name) {
        snprintf(buf, size, "@evvalue-test-%ld-%s", (long)getpid(), name);
        return buf;
}

/* Asserts that path fits in addr's sun_path; copies it there. */
static void set_sun_path(struct sockaddr_un *addr, const char *path) {
        size_t len = strlen(path);

        cr_assert_lt(len, sizeof(addr->sun_path), "%s is too long for sun_path", path);
        memcpy(addr->sun_path, path, len + 1);
}

/* ------------------------------------------------------- processes */

/* Asserts that fork(2) works; returns 0 in the child.  Stdio is flushed
 * first, so that no child writes the parent's buffered output. */
static pid_t fork_or_fail(void) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        return pid;
}

/* Asserts that waitpid works; returns the status of child pid, reaped. */
static int reap(pid_t pid) {
        int status = 0;
        pid_t r;

        do
                r = waitpid(pid, &status, 0);
        while (r < 0 && errno == EINTR);
        cr_assert_eq(r, pid, "waitpid(%ld): %s", (long)pid, strerror(errno));
        return status;
}

/* Asserts that child pid, reaped now, exited with status code. */
static void child_exits_with(pid_t pid, int code, const char *what) {
        int status = reap(pid);

        cr_assert(WIFEXITED(status), "%s did not exit: status 0x%x", what, status);
        cr_assert_eq(WEXITSTATUS(status), code, "%s exited with %d, expected %d", what,
                     WEXITSTATUS(status), code);
}

/* Asserts that poll(2) works; whether fd becomes readable within timeout_ms. */
static bool fd_readable_within(int fd, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int64_t deadline = now_ms() + timeout_ms;
        int n;

        for (;;) {
                int64_t left = deadline - now_ms();

                n = poll(&pfd, 1, left > 0 ? (int)left : 0);
                if (n >= 0 || errno != EINTR)
                        break;
        }
        cr_assert_geq(n, 0, "poll: %s", strerror(errno));
        return n == 1 && (pfd.revents & POLLIN);
}

/* Whether fd is an open descriptor; asserts nothing. */
static bool fd_is_open(int fd) {
        return fcntl(fd, F_GETFD) >= 0;
}

/* Open fds of the calling process, or -1; asserts nothing (for children). */
static int count_fds_quietly(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = -1; /* the directory stream's own fd */

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* Resident set size in bytes, or 0 without /proc. */
static uint64_t resident_bytes(void) {
        unsigned long size, resident;
        FILE *f = fopen("/proc/self/statm", "re");
        int n;

        if (!f)
                return 0;
        n = fscanf(f, "%lu %lu", &size, &resident);
        fclose(f);
        return n == 2 ? (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE) : 0;
}

/* ------------------------------------------------------- data */

/* The bytes of a snapshot of size bytes made with seed: every byte depends
 * on its offset, so that a shifted, truncated or reused buffer shows. */
static uint8_t pattern_byte(size_t i, uint32_t seed) {
        uint32_t x = (uint32_t)i * UINT32_C(2654435761) ^ seed;

        x ^= x >> 15;
        return (uint8_t)(x ^ (uint32_t)(i >> 12));
}

static void fill_pattern(void *buf, size_t size, uint32_t seed) {
        uint8_t *p = buf;

        for (size_t i = 0; i < size; i++)
                p[i] = pattern_byte(i, seed);
}

/* The offset of the first byte of buf that is not the pattern's, or size. */
static size_t pattern_mismatch(const void *buf, size_t size, uint32_t seed) {
        const uint8_t *p = buf;

        for (size_t i = 0; i < size; i++)
                if (p[i] != pattern_byte(i, seed))
                        return i;
        return size;
}

/* FNV-1a, to compare bytes the producer holds with bytes sent to it. */
static uint32_t hash_bytes(const void *data, size_t size) {
        const uint8_t *p = data;
        uint32_t h = UINT32_C(2166136261);

        for (size_t i = 0; i < size; i++)
                h = (h ^ p[i]) * UINT32_C(16777619);
        return h;
}

/* Asserts that s is a snapshot at version of size bytes of the pattern
 * seed, aligned for any type, as a local snapshot is. */
static void assert_snapshot_is_pattern(const ev_value_snapshot *s, uint64_t version, size_t size,
                                       uint32_t seed) {
        const void *data = ev_snapshot_data(s);
        size_t bad;

        cr_assert_not_null(s);
        cr_assert_eq(ev_snapshot_version(s), version, "version %" PRIu64 ", expected %" PRIu64,
                     ev_snapshot_version(s), version);
        cr_assert_eq(ev_snapshot_size(s), size, "size %zu, expected %zu", ev_snapshot_size(s),
                     size);
        if (size == 0)
                return;
        cr_assert_not_null(data);
        cr_assert_eq((uintptr_t)data % alignof(max_align_t), 0,
                     "the bytes of a %zu-byte snapshot at %p are not aligned for any type", size,
                     data);
        bad = pattern_mismatch(data, size, seed);
        cr_assert_eq(bad, size, "byte %zu of %zu differs: 0x%02x, expected 0x%02x", bad, size,
                     ((const uint8_t *)data)[bad], pattern_byte(bad, seed));
}

/* ------------------------------------------------------- the producer */

/* What the test asks the producer child; each gets one reply of the same op. */
enum producer_op {
        OP_READY,        /* (reply only) serving, or why not */
        OP_SET,          /* set size bytes of data */
        OP_SET_PATTERN,  /* set n bytes of the pattern seed */
        OP_COUNT,        /* n sets from the loop, each the 8 bytes of its own
                          * version; COUNT_CLOSE: then close; reply after */
        OP_CLOSE,        /* ev_value_close */
        OP_PAUSE,        /* stop polling and processing the server's fd */
        OP_RESUME,       /* poll and process it again */
        OP_PROCESS_ONCE, /* one ev_value_server_process now */
        OP_WAIT_PEERS,   /* process until n peers and nothing left to read */
        OP_PEEK,         /* the current snapshot */
        OP_FD_COUNT,     /* the producer's open fds */
        OP_RSS,          /* the producer's resident bytes */
        OP_FREE,         /* ev_value_server_free */
        OP_EXIT,         /* release everything and _exit(0) */
};

#define COUNT_CLOSE 1u

struct command {
        int op;
        unsigned flags;
        uint64_t n;
        uint32_t seed;
        uint32_t size;
        char data[256];
};

struct reply {
        int op;
        int r;            /* the call's result */
        uint64_t version; /* the value's version after the command */
        uint64_t n;       /* peers, fds or, for OP_EXIT, the loop's calls to process */
        uint64_t size;    /* OP_PEEK: the snapshot's size */
        uint32_t hash;    /* OP_PEEK: hash_bytes of its bytes */
        char data[256];   /* OP_PEEK: its first bytes */
};

/* How the producer serves. */
struct producer_config {
        const char *path; /* ev_value_serve_path(path), or else: */
        int listen_fd;    /* passed as fd 3 with LISTEN_FDS, as systemd does */
        unsigned flags;   /* ev_value_serve's */
};

/* The producer child's state. */
struct producer_state {
        int ctl;
        ev_value *v;
        ev_value_server *srv;
        bool processing;
        uint64_t to_count;       /* OP_COUNT: sets still to make */
        struct reply count_reply;
        unsigned count_flags;
        bool waiting_peers;      /* OP_WAIT_PEERS in progress */
        uint64_t wait_target;
        int64_t wait_deadline;
        int loop_error;          /* the first failure of poll or process */
        uint64_t n_process;
};

/* Sends a reply; a parent that is gone ends the child. */
static void producer_send(struct producer_state *p, struct reply *reply) {
        reply->version = ev_value_get_version(p->v);
        if (send(p->ctl, reply, sizeof(*reply), MSG_NOSIGNAL) != (ssize_t)sizeof(*reply))
                _exit(0);
}

static void producer_release(struct producer_state *p) {
        p->srv = ev_value_server_free(p->srv);
        p->v = ev_value_unref(p->v);
}

/* The process calls of the loop: a failure is kept for OP_EXIT's reply. */
static void producer_process(struct producer_state *p) {
        int r = ev_value_server_process(p->srv);

        p->n_process++;
        if (r < 0 && p->loop_error == 0)
                p->loop_error = r;
}

static bool server_fd_readable(struct producer_state *p) {
        struct pollfd pfd = { .fd = ev_value_server_get_fd(p->srv), .events = POLLIN };

        return poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

static void producer_command(struct producer_state *p, const struct command *c) {
        struct reply reply = { .op = c->op };
        ev_value_snapshot *s = NULL;
        void *buf;

        switch (c->op) {
        case OP_SET:
                reply.r = ev_value_set(p->v, c->data, c->size);
                break;
        case OP_SET_PATTERN:
                buf = malloc(c->n ? c->n : 1);
                if (!buf) {
                        reply.r = -ENOMEM;
                        break;
                }
                fill_pattern(buf, c->n, c->seed);
                reply.r = ev_value_set(p->v, buf, c->n);
                free(buf);
                break;
        case OP_COUNT:
                p->to_count = c->n;
                p->count_flags = c->flags;
                p->count_reply = reply;
                return; /* replied to by the loop */
        case OP_CLOSE:
                reply.r = ev_value_close(p->v);
                break;
        case OP_PAUSE:
                p->processing = false;
                break;
        case OP_RESUME:
                p->processing = true;
                break;
        case OP_PROCESS_ONCE:
                reply.r = ev_value_server_process(p->srv);
                reply.n = ev_value_server_get_peer_count(p->srv);
                break;
        case OP_WAIT_PEERS:
                p->waiting_peers = true;
                p->wait_target = c->n;
                p->wait_deadline = now_ms() + MUST_COME_MS;
                return; /* replied to by the loop */
        case OP_PEEK:
                reply.r = ev_value_get(p->v, &s);
                if (reply.r >= 0) {
                        reply.size = ev_snapshot_size(s);
                        reply.hash = hash_bytes(ev_snapshot_data(s), reply.size);
                        memcpy(reply.data, ev_snapshot_data(s),
                               reply.size < sizeof(reply.data) ? reply.size : sizeof(reply.data));
                        ev_snapshot_unref(s);
                }
                break;
        case OP_FD_COUNT:
                reply.r = count_fds_quietly();
                reply.n = (uint64_t)reply.r;
                break;
        case OP_RSS:
                reply.n = resident_bytes();
                reply.r = reply.n > 0 ? 0 : -ENOENT;
                break;
        case OP_FREE:
                p->srv = ev_value_server_free(p->srv);
                reply.r = p->srv ? -EFAULT : 0; /* free returns NULL */
                break;
        case OP_EXIT:
                reply.r = p->loop_error;
                reply.n = p->n_process;
                producer_release(p);
                reply.version = 0;
                (void)send(p->ctl, &reply, sizeof(reply), MSG_NOSIGNAL);
                _exit(0);
        default:
                reply.r = -EINVAL;
        }
        producer_send(p, &reply);
}

/* sd_listen_fds(3), by hand: the number of fds passed from 3 on, when
 * LISTEN_PID names this process; the variables are then unset and the fds
 * made close-on-exec, as sd_listen_fds(1) does. */
static int listen_fds_by_hand(void) {
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
        long n;

        if (!pid || !fds || strtol(pid, NULL, 10) != (long)getpid())
                return 0;
        n = strtol(fds, NULL, 10);
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        if (n <= 0 || n > 64)
                return 0;
        for (int fd = 3; fd < 3 + n; fd++)
                if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
                        return -errno;
        return (int)n;
}

/* As systemd starts a socket-activated service: listen_fd becomes fd 3,
 * LISTEN_FDS=1 and LISTEN_PID the child's pid; then the service's code
 * finds it there.  Returns the fd to serve or a negative errno. */
static int take_activation_fd(struct producer_state *p, int listen_fd) {
        char pid[32];
        int n;

        if (p->ctl == 3) {
                p->ctl = fcntl(3, F_DUPFD_CLOEXEC, 4);
                if (p->ctl < 0)
                        return -errno;
                close(3);
        }
        if (listen_fd != 3) {
                if (dup2(listen_fd, 3) < 0)
                        return -errno;
                close(listen_fd);
        } else if (fcntl(3, F_SETFD, 0) < 0) {
                return -errno;
        }
        snprintf(pid, sizeof(pid), "%ld", (long)getpid());
        if (setenv("LISTEN_PID", pid, 1) < 0 || setenv("LISTEN_FDS", "1", 1) < 0)
                return -ENOMEM;

        /* The service's side. */
        n = listen_fds_by_hand();
        if (n < 0)
                return n;
        return n == 1 ? 3 : -ENOENT;
}

/* The producer child: serve, reply OP_READY, then the loop. */
static _Noreturn void producer_main(int ctl, const struct producer_config *cfg) {
        struct producer_state p = { .ctl = ctl, .processing = true };
        struct reply ready = { .op = OP_READY };
        int r = ev_value_new(&p.v);

        if (r >= 0 && cfg->path) {
                r = ev_value_serve_path(p.v, cfg->path, cfg->flags, &p.srv);
        } else if (r >= 0) {
                r = take_activation_fd(&p, cfg->listen_fd);
                if (r >= 0)
                        r = ev_value_serve(p.v, r, cfg->flags, &p.srv);
        }
        ready.r = r;
        producer_send(&p, &ready);
        if (r < 0) {
                producer_release(&p);
                _exit(0);
        }

        for (;;) {
                struct pollfd pfd[2] = {
                        { .fd = p.ctl, .events = POLLIN },
                        { .fd = -1, .events = POLLIN },
                };
                int timeout = -1;
                int n;

                if (p.srv && (p.processing || p.waiting_peers))
                        pfd[1].fd = ev_value_server_get_fd(p.srv);
                if (p.to_count > 0)
                        timeout = 0;
                else if (p.waiting_peers)
                        timeout = 50;
                n = poll(pfd, 2, timeout);
                if (n < 0) {
                        if (errno != EINTR && p.loop_error == 0)
                                p.loop_error = -errno;
                        continue;
                }
                if (pfd[1].revents & POLLIN)
                        producer_process(&p);

                if (p.to_count > 0) {
                        uint64_t next = ev_value_get_version(p.v) + 1;

                        r = ev_value_set(p.v, &next, sizeof(next));
                        if (r < 0 && p.count_reply.r == 0)
                                p.count_reply.r = r;
                        if (--p.to_count == 0) {
                                if (p.count_flags & COUNT_CLOSE) {
                                        r = ev_value_close(p.v);
                                        if (r < 0 && p.count_reply.r == 0)
                                                p.count_reply.r = r;
                                }
                                producer_send(&p, &p.count_reply);
                        }
                }

                if (p.waiting_peers && p.srv) {
                        size_t count = ev_value_server_get_peer_count(p.srv);

                        /* At the count, process what is left to read (a
                         * HELLO), so that the peers are settled. */
                        if (count == p.wait_target && server_fd_readable(&p))
                                producer_process(&p);
                        else if (count == p.wait_target || now_ms() > p.wait_deadline) {
                                struct reply reply = { .op = OP_WAIT_PEERS, .n = count };

                                p.waiting_peers = false;
                                producer_send(&p, &reply);
                        }
                }

                if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                        struct command c;
                        ssize_t got = recv(p.ctl, &c, sizeof(c), 0);

                        if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) {
                                producer_release(&p); /* the test is gone */
                                _exit(0);
                        }
                        if (got == (ssize_t)sizeof(c))
                                producer_command(&p, &c);
                }
        }
}

/* The test's handle on a producer child. */
struct producer {
        pid_t pid;
        int ctl;
};

/* Asserts that the producer's reply to op comes; returns it. */
static struct reply producer_reply(struct producer *p, int op) {
        struct reply reply;
        ssize_t got;

        cr_assert(fd_readable_within(p->ctl, MUST_COME_MS), "no reply from the producer to "
                  "command %d within %d ms", op, MUST_COME_MS);
        got = recv(p->ctl, &reply, sizeof(reply), 0);
        if (got == 0) {
                int status = reap(p->pid);

                p->pid = 0;
                cr_assert_fail("the producer ended before its reply to command %d: status 0x%x "
                               "(signal %d)", op, status, WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        cr_assert_eq(got, (ssize_t)sizeof(reply), "recv from the producer: %s",
                     got < 0 ? strerror(errno) : "short");
        cr_assert_eq(reply.op, op, "the producer replied to command %d, expected %d", reply.op,
                     op);
        return reply;
}

static void producer_send_command(struct producer *p, const struct command *c) {
        cr_assert_eq(send(p->ctl, c, sizeof(*c), MSG_NOSIGNAL), (ssize_t)sizeof(*c),
                     "send to the producer: %s", strerror(errno));
}

/* Asserts that the producer answers c; returns the reply. */
static struct reply producer_call(struct producer *p, const struct command *c) {
        producer_send_command(p, c);
        return producer_reply(p, c->op);
}

static struct reply producer_op(struct producer *p, int op) {
        struct command c = { .op = op };

        return producer_call(p, &c);
}

/* Asserts that a producer child starts serving as cfg says. */
static struct producer producer_start_with(const struct producer_config *cfg) {
        struct producer p;
        struct reply ready;
        int sv[2];

        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0,
                     "socketpair: %s", strerror(errno));
        p.pid = fork_or_fail();
        if (p.pid == 0) {
                close(sv[0]);
                producer_main(sv[1], cfg);
        }
        close(sv[1]);
        p.ctl = sv[0];
        ready = producer_reply(&p, OP_READY);
        cr_assert_eq(ready.r, 0, "the producer's ev_value_serve%s(%s, 0x%x): %s",
                     cfg->path ? "_path" : "", cfg->path ? cfg->path : "fd 3", cfg->flags,
                     strerror(-ready.r));
        return p;
}

/* Asserts that a producer child serves on path with flags. */
static struct producer producer_start(const char *path, unsigned flags) {
        struct producer_config cfg = { .path = path, .listen_fd = -1, .flags = flags };

        return producer_start_with(&cfg);
}

/* Asserts that the producer's loop never failed and that it exits 0. */
static void producer_exit(struct producer *p) {
        struct reply reply = producer_op(p, OP_EXIT);

        cr_assert_eq(reply.r, 0, "in the producer's loop, poll or ev_value_server_process "
                     "failed: %s", strerror(-reply.r));
        child_exits_with(p->pid, 0, "the producer");
        close(p->ctl);
        p->pid = 0;
        p->ctl = -1;
}

/* Asserts that the producer sets the string s (NUL included); returns the version. */
static uint64_t producer_set_string(struct producer *p, const char *s) {
        struct command c = { .op = OP_SET, .size = (uint32_t)strlen(s) + 1 };
        struct reply reply;

        cr_assert_lt(strlen(s), sizeof(c.data));
        memcpy(c.data, s, c.size);
        reply = producer_call(p, &c);
        cr_assert_eq(reply.r, 0, "the producer's ev_value_set: %s", strerror(-reply.r));
        return reply.version;
}

/* Asserts that the producer sets size bytes; returns the version. */
static uint64_t producer_set_bytes(struct producer *p, const void *data, size_t size) {
        struct command c = { .op = OP_SET, .size = (uint32_t)size };
        struct reply reply;

        cr_assert_leq(size, sizeof(c.data));
        memcpy(c.data, data, size);
        reply = producer_call(p, &c);
        cr_assert_eq(reply.r, 0, "the producer's ev_value_set: %s", strerror(-reply.r));
        return reply.version;
}

/* Asserts that the producer sets size bytes of the pattern seed; returns the version. */
static uint64_t producer_set_pattern(struct producer *p, size_t size, uint32_t seed) {
        struct command c = { .op = OP_SET_PATTERN, .n = size, .seed = seed };
        struct reply reply = producer_call(p, &c);

        cr_assert_eq(reply.r, 0, "the producer's ev_value_set of %zu bytes: %s", size,
                     strerror(-reply.r));
        return reply.version;
}

/* Starts n counter sets (then a close, with COUNT_CLOSE) in the producer's
 * loop; producer_count_done() waits for them. */
static void producer_count_start(struct producer *p, uint64_t n, unsigned flags) {
        struct command c = { .op = OP_COUNT, .n = n, .flags = flags };

        producer_send_command(p, &c);
}

/* Asserts that the counter sets succeeded; returns the final version. */
static uint64_t producer_count_done(struct producer *p) {
        struct reply reply = producer_reply(p, OP_COUNT);

        cr_assert_eq(reply.r, 0, "a counter set or the close in the producer's loop: %s",
                     strerror(-reply.r));
        return reply.version;
}

static void producer_close(struct producer *p) {
        struct reply reply = producer_op(p, OP_CLOSE);

        cr_assert_eq(reply.r, 0, "the producer's ev_value_close: %s", strerror(-reply.r));
}

/* Asserts that the producer's loop reaches n peers, with nothing left to read. */
static void producer_wait_peers(struct producer *p, size_t n) {
        struct command c = { .op = OP_WAIT_PEERS, .n = n };
        struct reply reply = producer_call(p, &c);

        cr_assert_eq(reply.n, n, "the producer has %" PRIu64 " peers after %d ms, expected %zu",
                     reply.n, MUST_COME_MS, n);
}

static struct reply producer_peek(struct producer *p) {
        return producer_op(p, OP_PEEK);
}

/* ------------------------------------------------------- consumers */

/* Asserts that ev_value_connect(path, flags) succeeds; returns the watcher. */
static ev_value_watcher *connect_or_fail(const char *path, unsigned flags) {
        ev_value_watcher *w = WATCHER_SENTINEL;
        int r = ev_value_connect(path, flags, &w);

        cr_assert_eq(r, 0, "ev_value_connect(%s, 0x%x): %s", path, flags, strerror(-r));
        cr_assert_not_null(w);
        cr_assert_neq(w, WATCHER_SENTINEL);
        cr_assert_geq(ev_watcher_get_fd(w), 0);
        return w;
}

/* Asserts that a wait of w gives a snapshot within MUST_COME_MS; returns it. */
static ev_value_snapshot *wait_or_fail(ev_value_watcher *w) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_wait(w, MUST_COME_MS, -1, &s);

        cr_assert_eq(r, 0, "ev_watcher_wait(%d ms): %s", MUST_COME_MS, strerror(-r));
        cr_assert_not_null(s);
        cr_assert_neq(s, SNAPSHOT_SENTINEL);
        return s;
}

/* Asserts that the next snapshot of w is the string str at version, after
 * at most one older one: a snapshot in flight when the producer moved on
 * may be returned once first (ev_value_connect(3)). */
static void get_string_after_one_stale(ev_value_watcher *w, uint64_t version, const char *str) {
        ev_value_snapshot *s = get_or_fail(w);

        if (ev_snapshot_version(s) < version) {
                s = ev_snapshot_unref(s);
                cr_assert(fd_readable(ev_watcher_get_fd(w)), "after a stale snapshot the fd is "
                          "not readable, yet version %" PRIu64 " is not seen", version);
                s = get_or_fail(w);
        }
        assert_snapshot_is_string(s, version, str);
        ev_snapshot_unref(s);
}

/* Asserts that the watcher has nothing new, twice (the second get asks the
 * socket), and that its fd says so. */
static void assert_nothing_new(ev_value_watcher *w) {
        get_fails_with(w, -EAGAIN);
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "the fd is readable while get gives "
                      "-EAGAIN");
}

/* Asserts that w has ended with error: now and again, its fd readable, a
 * wait returns at once. */
static void assert_ended_with(ev_value_watcher *w, int error) {
        for (int i = 0; i < 3; i++) {
                get_fails_with(w, error);
                cr_assert(fd_readable(ev_watcher_get_fd(w)), "an ended watcher's fd is not "
                          "readable");
        }
        wait_fails_with(w, -1, -1, error);
        wait_fails_with(w, 0, -1, error);
}

/* What a consumer of the counter (each snapshot the 8 bytes of its own
 * version) saw; written by children to a pipe, so under PIPE_BUF. */
struct stream_result {
        int index;
        int error;          /* 0, or the negative errno of what failed */
        char what[128];     /* what failed */
        uint64_t n_snapshots;
        uint64_t n_wakes;
        uint64_t last_version;
        int end;            /* the get's error that ended the stream */
};

static void stream_fail(struct stream_result *res, int error, const char *what) {
        res->error = error;
        snprintf(res->what, sizeof(res->what), "%s (after version %" PRIu64 ", %" PRIu64
                 " snapshots)", what, res->last_version, res->n_snapshots);
}

/* Takes every snapshot w has: 0 at -EAGAIN with at least one taken, 2 at
 * -EAGAIN with none, 1 at the end of the stream (res->end), -1 on a
 * snapshot that is not the counter or not newer (res->error); asserts
 * nothing. */
static int drain_counter(ev_value_watcher *w, struct stream_result *res) {
        bool took = false;

        for (;;) {
                ev_value_snapshot *s = NULL;
                uint64_t value = 0, version;
                int r = ev_watcher_get(w, &s);

                if (r == -EAGAIN)
                        return took ? 0 : 2;
                if (r < 0) {
                        res->end = r;
                        return 1;
                }
                version = ev_snapshot_version(s);
                if (ev_snapshot_size(s) == sizeof(value))
                        memcpy(&value, ev_snapshot_data(s), sizeof(value));
                ev_snapshot_unref(s);
                if (value != version) {
                        stream_fail(res, -EBADMSG, "a snapshot whose bytes are not its version");
                        return -1;
                }
                if (version <= res->last_version) {
                        stream_fail(res, -EBADMSG, "a version not above the last one");
                        return -1;
                }
                res->last_version = version;
                res->n_snapshots++;
                took = true;
        }
}

/* Wake-ups in a row that found nothing before the loops call it a spin:
 * a readable fd must mean that get does not give -EAGAIN. */
#define MAX_EMPTY_WAKES 100

/* Consumes the counter in a poll(2) loop until the stream ends. */
static void consume_poll(ev_value_watcher *w, struct stream_result *res) {
        struct pollfd pfd = { .fd = ev_watcher_get_fd(w), .events = POLLIN };
        int empty = 0;

        for (;;) {
                int n = poll(&pfd, 1, MUST_COME_MS), r;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        stream_fail(res, -errno, "poll");
                        return;
                }
                if (n == 0) {
                        stream_fail(res, -ETIMEDOUT, "no wake-up within MUST_COME_MS");
                        return;
                }
                res->n_wakes++;
                r = drain_counter(w, res);
                if (r == 1 || r < 0)
                        return;
                empty = r == 2 ? empty + 1 : 0;
                if (empty > MAX_EMPTY_WAKES) {
                        stream_fail(res, -EBUSY, "poll says readable, get says -EAGAIN");
                        return;
                }
        }
}

/* Consumes the counter in an epoll EPOLLET loop, draining after each edge. */
static void consume_epoll(ev_value_watcher *w, struct stream_result *res) {
        struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
        int ep = epoll_create1(EPOLL_CLOEXEC), empty = 0;

        if (ep < 0) {
                stream_fail(res, -errno, "epoll_create1");
                return;
        }
        if (epoll_ctl(ep, EPOLL_CTL_ADD, ev_watcher_get_fd(w), &ev) < 0) {
                stream_fail(res, -errno, "epoll_ctl ADD");
                close(ep);
                return;
        }
        for (;;) {
                int n = epoll_wait(ep, &ev, 1, MUST_COME_MS), r;

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        stream_fail(res, -errno, "epoll_wait");
                        break;
                }
                if (n == 0) {
                        stream_fail(res, -ETIMEDOUT, "no edge within MUST_COME_MS (a drained "
                                    "watcher whose next update raised no edge?)");
                        break;
                }
                res->n_wakes++;
                r = drain_counter(w, res);
                if (r == 1 || r < 0)
                        break;
                empty = r == 2 ? empty + 1 : 0;
                if (empty > MAX_EMPTY_WAKES) {
                        stream_fail(res, -EBUSY, "edges with nothing to get");
                        break;
                }
        }
        epoll_ctl(ep, EPOLL_CTL_DEL, ev_watcher_get_fd(w), NULL);
        close(ep);
}

#ifdef HAVE_LIBURING
/* Consumes the counter with single-shot io_uring polls, re-armed after each CQE. */
static void consume_uring(struct io_uring *ring, ev_value_watcher *w, struct stream_result *res) {
        int empty = 0;

        for (;;) {
                struct __kernel_timespec ts = { .tv_sec = MUST_COME_MS / 1000 };
                struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
                struct io_uring_cqe *cqe = NULL;
                int r, cqe_res;

                if (!sqe) {
                        stream_fail(res, -EBUSY, "no SQE");
                        return;
                }
                r = ev_watcher_prep_poll(sqe, w, 1);
                if (r < 0) {
                        stream_fail(res, r, "ev_watcher_prep_poll");
                        return;
                }
                r = io_uring_submit(ring);
                if (r != 1) {
                        stream_fail(res, r < 0 ? r : -EIO, "io_uring_submit");
                        return;
                }
                do
                        r = io_uring_wait_cqe_timeout(ring, &cqe, &ts);
                while (r == -EINTR);
                if (r == -ETIME) {
                        stream_fail(res, -ETIMEDOUT, "no CQE within MUST_COME_MS");
                        return;
                }
                if (r < 0) {
                        stream_fail(res, r, "io_uring_wait_cqe_timeout");
                        return;
                }
                cqe_res = cqe->res;
                io_uring_cqe_seen(ring, cqe);
                if (cqe_res < 0) {
                        stream_fail(res, cqe_res, "the poll's CQE");
                        return;
                }
                res->n_wakes++;
                r = drain_counter(w, res);
                if (r == 1 || r < 0)
                        return;
                empty = r == 2 ? empty + 1 : 0;
                if (empty > MAX_EMPTY_WAKES) {
                        stream_fail(res, -EBUSY, "CQEs with nothing to get");
                        return;
                }
        }
}
#endif

/* Asserts that a counter stream ended as a closed value's does: no
 * failure, increasing versions up to final, then -EPIPE. */
static void assert_stream_closed_at(const struct stream_result *res, uint64_t final,
                                    const char *who) {
        cr_assert_eq(res->error, 0, "%s: %s: %s", who, res->what, strerror(-res->error));
        cr_assert_eq(res->end, -EPIPE, "%s: the stream ended with %d (%s), expected -EPIPE", who,
                     res->end, strerror(-res->end));
        cr_assert_eq(res->last_version, final, "%s: last version %" PRIu64 ", expected the "
                     "final %" PRIu64, who, res->last_version, final);
        cr_assert_geq(res->n_snapshots, 1, "%s: no snapshot", who);
}

/* A test's counts: sets, for the stream tests. */
#define N_SETS scaled(2000, 100)

/* ================================================= argument checks */

Test(ipc_args, serve_checks_its_arguments_and_the_socket, .timeout = 30) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(closep) int listening = -1;
        _cleanup_(closep) int closed = -1;
        ev_value_server *srv = (ev_value_server *)(uintptr_t)0x5e471e4, *sentinel = srv;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        char path[128], stream_path[128], bound_path[128];
        int fds[2], sock, yes = 0;
        socklen_t len = sizeof(yes);

        PATH_IN_DIR(path, "serve");
        listening = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(listening, 0);
        set_sun_path(&addr, path);
        cr_assert_eq(bind(listening, (struct sockaddr *)&addr, sizeof(addr)), 0);
        cr_assert_eq(listen(listening, 16), 0);

        cr_assert_eq(ev_value_serve(NULL, listening, 0, &srv), -EINVAL);
        cr_assert_eq(ev_value_serve(v, listening, 0, NULL), -EINVAL);
        cr_assert_eq(ev_value_serve(v, -1, 0, &srv), -EINVAL);
        cr_assert_eq(ev_value_serve(v, -2, 0, &srv), -EINVAL);
        for (unsigned i = 1; i < 32; i++)
                cr_assert_eq(ev_value_serve(v, listening, 1u << i, &srv), -EINVAL, "flag 1 << %u", i);
        cr_assert_eq(ev_value_serve(v, listening, ~0u, &srv), -EINVAL);

        /* A number that was just open and is now closed. */
        closed = eventfd_or_fail();
        close(closed);
        cr_assert_eq(ev_value_serve(v, closed, 0, &srv), -EBADF);
        closed = -1;

        /* Not a socket: a pipe, an eventfd. */
        cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
        cr_assert_eq(ev_value_serve(v, fds[0], 0, &srv), -ENOTSOCK);
        cr_assert_eq(ev_value_serve(v, fds[1], 0, &srv), -ENOTSOCK);
        cr_assert(fd_is_open(fds[0]) && fd_is_open(fds[1]), "a refused serve closed the pipe");
        close(fds[0]);
        close(fds[1]);

        /* A listening AF_UNIX SOCK_STREAM socket. */
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        set_sun_path(&addr, PATH_IN_DIR(stream_path, "stream"));
        cr_assert_eq(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
        cr_assert_eq(listen(sock, 16), 0);
        cr_assert_eq(ev_value_serve(v, sock, 0, &srv), -EINVAL, "a SOCK_STREAM listener");
        cr_assert(fd_is_open(sock));
        close(sock);

        /* SOCK_SEQPACKET, bound but not listening; and not even bound. */
        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        set_sun_path(&addr, PATH_IN_DIR(bound_path, "bound"));
        cr_assert_eq(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
        cr_assert_eq(ev_value_serve(v, sock, 0, &srv), -EINVAL, "a socket that does not listen");
        close(sock);
        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        cr_assert_eq(ev_value_serve(v, sock, 0, &srv), -EINVAL, "an unbound socket");
        close(sock);

        /* A connected pair, and a datagram socket. */
        cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds), 0);
        cr_assert_eq(ev_value_serve(v, fds[0], 0, &srv), -EINVAL, "a connected socket");
        close(fds[0]);
        close(fds[1]);
        sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        cr_assert_eq(ev_value_serve(v, sock, 0, &srv), -EINVAL, "a SOCK_DGRAM socket");
        close(sock);

        cr_assert_eq(srv, sentinel, "a failed ev_value_serve wrote *ret");

        /* The right socket is served; the caller keeps it, listening, after free. */
        cr_assert_eq(ev_value_serve(v, listening, EV_VALUE_SERVE_ALLOW_SET, &srv), 0);
        cr_assert_neq(srv, sentinel);
        cr_assert_not_null(srv);
        cr_assert_geq(ev_value_server_get_fd(srv), 0);
        cr_assert_eq(ev_value_server_get_peer_count(srv), 0);
        cr_assert_eq(ev_value_server_process(srv) >= 0, true);
        cr_assert_null(ev_value_server_free(srv));
        cr_assert(fd_is_open(listening), "ev_value_server_free closed the caller's socket");
        cr_assert_eq(getsockopt(listening, SOL_SOCKET, SO_ACCEPTCONN, &yes, &len), 0);
        cr_assert_eq(yes, 1, "the caller's socket no longer listens after free");
        cr_assert_eq(access(path, F_OK), 0, "ev_value_server_free unlinked the caller's socket");
}

Test(ipc_args, serve_path_checks_its_arguments, .timeout = 30) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_server *srv = (ev_value_server *)(uintptr_t)0x5e471e4, *sentinel = srv;
        char path[128], long_path[300], missing[160];
        int r;

        PATH_IN_DIR(path, "serve-path");
        cr_assert_eq(ev_value_serve_path(NULL, path, 0, &srv), -EINVAL);
        cr_assert_eq(ev_value_serve_path(v, NULL, 0, &srv), -EINVAL);
        cr_assert_eq(ev_value_serve_path(v, path, 0, NULL), -EINVAL);
        for (unsigned i = 1; i < 32; i++)
                cr_assert_eq(ev_value_serve_path(v, path, 1u << i, &srv), -EINVAL, "flag 1 << %u",
                             i);
        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = 0;
        r = ev_value_serve_path(v, long_path, 0, &srv);
        cr_assert(r == -EINVAL || r == -ENAMETOOLONG, "a path longer than sun_path: %d (%s)", r,
                  strerror(-r));
        snprintf(missing, sizeof(missing), "%s/no-such-dir/sock", dir);
        r = ev_value_serve_path(v, missing, 0, &srv);
        cr_assert_eq(r, -ENOENT, "a path in a missing directory: %d (%s)", r, strerror(-r));
        cr_assert_eq(srv, sentinel, "a failed ev_value_serve_path wrote *ret");
        cr_assert_eq(access(path, F_OK), -1, "a refused serve_path created %s", path);
}

Test(ipc_args, serve_path_leaves_a_file_or_directory_alone, .timeout = 30) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_server *srv = (ev_value_server *)(uintptr_t)0x5e471e4, *sentinel = srv;
        static const char content[] = "not a socket\n";
        struct stat before, after;
        char path[128], subdir[128], buf[64] = { 0 };
        int fd, r;

        PATH_IN_DIR(path, "regular");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
        cr_assert_eq(write(fd, content, sizeof(content) - 1), (ssize_t)sizeof(content) - 1);
        close(fd);
        cr_assert_eq(stat(path, &before), 0);

        r = ev_value_serve_path(v, path, 0, &srv);
        cr_assert_eq(r, -EEXIST, "serve_path on a regular file: %d (%s)", r, strerror(-r));
        cr_assert_eq(srv, sentinel);
        cr_assert_eq(stat(path, &after), 0, "the file is gone: %s", strerror(errno));
        cr_assert(S_ISREG(after.st_mode));
        cr_assert_eq(after.st_ino, before.st_ino, "the file was replaced");
        cr_assert_eq(after.st_mode, before.st_mode);
        cr_assert_eq(after.st_size, before.st_size);
        cr_assert_eq(after.st_mtim.tv_sec, before.st_mtim.tv_sec);
        cr_assert_eq(after.st_mtim.tv_nsec, before.st_mtim.tv_nsec);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        cr_assert_geq(fd, 0);
        cr_assert_eq(read(fd, buf, sizeof(buf)), (ssize_t)sizeof(content) - 1);
        cr_assert_str_eq(buf, content);
        close(fd);

        PATH_IN_DIR(subdir, "directory");
        cr_assert_eq(mkdir(subdir, 0700), 0);
        r = ev_value_serve_path(v, subdir, 0, &srv);
        cr_assert_eq(r, -EEXIST, "serve_path on a directory: %d (%s)", r, strerror(-r));
        cr_assert_eq(stat(subdir, &after), 0);
        cr_assert(S_ISDIR(after.st_mode), "the directory is gone");
        cr_assert_eq(srv, sentinel);
}

/* Processes srv until w has something (the in-process server of a test). */
static void process_until_readable(ev_value_server *srv, ev_value_watcher *w) {
        int64_t deadline = now_ms() + MUST_COME_MS;

        while (!fd_readable(ev_watcher_get_fd(w))) {
                struct pollfd pfd = { .fd = ev_value_server_get_fd(srv), .events = POLLIN };

                cr_assert_lt(now_ms(), deadline, "the watcher got nothing within %d ms",
                             MUST_COME_MS);
                cr_assert_geq(poll(&pfd, 1, 10), 0);
                cr_assert_geq(ev_value_server_process(srv), 0);
        }
}

Test(ipc_args, serve_path_refuses_a_live_server_and_replaces_a_stale_socket, .timeout = 60) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_server_freep) ev_value_server *srv = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        struct producer p;
        struct stat st;
        char path[128];
        int sock, r;

        /* Served by another process. */
        PATH_IN_DIR(path, "live");
        p = producer_start(path, 0);
        producer_set_string(&p, "live");
        r = ev_value_serve_path(v, path, 0, &srv);
        cr_assert_eq(r, -EADDRINUSE, "serve_path on a live server's path: %d (%s)", r,
                     strerror(-r));
        cr_assert_null(srv);
        /* The live server was not disturbed. */
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "live");
        w = ev_watcher_close(w);
        /* Its free unlinks the path. */
        producer_exit(&p);
        cr_assert_eq(lstat(path, &st), -1, "%s is still there after the server's free", path);
        cr_assert_eq(errno, ENOENT);

        /* A socket file nobody listens on (its owner died). */
        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        set_sun_path(&addr, path);
        cr_assert_eq(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
        close(sock);
        cr_assert_eq(ev_value_connect(path, 0, &w), -ECONNREFUSED);
        r = ev_value_serve_path(v, path, 0, &srv);
        cr_assert_eq(r, 0, "serve_path on a stale socket: %s", strerror(-r));
        cr_assert_eq(stat(path, &st), 0);
        cr_assert(S_ISSOCK(st.st_mode));
        cr_assert_eq(st.st_mode & 07777, 0666, "mode %o, expected 0666", st.st_mode & 07777);
        set_string_or_fail(v, "replaced");
        w = connect_or_fail(path, 0);
        process_until_readable(srv, w);
        get_string_or_fail(w, 1, "replaced");
        w = ev_watcher_close(w);
        srv = ev_value_server_free(srv);
        cr_assert_eq(lstat(path, &st), -1, "%s is still there after free", path);
}

Test(ipc_args, abstract_socket, .timeout = 30) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_value_server_freep) ev_value_server *srv = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        ev_value_server *second = NULL;
        char name[108];

        abstract_name(name, sizeof(name), "abstract");
        cr_assert_eq(ev_value_serve_path(v, name, 0, &srv), 0);
        cr_assert_eq(ev_value_serve_path(v, name, 0, &second), -EADDRINUSE);
        cr_assert_null(second);
        set_string_or_fail(v, "abstract");
        w = connect_or_fail(name, 0);
        process_until_readable(srv, w);
        get_string_or_fail(w, 1, "abstract");
        w = ev_watcher_close(w);
        srv = ev_value_server_free(srv);
        cr_assert_eq(ev_value_connect(name, 0, &w), -ECONNREFUSED);
        cr_assert_null(w);
}

Test(ipc_args, server_functions_accept_null, .timeout = 10) {
        ev_value_server *srv = NULL;

        cr_assert_eq(ev_value_server_get_fd(NULL), -EINVAL);
        cr_assert_eq(ev_value_server_process(NULL), -EINVAL);
        cr_assert_eq(ev_value_server_get_peer_count(NULL), 0);
        cr_assert_null(ev_value_server_free(NULL));
        ev_value_server_freep(&srv);
        cr_assert_null(srv);
}

Test(ipc_args, connect_checks_its_arguments, .timeout = 30) {
        ev_value_watcher *w = WATCHER_SENTINEL;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        char path[128], missing[128], stale[128], long_path[300];
        struct producer p;
        int sock, r;

        PATH_IN_DIR(path, "connect");
        p = producer_start(path, 0);
        cr_assert_eq(ev_value_connect(NULL, 0, &w), -EINVAL);
        cr_assert_eq(ev_value_connect(path, 0, NULL), -EINVAL);
        r = ev_value_connect(path, EV_VALUE_WATCH_SHARED_FD, &w);
        cr_assert_eq(r, -EOPNOTSUPP, "EV_VALUE_WATCH_SHARED_FD: %d (%s)", r, strerror(-r));
        for (unsigned i = 2; i < 32; i++)
                cr_assert_eq(ev_value_connect(path, 1u << i, &w), -EINVAL, "flag 1 << %u", i);
        cr_assert_eq(ev_value_connect(path, ~0u & ~(unsigned)EV_VALUE_WATCH_SHARED_FD, &w),
                     -EINVAL);

        r = ev_value_connect(PATH_IN_DIR(missing, "missing"), 0, &w);
        cr_assert_eq(r, -ENOENT, "a missing path: %d (%s)", r, strerror(-r));
        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        set_sun_path(&addr, PATH_IN_DIR(stale, "stale"));
        cr_assert_eq(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
        close(sock);
        r = ev_value_connect(stale, 0, &w);
        cr_assert_eq(r, -ECONNREFUSED, "a socket nobody listens on: %d (%s)", r, strerror(-r));
        memset(long_path, 'x', sizeof(long_path) - 1);
        long_path[0] = '/';
        long_path[sizeof(long_path) - 1] = 0;
        r = ev_value_connect(long_path, 0, &w);
        cr_assert(r == -EINVAL || r == -ENAMETOOLONG, "a path longer than sun_path: %d (%s)", r,
                  strerror(-r));
        cr_assert_eq(w, WATCHER_SENTINEL, "a failed ev_value_connect wrote *ret");

        /* None of that left a peer behind. */
        producer_wait_peers(&p, 0);
        producer_exit(&p);
}

Test(ipc_args, connect_fd_checks_its_arguments_and_adopts_on_success, .timeout = 30) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = WATCHER_SENTINEL;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        char path[128];
        struct producer p;
        int fds[2], fd, r;

        PATH_IN_DIR(path, "connect-fd");
        p = producer_start(path, 0);
        producer_set_string(&p, "adopted");

        cr_assert_eq(ev_value_connect_fd(-1, 0, &w), -EINVAL);
        cr_assert_eq(ev_value_connect_fd(-5, 0, &w), -EINVAL);
        fd = eventfd_or_fail();
        close(fd);
        cr_assert_eq(ev_value_connect_fd(fd, 0, &w), -EBADF);

        cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
        cr_assert_eq(ev_value_connect_fd(fds[0], 0, &w), -ENOTSOCK);
        cr_assert(fd_is_open(fds[0]), "a refused connect_fd closed the caller's fd");
        close(fds[0]);
        close(fds[1]);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
        cr_assert_eq(ev_value_connect_fd(fds[0], 0, &w), -EINVAL, "a SOCK_STREAM socket");
        cr_assert(fd_is_open(fds[0]));
        close(fds[0]);
        close(fds[1]);
        cr_assert_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, fds), 0);
        cr_assert_eq(ev_value_connect_fd(fds[0], 0, &w), -EINVAL, "a SOCK_DGRAM socket");
        close(fds[0]);
        close(fds[1]);

        /* A socket connected to the server by hand. */
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(fd, 0);
        set_sun_path(&addr, path);
        cr_assert_eq(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0, "connect: %s",
                     strerror(errno));
        cr_assert_eq(ev_value_connect_fd(fd, 0, NULL), -EINVAL);
        r = ev_value_connect_fd(fd, EV_VALUE_WATCH_SHARED_FD, &w);
        cr_assert_eq(r, -EOPNOTSUPP, "EV_VALUE_WATCH_SHARED_FD: %d (%s)", r, strerror(-r));
        cr_assert_eq(ev_value_connect_fd(fd, 1u << 7, &w), -EINVAL);
        cr_assert(fd_is_open(fd), "a refused connect_fd closed the caller's fd");
        cr_assert_eq(w, WATCHER_SENTINEL, "a failed ev_value_connect_fd wrote *ret");

        r = ev_value_connect_fd(fd, 0, &w);
        cr_assert_eq(r, 0, "ev_value_connect_fd: %s", strerror(-r));
        cr_assert_eq(ev_watcher_get_fd(w), fd, "the watcher's fd is not the adopted connection");
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "adopted");
        w = ev_watcher_close(w);
        cr_assert_not(fd_is_open(fd), "ev_watcher_close left the adopted fd open");
        producer_wait_peers(&p, 0);
        producer_exit(&p);
}

Test(ipc_args, remote_set_checks_its_arguments, .timeout = 30) {
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        char path[128], missing[128], stale[128];
        struct producer p;
        struct reply peek;
        int sock, r;

        PATH_IN_DIR(path, "remote-args");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "kept");
        cr_assert_eq(ev_value_remote_set(NULL, "x", 2, 1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set(path, NULL, 1, 1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set(path, NULL, SIZE_MAX, 1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set(path, "x", 2, -2), -EINVAL);
        r = ev_value_remote_set(PATH_IN_DIR(missing, "missing"), "x", 2, 1000);
        cr_assert_eq(r, -ENOENT, "a missing path: %d (%s)", r, strerror(-r));
        sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(sock, 0);
        set_sun_path(&addr, PATH_IN_DIR(stale, "stale"));
        cr_assert_eq(bind(sock, (struct sockaddr *)&addr, sizeof(addr)), 0);
        close(sock);
        r = ev_value_remote_set(stale, "x", 2, 1000);
        cr_assert_eq(r, -ECONNREFUSED, "a socket nobody listens on: %d (%s)", r, strerror(-r));

        /* Nothing reached the value. */
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 1);
        cr_assert_str_eq(peek.data, "kept");
        producer_exit(&p);
}

Test(ipc_args, remote_set_flags_checks_its_arguments, .timeout = 30) {
        char path[128], missing[128];
        struct producer p;
        struct reply peek;
        int r;

        PATH_IN_DIR(path, "remote-flags-args");
        PATH_IN_DIR(missing, "missing");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "kept");
        /* Unknown flags are refused before connecting: -EINVAL, not the
         * missing path's -ENOENT. */
        cr_assert_eq(ev_value_remote_set_flags(path, "x", 2, 1u << 1, 1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set_flags(path, "x", 2, ~0u, 1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set_flags(path, "x", 2, EV_VALUE_SET_IF_CHANGED | 1u << 5,
                                               1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set_flags(missing, "x", 2, 1u << 1, 1000), -EINVAL);
        cr_assert_eq(ev_value_remote_set_flags(NULL, "x", 2, EV_VALUE_SET_IF_CHANGED, 1000),
                     -EINVAL);
        cr_assert_eq(ev_value_remote_set_flags(path, NULL, 1, EV_VALUE_SET_IF_CHANGED, 1000),
                     -EINVAL);
        cr_assert_eq(ev_value_remote_set_flags(path, "x", 2, EV_VALUE_SET_IF_CHANGED, -2),
                     -EINVAL);
        r = ev_value_remote_set_flags(missing, "x", 2, EV_VALUE_SET_IF_CHANGED, 1000);
        cr_assert_eq(r, -ENOENT, "a missing path: %d (%s)", r, strerror(-r));

        /* Nothing reached the value. */
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 1);
        cr_assert_str_eq(peek.data, "kept");
        producer_exit(&p);
}

/* ================================================= first state, bytes */

Test(ipc, connect_before_the_first_state, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char path[128];
        struct producer p;

        PATH_IN_DIR(path, "first-state");
        p = producer_start(path, 0);
        producer_set_string(&p, "one");
        producer_set_string(&p, "two");
        cr_assert_eq(producer_set_string(&p, "three"), 3);
        producer_op(&p, OP_PAUSE);

        /* Connected, not yet accepted: nothing to read, nothing to get. */
        w = connect_or_fail(path, 0);
        assert_nothing_new(w);

        /* The producer's loop accepts it: the current snapshot, at the
         * producer's version. */
        producer_op(&p, OP_RESUME);
        cr_assert(fd_readable_within(ev_watcher_get_fd(w), MUST_COME_MS),
                  "the first state did not come within %d ms", MUST_COME_MS);
        get_string_or_fail(w, 3, "three");
        assert_nothing_new(w);

        /* A set reaches the watcher in the set itself: readable as soon as
         * the producer's set returned. */
        cr_assert_eq(producer_set_string(&p, "four"), 4);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "not readable after the producer's set "
                  "returned");
        get_string_or_fail(w, 4, "four");
        assert_nothing_new(w);
        producer_exit(&p);
}

Test(ipc, connect_before_the_first_set, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char path[128];
        struct producer p;

        PATH_IN_DIR(path, "first-set");
        p = producer_start(path, 0);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        /* Accepted, but the value was never set. */
        assert_nothing_new(w);
        cr_assert_eq(producer_set_string(&p, "first"), 1);
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "not readable after the producer's first "
                  "set returned");
        get_string_or_fail(w, 1, "first");
        assert_nothing_new(w);
        producer_exit(&p);
}

Test(ipc, sets_reach_watchers_while_the_loop_is_not_processing, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *a = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *b = NULL;
        char path[128], text[32];
        struct producer p;

        PATH_IN_DIR(path, "no-process");
        p = producer_start(path, 0);
        producer_set_string(&p, "start");
        a = connect_or_fail(path, 0);
        b = connect_or_fail(path, 0);
        producer_wait_peers(&p, 2);
        get_string_or_fail(a, 1, "start");
        get_string_or_fail(b, 1, "start");

        /* No process from here on: each set itself collects the
         * acknowledgement of the last one and sends the next. */
        producer_op(&p, OP_PAUSE);
        for (unsigned i = 2; i < 12; i++) {
                snprintf(text, sizeof(text), "set %u", i);
                cr_assert_eq(producer_set_string(&p, text), i);
                cr_assert(fd_readable(ev_watcher_get_fd(a)), "set %u did not reach a watcher", i);
                cr_assert(fd_readable(ev_watcher_get_fd(b)), "set %u did not reach a watcher", i);
                get_string_or_fail(a, i, text);
                get_string_or_fail(b, i, text);
                assert_nothing_new(a);
        }
        producer_exit(&p);
}

Test(ipc, bytes_cross_exactly_inline_and_in_a_memfd, .timeout = 60) {
        static const size_t sizes[] = {
                0, 1, 7, 8, 255, 2047, 2048, 2049, 4095, 4096, 4097, 65539, 1u << 20,
        };
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *big = NULL;
        char path[128];
        struct producer p;
        uint64_t version = 0;

        PATH_IN_DIR(path, "bytes");
        p = producer_start(path, 0);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                ev_value_snapshot *s;

                version = producer_set_pattern(&p, sizes[i], (uint32_t)(i * 77 + 1));
                s = wait_or_fail(w);
                assert_snapshot_is_pattern(s, version, sizes[i], (uint32_t)(i * 77 + 1));
                if (sizes[i] == 1u << 20)
                        big = s;
                else
                        ev_snapshot_unref(s);
        }

        /* A snapshot's bytes outlive the connection and the producer. */
        w = ev_watcher_close(w);
        producer_exit(&p);
        assert_snapshot_is_pattern(big, version, 1u << 20,
                                   (uint32_t)((sizeof(sizes) / sizeof(sizes[0]) - 1) * 77 + 1));
}

Test(ipc, skip_current_counts_the_state_at_accept_as_seen, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *skip = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *all = NULL;
        char path[128];
        struct producer p;

        PATH_IN_DIR(path, "skip-current");
        p = producer_start(path, 0);
        producer_set_string(&p, "old");
        skip = connect_or_fail(path, EV_VALUE_WATCH_SKIP_CURRENT);
        all = connect_or_fail(path, 0);
        producer_wait_peers(&p, 2);
        wait_string_or_fail(all, MUST_COME_MS, -1, 1, "old");
        assert_nothing_new(skip);
        producer_set_string(&p, "new");
        wait_string_or_fail(skip, MUST_COME_MS, -1, 2, "new");
        wait_string_or_fail(all, MUST_COME_MS, -1, 2, "new");
        assert_nothing_new(skip);
        producer_exit(&p);
}

/* ================================================= many consumers, loops */

/* A consumer child: connects, says so on ready_fd, consumes the counter in
 * a poll loop, writes its stream_result to result_fd; never asserts. */
static _Noreturn void counter_consumer_child(int index, const char *path, int ready_fd,
                                             int result_fd) {
        struct stream_result res = { .index = index };
        ev_value_watcher *w = NULL;
        int r = ev_value_connect(path, 0, &w);

        if (r < 0)
                stream_fail(&res, r, "ev_value_connect");
        if (write(ready_fd, "r", 1) != 1)
                _exit(2);
        if (r >= 0)
                consume_poll(w, &res);
        ev_watcher_close(w);
        if (write(result_fd, &res, sizeof(res)) != (ssize_t)sizeof(res))
                _exit(3);
        _exit(0);
}

/* At most this many consumer children (the test's static arrays). */
#define MAX_CONSUMERS 100

Test(ipc, a_hundred_consumer_processes_see_increasing_versions_and_the_end, .timeout = 180) {
        static pid_t pids[MAX_CONSUMERS];
        unsigned n = scaled(MAX_CONSUMERS, 4), n_sets = N_SETS;
        int ready[2], results[2];
        char path[128];
        struct producer p;
        uint64_t final;

        PATH_IN_DIR(path, "hundred");
        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(results, O_CLOEXEC), 0);
        p = producer_start(path, 0);
        for (unsigned i = 0; i < n; i++) {
                pids[i] = fork_or_fail();
                if (pids[i] == 0) {
                        close(p.ctl);
                        close(ready[0]);
                        close(results[0]);
                        counter_consumer_child((int)i, path, ready[1], results[1]);
                }
        }
        close(ready[1]);
        close(results[1]);
        for (unsigned i = 0; i < n; i++) {
                char c;

                cr_assert(fd_readable_within(ready[0], MUST_COME_MS), "%u of %u consumers "
                          "connected within %d ms", i, n, MUST_COME_MS);
                cr_assert_eq(read(ready[0], &c, 1), 1, "a consumer ended before it connected");
        }
        close(ready[0]);
        producer_wait_peers(&p, n);

        producer_count_start(&p, n_sets, COUNT_CLOSE);
        final = producer_count_done(&p);
        cr_assert_eq(final, n_sets);

        for (unsigned i = 0; i < n; i++) {
                struct stream_result res;
                char who[64];

                cr_assert(fd_readable_within(results[0], MUST_COME_MS), "%u of %u consumers "
                          "reported within %d ms of the close", i, n, MUST_COME_MS);
                cr_assert_eq(read(results[0], &res, sizeof(res)), (ssize_t)sizeof(res));
                snprintf(who, sizeof(who), "consumer %d", res.index);
                assert_stream_closed_at(&res, final, who);
        }
        close(results[0]);
        for (unsigned i = 0; i < n; i++)
                child_exits_with(pids[i], 0, "a consumer");
        producer_wait_peers(&p, 0);
        producer_exit(&p);
}

/* A producer sets N_SETS times and closes while consume, the loop of this
 * process, takes the stream: it must end at the final value with -EPIPE. */
static void consume_whole_stream(const char *name,
                                 void (*consume)(ev_value_watcher *w, struct stream_result *res),
                                 const char *who) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        struct stream_result res = { 0 };
        char path[128];
        struct producer p;
        uint64_t final;

        PATH_IN_DIR(path, name);
        p = producer_start(path, 0);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        producer_count_start(&p, N_SETS, COUNT_CLOSE);
        consume(w, &res);
        final = producer_count_done(&p);
        assert_stream_closed_at(&res, final, who);
        assert_ended_with(w, -EPIPE);
        producer_exit(&p);
}

Test(ipc, epoll_edge_triggered_consumer, .timeout = 60) {
        consume_whole_stream("epoll", consume_epoll, "the epoll consumer");
}

Test(ipc, poll_consumer_in_the_test_process, .timeout = 60) {
        consume_whole_stream("poll", consume_poll, "the poll consumer");
}

#ifdef HAVE_LIBURING
static struct io_uring ring;
static bool ring_up;

static void uring_fini(void) {
        if (ring_up)
                io_uring_queue_exit(&ring);
        ring_up = false;
        suite_fini();
}

Test(ipc, io_uring_poll_consumer, .timeout = 60, .fini = uring_fini) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        struct stream_result res = { 0 };
        char path[128];
        struct producer p;
        uint64_t final;
        int r = io_uring_queue_init(8, &ring, 0);

        if (r == -ENOSYS || r == -EPERM)
                cr_skip_test("the kernel refuses io_uring (io_uring_setup: %s): nothing to test",
                             strerror(-r));
        cr_assert_eq(r, 0, "io_uring_queue_init: %s", strerror(-r));
        ring_up = true;

        PATH_IN_DIR(path, "uring");
        p = producer_start(path, 0);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        producer_count_start(&p, N_SETS, COUNT_CLOSE);
        consume_uring(&ring, w, &res);
        final = producer_count_done(&p);
        assert_stream_closed_at(&res, final, "the io_uring consumer");
        assert_ended_with(w, -EPIPE);
        producer_exit(&p);
}
#else
Test(ipc, io_uring_poll_consumer) {
        cr_skip_test("built without liburing (install liburing-dev and run configure again)");
}
#endif

/* ================================================= wait, wait_until, typed */

Test(ipc, wait_times_out_and_is_cancelled_on_a_remote_watcher, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        _cleanup_(closep) int cancel = eventfd_or_fail();
        _cleanup_(closep) int quiet = eventfd_or_fail();
        struct waiter t;
        pthread_t thread;
        char path[128];
        struct producer p;
        int64_t start, elapsed;
        uint64_t counter = 0;

        PATH_IN_DIR(path, "wait");
        p = producer_start(path, 0);
        producer_set_string(&p, "one");
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "one");

        start = now_us();
        wait_fails_with(w, 100, -1, -ETIMEDOUT);
        elapsed = now_us() - start;
        cr_assert_geq(elapsed, 100000, "timed out after %lld us, before 100 ms", (long long)elapsed);
        wait_fails_with(w, 0, -1, -ETIMEDOUT);

        eventfd_write_one(cancel);
        wait_fails_with(w, -1, cancel, -ECANCELED);
        wait_fails_with(w, 5000, cancel, -ECANCELED);
        cr_assert_eq(read(cancel, &counter, sizeof(counter)), (ssize_t)sizeof(counter),
                     "the library read the cancel fd");
        cr_assert_eq(counter, 1);

        /* A wait that sleeps is woken by the producer's set, and one is
         * cancelled while it sleeps. */
        waiter_start(&t, &thread, w, -1, quiet);
        wait_until_busy(w);
        producer_set_string(&p, "two");
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0, "the sleeping wait: %d (%s)", t.r, strerror(-t.r));
        assert_snapshot_is_string(t.s, 2, "two");
        ev_snapshot_unref(t.s);

        waiter_start(&t, &thread, w, -1, cancel);
        wait_until_busy(w);
        eventfd_write_one(cancel);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, -ECANCELED, "the cancelled wait: %d (%s)", t.r, strerror(-t.r));
        cr_assert_eq(t.s, SNAPSHOT_SENTINEL);

        /* Usable after both. */
        producer_set_string(&p, "three");
        wait_string_or_fail(w, MUST_COME_MS, -1, 3, "three");
        producer_exit(&p);
}

static bool counter_at_least(const ev_value_snapshot *s, void *userdata) {
        uint64_t value = 0;

        if (ev_snapshot_size(s) != sizeof(value))
                return false;
        memcpy(&value, ev_snapshot_data(s), sizeof(value));
        return value >= *(const uint64_t *)userdata;
}

Test(ipc, wait_until_on_a_remote_watcher, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        uint64_t target = 50, never = UINT64_MAX, value = 0;
        char path[128];
        struct producer p;
        int r;

        PATH_IN_DIR(path, "wait-until");
        p = producer_start(path, 0);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        producer_count_start(&p, target, 0);
        r = ev_watcher_wait_until(w, counter_at_least, &target, MUST_COME_MS, -1, &s);
        cr_assert_eq(r, 0, "ev_watcher_wait_until: %s", strerror(-r));
        cr_assert_eq(ev_snapshot_version(s), target);
        cr_assert_eq(ev_snapshot_size(s), sizeof(value));
        memcpy(&value, ev_snapshot_data(s), sizeof(value));
        cr_assert_eq(value, target);
        ev_snapshot_unref(s);
        cr_assert_eq(producer_count_done(&p), target);

        s = SNAPSHOT_SENTINEL;
        r = ev_watcher_wait_until(w, counter_at_least, &never, 100, -1, &s);
        cr_assert_eq(r, -ETIMEDOUT, "a predicate never true: %d (%s)", r, strerror(-r));
        cr_assert_eq(s, SNAPSHOT_SENTINEL);
        producer_exit(&p);
}

struct reading {
        int32_t x, y;
        double celsius;
};

EV_VALUE_DEFINE_TYPED(reading, struct reading);

Test(ipc, typed_functions_on_a_remote_watcher, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        struct reading sent = { .x = 3, .y = -4, .celsius = 21.5 }, got = { 0 };
        char path[128];
        struct producer p;
        int r;

        PATH_IN_DIR(path, "typed");
        p = producer_start(path, 0);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        cr_assert_eq(reading_get(w, &got), -EAGAIN);
        producer_set_bytes(&p, &sent, sizeof(sent));
        r = reading_wait(w, MUST_COME_MS, -1, &got);
        cr_assert_eq(r, 0, "reading_wait: %s", strerror(-r));
        cr_assert_eq(memcmp(&got, &sent, sizeof(sent)), 0);
        cr_assert_eq(reading_wait(w, 50, -1, &got), -ETIMEDOUT);

        sent.celsius = -7.25;
        producer_set_bytes(&p, &sent, sizeof(sent));
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        cr_assert_eq(reading_get(w, &got), 0);
        cr_assert_eq(got.celsius, -7.25);

        /* The wrong size: -EBADMSG, *ret left alone. */
        producer_set_string(&p, "not a reading");
        cr_assert_eq(reading_wait(w, MUST_COME_MS, -1, &got), -EBADMSG);
        cr_assert_eq(got.celsius, -7.25);
        cr_assert_eq(reading_get(w, &got), -EAGAIN);
        producer_exit(&p);
}

/* ================================================= how a stream ends */

Test(ipc_end, producer_closes_final_snapshot_then_epipe_forever, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *seen = NULL;
        ev_value_watcher *late = NULL;
        char path[128];
        struct producer p;

        PATH_IN_DIR(path, "close");
        p = producer_start(path, 0);
        producer_set_string(&p, "zero");
        w = connect_or_fail(path, 0);
        seen = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "zero");
        wait_string_or_fail(seen, MUST_COME_MS, -1, 1, "zero");
        producer_set_string(&p, "a");
        wait_string_or_fail(seen, MUST_COME_MS, -1, 2, "a");
        /* w leaves "a" unread; the last set and the close come on top. */
        producer_set_string(&p, "final");
        producer_close(&p);

        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_after_one_stale(w, 3, "final");
        assert_ended_with(w, -EPIPE);
        cr_assert(fd_readable(ev_watcher_get_fd(seen)));
        get_string_or_fail(seen, 3, "final");
        assert_ended_with(seen, -EPIPE);

        /* A watcher that connects to the closed value gets the final
         * snapshot too, then -EPIPE. */
        late = connect_or_fail(path, 0);
        wait_string_or_fail(late, MUST_COME_MS, -1, 3, "final");
        assert_ended_with(late, -EPIPE);
        ev_watcher_close(late);

        /* Whatever happens to the producer afterwards: still -EPIPE. */
        producer_exit(&p);
        assert_ended_with(w, -EPIPE);
        assert_ended_with(seen, -EPIPE);
}

Test(ipc_end, producer_frees_the_server_then_exits, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *seen = NULL;
        struct reply reply;
        char path[128];
        struct producer p;

        PATH_IN_DIR(path, "free");
        p = producer_start(path, 0);
        producer_set_string(&p, "seen");
        w = connect_or_fail(path, 0);
        seen = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "seen");
        wait_string_or_fail(seen, MUST_COME_MS, -1, 1, "seen");
        producer_set_string(&p, "unseen");
        wait_string_or_fail(seen, MUST_COME_MS, -1, 2, "unseen");

        reply = producer_op(&p, OP_FREE);
        cr_assert_eq(reply.r, 0);
        cr_assert(fd_readable_within(ev_watcher_get_fd(w), MUST_COME_MS));
        get_string_or_fail(w, 2, "unseen");
        assert_ended_with(w, -ECONNRESET);
        cr_assert(fd_readable_within(ev_watcher_get_fd(seen), MUST_COME_MS));
        assert_ended_with(seen, -ECONNRESET);
        cr_assert_eq(access(path, F_OK), -1, "the socket file outlived the server");

        /* The producer then exits normally. */
        producer_exit(&p);
        assert_ended_with(w, -ECONNRESET);
        assert_ended_with(seen, -ECONNRESET);
}

/* The watchers of the kill test, closed by its .fini (an array takes no _cleanup_). */
static ev_value_watcher *killed_watchers[3];

static void killed_fini(void) {
        for (int i = 0; i < 3; i++)
                killed_watchers[i] = ev_watcher_close(killed_watchers[i]);
        suite_fini();
}

Test(ipc_end, producer_killed_mid_stream, .timeout = 60, .fini = killed_fini) {
        ev_value_watcher **w = killed_watchers;
        uint64_t seen[3];
        char path[128];
        struct producer p;
        int status;

        PATH_IN_DIR(path, "killed");
        p = producer_start(path, 0);
        for (int i = 0; i < 3; i++)
                w[i] = connect_or_fail(path, 0);
        producer_wait_peers(&p, 3);
        producer_count_start(&p, UINT64_MAX, 0); /* sets until killed */
        for (int i = 0; i < 3; i++) {
                ev_value_snapshot *s = wait_or_fail(w[i]);

                seen[i] = ev_snapshot_version(s);
                ev_snapshot_unref(s);
                /* A newer state is on its way again: unseen at the kill. */
                cr_assert(fd_readable_within(ev_watcher_get_fd(w[i]), MUST_COME_MS));
        }

        cr_assert_eq(kill(p.pid, SIGKILL), 0);
        status = reap(p.pid);
        cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "status 0x%x", status);

        for (int i = 0; i < 3; i++) {
                ev_value_snapshot *s = NULL;
                uint64_t n = 0;
                int r;

                cr_assert(fd_readable_within(ev_watcher_get_fd(w[i]), 100),
                          "watcher %d not readable within 100 ms of the producer's death", i);
                while ((r = ev_watcher_get(w[i], &s)) == 0) {
                        cr_assert_gt(ev_snapshot_version(s), seen[i], "watcher %d: version %"
                                     PRIu64 " after %" PRIu64, i, ev_snapshot_version(s), seen[i]);
                        seen[i] = ev_snapshot_version(s);
                        s = ev_snapshot_unref(s);
                        cr_assert_lt(++n, 3, "watcher %d: more than the last unseen snapshot", i);
                }
                cr_assert_geq(n, 1, "watcher %d: its last unseen snapshot was lost", i);
                cr_assert_eq(r, -ECONNRESET, "watcher %d: %d (%s), expected -ECONNRESET", i, r,
                             strerror(-r));
                assert_ended_with(w[i], -ECONNRESET);
        }
        close(p.ctl);
}

/* An edge-triggered loop drains after each edge and then waits for the
 * next.  When the producer died before the drain, the hang-up raised no
 * edge of its own: the drain itself must end with -ECONNRESET, or the loop
 * waits forever. */
Test(ipc_end, producer_killed_before_an_edge_triggered_drain, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        struct stream_result res = { 0 };
        char path[128];
        struct producer p;
        int status;

        PATH_IN_DIR(path, "killed-epoll");
        p = producer_start(path, 0);
        /* The counter's first two states, as OP_COUNT sets them. */
        producer_set_bytes(&p, &(uint64_t){ 1 }, sizeof(uint64_t));
        w = connect_or_fail(path, 0);
        ev_snapshot_unref(wait_or_fail(w));
        /* One unseen state in the socket, then the death. */
        producer_set_bytes(&p, &(uint64_t){ 2 }, sizeof(uint64_t));
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        cr_assert_eq(kill(p.pid, SIGKILL), 0);
        status = reap(p.pid);
        cr_assert(WIFSIGNALED(status), "status 0x%x", status);
        close(p.ctl);

        res.last_version = 1;
        consume_epoll(w, &res);
        cr_assert_eq(res.error, 0, "%s: %s", res.what, strerror(-res.error));
        cr_assert_eq(res.n_snapshots, 1, "the last unseen snapshot was lost");
        cr_assert_eq(res.end, -ECONNRESET, "the stream ended with %d (%s)", res.end,
                     strerror(-res.end));
}

Test(ipc_end, killed_consumer_is_dropped_by_the_next_process, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        int ready[2], hold[2];
        char path[128], c;
        struct producer p;
        struct reply reply;
        pid_t pid;
        int status;

        PATH_IN_DIR(path, "killed-consumer");
        cr_assert_eq(pipe2(ready, O_CLOEXEC), 0);
        cr_assert_eq(pipe2(hold, O_CLOEXEC), 0);
        p = producer_start(path, 0);
        producer_set_string(&p, "one");
        pid = fork_or_fail();
        if (pid == 0) {
                ev_value_watcher *cw = NULL;
                ev_value_snapshot *s = NULL;

                close(p.ctl);
                if (ev_value_connect(path, 0, &cw) < 0 || ev_watcher_wait(cw, MUST_COME_MS, -1, &s) < 0)
                        _exit(1);
                ev_snapshot_unref(s);
                if (write(ready[1], "r", 1) != 1)
                        _exit(2);
                if (read(hold[0], &c, 1) < 0) /* blocks until killed */
                        _exit(3);
                _exit(3);
        }
        close(ready[1]);
        close(hold[0]);
        cr_assert(fd_readable_within(ready[0], MUST_COME_MS));
        cr_assert_eq(read(ready[0], &c, 1), 1, "the consumer child failed");
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "one");
        producer_wait_peers(&p, 2);

        producer_op(&p, OP_PAUSE);
        cr_assert_eq(kill(pid, SIGKILL), 0);
        status = reap(pid);
        cr_assert(WIFSIGNALED(status), "the consumer child was not killed: 0x%x", status);
        reply = producer_op(&p, OP_PROCESS_ONCE);
        cr_assert_geq(reply.r, 0, "ev_value_server_process: %s", strerror(-reply.r));
        cr_assert_eq(reply.n, 1, "%" PRIu64 " peers after the next process, expected 1", reply.n);

        /* The other peer was not disturbed. */
        producer_op(&p, OP_RESUME);
        producer_set_string(&p, "two");
        wait_string_or_fail(w, MUST_COME_MS, -1, 2, "two");
        close(ready[0]);
        close(hold[1]);
        producer_exit(&p);
}

/* ================================================= remote set */

/* Asserts that ev_value_remote_set_flags answers expected (1: set, 0: skipped). */
static void remote_set_flags_gives(const char *path, const void *data, size_t size,
                                   unsigned flags, int expected) {
        int r = ev_value_remote_set_flags(path, data, size, flags, MUST_COME_MS);

        cr_assert_eq(r, expected, "ev_value_remote_set_flags of %zu bytes, flags 0x%x: %d (%s), "
                     "expected %d", size, flags, r, r < 0 ? strerror(-r) : "no error", expected);
}

/* Asserts that a skipped remote set left the producer at version and woke
 * no watcher.  The peek is answered after the process call that answered
 * the set returned: whatever that call sent w is in w's socket by then. */
static void assert_skipped(struct producer *p, ev_value_watcher *w, uint64_t version) {
        struct reply peek = producer_peek(p);

        cr_assert_eq(peek.version, version, "a skipped set moved the version to %" PRIu64
                     ", expected %" PRIu64, peek.version, version);
        assert_nothing_new(w);
}

Test(ipc_remote_set, sets_and_a_watcher_sees_it, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char path[128];
        struct producer p;
        struct reply peek;
        int r;

        PATH_IN_DIR(path, "remote-set");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "local");
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "local");

        r = ev_value_remote_set(path, "remote", sizeof("remote"), MUST_COME_MS);
        cr_assert_eq(r, 0, "ev_value_remote_set: %s", strerror(-r));
        /* The server answers from its process call, whose end publishes
         * the set: the state may reach the watcher just after the answer. */
        cr_assert(fd_readable_within(ev_watcher_get_fd(w), MUST_COME_MS));
        get_string_or_fail(w, 2, "remote");
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 2);
        cr_assert_str_eq(peek.data, "remote");
        r = ev_value_remote_set(path, "again", sizeof("again"), -1);
        cr_assert_eq(r, 0, "ev_value_remote_set, no time limit: %s", strerror(-r));
        wait_string_or_fail(w, MUST_COME_MS, -1, 3, "again");
        /* The setters are gone. */
        producer_wait_peers(&p, 1);
        producer_exit(&p);
}

Test(ipc_remote_set, two_mebibytes_cross_exactly, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;
        size_t size = 2u << 20;
        uint8_t *data = malloc(size);
        char path[128];
        struct producer p;
        struct reply peek;
        int r;

        cr_assert_not_null(data);
        fill_pattern(data, size, 0x2a);
        PATH_IN_DIR(path, "remote-big");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        r = ev_value_remote_set(path, data, size, MUST_COME_MS);
        cr_assert_eq(r, 0, "ev_value_remote_set of 2 MiB: %s", strerror(-r));
        s = wait_or_fail(w);
        assert_snapshot_is_pattern(s, 1, size, 0x2a);
        peek = producer_peek(&p);
        cr_assert_eq(peek.size, size);
        cr_assert_eq(peek.hash, hash_bytes(data, size), "the producer holds other bytes");
        free(data);
        producer_exit(&p);
}

Test(ipc_remote_set, refused_without_allow_set, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char path[128];
        struct producer p;
        struct reply peek;
        int r;

        PATH_IN_DIR(path, "remote-refused");
        p = producer_start(path, 0);
        producer_set_string(&p, "kept");
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "kept");
        r = ev_value_remote_set(path, "refused", sizeof("refused"), MUST_COME_MS);
        cr_assert_eq(r, -EPERM, "a remote set without EV_VALUE_SERVE_ALLOW_SET: %d (%s)", r,
                     strerror(-r));
        /* The policy comes first, even for a set that would be skipped. */
        remote_set_flags_gives(path, "kept", sizeof("kept"), EV_VALUE_SET_IF_CHANGED, -EPERM);
        remote_set_flags_gives(path, "refused", sizeof("refused"), EV_VALUE_SET_IF_CHANGED,
                               -EPERM);
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 1, "the refused set changed the version");
        cr_assert_str_eq(peek.data, "kept");
        assert_nothing_new(w);
        producer_exit(&p);
}

Test(ipc_remote_set, closed_value_gives_epipe, .timeout = 60) {
        char path[128];
        struct producer p;
        struct reply peek;
        int r;

        PATH_IN_DIR(path, "remote-closed");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "final");
        producer_close(&p);
        r = ev_value_remote_set(path, "late", sizeof("late"), MUST_COME_MS);
        cr_assert_eq(r, -EPIPE, "a remote set of a closed value: %d (%s)", r, strerror(-r));
        /* Closed is closed, even for the final bytes. */
        remote_set_flags_gives(path, "final", sizeof("final"), EV_VALUE_SET_IF_CHANGED, -EPIPE);
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 1);
        cr_assert_str_eq(peek.data, "final");
        producer_exit(&p);
}

Test(ipc_remote_set, size_limit_is_64_mib, .timeout = 120) {
        size_t map_size = REMOTE_SET_MAX + 4096;
        /* Never written: the kernel's zero page, no memory committed. */
        void *zeros = mmap(NULL, map_size, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                           -1, 0);
        char path[128];
        struct producer p;
        struct reply peek;
        int r;

        cr_assert_neq(zeros, MAP_FAILED, "mmap: %s", strerror(errno));
        PATH_IN_DIR(path, "remote-limit");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "small");
        r = ev_value_remote_set(path, zeros, REMOTE_SET_MAX + 1, MUST_COME_MS);
        cr_assert_eq(r, -EMSGSIZE, "a remote set of 64 MiB + 1: %d (%s)", r, strerror(-r));
        r = ev_value_remote_set(path, zeros, map_size, MUST_COME_MS);
        cr_assert_eq(r, -EMSGSIZE, "a remote set of 64 MiB + 4 KiB: %d (%s)", r, strerror(-r));
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 1);
        cr_assert_str_eq(peek.data, "small");

        /* The limit itself is accepted. */
        r = ev_value_remote_set(path, zeros, REMOTE_SET_MAX, MUST_COME_MS);
        cr_assert_eq(r, 0, "a remote set of exactly 64 MiB: %s", strerror(-r));
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 2);
        cr_assert_eq(peek.size, REMOTE_SET_MAX);
        producer_exit(&p);
        munmap(zeros, map_size);
}

Test(ipc_remote_set, times_out_when_the_producer_never_processes, .timeout = 60) {
        char path[128];
        struct producer p;
        int64_t start, elapsed;
        int r;

        PATH_IN_DIR(path, "remote-timeout");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_op(&p, OP_PAUSE);
        start = now_us();
        r = ev_value_remote_set(path, "late", sizeof("late"), 300);
        elapsed = now_us() - start;
        cr_assert_eq(r, -ETIMEDOUT, "a remote set nobody answers: %d (%s)", r, strerror(-r));
        cr_assert_geq(elapsed, 300000, "timed out after %lld us, before 300 ms", (long long)elapsed);
        r = ev_value_remote_set(path, "now", sizeof("now"), 0);
        cr_assert_eq(r, -ETIMEDOUT, "a remote set with timeout 0 nobody answers: %d (%s)", r,
                     strerror(-r));
        producer_op(&p, OP_RESUME);
        producer_exit(&p);
}

Test(ipc_remote_set, if_changed_skips_equal_bytes_and_wakes_no_watcher, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        ev_value_snapshot *s;
        char path[128];
        struct producer p;
        struct reply peek;

        PATH_IN_DIR(path, "remote-if-changed");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "same");
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "same");

        remote_set_flags_gives(path, "same", sizeof("same"), EV_VALUE_SET_IF_CHANGED, 0);
        assert_skipped(&p, w, 1);
        /* The same bytes but fewer of them are other bytes. */
        remote_set_flags_gives(path, "same", strlen("same"), EV_VALUE_SET_IF_CHANGED, 1);
        s = wait_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 2);
        cr_assert_eq(ev_snapshot_size(s), strlen("same"));
        ev_snapshot_unref(s);
        /* The next version is 3: the skipped set made none. */
        remote_set_flags_gives(path, "other", sizeof("other"), EV_VALUE_SET_IF_CHANGED, 1);
        wait_string_or_fail(w, MUST_COME_MS, -1, 3, "other");
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 3);
        cr_assert_str_eq(peek.data, "other");
        remote_set_flags_gives(path, "other", sizeof("other"), EV_VALUE_SET_IF_CHANGED, 0);
        assert_skipped(&p, w, 3);
        producer_exit(&p);
}

Test(ipc_remote_set, if_changed_sets_a_value_never_set, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;
        char path[128];
        struct producer p;

        PATH_IN_DIR(path, "remote-if-changed-first");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);
        assert_nothing_new(w);

        /* No snapshot to compare with: the set is made, and answered. */
        remote_set_flags_gives(path, "first", sizeof("first"), EV_VALUE_SET_IF_CHANGED, 1);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "first");
        remote_set_flags_gives(path, "first", sizeof("first"), EV_VALUE_SET_IF_CHANGED, 0);
        assert_skipped(&p, w, 1);
        /* Empty data is compared as well. */
        remote_set_flags_gives(path, NULL, 0, EV_VALUE_SET_IF_CHANGED, 1);
        s = wait_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 2);
        cr_assert_eq(ev_snapshot_size(s), 0);
        remote_set_flags_gives(path, NULL, 0, EV_VALUE_SET_IF_CHANGED, 0);
        assert_skipped(&p, w, 2);
        producer_exit(&p);
}

Test(ipc_remote_set, if_changed_compares_data_in_a_memfd, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        size_t size = 64u << 10; /* above EV__IPC_INLINE_MAX: sent in a memfd */
        uint8_t *a = malloc(size), *b = malloc(size);
        ev_value_snapshot *s;
        char path[128];
        struct producer p;
        struct reply peek;

        cr_assert_not_null(a);
        cr_assert_not_null(b);
        fill_pattern(a, size, 0x5eed);
        memcpy(b, a, size);
        b[size - 1] ^= 0xff; /* only the last byte differs */
        PATH_IN_DIR(path, "remote-if-changed-big");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        w = connect_or_fail(path, 0);
        producer_wait_peers(&p, 1);

        /* Without the flag: adopted as sent. */
        remote_set_flags_gives(path, a, size, 0, 1);
        s = wait_or_fail(w);
        assert_snapshot_is_pattern(s, 1, size, 0x5eed);
        ev_snapshot_unref(s);
        remote_set_flags_gives(path, a, size, EV_VALUE_SET_IF_CHANGED, 0);
        assert_skipped(&p, w, 1);

        remote_set_flags_gives(path, b, size, EV_VALUE_SET_IF_CHANGED, 1);
        s = wait_or_fail(w);
        cr_assert_eq(ev_snapshot_version(s), 2);
        cr_assert_eq(ev_snapshot_size(s), size);
        cr_assert_eq(memcmp(ev_snapshot_data(s), b, size), 0, "the watcher got other bytes");
        ev_snapshot_unref(s);
        peek = producer_peek(&p);
        cr_assert_eq(peek.size, size);
        cr_assert_eq(peek.hash, hash_bytes(b, size), "the producer holds other bytes");
        remote_set_flags_gives(path, b, size, EV_VALUE_SET_IF_CHANGED, 0);
        assert_skipped(&p, w, 2);
        free(a);
        free(b);
        producer_exit(&p);
}

Test(ipc_remote_set, without_flags_every_set_makes_a_version, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = NULL;
        char path[128];
        struct producer p;
        int r;

        PATH_IN_DIR(path, "remote-no-flags");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "same");
        w = connect_or_fail(path, 0);
        wait_string_or_fail(w, MUST_COME_MS, -1, 1, "same");
        remote_set_flags_gives(path, "same", sizeof("same"), 0, 1);
        wait_string_or_fail(w, MUST_COME_MS, -1, 2, "same");
        remote_set_flags_gives(path, "same", sizeof("same"), 0, 1);
        wait_string_or_fail(w, MUST_COME_MS, -1, 3, "same");
        /* ev_value_remote_set keeps its contract: 0, not 1. */
        r = ev_value_remote_set(path, "same", sizeof("same"), MUST_COME_MS);
        cr_assert_eq(r, 0, "ev_value_remote_set: %d (%s)", r, r < 0 ? strerror(-r) : "");
        wait_string_or_fail(w, MUST_COME_MS, -1, 4, "same");
        producer_exit(&p);
}

/* The child of the other-uid test: what it got, for the parent to assert. */
struct other_uid_report {
        int step;      /* 0 when every call could be made */
        int errno_;    /* of the failed step */
        int set_r;     /* ev_value_remote_set */
        int connect_r; /* ev_value_connect */
        int wait_r;    /* ev_watcher_wait */
        char seen[32]; /* what the watch got */
};

Test(ipc_remote_set, another_uid_gets_eperm_but_may_watch, .timeout = 60) {
        struct other_uid_report report = { 0 };
        struct passwd *pw;
        uid_t uid;
        gid_t gid;
        int fds[2];
        char path[128];
        struct producer p;
        struct reply peek;
        pid_t pid;

        if (geteuid() != 0)
                cr_skip_test("not root: a process of another uid is made with setuid, which "
                             "needs root (CI runs this test as root)");
        pw = getpwnam("evvalue-test");
        if (!pw)
                cr_skip_test("no user evvalue-test to set from (CI creates it: useradd --system "
                             "--no-create-home evvalue-test)");
        uid = pw->pw_uid;
        gid = pw->pw_gid;
        cr_assert_neq(uid, 0, "evvalue-test is uid 0");

        PATH_IN_DIR(path, "remote-uid");
        p = producer_start(path, EV_VALUE_SERVE_ALLOW_SET);
        producer_set_string(&p, "owner");
        cr_assert_eq(pipe2(fds, O_CLOEXEC), 0);
        pid = fork_or_fail();
        if (pid == 0) {
                ev_value_watcher *w = NULL;
                ev_value_snapshot *s = NULL;

                close(p.ctl);
                close(fds[0]);
                if (setgroups(0, NULL) < 0)
                        report.step = 1;
                else if (setgid(gid) < 0)
                        report.step = 2;
                else if (setuid(uid) < 0)
                        report.step = 3;
                else if (geteuid() != uid)
                        report.step = 4;
                if (report.step) {
                        report.errno_ = errno;
                } else {
                        report.set_r = ev_value_remote_set(path, "intruder", sizeof("intruder"),
                                                           MUST_COME_MS);
                        report.connect_r = ev_value_connect(path, 0, &w);
                        if (report.connect_r == 0) {
                                report.wait_r = ev_watcher_wait(w, MUST_COME_MS, -1, &s);
                                if (report.wait_r == 0)
                                        snprintf(report.seen, sizeof(report.seen), "%.*s",
                                                 (int)ev_snapshot_size(s),
                                                 (const char *)ev_snapshot_data(s));
                                ev_snapshot_unref(s);
                                ev_watcher_close(w);
                        }
                }
                if (write(fds[1], &report, sizeof(report)) != (ssize_t)sizeof(report))
                        _exit(2);
                _exit(0);
        }
        close(fds[1]);
        cr_assert(fd_readable_within(fds[0], 2 * MUST_COME_MS + 5000));
        cr_assert_eq(read(fds[0], &report, sizeof(report)), (ssize_t)sizeof(report));
        close(fds[0]);
        child_exits_with(pid, 0, "the child of another uid");
        cr_assert_eq(report.step, 0, "the child could not become uid %u (step %d): %s",
                     (unsigned)uid, report.step, strerror(report.errno_));
        cr_assert_eq(report.set_r, -EPERM, "a remote set from uid %u: %d (%s), expected -EPERM",
                     (unsigned)uid, report.set_r, strerror(-report.set_r));
        peek = producer_peek(&p);
        cr_assert_eq(peek.version, 1, "the refused set changed the version");
        cr_assert_str_eq(peek.data, "owner");
        /* Watching is decided by the directory and the socket's mode 0666. */
        cr_assert_eq(report.connect_r, 0, "ev_value_connect from uid %u: %s", (unsigned)uid,
                     strerror(-report.connect_r));
        cr_assert_eq(report.wait_r, 0, "a wait from uid %u: %s", (unsigned)uid,
                     strerror(-report.wait_r));
        cr_assert_str_eq(report.seen, "owner");
        producer_exit(&p);
}

/* ================================================= socket activation */

Test(ipc, socket_activation_and_a_restarted_service, .timeout = 60) {
        _cleanup_(ev_watcher_closep) ev_value_watcher *early = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *waiting = NULL;
        _cleanup_(closep) int listening = -1;
        struct sockaddr_un addr = { .sun_family = AF_UNIX };
        struct producer_config cfg = { .path = NULL, .flags = 0 };
        char path[128];
        struct producer p;

        /* What systemd does for a .socket unit: the socket listens before
         * the service runs. */
        PATH_IN_DIR(path, "activated");
        listening = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        cr_assert_geq(listening, 0);
        set_sun_path(&addr, path);
        cr_assert_eq(bind(listening, (struct sockaddr *)&addr, sizeof(addr)), 0);
        cr_assert_eq(listen(listening, SOMAXCONN), 0);
        cfg.listen_fd = listening;

        /* A consumer connects before the service exists. */
        early = connect_or_fail(path, 0);
        assert_nothing_new(early);

        p = producer_start_with(&cfg);
        producer_set_string(&p, "activated");
        wait_string_or_fail(early, MUST_COME_MS, -1, 1, "activated");
        /* The service stops: its server's free leaves the socket alone. */
        producer_exit(&p);
        assert_ended_with(early, -ECONNRESET);
        cr_assert_eq(access(path, F_OK), 0, "the server's free unlinked a socket it did not make");

        /* Between two runs a consumer connects and waits. */
        waiting = connect_or_fail(path, 0);
        assert_nothing_new(waiting);
        p = producer_start_with(&cfg);
        producer_set_string(&p, "restarted");
        wait_string_or_fail(waiting, MUST_COME_MS, -1, 1, "restarted");
        producer_exit(&p);
}

/* ================================================= connection churn */

/* How much the producer's and the consumer's resident memory may grow over
 * the cycles: what the allocator keeps, not a peer's worth per cycle
 * (10,000 leaked peers would be several megabytes). */
#define CYCLES_RSS_SLACK (512 * 1024)

Test(ipc, connect_close_cycles_leak_nothing, .timeout = 180) {
        unsigned cycles = scaled(10000, 300);
        uint64_t consumer_rss, producer_rss;
        int consumer_fds, producer_fds;
        struct reply reply;
        char path[128];
        struct producer p;
        ev_value_watcher *w;
        uint64_t version;

        PATH_IN_DIR(path, "cycles");
        p = producer_start(path, 0);
        /* Above the inline limit: every first state carries a memfd. */
        version = producer_set_pattern(&p, 8192, 9);
        /* Once before counting, so that what the first peer makes lazily is there. */
        w = connect_or_fail(path, 0);
        {
                ev_value_snapshot *s = wait_or_fail(w);

                assert_snapshot_is_pattern(s, version, 8192, 9);
                ev_snapshot_unref(s);
        }
        ev_watcher_close(w);
        producer_wait_peers(&p, 0);
        consumer_fds = count_open_fds();
        reply = producer_op(&p, OP_FD_COUNT);
        cr_assert_gt(reply.r, 0, "the producer could not count its fds");
        producer_fds = reply.r;
        reply = producer_op(&p, OP_RSS);
        producer_rss = reply.n;
        consumer_rss = resident_bytes();

        for (unsigned i = 0; i < cycles; i++) {
                w = connect_or_fail(path, i % 10 == 5 ? EV_VALUE_WATCH_SKIP_CURRENT : 0);
                if (i % 10 == 0) {
                        ev_value_snapshot *s = wait_or_fail(w);

                        assert_snapshot_is_pattern(s, version, 8192, 9);
                        ev_snapshot_unref(s);
                }
                ev_watcher_close(w);
                /* Bounded by the listen backlog. */
                if (i % 100 == 99)
                        producer_wait_peers(&p, 0);
        }
        producer_wait_peers(&p, 0);
        cr_assert_eq(count_open_fds(), consumer_fds, "the consumer has %d fds after %u cycles, "
                     "%d before", count_open_fds(), cycles, consumer_fds);
        reply = producer_op(&p, OP_FD_COUNT);
        cr_assert_eq(reply.r, producer_fds, "the producer has %d fds after %u cycles, %d before",
                     reply.r, cycles, producer_fds);
        /* Under valgrind (scaled counts) or ASan the resident memory is the
         * tool's, whose leak check says more. */
        if (cycles == 10000 && !UNDER_SANITIZER) {
                reply = producer_op(&p, OP_RSS);
                cr_assert_leq(reply.n, producer_rss + CYCLES_RSS_SLACK,
                              "the producer's RSS grew from %llu to %llu bytes",
                              (unsigned long long)producer_rss,
                              (unsigned long long)reply.n);
                cr_assert_leq(resident_bytes(), consumer_rss + CYCLES_RSS_SLACK,
                              "the consumer's RSS grew from %llu to %llu bytes",
                              (unsigned long long)consumer_rss, (unsigned long long)resident_bytes());
        }
        producer_exit(&p);
}
