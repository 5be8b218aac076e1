/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of what fork(2) does to a process that uses the library.  The
 * child must not use objects created in the parent, for two reasons.  Its
 * descriptors refer to the parent's open file descriptions, so a
 * watcher's eventfd in the child is the parent's eventfd: a get in the
 * child would drain it and take the parent's notification, and the
 * parent, with a snapshot it has not seen, would never be woken (a lost
 * wake-up); one test shows that sharing, as the hazard it is.  And only
 * the forking thread exists in the child, so a value's lock that another
 * thread held at the fork stays held there forever; that one is not shown,
 * since the child would hang.  What a child may do leaves the parent's
 * objects as they were: after a child that calls _exit, or exit so that
 * atexit handlers and stdio run (the library has no destructors, so
 * nothing of ours runs), the parent's watchers, own-fd and shared-fd, keep
 * the readiness they had and sets, gets and waits work.  The eventfds are
 * close-on-exec, which a program exec'd in the child checks from
 * /proc/self/fd.  A child that creates its own objects may use them.
 * Criterion runs each test in a process of its own; every child here ends
 * with _exit, exit or exec, never returns into criterion, and reports
 * through its exit status, since only the test's process may assert.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

/* The parent's objects, kept reachable from here while a child lives.  A
 * child must not release them, so under valgrind, once the compiler drops
 * the pointers a test no longer needs after fork, the child's copies
 * would count as leaked at its exit, and valgrind's --error-exitcode would
 * replace the child's exit status. */
static void *volatile inherited[4];

/* Asserts that fork(2) works; returns 0 in the child.  a, b, c and d (or
 * NULL) are the parent's objects, kept reachable for valgrind.  Stdio is
 * flushed first, so that a child that calls exit() does not write the
 * parent's buffered output a second time. */
static pid_t fork_or_fail(void *a, void *b, void *c, void *d) {
        pid_t pid;

        inherited[0] = a;
        inherited[1] = b;
        inherited[2] = c;
        inherited[3] = d;
        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        return pid;
}

/* Asserts that child pid, reaped now, exited with status code; what
 * names the child in the messages. */
static void child_exits_with(pid_t pid, int code, const char *what) {
        int status = 0;
        pid_t r;

        do
                r = waitpid(pid, &status, 0);
        while (r < 0 && errno == EINTR);
        cr_assert_eq(r, pid, "waitpid: %s", strerror(errno));
        cr_assert(WIFEXITED(status), "%s did not exit: status 0x%x", what, status);
        cr_assert_eq(WEXITSTATUS(status), code, "%s exited with %d, expected %d", what,
                     WEXITSTATUS(status), code);
}

/* The write end of a pipe the child's atexit handler writes to. */
static int atexit_fd = -1;

static void report_atexit(void) {
        if (write(atexit_fd, "a", 1) != 1)
                _exit(3);
}

/* How a child ends in the parent_unaffected tests. */
enum child_end {
        CHILD_EXIT_NOW, /* _exit(0): nothing runs */
        CHILD_EXIT,     /* exit(0): atexit handlers and stdio run */
};

/* The body of the parent_unaffected tests.  The parent has a value set
 * once; a watcher with its own fd that consumed it (not readable), one that
 * did not (readable), one on the shared fd that consumed it (readable: the
 * shared fd is never read), and a snapshot reference.  The child ends at
 * once, as end says; then the parent finds all of that as it was, and sets,
 * gets and waits work, a wait on another thread included. */
static void assert_parent_unaffected_by_child(enum child_end end) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *seen = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *unseen = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *shared = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *held = NULL;
        struct waiter t;
        pthread_t thread;
        int atexit_pipe[2];
        char c = 0;
        pid_t pid;

        set_string_or_fail(v, "before fork");
        seen = watch_consumed_or_fail(v);
        unseen = watch_or_fail(v);
        shared = watch_shared_or_fail(v);
        get_string_or_fail(shared, 1, "before fork");
        held = peek_or_fail(v);
        cr_assert(fd_readable(ev_watcher_get_fd(unseen)));
        cr_assert(fd_readable(ev_watcher_get_fd(shared)));
        cr_assert_eq(pipe2(atexit_pipe, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));

        pid = fork_or_fail(seen, unseen, shared, held); /* the watchers hold v */
        if (pid == 0) {
                /* Touches none of the library's objects. */
                if (end == CHILD_EXIT_NOW)
                        _exit(0);
                atexit_fd = atexit_pipe[1];
                if (atexit(report_atexit) != 0)
                        _exit(2);
                exit(0);
        }
        close(atexit_pipe[1]);
        child_exits_with(pid, 0, "the child");
        /* The atexit handler ran exactly when exit() was called: one byte,
         * then EOF (every write end is closed now). */
        if (end == CHILD_EXIT) {
                cr_assert_eq(read(atexit_pipe[0], &c, 1), 1, "the child's atexit handler did "
                             "not run");
                cr_assert_eq(c, 'a');
        }
        cr_assert_eq(read(atexit_pipe[0], &c, 1), 0, "unexpected bytes from the child");
        close(atexit_pipe[0]);

        /* As before the fork. */
        cr_assert_not(fd_readable(ev_watcher_get_fd(seen)), "the child's end made a consumed "
                      "watcher readable");
        cr_assert(fd_readable(ev_watcher_get_fd(unseen)), "the child's end took an unseen "
                  "watcher's notification");
        cr_assert(fd_readable(ev_watcher_get_fd(shared)), "the shared fd stopped being readable");
        cr_assert_eq(ev_value_get_version(v), 1);
        assert_snapshot_is_string(held, 1, "before fork");
        get_fails_with(seen, -EAGAIN);
        get_fails_with(shared, -EAGAIN);

        /* Sets notify, gets return the newest. */
        set_string_or_fail(v, "after fork");
        cr_assert(fd_readable(ev_watcher_get_fd(seen)), "a set did not notify");
        get_string_or_fail(seen, 2, "after fork");
        get_string_or_fail(unseen, 2, "after fork");
        get_string_or_fail(shared, 2, "after fork");
        cr_assert_not(fd_readable(ev_watcher_get_fd(seen)));
        cr_assert_not(fd_readable(ev_watcher_get_fd(unseen)));

        /* Waits: at once, timed out, and woken by a set from this thread. */
        set_string_or_fail(v, "waited");
        wait_string_or_fail(seen, 1000, -1, 3, "waited");
        wait_fails_with(seen, 50, -1, -ETIMEDOUT);
        waiter_start(&t, &thread, seen, -1, -1);
        wait_until_busy(seen);
        set_string_or_fail(v, "woken");
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t.r, 0, "wait: got %d (%s)", t.r, strerror(-t.r));
        assert_snapshot_is_string(t.s, 4, "woken");
        ev_snapshot_unref(t.s);
        get_string_or_fail(unseen, 4, "woken");
}

Test(fork, parent_unaffected_by_a_child_that_exits_at_once, .timeout = 10) {
        assert_parent_unaffected_by_child(CHILD_EXIT_NOW);
}

Test(fork, parent_unaffected_by_a_child_that_runs_atexit_handlers, .timeout = 10) {
        assert_parent_unaffected_by_child(CHILD_EXIT);
}

/* Asserts that a child that runs /bin/sh -c script exits with 0; what
 * says what a failure means.  The script tests /proc/self/fd/N with the
 * shell's builtin test, so /proc/self is the exec'd shell: the fds it has
 * are the ones that survived the exec. */
static void sh_in_child_succeeds(const char *script, const char *what) {
        pid_t pid = fork_or_fail(NULL, NULL, NULL, NULL); /* the exec replaces them */

        if (pid == 0) {
                execl("/bin/sh", "sh", "-c", script, (char *)NULL);
                _exit(127);
        }
        child_exits_with(pid, 0, what);
}

Test(fork, watcher_eventfds_are_close_on_exec, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *own = NULL;
        _cleanup_(ev_watcher_closep) ev_value_watcher *shared = NULL;
        char script[256];
        int control;

        if (access("/bin/sh", X_OK) != 0)
                cr_skip_test("/bin/sh is missing (%s): no program to exec that checks the "
                             "child's fds", strerror(errno));
        if (access("/proc/self/fd", F_OK) != 0)
                cr_skip_test("/proc is not mounted (%s): an exec'd program cannot list its fds",
                             strerror(errno));
        v = value_new_or_fail();
        own = watch_or_fail(v);
        shared = watch_shared_or_fail(v);
        set_string_or_fail(v, "one");
        cr_assert(fcntl(ev_watcher_get_fd(own), F_GETFD) & FD_CLOEXEC,
                  "a watcher's own eventfd is not close-on-exec");
        cr_assert(fcntl(ev_watcher_get_fd(shared), F_GETFD) & FD_CLOEXEC,
                  "the shared eventfd is not close-on-exec");

        snprintf(script, sizeof(script), "test ! -e /proc/self/fd/%d && test ! -e /proc/self/fd/%d",
                 ev_watcher_get_fd(own), ev_watcher_get_fd(shared));
        sh_in_child_succeeds(script, "the exec'd shell that looked for the eventfds (1: one "
                             "was inherited)");

        /* The control: an eventfd made without EFD_CLOEXEC does survive the
         * exec, so the check above can fail. */
        control = eventfd(0, 0);
        cr_assert_geq(control, 0, "eventfd: %s", strerror(errno));
        snprintf(script, sizeof(script), "test -e /proc/self/fd/%d", control);
        sh_in_child_succeeds(script, "the exec'd shell that looked for the control eventfd (1: "
                             "the check cannot see inherited fds)");
        close(control);

        /* The child's exec left the parent's watchers alone. */
        cr_assert(fd_readable(ev_watcher_get_fd(own)));
        get_string_or_fail(own, 1, "one");
        get_string_or_fail(shared, 1, "one");
        set_string_or_fail(v, "two");
        wait_string_or_fail(own, 1000, -1, 2, "two");
}

/* Shows the hazard, not a feature: the child's copy of a watcher's fd is
 * the parent's open file description, not a copy of it.  The child reads
 * the eventfd, as a get in the child would to re-arm its copy of the
 * watcher; the parent's fd goes quiet while the parent's watcher still has
 * a snapshot it has not seen, so a parent that polls the fd is never told:
 * a lost wake-up.  This is why the child must not use the parent's
 * objects. */
Test(fork, child_shares_the_parents_eventfd_file_description, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int fd = ev_watcher_get_fd(w);
        pid_t pid;

        set_string_or_fail(v, "one");
        cr_assert(fd_readable(fd));

        pid = fork_or_fail(w, NULL, NULL, NULL);
        if (pid == 0) {
                uint64_t counter = 0;

                _exit(read(fd, &counter, sizeof(counter)) == (ssize_t)sizeof(counter) &&
                      counter > 0 ? 0 : 1);
        }
        child_exits_with(pid, 0, "the child that read the eventfd (1: nothing to read)");

        cr_assert_not(fd_readable(fd), "the child's read did not reach the parent's eventfd");
        get_string_or_fail(w, 1, "one"); /* unseen, yet the fd said nothing */
}

/* In the child: create a value and a watcher, set, wait, get and release
 * them.  Returns 0, or the number of the step that failed. */
static int use_own_objects(void) {
        ev_value *v = NULL;
        ev_value_watcher *w = NULL;
        ev_value_snapshot *s = NULL, *extra = NULL;
        int step = 0;

        if (ev_value_new(&v) < 0)
                return 1;
        if (ev_value_watch(v, 0, &w) < 0)
                step = 2;
        else if (ev_value_set(v, "child", sizeof("child")) < 0)
                step = 3;
        else if (ev_watcher_wait(w, 1000, -1, &s) < 0)
                step = 4;
        else if (strcmp(ev_snapshot_data(s), "child") != 0)
                step = 5;
        else if (ev_watcher_get(w, &extra) != -EAGAIN)
                step = 6;
        ev_snapshot_unref(extra);
        ev_snapshot_unref(s);
        ev_watcher_close(w);
        ev_value_unref(v);
        return step;
}

Test(fork, child_uses_objects_it_creates, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        pid_t pid;

        set_string_or_fail(v, "parent");
        pid = fork_or_fail(w, NULL, NULL, NULL);
        if (pid == 0)
                _exit(use_own_objects());
        child_exits_with(pid, 0, "the child that used its own objects (its status: the step "
                         "that failed)");

        /* The child's objects have eventfds of their own: nothing of its
         * reached the parent's watcher. */
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 1, "parent");
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}
