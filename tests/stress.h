/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the plain pthread stress programs (tests/stress-*.c),
 * which cannot use criterion because they must run under ThreadSanitizer:
 * fail()/check() that name file:line and exit 1, a checksum for payloads,
 * monotonic time and short sleeps, fd readiness, the process's open fd
 * count and memory use, the scale factor read from EV_VALUE_STRESS_SCALE
 * (so valgrind and TSan runs can be made smaller and soak runs larger), and
 * an alarm()-based guard that turns a hang into a failure; and whether
 * valgrind or a sanitizer runs the program.
 */
#ifndef EV_VALUE_STRESS_H
#define EV_VALUE_STRESS_H

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ev-value.h"

/* RUNNING_ON_VALGRIND and UNDER_SANITIZER: under either, memory figures
 * (RSS, the allocator's counts) are the tool's, not the program's. */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
        __has_feature(memory_sanitizer)
#define UNDER_SANITIZER 1
#endif
#endif
#ifndef UNDER_SANITIZER
#define UNDER_SANITIZER 0
#endif

/* Print "file:line: FAIL: message" and exit 1; callable from any thread. */
#define fail(...) stress_fail(__FILE__, __LINE__, __VA_ARGS__)

/* fail() unless cond holds. */
#define check(cond, ...) do { if (!(cond)) fail(__VA_ARGS__); } while (0)

/* fail() with strerror(-r) unless r == 0, for the library's -errno returns. */
#define check_ok(r, what) do { \
                int check_ok_r_ = (r); \
                if (check_ok_r_ != 0) \
                        fail("%s: %s (%d)", (what), strerror(-check_ok_r_), check_ok_r_); \
        } while (0)

static const char *stress_program = "stress";

__attribute__((format(printf, 3, 4), noreturn))
static inline void stress_fail(const char *file, int line, const char *fmt, ...) {
        char msg[512];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        /* One fprintf so messages from two failing threads do not interleave. */
        fprintf(stderr, "%s: %s:%d: FAIL: %s\n", stress_program, file, line, msg);
        fflush(stderr);
        /* exit() would run atexit handlers while other threads still use the
         * library; the failure is already reported. */
        _exit(1);
}

/* 64-bit FNV-1a: cheap, and any changed or shifted byte changes it. */
static inline uint64_t stress_checksum(const void *data, size_t size) {
        const unsigned char *p = data;
        uint64_t h = UINT64_C(0xcbf29ce484222325);
        size_t i;

        for (i = 0; i < size; i++) {
                h ^= p[i];
                h *= UINT64_C(0x100000001b3);
        }
        return h;
}

static inline int64_t stress_now_ns(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double stress_elapsed_s(int64_t start_ns) {
        return (double)(stress_now_ns() - start_ns) / 1e9;
}

static inline void stress_sleep_us(unsigned us) {
        struct timespec ts = { .tv_sec = us / 1000000, .tv_nsec = (long)(us % 1000000) * 1000 };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Wait up to timeout_ms (negative: forever) for POLLIN on fd: 1 readable,
 * 0 timed out. */
static inline int stress_wait_readable(int fd, int timeout_ms) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        int64_t deadline = stress_now_ns() + (int64_t)timeout_ms * 1000000;
        int n;

        for (;;) {
                int64_t left_ms = (deadline - stress_now_ns()) / 1000000;

                if (timeout_ms < 0)
                        left_ms = -1;
                else if (left_ms < 0)
                        left_ms = 0;
                n = poll(&pfd, 1, (int)left_ms);
                if (n >= 0 || errno != EINTR)
                        break;
        }
        if (n < 0)
                fail("poll(fd %d): %s", fd, strerror(errno));
        if (n == 1 && (pfd.revents & POLLNVAL))
                fail("poll(fd %d): POLLNVAL, the fd is not open", fd);
        return n == 1 && (pfd.revents & POLLIN);
}

static inline bool stress_fd_readable(int fd) {
        return stress_wait_readable(fd, 0) == 1;
}

/* Number of open fds of this process, or -1 when /proc is not mounted. */
static inline int stress_count_fds(void) {
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        int n = 0;

        if (!d)
                return -1;
        while ((e = readdir(d)))
                if (e->d_name[0] != '.')
                        n++;
        closedir(d);
        return n - 1; /* the directory stream's own fd */
}

/* Resident set size in bytes, or 0 when /proc is not mounted. */
static inline uint64_t stress_rss_bytes(void) {
        unsigned long size, resident;
        FILE *f = fopen("/proc/self/statm", "re");
        int n;

        if (!f)
                return 0;
        n = fscanf(f, "%lu %lu", &size, &resident);
        fclose(f);
        if (n != 2)
                return 0;
        return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* EV_VALUE_STRESS_SCALE multiplies the default counts: 0.05 under valgrind,
 * 10 for a soak run.  The result is never below min. */
static inline unsigned long stress_scaled(unsigned long count, unsigned long min) {
        const char *e = getenv("EV_VALUE_STRESS_SCALE");
        double scale = 1.0, n;

        if (e && *e) {
                char *end;

                scale = strtod(e, &end);
                if (*end != '\0' || !(scale > 0.0) || scale > 1e6)
                        fail("EV_VALUE_STRESS_SCALE=%s: want a positive number", e);
        }
        n = (double)count * scale;
        if (n < (double)min)
                return min;
        return (unsigned long)n;
}

/* The count to run: argv[1] when given, else the default scaled. */
static inline unsigned long stress_count_arg(int argc, char **argv, unsigned long count,
                                             unsigned long min) {
        if (argc > 1) {
                char *end;
                unsigned long n;

                errno = 0;
                n = strtoul(argv[1], &end, 10);
                if (errno || *end != '\0' || n < min)
                        fail("usage: %s [COUNT >= %lu]", argv[0], min);
                return n;
        }
        return stress_scaled(count, min);
}

static inline void stress_on_alarm(int sig) {
        static const char msg[] = ": FAIL: still running when the time guard expired "
                                  "(a hang, or EV_VALUE_STRESS_TIMEOUT too short)\n";
        ssize_t n;

        (void)sig;
        n = write(STDERR_FILENO, stress_program, strlen(stress_program));
        n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
        (void)n;
        _exit(1);
}

/* Name the program in messages and fail it if it runs longer than seconds
 * (EV_VALUE_STRESS_TIMEOUT overrides, 0 disables).  Returns the timeout in
 * milliseconds, the bound for any single wait in the program. */
static inline int stress_begin(const char *name, unsigned seconds) {
        const char *e = getenv("EV_VALUE_STRESS_TIMEOUT");
        struct sigaction sa;

        stress_program = name;
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (e && *e) {
                char *end;
                unsigned long s = strtoul(e, &end, 10);

                if (*end != '\0' || s > 86400)
                        fail("EV_VALUE_STRESS_TIMEOUT=%s: want seconds, 0 for none", e);
                seconds = (unsigned)s;
        }
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = stress_on_alarm;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGALRM, &sa, NULL) < 0)
                fail("sigaction(SIGALRM): %s", strerror(errno));
        alarm(seconds);
        return seconds ? (int)(seconds * 1000) : -1;
}

#endif
