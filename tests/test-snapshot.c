/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of ev_value_snapshot, one test per rule of
 * ev_snapshot_data(3) and of the NULL tolerance of its accessors: a
 * snapshot is immutable and stays valid whatever is set or closed later,
 * its reference counting (also from several threads) decides when owned
 * bytes are destroyed, copied bytes are aligned for any type, its version is
 * the value's version that the set made, and large snapshots keep every byte.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdalign.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ev-value.h"
#include "helpers.h"

Test(snapshot, stays_intact_across_a_hundred_later_sets) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *peeked = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *watched = NULL;
        const void *data;
        int i;

        set_string_or_fail(v, "first");
        peeked = peek_or_fail(v);
        watched = get_or_fail(w);
        data = ev_snapshot_data(peeked);
        for (i = 0; i < 100; i++) {
                char buf[32];

                snprintf(buf, sizeof(buf), "overwrite %d", i);
                set_string_or_fail(v, buf);
        }
        cr_assert_eq(ev_value_get_version(v), 101);
        cr_assert_eq(ev_snapshot_data(peeked), data);
        assert_snapshot_is_string(peeked, 1, "first");
        assert_snapshot_is_string(watched, 1, "first");
}

Test(snapshot, stays_intact_after_the_value_is_closed_and_unreferenced) {
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *peeked = NULL;
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *watched = NULL;

        set_string_or_fail(v, "older");
        peeked = peek_or_fail(v);
        set_string_or_fail(v, "final");
        watched = get_or_fail(w);
        close_or_fail(v);
        ev_watcher_close(w);
        ev_value_unref(v);
        /* Both value and watcher are gone; valgrind checks these reads. */
        assert_snapshot_is_string(peeked, 1, "older");
        assert_snapshot_is_string(watched, 2, "final");
}

Test(snapshot, ref_returns_the_same_pointer) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;

        set_string_or_fail(v, "x");
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_ref(s), s);
        ev_snapshot_unref(s);
        ev_snapshot_unref(s);
}

Test(snapshot, unref_returns_null_for_a_middle_and_for_the_last_reference) {
        ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;

        set_string_or_fail(v, "x");
        s = peek_or_fail(v);
        ev_value_unref(v); /* s is now the only reference */
        cr_assert_eq(ev_snapshot_ref(s), s);
        cr_assert_null(ev_snapshot_unref(s));
        cr_assert_null(ev_snapshot_unref(s));
}

Test(snapshot, data_stays_valid_until_the_last_unref) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        char *data = strdup_or_fail("counted");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        s = peek_or_fail(v);                 /* value + 1 */
        cr_assert_eq(ev_snapshot_ref(s), s); /* value + 2 */
        cr_assert_eq(ev_snapshot_ref(s), s); /* value + 3 */
        ev_value_unref(v);                   /* 3 */
        cr_assert_eq(atomic_load(&log.calls), 0);
        ev_snapshot_unref(s);                /* 2 */
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_str_eq(ev_snapshot_data(s), "counted");
        ev_snapshot_unref(s);                /* 1 */
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_str_eq(ev_snapshot_data(s), "counted");
        cr_assert_eq(ev_snapshot_data(s), (const void *)data);
        ev_snapshot_unref(s);                /* 0 */
        cr_assert_eq(atomic_load(&log.calls), 1);
        cr_assert_eq(log.data, data);
}

Test(snapshot, copied_data_is_aligned_for_any_type) {
        static const size_t sizes[] = { 0, 1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 31, 33, 4095 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        char buf[4096];
        size_t i;

        memset(buf, 0xa5, sizeof(buf));
        for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
                ev_value_snapshot *s;
                uintptr_t addr;

                /* Misalign the source too: the copy must not inherit it. */
                cr_assert_eq(ev_value_set(v, buf + 1, sizes[i]), 0);
                s = peek_or_fail(v);
                addr = (uintptr_t)ev_snapshot_data(s);
                cr_assert_eq(addr % alignof(max_align_t), 0,
                             "size %zu: data %p not aligned to %zu", sizes[i],
                             ev_snapshot_data(s), alignof(max_align_t));
                cr_assert_eq(ev_snapshot_size(s), sizes[i]);
                if (sizes[i] > 0)
                        cr_assert_eq(memcmp(ev_snapshot_data(s), buf + 1, sizes[i]), 0);
                ev_snapshot_unref(s);
        }
}

Test(snapshot, version_equals_the_value_version_its_set_made) {
        ev_value_snapshot *kept[10];
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        uint64_t i;

        for (i = 0; i < 10; i++) {
                ev_value_snapshot *s;

                cr_assert_eq(ev_value_set(v, &i, sizeof(i)), 0);
                kept[i] = peek_or_fail(v);
                cr_assert_eq(ev_snapshot_version(kept[i]), ev_value_get_version(v));
                s = get_or_fail(w);
                cr_assert_eq(s, kept[i]);
                cr_assert_eq(ev_snapshot_version(s), i + 1);
                ev_snapshot_unref(s);
        }
        /* Versions are fixed at set time, not read from the value later. */
        for (i = 0; i < 10; i++) {
                cr_assert_eq(ev_snapshot_version(kept[i]), i + 1);
                cr_assert_eq(*(const uint64_t *)ev_snapshot_data(kept[i]), i);
                ev_snapshot_unref(kept[i]);
        }
}

Test(snapshot, owned_snapshot_version_equals_the_value_version_its_set_made) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        char *data = strdup_or_fail("owned");

        set_string_or_fail(v, "copied");
        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_version(s), 2);
        set_string_or_fail(v, "later");
        cr_assert_eq(ev_snapshot_version(s), 2);
        ev_snapshot_unref(s);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(snapshot, data_of_null_is_null) {
        cr_assert_null(ev_snapshot_data(NULL));
}

Test(snapshot, size_of_null_is_zero) {
        cr_assert_eq(ev_snapshot_size(NULL), 0);
}

Test(snapshot, version_of_null_is_zero) {
        cr_assert_eq(ev_snapshot_version(NULL), 0);
}

Test(snapshot, ref_of_null_is_null) {
        cr_assert_null(ev_snapshot_ref(NULL));
}

Test(snapshot, unref_of_null_is_null) {
        cr_assert_null(ev_snapshot_unref(NULL));
}

Test(snapshot, one_mebibyte_snapshot_keeps_every_byte) {
        const size_t size = 1024 * 1024;
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;
        unsigned char *buf = malloc(size);
        const unsigned char *data;
        size_t i;

        cr_assert_not_null(buf);
        for (i = 0; i < size; i++)
                buf[i] = (unsigned char)(i * 7 + (i >> 8) + (i >> 16));
        cr_assert_eq(ev_value_set(v, buf, size), 0);
        memset(buf, 0, size);
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_size(s), size);
        cr_assert_eq(ev_snapshot_version(s), 1);
        data = ev_snapshot_data(s);
        for (i = 0; i < size; i++)
                if (data[i] != (unsigned char)(i * 7 + (i >> 8) + (i >> 16)))
                        cr_assert_fail("byte %zu is 0x%02x", i, data[i]);
        ev_snapshot_unref(s);
        ev_watcher_close(w);
        ev_value_unref(v);
        free(buf);
}

/* ------------------------------------------------ concurrent refcounting */

#define N_THREADS 4
#define REFS_PER_THREAD 20000

struct refcount_race {
        ev_value_snapshot *s;
        pthread_barrier_t start;
};

static void *ref_unref_main(void *data) {
        struct refcount_race *race = data;
        int i;

        pthread_barrier_wait(&race->start);
        for (i = 0; i < REFS_PER_THREAD; i++) {
                ev_snapshot_ref(race->s);
                ev_snapshot_ref(race->s);
                ev_snapshot_unref(race->s);
                ev_snapshot_unref(race->s);
        }
        return NULL;
}

Test(snapshot, refcounting_from_several_threads_loses_no_count, .timeout = 10) {
        struct destroy_log log = { 0 };
        struct refcount_race race;
        pthread_t threads[N_THREADS];
        ev_value *v = value_new_or_fail();
        char *data = strdup_or_fail("shared");
        int i;

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        race.s = peek_or_fail(v);
        ev_value_unref(v); /* race.s holds the only reference */
        cr_assert_eq(pthread_barrier_init(&race.start, NULL, N_THREADS), 0);
        for (i = 0; i < N_THREADS; i++)
                cr_assert_eq(pthread_create(&threads[i], NULL, ref_unref_main, &race), 0);
        for (i = 0; i < N_THREADS; i++)
                pthread_join(threads[i], NULL);
        pthread_barrier_destroy(&race.start);
        /* A lost increment would have destroyed it early, a lost decrement
         * would keep it after the last unref below. */
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_str_eq(ev_snapshot_data(race.s), "shared");
        ev_snapshot_unref(race.s);
        cr_assert_eq(atomic_load(&log.calls), 1);
}
