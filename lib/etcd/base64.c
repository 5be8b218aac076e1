/* SPDX-License-Identifier: MIT */
/*
 * Base64, the standard alphabet with padding: how etcd's JSON gateway
 * carries keys and values (Go's encoding/json for []byte).  The decoder is
 * exact, since what it reads comes from the network: padding required,
 * no whitespace, no bits left over.
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>

#include "etcd.h"

static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

char *ev__base64_encode(const void *data, size_t size) {
        const unsigned char *in = data;
        char *text, *out;
        size_t i;

        if (size > (SIZE_MAX - 1) / 4 * 3 - 3)
                return NULL;
        text = malloc((size + 2) / 3 * 4 + 1);
        if (!text)
                return NULL;
        out = text;
        for (i = 0; i + 2 < size; i += 3) {
                uint32_t n = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

                *out++ = alphabet[n >> 18];
                *out++ = alphabet[(n >> 12) & 63];
                *out++ = alphabet[(n >> 6) & 63];
                *out++ = alphabet[n & 63];
        }
        if (i < size) {
                uint32_t n = (uint32_t)in[i] << 16 | (i + 1 < size ? (uint32_t)in[i + 1] << 8 : 0);

                *out++ = alphabet[n >> 18];
                *out++ = alphabet[(n >> 12) & 63];
                *out++ = i + 1 < size ? alphabet[(n >> 6) & 63] : '=';
                *out++ = '=';
        }
        *out = '\0';
        return text;
}

static int sextet(char c) {
        if (c >= 'A' && c <= 'Z')
                return c - 'A';
        if (c >= 'a' && c <= 'z')
                return c - 'a' + 26;
        if (c >= '0' && c <= '9')
                return c - '0' + 52;
        if (c == '+')
                return 62;
        if (c == '/')
                return 63;
        return -1;
}

/* Decode one group of four characters into out: the bytes written (1-3),
 * or -EBADMSG.  Only the last group may be padded. */
static int decode_group(const char *g, bool last, unsigned char *out) {
        int pad = (g[3] == '=') + (g[2] == '=' && g[3] == '=');
        int a = sextet(g[0]), b = sextet(g[1]);
        int c = pad >= 2 ? 0 : sextet(g[2]), d = pad >= 1 ? 0 : sextet(g[3]);
        uint32_t n;

        if (a < 0 || b < 0 || c < 0 || d < 0 || (pad && !last))
                return -EBADMSG;
        n = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        /* Bits that the padding says are unused must be zero. */
        if ((pad == 2 && (n & 0xffff)) || (pad == 1 && (n & 0xff)))
                return -EBADMSG;
        out[0] = n >> 16;
        out[1] = n >> 8;
        out[2] = n;
        return 3 - pad;
}

int ev__base64_decode(const char *text, size_t len, unsigned char **ret, size_t *ret_size) {
        unsigned char *data;
        size_t i, size = 0;

        if (len % 4)
                return -EBADMSG;
        /* One spare byte, so that an empty value is a valid pointer too. */
        data = malloc(len / 4 * 3 + 1);
        if (!data)
                return -ENOMEM;
        for (i = 0; i < len; i += 4) {
                int n = decode_group(text + i, i + 4 == len, data + size);

                if (n < 0) {
                        free(data);
                        return n;
                }
                size += (size_t)n;
        }
        *ret = data;
        *ret_size = size;
        return 0;
}
