/* SPDX-License-Identifier: MIT */
/*
 * evvalue set: set the value to an argument's bytes or to stdin's, and
 * wait for the server's (or etcd's) answer; or delete an etcd key.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evvalue.h"

static const char usage_text[] =
        "Usage: evvalue set ADDR DATA|- [--if-changed] [--timeout MS]\n"
        "       evvalue set ADDR --delete [--timeout MS]\n"
        "Set the value to DATA, or to the bytes read from stdin for '-'.\n"
        "\n"
        "  -c, --if-changed    set only if the bytes differ from the current state\n"
        "  -d, --delete        delete the key (etcd addresses only)\n"
        "  -t, --timeout MS    give up after MS milliseconds (exit 4)\n"
        "  -h, --help          show this help\n";

static const struct option options[] = {
        { "if-changed", no_argument, NULL, 'c' },
        { "delete", no_argument, NULL, 'd' },
        { "timeout", required_argument, NULL, 't' },
        { "help", no_argument, NULL, 'h' },
        {},
};

static int set_data(const struct address *a, const char *arg, unsigned flags, int timeout_ms) {
        void *data = (void *)arg;
        size_t size = strlen(arg);
        int r = 0;

        if (strcmp(arg, "-") == 0 && (r = read_all("-", &data, &size)) < 0)
                return fail("stdin", r);
        r = source_set(a, data, size, flags, timeout_ms);
        if (data != arg)
                free(data);
        return r < 0 ? fail(a->text, r) : 0;
}

int cmd_set(int argc, char **argv) {
        struct address a = {};
        unsigned flags = 0;
        bool delete = false;
        int timeout_ms = -1, c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":cdt:h", options, NULL)) != -1) {
                switch (c) {
                case 'c':
                        flags |= EV_VALUE_SET_IF_CHANGED;
                        break;
                case 'd':
                        delete = true;
                        break;
                case 't':
                        if ((r = parse_timeout(optarg, &timeout_ms)))
                                return r;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return 0;
                default:
                        return option_error(c, argv);
                }
        }
        if (delete && flags)
                return usage_error("--delete excludes --if-changed");
        if ((r = operands(argc, argv, delete ? 1 : 2, delete ? 1 : 2, &a)))
                return r;
        if (delete && a.kind != ADDRESS_ETCD) {
                r = usage_error("--delete needs an etcd address: "
                                "a served value has no absent state");
        } else if (delete) {
                r = source_delete(&a, timeout_ms);
                r = r < 0 ? fail(a.text, r) : 0;
        } else {
                r = set_data(&a, argv[optind + 1], flags, timeout_ms);
        }
        address_clear(&a);
        return r;
}
