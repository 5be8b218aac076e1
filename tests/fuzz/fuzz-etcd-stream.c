/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer harness for what libevvalue-etcd reads from etcd's gateway
 * (lib/etcd/message.c, base64.c): each input is a watch stream that
 * arrives in chunks, as curl hands it to the follower, through
 * ev__etcd_buffer_append and ev__etcd_buffer_take_lines into
 * ev__etcd_parse_watch for the key "k"; the whole stream is also parsed as
 * a range answer and as a write answer.  It traps on the first broken
 * rule of etcd.h: the lines handed over are not exactly the stream's
 * non-empty lines whatever the chunks; take_lines does not stop at the
 * callback's first nonzero result or keeps a complete line; a parse
 * returns anything but 0, -EBADMSG or -ENOMEM (a write: its documented
 * codes) or writes its output when it fails; a message's state is
 * inconsistent (a kind other than EVENTS with a state, EVENTS with a
 * revision <= 0, an absent key with a value, a range whose key changed
 * after the read or whose absent key is not at the read's revision); a
 * 200 answer that is neither committed nor malformed, an error answer
 * taken as committed.  Each line is parsed from a copy of its exact
 * length, so that AddressSanitizer sees any read past its end; leaks are
 * LeakSanitizer's.
 *
 * The input: byte 0 chooses how the stream is cut and consumed: bits 0-5
 * the longest chunk (0: the whole stream at once; n: chunks of 1 to n
 * bytes, their sizes from a generator seeded by the byte), bit 7 the
 * follower's way (stop at the first line refused or that ends the watch,
 * as follow.c does) rather than parsing every line.  Bit 6 clear: the
 * rest is the stream, one JSON message a line.  Bit 6 set: the rest is a
 * recipe from which the harness writes the stream itself, so that mutations
 * reach the checks behind the JSON syntax: messages in the shape etcd
 * sends, each member valid, absent, null or of another type (see
 * write_message), with the result each must have: a message without a
 * defect must parse to exactly what it says, and a defect where the
 * parser must look (the result's members; an event of an EVENTS message)
 * must be -EBADMSG.  Bytes missing at the end of the recipe read as 0,
 * which is valid everywhere.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* asprintf */
#endif
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etcd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char KEY[] = "k";
#define KEY_LEN ((size_t)1)

__attribute__((noreturn, format(printf, 2, 3)))
static void fail(int line, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "fuzz-etcd-stream.c:%d: rule broken: ", line);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        __builtin_trap();
}

#define CHECK(cond, ...) \
        do { \
                if (!(cond)) \
                        fail(__LINE__, __VA_ARGS__); \
        } while (0)

/* What no parse writes: a failed parse must leave it as it is. */
static unsigned char sentinel_byte;
#define SENTINEL_KV \
        { .present = true, .revision = -7, .value = &sentinel_byte, .size = 77 }

static bool kv_is_sentinel(const struct ev__etcd_kv *kv) {
        return kv->present && kv->revision == -7 && kv->value == &sentinel_byte && kv->size == 77;
}

static bool kv_equal(const struct ev__etcd_kv *a, const struct ev__etcd_kv *b) {
        return a->present == b->present && a->revision == b->revision && a->size == b->size &&
               (a->size == 0 || memcmp(a->value, b->value, a->size) == 0);
}

/* A state as a message carried it: consistent, and its bytes readable. */
static void check_kv(const struct ev__etcd_kv *kv) {
        volatile unsigned char sum = 0;

        CHECK(kv->revision > 0, "a state at revision %lld", (long long)kv->revision);
        if (!kv->present)
                CHECK(!kv->value && kv->size == 0, "an absent key with %zu bytes", kv->size);
        else
                CHECK(kv->size == 0 || kv->value, "%zu bytes at NULL", kv->size);
        for (size_t i = 0; i < kv->size; i++)
                sum ^= kv->value[i];
        (void)sum;
}

/* ------------------------------------------------ the structured stream */

struct input {
        const uint8_t *p;
        size_t n;
};

static uint8_t take(struct input *in) {
        uint8_t b = 0;

        if (in->n > 0) {
                b = *in->p++;
                in->n--;
        }
        return b;
}

/* A growing string. */
struct text {
        char *p;
        size_t n, allocated;
};

__attribute__((format(printf, 2, 3)))
static void put(struct text *t, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(NULL, 0, fmt, ap);
        va_end(ap);
        CHECK(n >= 0, "vsnprintf");
        if (t->n + (size_t)n + 1 > t->allocated) {
                size_t allocated = t->allocated ? t->allocated : 256;

                while (allocated < t->n + (size_t)n + 1)
                        allocated *= 2;
                t->p = realloc(t->p, allocated);
                CHECK(t->p, "out of memory");
                t->allocated = allocated;
        }
        va_start(ap, fmt);
        vsnprintf(t->p + t->n, (size_t)n + 1, fmt, ap);
        va_end(ap);
        t->n += (size_t)n;
}

/* How a member is written: low nibble of its byte 0-7 the valid form;
 * then absent, null and the other JSON types. */
enum variant {
        V_VALID,
        V_ABSENT = 8,
        V_NULL,
        V_NUMBER,       /* 5 */
        V_STRING,       /* "x" */
        V_TRUE,
        V_ARRAY,        /* [] */
        V_OBJECT,       /* {} */
        V_MINUS,        /* "-1" */
};
enum jtype { J_STRING, J_BOOL, J_ARRAY, J_OBJECT };

static enum variant variant(struct input *in) {
        unsigned v = take(in) & 15;

        return v < 8 ? V_VALID : (enum variant)v;
}

/* The JSON of each variant but the valid one. */
static const char *const forms[] = {
        [V_NULL] = "null", [V_NUMBER] = "5", [V_STRING] = "\"x\"",
        [V_TRUE] = "true", [V_ARRAY] = "[]", [V_OBJECT] = "{}", [V_MINUS] = "\"-1\"",
};

/* Writes member name of type t in variant v (valid: the text `valid`);
 * returns whether that is a defect.  absent_ok: the member may be left
 * out (or null); empty_ok: the non-valid form of its own type (true,
 * [], {}) is valid too. */
static bool member(struct text *t, bool *first, const char *name, enum variant v,
                   enum jtype type, bool absent_ok, bool empty_ok, const char *valid) {
        bool own_type;

        if (v == V_ABSENT)
                return !absent_ok;
        put(t, "%s\"%s\":%s", *first ? "" : ",", name, v == V_VALID ? valid : forms[v]);
        *first = false;
        if (v == V_VALID)
                return false;
        if (v == V_NULL)
                return !absent_ok;
        own_type = (type == J_STRING && (v == V_STRING || v == V_MINUS)) ||
                   (type == J_BOOL && v == V_TRUE) || (type == J_ARRAY && v == V_ARRAY) ||
                   (type == J_OBJECT && v == V_OBJECT);
        return !(own_type && empty_ok);
}

/* What a line of the structured stream must parse to. */
struct expect {
        enum { E_OK, E_BADMSG, E_ANY } r;
        bool check_kind;        /* E_ANY: if it parses, to this kind and revision */
        enum ev__etcd_watch_kind kind;
        int64_t revision;
        struct ev__etcd_kv kv;  /* EVENTS; value points into `bytes` */
        unsigned char bytes[8];
};

static char *base64_of(const unsigned char *p, size_t n) {
        char *b = ev__base64_encode(n ? (const void *)p : "", n);

        CHECK(b, "out of memory");
        return b;
}

/* One event: {"type":..., "kv":{"key":..., "mod_revision":..., "value":...}}.
 * *defect: a defect the parser must refuse; *unsure: one it may ignore
 * (a DELETE's value, which it does not read). */
static void write_event(struct input *in, struct text *t, struct expect *e, int64_t *last,
                        bool *defect, bool *unsure, bool *back) {
        struct text kv = { 0 }, ev = { 0 };
        enum variant v_event = variant(in);
        bool deleted = false, first = true, bad = false, bad_value = false;
        int64_t mod = 0;
        unsigned char bytes[8];
        size_t size = 0;

        if (v_event == V_VALID) {
                enum variant v_type = variant(in), v_kv;

                if (v_type == V_VALID)
                        deleted = take(in) & 1;
                bad |= member(&ev, &first, "type", v_type, J_STRING, true, false,
                              deleted ? "\"DELETE\"" : "\"PUT\"");
                v_kv = variant(in);
                if (v_kv == V_VALID) {
                        enum variant v_key = variant(in), v_mod, v_value;
                        bool kv_first = true;
                        char num[32], *b64 = NULL, *quoted = NULL;

                        bad |= member(&kv, &kv_first, "key", v_key, J_STRING, false, false,
                                      "\"aw==\"");
                        v_mod = variant(in);
                        if (v_mod == V_VALID) {
                                mod = take(in);
                                /* "0": not a revision an event can have */
                                bad |= mod == 0;
                        }
                        snprintf(num, sizeof(num), "\"%lld\"", (long long)mod);
                        bad |= member(&kv, &kv_first, "mod_revision", v_mod, J_STRING, false,
                                      false, num);
                        v_value = variant(in);
                        if (v_value == V_VALID) {
                                size = take(in) % 8;
                                for (size_t i = 0; i < size; i++)
                                        bytes[i] = take(in);
                                b64 = base64_of(bytes, size);
                                CHECK(asprintf(&quoted, "\"%s\"", b64) >= 0, "out of memory");
                        }
                        bad_value = member(&kv, &kv_first, "value", v_value, J_STRING, true, false,
                                           quoted ? quoted : "");
                        free(b64);
                        free(quoted);
                        if (v_value != V_VALID)
                                size = 0;
                }
                {
                        char *kv_text;

                        CHECK(asprintf(&kv_text, "{%s}", kv.p ? kv.p : "") >= 0, "out of memory");
                        bad |= member(&ev, &first, "kv", v_kv, J_OBJECT, false, false, kv_text);
                        free(kv_text);
                }
                put(t, "{%s}", ev.p ? ev.p : "");
        } else {
                /* The event itself of another type, or {} (without kv);
                 * an array has no absent element: null. */
                put(t, "%s", forms[v_event == V_ABSENT ? V_NULL : v_event]);
                bad = true;
        }
        free(kv.p);
        free(ev.p);
        if (bad_value && !deleted)
                bad = true;
        else if (bad_value)
                *unsure = true;
        if (bad) {
                *defect = true;
                return;
        }
        if (mod < *last)
                *back = true;
        *last = mod;
        e->kv = (struct ev__etcd_kv){ .present = !deleted, .revision = mod,
                                      .size = deleted ? 0 : size };
        memcpy(e->bytes, bytes, deleted ? 0 : size);
}

/* One message of the structured stream, and what it must parse to. */
static void write_message(struct input *in, struct text *t, struct expect *e) {
        struct text h = { 0 };
        uint8_t shape = take(in);
        bool first = true, always = false, created = false, canceled = false;
        bool event_defect = false, unsure = false, back = false;
        int64_t revision = 0, compact = 0, last = 0;
        enum variant v;
        char num[32];
        unsigned n_events = 0;

        memset(e, 0, sizeof(*e));
        if ((shape & 7) == 7) {
                /* The stream's own end: {"error": {...}} */
                v = variant(in);
                put(t, "%s", "{");
                always = member(t, &first, "error", v, J_OBJECT, false, true,
                                "{\"grpc_code\":14,\"http_code\":503,\"message\":"
                                "\"etcdserver: no leader\",\"http_status\":\"Service "
                                "Unavailable\"}");
                put(t, "%s", "}\n");
                e->r = always ? E_BADMSG : E_OK;
                e->check_kind = !always;
                e->kind = EV__ETCD_WATCH_CANCELED;
                return;
        }
        put(t, "%s", "{\"result\":{");
        v = variant(in);
        if (v == V_VALID) {
                enum variant v_rev = variant(in);
                bool h_first = false;

                put(&h, "%s", "{\"cluster_id\":\"2755613793311995676\",\"member_id\":"
                              "\"9829954754940738069\"");
                if (v_rev == V_VALID)
                        revision = take(in);
                snprintf(num, sizeof(num), "\"%lld\"", (long long)revision);
                always |= member(&h, &h_first, "revision", v_rev, J_STRING, true, false, num);
                if (v_rev != V_VALID)
                        revision = 0;
                put(&h, "%s", ",\"raft_term\":\"2\"}");
        }
        always |= member(t, &first, "header", v, J_OBJECT, true, true, h.p ? h.p : "");
        free(h.p);
        v = variant(in);
        if (v == V_VALID)
                created = take(in) & 1;
        created |= v == V_TRUE;
        always |= member(t, &first, "created", v, J_BOOL, true, true,
                         created ? "true" : "false");
        v = variant(in);
        if (v == V_VALID)
                canceled = take(in) & 1;
        canceled |= v == V_TRUE;
        always |= member(t, &first, "canceled", v, J_BOOL, true, true,
                         canceled ? "true" : "false");
        v = variant(in);
        if (v == V_VALID)
                compact = take(in);
        snprintf(num, sizeof(num), "\"%lld\"", (long long)compact);
        always |= member(t, &first, "compact_revision", v, J_STRING, true, false, num);
        if (v != V_VALID)
                compact = 0;
        v = variant(in);
        if (v == V_VALID) {
                struct text list = { 0 };

                n_events = take(in) % 4;
                put(&list, "%s", "[");
                for (unsigned i = 0; i < n_events; i++) {
                        if (i)
                                put(&list, "%s", ",");
                        write_event(in, &list, e, &last, &event_defect, &unsure, &back);
                }
                put(&list, "%s", "]");
                always |= member(t, &first, "events", v, J_ARRAY, true, true, list.p);
                free(list.p);
        } else {
                always |= member(t, &first, "events", v, J_ARRAY, true, true, "");
        }
        put(t, "%s", "}}\n");

        if (always) {
                e->r = E_BADMSG;
                return;
        }
        e->revision = revision;
        if (canceled)
                e->kind = compact > 0 ? EV__ETCD_WATCH_COMPACTED : EV__ETCD_WATCH_CANCELED;
        else if (created)
                e->kind = EV__ETCD_WATCH_CREATED;
        else if (n_events > 0)
                e->kind = EV__ETCD_WATCH_EVENTS;
        else
                e->kind = EV__ETCD_WATCH_PROGRESS;
        e->check_kind = true;
        if (e->kind == EV__ETCD_WATCH_EVENTS) {
                e->r = event_defect || back ? E_BADMSG : unsure ? E_ANY : E_OK;
                e->kv.value = e->kv.size ? e->bytes : NULL;
        } else {
                /* The events of another kind are not looked at. */
                e->r = event_defect || back || unsure ? E_ANY : E_OK;
                e->kv = (struct ev__etcd_kv){ 0 };
        }
}

/* ------------------------------------------------------------ the checks */

/* One line of the stream, parsed from a copy of its exact length (in the
 * buffer more bytes follow it, which would hide a read past its end), and
 * the result expected of the structured stream (e, NULL for a raw one). */
static int check_watch(const char *line, size_t len, const struct expect *e) {
        struct ev__etcd_watch_message m = { .kind = 77, .revision = -7, .kv = SENTINEL_KV };
        char *copy = malloc(len ? len : 1);
        int r;

        CHECK(copy, "out of memory");
        memcpy(copy, line, len);
        r = ev__etcd_parse_watch(copy, len, KEY, KEY_LEN, &m);
        free(copy);
        CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM, "parse_watch: %d (%s)", r, strerror(-r));
        if (e && e->r == E_OK)
                CHECK(r == 0, "a valid message refused: %d (%s): %.*s", r, strerror(-r), (int)len,
                      line);
        if (e && e->r == E_BADMSG)
                CHECK(r == -EBADMSG, "a defect accepted: %d: %.*s", r, (int)len, line);
        if (r < 0) {
                CHECK((int)m.kind == 77 && m.revision == -7 && kv_is_sentinel(&m.kv),
                      "parse_watch failed with %d but wrote its output", r);
                return r;
        }
        if (e && e->check_kind)
                CHECK(m.kind == e->kind && m.revision == e->revision,
                      "kind %d at %lld, not %d at %lld: %.*s", (int)m.kind, (long long)m.revision,
                      (int)e->kind, (long long)e->revision, (int)len, line);
        if (e && e->r == E_OK && e->kind == EV__ETCD_WATCH_EVENTS)
                CHECK(kv_equal(&m.kv, &e->kv),
                      "state %s at %lld (%zu bytes), not %s at %lld (%zu bytes): %.*s",
                      m.kv.present ? "present" : "absent", (long long)m.kv.revision, m.kv.size,
                      e->kv.present ? "present" : "absent", (long long)e->kv.revision, e->kv.size,
                      (int)len, line);
        CHECK(m.revision >= 0, "a header revision %lld", (long long)m.revision);
        switch (m.kind) {
        case EV__ETCD_WATCH_EVENTS:
                check_kv(&m.kv);
                break;
        case EV__ETCD_WATCH_CREATED:
        case EV__ETCD_WATCH_PROGRESS:
        case EV__ETCD_WATCH_COMPACTED:
        case EV__ETCD_WATCH_CANCELED:
                CHECK(!m.kv.present && m.kv.revision == 0 && !m.kv.value && m.kv.size == 0,
                      "kind %d with a state", (int)m.kind);
                break;
        default:
                fail(__LINE__, "kind %d", (int)m.kind);
        }
        ev__etcd_kv_clear(&m.kv);
        /* As follow.c: an end of the watch stops the stream. */
        return m.kind == EV__ETCD_WATCH_COMPACTED || m.kind == EV__ETCD_WATCH_CANCELED ? 1 : 0;
}

static void check_range(const char *json, size_t len) {
        struct ev__etcd_range range = { .revision = -7, .kv = SENTINEL_KV };
        int r = ev__etcd_parse_range(json, len, KEY, KEY_LEN, &range);

        CHECK(r == 0 || r == -EBADMSG || r == -ENOMEM, "parse_range: %d (%s)", r, strerror(-r));
        if (r < 0) {
                CHECK(range.revision == -7 && kv_is_sentinel(&range.kv),
                      "parse_range failed with %d but wrote its output", r);
                return;
        }
        CHECK(range.revision > 0, "a range at revision %lld", (long long)range.revision);
        check_kv(&range.kv);
        if (range.kv.present)
                CHECK(range.kv.revision <= range.revision,
                      "a key modified at %lld, read at %lld", (long long)range.kv.revision,
                      (long long)range.revision);
        else
                CHECK(range.kv.revision == range.revision,
                      "an absent key at %lld, read at %lld", (long long)range.kv.revision,
                      (long long)range.revision);
        ev__etcd_kv_clear(&range.kv);
}

static void check_write(long status, const char *json, size_t len) {
        int r = ev__etcd_parse_write(status, json, len);

        CHECK(r == 0 || r == 1 || r == -EMSGSIZE || r == -EAGAIN || r == -EIO ||
                      r == -EBADMSG || r == -ENOMEM,
              "parse_write(%ld): %d (%s)", status, r, strerror(-r));
        if (status == 200)
                CHECK(r == 0 || r == 1 || r == -EBADMSG || r == -ENOMEM,
                      "parse_write(200): %d (%s)", r, strerror(-r));
        else
                CHECK(r < 0, "parse_write(%ld): an error answer committed", status);
}

/* The stream's non-empty lines, as take_lines must hand them over. */
struct stream {
        const char *p;
        size_t n;
        const char **line;
        size_t *len;
        size_t n_lines;         /* complete lines in the stream */
        size_t seen;            /* handed over so far */
        bool follower;          /* stop at the first nonzero, as follow.c */
        int stopped;            /* what the callback returned to stop */
        const struct expect *expect; /* one a line, structured streams only */
};

static void stream_split(struct stream *s) {
        size_t start = 0, max = 0;

        for (size_t i = 0; i < s->n; i++)
                max += s->p[i] == '\n';
        s->line = malloc((max + 1) * sizeof(*s->line));
        s->len = malloc((max + 1) * sizeof(*s->len));
        CHECK(s->line && s->len, "out of memory");
        for (size_t i = 0; i < s->n; i++) {
                if (s->p[i] != '\n')
                        continue;
                if (i > start) {
                        s->line[s->n_lines] = s->p + start;
                        s->len[s->n_lines] = i - start;
                        s->n_lines++;
                }
                start = i + 1;
        }
}

static int on_line(const char *line, size_t len, void *userdata) {
        struct stream *s = userdata;
        int r;

        CHECK(s->stopped == 0, "a line handed over after the callback stopped");
        CHECK(s->seen < s->n_lines, "line %zu handed over: the stream has %zu", s->seen + 1,
              s->n_lines);
        CHECK(len == s->len[s->seen] && memcmp(line, s->line[s->seen], len) == 0,
              "line %zu: %zu bytes, not the stream's %zu", s->seen + 1, len, s->len[s->seen]);
        s->seen++;
        r = check_watch(line, len, s->expect ? &s->expect[s->seen - 1] : NULL);
        if (!s->follower)
                return 0;
        s->stopped = r;
        return r;
}

/* Chunk sizes from 1 to max, from a generator seeded by the input. */
static size_t next_chunk(uint32_t *state, size_t max) {
        *state = *state * 1103515245u + 12345u;
        return 1 + (*state >> 16) % max;
}

/* Up to MAX_MESSAGES messages from the recipe. */
#define MAX_MESSAGES 64

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        struct ev__etcd_buffer b = { 0 };
        struct stream s = { 0 };
        struct text written = { 0 };
        struct expect *expect = NULL;
        size_t max_chunk, fed = 0;
        uint32_t state;
        uint8_t config;

        if (size == 0)
                return 0;
        config = data[0];
        s.p = (const char *)data + 1;
        s.n = size - 1;
        s.follower = config & 0x80;
        max_chunk = config & 0x3f;
        state = config * 2654435761u;
        if (config & 0x40) {
                struct input in = { data + 1, size - 1 };
                size_t n = 0;

                expect = calloc(MAX_MESSAGES, sizeof(*expect));
                CHECK(expect, "out of memory");
                do
                        write_message(&in, &written, &expect[n++]);
                while (in.n > 0 && n < MAX_MESSAGES);
                s.p = written.p;
                s.n = written.n;
                s.expect = expect;
        }
        stream_split(&s);
        CHECK(!expect || s.n_lines <= MAX_MESSAGES, "%zu lines written", s.n_lines);

        while (fed < s.n) {
                size_t chunk = max_chunk ? next_chunk(&state, max_chunk) : s.n;
                int r;

                if (chunk > s.n - fed)
                        chunk = s.n - fed;
                r = ev__etcd_buffer_append(&b, s.p + fed, chunk);
                CHECK(r == 0 || r == -ENOMEM, "append of %zu bytes to %zu: %d (%s)", chunk,
                      b.size, r, strerror(-r));
                if (r < 0)
                        break;
                fed += chunk;
                CHECK(b.size <= EV__ETCD_LINE_MAX && b.size < b.allocated && b.data[b.size] == '\0',
                      "a buffer of %zu bytes, %zu allocated, not NUL-terminated", b.size,
                      b.allocated);
                r = ev__etcd_buffer_take_lines(&b, on_line, &s);
                CHECK(r == s.stopped, "take_lines returned %d, the callback %d", r, s.stopped);
                if (r != 0)
                        break;
                /* What is kept is the start of a line, not a complete one. */
                CHECK(!memchr(b.data, '\n', b.size), "take_lines kept a complete line");
                CHECK(b.data[b.size] == '\0', "not NUL-terminated after take_lines");
                CHECK(b.size == 0 || memcmp(b.data, s.p + fed - b.size, b.size) == 0,
                      "the buffer does not end the stream so far");
        }
        if (s.stopped == 0)
                CHECK(s.seen == s.n_lines, "%zu lines handed over, the stream has %zu", s.seen,
                      s.n_lines);
        else
                CHECK(s.follower && s.seen > 0, "stopped without a reason");
        ev__etcd_buffer_free(&b);
        free(s.line);
        free(s.len);

        /* The whole stream as one answer. */
        check_range(s.p, s.n);
        check_write(200, s.p, s.n);
        check_write(400, s.p, s.n);
        check_write(503, s.p, s.n);
        free(written.p);
        free(expect);
        return 0;
}

#ifdef EV_FUZZ_REPLAY_CORPUS
/* The replay (replay.c, its main renamed by -Dmain=ev_fuzz_replay_main)
 * runs this harness's own seed corpus when make check names none. */
#undef main
int ev_fuzz_replay_main(int argc, char **argv);
int main(int argc, char **argv);

int main(int argc, char **argv) {
        const char *top_srcdir = getenv("top_srcdir");
        static char corpus[4096];
        char *args[] = { argv[0], corpus, NULL };

        if (argc > 1)
                return ev_fuzz_replay_main(argc, argv);
        snprintf(corpus, sizeof(corpus), "%s/%s", top_srcdir ? top_srcdir : ".",
                 EV_FUZZ_REPLAY_CORPUS);
        return ev_fuzz_replay_main(2, args);
}
#endif
