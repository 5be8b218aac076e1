/* SPDX-License-Identifier: MIT */
/*
 * etcd-run COMMAND [ARG...]: run a command next to a fresh one-member etcd
 * (tests/etcd-cluster.c: 127.0.0.1, free ports, a temporary data dir),
 * whose client URL it finds in $ETCD_ENDPOINTS, and kill the member after
 * it.  Exits with the command's status; 77 (skip), saying why, without
 * etcd.  What the shell tests of the examples stand on.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etcd-cluster.h"

int main(int argc, char **argv) {
        struct etcd_cluster *cluster;
        int r, status;
        pid_t pid;

        if (argc < 2) {
                fprintf(stderr, "usage: etcd-run COMMAND [ARG...]\n");
                return 2;
        }
        r = etcd_cluster_start(1, &cluster);
        if (r == -ENOENT) {
                printf("etcd-run: SKIP: %s\n", etcd_cluster_absent_reason());
                return 77;
        }
        if (r < 0) {
                fprintf(stderr, "etcd-run: starting etcd: %s\n", strerror(-r));
                return 1;
        }
        setenv("ETCD_ENDPOINTS", etcd_cluster_endpoints(cluster), 1);
        pid = fork();
        if (pid == 0) {
                execvp(argv[1], argv + 1);
                fprintf(stderr, "etcd-run: %s: %s\n", argv[1], strerror(errno));
                _exit(127);
        }
        r = pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) ? WEXITSTATUS(status) : 1;
        etcd_cluster_free(cluster);
        return r;
}
