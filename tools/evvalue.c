/* SPDX-License-Identifier: MIT */
/*
 * evvalue(1): serve, set, get, watch and wait for event values from a
 * shell, a unit file or a script.  This file dispatches to the commands
 * and holds what they share: messages, exit statuses, argument parsing.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "evvalue.h"

const char *command_name = "evvalue";

static const char usage_text[] =
        "Usage: evvalue COMMAND [OPTION...] ADDR [ARG]\n"
        "Serve, set, get and watch event values.\n"
        "\n"
        "Commands:\n"
        "  serve [ADDR]      host a value on a unix socket until SIGTERM\n"
        "  set ADDR DATA|-   set the value (- reads stdin)\n"
        "  get ADDR          print the current (or, with --wait, the next) state\n"
        "  watch ADDR        print each newest state as it comes\n"
        "  wait ADDR         exit once the state equals or matches\n"
        "  help [COMMAND]    show a command's options\n"
        "\n"
        "Addresses: unix:PATH, PATH, unix:@NAME, @NAME,\n"
        "           etcd://HOST:PORT[,HOST:PORT...]/KEY\n"
        "Exit status: 0 ok, 1 error, 2 usage, 3 closed, 4 timeout, 5 connection lost.\n"
        "See evvalue(1).\n";

/* The errors that end a command in a way of their own: the exit status a
 * script tells them apart by, and what they mean to a user where
 * strerror() alone would mislead ("Broken pipe" for a closed value). */
static const struct outcome {
        int error;
        int status;
        const char *meaning;
} outcomes[] = {
        { -EPIPE, EXIT_CLOSED, "the value was closed" },
        { -ETIMEDOUT, EXIT_TIMEOUT, "timed out" },
        { -ECONNRESET, EXIT_LOST, "connection lost" },
        { -EPROTONOSUPPORT, EXIT_ERROR, "etcd addresses are not supported by this build" },
        { -ELIBACC, EXIT_ERROR, "libevvalue-etcd could not be loaded" },
        { -ELIBBAD, EXIT_ERROR, "libevvalue-etcd could not be loaded" },
};

int fail(const char *address, int error) {
        for (size_t i = 0; i < sizeof(outcomes) / sizeof(outcomes[0]); i++)
                if (outcomes[i].error == error) {
                        fprintf(stderr, "%s: %s: %s (%s)\n", command_name, address,
                                outcomes[i].meaning, strerror(-error));
                        return outcomes[i].status;
                }
        fprintf(stderr, "%s: %s: %s\n", command_name, address, strerror(-error));
        return EXIT_ERROR;
}

int usage_error(const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "%s: ", command_name);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, " (see '%s --help')\n", command_name);
        return EXIT_USAGE;
}

/* A decimal number in [min, max], all of text. */
static int parse_number(const char *text, long long min, long long max, long long *ret) {
        char *end;
        long long n;

        if (text[0] < '0' || text[0] > '9')
                return -EINVAL;
        errno = 0;
        n = strtoll(text, &end, 10);
        if (errno != 0 || *end != '\0' || n < min || n > max)
                return -EINVAL;
        *ret = n;
        return 0;
}

int parse_timeout(const char *text, int *ret_ms) {
        long long n;
        int r = parse_number(text, 0, INT_MAX, &n);

        if (r < 0)
                return usage_error("invalid timeout '%s': milliseconds, 0 to %d", text, INT_MAX);
        *ret_ms = (int)n;
        return 0;
}

int parse_count(const char *text, uint64_t *ret) {
        long long n;
        int r = parse_number(text, 1, LLONG_MAX, &n);

        if (r < 0)
                return usage_error("invalid count '%s': a number of states, at least 1", text);
        *ret = (uint64_t)n;
        return 0;
}

int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t deadline_after(int timeout_ms) {
        return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int time_left(int64_t deadline_ms) {
        int64_t left;

        if (deadline_ms < 0)
                return -1;
        left = deadline_ms - now_ms();
        return left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left;
}

int read_all(const char *path, void **ret_data, size_t *ret_size) {
        int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
        size_t size = 0, allocated = 0;
        char *data = NULL;
        int r = 0;

        if (fd < 0)
                return -errno;
        for (;;) {
                ssize_t n;

                if (size == allocated) {
                        char *bigger = realloc(data, allocated = allocated ? 2 * allocated : 65536);

                        if (!bigger) {
                                r = -ENOMEM;
                                break;
                        }
                        data = bigger;
                }
                n = read(fd, data + size, allocated - size);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        r = n < 0 ? -errno : 0;
                        break;
                }
                size += (size_t)n;
        }
        if (fd != STDIN_FILENO)
                close(fd);
        if (r < 0) {
                free(data);
                return r;
        }
        *ret_data = data;
        *ret_size = size;
        return 0;
}

int option_error(int c, char **argv) {
        const char *arg = argv[optind - 1];
        char short_form[3] = { '-', (char)optopt, '\0' };

        if (optopt != 0 && strncmp(arg, "--", 2) != 0)
                arg = short_form;
        if (c == ':')
                return usage_error("option '%s' needs an argument", arg);
        return usage_error("unknown option '%s'", arg);
}

int operands(int argc, char **argv, int min, int max, struct address *ret) {
        int n = argc - optind, r;

        if (n < min)
                return usage_error(min == 1 ? "an address is needed"
                                            : "an address and data are needed");
        if (n > max)
                return usage_error("unexpected argument '%s'", argv[optind + max]);
        if (n == 0)
                return 0;
        r = address_parse(argv[optind], ret);
        if (r == -ENOMEM)
                return fail(argv[optind], r);
        if (r < 0)
                return usage_error("invalid address '%s'", argv[optind]);
        return 0;
}

static const struct command {
        const char *name;
        int (*main)(int argc, char **argv);
} commands[] = {
        { "serve", cmd_serve }, { "set", cmd_set },   { "get", cmd_get },
        { "watch", cmd_watch }, { "wait", cmd_wait },
};

static const struct command *command_find(const char *name) {
        for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

/* "evvalue help [COMMAND]": the command's own --help. */
static int help(int argc, char **argv) {
        static char help_option[] = "--help";
        char *help_argv[] = { NULL, help_option, NULL };
        const struct command *c;

        if (argc < 2) {
                fputs(usage_text, stdout);
                return 0;
        }
        c = command_find(argv[1]);
        if (!c)
                return usage_error("unknown command '%s'", argv[1]);
        help_argv[0] = argv[1];
        return c->main(2, help_argv);
}

int main(int argc, char **argv) {
        static char name[64];
        const struct command *c;

        if (argc < 2)
                return usage_error("a command is needed");
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
                return help(1, argv);
        if (strcmp(argv[1], "--version") == 0) {
                puts("evvalue " PACKAGE_VERSION);
                return 0;
        }
        if (strcmp(argv[1], "help") == 0)
                return help(argc - 1, argv + 1);
        c = command_find(argv[1]);
        if (!c)
                return usage_error("unknown command '%s'", argv[1]);
        snprintf(name, sizeof(name), "evvalue %s", c->name);
        command_name = name;
        return c->main(argc - 1, argv + 1);
}
