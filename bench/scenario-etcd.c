/* SPDX-License-Identifier: MIT */
/*
 * Scenario "etcd": a value stored in etcd (ev-value-etcd.h), on a
 * one-member etcd cluster that the scenario starts on 127.0.0.1 with the
 * test harness (tests/etcd-cluster.h), each cost against a baseline in the
 * same run, interleaved round by round.  Without etcd the scenario is
 * skipped and says why.  Rows:
 *   put to watcher  from just before a put (ev_value_etcd_put of a second
 *               object, on a thread of its own) to the watcher of an
 *               ev_value_etcd, driven by this thread's poll loop, returning
 *               the new value; baseline: `etcdctl watch` (etcd's own Go
 *               gRPC client) in a child process printing the same put on a
 *               pipe polled by the same loop.  Both watch every put; in a
 *               wake that has both, who is served first alternates round by
 *               round.  Target 1.0: no slower than etcd's own client.  The
 *               p90s and the put call's own time are in the note.
 *   get no change  a watcher of the etcd value's first get with nothing
 *               new, after a get that returned a snapshot, against a local
 *               watcher's (no target: both are watchers of an ev_value),
 *               and its system calls, counted with the seccomp trap of
 *               common/syscall-trap.h (target none, as in "ipc").
 *   consumer cost  what following the value costs the consumer: the CPU
 *               time of the thread running the loop (CLOCK_THREAD_CPUTIME_ID:
 *               poll, ev_value_etcd_process, which parses the watch stream,
 *               and the get) per update seen, puts paced at a fixed period
 *               by another thread; baseline: a local watcher in the same
 *               loop, fed by ev_value_set from another thread at the same
 *               period.  Batches of each alternate.  A second row gives the
 *               consumer's sleeps (voluntary context switches) per 1000
 *               updates.  System calls per update are not counted: the
 *               seccomp trap fakes every call, and the loop needs real
 *               ones; /proc/thread-self/io misses curl's recv and send.
 * Threads float (no pinning): etcd, etcdctl and the benchmark share the
 * machine's CPUs, as they would in use.  The cluster keeps its data where
 * $TMPDIR says, so each put includes etcd's fsync of its log there.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ev-value-etcd.h>

#include "bench.h"
#include "etcd-cluster.h"
#include "syscall-trap.h"

#define ETCD_WAIT_MS 5000          /* a put or a wake longer than this is an error */
#define ETCD_WARMUP_MS 20000       /* for etcdctl watch and the first read to be up */
#define ETCD_WARMUP_ROUND_MS 1000  /* a warm-up round that did not reach both */
#define ETCD_WARMUP_GOOD 5         /* warm-up rounds in a row that reached both */
#define ETCD_SEQ_MAX 24            /* the decimal text of an update number */
#define COST_CHECK_NS 200000000u   /* the longest a consumer sleeps in "consumer cost" */

extern char **environ;

static const char *etcd_placement;

static void report(const char *variant, const char *mechanism, const char *unit,
                   struct bench_samples *mech, const char *baseline, struct bench_samples *base,
                   enum bench_compare compare, double target, const char *note) {
        struct bench_row row = {
                .scenario = "etcd",
                .variant = variant,
                .placement = etcd_placement,
                .mechanism = mechanism,
                .unit = unit,
                .baseline = baseline,
                .compare = compare,
                .target = target,
                .note = note,
        };

        bench_row_stats(&row, mech, base);
        bench_report(&row);
}

static void report_error(const char *variant, const char *mechanism, const char *what, int r) {
        bench_report_error("etcd", variant, etcd_placement, mechanism, what,
                           r == -ETIMEDOUT ? "no answer in time" : strerror(-r));
}

/* ---- what every part shares ---- */

/* The values are update numbers as decimal text, which etcdctl prints as
 * they are; 0 is the absent key. */
static size_t seq_text(char *buf, uint64_t seq) {
        return (size_t)snprintf(buf, ETCD_SEQ_MAX, "%llu", (unsigned long long)seq);
}

static int seq_parse(const char *p, size_t size, uint64_t *ret) {
        uint64_t v = 0;

        if (size == 0 || size >= ETCD_SEQ_MAX)
                return -EPROTO;
        for (size_t i = 0; i < size; i++) {
                if (p[i] < '0' || p[i] > '9')
                        return -EPROTO;
                v = v * 10 + (uint64_t)(p[i] - '0');
        }
        *ret = v;
        return 0;
}

/* The update number a snapshot holds (0 for the absent key); releases
 * the snapshot. */
static int snap_seq(ev_value_snapshot *s, uint64_t *ret) {
        int r = 0;

        if (ev_snapshot_is_absent(s))
                *ret = 0;
        else
                r = seq_parse(ev_snapshot_data(s), ev_snapshot_size(s), ret);
        ev_snapshot_unref(s);
        return r;
}

/* Take every snapshot w has, the newest number into *seq (which only
 * goes up); how many were taken, or a negative errno. */
static int take_all(ev_value_watcher *w, uint64_t *seq) {
        int n = 0;

        for (;;) {
                ev_value_snapshot *s;
                uint64_t v;
                int r = ev_watcher_get(w, &s);

                if (r == -EAGAIN)
                        return n;
                if (r >= 0)
                        r = snap_seq(s, &v);
                if (r < 0)
                        return r;
                if (v > *seq)
                        *seq = v;
                n++;
        }
}

/* One wait of an ev_value_etcd's loop, as a program's own loop does it:
 * poll e's fd (pfd[0], filled in here) and the others of pfd until the
 * earliest of deadline_ns and e's timer.  0 after a wake or the timer,
 * with *ret_due saying whether e is to be processed; -ETIMEDOUT when
 * deadline_ns has passed; or a negative errno. */
static int etcd_poll(ev_value_etcd *e, struct pollfd *pfd, nfds_t n, uint64_t deadline_ns,
                     bool *ret_due) {
        uint64_t now = bench_now_ns(), until = deadline_ns, at;
        int r = ev_value_etcd_get_timeout(e, &at);

        *ret_due = false;
        if (r < 0)
                return r;
        if (now >= deadline_ns)
                return -ETIMEDOUT;
        if (at != UINT64_MAX && at * 1000 < until)
                until = at * 1000;
        pfd[0] = (struct pollfd){ .fd = ev_value_etcd_get_fd(e), .events = POLLIN };
        if (pfd[0].fd < 0)
                return pfd[0].fd;
        r = poll(pfd, n, until <= now ? 0 : (int)((until - now + 999999) / 1000000));
        if (r < 0)
                return errno == EINTR ? 0 : -errno;
        *ret_due = pfd[0].revents || (at != UINT64_MAX && bench_now_ns() / 1000 >= at);
        return 0;
}

/* Drive e until w has an update numbered at least seq, at most
 * timeout_ms. */
static int etcd_wait_seq(ev_value_etcd *e, ev_value_watcher *w, uint64_t seq, int timeout_ms) {
        uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u, got = 0;

        for (;;) {
                struct pollfd pfd[2] = { [1] = { .fd = ev_watcher_get_fd(w), .events = POLLIN } };
                bool due;
                int r = take_all(w, &got);

                if (r < 0)
                        return r;
                if (got >= seq)
                        return 0;
                r = etcd_poll(e, pfd, 2, deadline, &due);
                if (r >= 0 && due)
                        r = ev_value_etcd_process(e);
                if (r < 0)
                        return r;
        }
}

static int etcd_put_seq(ev_value_etcd *writer, uint64_t seq) {
        char text[ETCD_SEQ_MAX];

        return ev_value_etcd_put(writer, text, seq_text(text, seq), ETCD_WAIT_MS);
}

static int local_set_seq(ev_value *v, uint64_t seq) {
        char text[ETCD_SEQ_MAX];

        return ev_value_set(v, text, seq_text(text, seq));
}

/* ---- put to watcher: the library's watcher against etcdctl watch ---- */

/* etcdctl watch KEY as a child, its stdout a pipe we read. */
struct ctl_watch {
        pid_t pid;
        int fd;                        /* the pipe, non-blocking */
        char buf[4096];
        size_t len;
        int state;                     /* 0: an event's type, 1: its key, 2: its value */
        uint64_t seq;                  /* the newest number printed */
};

/* $ETCDCTL if set (a path, or a name looked up in PATH), else etcdctl in
 * PATH, as the harness finds it; malloc'd. */
static char *find_etcdctl(void) {
        const char *name = getenv("ETCDCTL"), *path = getenv("PATH");

        if (!name || !*name)
                name = "etcdctl";
        if (strchr(name, '/'))
                return access(name, X_OK) == 0 ? strdup(name) : NULL;
        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        for (const char *p = path;; p++) {
                const char *end = strchrnul(p, ':');
                int len = (int)(end - p);
                char *cand;

                if (asprintf(&cand, "%.*s/%s", len > 0 ? len : 1, len > 0 ? p : ".", name) < 0)
                        return NULL;
                if (access(cand, X_OK) == 0)
                        return cand;
                free(cand);
                p = end;
                if (!*p)
                        return NULL;
        }
}

/* Start etcdctl watch on key at the member url, its stderr to log_path.
 * Between fork and exec only async-signal-safe calls. */
static int ctl_start(struct ctl_watch *cw, const char *url, const char *key,
                     const char *log_path) {
        char *prog = find_etcdctl(), *endpoints = NULL, **env = NULL;
        int out[2] = { -1, -1 }, in = -1, log = -1, r = 0;
        size_t n = 0, k = 0;
        pid_t parent = getpid();

        cw->pid = 0;
        cw->fd = -1;
        while (environ && environ[n])
                n++;
        env = calloc(n + 2, sizeof(*env));
        if (!prog || !env || asprintf(&endpoints, "--endpoints=%s", url) < 0) {
                endpoints = NULL;
                r = prog ? -ENOMEM : -ENOENT;
                goto out;
        }
        /* etcdctl refuses an ETCDCTL_* variable that shadows a flag. */
        for (size_t i = 0; i < n; i++)
                if (strncmp(environ[i], "ETCDCTL_", 8) != 0)
                        env[k++] = environ[i];
        env[k++] = (char *)"ETCDCTL_API=3";
        in = open("/dev/null", O_RDONLY | O_CLOEXEC);
        log = open(log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (in < 0 || log < 0 || pipe2(out, O_CLOEXEC) < 0) {
                r = -errno;
                goto out;
        }
        if (in <= 2 || log <= 2 || out[0] <= 2 || out[1] <= 2) {
                r = -EBADF; /* a closed stdio: dup2 below could clobber our own fds */
                goto out;
        }
        cw->pid = fork();
        if (cw->pid < 0) {
                r = -errno;
                cw->pid = 0;
                goto out;
        }
        if (cw->pid == 0) {
                char *argv[] = { prog, endpoints, (char *)"watch", (char *)key, NULL };
                sigset_t all;

                /* A benchmark that dies takes its etcdctl with it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                if (dup2(in, 0) < 0 || dup2(out[1], 1) < 0 || dup2(log, 2) < 0)
                        _exit(127);
                sigfillset(&all);
                sigprocmask(SIG_UNBLOCK, &all, NULL);
                /* Not our sockets and eventfds, which need not be
                 * close-on-exec (curl's may not be). */
#ifdef SYS_close_range
                if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
#endif
                        for (int fd = 3; fd < 1024; fd++)
                                close(fd);
                execve(prog, argv, env);
                _exit(127);
        }
        cw->fd = out[0];
        out[0] = -1;
        if (fcntl(cw->fd, F_SETFL, O_NONBLOCK) < 0)
                r = -errno;
out:
        for (int i = 0; i < 2; i++)
                if (out[i] >= 0)
                        close(out[i]);
        if (in >= 0)
                close(in);
        if (log >= 0)
                close(log);
        free(endpoints);
        free(env);
        free(prog);
        return r;
}

static void ctl_stop(struct ctl_watch *cw) {
        if (cw->fd >= 0)
                close(cw->fd);
        cw->fd = -1;
        if (cw->pid > 0) {
                kill(cw->pid, SIGKILL);
                while (waitpid(cw->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        cw->pid = 0;
}

/* Read what etcdctl printed: each put is three lines, "PUT", the key and
 * the value (etcdctl 3.4's simple format).  0, or -EPIPE when it exited. */
static int ctl_read(struct ctl_watch *cw) {
        for (;;) {
                ssize_t n = read(cw->fd, cw->buf + cw->len, sizeof(cw->buf) - cw->len);
                char *line = cw->buf, *nl;

                if (n < 0)
                        return errno == EAGAIN ? 0 : errno == EINTR ? 0 : -errno;
                if (n == 0)
                        return -EPIPE;
                cw->len += (size_t)n;
                while ((nl = memchr(line, '\n', cw->len - (size_t)(line - cw->buf)))) {
                        size_t size = (size_t)(nl - line);
                        uint64_t v;

                        if (cw->state == 0)
                                cw->state = size == 3 && memcmp(line, "PUT", 3) == 0;
                        else if (cw->state == 1)
                                cw->state = 2;
                        else {
                                if (seq_parse(line, size, &v) == 0 && v > cw->seq)
                                        cw->seq = v;
                                cw->state = 0;
                        }
                        line = nl + 1;
                }
                cw->len -= (size_t)(line - cw->buf);
                memmove(cw->buf, line, cw->len);
                if (cw->len == sizeof(cw->buf))
                        return -EPROTO; /* a line longer than any we put */
        }
}

/* The last lines of a log, on stdout after a failure: the cluster's
 * directory goes with the cluster. */
static void print_tail(const char *path, const char *what) {
        char buf[1024], *line, *save;
        FILE *f = fopen(path, "r");
        size_t n;

        if (!f)
                return;
        if (fseek(f, 0, SEEK_END) == 0 && ftell(f) > (long)sizeof(buf) - 1)
                fseek(f, -(long)sizeof(buf) + 1, SEEK_END);
        else
                rewind(f);
        n = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[n] = '\0';
        printf("# etcd: the end of %s's log:\n", what);
        for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                printf("#   %s\n", line);
}

/* The thread that puts, told by go_fd what and answering on done_fd. */
struct putter {
        ev_value_etcd *writer;
        int go_fd, done_fd;            /* eventfds; done_fd non-blocking */
        _Atomic uint64_t seq;          /* what to put; 0: quit */
        _Atomic uint64_t t0, t1;       /* just before and just after the put call */
        _Atomic int result;
};

static void *putter_main(void *arg) {
        struct putter *p = arg;
        const uint64_t one = 1;

        for (;;) {
                uint64_t v, seq;
                int r;

                if (read(p->go_fd, &v, sizeof(v)) != sizeof(v)) {
                        if (errno == EINTR)
                                continue;
                        break;
                }
                seq = atomic_load(&p->seq);
                if (seq == 0)
                        break;
                atomic_store(&p->t0, bench_now_ns());
                r = etcd_put_seq(p->writer, seq);
                atomic_store(&p->t1, bench_now_ns());
                atomic_store(&p->result, r);
                (void)!write(p->done_fd, &one, sizeof(one));
        }
        return NULL;
}

struct lat_ctx {
        ev_value_etcd *e;
        ev_value_watcher *w;
        uint64_t lib_seq;              /* the newest number the watcher returned */
        struct ctl_watch ctl;
        struct putter put;
        uint64_t seq;
};

/* One put, waited for by both watchers: their latencies (ns from just
 * before the put call) and the put call's own time.  0; -ETIMEDOUT when
 * one of them missed it within timeout_ms (the put returned, though:
 * the next round may start); the put's error; or another error. */
static int lat_round(struct lat_ctx *c, int timeout_ms, double *ret_lib, double *ret_ctl,
                     double *ret_put) {
        const uint64_t one = 1, seq = ++c->seq;
        uint64_t t_lib = 0, t_ctl = 0, deadline = 0;
        bool lib = false, ctl = false, done = false;
        int r = 0;

        atomic_store(&c->put.seq, seq);
        if (write(c->put.go_fd, &one, sizeof(one)) != sizeof(one))
                return -errno;
        while (!done || !(lib && ctl)) {
                struct pollfd pfd[4] = {
                        [1] = { .fd = ev_watcher_get_fd(c->w), .events = POLLIN },
                        [2] = { .fd = c->ctl.fd, .events = POLLIN },
                        [3] = { .fd = c->put.done_fd, .events = POLLIN },
                };
                bool due;

                /* The put has a timeout of its own: wait for it in any
                 * case, then at most timeout_ms for the watchers. */
                r = etcd_poll(c->e, pfd, 4,
                              done ? deadline : bench_now_ns() + 2u * ETCD_WAIT_MS * 1000000u,
                              &due);
                if (r < 0)
                        break;
                /* Whoever has something is served, the first in turn. */
                for (int pass = 0; pass < 2 && r >= 0; pass++) {
                        if ((pass ^ (int)(seq & 1)) == 0) {
                                if (due)
                                        r = ev_value_etcd_process(c->e);
                                if (r >= 0)
                                        r = take_all(c->w, &c->lib_seq);
                                if (r >= 0 && !lib && c->lib_seq >= seq) {
                                        t_lib = bench_now_ns();
                                        lib = true;
                                }
                        } else if (pfd[2].revents) {
                                r = ctl_read(&c->ctl);
                                if (r >= 0 && !ctl && c->ctl.seq >= seq) {
                                        t_ctl = bench_now_ns();
                                        ctl = true;
                                }
                        }
                }
                if (r >= 0 && pfd[3].revents && !done) {
                        uint64_t v;

                        if (read(c->put.done_fd, &v, sizeof(v)) == sizeof(v)) {
                                done = true;
                                deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
                                r = atomic_load(&c->put.result);
                        }
                }
                if (r < 0)
                        break;
        }
        if (r >= 0 && (c->lib_seq > seq || c->ctl.seq > seq))
                r = -EPROTO; /* a number we never put */
        if (r < 0)
                return r;
        *ret_lib = (double)(t_lib - atomic_load(&c->put.t0));
        *ret_ctl = (double)(t_ctl - atomic_load(&c->put.t0));
        *ret_put = (double)(atomic_load(&c->put.t1) - atomic_load(&c->put.t0));
        return 0;
}

/* Until etcdctl watch is watching and the library has read the key, a
 * put may reach one and not the other: put until ETCD_WARMUP_GOOD rounds
 * in a row reached both. */
static int lat_warm_up(struct lat_ctx *c) {
        uint64_t deadline = bench_now_ns() + (uint64_t)ETCD_WARMUP_MS * 1000000u;
        int good = 0, r = 0;

        while (good < ETCD_WARMUP_GOOD) {
                double unused[3];

                if (bench_now_ns() >= deadline)
                        return r < 0 ? r : -ETIMEDOUT;
                r = lat_round(c, ETCD_WARMUP_ROUND_MS, &unused[0], &unused[1], &unused[2]);
                if (r < 0 && r != -ETIMEDOUT)
                        return r;
                good = r < 0 ? 0 : good + 1;
        }
        return 0;
}

/* The median put time measured, for the pace of "consumer cost"; 0 when
 * this part failed. */
static int lat_compare(struct etcd_cluster *cl, double *ret_put_median_ns) {
        static const char *const variant = "put to watcher", *const mech = "ev_value_etcd watcher";
        const char *url = etcd_cluster_member_url(cl, 0), *key = "/ev-value-bench/latency";
        struct lat_ctx c = { .ctl = { .fd = -1 }, .put = { .go_fd = -1, .done_fd = -1 } };
        struct bench_samples lib = { 0 }, ctl = { 0 }, put = { 0 };
        size_t rounds = bench_count(200, 20);
        bool started = false;
        pthread_t thread;
        char log_path[4096], note[480];
        int r;

        *ret_put_median_ns = 0;
        snprintf(log_path, sizeof(log_path), "%s/etcdctl-watch.log", etcd_cluster_dir(cl));
        r = ev_value_etcd_new(url, key, 0, &c.e);
        if (r >= 0)
                r = ev_value_etcd_new(url, key, 0, &c.put.writer);
        if (r >= 0)
                r = ev_value_etcd_watch(c.e, 0, &c.w);
        if (r >= 0) {
                c.put.go_fd = eventfd(0, EFD_CLOEXEC);
                c.put.done_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (c.put.go_fd < 0 || c.put.done_fd < 0)
                        r = -errno;
        }
        if (r >= 0)
                r = ctl_start(&c.ctl, url, key, log_path);
        if (r >= 0) {
                r = bench_thread_start(&thread, BENCH_ANY_CPU, putter_main, &c.put);
                started = r >= 0;
        }
        if (r < 0) {
                report_error(variant, mech, "setup", r);
                goto out;
        }
        r = lat_warm_up(&c);
        if (r < 0) {
                report_error(variant, mech, "warm-up (both watchers seeing a put)", r);
                printf("# etcd: etcdctl watch printed %llu last, the library's watcher %llu\n",
                       (unsigned long long)c.ctl.seq, (unsigned long long)c.lib_seq);
                print_tail(log_path, "etcdctl watch");
                goto out;
        }
        bench_samples_reserve(&lib, rounds);
        bench_samples_reserve(&ctl, rounds);
        bench_samples_reserve(&put, rounds);
        for (size_t i = 0; i < rounds && r >= 0; i++) {
                double t[3];

                r = lat_round(&c, ETCD_WAIT_MS, &t[0], &t[1], &t[2]);
                if (r >= 0) {
                        bench_samples_add(&lib, t[0] / 1000);
                        bench_samples_add(&ctl, t[1] / 1000);
                        bench_samples_add(&put, t[2] / 1000);
                }
        }
        if (r < 0) {
                report_error(variant, mech, "a put's wake", r);
                printf("# etcd: etcdctl watch printed %llu last, the library's watcher %llu, "
                       "the put was %llu\n",
                       (unsigned long long)c.ctl.seq, (unsigned long long)c.lib_seq,
                       (unsigned long long)c.seq);
                print_tail(log_path, "etcdctl watch");
                goto out;
        }
        snprintf(note, sizeof(note),
                 "from just before ev_value_etcd_put (other thread, other object) to the "
                 "watcher's get returning the value / etcdctl (ETCDCTL_API=3, gRPC) printing it; "
                 "%zu puts seen by both, 1-member etcd on 127.0.0.1; p90 %.0f vs %.0f us; "
                 "the put call itself: median %.0f, p90 %.0f us",
                 lib.n, bench_samples_quantile(&lib, 0.9), bench_samples_quantile(&ctl, 0.9),
                 bench_samples_quantile(&put, 0.5), bench_samples_quantile(&put, 0.9));
        report(variant, mech, "us", &lib, "etcdctl watch", &ctl, BENCH_MEDIAN_RATIO, 1.0, note);
        *ret_put_median_ns = bench_samples_quantile(&put, 0.5) * 1000;
out:
        if (started) {
                const uint64_t one = 1;

                atomic_store(&c.put.seq, 0);
                (void)!write(c.put.go_fd, &one, sizeof(one));
                pthread_join(thread, NULL);
        }
        ctl_stop(&c.ctl);
        ev_watcher_close(c.w);
        ev_value_etcd_free(c.e);
        ev_value_etcd_free(c.put.writer);
        if (c.put.go_fd >= 0)
                close(c.put.go_fd);
        if (c.put.done_fd >= 0)
                close(c.put.done_fd);
        bench_samples_free(&lib);
        bench_samples_free(&ctl);
        bench_samples_free(&put);
        return r < 0 ? -1 : 0;
}

/* ---- get no change: an etcd watcher against a local one ---- */

struct get_ctx {
        ev_value_etcd *e, *writer;     /* [0]: the etcd value */
        ev_value *local;               /* [1] */
        ev_value_watcher **w[2];
        size_t n;
        uint64_t round;
        size_t unexpected;             /* gets that did not return -EAGAIN */
        int error;
};

/* Write the next round to value k and take it on every watcher of k: the
 * next get of each is the first with nothing new. */
static int get_rearm(struct get_ctx *c, int k) {
        uint64_t seq = ++c->round;
        int r = k == 0 ? etcd_put_seq(c->writer, seq) : local_set_seq(c->local, seq);

        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                uint64_t got = 0;

                r = k == 0 ? etcd_wait_seq(c->e, c->w[k][i], seq, ETCD_WAIT_MS)
                           : take_all(c->w[k][i], &got);
                if (r >= 0 && k == 1 && got != seq)
                        r = -EPROTO;
        }
        return r < 0 ? r : 0;
}

static void get_all(struct get_ctx *c, int k) {
        for (size_t i = 0; i < c->n; i++) {
                ev_value_snapshot *s;
                int r = ev_watcher_get(c->w[k][i], &s);

                if (r != -EAGAIN)
                        c->unexpected++;
                if (r >= 0)
                        ev_snapshot_unref(s);
        }
}

static double get_measure(struct get_ctx *c, int k) {
        uint64_t t0;

        if (c->error)
                return NAN;
        c->error = get_rearm(c, k);
        if (c->error)
                return NAN;
        t0 = bench_now_ns();
        get_all(c, k);
        return (double)(bench_now_ns() - t0) / (double)c->n;
}

static double get_measure_etcd(void *arg) {
        return get_measure(arg, 0);
}

static double get_measure_local(void *arg) {
        return get_measure(arg, 1);
}

static void get_all_etcd(void *arg) {
        get_all(arg, 0);
}

static void get_all_local(void *arg) {
        get_all(arg, 1);
}

static int get_setup(struct get_ctx *c, const char *url) {
        const char *key = "/ev-value-bench/get";
        int r = bench_raise_nofile(2 * c->n + 256);

        if (r >= 0)
                r = ev_value_etcd_new(url, key, 0, &c->e);
        if (r >= 0)
                r = ev_value_etcd_new(url, key, 0, &c->writer);
        if (r >= 0)
                r = ev_value_new(&c->local);
        for (int k = 0; r >= 0 && k < 2; k++) {
                c->w[k] = calloc(c->n, sizeof(*c->w[k]));
                if (!c->w[k])
                        r = -ENOMEM;
        }
        for (size_t i = 0; r >= 0 && i < c->n; i++) {
                r = ev_value_etcd_watch(c->e, 0, &c->w[0][i]);
                if (r >= 0)
                        r = ev_value_watch(c->local, 0, &c->w[1][i]);
        }
        for (int k = 0; r >= 0 && k < 2; k++)
                r = get_rearm(c, k);
        return r < 0 ? r : 0;
}

static void get_teardown(struct get_ctx *c) {
        for (int k = 0; k < 2; k++) {
                for (size_t i = 0; c->w[k] && i < c->n; i++)
                        ev_watcher_close(c->w[k][i]);
                free(c->w[k]);
        }
        ev_value_etcd_free(c->e);
        ev_value_etcd_free(c->writer);
        ev_value_unref(c->local);
}

/* Count the system calls of the first get with nothing new on every
 * watcher of k, runs times (each after a rearm), as scenario-ipc.c does:
 * samples of calls per get into *ret, the total in *ret_total.  Stops
 * after a run that made any (the trap faked their results). */
static int get_count(struct get_ctx *c, int k, size_t runs, struct bench_samples *ret,
                     size_t *ret_total, long *ret_first) {
        *ret_total = 0;
        for (size_t i = 0; i < runs && *ret_total == 0; i++) {
                struct trapped_call first = { .nr = -1 };
                size_t count = 0;
                int r = get_rearm(c, k);

                if (r >= 0)
                        r = syscall_trap_run(k == 0 ? get_all_etcd : get_all_local, c, &first,
                                             1, &count);
                if (r < 0)
                        return r;
                bench_samples_add(ret, (double)count / (double)c->n);
                *ret_total += count;
                if (count)
                        *ret_first = first.nr;
        }
        return 0;
}

static int get_compare(struct etcd_cluster *cl) {
        static const char *const variant = "get no change";
        struct get_ctx c = { .n = bench_count(256, 32) };
        struct bench_samples t[2] = { { 0 } }, calls[2] = { { 0 } };
        const char *why = syscall_trap_unsupported();
        size_t total[2] = { 0 }, runs = bench_count(10, 2);
        long first = -1;
        char note[320];
        int r, status = 0;

        r = get_setup(&c, etcd_cluster_member_url(cl, 0));
        if (r < 0) {
                report_error(variant, "etcd get -EAGAIN", "setup", r);
                get_teardown(&c);
                return -1;
        }
        bench_interleave(bench_count(200, 10), get_measure_etcd, &c, &t[0], get_measure_local,
                         &c, &t[1]);
        if (c.error) {
                report_error(variant, "etcd get -EAGAIN", "rearm", c.error);
                get_teardown(&c);
                return -1;
        }
        /* Counted last: a system call under the trap is faked and may
         * leave the watchers broken. */
        if (!why) {
                r = get_count(&c, 1, runs, &calls[1], &total[1], &first);
                if (r >= 0)
                        r = get_count(&c, 0, runs, &calls[0], &total[0], &first);
                if (r < 0) {
                        why = "the seccomp trap failed";
                        if (r != -ENOTSUP && r != -EPERM && r != -EINVAL) {
                                report_error(variant, "etcd get -EAGAIN syscalls", "count", r);
                                status = -1;
                        }
                }
        }
        if (why)
                snprintf(note, sizeof(note), "syscalls not counted: %s", why);
        else if (total[0])
                snprintf(note, sizeof(note),
                         "%zu syscalls in %zu first etcd-watcher gets after a snapshot "
                         "(seccomp, %zu watchers), EXPECTED 0; the first: number %ld",
                         total[0], calls[0].n * c.n, c.n, first);
        else
                snprintf(note, sizeof(note),
                         "0 syscalls in %zu first etcd-watcher gets after a snapshot "
                         "(seccomp, %zu watchers); local: %zu",
                         calls[0].n * c.n, c.n, total[1]);
        if (!why && total[0])
                status = -1;
        report(variant, "etcd get -EAGAIN", "ns/op", &t[0], "local get -EAGAIN", &t[1],
               BENCH_MEDIAN_RATIO, 0, note);
        if (!why)
                report(variant, "etcd get -EAGAIN syscalls", "syscalls/get", &calls[0],
                       "local get -EAGAIN syscalls", &calls[1], BENCH_MEDIAN_EXCESS, 1e-9, note);
        if (c.unexpected) {
                printf("# etcd: %zu gets with nothing new did not return -EAGAIN\n",
                       c.unexpected);
                status = -1;
        }
        for (int k = 0; k < 2; k++) {
                bench_samples_free(&t[k]);
                bench_samples_free(&calls[k]);
        }
        get_teardown(&c);
        return status;
}

/* ---- consumer cost: the loop of an etcd watcher against a local one ---- */

/* One batch's producer: count updates, one every period_ns. */
struct cost_producer {
        ev_value_etcd *writer;         /* NULL: set local */
        ev_value *local;
        uint64_t first, count, period_ns;
        _Atomic int error;
};

static void *cost_produce(void *arg) {
        struct cost_producer *p = arg;
        uint64_t start = bench_now_ns();

        for (uint64_t i = 0; i < p->count && atomic_load(&p->error) == 0; i++) {
                uint64_t at = start + (i + 1) * p->period_ns;
                struct timespec ts = { .tv_sec = (time_t)(at / 1000000000u),
                                       .tv_nsec = (long)(at % 1000000000u) };
                int r;

                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                        ;
                r = p->writer ? etcd_put_seq(p->writer, p->first + i)
                              : local_set_seq(p->local, p->first + i);
                atomic_store(&p->error, r < 0 ? r : 0);
        }
        return NULL;
}

struct cost_ctx {
        ev_value_etcd *e, *writer;
        ev_value *local;
        ev_value_watcher *w[2];        /* [0] etcd, [1] local */
        uint64_t seq[2];               /* the last number put or set, per value */
        uint64_t seen[2];              /* the newest number each watcher returned */
        size_t batch;
        uint64_t period_ns;
        size_t published, taken[2], processed;
};

static uint64_t thread_cpu_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_sleeps(void) {
        struct rusage ru;

        return getrusage(RUSAGE_THREAD, &ru) == 0 ? (uint64_t)ru.ru_nvcsw : 0;
}

/* One batch of k's updates, the consumer being this thread: its CPU ns
 * and sleeps per update seen. */
static int cost_batch(struct cost_ctx *c, int k, double *ret_cpu, double *ret_sleeps) {
        struct cost_producer p = { .writer = k == 0 ? c->writer : NULL, .local = c->local,
                                   .first = c->seq[k] + 1, .count = c->batch,
                                   .period_ns = c->period_ns };
        uint64_t last = c->seq[k] + c->batch, deadline, cpu0, sleeps0, cpu, sleeps;
        size_t taken = 0;
        pthread_t thread;
        int r;

        r = bench_thread_start(&thread, BENCH_ANY_CPU, cost_produce, &p);
        if (r < 0)
                return r;
        c->seq[k] = last;
        cpu0 = thread_cpu_ns();
        sleeps0 = thread_sleeps();
        deadline = bench_now_ns() + c->batch * c->period_ns + 2u * ETCD_WAIT_MS * 1000000u;
        while (r >= 0 && c->seen[k] < last) {
                struct pollfd pfd[2] = { [1] = { .fd = ev_watcher_get_fd(c->w[k]),
                                                 .events = POLLIN } };
                /* Look at the producer's error at least this often (it
                 * never fires while updates come at the pace). */
                uint64_t now = bench_now_ns(), wake = now + COST_CHECK_NS;
                bool due = false;

                if (atomic_load(&p.error) < 0 || now >= deadline)
                        break;
                if (wake > deadline)
                        wake = deadline;
                if (k == 0) {
                        r = etcd_poll(c->e, pfd, 2, wake, &due);
                        if (r == -ETIMEDOUT)
                                r = 0;
                        if (r >= 0 && due) {
                                r = ev_value_etcd_process(c->e);
                                c->processed++;
                        }
                } else if (poll(&pfd[1], 1, (int)((wake - now + 999999) / 1000000)) < 0 &&
                           errno != EINTR) {
                        r = -errno;
                }
                if (r >= 0)
                        r = take_all(c->w[k], &c->seen[k]);
                if (r > 0)
                        taken += (size_t)r;
        }
        cpu = thread_cpu_ns() - cpu0;
        sleeps = thread_sleeps() - sleeps0;
        pthread_join(thread, NULL);
        if (r >= 0)
                r = atomic_load(&p.error);
        if (r >= 0 && c->seen[k] != last)
                r = c->seen[k] < last ? -ETIMEDOUT : -EPROTO;
        if (r < 0)
                return r;
        c->taken[k] += taken;
        if (k == 0)
                c->published += c->batch;
        *ret_cpu = (double)cpu / (double)taken;
        *ret_sleeps = 1000.0 * (double)sleeps / (double)taken;
        return 0;
}

static int cost_compare(struct etcd_cluster *cl, double put_median_ns) {
        static const char *const variant = "consumer cost";
        const char *url = etcd_cluster_member_url(cl, 0), *key = "/ev-value-bench/cost";
        struct cost_ctx c = { .batch = bench_count(100, 20) };
        struct bench_samples cpu[2] = { { 0 } }, sleeps[2] = { { 0 } };
        size_t batches = bench_count(10, 2), process_before;
        char note[480];
        int r;

        /* Slow enough that each put is done before the next is due, so
         * that the consumer sees every one and sleeps between them. */
        c.period_ns = put_median_ns > 0 ? (uint64_t)(2 * put_median_ns) : 10000000u;
        if (c.period_ns < 1000000u)
                c.period_ns = 1000000u;
        if (c.period_ns > 50000000u)
                c.period_ns = 50000000u;
        r = ev_value_etcd_new(url, key, 0, &c.e);
        if (r >= 0)
                r = ev_value_etcd_new(url, key, 0, &c.writer);
        if (r >= 0)
                r = ev_value_new(&c.local);
        if (r >= 0)
                r = ev_value_etcd_watch(c.e, 0, &c.w[0]);
        if (r >= 0)
                r = ev_value_watch(c.local, 0, &c.w[1]);
        /* The first read done and taken, and a first put through the
         * watch, so that both loops start warm. */
        if (r >= 0)
                r = etcd_put_seq(c.writer, ++c.seq[0]);
        if (r >= 0)
                r = etcd_wait_seq(c.e, c.w[0], c.seq[0], ETCD_WAIT_MS);
        c.seen[0] = c.seq[0];
        if (r >= 0)
                r = local_set_seq(c.local, ++c.seq[1]);
        if (r >= 0)
                r = take_all(c.w[1], &c.seen[1]);
        if (r >= 0 && c.seen[1] != c.seq[1])
                r = -EPROTO;
        if (r < 0) {
                report_error(variant, "etcd watcher CPU", "setup", r);
                goto out;
        }
        process_before = c.processed;
        for (size_t i = 0; i < batches && r >= 0; i++)
                for (int j = 0; j < 2 && r >= 0; j++) {
                        int k = j ^ (int)(i & 1); /* alternate which goes first */
                        double cpu_ns, per_1000;

                        r = cost_batch(&c, k, &cpu_ns, &per_1000);
                        if (r >= 0) {
                                bench_samples_add(&cpu[k], cpu_ns);
                                bench_samples_add(&sleeps[k], per_1000);
                        }
                }
        if (r < 0) {
                report_error(variant, "etcd watcher CPU", "a batch of updates", r);
                goto out;
        }
        snprintf(note, sizeof(note),
                 "CPU of the consumer thread (poll, process, get) per update it saw; one "
                 "update every %.1f ms from another thread (etcd: ev_value_etcd_put; local: "
                 "ev_value_set), %zu batches of %zu each, alternating; seen: etcd %zu of %zu, "
                 "local %zu; ev_value_etcd_process calls per update %.2f",
                 (double)c.period_ns / 1e6, batches, c.batch, c.taken[0], c.published,
                 c.taken[1], (double)(c.processed - process_before) / (double)c.published);
        report(variant, "etcd watcher CPU", "ns/update", &cpu[0], "local watcher CPU", &cpu[1],
               BENCH_MEDIAN_RATIO, 0, note);
        report(variant, "etcd watcher sleeps", "sleeps/1000", &sleeps[0], "local watcher sleeps",
               &sleeps[1], BENCH_MEDIAN_EXCESS, 0,
               "voluntary context switches of the consumer thread per 1000 updates seen; "
               "system calls per update not counted (the seccomp trap fakes them)");
out:
        ev_watcher_close(c.w[0]);
        ev_watcher_close(c.w[1]);
        ev_value_etcd_free(c.e);
        ev_value_etcd_free(c.writer);
        ev_value_unref(c.local);
        for (int k = 0; k < 2; k++) {
                bench_samples_free(&cpu[k]);
                bench_samples_free(&sleeps[k]);
        }
        return r < 0 ? -1 : 0;
}

/* ---- the scenario ---- */

/* The scenario's body, on a thread of its own that floats over the CPUs
 * whatever an earlier scenario did to the main thread's placement: the
 * etcd members and etcdctl inherit it, and are tied to this thread (see
 * etcd-cluster.h), which outlives them. */
static void *etcd_main(void *arg) {
        int *status = arg, failed = 0, r;
        struct etcd_cluster *cl = NULL;
        double put_median_ns = 0;

        r = etcd_cluster_start(1, &cl);
        if (r == -ENOENT) {
                printf("# etcd: skipped: %s\n", etcd_cluster_absent_reason());
                *status = 77;
                return NULL;
        }
        if (r < 0) {
                report_error("-", "1-member etcd cluster", "start", r);
                *status = -1;
                return NULL;
        }
        failed += lat_compare(cl, &put_median_ns) < 0;
        failed += get_compare(cl) < 0;
        failed += cost_compare(cl, put_median_ns) < 0;
        if (failed) {
                fflush(stdout);
                etcd_cluster_print_logs(cl, stdout);
        }
        etcd_cluster_free(cl);
        *status = failed ? -1 : 0;
        return NULL;
}

int bench_etcd(void) {
        pthread_t thread;
        int status = -1, r;

        etcd_placement = bench_placement_name(BENCH_FLOAT);
        r = bench_thread_start(&thread, BENCH_ANY_CPU, etcd_main, &status);
        if (r < 0) {
                printf("# etcd: cannot start a thread: %s\n", strerror(-r));
                return -1;
        }
        pthread_join(thread, NULL);
        return status;
}
