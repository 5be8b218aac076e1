/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the producer's side of an ev_value, one test per rule of
 * ev_value_new(3), ev_value_set(3) and ev_value_get(3): versions of a new
 * and of a set value, the peek of ev_value_get, copying by ev_value_set and
 * adoption by ev_value_set_owned (when destroy runs, counted at each step),
 * the value's reference counting and its interplay with watchers, allocation
 * failure, and gapless versions under concurrent sets from several threads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ev-value.h"
#include "helpers.h"

Test(value, new_value_has_version_zero) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        cr_assert_eq(ev_value_get_version(v), 0);
}

Test(value, get_on_never_set_value_gives_eagain_and_leaves_ret_untouched) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        peek_fails_with(v, -EAGAIN);
        cr_assert_eq(ev_value_get_version(v), 0);
}

Test(value, each_set_increments_version_by_one) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        uint64_t i;

        for (i = 1; i <= 10; i++) {
                cr_assert_eq(ev_value_set(v, &i, sizeof(i)), 0);
                cr_assert_eq(ev_value_get_version(v), i);
        }
}

Test(value, get_returns_current_snapshot_with_its_bytes_size_and_version) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();

        set_string_or_fail(v, "one");
        set_string_or_fail(v, "second");
        peek_string_or_fail(v, 2, "second");
}

Test(value, hundred_sets_then_one_get_returns_only_the_last) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;
        int i;

        for (i = 1; i <= 100; i++)
                cr_assert_eq(ev_value_set(v, &i, sizeof(i)), 0);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_version(s), 100);
        cr_assert_eq(ev_snapshot_size(s), sizeof(int));
        cr_assert_eq(*(const int *)ev_snapshot_data(s), 100);
}

Test(value, set_of_size_zero_with_null_data_is_a_valid_empty_value) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;

        set_string_or_fail(v, "not empty");
        ev_snapshot_unref(get_or_fail(w));
        cr_assert_eq(ev_value_set(v, NULL, 0), 0);
        cr_assert_eq(ev_value_get_version(v), 2);
        /* An empty set is a set like any other: it notifies and replaces. */
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        s = get_or_fail(w);
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_eq(ev_snapshot_version(s), 2);
        ev_snapshot_unref(s);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_eq(ev_snapshot_version(s), 2);
        ev_snapshot_unref(s);
}

Test(value, set_of_size_zero_with_non_null_data_is_a_valid_empty_value) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;
        char byte = 'x';

        cr_assert_eq(ev_value_set(v, &byte, 0), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_eq(ev_snapshot_version(s), 1);
}

Test(value, set_owned_of_size_zero_with_null_data_is_a_valid_empty_value) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;

        cr_assert_eq(ev_value_set_owned(v, NULL, 0, record_destroy, &log), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_size(s), 0);
        cr_assert_eq(ev_snapshot_version(s), 1);
        ev_snapshot_unref(s);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
        cr_assert_null(log.data);
        cr_assert_eq(log.userdata, &log);
}

Test(value, every_set_notifies_even_with_identical_bytes) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);

        set_string_or_fail(v, "same");
        ev_snapshot_unref(get_or_fail(w));
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        set_string_or_fail(v, "same");
        cr_assert_eq(ev_value_get_version(v), 2);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "same");
}

Test(value, set_copies_so_later_changes_to_the_callers_buffer_are_not_seen) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_snapshot_unrefp) ev_value_snapshot *s = NULL;
        char buf[] = "original";

        cr_assert_eq(ev_value_set(v, buf, sizeof(buf)), 0);
        memset(buf, 'X', sizeof(buf) - 1);
        s = peek_or_fail(v);
        cr_assert_neq(ev_snapshot_data(s), (const void *)buf);
        assert_snapshot_is_string(s, 1, "original");
}

Test(value, set_owned_adopts_data_without_copying) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        char *data = strdup_or_fail("adopted");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_data(s), (const void *)data);
        assert_snapshot_is_string(s, 1, "adopted");
        ev_snapshot_unref(s);
        cr_assert_eq(atomic_load(&log.calls), 0);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(value, set_owned_destroy_runs_exactly_once_after_the_last_reference) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *peeked, *watched;
        char *data = strdup_or_fail("counted");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        peeked = peek_or_fail(v);
        watched = get_or_fail(w);
        cr_assert_eq(peeked, watched);
        cr_assert_eq(atomic_load(&log.calls), 0, "destroyed while current and referenced");

        /* Replaced: the value's reference goes, two handed-out ones remain. */
        set_string_or_fail(v, "next");
        cr_assert_eq(atomic_load(&log.calls), 0, "destroyed while two references remain");
        cr_assert_str_eq(ev_snapshot_data(peeked), "counted");

        ev_snapshot_unref(peeked);
        cr_assert_eq(atomic_load(&log.calls), 0, "destroyed while one reference remains");
        cr_assert_str_eq(ev_snapshot_data(watched), "counted");

        ev_snapshot_unref(watched);
        cr_assert_eq(atomic_load(&log.calls), 1, "not destroyed after the last reference");
        cr_assert_eq(log.data, data);
        cr_assert_eq(log.userdata, &log);

        /* Nothing later may run it again. */
        set_string_or_fail(v, "later");
        ev_value_close(v);
        ev_watcher_close(w);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(value, set_owned_with_null_destroy_works) {
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        static char data[] = "static, never freed";

        cr_assert_eq(ev_value_set_owned(v, data, sizeof(data), NULL, NULL), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        s = peek_or_fail(v);
        cr_assert_eq(ev_snapshot_data(s), (const void *)data);
        assert_snapshot_is_string(s, 1, "static, never freed");
        set_string_or_fail(v, "replaced");
        ev_snapshot_unref(s); /* the last reference: must not call NULL */
        cr_assert_eq(ev_value_get_version(v), 2);
        cr_assert_str_eq(data, "static, never freed");
}

Test(value, replaced_owned_snapshot_is_destroyed_as_soon_as_last_handed_out_ref_drops) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *w = watch_or_fail(v);
        ev_value_snapshot *s;
        char *data = strdup_or_fail("replaced");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        s = get_or_fail(w);
        set_string_or_fail(v, "newer");
        cr_assert_eq(atomic_load(&log.calls), 0);
        /* The watcher that returned it, the value and its other state keep
         * no reference: this unref is the last one. */
        ev_snapshot_unref(s);
        cr_assert_eq(atomic_load(&log.calls), 1);
        ev_watcher_close(w);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(value, replaced_owned_snapshot_nobody_took_is_destroyed_by_the_replacing_set) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_watcher *seen = watch_or_fail(v);
        ev_value_watcher *unseen = watch_or_fail(v);
        char *data = strdup_or_fail("skipped");

        set_string_or_fail(v, "first");
        ev_snapshot_unref(get_or_fail(seen));
        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        /* Neither the watcher that has not got it nor the one that saw the
         * previous snapshot may pin it. */
        set_string_or_fail(v, "third");
        cr_assert_eq(atomic_load(&log.calls), 1);
        get_string_or_fail(unseen, 3, "third");
        get_string_or_fail(seen, 3, "third");
        ev_watcher_close(seen);
        ev_watcher_close(unseen);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(value, last_unref_of_value_drops_its_current_snapshot) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        char *data = strdup_or_fail("current");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        cr_assert_eq(ev_value_ref(v), v);
        cr_assert_null(ev_value_unref(v));
        cr_assert_eq(atomic_load(&log.calls), 0, "destroyed while the value lives");
        cr_assert_null(ev_value_unref(v));
        cr_assert_eq(atomic_load(&log.calls), 1);
        cr_assert_eq(log.data, data);
}

Test(value, value_unref_keeps_snapshots_handed_out_alive) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value_snapshot *s;
        char *data = strdup_or_fail("outlives the value");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        s = peek_or_fail(v);
        ev_value_unref(v);
        cr_assert_eq(atomic_load(&log.calls), 0);
        assert_snapshot_is_string(s, 1, "outlives the value");
        ev_snapshot_unref(s);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(value, ref_returns_v_and_keeps_it_alive) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        char *data = strdup_or_fail("alive");

        cr_assert_eq(ev_value_set_owned(v, data, strlen(data) + 1, free_destroy, &log), 0);
        cr_assert_eq(ev_value_ref(v), v);
        cr_assert_eq(ev_value_ref(v), v);
        ev_value_unref(v);
        ev_value_unref(v);
        /* One reference left: the value is fully usable. */
        cr_assert_eq(atomic_load(&log.calls), 0);
        cr_assert_eq(ev_value_get_version(v), 1);
        peek_string_or_fail(v, 1, "alive");
        set_string_or_fail(v, "still alive");
        cr_assert_eq(atomic_load(&log.calls), 1);
        cr_assert_eq(ev_value_get_version(v), 2);
        ev_value_unref(v);
}

Test(value, producer_unref_while_watcher_lives_is_safe) {
        struct destroy_log log = { 0 };
        ev_value *v = value_new_or_fail();
        ev_value *other = ev_value_ref(v);
        ev_value_watcher *w = watch_or_fail(v);
        char *data = strdup_or_fail("last");

        set_string_or_fail(v, "before unref");
        ev_value_unref(v);

        /* The watcher still gets what was set before the unref... */
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 1, "before unref");

        /* ...and what another reference sets afterwards. */
        cr_assert_eq(ev_value_set_owned(other, data, strlen(data) + 1, free_destroy, &log), 0);
        cr_assert(fd_readable(ev_watcher_get_fd(w)));
        get_string_or_fail(w, 2, "last");

        /* Only the watcher holds the value now: it stays readable. */
        ev_value_unref(other);
        cr_assert_eq(atomic_load(&log.calls), 0, "value freed under its watcher");
        get_fails_with(w, -EAGAIN);
        cr_assert_not(fd_readable(ev_watcher_get_fd(w)));

        /* Closing the last watcher releases the value and its snapshot. */
        ev_watcher_close(w);
        cr_assert_eq(atomic_load(&log.calls), 1);
}

Test(value, set_that_cannot_allocate_gives_enomem_and_leaves_value_unchanged) {
        /* Sizes no allocator can provide: the first two overflow any
         * header added to them, the last is larger than any address space
         * but not so large that valgrind calls it a negative size. */
        static const size_t huge[] = { SIZE_MAX, SIZE_MAX - 8, SIZE_MAX / 4 };
        _cleanup_(ev_value_unrefp) ev_value *v = value_new_or_fail();
        _cleanup_(ev_watcher_closep) ev_value_watcher *w = watch_or_fail(v);
        char byte = 'b';
        size_t i;

        set_string_or_fail(v, "kept");
        ev_snapshot_unref(get_or_fail(w));
        for (i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
                cr_assert_eq(ev_value_set(v, &byte, huge[i]), -ENOMEM, "size %zu", huge[i]);
                cr_assert_eq(ev_value_get_version(v), 1);
                cr_assert_not(fd_readable(ev_watcher_get_fd(w)));
        }
        peek_string_or_fail(v, 1, "kept");
        get_fails_with(w, -EAGAIN);
}

/* ------------------------------------------------- concurrent producers */

#define N_SETTERS 4
#define SETS_PER_THREAD 1000
#define TOTAL_SETS (N_SETTERS * SETS_PER_THREAD)

struct payload {
        unsigned thread;
        unsigned seq; /* 1-based, increasing in each setter's program order */
};

struct concurrent {
        ev_value *v;
        pthread_barrier_t start;
        /* owner[version] = thread << 32 | seq, plus one; 0 = not seen yet. */
        _Atomic uint64_t owner[TOTAL_SETS + 1];
        atomic_int failures;
        atomic_int owned_destroyed;
        uint64_t watcher_seen;    /* snapshots the watcher thread got */
        uint64_t watcher_last;    /* version of the last one */
};

static void payload_destroy(void *data, void *userdata) {
        struct concurrent *c = userdata;

        atomic_fetch_add(&c->owned_destroyed, 1);
        free(data);
}

/* Record that version belongs to payload p; a version claimed by two
 * different sets is a failure. */
static void claim_version(struct concurrent *c, uint64_t version, const struct payload *p) {
        uint64_t want = ((uint64_t)p->thread << 32 | p->seq) + 1;
        uint64_t expected = 0;

        if (version < 1 || version > TOTAL_SETS) {
                atomic_fetch_add(&c->failures, 1);
                return;
        }
        if (!atomic_compare_exchange_strong(&c->owner[version], &expected, want) &&
            expected != want)
                atomic_fetch_add(&c->failures, 1);
}

struct setter_arg {
        struct concurrent *c;
        unsigned thread;
};

/* Criterion assertions must stay on the test's thread: threads only count
 * failures. */
static void *setter_main(void *data) {
        struct setter_arg *a = data;
        struct concurrent *c = a->c;
        uint64_t last_own = 0;
        unsigned i;

        pthread_barrier_wait(&c->start);
        for (i = 1; i <= SETS_PER_THREAD; i++) {
                struct payload p = { .thread = a->thread, .seq = i };
                ev_value_snapshot *s = NULL;
                int r;

                /* Half the setters copy, half adopt, so both paths race. */
                if (a->thread % 2 == 0) {
                        r = ev_value_set(c->v, &p, sizeof(p));
                } else {
                        struct payload *heap = malloc(sizeof(*heap));

                        if (!heap) {
                                atomic_fetch_add(&c->failures, 1);
                                continue;
                        }
                        *heap = p;
                        r = ev_value_set_owned(c->v, heap, sizeof(*heap), payload_destroy, c);
                        if (r < 0)
                                free(heap);
                }
                if (r != 0 || ev_value_get(c->v, &s) != 0) {
                        atomic_fetch_add(&c->failures, 1);
                        continue;
                }
                /* The current version is at least the one this set made, and
                 * versions only grow. */
                if (ev_snapshot_version(s) <= last_own ||
                    ev_snapshot_size(s) != sizeof(struct payload))
                        atomic_fetch_add(&c->failures, 1);
                else
                        claim_version(c, ev_snapshot_version(s), ev_snapshot_data(s));
                last_own = ev_snapshot_version(s);
                ev_snapshot_unref(s);
        }
        return NULL;
}

struct watcher_arg {
        struct concurrent *c;
        ev_value_watcher *w;
        int cancel_fd; /* written once every set has returned */
};

static void *consumer_main(void *data) {
        struct watcher_arg *a = data;
        struct concurrent *c = a->c;
        unsigned last_seq[N_SETTERS] = { 0 };

        pthread_barrier_wait(&c->start);
        while (c->watcher_last < TOTAL_SETS) {
                ev_value_snapshot *s = NULL;
                const struct payload *p;
                int r = ev_watcher_wait(a->w, -1, a->cancel_fd, &s);

                /* Cancelled only once every set returned; an unseen snapshot
                 * takes precedence over the cancel, so a correct library has
                 * delivered the last version by then and the test checks it. */
                if (r == -ECANCELED)
                        break;
                if (r != 0) {
                        atomic_fetch_add(&c->failures, 1);
                        break;
                }
                p = ev_snapshot_data(s);
                /* Each version is seen once, in order, and a setter's sets
                 * appear in its program order. */
                if (ev_snapshot_version(s) <= c->watcher_last ||
                    ev_snapshot_size(s) != sizeof(*p) || p->thread >= N_SETTERS ||
                    p->seq <= last_seq[p->thread]) {
                        atomic_fetch_add(&c->failures, 1);
                } else {
                        last_seq[p->thread] = p->seq;
                        claim_version(c, ev_snapshot_version(s), p);
                }
                c->watcher_last = ev_snapshot_version(s);
                c->watcher_seen++;
                ev_snapshot_unref(s);
        }
        return NULL;
}

Test(value, concurrent_sets_from_four_threads_keep_versions_gapless, .timeout = 10) {
        static struct concurrent c;
        struct setter_arg args[N_SETTERS];
        struct watcher_arg warg;
        pthread_t setters[N_SETTERS], consumer;
        ev_value_snapshot *s;
        unsigned i;

        c.v = value_new_or_fail();
        warg.c = &c;
        warg.w = watch_or_fail(c.v);
        warg.cancel_fd = eventfd(0, EFD_CLOEXEC);
        cr_assert_geq(warg.cancel_fd, 0);
        cr_assert_eq(pthread_barrier_init(&c.start, NULL, N_SETTERS + 1), 0);
        cr_assert_eq(pthread_create(&consumer, NULL, consumer_main, &warg), 0);
        for (i = 0; i < N_SETTERS; i++) {
                args[i].c = &c;
                args[i].thread = i;
                cr_assert_eq(pthread_create(&setters[i], NULL, setter_main, &args[i]), 0);
        }
        for (i = 0; i < N_SETTERS; i++)
                pthread_join(setters[i], NULL);
        /* A lost version would leave the consumer waiting forever. */
        cr_assert_eq(eventfd_write(warg.cancel_fd, 1), 0);
        pthread_join(consumer, NULL);
        close(warg.cancel_fd);
        pthread_barrier_destroy(&c.start);

        cr_assert_eq(atomic_load(&c.failures), 0);
        cr_assert_eq(ev_value_get_version(c.v), TOTAL_SETS);
        s = peek_or_fail(c.v);
        cr_assert_eq(ev_snapshot_version(s), TOTAL_SETS);
        ev_snapshot_unref(s);
        cr_assert_eq(c.watcher_last, TOTAL_SETS);
        cr_assert_geq(c.watcher_seen, 1);
        cr_assert_leq(c.watcher_seen, TOTAL_SETS);

        ev_watcher_close(warg.w);
        ev_value_unref(c.v);
        /* Every adopted payload was destroyed exactly once (valgrind would
         * catch a second free). */
        cr_assert_eq(atomic_load(&c.owned_destroyed), TOTAL_SETS / 2);
}
