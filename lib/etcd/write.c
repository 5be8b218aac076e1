/* SPDX-License-Identifier: MIT */
/*
 * Puts, deletes and transactions: a blocking request from whichever
 * thread calls, on an easy handle of its own, so that writes never wait
 * for the loop nor the loop for them.  The member the follower trusts is
 * tried first, then the others in turn until one with a leader commits the
 * write or the time runs out.  One handle is kept between calls (its
 * connection to the member stays open); a call that finds it in use makes
 * its own.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "etcd.h"

struct ev__etcd_writer {
        const struct ev__etcd_endpoints *endpoints;
        struct curl_slist *headers;
        pthread_mutex_t lock;       /* held while `kept` is in use */
        CURL *kept;
};

int ev__etcd_writer_new(const struct ev__etcd_endpoints *endpoints,
                        struct ev__etcd_writer **ret) {
        struct ev__etcd_writer *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->endpoints = endpoints;
        w->headers = ev__etcd_headers_new();
        w->kept = curl_easy_init();
        if (!w->headers || !w->kept) {
                curl_slist_free_all(w->headers);
                curl_easy_cleanup(w->kept);
                free(w);
                return -ENOMEM;
        }
        pthread_mutex_init(&w->lock, NULL);
        *ret = w;
        return 0;
}

void ev__etcd_writer_free(struct ev__etcd_writer *w) {
        if (!w)
                return;
        curl_easy_cleanup(w->kept);
        curl_slist_free_all(w->headers);
        pthread_mutex_destroy(&w->lock);
        free(w);
}

static size_t writer_collect(char *data, size_t size, size_t n, void *userdata) {
        return ev__etcd_buffer_append(userdata, data, size * n) < 0 ? 0 : size * n;
}

/* What a failed transfer says of its member: -ECONNREFUSED, or
 * -EHOSTUNREACH when no connection was made (no route, or no answer to
 * the connection within its timeout): the member did not answer at all;
 * else what ev__etcd_curl_error says. */
static int writer_failure(CURL *easy, CURLcode code) {
        curl_off_t connect_time = 0;
        long os_errno = 0;

        if (code == CURLE_OUT_OF_MEMORY)
                return -ENOMEM;
        if (code == CURLE_COULDNT_CONNECT) {
                curl_easy_getinfo(easy, CURLINFO_OS_ERRNO, &os_errno);
                return os_errno == ECONNREFUSED ? -ECONNREFUSED : -EHOSTUNREACH;
        }
        if (code == CURLE_OPERATION_TIMEDOUT &&
            curl_easy_getinfo(easy, CURLINFO_CONNECT_TIME_T, &connect_time) == CURLE_OK &&
            connect_time == 0)
                return -EHOSTUNREACH;
        return ev__etcd_curl_error(code);
}

/* One attempt on one member, within timeout_ms: what
 * ev__etcd_parse_write or ev__etcd_curl_error says. */
static int writer_try(struct ev__etcd_writer *w, CURL *easy, const char *base, const char *path,
                      const char *body, long timeout_ms) {
        struct ev__etcd_buffer answer = { 0 };
        char *url = ev__etcd_url(base, path);
        long status = 0;
        CURLcode code;
        int r;

        curl_easy_reset(easy);
        r = url ? ev__etcd_easy_setup(easy, url, body, w->headers) : -ENOMEM;
        if (r == 0 && (curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, writer_collect) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_WRITEDATA, &answer) != CURLE_OK ||
                       curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK))
                r = -ENOMEM;
        if (r == 0) {
                code = curl_easy_perform(easy);
                curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
                if (code != CURLE_OK)
                        r = writer_failure(easy, code);
                else
                        r = ev__etcd_parse_write(status, answer.data ? answer.data : "",
                                                 answer.size);
        }
        ev__etcd_buffer_free(&answer);
        free(url);
        return r;
}

/* Each member once, from `first`, each attempt bounded by the deadline
 * (µs, UINT64_MAX: none): the answer (>= 0), a final error, or -EAGAIN to
 * go on.  A round where no member answered at all ends the write:
 * -ECONNREFUSED or -EHOSTUNREACH. */
static int writer_round(struct ev__etcd_writer *w, CURL *easy, const char *path,
                        const char *body, size_t first, uint64_t deadline) {
        size_t n = w->endpoints->n;
        int unanswered = -ECONNREFUSED;
        bool answered = false;

        for (size_t i = 0; i < n; i++) {
                uint64_t now = ev__etcd_now_usec();
                long timeout_ms = EV__ETCD_WRITE_ATTEMPT_MS;
                int r;

                if (now >= deadline)
                        return -ETIMEDOUT;
                if (deadline - now < (uint64_t)timeout_ms * 1000)
                        timeout_ms = (long)((deadline - now + 999) / 1000);
                r = writer_try(w, easy, w->endpoints->urls[(first + i) % n], path, body, timeout_ms);
                if (r == -ECONNREFUSED || r == -EHOSTUNREACH) {
                        if (r == -EHOSTUNREACH)
                                unanswered = r;
                        continue;
                }
                answered = true;
                if (r >= 0 || r == -EMSGSIZE || r == -EIO || r == -ENOMEM)
                        return r;
                /* -EAGAIN, -ETIMEDOUT, -EBADMSG: another member may do. */
        }
        return answered ? -EAGAIN : unanswered;
}

/* Sleep for usec, but not past the deadline. */
static void writer_pause(uint64_t usec, uint64_t deadline) {
        uint64_t now = ev__etcd_now_usec();

        if (deadline != UINT64_MAX && now + usec > deadline)
                usec = deadline > now ? deadline - now : 0;
        poll(NULL, 0, (int)((usec + 999) / 1000));
}

int ev__etcd_writer_send(struct ev__etcd_writer *w, const char *path, const char *body,
                         size_t first, int timeout_ms) {
        uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
                                           : ev__etcd_now_usec() + (uint64_t)timeout_ms * 1000;
        bool kept = pthread_mutex_trylock(&w->lock) == 0;
        CURL *easy = kept ? w->kept : curl_easy_init();
        uint32_t seed = (uint32_t)ev__etcd_now_usec() | 1;
        unsigned rounds = 0;
        int r;

        if (!easy)
                return -ENOMEM;
        while ((r = writer_round(w, easy, path, body, first, deadline)) == -EAGAIN) {
                if (deadline != UINT64_MAX && ev__etcd_now_usec() >= deadline) {
                        r = -ETIMEDOUT;
                        break;
                }
                writer_pause(ev__etcd_backoff_usec(++rounds, &seed), deadline);
        }
        if (kept)
                pthread_mutex_unlock(&w->lock);
        else
                curl_easy_cleanup(easy);
        return r;
}
