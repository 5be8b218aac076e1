/* SPDX-License-Identifier: MIT */
/*
 * Test harness: starts real etcd clusters on 127.0.0.1 as children of the
 * test's process, kills and restarts their members, probes their health
 * over HTTP with libcurl and runs etcdctl against them (see etcd-cluster.h
 * for the contract).  Members are forked and exec'd with everything built
 * beforehand, so the child only makes async-signal-safe calls: it asks for
 * SIGKILL when its parent thread dies, sends its output to the member's
 * log, unblocks signals and closes every other fd.  Ports are probed with
 * bind() below the kernel's ephemeral range, so that no outgoing
 * connection can take a killed member's port before it restarts; a start
 * whose member exits early (its port taken after all) is retried with new
 * ports.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include "etcd-cluster.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* A start that fails because a member exited (a port taken between our
 * probe and etcd's bind) is retried this many times in all. */
#define START_ATTEMPTS 3
#define START_TIMEOUT_MS 20000
/* One /health request: etcd 3.4 answers it after a quorum read with its own
 * 1 s timeout, so a member without quorum takes that long to say false. */
#define HEALTH_REQUEST_MS 1000
#define HEALTH_POLL_MS 50
/* etcdctl has --command-timeout=5s and a 2 s dial timeout per endpoint;
 * past this, something hangs and the run is killed. */
#define ETCDCTL_TIMEOUT_MS 30000
#define ETCDCTL_STDERR_MAX 1024
/* Fast elections so that fault tests are quick.  They held on a 2-vCPU VM
 * running six 3-member clusters under etcdctl put loops, three CPU hogs and
 * an fsync'ing dd: the leader warned of late heartbeats, but no election
 * happened once a cluster was up. */
#define HEARTBEAT_MS "50"
#define ELECTION_MS "500"
/* Ports are drawn from [PORT_MIN, low end of ip_local_port_range). */
#define PORT_MIN 10000
#define ETCD_ARGC 16

struct member {
        char name[12];
        char client_url[32];
        char health_url[48];
        char hostport[24];
        char peer_url[32];
        /* Heap strings (argv[k] too), freed by teardown(). */
        char *data_dir;
        char *log_path;
        char *argv[ETCD_ARGC + 1];
        /* 0 when not running. */
        pid_t pid;
};

struct etcd_cluster {
        unsigned n;
        /* Only the process that started the members kills them and removes
         * the directory: a forked child (criterion forks) must not. */
        pid_t owner;
        char *etcd_path;
        char *etcdctl_path;
        char dir[PATH_MAX];
        char *ctl_log_path;
        char endpoints[ETCD_CLUSTER_MAX_MEMBERS * 32];
        char token[96];
        char etcdctl_err[ETCDCTL_STDERR_MAX];
        struct member m[ETCD_CLUSTER_MAX_MEMBERS];
};

static int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int64_t ms) {
        struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };

        while (ms > 0 && nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

static bool is_executable(const char *path) {
        struct stat st;

        return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* $env_name if set (a path, or a name looked up in PATH), else name in
 * PATH; the result is malloc'd. */
static int find_program(const char *env_name, const char *name, char **ret) {
        const char *want = getenv(env_name);
        const char *path, *p;

        if (want && *want) {
                if (strchr(want, '/')) {
                        if (!is_executable(want))
                                return -ENOENT;
                        *ret = strdup(want);
                        return *ret ? 0 : -ENOMEM;
                }
                name = want;
        }
        path = getenv("PATH");
        if (!path || !*path)
                path = "/usr/local/bin:/usr/bin:/bin";
        for (p = path;; p++) {
                const char *end = strchrnul(p, ':');
                int len = (int)(end - p);
                char *cand;

                /* An empty PATH element is the current directory. */
                if (asprintf(&cand, "%.*s/%s", len > 0 ? len : 1, len > 0 ? p : ".", name) < 0)
                        return -ENOMEM;
                if (is_executable(cand)) {
                        *ret = cand;
                        return 0;
                }
                free(cand);
                p = end;
                if (!*p)
                        return -ENOENT;
        }
}

const char *etcd_cluster_absent_reason(void) {
        static _Thread_local char reason[512];
        static const struct {
                const char *env, *name, *package;
        } progs[] = {
                { "ETCD", "etcd", "etcd-server etcd-client" },
                { "ETCDCTL", "etcdctl", "etcd-client" },
        };

        for (size_t k = 0; k < sizeof(progs) / sizeof(progs[0]); k++) {
                const char *want = getenv(progs[k].env);
                char *found;
                int r = find_program(progs[k].env, progs[k].name, &found);

                if (r == 0) {
                        free(found);
                        continue;
                }
                if (r != -ENOENT)
                        snprintf(reason, sizeof(reason), "looking for %s: %s", progs[k].name,
                                 strerror(-r));
                else if (want && *want)
                        snprintf(reason, sizeof(reason),
                                 "%s not found: $%s=%s is not an executable file", progs[k].name,
                                 progs[k].env, want);
                else
                        snprintf(reason, sizeof(reason),
                                 "%s not found in PATH (Debian: apt-get install %s; or set $%s)",
                                 progs[k].name, progs[k].package, progs[k].env);
                return reason;
        }
        return "etcd and etcdctl are both present";
}

/* An fd of ours that is not 0, 1 or 2 (which a test may have closed), so
 * that dup2() onto 0..2 in a child never overwrites another of them. */
static int fd_above_stdio(int fd) {
        int moved;

        if (fd < 0 || fd > 2)
                return fd;
        moved = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        close(fd);
        return moved;
}

/* The environment minus the variables that start with drop (etcd refuses
 * an ETCD_* variable that shadows a flag; etcdctl likewise), plus extra if
 * not NULL.  The strings are environ's: use before anything changes it. */
static char **filtered_env(const char *drop, const char *extra) {
        size_t n = 0, k = 0, drop_len = strlen(drop);
        char **env;

        while (environ && environ[n])
                n++;
        env = calloc(n + 2, sizeof(*env));
        if (!env)
                return NULL;
        for (size_t j = 0; j < n; j++)
                if (strncmp(environ[j], drop, drop_len) != 0)
                        env[k++] = environ[j];
        if (extra)
                env[k++] = (char *)extra;
        env[k] = NULL;
        return env;
}

/* fork+exec path with stdin, stdout and stderr on in/out/err (each > 2).
 * Between fork and exec only async-signal-safe calls. */
static int spawn(const char *path, char *const argv[], char *const envp[], int in, int out,
                 int err, pid_t *ret) {
        pid_t parent = getpid(), pid;
        struct rlimit rl;
        int max_fd = 65536;

        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
            rl.rlim_cur < (rlim_t)max_fd)
                max_fd = (int)rl.rlim_cur;
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                sigset_t all;

                /* A test that crashes or is killed takes its etcd with it. */
                if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent)
                        _exit(127);
                if (dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
                        _exit(127);
                /* The test may block signals (signalfd) or ignore some;
                 * both survive exec. */
                sigfillset(&all);
                sigprocmask(SIG_UNBLOCK, &all, NULL);
                for (int sig = 1; sig < 32; sig++)
                        if (sig != SIGKILL && sig != SIGSTOP)
                                signal(sig, SIG_DFL);
                /* The test's own fds (eventfds, sockets) need not be
                 * close-on-exec; etcd must not hold them. */
#ifdef SYS_close_range
                if (syscall(SYS_close_range, 3U, ~0U, 0U) < 0)
#endif
                        for (int fd = 3; fd < max_fd; fd++)
                                close(fd);
                execve(path, argv, envp);
                _exit(127);
        }
        *ret = pid;
        return 0;
}

static int open_fd(const char *path, int flags) {
        int fd = open(path, flags | O_CLOEXEC, 0600);

        if (fd < 0)
                return -errno;
        fd = fd_above_stdio(fd);
        return fd < 0 ? -errno : fd;
}

static int spawn_member(struct etcd_cluster *c, unsigned i) {
        struct member *m = &c->m[i];
        char **env = NULL;
        int in = -1, log = -1, r;

        env = filtered_env("ETCD_", NULL);
        if (!env)
                return -ENOMEM;
        in = open_fd("/dev/null", O_RDONLY);
        if (in < 0) {
                r = in;
                goto out;
        }
        log = open_fd(m->log_path, O_WRONLY | O_CREAT | O_APPEND);
        if (log < 0) {
                r = log;
                goto out;
        }
        r = spawn(c->etcd_path, m->argv, env, in, log, log, &m->pid);
out:
        if (in >= 0)
                close(in);
        if (log >= 0)
                close(log);
        free(env);
        return r;
}

/* If m's process has ended, reap it and say so. */
static bool member_exited(struct member *m, int *status) {
        pid_t r;

        *status = -1;
        if (m->pid <= 0)
                return true;
        r = waitpid(m->pid, status, WNOHANG);
        if (r == 0)
                return false;
        /* ECHILD: reaped by someone else (SIGCHLD ignored, or a wait(-1)
         * in the test); the process is gone all the same. */
        m->pid = 0;
        return true;
}

static void kill_member(struct member *m) {
        if (m->pid <= 0)
                return;
        kill(m->pid, SIGKILL);
        while (waitpid(m->pid, NULL, 0) < 0 && errno == EINTR)
                ;
        m->pid = 0;
}

static void print_status(FILE *f, int status) {
        if (status == -1)
                fprintf(f, "reaped elsewhere");
        else if (WIFEXITED(status))
                fprintf(f, "exit status %d", WEXITSTATUS(status));
        else if (WIFSIGNALED(status))
                fprintf(f, "killed by signal %d", WTERMSIG(status));
        else
                fprintf(f, "status 0x%x", (unsigned)status);
}

/* The last lines of a file (at most 4 KiB of them). */
static void print_tail(FILE *f, const char *path, const char *prefix) {
        char buf[4096];
        ssize_t n;
        off_t size;
        char *p, *line;
        int fd = open(path, O_RDONLY | O_CLOEXEC);

        if (fd < 0) {
                fprintf(f, "%s(no log: %s)\n", prefix, strerror(errno));
                return;
        }
        size = lseek(fd, 0, SEEK_END);
        if (size > (off_t)sizeof(buf) - 1)
                lseek(fd, size - (off_t)sizeof(buf) + 1, SEEK_SET);
        else
                lseek(fd, 0, SEEK_SET);
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0) {
                fprintf(f, "%s(empty log)\n", prefix);
                return;
        }
        buf[n] = '\0';
        p = buf;
        /* Skip a partial first line. */
        if (size > n && (line = strchr(p, '\n')))
                p = line + 1;
        for (line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
                fprintf(f, "%s%s\n", prefix, line);
}

void etcd_cluster_print_logs(const struct etcd_cluster *c, FILE *f) {
        char prefix[16];

        if (!c)
                return;
        for (unsigned i = 0; i < c->n && c->m[i].log_path; i++) {
                snprintf(prefix, sizeof(prefix), "  %s| ", c->m[i].name);
                fprintf(f, "etcd-cluster: last lines of %s:\n", c->m[i].log_path);
                print_tail(f, c->m[i].log_path, prefix);
        }
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void)st;
        (void)type;
        (void)ftw;
        /* Keep going: remove as much as possible. */
        remove(path);
        return 0;
}

static void free_member_strings(struct member *m) {
        for (unsigned k = 0; k < ETCD_ARGC; k++) {
                free(m->argv[k]);
                m->argv[k] = NULL;
        }
        free(m->data_dir);
        m->data_dir = NULL;
        free(m->log_path);
        m->log_path = NULL;
}

/* Kill and reap every member, remove the directory, free the argvs; the
 * binaries' paths stay. */
static void teardown(struct etcd_cluster *c) {
        for (unsigned i = 0; i < ETCD_CLUSTER_MAX_MEMBERS; i++) {
                kill_member(&c->m[i]);
                free_member_strings(&c->m[i]);
        }
        if (c->dir[0])
                nftw(c->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
        c->dir[0] = '\0';
}

static uint64_t random_u64(void) {
        uint64_t x;

        if (getrandom(&x, sizeof(x), GRND_NONBLOCK) != (ssize_t)sizeof(x))
                x = (uint64_t)now_ms() * 6364136223846793005ULL ^ (uint64_t)getpid();
        return x;
}

/* Binds a probe socket to 127.0.0.1:port (0: the kernel picks) and gives
 * the port back; the socket stays open so that the next probe cannot get
 * the same port. */
static int probe_port(uint16_t port, int *ret_fd, uint16_t *ret_port) {
        struct sockaddr_in a = {
                .sin_family = AF_INET,
                .sin_port = htons(port),
                .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        };
        socklen_t len = sizeof(a);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), r;

        if (fd < 0)
                return -errno;
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
            getsockname(fd, (struct sockaddr *)&a, &len) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        *ret_fd = fd;
        *ret_port = ntohs(a.sin_port);
        return 0;
}

/* n distinct free ports.  Drawn at random below the ephemeral range when
 * it leaves room: the kernel gives ports of that range to every outgoing
 * connection (curl, etcdctl, etcd's peers), and one of them could take a
 * killed member's port before the member restarts on it. */
static int pick_ports(uint16_t *ports, unsigned n) {
        int fds[2 * ETCD_CLUSTER_MAX_MEMBERS];
        unsigned got = 0, low = 0, high = 0;
        uint64_t rnd = random_u64();
        int r = 0;
        FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "re");

        if (f) {
                if (fscanf(f, "%u %u", &low, &high) != 2)
                        low = 0;
                fclose(f);
        }
        for (int tries = 0; got < n && tries < 200; tries++) {
                uint16_t want = 0;

                if (low > PORT_MIN + 1000 && low <= 65535 && tries < 150) {
                        /* xorshift64 */
                        rnd ^= rnd << 13;
                        rnd ^= rnd >> 7;
                        rnd ^= rnd << 17;
                        want = (uint16_t)(PORT_MIN + rnd % (low - PORT_MIN));
                }
                r = probe_port(want, &fds[got], &ports[got]);
                if (r == 0)
                        got++;
                else if (r != -EADDRINUSE && r != -EACCES)
                        break;
        }
        for (unsigned k = 0; k < got; k++)
                close(fds[k]);
        if (got == n)
                return 0;
        return r < 0 ? r : -EADDRINUSE;
}

static int build_argv(struct etcd_cluster *c, unsigned i, const char *initial_cluster,
                      uint16_t client_port, uint16_t peer_port) {
        struct member *m = &c->m[i];
        unsigned k = 0;
        int r = 0;

        /* From the numbers, not from one another: gcc's -Wrestrict cannot
         * tell two members of *c apart. */
        snprintf(m->name, sizeof(m->name), "m%u", i);
        snprintf(m->hostport, sizeof(m->hostport), "127.0.0.1:%u", client_port);
        snprintf(m->client_url, sizeof(m->client_url), "http://127.0.0.1:%u", client_port);
        snprintf(m->health_url, sizeof(m->health_url), "http://127.0.0.1:%u/health",
                 client_port);
        snprintf(m->peer_url, sizeof(m->peer_url), "http://127.0.0.1:%u", peer_port);
        if (asprintf(&m->data_dir, "%s/m%u", c->dir, i) < 0) {
                m->data_dir = NULL;
                return -ENOMEM;
        }
        if (asprintf(&m->log_path, "%s/m%u.log", c->dir, i) < 0) {
                m->log_path = NULL;
                return -ENOMEM;
        }

#define ARG(...)                                                                                  \
        do {                                                                                      \
                if (r == 0 && asprintf(&m->argv[k++], __VA_ARGS__) < 0) {                         \
                        m->argv[k - 1] = NULL;                                                    \
                        r = -ENOMEM;                                                              \
                }                                                                                 \
        } while (0)
        ARG("%s", c->etcd_path);
        ARG("--name=%s", m->name);
        ARG("--data-dir=%s", m->data_dir);
        ARG("--listen-client-urls=%s", m->client_url);
        ARG("--advertise-client-urls=%s", m->client_url);
        ARG("--listen-peer-urls=%s", m->peer_url);
        ARG("--initial-advertise-peer-urls=%s", m->peer_url);
        ARG("--initial-cluster=%s", initial_cluster);
        ARG("--initial-cluster-token=%s", c->token);
        ARG("--initial-cluster-state=new");
        ARG("--heartbeat-interval=" HEARTBEAT_MS);
        ARG("--election-timeout=" ELECTION_MS);
        ARG("--logger=zap");
        ARG("--log-level=warn");
        /* Never journald, even when the test runs under systemd. */
        ARG("--log-outputs=stderr");
#undef ARG
        m->argv[k] = NULL;
        return r;
}

struct body {
        char buf[256];
        size_t len;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata) {
        struct body *b = userdata;
        size_t n = size * nmemb, room = sizeof(b->buf) - 1 - b->len;

        memcpy(b->buf + b->len, data, n < room ? n : room);
        b->len += n < room ? n : room;
        b->buf[b->len] = '\0';
        return n;
}

/* One GET /health: whether it said {"health":"true"}. */
static bool probe_health(CURL *h, const char *url, int64_t timeout_ms) {
        struct body b = { .len = 0 };
        long code = 0;

        if (timeout_ms < 1)
                timeout_ms = 1;
        curl_easy_setopt(h, CURLOPT_URL, url);
        /* Never through a proxy from the environment (http_proxy). */
        curl_easy_setopt(h, CURLOPT_PROXY, "");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
        if (curl_easy_perform(h) != CURLE_OK)
                return false;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        return code == 200 && strstr(b.buf, "\"health\":\"true\"") != NULL;
}

/* Waits until every member in mask is healthy or until deadline: 0,
 * -ETIMEDOUT, -ESRCH (a member exited: *failed says which, *status how),
 * or -ENOMEM. */
static int wait_members(struct etcd_cluster *c, unsigned mask, int64_t deadline,
                        unsigned *failed, int *status) {
        CURL *h = curl_easy_init();
        int r = -ETIMEDOUT;

        if (!h)
                return -ENOMEM;
        for (;;) {
                for (unsigned i = 0; i < c->n; i++) {
                        if (!(mask & (1U << i)))
                                continue;
                        if (member_exited(&c->m[i], status)) {
                                *failed = i;
                                r = -ESRCH;
                                goto out;
                        }
                        if (probe_health(h, c->m[i].health_url,
                                         deadline - now_ms() < HEALTH_REQUEST_MS
                                                 ? deadline - now_ms()
                                                 : HEALTH_REQUEST_MS))
                                mask &= ~(1U << i);
                }
                if (!mask) {
                        r = 0;
                        break;
                }
                if (now_ms() >= deadline)
                        break;
                sleep_ms(HEALTH_POLL_MS);
        }
out:
        curl_easy_cleanup(h);
        return r;
}

/* One try at starting c's members; *retry when it failed in a way that
 * new ports may fix (then nothing was printed). */
static int start_attempt(struct etcd_cluster *c, bool last, bool *retry) {
        static atomic_uint counter;
        uint16_t ports[2 * ETCD_CLUSTER_MAX_MEMBERS];
        char initial_cluster[ETCD_CLUSTER_MAX_MEMBERS * 48] = "";
        const char *tmp = getenv("TMPDIR");
        unsigned failed = 0;
        int status = 0, r;
        size_t len = 0, ep_len = 0;

        *retry = false;
        if (!tmp || !*tmp)
                tmp = "/tmp";
        if ((size_t)snprintf(c->dir, sizeof(c->dir), "%s/evvalue-etcd-XXXXXX", tmp) >=
            sizeof(c->dir) - 32) {
                c->dir[0] = '\0';
                return -ENAMETOOLONG;
        }
        if (!mkdtemp(c->dir)) {
                r = -errno;
                c->dir[0] = '\0';
                return r;
        }
        free(c->ctl_log_path);
        if (asprintf(&c->ctl_log_path, "%s/etcdctl.log", c->dir) < 0) {
                c->ctl_log_path = NULL;
                r = -ENOMEM;
                goto fail;
        }
        snprintf(c->token, sizeof(c->token), "evvalue-test-%ld-%u-%016" PRIx64, (long)getpid(),
                 atomic_fetch_add(&counter, 1), random_u64());
        r = pick_ports(ports, 2 * c->n);
        if (r < 0)
                goto fail;
        for (unsigned i = 0; i < c->n; i++) {
                len += (size_t)snprintf(initial_cluster + len, sizeof(initial_cluster) - len,
                                        "%sm%u=http://127.0.0.1:%u", i ? "," : "", i,
                                        ports[2 * i + 1]);
                ep_len += (size_t)snprintf(c->endpoints + ep_len, sizeof(c->endpoints) - ep_len,
                                           "%shttp://127.0.0.1:%u", i ? "," : "", ports[2 * i]);
        }
        for (unsigned i = 0; i < c->n; i++) {
                r = build_argv(c, i, initial_cluster, ports[2 * i], ports[2 * i + 1]);
                if (r < 0)
                        goto fail;
        }
        for (unsigned i = 0; i < c->n; i++) {
                r = spawn_member(c, i);
                if (r < 0)
                        goto fail;
        }
        r = wait_members(c, (1U << c->n) - 1, now_ms() + START_TIMEOUT_MS, &failed, &status);
        if (r == 0)
                return 0;
        if (r == -ESRCH && !last) {
                /* Most likely a port taken between probe and bind: the
                 * caller retries with new ones, silently. */
                *retry = true;
                goto fail;
        }
        if (r == -ESRCH) {
                fprintf(stderr, "etcd-cluster: member %s exited during start (", c->m[failed].name);
                print_status(stderr, status);
                fprintf(stderr, ")\n");
        } else if (r == -ETIMEDOUT) {
                fprintf(stderr, "etcd-cluster: %u members not all healthy after %d ms\n", c->n,
                        START_TIMEOUT_MS);
        }
        etcd_cluster_print_logs(c, stderr);
fail:
        teardown(c);
        return r;
}

int etcd_cluster_start(unsigned n_members, struct etcd_cluster **ret) {
        struct etcd_cluster *c;
        int r;

        if (!ret || n_members < 1 || n_members > ETCD_CLUSTER_MAX_MEMBERS)
                return -EINVAL;
        c = calloc(1, sizeof(*c));
        if (!c)
                return -ENOMEM;
        c->n = n_members;
        c->owner = getpid();
        r = find_program("ETCD", "etcd", &c->etcd_path);
        if (r == 0)
                r = find_program("ETCDCTL", "etcdctl", &c->etcdctl_path);
        if (r == 0) {
                bool retry = true;

                for (int attempt = 0; retry && attempt < START_ATTEMPTS; attempt++)
                        r = start_attempt(c, attempt == START_ATTEMPTS - 1, &retry);
        }
        if (r < 0) {
                free(c->ctl_log_path);
                free(c->etcd_path);
                free(c->etcdctl_path);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

unsigned etcd_cluster_size(const struct etcd_cluster *c) {
        return c->n;
}

const char *etcd_cluster_endpoints(const struct etcd_cluster *c) {
        return c->endpoints;
}

const char *etcd_cluster_member_url(const struct etcd_cluster *c, unsigned i) {
        return i < c->n ? c->m[i].client_url : NULL;
}

const char *etcd_cluster_member_hostport(const struct etcd_cluster *c, unsigned i) {
        return i < c->n ? c->m[i].hostport : NULL;
}

const char *etcd_cluster_dir(const struct etcd_cluster *c) {
        return c->dir;
}

bool etcd_cluster_member_running(const struct etcd_cluster *c, unsigned i) {
        siginfo_t info;

        if (i >= c->n || c->m[i].pid <= 0)
                return false;
        /* WNOWAIT: look without reaping, the cluster is const here. */
        info.si_pid = 0;
        if (waitid(P_PID, (id_t)c->m[i].pid, &info, WEXITED | WNOHANG | WNOWAIT) < 0)
                return false;
        return info.si_pid == 0;
}

pid_t etcd_cluster_member_pid(const struct etcd_cluster *c, unsigned i) {
        return i < c->n ? c->m[i].pid : 0;
}

int etcd_cluster_kill(struct etcd_cluster *c, unsigned i) {
        if (i >= c->n)
                return -EINVAL;
        kill_member(&c->m[i]);
        return 0;
}

int etcd_cluster_restart(struct etcd_cluster *c, unsigned i) {
        int status;

        if (i >= c->n)
                return -EINVAL;
        if (!member_exited(&c->m[i], &status))
                return -EBUSY;
        return spawn_member(c, i);
}

int etcd_cluster_wait_healthy(struct etcd_cluster *c, unsigned i, int timeout_ms) {
        unsigned failed;
        int status, r;

        if (i >= c->n)
                return -EINVAL;
        if (c->m[i].pid <= 0)
                return -ESRCH;
        r = wait_members(c, 1U << i, now_ms() + (timeout_ms > 0 ? timeout_ms : 0), &failed,
                         &status);
        if (r == -ESRCH) {
                fprintf(stderr, "etcd-cluster: member %s exited (", c->m[i].name);
                print_status(stderr, status);
                fprintf(stderr, "); last lines of %s:\n", c->m[i].log_path);
                print_tail(stderr, c->m[i].log_path, "  | ");
        }
        return r;
}

/* Appends what fd has to buf (keeping a NUL after it, dropping what does
 * not fit); false at EOF or error. */
static bool drain(int fd, char *buf, size_t size, size_t *len) {
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof(chunk));

        if (n < 0 && (errno == EINTR || errno == EAGAIN))
                return true;
        if (n <= 0)
                return false;
        if (buf && size > 0) {
                size_t room = size - 1 - *len, take = (size_t)n < room ? (size_t)n : room;

                memcpy(buf + *len, chunk, take);
                *len += take;
                buf[*len] = '\0';
        }
        return true;
}

int etcd_cluster_etcdctl(struct etcd_cluster *c, int member, char *out, size_t out_size,
                         const char *const *args) {
        char endpoints_arg[sizeof(c->endpoints) + 16];
        char **argv = NULL, **env = NULL;
        int out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 }, in = -1;
        size_t nargs = 0, out_len = 0, err_len = 0;
        int64_t deadline;
        pid_t pid = 0;
        int r, status;

        if (member >= (int)c->n || (out && out_size == 0))
                return -EINVAL;
        if (out)
                out[0] = '\0';
        c->etcdctl_err[0] = '\0';
        snprintf(endpoints_arg, sizeof(endpoints_arg), "--endpoints=%s",
                 member >= 0 ? c->m[member].client_url : c->endpoints);
        while (args && args[nargs])
                nargs++;
        argv = calloc(nargs + 4, sizeof(*argv));
        env = filtered_env("ETCDCTL_", "ETCDCTL_API=3");
        if (!argv || !env) {
                r = -ENOMEM;
                goto out;
        }
        argv[0] = c->etcdctl_path;
        argv[1] = endpoints_arg;
        argv[2] = (char *)"--command-timeout=5s";
        for (size_t k = 0; k < nargs; k++)
                argv[3 + k] = (char *)args[k];
        argv[3 + nargs] = NULL;

        in = open_fd("/dev/null", O_RDONLY);
        if (in < 0) {
                r = in;
                goto out;
        }
        if (pipe2(out_pipe, O_CLOEXEC) < 0 || pipe2(err_pipe, O_CLOEXEC) < 0) {
                r = -errno;
                goto out;
        }
        for (int k = 0; k < 2; k++) {
                out_pipe[k] = fd_above_stdio(out_pipe[k]);
                err_pipe[k] = fd_above_stdio(err_pipe[k]);
        }
        if (out_pipe[0] < 0 || out_pipe[1] < 0 || err_pipe[0] < 0 || err_pipe[1] < 0) {
                r = -EMFILE;
                goto out;
        }
        r = spawn(c->etcdctl_path, argv, env, in, out_pipe[1], err_pipe[1], &pid);
        if (r < 0)
                goto out;
        close(out_pipe[1]);
        close(err_pipe[1]);
        out_pipe[1] = err_pipe[1] = -1;

        deadline = now_ms() + ETCDCTL_TIMEOUT_MS;
        while (out_pipe[0] >= 0 || err_pipe[0] >= 0) {
                struct pollfd pfd[2] = {
                        { .fd = out_pipe[0], .events = POLLIN },
                        { .fd = err_pipe[0], .events = POLLIN },
                };
                int64_t left = deadline - now_ms();

                if (left <= 0) {
                        kill(pid, SIGKILL);
                        r = -ETIMEDOUT;
                        break;
                }
                if (poll(pfd, 2, (int)left) < 0 && errno != EINTR) {
                        kill(pid, SIGKILL);
                        r = -errno;
                        break;
                }
                if (pfd[0].revents && !drain(out_pipe[0], out, out_size, &out_len)) {
                        close(out_pipe[0]);
                        out_pipe[0] = -1;
                }
                if (pfd[1].revents && !drain(err_pipe[0], c->etcdctl_err,
                                             sizeof(c->etcdctl_err), &err_len)) {
                        close(err_pipe[0]);
                        err_pipe[0] = -1;
                }
        }
        while (waitpid(pid, &status, 0) < 0) {
                if (errno != EINTR) {
                        if (r == 0)
                                r = -errno;
                        goto out;
                }
        }
        if (r == 0) {
                if (WIFEXITED(status))
                        r = WEXITSTATUS(status);
                else
                        r = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        /* Kept on disk too, for a look after a failed test. */
        if (err_len > 0 && c->ctl_log_path) {
                int log = open(c->ctl_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);

                if (log >= 0) {
                        if (write(log, c->etcdctl_err, err_len) < 0) {
                                /* Only a diagnostic. */
                        }
                        close(log);
                }
        }
out:
        for (int k = 0; k < 2; k++) {
                if (out_pipe[k] >= 0)
                        close(out_pipe[k]);
                if (err_pipe[k] >= 0)
                        close(err_pipe[k]);
        }
        if (in >= 0)
                close(in);
        free(argv);
        free(env);
        return r;
}

const char *etcd_cluster_etcdctl_stderr(const struct etcd_cluster *c) {
        return c->etcdctl_err;
}

int64_t etcd_cluster_compact(struct etcd_cluster *c) {
        static const char *const get_args[] = {
                "get", "--write-out=json", "evvalue-harness-revision-probe", NULL,
        };
        char out[4096], rev_arg[24];
        const char *compact_args[] = { "compact", rev_arg, "--physical", NULL };
        const char *p;
        char *end;
        long long rev;
        int r;

        r = etcd_cluster_etcdctl(c, -1, out, sizeof(out), get_args);
        if (r < 0)
                return r;
        if (r != 0)
                return -EIO;
        /* {"header":{"cluster_id":...,"member_id":...,"revision":N,...}} */
        p = strstr(out, "\"revision\":");
        if (!p)
                return -EPROTO;
        errno = 0;
        rev = strtoll(p + strlen("\"revision\":"), &end, 10);
        if (errno || end == p || rev <= 0)
                return -EPROTO;
        snprintf(rev_arg, sizeof(rev_arg), "%lld", rev);
        r = etcd_cluster_etcdctl(c, -1, NULL, 0, compact_args);
        if (r < 0)
                return r;
        /* Compacted there already (a second compact with no write in
         * between): history is compacted up to rev all the same. */
        if (r != 0 && !strstr(c->etcdctl_err, "required revision has been compacted"))
                return -EIO;
        return rev;
}

void etcd_cluster_free(struct etcd_cluster *c) {
        if (!c)
                return;
        if (c->owner == getpid())
                teardown(c);
        else
                for (unsigned i = 0; i < ETCD_CLUSTER_MAX_MEMBERS; i++)
                        free_member_strings(&c->m[i]);
        free(c->ctl_log_path);
        free(c->etcd_path);
        free(c->etcdctl_path);
        free(c);
}
