/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the criterion unit tests: sentinels for output
 * parameters, a destroy callback that counts, shorthands for the library's
 * calls that fail the test when the call does not give what is expected
 * (named *_or_fail when it must succeed, *_fails_with when it must fail and
 * leave its output alone), readiness of an fd without blocking, and a thread
 * that waits on a watcher with the handshake that tells it has begun.
 * Everything asserts on the calling thread, so only the test's own thread
 * may call what asserts.
 */
#ifndef EV_VALUE_TEST_HELPERS_H
#define EV_VALUE_TEST_HELPERS_H

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "ev-value.h"

/* Releases what a variable holds when it goes out of scope, as systemd's
 * tests do: _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
 * The functions run in the reverse order of the declarations, on every
 * return.  A failing cr_assert leaves the test by longjmp, which runs no
 * cleanup; the test's process ends right after (criterion forks one a
 * test), and a suite's .fini, which does run, is the place for what must
 * be released even then. */
#define _cleanup_(f) __attribute__((cleanup(f)))
/* For a variable that only holds an object for its cleanup to release
 * (clang counts the cleanup as no use): _cleanup_(f) _unused_ T *x = ... */
#define _unused_ __attribute__((unused))

/* Built with AddressSanitizer: the allocator is the tool's, which keeps
 * freed memory in quarantine, so resident memory says little; its own
 * leak check stands in. */
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* For _cleanup_: closes *fd if it is not negative, keeping errno. */
static inline void closep(int *fd) {
        int saved_errno = errno;

        if (*fd >= 0)
                close(*fd);
        errno = saved_errno;
}

/* Pointers no library writes on its own: an output parameter that starts as
 * one of them and is compared afterwards shows whether a call wrote it. */
#define VALUE_SENTINEL ((ev_value *)(uintptr_t)0x5e471e1)
#define WATCHER_SENTINEL ((ev_value_watcher *)(uintptr_t)0x5e471e2)
#define SNAPSHOT_SENTINEL ((ev_value_snapshot *)(uintptr_t)0x5e471e3)

/* Counts destroy callbacks and remembers the arguments of the last one. */
struct destroy_log {
        atomic_int calls;
        void *data;
        void *userdata;
};

/* Destroy callback into the struct destroy_log userdata; asserts nothing. */
static inline void record_destroy(void *data, void *userdata) {
        struct destroy_log *log = userdata;

        log->data = data;
        log->userdata = userdata;
        atomic_fetch_add(&log->calls, 1);
}

/* record_destroy, then free(data): a second call is a double free for valgrind. */
static inline void free_destroy(void *data, void *userdata) {
        record_destroy(data, userdata);
        free(data);
}

/* CLOCK_MONOTONIC in milliseconds; asserts nothing. */
static inline int64_t now_ms(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC in microseconds; asserts nothing. */
static inline int64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Runs of the SIGUSR1 handler, for the whole process.  A lock-free atomic
 * may be used from a handler. */
static atomic_int n_signals;

static inline void on_sigusr1(int sig) {
        (void)sig;
        atomic_fetch_add(&n_signals, 1);
}

/* Asserts that the handler is installed without SA_RESTART.  ppoll(2) is
 * never restarted after a handler runs, SA_RESTART or not (signal(7)), but
 * without the flag no call the library could make is restarted either:
 * every EINTR reaches the library. */
static inline void install_sigusr1_handler(void) {
        struct sigaction sa = { .sa_handler = on_sigusr1 };

        sigemptyset(&sa.sa_mask);
        sa.sa_flags = 0;
        cr_assert_eq(sigaction(SIGUSR1, &sa, NULL), 0, "sigaction: %s", strerror(errno));
        atomic_store(&n_signals, 0);
}

/* Asserts that poll(2) works; returns whether fd is readable right now. */
static inline bool fd_readable(int fd) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int n = poll(&pfd, 1, 0);

        cr_assert_geq(n, 0, "poll: %s", strerror(errno));
        return n == 1 && (pfd.revents & POLLIN);
}

/* Asserts that eventfd(2) succeeds; returns a non-blocking eventfd. */
static inline int eventfd_or_fail(void) {
        int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        cr_assert_geq(fd, 0, "eventfd: %s", strerror(errno));
        return fd;
}

/* Asserts that adding 1 to the eventfd fd succeeds. */
static inline void eventfd_write_one(int fd) {
        uint64_t one = 1;

        cr_assert_eq(write(fd, &one, sizeof(one)), (ssize_t)sizeof(one));
}

/* Asserts that fd is an eventfd; returns its counter, read from
 * /proc/self/fdinfo without touching the fd: 0 means nobody wrote it
 * since it was last cleared. */
static inline uint64_t eventfd_counter(int fd) {
        char path[64], line[256];
        uint64_t counter = 0;
        bool found = false;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        f = fopen(path, "re");
        cr_assert_not_null(f, "open %s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "eventfd-count: %" SCNx64, &counter) == 1)
                        found = true;
        fclose(f);
        cr_assert(found, "fd %d has no eventfd-count: not an eventfd", fd);
        return counter;
}

/* Asserts that /proc/self/fd can be listed; returns the number of open fds. */
static inline int count_open_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = -1; /* the directory stream's own fd */

        cr_assert_not_null(d, "opendir(/proc/self/fd): %s", strerror(errno));
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n;
}

/* Asserts that strdup(s) succeeds; returns the copy. */
static inline char *strdup_or_fail(const char *s) {
        char *p = strdup(s);

        cr_assert_not_null(p);
        return p;
}

/* Asserts that ev_value_new succeeds; returns the value. */
static inline ev_value *value_new_or_fail(void) {
        ev_value *v = NULL;

        cr_assert_eq(ev_value_new(&v), 0);
        cr_assert_not_null(v);
        return v;
}

/* Asserts that ev_value_watch(v, 0) succeeds; returns the watcher. */
static inline ev_value_watcher *watch_or_fail(ev_value *v) {
        ev_value_watcher *w = NULL;

        cr_assert_eq(ev_value_watch(v, 0, &w), 0);
        cr_assert_not_null(w);
        return w;
}

/* Asserts that ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD) succeeds. */
static inline ev_value_watcher *watch_shared_or_fail(ev_value *v) {
        ev_value_watcher *w = NULL;
        int r = ev_value_watch(v, EV_VALUE_WATCH_SHARED_FD, &w);

        cr_assert_eq(r, 0, "ev_value_watch(SHARED_FD): %s", strerror(-r));
        cr_assert_not_null(w);
        cr_assert_neq(w, WATCHER_SENTINEL);
        cr_assert_geq(ev_watcher_get_fd(w), 0);
        return w;
}

/* Asserts that setting the string s, NUL included, succeeds. */
static inline void set_string_or_fail(ev_value *v, const char *s) {
        cr_assert_eq(ev_value_set(v, s, strlen(s) + 1), 0);
}

/* Asserts that ev_value_close succeeds. */
static inline void close_or_fail(ev_value *v) {
        int r = ev_value_close(v);

        cr_assert_eq(r, 0, "ev_value_close: %s", strerror(-r));
}

/* Asserts that s is a snapshot at version holding the string str, NUL included. */
static inline void assert_snapshot_is_string(const ev_value_snapshot *s, uint64_t version,
                                             const char *str) {
        cr_assert_not_null(s);
        cr_assert_neq(s, SNAPSHOT_SENTINEL);
        cr_assert_eq(ev_snapshot_version(s), version, "version %llu, expected %llu",
                     (unsigned long long)ev_snapshot_version(s), (unsigned long long)version);
        cr_assert_eq(ev_snapshot_size(s), strlen(str) + 1, "size %zu, expected %zu",
                     ev_snapshot_size(s), strlen(str) + 1);
        cr_assert_str_eq(ev_snapshot_data(s), str);
}

/* Asserts that ev_value_get (the peek) succeeds; returns the snapshot. */
static inline ev_value_snapshot *peek_or_fail(ev_value *v) {
        ev_value_snapshot *s = NULL;
        int r = ev_value_get(v, &s);

        cr_assert_eq(r, 0, "ev_value_get: %s", strerror(-r));
        cr_assert_not_null(s);
        return s;
}

/* Asserts that a peek succeeds with version and str; drops the snapshot. */
static inline void peek_string_or_fail(ev_value *v, uint64_t version, const char *str) {
        ev_value_snapshot *s = peek_or_fail(v);

        assert_snapshot_is_string(s, version, str);
        ev_snapshot_unref(s);
}

/* Asserts that a peek fails with error and leaves its output alone. */
static inline void peek_fails_with(ev_value *v, int error) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_value_get(v, &s);

        cr_assert_eq(r, error, "ev_value_get: got %d (%s), expected %d (%s)",
                     r, strerror(-r), error, strerror(-error));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_value_get wrote *ret");
}

/* Asserts that ev_watcher_get succeeds; returns the snapshot. */
static inline ev_value_snapshot *get_or_fail(ev_value_watcher *w) {
        ev_value_snapshot *s = NULL;
        int r = ev_watcher_get(w, &s);

        cr_assert_eq(r, 0, "ev_watcher_get: %s", strerror(-r));
        cr_assert_not_null(s);
        return s;
}

/* Asserts that a get succeeds with version and str; drops the snapshot. */
static inline void get_string_or_fail(ev_value_watcher *w, uint64_t version, const char *str) {
        ev_value_snapshot *s = get_or_fail(w);

        assert_snapshot_is_string(s, version, str);
        ev_snapshot_unref(s);
}

/* Asserts that a get fails with error and leaves its output alone. */
static inline void get_fails_with(ev_value_watcher *w, int error) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_get(w, &s);

        cr_assert_eq(r, error, "ev_watcher_get: got %d (%s), expected %d (%s)",
                     r, strerror(-r), error, strerror(-error));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_watcher_get wrote *ret");
}

/* Asserts that a new watcher of v gets what v holds and is then not readable. */
static inline ev_value_watcher *watch_consumed_or_fail(ev_value *v) {
        ev_value_watcher *w = watch_or_fail(v);

        ev_snapshot_unref(get_or_fail(w));
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        return w;
}

/* Asserts that a wait succeeds with version and str; drops the snapshot. */
static inline void wait_string_or_fail(ev_value_watcher *w, int timeout_ms, int cancel_fd,
                                       uint64_t version, const char *str) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_wait(w, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, 0, "ev_watcher_wait(%d, %d): %s", timeout_ms, cancel_fd, strerror(-r));
        assert_snapshot_is_string(s, version, str);
        ev_snapshot_unref(s);
}

/* Asserts that a wait fails with error and leaves its output alone. */
static inline void wait_fails_with(ev_value_watcher *w, int timeout_ms, int cancel_fd, int error) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_wait(w, timeout_ms, cancel_fd, &s);

        cr_assert_eq(r, error, "ev_watcher_wait(%d, %d): got %d (%s), expected %d (%s)",
                     timeout_ms, cancel_fd, r, strerror(-r), error, strerror(-error));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_watcher_wait wrote *ret");
}

/* ------------------------------------------- a wait on another thread */

/* A thread that waits on a watcher.  It retries on -EBUSY: the test's
 * thread learns that the wait has begun by probing with ev_watcher_get, and
 * a probe that holds the watcher at the instant the wait starts makes the
 * wait (rightly) fail with -EBUSY. */
struct waiter {
        ev_value_watcher *w;
        int timeout_ms;
        int cancel_fd;
        ev_value_snapshot *s;
        int r;
        atomic_bool done;
};

/* ev_watcher_wait, retried while it gives -EBUSY; asserts nothing. */
static inline int wait_retrying_busy(ev_value_watcher *w, int timeout_ms, int cancel_fd,
                                     ev_value_snapshot **ret) {
        int r;

        do
                r = ev_watcher_wait(w, timeout_ms, cancel_fd, ret);
        while (r == -EBUSY);
        return r;
}

/* The waiter's thread: one wait, result in t->r and t->s; asserts nothing. */
static inline void *waiter_main(void *arg) {
        struct waiter *t = arg;

        t->r = wait_retrying_busy(t->w, t->timeout_ms, t->cancel_fd, &t->s);
        atomic_store(&t->done, true);
        return NULL;
}

/* Asserts that a waiter's thread starts waiting on w; t->s starts as SNAPSHOT_SENTINEL. */
static inline void waiter_start(struct waiter *t, pthread_t *thread, ev_value_watcher *w,
                                int timeout_ms, int cancel_fd) {
        t->w = w;
        t->timeout_ms = timeout_ms;
        t->cancel_fd = cancel_fd;
        t->s = SNAPSHOT_SENTINEL;
        t->r = 1;
        atomic_init(&t->done, false);
        cr_assert_eq(pthread_create(thread, NULL, waiter_main, t), 0);
}

/* A get on w (nothing new): -EBUSY while another thread is in one; asserts nothing. */
static inline int probe_busy(ev_value_watcher *w) {
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        int r = ev_watcher_get(w, &s);

        if (r == -EAGAIN && s != SNAPSHOT_SENTINEL)
                return -EFAULT; /* a failed get wrote *ret */
        return r;
}

/* How long a test waits for another thread to reach a point. Generous:
 * under valgrind on a loaded machine a thread went unscheduled for 5 s. */
#define THREAD_REACH_MS 30000

/* The pause between two looks at another thread's progress. A sleep, not
 * sched_yield(): under valgrind, whose threads share one lock, a yielding
 * loop can keep the thread it waits for from running. */
static inline void pause_briefly(void) {
        const struct timespec pause = { .tv_nsec = 200 * 1000 };

        nanosleep(&pause, NULL);
}

/* Asserts that another thread enters a get or wait on w (probe_busy). */
static inline void wait_until_busy(ev_value_watcher *w) {
        int64_t deadline = now_ms() + THREAD_REACH_MS;
        int r;

        while ((r = probe_busy(w)) != -EBUSY) {
                cr_assert_eq(r, -EAGAIN, "probe get: %d (%s)", r, strerror(-r));
                cr_assert_lt(now_ms(), deadline, "the waiting thread never entered ev_watcher_wait");
                pause_briefly();
        }
}

/* One ev_watcher_get, as a body for syscall_trap_run: records its result
 * and the version of the snapshot it returned (0 for none). */
struct get_call {
        ev_value_watcher *w;
        int result;
        uint64_t version;
};

static inline void get_call_once(void *userdata) {
        struct get_call *c = userdata;
        ev_value_snapshot *s = NULL;

        c->result = ev_watcher_get(c->w, &s);
        c->version = ev_snapshot_version(s);
        ev_snapshot_unref(s);
}

#endif
