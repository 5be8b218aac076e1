/* SPDX-License-Identifier: MIT */
/*
 * Test harness: real etcd clusters of 1 to 5 members on 127.0.0.1, for the
 * tests, plain programs and benchmarks of the etcd backend.  A cluster
 * lives in one fresh temporary directory (a data dir and a log file per
 * member); its members are children of the calling process, started with
 * fast elections, and can be killed (SIGKILL) and restarted with the same
 * name, ports and data to inject faults; etcdctl runs against all of them
 * or one.  Nothing here depends on criterion, installs a signal handler or
 * prints, except a diagnostic on stderr when the harness itself fails.
 * Members get PR_SET_PDEATHSIG(SIGKILL): a test that dies leaves no etcd
 * running, but this ties each member to the thread that started it (the
 * one that called etcd_cluster_start or etcd_cluster_restart): that thread
 * must outlive the member.  A cluster belongs to the process that started
 * it; in a forked child, etcd_cluster_free only releases memory.  Members
 * are reaped with waitpid() on their pid, so SIGCHLD must not be ignored.
 */
#ifndef EV_VALUE_TESTS_ETCD_CLUSTER_H
#define EV_VALUE_TESTS_ETCD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

struct etcd_cluster;

/* The most members a cluster may have. */
#define ETCD_CLUSTER_MAX_MEMBERS 5

/* Start n_members (1..5) etcd members on 127.0.0.1 with fresh free ports
 * (client and peer), a fresh temporary data dir per member under one
 * mkdtemp dir (in $TMPDIR or /tmp), one unique --initial-cluster-token,
 * and wait until every member reports healthy (at most 20 s).  0; -ENOENT
 * when the etcd or etcdctl binary is not found (callers skip and say why:
 * use etcd_cluster_absent_reason()); other -errno on failure (then nothing
 * is left running and nothing left on disk).  etcd is $ETCD if set, else
 * found in PATH; etcdctl likewise with $ETCDCTL. */
int etcd_cluster_start(unsigned n_members, struct etcd_cluster **ret);
/* Why etcd_cluster_start returned -ENOENT, e.g. "etcd not found in PATH
 * (Debian: apt-get install etcd-server etcd-client)".  Valid until the
 * calling thread calls it again. */
const char *etcd_cluster_absent_reason(void);

unsigned etcd_cluster_size(const struct etcd_cluster *c);
/* "http://127.0.0.1:P1,http://127.0.0.1:P2,..." (all members' client URLs,
 * in member order). */
const char *etcd_cluster_endpoints(const struct etcd_cluster *c);
/* One member's client URL "http://127.0.0.1:P" (NULL if i >= size). */
const char *etcd_cluster_member_url(const struct etcd_cluster *c, unsigned i);
/* "127.0.0.1:P" for member i (for the TCP proxy; NULL if i >= size). */
const char *etcd_cluster_member_hostport(const struct etcd_cluster *c, unsigned i);
/* Whether member i's process is alive (not killed, not exited). */
bool etcd_cluster_member_running(const struct etcd_cluster *c, unsigned i);
/* Member i's pid, or 0 when it is not running (killed, or exited and
 * reaped). */
pid_t etcd_cluster_member_pid(const struct etcd_cluster *c, unsigned i);
/* The cluster's temporary directory: mN/ is member N's data, mN.log its
 * log, etcdctl.log the stderr of every etcdctl run. */
const char *etcd_cluster_dir(const struct etcd_cluster *c);

/* SIGKILL member i and reap it (no-op 0 if not running). */
int etcd_cluster_kill(struct etcd_cluster *c, unsigned i);
/* Start member i again with the same name, ports and data dir (so it
 * rejoins); does not wait for health.  -EBUSY if it is running. */
int etcd_cluster_restart(struct etcd_cluster *c, unsigned i);
/* Wait until member i answers GET /health with {"health":"true"} (i.e. it
 * has a leader and a quorum read went through), at most timeout_ms: 0 or
 * -ETIMEDOUT; also -ESRCH at once if the member is not running or exits
 * while waited for (its log's tail then goes to stderr). */
int etcd_cluster_wait_healthy(struct etcd_cluster *c, unsigned i, int timeout_ms);

/* Run etcdctl (ETCDCTL_API=3, --endpoints=<all members or one member if
 * member >= 0>, --command-timeout=5s) with the given extra args
 * (NULL-terminated), capture stdout (NUL-terminated, truncated to
 * out_size-1) if out is not NULL; returns the exit status (0..255) or
 * -errno if it could not run (-ETIMEDOUT, after killing it, if it ran for
 * more than 30 s).  Its stderr is kept: etcd_cluster_etcdctl_stderr(). */
int etcd_cluster_etcdctl(struct etcd_cluster *c, int member, char *out, size_t out_size,
                         const char *const *args);
/* The stderr of the last etcdctl run (truncated to 1 KiB), for failure
 * messages; "" before any. */
const char *etcd_cluster_etcdctl_stderr(const struct etcd_cluster *c);
/* Compact the cluster's history up to the current revision (etcdctl
 * compact `rev` --physical), returning the revision compacted at, or
 * -errno (-EIO when etcdctl failed, -EPROTO when its output made no
 * sense). */
int64_t etcd_cluster_compact(struct etcd_cluster *c);

/* Write the last lines of every member's log to f, for a failure message. */
void etcd_cluster_print_logs(const struct etcd_cluster *c, FILE *f);

/* SIGKILL every member still running, reap them, remove the temporary
 * dirs, free.  NULL ok.  Safe from an atexit handler or a criterion .fini
 * (not from a signal handler). */
void etcd_cluster_free(struct etcd_cluster *c);

#endif
