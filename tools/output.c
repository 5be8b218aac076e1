/* SPDX-License-Identifier: MIT */
/*
 * How evvalue(1) prints a snapshot: through a printf-like --format (the
 * default, "%s" or "%s\n", is the bytes themselves) or as one JSON object
 * per line.  The bytes may be anything, NULs included, so nothing here
 * treats them as a C string: JSON carries them as text only when they are
 * valid UTF-8, else as base64.
 */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "evvalue.h"

static void put_base64(const unsigned char *p, size_t n) {
        static const char digits[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

        for (; n >= 3; p += 3, n -= 3) {
                putchar(digits[p[0] >> 2]);
                putchar(digits[(p[0] & 3) << 4 | p[1] >> 4]);
                putchar(digits[(p[1] & 15) << 2 | p[2] >> 6]);
                putchar(digits[p[2] & 63]);
        }
        if (n > 0) {
                putchar(digits[p[0] >> 2]);
                putchar(digits[(p[0] & 3) << 4 | (n > 1 ? p[1] >> 4 : 0)]);
                putchar(n > 1 ? digits[(p[1] & 15) << 2] : '=');
                putchar('=');
        }
}

/* The length of the UTF-8 sequence at p (RFC 3629: no overlong form, no
 * surrogate, nothing above U+10FFFF), 0 if there is none. */
static size_t utf8_sequence(const unsigned char *p, size_t n) {
        size_t len;
        unsigned min;
        uint32_t c;

        if (p[0] < 0x80)
                return 1;
        if (p[0] >= 0xc2 && p[0] <= 0xdf)
                len = 2, min = 0x80, c = p[0] & 0x1f;
        else if (p[0] >= 0xe0 && p[0] <= 0xef)
                len = 3, min = 0x800, c = p[0] & 0x0f;
        else if (p[0] >= 0xf0 && p[0] <= 0xf4)
                len = 4, min = 0x10000, c = p[0] & 0x07;
        else
                return 0;
        if (n < len)
                return 0;
        for (size_t i = 1; i < len; i++) {
                if ((p[i] & 0xc0) != 0x80)
                        return 0;
                c = c << 6 | (p[i] & 0x3f);
        }
        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
                return 0;
        return len;
}

static bool utf8_valid(const unsigned char *p, size_t n) {
        for (size_t i = 0, len; i < n; i += len)
                if ((len = utf8_sequence(p + i, n - i)) == 0)
                        return false;
        return true;
}

/* Valid UTF-8 as a JSON string's content. */
static void put_json_text(const unsigned char *p, size_t n) {
        for (size_t i = 0; i < n; i++) {
                if (p[i] == '"' || p[i] == '\\')
                        printf("\\%c", p[i]);
                else if (p[i] == '\n')
                        fputs("\\n", stdout);
                else if (p[i] == '\t')
                        fputs("\\t", stdout);
                else if (p[i] < 0x20 || p[i] == 0x7f)
                        printf("\\u%04x", p[i]);
                else
                        putchar(p[i]);
        }
}

static void put_json(const ev_value_snapshot *s, bool with_absent, bool absent) {
        const unsigned char *p = ev_snapshot_data(s);
        size_t n = ev_snapshot_size(s);
        bool text = utf8_valid(p, n);

        printf("{\"version\":%" PRIu64 ",\"size\":%zu,\"encoding\":\"%s\",\"data\":\"",
               ev_snapshot_version(s), n, text ? "utf-8" : "base64");
        if (text)
                put_json_text(p, n);
        else
                put_base64(p, n);
        putchar('"');
        if (with_absent)
                printf(",\"absent\":%s", absent ? "true" : "false");
        fputs("}\n", stdout);
}

/* The character a backslash escape stands for, or -1. */
static int escaped(char c) {
        switch (c) {
        case 'n':
                return '\n';
        case 't':
                return '\t';
        case '0':
                return '\0';
        case '\\':
                return '\\';
        default:
                return -1;
        }
}

/* Print one %-directive (put_format() checked it). */
static void put_directive(char c, const ev_value_snapshot *s, bool absent) {
        const unsigned char *p = ev_snapshot_data(s);
        size_t n = ev_snapshot_size(s);

        switch (c) {
        case 's':
                fwrite(p, 1, n, stdout);
                break;
        case 'v':
                printf("%" PRIu64, ev_snapshot_version(s));
                break;
        case 'z':
                printf("%zu", n);
                break;
        case 'b':
                put_base64(p, n);
                break;
        case 'a':
                putchar(absent ? '1' : '0');
                break;
        case '%':
                putchar('%');
                break;
        }
}

/* Walk format, printing s when it is not NULL; -EINVAL on a bad directive. */
static int put_format(const char *format, const ev_value_snapshot *s, bool absent) {
        for (const char *f = format; *f; f++) {
                if (*f == '\\') {
                        int c = escaped(*++f);

                        if (c < 0)
                                return -EINVAL;
                        if (s)
                                putchar(c);
                } else if (*f == '%') {
                        f++;
                        if (*f == '\0' || !strchr("svzba%", *f))
                                return -EINVAL;
                        if (s)
                                put_directive(*f, s, absent);
                } else if (s)
                        putchar(*f);
        }
        return 0;
}

int output_setup(bool json, const char *format, const char *default_format,
                 const struct address *a, struct output *ret) {
        if (json && format)
                return usage_error("--json and --format exclude each other");
        if (format && put_format(format, NULL, false) < 0)
                return usage_error("invalid format '%s': %%s %%v %%z %%b %%a %%%% \\n \\t \\0 \\\\",
                                   format);
        *ret = (struct output){
                .mode = json ? OUTPUT_JSON : OUTPUT_FORMAT,
                .format = format ? format : default_format,
                .with_absent = a->kind == ADDRESS_ETCD,
        };
        return 0;
}

int output_snapshot(const struct output *o, const ev_value_snapshot *s, bool absent) {
        if (o->mode == OUTPUT_JSON)
                put_json(s, o->with_absent, absent);
        else
                put_format(o->format, s, absent);
        errno = 0;
        if (fflush(stdout) != 0 || ferror(stdout))
                return errno > 0 ? -errno : -EIO;
        return 0;
}
