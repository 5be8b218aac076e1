/* SPDX-License-Identifier: MIT */
/*
 * evvalue serve: host a value on a unix socket, made here or handed over
 * by systemd's socket activation, until SIGTERM or SIGINT.  Then it closes
 * the value, so that every watcher gets the final state and then learns
 * that the value is closed (not lost), and removes the socket it made.
 */
#include "config.h"

#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "evvalue.h"

static const char usage_text[] =
        "Usage: evvalue serve [ADDR] [--initial DATA | --initial-file FILE] [--allow-set]\n"
        "Host a value on a unix socket until SIGTERM or SIGINT, which close it.\n"
        "Under systemd socket activation (LISTEN_FDS) it serves the socket passed\n"
        "and ADDR is optional.\n"
        "\n"
        "  -i, --initial DATA       the first state\n"
        "  -F, --initial-file FILE  the first state, read from FILE (- for stdin)\n"
        "  -a, --allow-set          let peers of this uid (or root) set the value\n"
        "  -h, --help               show this help\n";

static const struct option options[] = {
        { "initial", required_argument, NULL, 'i' },
        { "initial-file", required_argument, NULL, 'F' },
        { "allow-set", no_argument, NULL, 'a' },
        { "help", no_argument, NULL, 'h' },
        {},
};

struct serve {
        const char *initial;
        const char *initial_file;
        unsigned flags;
        int listen_fd;          /* from systemd, or -1 */
        const char *name;       /* for messages */
};

/* sd_listen_fds(): how many sockets systemd passed (from fd 3 on), 0 when
 * not started so; the variables are removed so children do not see them. */
static int activation_sockets(void) {
        const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
        int n;

        if (!pid || !fds || strtol(pid, NULL, 10) != getpid())
                return 0;
        n = atoi(fds);
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
        return n;
}

/* sd_notify("READY=1") when a service manager asked for it. */
static void notify_ready(void) {
        const char *path = getenv("NOTIFY_SOCKET");
        struct sockaddr_un address = { .sun_family = AF_UNIX };
        size_t len;
        int fd;

        if (!path || (path[0] != '/' && path[0] != '@') ||
            (len = strlen(path)) >= sizeof(address.sun_path))
                return;
        memcpy(address.sun_path, path, len);
        if (path[0] == '@')
                address.sun_path[0] = '\0';
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return;
        sendto(fd, "READY=1", strlen("READY=1"), MSG_NOSIGNAL, (struct sockaddr *)&address,
               (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len));
        close(fd);
}

/* The first state, if asked for: 0 or an exit status after a message. */
static int set_initial(const struct serve *sv, ev_value *v) {
        void *data;
        size_t size;
        int r;

        if (sv->initial)
                r = ev_value_set(v, sv->initial, strlen(sv->initial));
        else if (!sv->initial_file)
                return 0;
        else if ((r = read_all(sv->initial_file, &data, &size)) < 0)
                return fail(sv->initial_file, r);
        else {
                r = ev_value_set(v, data, size);
                free(data);
        }
        return r < 0 ? fail(sv->name, r) : 0;
}

/* Serve until signal_fd reports SIGTERM or SIGINT; then close the value. */
static int run(ev_value_server *srv, ev_value *v, int signal_fd, const char *name) {
        struct pollfd fds[] = {
                { .fd = ev_value_server_get_fd(srv), .events = POLLIN },
                { .fd = signal_fd, .events = POLLIN },
        };

        notify_ready();
        while (!(fds[1].revents & POLLIN)) {
                if (poll(fds, 2, -1) < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail(name, -errno);
                }
                if (fds[0].revents & POLLIN)
                        ev_value_server_process(srv);
        }
        ev_value_close(v);
        return 0;
}

static int serve(const struct serve *sv, const struct address *a, int signal_fd) {
        ev_value_server *srv = NULL;
        ev_value *v;
        int r = ev_value_new(&v);

        if (r < 0)
                return fail(sv->name, r);
        r = set_initial(sv, v);
        if (r == 0) {
                r = sv->listen_fd >= 0 ? ev_value_serve(v, sv->listen_fd, sv->flags, &srv)
                                       : ev_value_serve_path(v, a->path, sv->flags, &srv);
                r = r < 0 ? fail(sv->name, r) : run(srv, v, signal_fd, sv->name);
        }
        ev_value_server_free(srv);
        ev_value_unref(v);
        return r;
}

static int parse(int argc, char **argv, struct serve *sv, struct address *a) {
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":i:F:ah", options, NULL)) != -1) {
                switch (c) {
                case 'i':
                        sv->initial = optarg;
                        break;
                case 'F':
                        sv->initial_file = optarg;
                        break;
                case 'a':
                        sv->flags |= EV_VALUE_SERVE_ALLOW_SET;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return -1;
                default:
                        return option_error(c, argv);
                }
        }
        if (sv->initial && sv->initial_file)
                return usage_error("--initial and --initial-file exclude each other");
        r = activation_sockets();
        if (r > 1)
                return usage_error("systemd passed %d sockets: one can be served", r);
        sv->listen_fd = r == 1 ? 3 : -1;
        if ((r = operands(argc, argv, sv->listen_fd < 0 ? 1 : 0, 1, a)))
                return r;
        if (a->text && a->kind != ADDRESS_UNIX)
                return usage_error("serve hosts unix addresses only, not '%s'", a->text);
        sv->name = a->text ? a->text : "socket-activated socket";
        return 0;
}

int cmd_serve(int argc, char **argv) {
        struct serve sv = {};
        struct address a = {};
        sigset_t mask;
        int signal_fd, r = parse(argc, argv, &sv, &a);

        if (r == 0) {
                sigemptyset(&mask);
                sigaddset(&mask, SIGTERM);
                sigaddset(&mask, SIGINT);
                sigprocmask(SIG_BLOCK, &mask, NULL);
                signal_fd = signalfd(-1, &mask, SFD_CLOEXEC);
                r = signal_fd < 0 ? fail(sv.name, -errno) : serve(&sv, &a, signal_fd);
                if (signal_fd >= 0)
                        close(signal_fd);
        }
        address_clear(&a);
        return r < 0 ? 0 : r;
}
