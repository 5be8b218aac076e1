/* SPDX-License-Identifier: MIT */
/*
 * evvalue watch: print each newest state as it comes, or hand it to a
 * command.  Nothing is queued: while a state is printed or its command
 * runs, later sets only replace the state the next wait returns, so a slow
 * consumer skips intermediates, as the library's watchers do.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "evvalue.h"

static const char usage_text[] =
        "Usage: evvalue watch ADDR [--skip-current] [--count N] [--timeout MS]\n"
        "                          [--exec CMD | --json | --format FMT]\n"
        "Print each newest state of the value as it comes; intermediate states\n"
        "that come faster than they are printed are skipped, never queued.\n"
        "\n"
        "  -s, --skip-current  start with the next state, not the current one\n"
        "  -n, --count N       exit after N states\n"
        "  -t, --timeout MS    exit 4 when MS milliseconds pass first\n"
        "  -e, --exec CMD      run 'sh -c CMD' with each state on its stdin, one\n"
        "                      at a time, instead of printing it\n"
        "  -j, --json          print one JSON object per state\n"
        "  -f, --format FMT    print FMT per state (see evvalue get --help);\n"
        "                      default '%s\\n'\n"
        "  -h, --help          show this help\n";

static const struct option options[] = {
        { "skip-current", no_argument, NULL, 's' },
        { "count", required_argument, NULL, 'n' },
        { "timeout", required_argument, NULL, 't' },
        { "exec", required_argument, NULL, 'e' },
        { "json", no_argument, NULL, 'j' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        {},
};

struct watch {
        unsigned flags;
        uint64_t count;         /* 0: no limit */
        int timeout_ms;
        const char *exec;
        struct output output;
};

/* The state's bytes in a memfd at offset 0, the command's stdin: unlike a
 * pipe it never blocks the writer on a command that does not read. */
static int stdin_of(const ev_value_snapshot *s) {
        const char *p = ev_snapshot_data(s);
        size_t left = ev_snapshot_size(s);
        int fd = memfd_create("evvalue-state", MFD_CLOEXEC);

        if (fd < 0)
                return -errno;
        while (left > 0) {
                ssize_t n = write(fd, p, left);

                if (n < 0) {
                        int r = -errno;

                        close(fd);
                        return r;
                }
                p += n;
                left -= (size_t)n;
        }
        lseek(fd, 0, SEEK_SET);
        return fd;
}

/* The command's environment: ours plus the state's EVVALUE_* variables,
 * built before fork() since the child of a threaded process (the etcd
 * backend runs one) may call only async-signal-safe functions. */
static char **exec_env(const ev_value_snapshot *s, bool absent, char vars[2][48]) {
        extern char **environ;
        static char absent_var[] = "EVVALUE_ABSENT=1";
        size_t n = 0, i = 0;
        char **env;

        while (environ[n])
                n++;
        env = malloc((n + 4) * sizeof(*env));
        if (!env)
                return NULL;
        for (char **e = environ; *e; e++)
                if (strncmp(*e, "EVVALUE_", strlen("EVVALUE_")) != 0)
                        env[i++] = *e;
        snprintf(vars[0], sizeof(vars[0]), "EVVALUE_VERSION=%" PRIu64, ev_snapshot_version(s));
        snprintf(vars[1], sizeof(vars[1]), "EVVALUE_SIZE=%zu", ev_snapshot_size(s));
        env[i++] = vars[0];
        env[i++] = vars[1];
        if (absent)
                env[i++] = absent_var;
        env[i] = NULL;
        return env;
}

/* Run "sh -c cmd" with the state on stdin and wait for it; its own exit
 * status is its business, not watch's. */
static int run_exec(const char *cmd, const ev_value_snapshot *s, bool absent) {
        static char sh[] = "sh", dash_c[] = "-c";
        char *argv[] = { sh, dash_c, (char *)cmd, NULL }, vars[2][48];
        char **env = exec_env(s, absent, vars);
        int fd, status, r = 0;
        pid_t pid;

        if (!env)
                return -ENOMEM;
        fd = stdin_of(s);
        if (fd < 0) {
                free(env);
                return fd;
        }
        pid = fork();
        if (pid == 0) {
                dup2(fd, STDIN_FILENO);
                execve("/bin/sh", argv, env);
                _exit(127);
        }
        if (pid < 0)
                r = -errno;
        close(fd);
        free(env);
        while (r == 0 && waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        r = -errno;
        return r;
}

static int watch_loop(const struct watch *wt, struct source *src) {
        int64_t deadline = deadline_after(wt->timeout_ms);

        for (uint64_t seen = 0; wt->count == 0 || seen < wt->count; seen++) {
                ev_value_snapshot *s;
                bool absent;
                int r = source_next(src, deadline, &s);

                if (r < 0)
                        return fail(src->address->text, r);
                absent = source_is_absent(src, s);
                r = wt->exec ? run_exec(wt->exec, s, absent)
                             : output_snapshot(&wt->output, s, absent);
                ev_snapshot_unref(s);
                if (r < 0)
                        return fail(wt->exec ? wt->exec : "stdout", r);
        }
        return 0;
}

static int parse(int argc, char **argv, struct watch *wt, struct address *a) {
        const char *format = NULL;
        bool json = false;
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":sn:t:e:jf:h", options, NULL)) != -1) {
                switch (c) {
                case 's':
                        wt->flags |= EV_VALUE_WATCH_SKIP_CURRENT;
                        break;
                case 'n':
                        if ((r = parse_count(optarg, &wt->count)))
                                return r;
                        break;
                case 't':
                        if ((r = parse_timeout(optarg, &wt->timeout_ms)))
                                return r;
                        break;
                case 'e':
                        wt->exec = optarg;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'f':
                        format = optarg;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return -1;
                default:
                        return option_error(c, argv);
                }
        }
        if (wt->exec && (json || format))
                return usage_error("--exec prints nothing: it excludes --json and --format");
        if ((r = operands(argc, argv, 1, 1, a)))
                return r;
        return output_setup(json, format, "%s\n", a, &wt->output);
}

int cmd_watch(int argc, char **argv) {
        struct watch wt = { .timeout_ms = -1 };
        struct address a = {};
        struct source src;
        int r = parse(argc, argv, &wt, &a);

        if (r == 0) {
                r = source_open(&a, wt.flags, &src);
                if (r < 0)
                        r = fail(a.text, r);
                else {
                        r = watch_loop(&wt, &src);
                        source_close(&src);
                }
        }
        address_clear(&a);
        return r < 0 ? 0 : r;
}
