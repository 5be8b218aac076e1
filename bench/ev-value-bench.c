/* SPDX-License-Identifier: MIT */
/*
 * ev-value-bench: every scenario of the benchmark, each against a baseline
 * measured in the same run.  `make bench` runs it in full; `--quick` runs
 * each scenario briefly, as a smoke test for CI, whose numbers mean little.
 *
 *   ev-value-bench [--quick] [--cpus A,B] [--scenario NAME] [--csv FILE]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

static const struct bench_scenario scenarios[] = {
        { "get", "no-change get vs one atomic RMW and a read() of an empty eventfd", bench_get },
        { "set-idle", "set with N idle watchers vs 1 watcher and a naive write-every-fd loop",
          bench_set_idle },
        { "set-armed", "set with N armed watchers vs a bare loop of N eventfd writes",
          bench_set_armed },
        { "ping-pong", "wake latency between two threads vs two raw eventfds", bench_ping_pong },
        { "fan-out", "one producer, K consumers in their own epoll vs raw eventfds",
          bench_fan_out },
        { "peers", "ZeroMQ CONFLATE and a condition variable on the same protocols",
          bench_peers },
        { "memory", "bytes per watcher, per snapshot and per eventfd at 10,000 watchers",
          bench_memory },
        { "explore-uring", "waking K consumers: K write()s vs one io_uring_enter (design study)",
          bench_explore_uring },
        { "explore-shared", "waking K edge-triggered consumers: K eventfds vs one shared fd",
          bench_explore_shared },
};

static void usage(FILE *out) {
        fprintf(out, "usage: ev-value-bench [--quick] [--cpus A,B] [--scenario NAME] "
                     "[--csv FILE]\nscenarios:\n");
        for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
                fprintf(out, "  %-10s %s\n", scenarios[i].name, scenarios[i].summary);
}

static int parse_options(int argc, char **argv) {
        static const struct option longopts[] = {
                { "quick", no_argument, NULL, 'q' },
                { "cpus", required_argument, NULL, 'c' },
                { "scenario", required_argument, NULL, 's' },
                { "csv", required_argument, NULL, 'o' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        int opt;

        while ((opt = getopt_long(argc, argv, "qc:s:o:h", longopts, NULL)) != -1) {
                switch (opt) {
                case 'q':
                        bench_opt.quick = true;
                        break;
                case 'c':
                        if (sscanf(optarg, "%d,%d", &bench_opt.cpu_a, &bench_opt.cpu_b) != 2) {
                                fprintf(stderr, "--cpus wants A,B (e.g. 0,1)\n");
                                return -1;
                        }
                        break;
                case 's':
                        bench_opt.only = optarg;
                        break;
                case 'o':
                        bench_opt.csv = fopen(optarg, "w");
                        if (!bench_opt.csv) {
                                fprintf(stderr, "%s: %s\n", optarg, strerror(errno));
                                return -1;
                        }
                        break;
                case 'h':
                        usage(stdout);
                        exit(0);
                default:
                        usage(stderr);
                        return -1;
                }
        }
        return 0;
}

static void print_machine(void) {
        struct utsname u;

        uname(&u);
        printf("# ev-value-bench%s: %s %s, %ld CPUs online; two CPUs = %d,%d, one CPU = %d\n",
               bench_opt.quick ? " --quick (smoke test: numbers mean little)" : "", u.sysname,
               u.release, sysconf(_SC_NPROCESSORS_ONLN), bench_opt.cpu_a, bench_opt.cpu_b,
               bench_opt.cpu_a);
}

int main(int argc, char **argv) {
        int failed = 0, ran = 0;

        if (parse_options(argc, argv) < 0)
                return 2;
        print_machine();
        for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
                int r;

                if (bench_opt.only && strcmp(bench_opt.only, scenarios[i].name) != 0)
                        continue;
                printf("\n## %s: %s\n", scenarios[i].name, scenarios[i].summary);
                r = scenarios[i].run();
                ran++;
                if (r == 77)
                        printf("# %s skipped\n", scenarios[i].name);
                else if (r != 0) {
                        printf("# %s FAILED\n", scenarios[i].name);
                        failed++;
                }
        }
        if (ran == 0) {
                fprintf(stderr, "no scenario named %s\n", bench_opt.only);
                return 2;
        }
        if (bench_opt.csv)
                fclose(bench_opt.csv);
        return failed ? 1 : 0;
}
