/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of running out of file descriptors.  Each test lowers its own
 * RLIMIT_NOFILE soft limit (criterion runs every test in a forked process,
 * so the limit dies with it) and watches until ev_value_watch fails: the
 * error must be exactly -EMFILE, with *ret untouched, no fd, memory or
 * value reference leaked, and everything else working: the other watchers
 * still receive sets, set/get/wait need no new fd, and a watch succeeds
 * again once an fd is free or the limit is raised.  Open fds are counted
 * through a /proc/self/fd directory opened before the limit is lowered,
 * since opening it again at the limit would itself fail.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "helpers.h"

/* Watchers created to reach the limit; far more than the few free slots. */
#define MAX_FILL 64
/* Free fd numbers left below the lowered limit (at least). */
#define HEADROOM 4

struct fd_limit {
        struct rlimit saved;
        rlim_t soft;            /* the lowered soft limit */
        int proc_fd;            /* /proc/self/fd, opened before lowering */
};

/* Number of open fds in this process, proc_fd included. */
static int count_fds_below_limit(const struct fd_limit *lim) {
        char buf[4096] __attribute__((aligned(8)));
        int n = 0;

        cr_assert_eq(lseek(lim->proc_fd, 0, SEEK_SET), 0, "rewind /proc/self/fd: %s", strerror(errno));
        for (;;) {
                ssize_t len = getdents64(lim->proc_fd, buf, sizeof(buf));
                ssize_t off;

                cr_assert_geq(len, 0, "getdents64: %s", strerror(errno));
                if (len == 0)
                        return n;
                for (off = 0; off < len;) {
                        const struct dirent64 *d = (const void *)(buf + off);

                        if (d->d_name[0] != '.')
                                n++;
                        off += d->d_reclen;
                }
        }
}

/* Lower the soft limit to the number of open fds plus HEADROOM, so that
 * between HEADROOM and a few more fd numbers stay free.  Skips the test
 * when the limit is not enforced (valgrind keeps its own fd table and only
 * pretends to apply RLIMIT_NOFILE). */
static void lower_fd_limit(struct fd_limit *lim) {
        struct rlimit rl;
        int probe[HEADROOM + 64];
        int n_probe = 0, i;
        bool enforced = false;

        lim->proc_fd = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lim->proc_fd < 0)
                cr_skip_test("cannot open /proc/self/fd: %s", strerror(errno));
        cr_assert_eq(getrlimit(RLIMIT_NOFILE, &lim->saved), 0);
        lim->soft = (rlim_t)count_fds_below_limit(lim) + HEADROOM;
        cr_assert_lt(lim->soft, lim->saved.rlim_cur, "the soft limit is already tiny");
        rl = lim->saved;
        rl.rlim_cur = lim->soft;
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0, "setrlimit: %s", strerror(errno));

        /* Check that the kernel really refuses fds at the new limit. */
        while (n_probe < (int)(sizeof(probe) / sizeof(probe[0]))) {
                int fd = fcntl(lim->proc_fd, F_DUPFD_CLOEXEC, 0);

                if (fd < 0) {
                        cr_assert_eq(errno, EMFILE, "dup: %s", strerror(errno));
                        enforced = true;
                        break;
                }
                probe[n_probe++] = fd;
                if ((rlim_t)fd >= lim->soft)
                        break;
        }
        for (i = 0; i < n_probe; i++)
                close(probe[i]);
        if (!enforced)
                cr_skip_test("RLIMIT_NOFILE is not enforced here (running under valgrind?)");
}

static void restore_fd_limit(struct fd_limit *lim) {
        cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim->saved), 0, "setrlimit: %s", strerror(errno));
}

/* Watch v until the fd limit is reached; returns how many watchers were
 * made.  The call that fails must fail with -EMFILE and leave *ret alone. */
static int fill_watchers(ev_value *v, ev_value_watcher **ws) {
        int n;

        for (n = 0; n < MAX_FILL; n++) {
                ev_value_watcher *w = WATCHER_SENTINEL;
                int r = ev_value_watch(v, 0, &w);

                if (r < 0) {
                        cr_assert_eq(r, -EMFILE, "ev_value_watch at the fd limit: got %d (%s), expected -EMFILE",
                                     r, strerror(-r));
                        cr_assert_eq(w, WATCHER_SENTINEL, "failed ev_value_watch wrote *ret");
                        break;
                }
                cr_assert_eq(r, 0);
                cr_assert_not_null(w);
                cr_assert_neq(w, WATCHER_SENTINEL);
                ws[n] = w;
        }
        cr_assert_lt(n, MAX_FILL, "never reached the fd limit");
        cr_assert_geq(n, HEADROOM, "only %d watchers below a limit with %d free fds", n, HEADROOM);
        return n;
}

static void close_watchers(ev_value_watcher **ws, int n) {
        int i;

        for (i = 0; i < n; i++)
                ev_watcher_close(ws[i]);
}

/* Watch once more, which must fail with -EMFILE without leaving an fd. */
static void watch_expect_emfile(const struct fd_limit *lim, ev_value *v) {
        ev_value_watcher *w = WATCHER_SENTINEL;
        int before = count_fds_below_limit(lim);
        int r = ev_value_watch(v, 0, &w);

        cr_assert_eq(r, -EMFILE, "ev_value_watch: got %d (%s), expected -EMFILE", r, strerror(-r));
        cr_assert_eq(w, WATCHER_SENTINEL, "failed ev_value_watch wrote *ret");
        cr_assert_eq(count_fds_below_limit(lim), before, "a failed ev_value_watch left an fd open");
}

Test(fd_limit, watch_at_limit_gives_emfile_and_leaks_no_fd, .timeout = 10) {
        struct fd_limit lim;
        ev_value_watcher *ws[MAX_FILL];
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        int n, before, i;

        set_string_or_fail(v, "one");
        lower_fd_limit(&lim);
        before = count_fds_below_limit(&lim);
        n = fill_watchers(v, ws);
        /* Each watcher costs exactly one fd, the failed call none. */
        cr_assert_eq(count_fds_below_limit(&lim), before + n);
        for (i = 0; i < 3; i++)
                watch_expect_emfile(&lim, v);
        cr_assert_eq(count_fds_below_limit(&lim), before + n);

        close_watchers(ws, n);
        cr_assert_eq(count_fds_below_limit(&lim), before);
        restore_fd_limit(&lim);
        close(lim.proc_fd);
}

Test(fd_limit, other_watchers_still_work_after_emfile, .timeout = 10) {
        struct fd_limit lim;
        ev_value_watcher *ws[MAX_FILL];
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        int n, i;

        set_string_or_fail(v, "before");
        lower_fd_limit(&lim);
        n = fill_watchers(v, ws);
        watch_expect_emfile(&lim, v);

        /* Every other watcher consumes the first snapshot; a set reaches all. */
        for (i = 0; i < n; i += 2) {
                s = get_or_fail(ws[i]);
                cr_assert_eq(ev_snapshot_version(s), 1);
                ev_snapshot_unref(s);
        }
        set_string_or_fail(v, "after");
        for (i = 0; i < n; i++) {
                cr_assert(fd_readable(ev_watcher_get_fd(ws[i])), "watcher %d missed the set", i);
                get_string_or_fail(ws[i], 2, "after");
                cr_assert_not(fd_readable(ev_watcher_get_fd(ws[i])));
        }

        close_watchers(ws, n);
        restore_fd_limit(&lim);
        close(lim.proc_fd);
}

Test(fd_limit, watch_succeeds_again_after_closing_a_watcher, .timeout = 10) {
        struct fd_limit lim;
        ev_value_watcher *ws[MAX_FILL];
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        int n;

        set_string_or_fail(v, "current");
        lower_fd_limit(&lim);
        n = fill_watchers(v, ws);
        watch_expect_emfile(&lim, v);

        ws[n - 1] = ev_watcher_close(ws[n - 1]);
        ws[n - 1] = watch_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(ws[n - 1])));
        get_string_or_fail(ws[n - 1], 1, "current");
        /* And the limit is reached again. */
        watch_expect_emfile(&lim, v);

        close_watchers(ws, n);
        restore_fd_limit(&lim);
        close(lim.proc_fd);
}

Test(fd_limit, watch_succeeds_again_after_raising_the_limit, .timeout = 10) {
        struct fd_limit lim;
        ev_value_watcher *ws[MAX_FILL];
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_watcher *w;
        int n;

        lower_fd_limit(&lim);
        n = fill_watchers(v, ws);
        watch_expect_emfile(&lim, v);
        restore_fd_limit(&lim);

        w = watch_or_fail(v);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "raised");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        ev_snapshot_unref(get_or_fail(w));

        ev_watcher_close(w);
        close_watchers(ws, n);
        close(lim.proc_fd);
}

Test(fd_limit, set_get_and_wait_need_no_new_fd, .timeout = 10) {
        struct fd_limit lim;
        ev_value_watcher *ws[MAX_FILL];
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        int n, before, i;

        lower_fd_limit(&lim);
        n = fill_watchers(v, ws);
        before = count_fds_below_limit(&lim);

        for (i = 1; i <= 3; i++) {
                char buf[16] = "at limit 0";

                buf[9] = (char)('0' + i);
                cr_assert_eq(ev_value_set(v, buf, sizeof(buf)), 0);
                s = peek_or_fail(v);
                cr_assert_eq(ev_snapshot_version(s), (uint64_t)i);
                ev_snapshot_unref(s);

                s = get_or_fail(ws[0]);
                cr_assert_eq(ev_snapshot_version(s), (uint64_t)i);
                cr_assert_str_eq(ev_snapshot_data(s), buf);
                ev_snapshot_unref(s);

                s = NULL;
                cr_assert_eq(ev_watcher_wait(ws[n - 1], 1000, -1, &s), 0);
                cr_assert_eq(ev_snapshot_version(s), (uint64_t)i);
                ev_snapshot_unref(s);
        }
        wait_fails_with(ws[0], 0, -1, -ETIMEDOUT);
        cr_assert_eq(count_fds_below_limit(&lim), before, "set, get or wait opened an fd");
        close_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(ws[0])));
        get_fails_with(ws[0], -EPIPE);

        close_watchers(ws, n);
        restore_fd_limit(&lim);
        close(lim.proc_fd);
}

Test(fd_limit, emfile_keeps_no_reference_on_the_value, .timeout = 10) {
        struct destroy_log log = { 0 };
        struct fd_limit lim;
        ev_value_watcher *ws[MAX_FILL];
        ev_value *v = value_new_or_fail();
        char *data = strdup_or_fail("owned");
        int n;

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        lower_fd_limit(&lim);
        n = fill_watchers(v, ws);
        watch_expect_emfile(&lim, v);
        watch_expect_emfile(&lim, v);
        close_watchers(ws, n);
        restore_fd_limit(&lim);
        close(lim.proc_fd);

        /* The value (and with it its owned snapshot) goes with the last
         * reference the caller knows of: the failed watches took none. */
        cr_assert_eq(atomic_load(&log.calls), 0);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1, "a failed ev_value_watch kept the value alive");
}
