/* SPDX-License-Identifier: MIT */
/*
 * libcurl's multi interface behind one fd, so that the caller's loop polls
 * a single descriptor whatever curl does: an epoll that holds each socket
 * curl asks for and a timerfd armed at the earliest of curl's timeout and
 * the follower's own alarm.  Processing never blocks: it takes what epoll
 * has (timeout 0), lets curl act on those sockets and on an expired
 * timeout, and reports each finished transfer to the follower.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "etcd.h"

#define LOOP_EVENTS_MAX 16

struct ev__etcd_loop {
        CURLM *multi;
        int epoll_fd;
        int timer_fd;
        uint64_t curl_deadline;  /* µs; UINT64_MAX: none */
        uint64_t alarm;          /* the follower's; µs; UINT64_MAX: none */
        uint64_t armed;          /* what timer_fd is armed at */
        ev__etcd_done_fn done;
        void *userdata;
};

static void loop_arm_timer(struct ev__etcd_loop *l) {
        uint64_t at = ev__etcd_loop_deadline(l);
        struct itimerspec its = { 0 };

        if (at == l->armed)
                return;
        if (at != UINT64_MAX) {
                /* 0 would disarm: the earliest moment is 1 ns. */
                its.it_value.tv_sec = (time_t)(at / 1000000);
                its.it_value.tv_nsec = (long)(at % 1000000) * 1000;
                if (at == 0)
                        its.it_value.tv_nsec = 1;
        }
        if (timerfd_settime(l->timer_fd, TFD_TIMER_ABSTIME, &its, NULL) == 0)
                l->armed = at;
}

/* CURLMOPT_SOCKETFUNCTION: mirror curl's interest in a socket. */
static int loop_socket(CURL *easy, curl_socket_t s, int what, void *userdata, void *socketp) {
        struct ev__etcd_loop *l = userdata;
        struct epoll_event ev = { .data.fd = s };

        (void)easy;
        (void)socketp;
        if (what == CURL_POLL_REMOVE) {
                epoll_ctl(l->epoll_fd, EPOLL_CTL_DEL, s, NULL);
                return 0;
        }
        if (what & CURL_POLL_IN)
                ev.events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                ev.events |= EPOLLOUT;
        if (epoll_ctl(l->epoll_fd, EPOLL_CTL_MOD, s, &ev) < 0 && errno == ENOENT &&
            epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, s, &ev) < 0)
                return -1;
        return 0;
}

/* CURLMOPT_TIMERFUNCTION: curl wants a call in timeout_ms (-1: never). */
static int loop_timer(CURLM *multi, long timeout_ms, void *userdata) {
        struct ev__etcd_loop *l = userdata;

        (void)multi;
        l->curl_deadline = timeout_ms < 0 ? UINT64_MAX
                                          : ev__etcd_now_usec() + (uint64_t)timeout_ms * 1000;
        loop_arm_timer(l);
        return 0;
}

int ev__etcd_loop_new(ev__etcd_done_fn done, void *userdata, struct ev__etcd_loop **ret) {
        struct ev__etcd_loop *l = calloc(1, sizeof(*l));
        struct epoll_event ev = { .events = EPOLLIN };
        int r = -ENOMEM;

        if (!l)
                return -ENOMEM;
        l->epoll_fd = l->timer_fd = -1;
        l->curl_deadline = l->alarm = l->armed = UINT64_MAX;
        l->done = done;
        l->userdata = userdata;
        l->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
        l->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
        if (l->epoll_fd < 0 || l->timer_fd < 0) {
                r = -errno;
                goto fail;
        }
        ev.data.fd = l->timer_fd;
        if (epoll_ctl(l->epoll_fd, EPOLL_CTL_ADD, l->timer_fd, &ev) < 0) {
                r = -errno;
                goto fail;
        }
        l->multi = curl_multi_init();
        if (!l->multi ||
            curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, loop_socket) != CURLM_OK ||
            curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l) != CURLM_OK ||
            curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, loop_timer) != CURLM_OK ||
            curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l) != CURLM_OK)
                goto fail;
        *ret = l;
        return 0;
fail:
        ev__etcd_loop_free(l);
        return r;
}

void ev__etcd_loop_free(struct ev__etcd_loop *l) {
        if (!l)
                return;
        if (l->multi)
                curl_multi_cleanup(l->multi);
        if (l->timer_fd >= 0)
                close(l->timer_fd);
        if (l->epoll_fd >= 0)
                close(l->epoll_fd);
        free(l);
}

int ev__etcd_loop_get_fd(const struct ev__etcd_loop *l) {
        return l->epoll_fd;
}

int ev__etcd_loop_add(struct ev__etcd_loop *l, CURL *easy) {
        CURLMcode r = curl_multi_add_handle(l->multi, easy);

        return r == CURLM_OK ? 0 : r == CURLM_OUT_OF_MEMORY ? -ENOMEM : -EIO;
}

void ev__etcd_loop_remove(struct ev__etcd_loop *l, CURL *easy) {
        curl_multi_remove_handle(l->multi, easy);
}

uint64_t ev__etcd_loop_deadline(const struct ev__etcd_loop *l) {
        return l->curl_deadline < l->alarm ? l->curl_deadline : l->alarm;
}

void ev__etcd_loop_set_alarm(struct ev__etcd_loop *l, uint64_t at_usec) {
        l->alarm = at_usec;
        loop_arm_timer(l);
}

/* Report every finished transfer; done may remove or add handles. */
static void loop_collect(struct ev__etcd_loop *l) {
        CURLMsg *msg;
        int left;

        while ((msg = curl_multi_info_read(l->multi, &left)))
                if (msg->msg == CURLMSG_DONE) {
                        CURL *easy = msg->easy_handle;
                        CURLcode result = msg->data.result;

                        curl_multi_remove_handle(l->multi, easy);
                        l->done(easy, result, l->userdata);
                }
}

int ev__etcd_loop_process(struct ev__etcd_loop *l) {
        struct epoll_event events[LOOP_EVENTS_MAX];
        uint64_t expirations;
        int n, running;

        n = epoll_wait(l->epoll_fd, events, LOOP_EVENTS_MAX, 0);
        for (int i = 0; i < n; i++) {
                int fd = events[i].data.fd, mask = 0;

                if (fd == l->timer_fd) {
                        (void)!read(l->timer_fd, &expirations, sizeof(expirations));
                        l->armed = UINT64_MAX;
                        continue;
                }
                if (events[i].events & (EPOLLIN | EPOLLHUP))
                        mask |= CURL_CSELECT_IN;
                if (events[i].events & EPOLLOUT)
                        mask |= CURL_CSELECT_OUT;
                if (events[i].events & EPOLLERR)
                        mask |= CURL_CSELECT_ERR;
                if (curl_multi_socket_action(l->multi, fd, mask, &running) == CURLM_OUT_OF_MEMORY)
                        return -ENOMEM;
        }
        if (l->curl_deadline <= ev__etcd_now_usec()) {
                l->curl_deadline = UINT64_MAX;
                if (curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running) ==
                    CURLM_OUT_OF_MEMORY)
                        return -ENOMEM;
        }
        loop_collect(l);
        loop_arm_timer(l);
        return 0;
}
