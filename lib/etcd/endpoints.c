/* SPDX-License-Identifier: MIT */
/*
 * The members of one cluster, and how the library speaks to them: the
 * endpoint list a caller gives (checked strictly, so that a typo is
 * -EINVAL at once rather than a silent retry forever), the curl options
 * every request shares, what a failed transfer says about its member, and
 * the backoff between rounds of failed members.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etcd.h"

/* "http://" host ":" port, with host a name or IPv4 literal of
 * [A-Za-z0-9.-] or an IPv6 literal in brackets, port 1-65535, and an
 * optional trailing slash. */
static bool url_is_valid(const char *url, size_t len) {
        const char *p = url + strlen("http://"), *end = url + len, *colon;
        unsigned long port = 0;

        if (len <= strlen("http://") || strncmp(url, "http://", strlen("http://")) != 0)
                return false;
        if (end[-1] == '/')
                end--;
        for (colon = end; colon > p && colon[-1] != ':'; colon--)
                ;
        if (colon == p || colon == end || end - colon > 5)
                return false;
        for (const char *d = colon; d < end; d++) {
                if (*d < '0' || *d > '9')
                        return false;
                port = port * 10 + (unsigned long)(*d - '0');
        }
        if (port == 0 || port > 65535 || colon - 1 == p)
                return false;
        if (*p == '[')
                return colon - 2 > p + 1 && colon[-2] == ']' && strspn(p + 1, "0123456789abcdefABCDEF:.") ==
                                                   (size_t)(colon - 2 - (p + 1));
        return strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") ==
               (size_t)(colon - 1 - p);
}

void ev__etcd_endpoints_free(struct ev__etcd_endpoints *e) {
        for (size_t i = 0; i < e->n; i++)
                free(e->urls[i]);
        free(e->urls);
        *e = (struct ev__etcd_endpoints){ 0 };
}

/* Append list[0..len) to e, without its trailing slash. */
static int endpoints_add(struct ev__etcd_endpoints *e, const char *item, size_t len) {
        char **urls;

        if (!url_is_valid(item, len))
                return -EINVAL;
        if (item[len - 1] == '/')
                len--;
        urls = realloc(e->urls, (e->n + 1) * sizeof(*urls));
        if (!urls)
                return -ENOMEM;
        e->urls = urls;
        e->urls[e->n] = strndup(item, len);
        if (!e->urls[e->n])
                return -ENOMEM;
        e->n++;
        return 0;
}

int ev__etcd_endpoints_parse(const char *list, struct ev__etcd_endpoints *ret) {
        struct ev__etcd_endpoints e = { 0 };
        const char *item = list;
        int r = 0;

        for (;;) {
                size_t len = strcspn(item, ",");

                r = endpoints_add(&e, item, len);
                if (r < 0 || !item[len])
                        break;
                item += len + 1;
        }
        if (r < 0) {
                ev__etcd_endpoints_free(&e);
                return r;
        }
        *ret = e;
        return 0;
}

char *ev__etcd_url(const char *base, const char *path) {
        char *url;

        return asprintf(&url, "%s%s", base, path) < 0 ? NULL : url;
}

uint64_t ev__etcd_backoff_usec(unsigned rounds, uint32_t *seed) {
        uint64_t wait = EV__ETCD_BACKOFF_FIRST_USEC;

        while (rounds-- > 1 && wait < EV__ETCD_BACKOFF_MAX_USEC)
                wait *= 2;
        if (wait > EV__ETCD_BACKOFF_MAX_USEC)
                wait = EV__ETCD_BACKOFF_MAX_USEC;
        /* +-25%, so that clients that lost the same cluster do not all
         * come back at the same moment.  A xorshift: no global state. */
        *seed ^= *seed << 13;
        *seed ^= *seed >> 17;
        *seed ^= *seed << 5;
        return wait * 3 / 4 + *seed % (wait / 2 + 1);
}

struct curl_slist *ev__etcd_headers_new(void) {
        static const char *const headers[] = {
                "Content-Type: application/json",
                /* curl waits for "100 Continue" before a large body. */
                "Expect:",
                /* A member without a leader refuses the request (and ends
                 * a watch) instead of answering from stale state or
                 * keeping a watch silent. */
                "Grpc-Metadata-hasleader: true",
        };
        struct curl_slist *list = NULL, *next;

        for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
                next = curl_slist_append(list, headers[i]);
                if (!next) {
                        curl_slist_free_all(list);
                        return NULL;
                }
                list = next;
        }
        return list;
}

int ev__etcd_easy_setup(CURL *easy, const char *url, const char *body,
                        struct curl_slist *headers) {
        bool ok = curl_easy_setopt(easy, CURLOPT_URL, url) == CURLE_OK &&
                  curl_easy_setopt(easy, CURLOPT_COPYPOSTFIELDS, body) == CURLE_OK &&
                  curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers) == CURLE_OK &&
                  curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1) ==
                          CURLE_OK &&
                  curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK &&
                  curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http") == CURLE_OK &&
                  curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                                   (long)EV__ETCD_REQUEST_TIMEOUT_MS) == CURLE_OK;

        return ok ? 0 : -ENOMEM;
}

int ev__etcd_curl_error(CURLcode code) {
        switch (code) {
        case CURLE_COULDNT_CONNECT:
                return -ECONNREFUSED;
        case CURLE_COULDNT_RESOLVE_HOST:
                return -EHOSTUNREACH;
        case CURLE_OPERATION_TIMEDOUT:
                return -ETIMEDOUT;
        default:
                return -EIO;
        }
}

uint64_t ev__etcd_now_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}
