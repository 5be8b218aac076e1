/* SPDX-License-Identifier: MIT */
/*
 * EV_VALUE_ETCD_THREAD: the one thread the project ever starts, and only
 * when a caller asks for it by that flag.  It runs the loop a caller would
 * otherwise run (poll the follower's fd until its timeout, process) and
 * an eventfd that ev__etcd_thread_stop writes ends it.  It blocks every
 * signal, so that the process's handlers run on the caller's threads.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "etcd.h"

struct ev__etcd_thread {
        pthread_t thread;
        struct ev__etcd_follower *follower;
        int stop_fd;
};

/* poll's timeout until the follower's deadline, in ms rounded up. */
static int thread_poll_timeout(const struct ev__etcd_follower *f) {
        uint64_t at = ev__etcd_follower_get_timeout(f), now = ev__etcd_now_usec();

        if (at == UINT64_MAX)
                return -1;
        if (at <= now)
                return 0;
        return at - now > (uint64_t)INT32_MAX * 1000 ? INT32_MAX : (int)((at - now + 999) / 1000);
}

static void *thread_run(void *userdata) {
        struct ev__etcd_thread *t = userdata;
        struct pollfd pfd[2] = {
                { .fd = ev__etcd_follower_get_fd(t->follower), .events = POLLIN },
                { .fd = t->stop_fd, .events = POLLIN },
        };

        while (!(pfd[1].revents & POLLIN)) {
                if (poll(pfd, 2, thread_poll_timeout(t->follower)) < 0 && errno != EINTR)
                        break;
                ev__etcd_follower_process(t->follower);
        }
        return NULL;
}

int ev__etcd_thread_start(struct ev__etcd_follower *f, struct ev__etcd_thread **ret) {
        struct ev__etcd_thread *t = calloc(1, sizeof(*t));
        sigset_t all, saved;
        int r;

        if (!t)
                return -ENOMEM;
        t->follower = f;
        t->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (t->stop_fd < 0) {
                r = -errno;
                free(t);
                return r;
        }
        /* The new thread inherits this mask. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&t->thread, NULL, thread_run, t);
        pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                close(t->stop_fd);
                free(t);
                return r == -EAGAIN ? -ENOMEM : r;
        }
        *ret = t;
        return 0;
}

void ev__etcd_thread_stop(struct ev__etcd_thread *t) {
        uint64_t one = 1;

        if (!t)
                return;
        (void)!write(t->stop_fd, &one, sizeof(one));
        pthread_join(t->thread, NULL);
        close(t->stop_fd);
        free(t);
}
