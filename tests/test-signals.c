/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ev_watcher_wait against what arrives asynchronously: a
 * stream of signals and the kinds of fd that cancel.  A handler that runs
 * a thousand times a second interrupts the library's ppoll with EINTR over
 * and over, yet a timed wait returns -ETIMEDOUT at its deadline, not
 * before and not much after, with or without a quiet cancel fd; a set that
 * lands mid-stream ends a timed or an endless wait with the snapshot; and
 * EINTR never surfaces.  Each test counts the handler's runs during the
 * wait and fails when too few ran, so none can pass without signals.  Then
 * a blocked wait is cancelled by each kind of cancel fd the man page names
 * (the eventfd is in test-wait.c): a timerfd that expires, the pidfd of a
 * child that exits, a pipe written by another thread, a pipe whose write
 * end is closed (POLLHUP) and a signalfd with a pending signal; the library
 * reads none of them, the watcher works after each cancel, and an unseen
 * snapshot wins over every kind when both are ready.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

/* The timeout of the timed waits under signals. */
#define TIMEOUT_MS 300

/* How long after its deadline a timed wait may return.  The library's own
 * overshoot is one pass of its loop plus the timer slack of the last ppoll
 * (50 us by default); the rest is the time the kernel takes to run the
 * woken thread again, a few milliseconds on an idle machine and a few
 * scheduler slices (tens of milliseconds) when both vCPUs of a small VM
 * run busy loops or the host preempts them.  150 ms is several times that
 * and still half the timeout, so a wait that lengthened itself by restarting
 * any part of its timeout after an EINTR fails. */
#define LATE_MARGIN_US 150000

/* Handler runs that must happen during a timed wait, so that a wait that
 * ran without signals (the test proving nothing) fails: a tenth of the
 * ~300 a 1 kHz stream gives in TIMEOUT_MS.  On a 2-vCPU VM with both vCPUs
 * in busy loops the count is usually above 220, but a run was seen at 79,
 * the signalling thread starved (161 sent) and signals sent while the
 * waiting thread was preempted merged into one pending signal. */
#define MIN_SIGNALS 30

/* Handler runs during a wait before the mid-stream set: about 100 ms. */
#define SIGNALS_BEFORE_SET 100

/* ---------------------------------------------------- a stream of signals */

/* A thread that sends SIGUSR1 to target every millisecond until told to
 * stop.  The steps are absolute CLOCK_MONOTONIC times, so a late wake-up is
 * made up for and the rate stays 1 kHz on average.  When v is not NULL it
 * also sets v once, mid-stream: after a probe get on the watcher the target
 * waits on has said -EBUSY (the wait has begun), and SIGNALS_BEFORE_SET
 * handler runs since, a handshake rather than a sleep.  If the wait never
 * shows within 3 s, or the handler does not run often enough within 3 s of
 * it, it sets anyway, so that the wait ends and the test reports probe_r
 * or signals_before_set.  Asserts nothing. */
struct signaller {
        pthread_t target;
        ev_value *v;            /* set it mid-stream, when not NULL */
        ev_value_watcher *probe;
        atomic_bool stop;
        int kill_r;             /* the first pthread_kill error, or 0 */
        int probe_r;            /* -EBUSY once the wait was seen */
        int set_r;
        int signals_before_set; /* handler runs between wait seen and set */
        int n_sent;
};

static void *signaller_main(void *arg) {
        struct signaller *t = arg;
        enum { PROBE, COUNT, DONE } phase = t->v ? PROBE : DONE;
        int64_t deadline = now_ms() + 3000;
        int seen_at = 0;
        struct timespec next;

        clock_gettime(CLOCK_MONOTONIC, &next);
        while (!atomic_load(&t->stop)) {
                int r = pthread_kill(t->target, SIGUSR1);

                if (r != 0) {
                        t->kill_r = r;
                        break;
                }
                t->n_sent++;
                if (phase == PROBE) {
                        t->probe_r = probe_busy(t->probe);
                        if (t->probe_r != -EAGAIN || now_ms() >= deadline) {
                                seen_at = atomic_load(&n_signals);
                                /* On a bad probe or no wait seen: set now. */
                                deadline = t->probe_r == -EBUSY ? now_ms() + 3000 : 0;
                                phase = COUNT;
                        }
                }
                if (phase == COUNT) {
                        int n = atomic_load(&n_signals) - seen_at;

                        if (n >= SIGNALS_BEFORE_SET || now_ms() >= deadline) {
                                t->signals_before_set = n;
                                t->set_r = ev_value_set(t->v, "mid-stream", sizeof("mid-stream"));
                                phase = DONE;
                        }
                }
                next.tv_nsec += 1000000;
                if (next.tv_nsec >= 1000000000) {
                        next.tv_nsec -= 1000000000;
                        next.tv_sec++;
                }
                while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL) == EINTR)
                        ;
        }
        return NULL;
}

/* Asserts that a signaller starts sending to the calling thread. */
static void signaller_start(struct signaller *t, pthread_t *thread, ev_value *v,
                            ev_value_watcher *probe) {
        memset(t, 0, sizeof(*t));
        t->target = pthread_self();
        t->v = v;
        t->probe = probe;
        t->probe_r = 1;
        t->set_r = 1;
        atomic_init(&t->stop, false);
        cr_assert_eq(pthread_create(thread, NULL, signaller_main, t), 0);
}

/* Asserts that the signaller stops and that every signal it sent went out. */
static void signaller_stop(struct signaller *t, pthread_t thread) {
        atomic_store(&t->stop, true);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(t->kill_r, 0, "pthread_kill: %s", strerror(t->kill_r));
}

/* The test's body for a timed wait on a value never set, under signals:
 * -ETIMEDOUT, no earlier than TIMEOUT_MS, no later than LATE_MARGIN_US
 * after, with at least MIN_SIGNALS handler runs during the wait.  Nothing
 * asserts while the signaller runs, so it is stopped before any report. */
static void assert_timed_wait_ends_at_deadline_under_signals(int cancel_fd) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        struct signaller t;
        pthread_t thread;
        int64_t start, elapsed;
        int before, delivered, r;

        install_sigusr1_handler();
        signaller_start(&t, &thread, NULL, NULL);
        before = atomic_load(&n_signals);
        start = now_us();
        r = ev_watcher_wait(w, TIMEOUT_MS, cancel_fd, &s);
        elapsed = now_us() - start;
        delivered = atomic_load(&n_signals) - before;
        signaller_stop(&t, thread);

        cr_assert_eq(r, -ETIMEDOUT, "ev_watcher_wait(%d, %d) under %d signals: got %d (%s), "
                     "expected -ETIMEDOUT", TIMEOUT_MS, cancel_fd, delivered, r, strerror(-r));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "failed ev_watcher_wait wrote *ret");
        cr_assert_geq(elapsed, TIMEOUT_MS * 1000, "timed out after %lld us under %d signals, "
                      "before %d ms", (long long)elapsed, delivered, TIMEOUT_MS);
        cr_assert_lt(elapsed, TIMEOUT_MS * 1000 + LATE_MARGIN_US, "a %d ms timeout took %lld us "
                     "under %d signals", TIMEOUT_MS, (long long)elapsed, delivered);
        cr_assert_geq(delivered, MIN_SIGNALS, "only %d signals (of %d sent) ran during the "
                      "%lld us wait: the test proves nothing", delivered, t.n_sent,
                      (long long)elapsed);
        /* Shown with --verbose: how late the deadline came, for tuning. */
        cr_log_info("%d ms timeout: returned %lld us late, %d signals during the wait",
                    TIMEOUT_MS, (long long)(elapsed - TIMEOUT_MS * 1000), delivered);
}

Test(signals, stream_does_not_shorten_or_lengthen_the_timeout, .timeout = 10) {
        assert_timed_wait_ends_at_deadline_under_signals(-1);
}

Test(signals, stream_with_a_quiet_cancel_fd_still_ends_at_the_deadline, .timeout = 10) {
        _cleanup_(closep) int cancel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);

        /* Two fds in the ppoll, one of which never becomes readable. */
        cr_assert_geq(cancel, 0, "eventfd: %s", strerror(errno));
        assert_timed_wait_ends_at_deadline_under_signals(cancel);
        cr_assert_not(fd_readable(cancel), "the quiet cancel fd became readable");
}

/* The test's body for a wait under signals that a mid-stream set ends:
 * the snapshot, neither -EINTR nor an early -ETIMEDOUT. */
static void assert_set_mid_stream_ends_the_wait(int timeout_ms) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        struct signaller t;
        pthread_t thread;
        int r;

        install_sigusr1_handler();
        signaller_start(&t, &thread, v, w);
        /* The signaller's probe may hold the watcher at the instant the
         * wait starts: retry that -EBUSY. */
        r = wait_retrying_busy(w, timeout_ms, -1, &s);
        signaller_stop(&t, thread);

        cr_assert_eq(r, 0, "ev_watcher_wait(%d, -1) under signals: got %d (%s), expected the "
                     "snapshot (the set: %s)", timeout_ms, r, strerror(-r),
                     t.set_r == 1 ? "not made" : strerror(-t.set_r));
        cr_assert_eq(t.probe_r, -EBUSY, "the signaller never saw the wait begin: %d (%s)",
                     t.probe_r, strerror(-t.probe_r));
        cr_assert_eq(t.set_r, 0, "ev_value_set: %s", strerror(-t.set_r));
        assert_snapshot_is_string(s, 1, "mid-stream");
        ev_snapshot_unref(s);
        cr_assert_geq(t.signals_before_set, SIGNALS_BEFORE_SET,
                      "only %d signals ran during the wait before the set",
                      t.signals_before_set);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

Test(signals, set_mid_stream_ends_a_timed_wait_with_the_snapshot, .timeout = 10) {
        /* Far longer than the ~100 ms of signals before the set: a wait
         * that took an EINTR for its deadline would give -ETIMEDOUT. */
        assert_set_mid_stream_ends_the_wait(5000);
}

Test(signals, stream_does_not_end_a_wait_forever, .timeout = 10) {
        /* Only the set ends it: EINTR never surfaces. */
        assert_set_mid_stream_ends_the_wait(-1);
}

/* ------------------------------------------------ the kinds of cancel fd */

/* A thread that makes a cancel fd readable once the test's thread is inside
 * its wait: it probes the watcher until a get says -EBUSY (or 5 s pass, and
 * the test reports probe_r), then calls act.  Asserts nothing. */
struct canceller {
        ev_value_watcher *probe;
        int (*act)(struct canceller *c); /* 0 or a negative errno */
        int fd;                          /* what act works on */
        pthread_t target;                /* the test's thread */
        int probe_r;
        int act_r;
};

static void *canceller_main(void *arg) {
        struct canceller *c = arg;
        int64_t deadline = now_ms() + THREAD_REACH_MS;

        while ((c->probe_r = probe_busy(c->probe)) == -EAGAIN && now_ms() < deadline)
                pause_briefly();
        c->act_r = c->act(c);
        return NULL;
}

/* act: write one byte to c->fd, a pipe's write end. */
static int write_a_byte(struct canceller *c) {
        return write(c->fd, "x", 1) == 1 ? 0 : -errno;
}

/* act: close c->fd, a pipe's write end, which leaves its read end POLLHUP. */
static int close_fd(struct canceller *c) {
        return close(c->fd) == 0 ? 0 : -errno;
}

/* act: send SIGUSR2 to the test's thread, which blocks it. */
static int send_sigusr2(struct canceller *c) {
        return -pthread_kill(c->target, SIGUSR2);
}

/* Asserts that a wait forever on w, with cancel_fd, is cancelled by a
 * canceller that calls act on fd once the wait has begun. */
static void assert_wait_cancelled_by(ev_value_watcher *w, int cancel_fd,
                                     int (*act)(struct canceller *c), int fd) {
        struct canceller c = {
                .probe = w, .act = act, .fd = fd, .target = pthread_self(),
                .probe_r = 1, .act_r = 1,
        };
        ev_value_snapshot *s = SNAPSHOT_SENTINEL;
        pthread_t thread;
        int r;

        cr_assert_eq(pthread_create(&thread, NULL, canceller_main, &c), 0);
        r = wait_retrying_busy(w, -1, cancel_fd, &s);
        cr_assert_eq(pthread_join(thread, NULL), 0);
        cr_assert_eq(c.probe_r, -EBUSY, "the canceller never saw the wait begin: %d (%s)",
                     c.probe_r, strerror(-c.probe_r));
        cr_assert_eq(c.act_r, 0, "making the cancel fd readable failed: %s",
                     strerror(-c.act_r));
        cr_assert_eq(r, -ECANCELED, "ev_watcher_wait(-1, %d): got %d (%s), expected -ECANCELED",
                     cancel_fd, r, strerror(-r));
        cr_assert_eq(s, SNAPSHOT_SENTINEL, "a cancelled wait wrote *ret");
}

/* Asserts that w, just cancelled, still works: nothing is readable, a set
 * makes its fd readable, and a wait returns that snapshot at version. */
static void assert_watcher_works_after_cancel(ev_value *v, ev_value_watcher *w,
                                              uint64_t version) {
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)), "a cancel left the watcher readable");
        set_string_or_fail(v, "after cancel");
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        wait_string_or_fail(w, 5000, -1, version, "after cancel");
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
}

/* Asserts poll(2) works; returns fd's revents right now. */
static short fd_revents(int fd) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        cr_assert_geq(poll(&pfd, 1, 0), 0, "poll: %s", strerror(errno));
        return pfd.revents;
}

/* pidfd_open(2), or -errno; asserts nothing. */
static int pidfd_open_raw(pid_t pid) {
#ifdef SYS_pidfd_open
        int fd = (int)syscall(SYS_pidfd_open, pid, 0);

        return fd < 0 ? -errno : fd;
#else
        (void)pid;
        return -ENOSYS;
#endif
}

/* Asserts that child pid, reaped now, exited with status 0. */
static void reap_or_fail(pid_t pid) {
        int status = 0;
        pid_t r;

        do
                r = waitpid(pid, &status, 0);
        while (r < 0 && errno == EINTR);
        cr_assert_eq(r, pid, "waitpid: %s", strerror(errno));
        cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "the child ended with status 0x%x", status);
}

/* A child that exits when fd, a pipe's read end, gives a byte or EOF:
 * released by the test, not by a sleep.  Only async-signal-safe calls,
 * since the test process has threads; it never returns into criterion. */
static pid_t fork_child_released_by(int fd, int other_end) {
        pid_t pid;

        fflush(NULL);
        pid = fork();
        cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
        if (pid == 0) {
                char c;

                close(other_end);
                while (read(fd, &c, 1) < 0 && errno == EINTR)
                        ;
                _exit(0);
        }
        return pid;
}

Test(cancel_fd, timerfd_cancels_when_it_expires_and_is_not_read, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct itimerspec its = { .it_value = { .tv_nsec = 50 * 1000000 } };
        _cleanup_(closep) int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        uint64_t expirations = 0;
        int64_t start, elapsed;

        cr_assert_geq(tfd, 0, "timerfd_create: %s", strerror(errno));
        start = now_us();
        cr_assert_eq(timerfd_settime(tfd, 0, &its, NULL), 0, "timerfd_settime: %s",
                     strerror(errno));
        wait_fails_with(w, -1, tfd, -ECANCELED);
        elapsed = now_us() - start;
        /* Both clocks are CLOCK_MONOTONIC: the timer cannot fire early. */
        cr_assert_geq(elapsed, 50000, "cancelled after %lld us, before the 50 ms timer",
                      (long long)elapsed);
        /* Not read by the library: still readable, with its one expiration
         * (a blocking timerfd, so the read cannot fail with EAGAIN). */
        cr_assert(fd_readable(tfd), "the library read the timerfd");
        cr_assert_eq(read(tfd, &expirations, sizeof(expirations)), (ssize_t)sizeof(expirations));
        cr_assert_eq(expirations, 1, "%llu expirations", (unsigned long long)expirations);

        assert_watcher_works_after_cancel(v, w, 1);
}

Test(cancel_fd, pidfd_cancels_when_the_child_exits, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int release[2];
        _cleanup_(closep) int pidfd = -1;
        pid_t pid;

        cr_assert_eq(pipe2(release, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
        pid = fork_child_released_by(release[0], release[1]);
        close(release[0]);
        pidfd = pidfd_open_raw(pid);
        if (pidfd == -ENOSYS) {
                close(release[1]); /* EOF: the child exits */
                reap_or_fail(pid);
                cr_skip_test("pidfd_open(2) is not available (ENOSYS: Linux before 5.3, a "
                             "seccomp policy, or valgrind): no pidfd to cancel with");
        }
        cr_assert_geq(pidfd, 0, "pidfd_open: %s", strerror(-pidfd));
        cr_assert_not(fd_readable(pidfd), "the pidfd is readable while the child lives");

        /* The canceller releases the child once the wait has begun. */
        assert_wait_cancelled_by(w, pidfd, write_a_byte, release[1]);
        /* Not consumed: a pidfd stays readable once its process exited. */
        cr_assert(fd_readable(pidfd), "the pidfd is not readable after the child exited");
        reap_or_fail(pid);

        assert_watcher_works_after_cancel(v, w, 1);

        close(release[1]);
}

Test(cancel_fd, pipe_written_by_another_thread_cancels_and_is_not_read, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int p[2];
        char c = 0;

        cr_assert_eq(pipe2(p, O_CLOEXEC | O_NONBLOCK), 0, "pipe2: %s", strerror(errno));
        assert_wait_cancelled_by(w, p[0], write_a_byte, p[1]);
        /* The byte is still in the pipe. */
        cr_assert(fd_readable(p[0]), "the library read the pipe");
        cr_assert_eq(read(p[0], &c, 1), 1, "read: %s", strerror(errno));
        cr_assert_eq(c, 'x');

        assert_watcher_works_after_cancel(v, w, 1);

        close(p[0]);
        close(p[1]);
}

Test(cancel_fd, pipe_whose_write_end_is_closed_cancels, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        int p[2];

        cr_assert_eq(pipe2(p, O_CLOEXEC), 0, "pipe2: %s", strerror(errno));
        cr_assert_eq(fd_revents(p[0]), 0);
        /* The canceller closes p[1]: POLLHUP, no data, so no POLLIN. */
        assert_wait_cancelled_by(w, p[0], close_fd, p[1]);
        cr_assert_eq(fd_revents(p[0]), POLLHUP, "revents 0x%x, expected POLLHUP alone",
                     (unsigned)fd_revents(p[0]));

        assert_watcher_works_after_cancel(v, w, 1);

        close(p[0]);
}

Test(cancel_fd, signalfd_cancels_when_its_signal_is_pending, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct signalfd_siginfo info;
        sigset_t mask;
        _cleanup_(closep) int sfd = -1;

        /* A signalfd reports signals that are blocked and pending for the
         * thread that polls it, or for the process.  The canceller sends
         * SIGUSR2 to this thread alone: criterion's worker has a thread of
         * its own, which would take a process-directed SIGUSR2 and die. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR2);
        cr_assert_eq(pthread_sigmask(SIG_BLOCK, &mask, NULL), 0);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        cr_assert_geq(sfd, 0, "signalfd: %s", strerror(errno));
        cr_assert_not(fd_readable(sfd));

        assert_wait_cancelled_by(w, sfd, send_sigusr2, -1);
        /* Still pending: the library did not read the signalfd. */
        cr_assert(fd_readable(sfd), "the library read the signalfd");
        cr_assert_eq(read(sfd, &info, sizeof(info)), (ssize_t)sizeof(info), "read: %s",
                     strerror(errno));
        cr_assert_eq(info.ssi_signo, SIGUSR2, "signal %u", info.ssi_signo);
        cr_assert_not(fd_readable(sfd));

        assert_watcher_works_after_cancel(v, w, 1);
}

/* Asserts that, with cancel_fd readable, an unseen snapshot is returned
 * (also with a zero timeout), and that cancel_fd really was readable: a
 * wait with nothing new gives -ECANCELED at once. */
static void assert_unseen_snapshot_wins_over(ev_value *v, ev_value_watcher *w, int cancel_fd,
                                             const char *kind) {
        uint64_t version = ev_value_get_version(v);

        set_string_or_fail(v, kind);
        wait_string_or_fail(w, -1, cancel_fd, version + 1, kind);
        set_string_or_fail(v, kind);
        wait_string_or_fail(w, 0, cancel_fd, version + 2, kind);
        wait_fails_with(w, -1, cancel_fd, -ECANCELED);
}

Test(cancel_fd, unseen_snapshot_wins_over_every_kind_of_readable_cancel_fd, .timeout = 10) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        struct itimerspec its = { .it_value = { .tv_nsec = 1000000 } };
        struct pollfd pfd;
        sigset_t mask;
        int written[2], hung_up[2], release[2];
        _cleanup_(closep) int tfd = -1;
        _cleanup_(closep) int efd = -1;
        _cleanup_(closep) int sfd = -1;
        int pidfd;
        pid_t pid;

        cr_assert_eq(pipe2(written, O_CLOEXEC), 0);
        cr_assert_eq(write(written[1], "x", 1), 1);
        assert_unseen_snapshot_wins_over(v, w, written[0], "pipe with data");

        cr_assert_eq(pipe2(hung_up, O_CLOEXEC), 0);
        close(hung_up[1]);
        assert_unseen_snapshot_wins_over(v, w, hung_up[0], "pipe with no writer");

        tfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
        cr_assert_geq(tfd, 0, "timerfd_create: %s", strerror(errno));
        cr_assert_eq(timerfd_settime(tfd, 0, &its, NULL), 0);
        pfd = (struct pollfd){ .fd = tfd, .events = POLLIN };
        cr_assert_eq(poll(&pfd, 1, 5000), 1, "the 1 ms timer did not expire in 5 s");
        assert_unseen_snapshot_wins_over(v, w, tfd, "expired timerfd");

        efd = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);
        cr_assert_geq(efd, 0, "eventfd: %s", strerror(errno));
        assert_unseen_snapshot_wins_over(v, w, efd, "eventfd");

        sigemptyset(&mask);
        sigaddset(&mask, SIGUSR2);
        cr_assert_eq(pthread_sigmask(SIG_BLOCK, &mask, NULL), 0);
        sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
        cr_assert_geq(sfd, 0, "signalfd: %s", strerror(errno));
        cr_assert_eq(pthread_kill(pthread_self(), SIGUSR2), 0);
        assert_unseen_snapshot_wins_over(v, w, sfd, "signalfd");

        cr_assert_eq(pipe2(release, O_CLOEXEC), 0);
        pid = fork_child_released_by(release[0], release[1]);
        close(release[0]);
        close(release[1]); /* EOF: the child exits */
        pidfd = pidfd_open_raw(pid);
        if (pidfd >= 0) {
                pfd = (struct pollfd){ .fd = pidfd, .events = POLLIN };
                cr_assert_eq(poll(&pfd, 1, 5000), 1, "the child did not exit in 5 s");
                assert_unseen_snapshot_wins_over(v, w, pidfd, "pidfd");
                close(pidfd);
        } else {
                cr_assert_eq(pidfd, -ENOSYS, "pidfd_open: %s", strerror(-pidfd));
                cr_log_info("pidfd_open(2) is not available (ENOSYS): the pidfd is not checked");
        }
        reap_or_fail(pid);

        close(written[0]);
        close(written[1]);
        close(hung_up[0]);
}
