/* SPDX-License-Identifier: MIT */
/*
 * evvalue get: print the value's current state, or with --wait the next
 * one, and exit.  A connection learns the current state only when the
 * server's first message arrives, so even a plain get waits for it.
 */
#include "config.h"

#include <getopt.h>
#include <stdio.h>

#include "evvalue.h"

static const char usage_text[] =
        "Usage: evvalue get ADDR [--wait] [--timeout MS] [--json | --format FMT]\n"
        "Print the current state of the value, or the next one.\n"
        "\n"
        "  -w, --wait          print the next state, not the current one\n"
        "  -t, --timeout MS    give up after MS milliseconds (exit 4)\n"
        "  -j, --json          print a JSON object\n"
        "  -f, --format FMT    print FMT: %s bytes, %v version, %z size, %b base64,\n"
        "                      %a absent; default '%s' (the exact bytes)\n"
        "  -h, --help          show this help\n";

static const struct option options[] = {
        { "wait", no_argument, NULL, 'w' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        {},
};

/* Take one snapshot from the source and print it. */
static int get_one(struct source *src, const struct output *o, int64_t deadline) {
        ev_value_snapshot *s;
        int r = source_next(src, deadline, &s);

        if (r < 0)
                return fail(src->address->text, r);
        r = output_snapshot(o, s, source_is_absent(src, s));
        ev_snapshot_unref(s);
        return r < 0 ? fail("stdout", r) : 0;
}

int cmd_get(int argc, char **argv) {
        struct address a = {};
        struct source src;
        struct output o;
        const char *format = NULL;
        bool json = false, next = false;
        int timeout_ms = -1, c, r;
        int64_t deadline;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":wt:jf:h", options, NULL)) != -1) {
                switch (c) {
                case 'w':
                        next = true;
                        break;
                case 't':
                        if ((r = parse_timeout(optarg, &timeout_ms)))
                                return r;
                        break;
                case 'j':
                        json = true;
                        break;
                case 'f':
                        format = optarg;
                        break;
                case 'h':
                        fputs(usage_text, stdout);
                        return 0;
                default:
                        return option_error(c, argv);
                }
        }
        if ((r = operands(argc, argv, 1, 1, &a)))
                return r;
        deadline = deadline_after(timeout_ms);
        if ((r = output_setup(json, format, "%s", &a, &o)) == 0) {
                r = source_open(&a, next ? EV_VALUE_WATCH_SKIP_CURRENT : 0, &src);
                if (r < 0)
                        r = fail(a.text, r);
                else {
                        r = get_one(&src, &o, deadline);
                        source_close(&src);
                }
        }
        address_clear(&a);
        return r;
}
