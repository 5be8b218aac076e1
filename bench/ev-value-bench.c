/* SPDX-License-Identifier: MIT */
/*
 * ev-value-bench: every scenario of the benchmark, each against a baseline
 * measured in the same run.  `make bench` runs it in full; `--quick` runs
 * each scenario briefly, as a smoke test for CI, whose numbers mean little;
 * `--runs N` repeats the selected scenarios N times and ends with a table of
 * each row's median ratio and its range over the runs, so that one lucky or
 * unlucky run cannot pass for the result.  Every run ends with the count of
 * rows that met their target and the list of those that missed it; a miss
 * does not change the exit status, which says only whether a scenario
 * failed to run.
 *
 *   ev-value-bench [--quick] [--cpus A,B] [--scenario NAME[,NAME...]] [--csv FILE]
 *                  [--runs N]
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "bench.h"

#ifndef HAVE_ETCD_BENCH
/* Without libevvalue-etcd the scenario is still listed, and skips. */
int bench_etcd(void) {
        printf("# etcd: skipped: this build has no libevvalue-etcd (configure --with-etcd "
               "needs libcurl >= 7.85 and json-c; Debian: libcurl4-openssl-dev "
               "libjson-c-dev)\n");
        return 77;
}
#endif

static const struct bench_scenario scenarios[] = {
        { "get", "no-change get vs one atomic RMW and a read() of an empty eventfd", bench_get },
        { "set-idle", "set with N idle watchers vs a malloc+xchg floor, 1 watcher, a naive loop",
          bench_set_idle },
        { "set-armed", "set with N watchers re-armed on the other CPU vs malloc/free + N writes",
          bench_set_armed },
        { "ping-pong", "wake latency between two threads vs raw eventfds waited on alike",
          bench_ping_pong },
        { "fan-out", "one producer, K consumers in epoll (own fd or shared ET fd) vs raw eventfds",
          bench_fan_out },
        { "producer-under-load",
          "full-speed sets with K consumers draining in poll vs a lock-free eventfd design",
          bench_producer_under_load },
        { "peers", "ZeroMQ CONFLATE and a condition variable on the same protocols",
          bench_peers },
        { "memory", "bytes per watcher, per snapshot and per eventfd at 10,000 watchers",
          bench_memory },
        { "ipc", "a value served to other processes vs raw sockets between the same processes",
          bench_ipc },
        { "etcd", "a value in etcd: put-to-watcher vs etcdctl watch, a watcher vs a local one",
          bench_etcd },
};

static void usage(FILE *out) {
        fprintf(out, "usage: ev-value-bench [--quick] [--cpus A,B] [--scenario NAME[,NAME...]] "
                     "[--csv FILE] [--runs N]\nscenarios:\n");
        for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
                fprintf(out, "  %-19s %s\n", scenarios[i].name, scenarios[i].summary);
}

static int parse_options(int argc, char **argv) {
        static const struct option longopts[] = {
                { "quick", no_argument, NULL, 'q' },
                { "cpus", required_argument, NULL, 'c' },
                { "scenario", required_argument, NULL, 's' },
                { "csv", required_argument, NULL, 'o' },
                { "runs", required_argument, NULL, 'r' },
                { "help", no_argument, NULL, 'h' },
                { 0 },
        };
        int opt;

        while ((opt = getopt_long(argc, argv, "qc:s:o:r:h", longopts, NULL)) != -1) {
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
                case 'r':
                        bench_opt.runs = atoi(optarg);
                        if (bench_opt.runs < 1) {
                                fprintf(stderr, "--runs wants a count of 1 or more\n");
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

/* The machine and the command line, so that a saved output says how to
 * run it again. */
static void print_machine(int argc, char **argv) {
        struct utsname u;

        uname(&u);
        printf("# ev-value-bench%s: %s %s, %ld CPUs online; two CPUs = %d,%d, one CPU = %d\n"
               "# command: ev-value-bench",
               bench_opt.quick ? " --quick (smoke test: numbers mean little)" : "", u.sysname,
               u.release, sysconf(_SC_NPROCESSORS_ONLN), bench_opt.cpu_a, bench_opt.cpu_b,
               bench_opt.cpu_a);
        for (int i = 1; i < argc; i++)
                printf(" %s", argv[i]);
        printf("\n");
}

/* Whether --scenario names scenario i, alone or in a comma-separated list. */
static bool scenario_selected(size_t i) {
        size_t len = strlen(scenarios[i].name);

        if (!bench_opt.only)
                return true;
        for (const char *p = bench_opt.only; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, scenarios[i].name, len) == 0 && (p[len] == ',' || p[len] == '\0'))
                        return true;
        return false;
}

/* Whether every name in --scenario names a scenario; says which does not. */
static bool names_known(void) {
        for (const char *p = bench_opt.only; p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
                size_t len = strcspn(p, ",");
                bool known = false;

                for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
                        known |= strlen(scenarios[i].name) == len &&
                                 strncmp(p, scenarios[i].name, len) == 0;
                if (!known) {
                        fprintf(stderr, "no scenario named %.*s\n", (int)len, p);
                        return false;
                }
        }
        return true;
}

/* One pass over the selected scenarios; how many failed. */
static int run_scenarios(void) {
        int failed = 0;

        for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
                int r;

                if (!scenario_selected(i))
                        continue;
                printf("\n## %s: %s\n", scenarios[i].name, scenarios[i].summary);
                r = scenarios[i].run();
                if (r == 77)
                        printf("# %s skipped\n", scenarios[i].name);
                else if (r != 0) {
                        printf("# %s FAILED\n", scenarios[i].name);
                        failed++;
                }
        }
        return failed;
}

int main(int argc, char **argv) {
        int failed = 0;

        bench_init();
        if (parse_options(argc, argv) < 0)
                return 2;
        if (!names_known()) {
                usage(stderr);
                return 2;
        }
        print_machine(argc, argv);
        for (bench_opt.run = 1; bench_opt.run <= bench_opt.runs; bench_opt.run++) {
                if (bench_opt.runs > 1)
                        printf("\n# ---- run %d of %d ----\n", bench_opt.run, bench_opt.runs);
                failed += run_scenarios();
        }
        if (bench_opt.runs > 1)
                bench_summary_print();
        bench_targets_print();
        if (bench_opt.csv)
                fclose(bench_opt.csv);
        return failed ? 1 : 0;
}
