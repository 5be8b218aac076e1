/* SPDX-License-Identifier: MIT */
/*
 * evvalue wait: exit 0 once the value's state equals some bytes or matches
 * a regular expression, for scripts that wait for a service to say it is
 * ready.  It is ev_watcher_wait_until() with a predicate, the Go
 * original's Filter: the states in between are looked at only if they are
 * the newest when the watcher wakes.
 */
#include "config.h"

#include <getopt.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evvalue.h"

static const char usage_text[] =
        "Usage: evvalue wait ADDR (--equals DATA | --match REGEX) [--timeout MS]\n"
        "                         [--json | --format FMT]\n"
        "Exit 0 once the value's state equals DATA or matches REGEX (checking the\n"
        "current state first).\n"
        "\n"
        "  -E, --equals DATA   wait for a state of exactly these bytes\n"
        "  -m, --match REGEX   wait for a state that an extended regular\n"
        "                      expression matches anywhere\n"
        "  -t, --timeout MS    give up after MS milliseconds (exit 4)\n"
        "  -j, --json          print the state that satisfied it, as JSON\n"
        "  -f, --format FMT    print the state that satisfied it with FMT\n"
        "  -h, --help          show this help\n";

static const struct option options[] = {
        { "equals", required_argument, NULL, 'E' },
        { "match", required_argument, NULL, 'm' },
        { "timeout", required_argument, NULL, 't' },
        { "json", no_argument, NULL, 'j' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        {},
};

struct condition {
        const char *equals;
        const char *match;
        regex_t regex;
        char *text;             /* the state being matched, NUL-terminated */
};

/* REG_STARTEND bounds the search by the size, so states may hold NULs; the
 * copy ends in a NUL all the same, for regexec() implementations (and
 * sanitizers' interceptors) that look for one.  A state the copy cannot
 * be made for is taken as not matching: the next one is tried. */
static bool satisfied(const ev_value_snapshot *s, void *userdata) {
        struct condition *cond = userdata;
        const char *data = ev_snapshot_data(s);
        size_t size = ev_snapshot_size(s);
        regmatch_t bounds = { .rm_so = 0, .rm_eo = (regoff_t)size };
        char *text;

        if (cond->equals)
                return size == strlen(cond->equals) && memcmp(data, cond->equals, size) == 0;
        text = realloc(cond->text, size + 1);
        if (!text)
                return false;
        cond->text = text;
        memcpy(text, data ? data : "", size);
        text[size] = '\0';
        return regexec(&cond->regex, text, 1, &bounds, REG_STARTEND) == 0;
}

static int wait_for(struct source *src, struct condition *cond, int timeout_ms,
                    const struct output *o) {
        ev_value_snapshot *s;
        int r = ev_watcher_wait_until(src->watcher, satisfied, cond, timeout_ms, -1, &s);

        if (r < 0)
                return fail(src->address->text, r);
        r = o ? output_snapshot(o, s, source_is_absent(src, s)) : 0;
        ev_snapshot_unref(s);
        return r < 0 ? fail("stdout", r) : 0;
}

static int parse(int argc, char **argv, struct condition *cond, int *timeout_ms,
                 struct output **o, struct address *a) {
        const char *format = NULL;
        bool json = false;
        int c, r;

        opterr = 0;
        while ((c = getopt_long(argc, argv, ":E:m:t:jf:h", options, NULL)) != -1) {
                switch (c) {
                case 'E':
                        cond->equals = optarg;
                        break;
                case 'm':
                        cond->match = optarg;
                        break;
                case 't':
                        if ((r = parse_timeout(optarg, timeout_ms)))
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
                        return -1;
                default:
                        return option_error(c, argv);
                }
        }
        if (!cond->equals == !cond->match)
                return usage_error("exactly one of --equals and --match is needed");
        if ((r = operands(argc, argv, 1, 1, a)))
                return r;
        if (!json && !format) {
                *o = NULL;
                return 0;
        }
        return output_setup(json, format, NULL, a, *o);
}

int cmd_wait(int argc, char **argv) {
        struct condition cond = {};
        struct address a = {};
        struct output output, *o = &output;
        struct source src;
        int timeout_ms = -1, r = parse(argc, argv, &cond, &timeout_ms, &o, &a);
        bool compiled = false;

        if (r == 0 && cond.match) {
                compiled = regcomp(&cond.regex, cond.match, REG_EXTENDED | REG_NOSUB) == 0;
                if (!compiled)
                        r = usage_error("invalid regular expression '%s'", cond.match);
        }
        if (r == 0) {
                r = source_open(&a, 0, &src);
                if (r < 0)
                        r = fail(a.text, r);
                else {
                        r = wait_for(&src, &cond, timeout_ms, o);
                        source_close(&src);
                }
        }
        if (compiled)
                regfree(&cond.regex);
        free(cond.text);
        address_clear(&a);
        return r < 0 ? 0 : r;
}
