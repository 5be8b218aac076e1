/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of what libevvalue-etcd reads from and writes to the wire,
 * without a server: base64 (lib/etcd/base64.c), the endpoint list and URLs
 * (lib/etcd/endpoints.c), and the gateway's JSON (lib/etcd/message.c): the
 * bodies sent, the range, watch and write answers parsed, and the buffer
 * that cuts the watch stream into lines.  The answers are the ones a live
 * etcd 3.4 sent, then each broken in one way; every malformed answer must
 * give -EBADMSG and leave the output alone, since the follower acts on
 * whatever a parse returns.  These functions are hidden in the shared
 * library, so the test is built from their sources.  Everything is freed:
 * the test runs under valgrind.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* asprintf */
#endif
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "etcd.h"

/* The key every answer below is about: "k", base64 "aw==". */
static const char K[] = "k";
#define KLEN ((size_t)1)

/* A header as etcd 3.4 sends it, for revision rev (a string literal). */
#define HDR(rev) \
        "\"header\":{\"cluster_id\":\"2755613793311995676\",\"member_id\":" \
        "\"9829954754940738069\",\"revision\":\"" rev "\",\"raft_term\":\"2\"}"
/* A header without a revision, as a canceled watch has. */
#define HDR_NOREV \
        "\"header\":{\"cluster_id\":\"2755613793311995676\",\"member_id\":" \
        "\"9829954754940738069\",\"raft_term\":\"2\"}"

#define RANGE_ABSENT "{" HDR("1") "}"
#define RANGE_EMPTY_VALUE \
        "{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"2\"," \
        "\"mod_revision\":\"3\",\"version\":\"2\"}],\"count\":\"1\"}"
/* value "val" */
#define RANGE_VALUE \
        "{" HDR("7") ",\"kvs\":[{\"key\":\"aw==\",\"create_revision\":\"2\"," \
        "\"mod_revision\":\"6\",\"version\":\"3\",\"value\":\"dmFs\"}],\"count\":\"1\"}"

#define WATCH_CREATED "{\"result\":{" HDR("4") ",\"created\":true}}"
#define WATCH_PUT_DELETE \
        "{\"result\":{" HDR("4") ",\"events\":[{\"kv\":{\"key\":\"aw==\",\"create_revision\":" \
        "\"2\",\"mod_revision\":\"3\",\"version\":\"2\"}},{\"type\":\"DELETE\",\"kv\":" \
        "{\"key\":\"aw==\",\"mod_revision\":\"4\"}}]}}"
#define WATCH_COMPACTED \
        "{\"result\":{" HDR_NOREV ",\"canceled\":true,\"compact_revision\":\"3\"}}"
#define WATCH_PROGRESS "{\"result\":{" HDR("9") "}}"
#define WATCH_ERROR \
        "{\"error\":{\"grpc_code\":14,\"http_code\":503,\"message\":\"etcdserver: no leader\"," \
        "\"http_status\":\"Service Unavailable\"}}"
/* A response of events: list is PUT(...) "," DEL(...) ... */
#define EVENTS(list) "{\"result\":{" HDR("20") ",\"events\":[" list "]}}"
#define PUT(rev, b64) \
        "{\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"" rev "\",\"value\":\"" b64 "\"}}"
#define DEL(rev) "{\"type\":\"DELETE\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"" rev "\"}}"

#define PUT_OK \
        "{\"header\":{\"cluster_id\":\"2755613793311995676\",\"member_id\":" \
        "\"9829954754940738069\",\"revision\":\"2\",\"raft_term\":\"2\"}}"
#define TOO_LARGE \
        "{\"error\":\"etcdserver: request is too large\",\"message\":\"etcdserver: request is " \
        "too large\",\"code\":3}"
#define BAD_BASE64 \
        "{\"error\":\"illegal base64 data at input byte 0\",\"message\":\"illegal base64 data " \
        "at input byte 0\",\"code\":3}"
#define NO_LEADER \
        "{\"error\":\"etcdserver: no leader\",\"message\":\"etcdserver: no leader\",\"code\":14}"

/* Something no parse writes, to see that a failure leaves its output alone. */
static unsigned char sentinel_byte;
static char *sentinel_url;
#define SENTINEL_KV \
        { .present = true, .revision = -7, .value = &sentinel_byte, .size = 77 }

static void assert_kv_untouched(const struct ev__etcd_kv *kv) {
        cr_assert(kv->present);
        cr_assert_eq(kv->revision, -7);
        cr_assert_eq(kv->value, &sentinel_byte);
        cr_assert_eq(kv->size, 77);
}

/* A deterministic generator: the same bytes on every run. */
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rng(void) {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* ------------------------------------------------------------------ base64 */

/* A second encoder, bit by bit, so that the round trip cannot hide an
 * encoder and a decoder wrong in the same way. */
static char *reference_base64(const unsigned char *data, size_t size) {
        static const char alphabet[] =
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        size_t bits = size * 8, n = 0, out_len = (size + 2) / 3 * 4;
        char *out = malloc(out_len + 1);

        cr_assert_not_null(out);
        for (size_t bit = 0; bit < bits; bit += 6) {
                unsigned v = 0;

                for (size_t j = bit; j < bit + 6; j++)
                        v = v << 1 | (j < bits ? (data[j / 8] >> (7 - j % 8)) & 1u : 0u);
                out[n++] = alphabet[v];
        }
        while (n < out_len)
                out[n++] = '=';
        out[n] = '\0';
        return out;
}

static void assert_decodes_to(const char *text, const void *data, size_t size) {
        unsigned char *out = NULL;
        size_t out_size = 12345;

        cr_assert_eq(ev__base64_decode(text, strlen(text), &out, &out_size), 0,
                     "\"%s\" refused", text);
        cr_assert_not_null(out, "an empty value must be a valid pointer too");
        cr_assert_eq(out_size, size, "\"%s\": %zu bytes", text, out_size);
        cr_assert_eq(memcmp(out, data, size), 0, "\"%s\" decoded wrong", text);
        free(out);
}

static void assert_refused_len(const char *text, size_t len) {
        unsigned char *out = &sentinel_byte;
        size_t out_size = 77;

        cr_assert_eq(ev__base64_decode(text, len, &out, &out_size), -EBADMSG,
                     "base64 \"%.*s\" (%zu bytes) accepted", (int)len, text, len);
        cr_assert_eq(out, &sentinel_byte);
        cr_assert_eq(out_size, 77);
}

static void assert_refused(const char *text) {
        assert_refused_len(text, strlen(text));
}

Test(base64, encodes_the_rfc_4648_vectors) {
        static const char *const vectors[][2] = {
                { "", "" },          { "f", "Zg==" },         { "fo", "Zm8=" },
                { "foo", "Zm9v" },   { "foob", "Zm9vYg==" },  { "fooba", "Zm9vYmE=" },
                { "foobar", "Zm9vYmFy" }, { "k", "aw==" },    { "val", "dmFs" },
                { "\xfb\xff\xbf", "+/+/" }, { "\xff\xfe", "//4=" },
        };

        for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
                char *text = ev__base64_encode(vectors[i][0], strlen(vectors[i][0]));

                cr_assert_not_null(text);
                cr_assert_str_eq(text, vectors[i][1]);
                free(text);
                assert_decodes_to(vectors[i][1], vectors[i][0], strlen(vectors[i][0]));
        }
}

Test(base64, round_trips_random_bytes_of_every_length_up_to_300) {
        for (size_t len = 0; len <= 300; len++) {
                for (int round = 0; round < 4; round++) {
                        unsigned char data[300];
                        char *text, *expect;

                        for (size_t i = 0; i < len; i++)
                                data[i] = (unsigned char)rng();
                        /* Every length also with all-zero and all-one bytes,
                         * the ends of the alphabet. */
                        if (round == 1)
                                memset(data, 0, len);
                        else if (round == 2)
                                memset(data, 0xff, len);
                        text = ev__base64_encode(data, len);
                        cr_assert_not_null(text);
                        expect = reference_base64(data, len);
                        cr_assert_str_eq(text, expect, "length %zu", len);
                        assert_decodes_to(text, data, len);
                        free(expect);
                        free(text);
                }
        }
}

Test(base64, refuses_a_length_not_a_multiple_of_four) {
        static const char *const bad[] = { "A", "Zg", "Zg=", "Zm9vY", "Zm9vYg", "Zm9vYg=",
                                           "aw===", "Zm9vYmFy=" };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i]);
}

Test(base64, refuses_characters_outside_the_standard_alphabet) {
        static const char *const bad[] = {
                "Zm9-", "Zm9_",       /* the URL alphabet */
                "Zm.v", "Zm9v!AAA", "Zm9v\x80" "AAA", "\xc3\xa9" "AA", "Zm\"v", "Zm\\v",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i]);
        /* A NUL inside the text, as a JSON "\u0000" can put there. */
        assert_refused_len("Zm9v\0AAA", 8);
        assert_refused_len("aw=\0", 4);
}

Test(base64, refuses_padding_anywhere_but_at_the_end) {
        static const char *const bad[] = {
                "====", "A===", "=AAA", "Zg==Zm9v", "Zm8=Zm9v", "Zm=v", "Z=9v", "Zm9v====",
                "Zm9vZ===", "aw=A",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i]);
}

Test(base64, refuses_bits_left_over_in_the_padding) {
        /* 'h' = 100001 and '9' = 111101: low bits set where the padding
         * says there is nothing; Go's decoder refuses them too. */
        static const char *const bad[] = { "Zh==", "Zm9=", "aw9=", "a/==", "AB==", "AAB=" };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i]);
        assert_decodes_to("Zg==", "f", 1);
        assert_decodes_to("Zm8=", "fo", 2);
        assert_decodes_to("AA==", "\0", 1);
        assert_decodes_to("AAA=", "\0\0", 2);
}

Test(base64, refuses_whitespace) {
        static const char *const bad[] = { "Zm9v    ", " Zm9", "Zm9 ", "Zm\n9", "Zg==\n\n\n\n",
                                           "\tZm9", "Zm9v\r\nAA", "Zm9\n" };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_refused(bad[i]);
}

Test(base64, decodes_the_empty_text_to_a_valid_empty_buffer) {
        unsigned char *out = NULL;
        size_t size = 5;

        cr_assert_eq(ev__base64_decode("", 0, &out, &size), 0);
        cr_assert_not_null(out);
        cr_assert_eq(size, 0);
        free(out);
}

/* --------------------------------------------------------------- endpoints */

static void assert_endpoints(const char *list, size_t n, const char *const *urls) {
        struct ev__etcd_endpoints e = { 0 };

        cr_assert_eq(ev__etcd_endpoints_parse(list, &e), 0, "\"%s\" refused", list);
        cr_assert_eq(e.n, n, "\"%s\": %zu endpoints", list, e.n);
        for (size_t i = 0; i < n; i++)
                cr_assert_str_eq(e.urls[i], urls[i], "\"%s\": endpoint %zu", list, i);
        ev__etcd_endpoints_free(&e);
        cr_assert_eq(e.n, 0);
        cr_assert_null(e.urls);
}

Test(endpoints, parses_valid_lists) {
        /* The URLs as kept: without the trailing slash. */
        static const char *const one[] = { "http://127.0.0.1:2379" };
        static const char *const three[] = { "http://127.0.0.1:1", "http://localhost:2",
                                              "http://[::1]:3" };
        static const char *const name[] = { "http://etcd-0.etcd.default.svc.cluster.local:2379" };
        static const char *const v6[] = { "http://[2001:db8::1]:2379",
                                           "http://[::ffff:10.0.0.1]:65535" };
        static const char *const upper[] = { "http://ETCD.Example.COM:1" };
        static const char *const twice[] = { "http://a:1", "http://a:1" };

        assert_endpoints("http://127.0.0.1:2379", 1, one);
        assert_endpoints("http://127.0.0.1:1,http://localhost:2/,http://[::1]:3", 3, three);
        assert_endpoints("http://etcd-0.etcd.default.svc.cluster.local:2379/", 1, name);
        assert_endpoints("http://[2001:db8::1]:2379/,http://[::ffff:10.0.0.1]:65535", 2, v6);
        assert_endpoints("http://ETCD.Example.COM:1", 1, upper);
        assert_endpoints("http://a:1,http://a:1", 2, twice);
}

Test(endpoints, refuses_invalid_lists_and_leaves_the_output_alone) {
        static const char *const bad[] = {
                /* tests/test-etcd.c's etcd_args list */
                "", ",", "http://", "http://:2379", "http://h", "http://h:", "http://h:0",
                "http://h:65536", "http://h:1,", ",http://h:1", "http://h:1,,http://h:2",
                "https://h:1", "ftp://h:1", "h:1", "http://h:1/x", "http://h h:1",
                "http://[::1:1", "http://h:1 ",
                /* and more */
                "http:///", "http://h:1//", "http://h:123456", "http://h:99999", "HTTP://h:1",
                "http://user@h:1", "http://h:-1", "http://h:1a", "http://h:+1", " http://h:1",
                "http://h:1, http://i:2", "http://h:1?x", "http://h:1#x", "http://::1:2379",
                "http://[::1]", "http://[::1]:", "http://[::1]x:1", "http://[::g]:1",
                "http://h:1:2", "http://h%41:1", "http://[::1]/:1",
        };
        struct ev__etcd_endpoints e = { .urls = &sentinel_url, .n = 77 };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                cr_assert_eq(ev__etcd_endpoints_parse(bad[i], &e), -EINVAL,
                             "endpoints \"%s\" accepted", bad[i]);
                cr_assert_eq(e.urls, &sentinel_url);
                cr_assert_eq(e.n, 77);
        }
}

/* An empty host is refused ("http://:2379" above); empty brackets are no
 * more an address, and would only fail at connect, forever. */
Test(endpoints, refuses_an_empty_ipv6_literal) {
        struct ev__etcd_endpoints e = { .urls = &sentinel_url, .n = 77 };

        cr_assert_eq(ev__etcd_endpoints_parse("http://[]:2379", &e), -EINVAL,
                     "endpoints \"http://[]:2379\" accepted");
        cr_assert_eq(e.urls, &sentinel_url);
        cr_assert_eq(e.n, 77);
}

Test(endpoints, url_joins_the_base_and_the_path) {
        char *url = ev__etcd_url("http://[::1]:2379", "/v3/kv/range");

        cr_assert_not_null(url);
        cr_assert_str_eq(url, "http://[::1]:2379/v3/kv/range");
        free(url);
        url = ev__etcd_url("http://h:1", "");
        cr_assert_not_null(url);
        cr_assert_str_eq(url, "http://h:1");
        free(url);
}

Test(endpoints, backoff_doubles_up_to_its_maximum_with_a_quarter_of_jitter) {
        uint32_t seed = 1;

        for (unsigned rounds = 0; rounds < 40; rounds++) {
                uint64_t base = EV__ETCD_BACKOFF_FIRST_USEC;

                for (unsigned i = 1; i < rounds && base < EV__ETCD_BACKOFF_MAX_USEC; i++)
                        base *= 2;
                if (base > EV__ETCD_BACKOFF_MAX_USEC)
                        base = EV__ETCD_BACKOFF_MAX_USEC;
                for (int i = 0; i < 50; i++) {
                        uint64_t wait = ev__etcd_backoff_usec(rounds, &seed);

                        cr_assert_geq(wait, base * 3 / 4, "round %u: %llu", rounds,
                                      (unsigned long long)wait);
                        cr_assert_leq(wait, base * 5 / 4, "round %u: %llu", rounds,
                                      (unsigned long long)wait);
                }
        }
}

/* ------------------------------------------------------------------- range */

static struct ev__etcd_range range_ok(const char *json) {
        struct ev__etcd_range range = { .revision = -7, .kv = SENTINEL_KV };
        int r = ev__etcd_parse_range(json, strlen(json), K, KLEN, &range);

        cr_assert_eq(r, 0, "range %s: %d (%s)", json, r, strerror(-r));
        return range;
}

static void range_fails_len(const char *json, size_t len) {
        struct ev__etcd_range range = { .revision = -7, .kv = SENTINEL_KV };
        int r = ev__etcd_parse_range(json, len, K, KLEN, &range);

        cr_assert_eq(r, -EBADMSG, "range %.*s: %d (%s), not -EBADMSG", (int)len,
                     json ? json : "", r, strerror(-r));
        cr_assert_eq(range.revision, -7);
        assert_kv_untouched(&range.kv);
}

static void range_fails(const char *json) {
        range_fails_len(json, strlen(json));
}

Test(range, of_an_absent_key_is_the_read_revision) {
        struct ev__etcd_range range = range_ok(RANGE_ABSENT);

        cr_assert_eq(range.revision, 1);
        cr_assert_not(range.kv.present);
        cr_assert_eq(range.kv.revision, 1);
        cr_assert_null(range.kv.value);
        cr_assert_eq(range.kv.size, 0);
        /* "kvs": [] says the same, should a gateway not omit it. */
        range = range_ok("{" HDR("5") ",\"kvs\":[],\"count\":\"0\"}");
        cr_assert_not(range.kv.present);
        cr_assert_eq(range.kv.revision, 5);
}

Test(range, of_a_key_with_an_empty_value) {
        struct ev__etcd_range range = range_ok(RANGE_EMPTY_VALUE);

        cr_assert_eq(range.revision, 3);
        cr_assert(range.kv.present);
        cr_assert_eq(range.kv.revision, 3);
        cr_assert_null(range.kv.value);
        cr_assert_eq(range.kv.size, 0);
        ev__etcd_kv_clear(&range.kv);
}

Test(range, of_a_key_with_a_value) {
        struct ev__etcd_range range = range_ok(RANGE_VALUE);

        cr_assert_eq(range.revision, 7);
        cr_assert(range.kv.present);
        cr_assert_eq(range.kv.revision, 6);
        cr_assert_eq(range.kv.size, 3);
        cr_assert_eq(memcmp(range.kv.value, "val", 3), 0);
        ev__etcd_kv_clear(&range.kv);
        cr_assert_not(range.kv.present);
        cr_assert_null(range.kv.value);
        cr_assert_eq(range.kv.size, 0);
        /* The largest revision accepted: 18 digits, below 10^18. */
        range = range_ok("{" HDR("999999999999999999") ",\"kvs\":[{\"key\":\"aw==\","
                         "\"mod_revision\":\"999999999999999999\",\"value\":\"AA==\"}]}");
        cr_assert_eq(range.revision, INT64_C(999999999999999999));
        cr_assert_eq(range.kv.revision, INT64_C(999999999999999999));
        cr_assert_eq(range.kv.size, 1);
        ev__etcd_kv_clear(&range.kv);
}

Test(range, of_another_key_is_refused) {
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"bA==\",\"mod_revision\":\"3\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"a2s=\",\"mod_revision\":\"3\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw8=\",\"mod_revision\":\"3\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"\",\"mod_revision\":\"3\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"mod_revision\":\"3\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw\",\"mod_revision\":\"3\"}]}");
}

Test(range, with_two_entries_is_refused) {
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"3\"},"
                    "{\"key\":\"aw==\",\"mod_revision\":\"3\"}],\"count\":\"2\"}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"3\"},{}]}");
}

Test(range, with_a_modification_after_the_read_is_refused) {
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"4\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"4\","
                    "\"value\":\"dmFs\"}]}");
}

Test(range, with_a_bad_revision_is_refused) {
        static const char *const bad[] = {
                "-1", "0", "", " 1", "1 ", "+1", "1.0", "1e3", "0x10", "one",
                "1000000000000000000", "9223372036854775807", "99999999999999999999999",
                "\\u0031x",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                char json[512];

                snprintf(json, sizeof(json), "{\"header\":{\"revision\":\"%s\"}}", bad[i]);
                range_fails(json);
                snprintf(json, sizeof(json),
                         "{" HDR("5") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"%s\"}]}",
                         bad[i]);
                range_fails(json);
        }
        /* Numbers where etcd sends strings. */
        range_fails("{\"header\":{\"revision\":1}}");
        range_fails("{" HDR("5") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":3}]}");
        /* No revision at all. */
        range_fails("{}");
        range_fails("{" HDR_NOREV "}");
        range_fails("{\"header\":null}");
        range_fails("{\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"3\"}]}");
}

Test(range, with_a_member_of_the_wrong_type_is_refused) {
        range_fails("{\"header\":[]}");
        range_fails("{\"header\":\"1\"}");
        range_fails("{" HDR("3") ",\"kvs\":{}}");
        range_fails("{" HDR("3") ",\"kvs\":\"aw==\"}");
        range_fails("{" HDR("3") ",\"kvs\":[1]}");
        range_fails("{" HDR("3") ",\"kvs\":[null]}");
        range_fails("{" HDR("3") ",\"kvs\":[[]]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":1,\"mod_revision\":\"3\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"3\","
                    "\"value\":5}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"3\","
                    "\"value\":\"dmF\"}]}");
        range_fails("{" HDR("3") ",\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"3\","
                    "\"value\":\"dm=s\"}]}");
}

Test(range, that_is_not_exactly_one_json_object_is_refused) {
        static const char *const bad[] = {
                "", " ", "null", "1", "\"x\"", "[]", "[" RANGE_ABSENT "]", "{",
                RANGE_ABSENT "x", RANGE_ABSENT "\nx", RANGE_ABSENT "{}",
                RANGE_ABSENT RANGE_ABSENT, RANGE_ABSENT ",", "{'header':{'revision':'1'}}",
                "{\"header\":{\"revision\":\"1\"},}", "{\"header\":{\"revision\":\"1\"}/*c*/}",
                "{header:{\"revision\":\"1\"}}",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                range_fails(bad[i]);
        /* What an empty answer leaves in the follower's buffer. */
        range_fails_len(NULL, 0);
        /* A NUL after the object, inside the length. */
        range_fails_len(RANGE_ABSENT "\0", sizeof(RANGE_ABSENT));
        /* Every prefix of valid answers. */
        for (size_t len = 0; len < strlen(RANGE_VALUE); len++)
                range_fails_len(RANGE_VALUE, len);
        for (size_t len = 0; len < strlen(RANGE_ABSENT); len++)
                range_fails_len(RANGE_ABSENT, len);
}

/* n levels of `open`, then `middle`, then n levels of `close`. */
static char *nested(size_t n, const char *open, const char *middle, const char *close) {
        size_t lo = strlen(open), lm = strlen(middle), lc = strlen(close);
        char *s = malloc(n * (lo + lc) + lm + 1), *p = s;

        cr_assert_not_null(s);
        for (size_t i = 0; i < n; i++, p += lo)
                memcpy(p, open, lo);
        memcpy(p, middle, lm);
        p += lm;
        for (size_t i = 0; i < n; i++, p += lc)
                memcpy(p, close, lc);
        *p = '\0';
        return s;
}

/* prefix, middle and suffix, one malloc'd string. */
static char *concat(const char *prefix, const char *middle, const char *suffix) {
        char *s;

        cr_assert_geq(asprintf(&s, "%s%s%s", prefix, middle, suffix), 0);
        return s;
}

/* JSON allows whitespace around its value: a line that ends in "\r\n" is
 * still one message. */
Test(range, whitespace_around_the_object_is_allowed) {
        static const char *const good[] = {
                RANGE_ABSENT "\n", RANGE_ABSENT "\r", " \t" RANGE_ABSENT "\r\n",
                "{ \"header\" : { \"revision\" : \"1\" } }",
        };

        for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
                struct ev__etcd_range range = range_ok(good[i]);

                cr_assert_eq(range.revision, 1);
        }
}

Test(range, depth_bombs_are_refused) {
        static const size_t depths[] = { 9, 64, 100000 };

        for (size_t i = 0; i < sizeof(depths) / sizeof(depths[0]); i++) {
                char *s = nested(depths[i], "[", "", "]"), *json;

                range_fails(s);
                free(s);
                s = nested(depths[i], "{\"a\":", "1", "}");
                range_fails(s);
                free(s);
                /* Deep inside a member the parser would otherwise ignore. */
                s = nested(depths[i], "[", "", "]");
                json = concat("{" HDR("1") ",\"x\":", s, "}");
                range_fails(json);
                free(json);
                free(s);
        }
        /* Open brackets without end: as the start of a long stream line. */
        {
                char *s = malloc(1000001);

                cr_assert_not_null(s);
                memset(s, '[', 1000000);
                s[1000000] = '\0';
                range_fails(s);
                memset(s, '{', 1000000);
                range_fails(s);
                free(s);
        }
}

/* ------------------------------------------------------------------- watch */

static struct ev__etcd_watch_message watch_ok(const char *json) {
        struct ev__etcd_watch_message m = { .kind = 77, .revision = -7, .kv = SENTINEL_KV };
        int r = ev__etcd_parse_watch(json, strlen(json), K, KLEN, &m);

        cr_assert_eq(r, 0, "watch %s: %d (%s)", json, r, strerror(-r));
        if (m.kind != EV__ETCD_WATCH_EVENTS) {
                /* Only EVENTS carries a state. */
                cr_assert_not(m.kv.present);
                cr_assert_eq(m.kv.revision, 0);
                cr_assert_null(m.kv.value);
                cr_assert_eq(m.kv.size, 0);
        } else {
                cr_assert_gt(m.kv.revision, 0);
                if (!m.kv.present) {
                        cr_assert_null(m.kv.value);
                        cr_assert_eq(m.kv.size, 0);
                }
        }
        return m;
}

static void watch_fails(const char *json) {
        struct ev__etcd_watch_message m = { .kind = 77, .revision = -7, .kv = SENTINEL_KV };
        int r = ev__etcd_parse_watch(json, strlen(json), K, KLEN, &m);

        cr_assert_eq(r, -EBADMSG, "watch %s: %d (%s), not -EBADMSG", json, r, strerror(-r));
        cr_assert_eq((int)m.kind, 77);
        cr_assert_eq(m.revision, -7);
        assert_kv_untouched(&m.kv);
}

Test(watch, created) {
        struct ev__etcd_watch_message m = watch_ok(WATCH_CREATED);

        cr_assert_eq(m.kind, EV__ETCD_WATCH_CREATED);
        cr_assert_eq(m.revision, 4);
}

Test(watch, events_give_the_last_events_state) {
        struct ev__etcd_watch_message m = watch_ok(WATCH_PUT_DELETE);

        /* A DELETE: absent, at the delete's revision. */
        cr_assert_eq(m.kind, EV__ETCD_WATCH_EVENTS);
        cr_assert_eq(m.revision, 4);
        cr_assert_not(m.kv.present);
        cr_assert_eq(m.kv.revision, 4);

        m = watch_ok(EVENTS(PUT("5", "djE=") "," PUT("6", "djI=")));
        cr_assert_eq(m.revision, 20);
        cr_assert(m.kv.present);
        cr_assert_eq(m.kv.revision, 6);
        cr_assert_eq(m.kv.size, 2);
        cr_assert_eq(memcmp(m.kv.value, "v2", 2), 0);
        ev__etcd_kv_clear(&m.kv);

        m = watch_ok(EVENTS(DEL("5") "," PUT("6", "dmFs")));
        cr_assert(m.kv.present);
        cr_assert_eq(m.kv.revision, 6);
        cr_assert_eq(m.kv.size, 3);
        cr_assert_eq(memcmp(m.kv.value, "val", 3), 0);
        ev__etcd_kv_clear(&m.kv);

        /* The values of the earlier events are freed (valgrind checks). */
        m = watch_ok(EVENTS(PUT("5", "djE=") "," PUT("6", "djI=") "," DEL("7")));
        cr_assert_not(m.kv.present);
        cr_assert_eq(m.kv.revision, 7);
}

Test(watch, a_put_event_with_an_explicit_type_or_an_empty_value) {
        struct ev__etcd_watch_message m =
                watch_ok(EVENTS("{\"type\":\"PUT\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":"
                                "\"8\",\"value\":\"dmFs\"}}"));

        cr_assert(m.kv.present);
        cr_assert_eq(m.kv.revision, 8);
        cr_assert_eq(m.kv.size, 3);
        ev__etcd_kv_clear(&m.kv);
        /* etcd omits an empty value: present, nothing in it. */
        m = watch_ok(EVENTS("{\"kv\":{\"key\":\"aw==\",\"create_revision\":\"2\","
                            "\"mod_revision\":\"3\",\"version\":\"2\"}}"));
        cr_assert(m.kv.present);
        cr_assert_eq(m.kv.revision, 3);
        cr_assert_null(m.kv.value);
        cr_assert_eq(m.kv.size, 0);
}

Test(watch, a_delete_event_is_absent_at_its_revision_whatever_it_carries) {
        struct ev__etcd_watch_message m = watch_ok(
                EVENTS("{\"type\":\"DELETE\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"12\","
                       "\"value\":\"dmFs\"}}"));

        cr_assert_not(m.kv.present);
        cr_assert_eq(m.kv.revision, 12);
        cr_assert_null(m.kv.value);
        cr_assert_eq(m.kv.size, 0);
}

Test(watch, events_going_back_in_revision_are_refused) {
        watch_fails(EVENTS(PUT("6", "djE=") "," PUT("5", "djI=")));
        watch_fails(EVENTS(PUT("6", "djE=") "," DEL("5")));
        watch_fails(EVENTS(DEL("9") "," PUT("6", "djE=") "," PUT("10", "djI=")));
}

Test(watch, a_broken_event_is_refused_wherever_it_is) {
        static const char *const bad_events[] = {
                "{\"type\":\"PATCH\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "{\"type\":\"delete\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "{\"type\":\"\",\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "{\"type\":\"DELETE\"}",
                "{}",
                "{\"kv\":null}",
                "{\"kv\":[]}",
                "{\"kv\":\"aw==\"}",
                "{\"kv\":{\"key\":\"bA==\",\"mod_revision\":\"5\"}}",
                "{\"type\":\"DELETE\",\"kv\":{\"key\":\"bA==\",\"mod_revision\":\"5\"}}",
                "{\"kv\":{\"key\":\"aw==\"}}",
                "{\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"0\"}}",
                "{\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"-5\"}}",
                "{\"kv\":{\"key\":\"aw==\",\"mod_revision\":5}}",
                "{\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\",\"value\":\"dmFs=\"}}",
                "{\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\",\"value\":[]}}",
        };

        for (size_t i = 0; i < sizeof(bad_events) / sizeof(bad_events[0]); i++) {
                char json[1024];

                /* alone, after a valid event with a value (freed on the
                 * way out), and before one */
                snprintf(json, sizeof(json), EVENTS("%s"), bad_events[i]);
                watch_fails(json);
                snprintf(json, sizeof(json), EVENTS(PUT("4", "dmFs") ",%s"), bad_events[i]);
                watch_fails(json);
                snprintf(json, sizeof(json), EVENTS("%s," PUT("40", "dmFs")), bad_events[i]);
                watch_fails(json);
        }
}

/* events_from() once looked at an event's "type" after member() had
 * refused it (or refused the event), reading a pointer never written: a
 * crash or a wrong result depending on what the stack held. */
Test(watch, an_event_not_an_object_or_with_a_type_not_a_string_is_refused) {
        static const char *const bad_events[] = {
                "{\"type\":1,\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "{\"type\":true,\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "{\"type\":{},\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "{\"type\":[\"DELETE\"],\"kv\":{\"key\":\"aw==\",\"mod_revision\":\"5\"}}",
                "1", "null", "\"DELETE\"", "[]", "true",
        };

        for (size_t i = 0; i < sizeof(bad_events) / sizeof(bad_events[0]); i++) {
                char json[1024];

                snprintf(json, sizeof(json), EVENTS("%s"), bad_events[i]);
                watch_fails(json);
                snprintf(json, sizeof(json), EVENTS(PUT("4", "dmFs") ",%s"), bad_events[i]);
                watch_fails(json);
                snprintf(json, sizeof(json), EVENTS(DEL("4") ",%s"), bad_events[i]);
                watch_fails(json);
                snprintf(json, sizeof(json), EVENTS("%s," PUT("40", "dmFs")), bad_events[i]);
                watch_fails(json);
        }
}

Test(watch, a_compaction_cancels_with_its_own_kind) {
        struct ev__etcd_watch_message m = watch_ok(WATCH_COMPACTED);

        cr_assert_eq(m.kind, EV__ETCD_WATCH_COMPACTED);
        cr_assert_eq(m.revision, 0);
        m = watch_ok("{\"result\":{" HDR("4") ",\"canceled\":true,\"cancel_reason\":\"x\"}}");
        cr_assert_eq(m.kind, EV__ETCD_WATCH_CANCELED);
        cr_assert_eq(m.revision, 4);
        /* A cancel wins over events it would carry. */
        m = watch_ok("{\"result\":{" HDR("4") ",\"canceled\":true,\"events\":[" PUT("3", "") "]}}");
        cr_assert_eq(m.kind, EV__ETCD_WATCH_CANCELED);
        m = watch_ok("{\"result\":{" HDR("4") ",\"canceled\":false,\"compact_revision\":\"3\"}}");
        cr_assert_eq(m.kind, EV__ETCD_WATCH_PROGRESS);
}

Test(watch, a_header_alone_is_progress) {
        struct ev__etcd_watch_message m = watch_ok(WATCH_PROGRESS);

        cr_assert_eq(m.kind, EV__ETCD_WATCH_PROGRESS);
        cr_assert_eq(m.revision, 9);
        m = watch_ok("{\"result\":{" HDR("9") ",\"events\":[]}}");
        cr_assert_eq(m.kind, EV__ETCD_WATCH_PROGRESS);
        m = watch_ok("{\"result\":{}}");
        cr_assert_eq(m.kind, EV__ETCD_WATCH_PROGRESS);
        cr_assert_eq(m.revision, 0);
}

Test(watch, a_stream_error_cancels) {
        struct ev__etcd_watch_message m = watch_ok(WATCH_ERROR);

        cr_assert_eq(m.kind, EV__ETCD_WATCH_CANCELED);
        m = watch_ok("{\"error\":{}}");
        cr_assert_eq(m.kind, EV__ETCD_WATCH_CANCELED);
        watch_fails("{\"error\":\"etcdserver: no leader\"}");
        watch_fails("{\"error\":14}");
}

Test(watch, without_a_result_or_with_broken_members_is_refused) {
        static const char *const bad[] = {
                "{}", "{\"result\":null}", "{\"result\":[]}", "{\"result\":1}",
                "{\"results\":{" HDR("4") "}}",
                "{\"result\":{" HDR("4") ",\"created\":\"true\"}}",
                "{\"result\":{" HDR("4") ",\"created\":1}}",
                "{\"result\":{" HDR("4") ",\"canceled\":\"true\"}}",
                "{\"result\":{" HDR_NOREV ",\"canceled\":true,\"compact_revision\":3}}",
                "{\"result\":{" HDR_NOREV ",\"canceled\":true,\"compact_revision\":\"-3\"}}",
                "{\"result\":{" HDR("4") ",\"events\":{}}}",
                "{\"result\":{" HDR("4") ",\"events\":\"\"}}",
                "{\"result\":{\"header\":{\"revision\":4}}}",
                "{\"result\":{\"header\":{\"revision\":\"4x\"}}}",
                "{\"result\":{\"header\":[]}}",
                WATCH_CREATED "\n{", " " WATCH_CREATED "x", "[" WATCH_CREATED "]",
                WATCH_CREATED WATCH_PROGRESS, "", "\n",
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                watch_fails(bad[i]);
        for (size_t len = 0; len < strlen(WATCH_PUT_DELETE); len++) {
                struct ev__etcd_watch_message m = { .kind = 77 };

                cr_assert_eq(ev__etcd_parse_watch(WATCH_PUT_DELETE, len, K, KLEN, &m), -EBADMSG,
                             "a prefix of %zu bytes accepted", len);
                cr_assert_eq((int)m.kind, 77);
        }
}

Test(watch, depth_bombs_are_refused) {
        char *s = nested(100000, "{\"result\":", "{}", "}"), *json;

        watch_fails(s);
        free(s);
        /* Deep inside the events, where the parser looks. */
        s = nested(100000, "[", "", "]");
        json = concat("{\"result\":{" HDR("20") ",\"events\":[", s, "]}}");
        watch_fails(json);
        free(json);
        free(s);
}

/* ------------------------------------------------------------------- write */

static void assert_write(long status, const char *body, int expect) {
        int r = ev__etcd_parse_write(status, body, strlen(body));

        cr_assert_eq(r, expect, "%ld %s: %d (%s), not %d (%s)", status, body, r, strerror(-r),
                     expect, strerror(-expect));
}

Test(write, a_committed_put_or_delete) {
        assert_write(200, PUT_OK, 0);
        assert_write(200, "{" HDR("2") ",\"deleted\":\"1\"}", 0);
        assert_write(200, "{" HDR("2") ",\"prev_kv\":{}}", 0);
}

Test(write, a_200_without_a_revision_is_malformed) {
        assert_write(200, "{}", -EBADMSG);
        assert_write(200, "{" HDR_NOREV "}", -EBADMSG);
        assert_write(200, "{\"header\":{\"revision\":\"0\"}}", -EBADMSG);
        assert_write(200, "{\"header\":{\"revision\":2}}", -EBADMSG);
        assert_write(200, "{\"header\":{\"revision\":\"-2\"}}", -EBADMSG);
        assert_write(200, NO_LEADER, -EBADMSG);
        assert_write(200, "", -EBADMSG);
        assert_write(200, PUT_OK "x", -EBADMSG);
        assert_write(200, "[]", -EBADMSG);
}

Test(write, a_transaction_says_whether_its_compare_held) {
        assert_write(200, "{" HDR("7") ",\"succeeded\":true}", 1);
        assert_write(200, "{" HDR("8") ",\"responses\":[{\"response_put\":{" HDR("8") "}}]}", 0);
        assert_write(200, "{" HDR("8") ",\"succeeded\":false}", 0);
        assert_write(200, "{" HDR("7") ",\"succeeded\":\"true\"}", -EBADMSG);
        assert_write(200, "{" HDR("7") ",\"succeeded\":1}", -EBADMSG);
        assert_write(200, "{\"succeeded\":true}", -EBADMSG);
}

Test(write, too_large) {
        assert_write(400, TOO_LARGE, -EMSGSIZE);
        assert_write(413, "{\"message\":\"etcdserver: request is too large\"}", -EMSGSIZE);
        /* Above gRPC's own limit, which the gateway meets first. */
        assert_write(429, "{\"error\":\"grpc: received message larger than max (2800038 vs. "
                          "2097152)\",\"message\":\"grpc: received message larger than max "
                          "(2800038 vs. 2097152)\",\"code\":8}", -EMSGSIZE);
}

Test(write, errors_another_member_may_not_have_are_worth_a_retry) {
        assert_write(503, NO_LEADER, -EAGAIN);
        assert_write(500, NO_LEADER, -EAGAIN);
        assert_write(400, "{\"code\":14}", -EAGAIN);
        assert_write(504, "{\"error\":\"context deadline exceeded\",\"code\":4}", -EAGAIN);
        assert_write(409, "{\"message\":\"aborted\",\"code\":10}", -EAGAIN);
        assert_write(500, "{\"error\":\"etcdserver: request timed out\",\"message\":"
                          "\"etcdserver: request timed out\",\"code\":2}", -EAGAIN);
        assert_write(500, "{\"message\":\"etcdserver: leader changed\",\"code\":2}", -EAGAIN);
}

Test(write, other_errors_are_final) {
        assert_write(400, BAD_BASE64, -EIO);
        assert_write(403, "{\"message\":\"etcdserver: permission denied\",\"code\":7}", -EIO);
        assert_write(400, "{}", -EIO);
        assert_write(500, "{\"code\":2}", -EIO);
}

Test(write, an_error_with_members_of_the_wrong_type_is_malformed) {
        assert_write(503, "{\"message\":\"no leader\",\"code\":\"14\"}", -EBADMSG);
        assert_write(503, "{\"message\":14,\"code\":14}", -EBADMSG);
        assert_write(503, "{\"message\":\"no leader\",\"code\":14.0}", -EBADMSG);
}

Test(write, a_page_that_is_not_json) {
        /* From a proxy or a member on its way down: another member may do. */
        assert_write(502, "<html><body>Bad Gateway</body></html>", -EAGAIN);
        assert_write(503, "", -EAGAIN);
        assert_write(500, "Internal Server Error", -EAGAIN);
        /* Anything else is not the gateway speaking. */
        assert_write(400, "<html>Bad Request</html>", -EBADMSG);
        assert_write(404, "404 page not found", -EBADMSG);
        assert_write(200, "OK", -EBADMSG);
        assert_write(0, "", -EBADMSG);
        cr_assert_eq(ev__etcd_parse_write(200, NULL, 0), -EBADMSG);
        cr_assert_eq(ev__etcd_parse_write(502, NULL, 0), -EAGAIN);
}

/* ------------------------------------------------------------------ buffer */

/* What take_lines handed over, one copy per line. */
struct lines {
        char *line[64];
        size_t n;
        size_t stop_at;         /* return stop_value for this line (1-based), 0 never */
        int stop_value;
};

static int collect(const char *line, size_t len, void *userdata) {
        struct lines *l = userdata;

        cr_assert_lt(l->n, 64);
        cr_assert_neq(len, 0, "an empty line handed over");
        cr_assert_null(memchr(line, '\n', len), "a line with its newline");
        l->line[l->n] = strndup(line, len);
        cr_assert_not_null(l->line[l->n]);
        l->n++;
        return l->n == l->stop_at ? l->stop_value : 0;
}

static void lines_free(struct lines *l) {
        for (size_t i = 0; i < l->n; i++)
                free(l->line[i]);
        l->n = 0;
}

static void append_or_fail(struct ev__etcd_buffer *b, const char *data, size_t size) {
        int r = ev__etcd_buffer_append(b, data, size);

        cr_assert_eq(r, 0, "append of %zu bytes: %d (%s)", size, r, strerror(-r));
        cr_assert_eq(b->data[b->size], '\0', "not NUL-terminated");
}

Test(buffer, cuts_lines_split_at_every_position) {
        static const char stream[] = WATCH_CREATED "\n" WATCH_PUT_DELETE "\n" WATCH_PROGRESS "\n";
        static const char *const expect[] = { WATCH_CREATED, WATCH_PUT_DELETE, WATCH_PROGRESS };
        size_t len = strlen(stream);

        for (size_t cut = 0; cut <= len; cut++) {
                struct ev__etcd_buffer b = { 0 };
                struct lines l = { .n = 0 };

                append_or_fail(&b, stream, cut);
                cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 0);
                append_or_fail(&b, stream + cut, len - cut);
                cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 0);
                cr_assert_eq(l.n, 3, "cut at %zu: %zu lines", cut, l.n);
                for (size_t i = 0; i < 3; i++)
                        cr_assert_str_eq(l.line[i], expect[i], "cut at %zu", cut);
                cr_assert_eq(b.size, 0);
                lines_free(&l);
                ev__etcd_buffer_free(&b);
                cr_assert_null(b.data);
                cr_assert_eq(b.size, 0);
                cr_assert_eq(b.allocated, 0);
        }
}

Test(buffer, byte_by_byte_keeps_the_partial_line) {
        static const char stream[] = "{\"a\":1}\n{\"b\":2}\n{\"c\":3";
        struct ev__etcd_buffer b = { 0 };
        struct lines l = { .n = 0 };

        for (size_t i = 0; i < strlen(stream); i++) {
                append_or_fail(&b, stream + i, 1);
                cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 0);
                cr_assert_null(memchr(b.data, '\n', b.size));
        }
        cr_assert_eq(l.n, 2);
        cr_assert_str_eq(l.line[0], "{\"a\":1}");
        cr_assert_str_eq(l.line[1], "{\"b\":2}");
        cr_assert_eq(b.size, strlen("{\"c\":3"));
        cr_assert_str_eq(b.data, "{\"c\":3");
        lines_free(&l);
        ev__etcd_buffer_free(&b);
}

Test(buffer, skips_empty_lines) {
        struct ev__etcd_buffer b = { 0 };
        struct lines l = { .n = 0 };

        append_or_fail(&b, "\n\n{}\n\n\n[]\n\n", 11);
        cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 0);
        cr_assert_eq(l.n, 2);
        cr_assert_str_eq(l.line[0], "{}");
        cr_assert_str_eq(l.line[1], "[]");
        cr_assert_eq(b.size, 0);
        append_or_fail(&b, "\n", 1);
        cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 0);
        cr_assert_eq(l.n, 2);
        lines_free(&l);
        ev__etcd_buffer_free(&b);
}

Test(buffer, stops_at_the_callbacks_first_nonzero_result) {
        struct ev__etcd_buffer b = { 0 };
        struct lines l = { .stop_at = 2, .stop_value = -EBADMSG };

        append_or_fail(&b, "a\nb\nc\nd", 7);
        cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), -EBADMSG);
        cr_assert_eq(l.n, 2);
        cr_assert_str_eq(l.line[1], "b");
        /* The line that stopped is consumed; the rest waits. */
        cr_assert_eq(b.size, 3);
        cr_assert_str_eq(b.data, "c\nd");
        l.stop_at = 3;
        l.stop_value = 1;
        cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 1);
        cr_assert_eq(l.n, 3);
        cr_assert_str_eq(l.line[2], "c");
        cr_assert_str_eq(b.data, "d");
        lines_free(&l);
        ev__etcd_buffer_free(&b);
}

Test(buffer, refuses_to_grow_beyond_the_longest_line) {
        struct ev__etcd_buffer b = { 0 };
        struct lines l = { .n = 0 };
        char *big = malloc(EV__ETCD_LINE_MAX + 1);

        cr_assert_not_null(big);
        memset(big, 'x', EV__ETCD_LINE_MAX + 1);
        /* Too much at once, on an empty buffer. */
        cr_assert_eq(ev__etcd_buffer_append(&b, big, EV__ETCD_LINE_MAX + 1), -EMSGSIZE);
        cr_assert_eq(b.size, 0);
        /* Exactly the limit, then one byte more. */
        append_or_fail(&b, big, EV__ETCD_LINE_MAX - 1);
        append_or_fail(&b, "\n", 1);
        cr_assert_eq(b.size, EV__ETCD_LINE_MAX);
        cr_assert_eq(ev__etcd_buffer_append(&b, "y", 1), -EMSGSIZE);
        cr_assert_eq(b.size, EV__ETCD_LINE_MAX);
        cr_assert_eq(b.data[b.size - 1], '\n');
        /* The line of the limit's length goes through, and the buffer
         * takes more after it. */
        cr_assert_eq(ev__etcd_buffer_take_lines(&b, collect, &l), 0);
        cr_assert_eq(l.n, 1);
        cr_assert_eq(strlen(l.line[0]), EV__ETCD_LINE_MAX - 1);
        cr_assert_eq(b.size, 0);
        append_or_fail(&b, "y", 1);
        /* A partial line that reaches the limit. */
        cr_assert_eq(ev__etcd_buffer_append(&b, big, EV__ETCD_LINE_MAX), -EMSGSIZE);
        append_or_fail(&b, big, EV__ETCD_LINE_MAX - 1);
        cr_assert_eq(ev__etcd_buffer_append(&b, "\n", 1), -EMSGSIZE);
        lines_free(&l);
        free(big);
        ev__etcd_buffer_free(&b);
}

/* ------------------------------------------------------------------ bodies */

/* body parsed by json-c, checked to hold exactly n_members members. */
static struct json_object *body_parse(char *body, int n_members) {
        struct json_object *o;

        cr_assert_not_null(body);
        o = json_tokener_parse(body);
        cr_assert_not_null(o, "not JSON: %s", body);
        cr_assert(json_object_is_type(o, json_type_object), "not an object: %s", body);
        cr_assert_eq(json_object_object_length(o), n_members, "%s", body);
        free(body);
        return o;
}

/* The member name of o, a string decoding to size bytes of data. */
static void assert_b64_member(struct json_object *o, const char *name, const void *data,
                              size_t size) {
        struct json_object *m;
        unsigned char *decoded;
        size_t decoded_size;

        cr_assert(json_object_object_get_ex(o, name, &m), "no \"%s\"", name);
        cr_assert(json_object_is_type(m, json_type_string), "\"%s\" not a string", name);
        cr_assert_eq(ev__base64_decode(json_object_get_string(m),
                                       (size_t)json_object_get_string_len(m), &decoded,
                                       &decoded_size), 0);
        cr_assert_eq(decoded_size, size);
        cr_assert_eq(memcmp(decoded, data, size), 0);
        free(decoded);
}

/* A key with the bytes that JSON must escape, were it not base64. */
static const char odd_key[] = "a\"b\\c\nd/\x01\xff";
#define ODD_KEY_LEN (sizeof(odd_key) - 1)

Test(bodies, range_and_delete_carry_the_key) {
        struct json_object *o = body_parse(ev__etcd_range_body(K, KLEN), 1);

        assert_b64_member(o, "key", K, KLEN);
        json_object_put(o);
        o = body_parse(ev__etcd_delete_body(odd_key, ODD_KEY_LEN), 1);
        assert_b64_member(o, "key", odd_key, ODD_KEY_LEN);
        json_object_put(o);
}

Test(bodies, put_carries_the_key_and_the_value) {
        unsigned char value[1000];
        struct json_object *o = body_parse(ev__etcd_put_body(K, KLEN, "val", 3), 2);

        assert_b64_member(o, "key", K, KLEN);
        assert_b64_member(o, "value", "val", 3);
        json_object_put(o);
        /* An empty value is sent, as "", so that the key exists. */
        o = body_parse(ev__etcd_put_body(K, KLEN, NULL, 0), 2);
        assert_b64_member(o, "value", "", 0);
        json_object_put(o);
        for (size_t i = 0; i < sizeof(value); i++)
                value[i] = (unsigned char)rng();
        value[3] = '\0';
        value[4] = '"';
        o = body_parse(ev__etcd_put_body(odd_key, ODD_KEY_LEN, value, sizeof(value)), 2);
        assert_b64_member(o, "key", odd_key, ODD_KEY_LEN);
        assert_b64_member(o, "value", value, sizeof(value));
        json_object_put(o);
}

/* o's member name: an array of one object, returned. */
static struct json_object *only_item(struct json_object *o, const char *name) {
        struct json_object *m;

        cr_assert(json_object_object_get_ex(o, name, &m), "no \"%s\"", name);
        cr_assert(json_object_is_type(m, json_type_array), "\"%s\" not an array", name);
        cr_assert_eq(json_object_array_length(m), 1);
        m = json_object_array_get_idx(m, 0);
        cr_assert(json_object_is_type(m, json_type_object));
        return m;
}

/* The put unless unchanged: compare the value for equality, and put only
 * on failure, so that an absent key, whose value compare fails, is put. */
Test(bodies, put_if_changed_compares_the_value_and_puts_on_failure) {
        static const struct {
                const void *data;
                size_t size;
        } values[] = { { "val", 3 }, { NULL, 0 }, { "a\0\"b", 4 } };

        for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
                struct json_object *o = body_parse(
                        ev__etcd_put_if_changed_body(odd_key, ODD_KEY_LEN, values[i].data,
                                                     values[i].size),
                        2);
                struct json_object *compare = only_item(o, "compare"), *put, *m;

                cr_assert_eq(json_object_object_length(compare), 4);
                assert_b64_member(compare, "key", odd_key, ODD_KEY_LEN);
                assert_b64_member(compare, "value", values[i].data ? values[i].data : "",
                                  values[i].size);
                cr_assert(json_object_object_get_ex(compare, "target", &m));
                cr_assert_str_eq(json_object_get_string(m), "VALUE");
                cr_assert(json_object_object_get_ex(compare, "result", &m));
                cr_assert_str_eq(json_object_get_string(m), "EQUAL");
                cr_assert(json_object_object_get_ex(only_item(o, "failure"), "request_put", &put));
                cr_assert_eq(json_object_object_length(put), 2);
                assert_b64_member(put, "key", odd_key, ODD_KEY_LEN);
                assert_b64_member(put, "value", values[i].data ? values[i].data : "",
                                  values[i].size);
                json_object_put(o);
        }
}

Test(bodies, watch_starts_at_its_revision_with_progress_notifications) {
        static const int64_t revisions[] = { 0, 1, 42, INT64_C(999999999999999999) };

        for (size_t i = 0; i < sizeof(revisions) / sizeof(revisions[0]); i++) {
                struct json_object *o = body_parse(ev__etcd_watch_body(K, KLEN, revisions[i]), 1);
                struct json_object *req, *m;
                char expect[32];

                cr_assert(json_object_object_get_ex(o, "create_request", &req));
                cr_assert(json_object_is_type(req, json_type_object));
                cr_assert_eq(json_object_object_length(req), 3);
                assert_b64_member(req, "key", K, KLEN);
                /* int64 as a decimal string, as the gateway reads it. */
                cr_assert(json_object_object_get_ex(req, "start_revision", &m));
                cr_assert(json_object_is_type(m, json_type_string));
                snprintf(expect, sizeof(expect), "%lld", (long long)revisions[i]);
                cr_assert_str_eq(json_object_get_string(m), expect);
                cr_assert(json_object_object_get_ex(req, "progress_notify", &m));
                cr_assert(json_object_is_type(m, json_type_boolean));
                cr_assert(json_object_get_boolean(m));
                json_object_put(o);
        }
}
