/* SPDX-License-Identifier: MIT */
/*
 * The address forms of evvalue(1): "unix:PATH" or a bare PATH, "unix:@NAME"
 * or "@NAME" (abstract), and "etcd://HOST:PORT[,HOST:PORT...]/KEY".  Parsing
 * is strict, so that a typo is a usage error rather than a socket path
 * nobody serves: anything else that looks like a URL is refused.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "evvalue.h"

static int hex_digit(char c) {
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/* %XX-decode text into a new buffer, so that a key can hold any byte. */
static int percent_decode(const char *text, char **ret, size_t *ret_size) {
        char *out = malloc(strlen(text) + 1);
        size_t n = 0;

        if (!out)
                return -ENOMEM;
        for (const char *p = text; *p; p++) {
                if (*p == '%') {
                        int hi = hex_digit(p[1]), lo = hi < 0 ? -1 : hex_digit(p[2]);

                        if (lo < 0) {
                                free(out);
                                return -EINVAL;
                        }
                        out[n++] = (char)(hi << 4 | lo);
                        p += 2;
                } else
                        out[n++] = *p;
        }
        out[n] = '\0';
        *ret = out;
        *ret_size = n;
        return 0;
}

/* One "HOST:PORT" (HOST may be "[v6]"): a non-empty host, a decimal port. */
static bool host_port_valid(const char *s, size_t len) {
        const char *colon = memrchr(s, ':', len);
        size_t digits;
        unsigned long port = 0;

        if (!colon || colon == s)
                return false;
        if (s[0] == '[' && colon[-1] != ']')
                return false;
        digits = len - (size_t)(colon + 1 - s);
        if (digits == 0 || digits > 5)
                return false;
        for (size_t i = 0; i < digits; i++) {
                if (colon[1 + i] < '0' || colon[1 + i] > '9')
                        return false;
                port = port * 10 + (unsigned long)(colon[1 + i] - '0');
        }
        if (port == 0 || port > 65535)
                return false;
        for (const char *p = s; p < colon; p++)
                if (*p == '/' || *p == '@' || *p == ',' || *p == ' ')
                        return false;
        return true;
}

/* "h1:p1,h2:p2" into "http://h1:p1,http://h2:p2". */
static int etcd_endpoints(const char *hosts, size_t len, char **ret) {
        size_t count = 1;
        char *out, *o;

        for (size_t i = 0; i < len; i++)
                count += hosts[i] == ',';
        out = o = malloc(len + count * strlen("http://") + 1);
        if (!out)
                return -ENOMEM;
        for (const char *p = hosts, *end = hosts + len; p <= end;) {
                const char *comma = memchr(p, ',', (size_t)(end - p));
                size_t n = (size_t)((comma ? comma : end) - p);

                if (!host_port_valid(p, n)) {
                        free(out);
                        return -EINVAL;
                }
                o += sprintf(o, "%s%s", o == out ? "" : ",", "http://");
                memcpy(o, p, n);
                o += n;
                p += n + 1;
        }
        *o = '\0';
        *ret = out;
        return 0;
}

static int parse_etcd(const char *rest, struct address *a) {
        const char *slash = strchr(rest, '/');
        size_t key_size;
        int r;

        if (!slash || slash == rest || slash[1] == '\0')
                return -EINVAL;
        r = etcd_endpoints(rest, (size_t)(slash - rest), &a->endpoints);
        if (r < 0)
                return r;
        r = percent_decode(slash + 1, &a->key, &key_size);
        if (r < 0)
                return r;
        /* The library takes the key as a C string: no %00. */
        if (strlen(a->key) != key_size)
                return -EINVAL;
        a->kind = ADDRESS_ETCD;
        return 0;
}

static int parse_unix(const char *path, struct address *a) {
        if (path[0] == '\0' || (path[0] == '@' && path[1] == '\0'))
                return -EINVAL;
        a->path = strdup(path);
        if (!a->path)
                return -ENOMEM;
        a->kind = ADDRESS_UNIX;
        return 0;
}

int address_parse(const char *text, struct address *ret) {
        struct address a = { .text = text };
        int r;

        if (strncmp(text, "etcd://", strlen("etcd://")) == 0)
                r = parse_etcd(text + strlen("etcd://"), &a);
        else if (strncmp(text, "unix:", strlen("unix:")) == 0)
                r = strncmp(text, "unix://", strlen("unix://")) == 0
                            ? -EINVAL
                            : parse_unix(text + strlen("unix:"), &a);
        else if (strstr(text, "://"))
                r = -EINVAL;
        else
                r = parse_unix(text, &a);
        if (r < 0) {
                address_clear(&a);
                return r;
        }
        *ret = a;
        return 0;
}

void address_clear(struct address *a) {
        free(a->path);
        free(a->endpoints);
        free(a->key);
        a->path = a->endpoints = a->key = NULL;
}
