/* SPDX-License-Identifier: MIT */
/*
 * Resource failures, injected at every site (lib/fault.h): this program
 * links the test build of the library, where the n-th allocation or eventfd
 * creation from now can be made to fail.  Each test walks the failure
 * through an operation, n = 1, 2, ... until the operation no longer reaches
 * the n-th site, and after every injected failure checks that the
 * operation returned the documented error, wrote no output, and changed
 * nothing: the value keeps its version and bytes, its watchers keep their
 * readiness and still see the next set, and no fd was left open (ASan and
 * valgrind, which run this program too, see any memory left behind).  Each
 * walk also checks which sites the operation reaches, so a new allocation
 * site cannot go untested, and that the operations that must not fail on
 * resources (get, wait, close, ref/unref) reach none.
 */
#include "config.h"

#include <dirent.h>

#include "fault.h"
#include "helpers.h"

#define SITE(s) (1u << (s))
#define ALL_SITES ((1u << EV__FAULT_N_SITES) - 1)

/* A value at version 1 ("before") with one watcher that has consumed it
 * and one that has not: the state every failure must leave as it was. */
struct fixture {
        ev_value *v;
        ev_value_watcher *seen;   /* consumed version 1: fd clear */
        ev_value_watcher *unseen; /* version 1 pending: fd readable */
        int n_fds;
};

static void fixture_init(struct fixture *f) {
        f->v = value_new_or_fail();
        set_string_or_fail(f->v, "before");
        f->seen = watch_consumed_or_fail(f->v);
        f->unseen = watch_or_fail(f->v);
        f->n_fds = count_open_fds();
}

/* Asserts that f is as fixture_init left it (bar new watchers). */
static void assert_fixture_unchanged(struct fixture *f) {
        cr_assert_eq(ev_value_get_version(f->v), 1);
        peek_string_or_fail(f->v, 1, "before");
        cr_assert_not(fd_readable(ev_watcher_get_fd(f->seen)));
        cr_assert(fd_readable(ev_watcher_get_fd(f->unseen)));
        cr_assert_eq(count_open_fds(), f->n_fds, "a failed call left an fd open");
}

/* Asserts that both watchers see the next set: the failures broke nothing. */
static void fixture_finish(struct fixture *f) {
        uint64_t next = ev_value_get_version(f->v) + 1;

        set_string_or_fail(f->v, "after");
        cr_assert(fd_readable(ev_watcher_get_fd(f->seen)));
        get_string_or_fail(f->seen, next, "after");
        get_string_or_fail(f->unseen, next, "after");
        f->seen = ev_watcher_close(f->seen);
        f->unseen = ev_watcher_close(f->unseen);
        f->v = ev_value_unref(f->v);
}

/* One operation under test: returns its result; on failure it must also
 * have checked that it wrote no output. */
typedef int (*fault_op)(struct fixture *f, void *userdata);

/* Run op with the n-th site failing with error for n = 1, 2, ... until op
 * completes without reaching the n-th site; after each failure assert the
 * documented error and no change.  Returns the sites the walk failed. */
static unsigned walk_faults(struct fixture *f, fault_op op, void *userdata, int error) {
        unsigned n, sites = 0;
        int r, site;

        for (n = 1;; n++) {
                cr_assert_lt(n, 100, "operation never completes without a fault");
                ev__fault_arm(n, error);
                r = op(f, userdata);
                site = ev__fault_fired();
                ev__fault_arm(0, 0);
                if (site < 0) {
                        cr_assert_eq(r, 0, "operation failed with %s, no fault injected",
                                     strerror(-r));
                        return sites;
                }
                sites |= SITE(site);
                cr_assert_eq(r, site == EV__FAULT_EVENTFD ? error : -ENOMEM,
                             "fault %u at site %d: got %d (%s)", n, site, r, strerror(-r));
                assert_fixture_unchanged(f);
        }
}

/* --------------------------------------------------------- operations */

static int op_value_new(struct fixture *f, void *userdata) {
        ev_value *v = VALUE_SENTINEL;
        int r = ev_value_new(&v);

        (void)f;
        (void)userdata;
        if (r < 0)
                cr_assert_eq(v, VALUE_SENTINEL, "failed ev_value_new wrote *ret");
        else
                ev_value_unref(v);
        return r;
}

static int op_set(struct fixture *f, void *userdata) {
        (void)userdata;
        return ev_value_set(f->v, "new", 4);
}

static int op_set_large(struct fixture *f, void *userdata) {
        static char big[1 << 20];

        (void)userdata;
        return ev_value_set(f->v, big, sizeof(big));
}

/* set_owned: on failure the caller keeps the buffer and destroy never runs. */
static int op_set_owned(struct fixture *f, void *userdata) {
        struct destroy_log *log = userdata;
        char *data = strdup_or_fail("owned");
        int r = ev_value_set_owned(f->v, data, 6, free_destroy, log);

        if (r < 0) {
                cr_assert_eq(atomic_load(&log->calls), 0, "destroy ran for a failed set");
                cr_assert_str_eq(data, "owned");
                free(data);
        }
        return r;
}

/* ev_value_watch with the flags *userdata; a new watcher is closed again. */
static int op_watch(struct fixture *f, void *userdata) {
        ev_value_watcher *w = WATCHER_SENTINEL;
        int r = ev_value_watch(f->v, *(unsigned *)userdata, &w);

        if (r < 0) {
                cr_assert_eq(w, WATCHER_SENTINEL, "failed ev_value_watch wrote *ret");
                return r;
        }
        cr_assert(fd_readable(ev_watcher_get_fd(w)), "new watcher does not report version 1");
        ev_watcher_close(w);
        return 0;
}

/* ev_value_set_flags of the bytes and flags in userdata; the walk wants
 * 0 on success, so a call that gave expected gives 0 here. */
struct set_flags_call {
        const char *bytes; /* set with its NUL */
        unsigned flags;
        int expected;      /* 1 set, 0 skipped */
};

static int op_set_flags(struct fixture *f, void *userdata) {
        const struct set_flags_call *c = userdata;
        int r = ev_value_set_flags(f->v, c->bytes, strlen(c->bytes) + 1, c->flags);

        if (r >= 0) {
                cr_assert_eq(r, c->expected, "ev_value_set_flags(\"%s\", %#x) gave %d",
                             c->bytes, c->flags, r);
                return 0;
        }
        return r;
}

/* The function of ev_value_update: returns userdata's result with "new". */
static int update_to_new(const ev_value_snapshot *current, void *userdata,
                         const void **ret_data, size_t *ret_size) {
        (void)current;
        *ret_data = "new";
        *ret_size = 4;
        return *(const int *)userdata;
}

/* ev_value_update with fn returning *userdata; 1 (set) or, when fn keeps
 * the value, 0 are the walk's success. */
static int op_update(struct fixture *f, void *userdata) {
        int result = *(const int *)userdata;
        int r = ev_value_update(f->v, update_to_new, userdata);

        if (r >= 0) {
                cr_assert_eq(r, result > 0 ? 1 : 0, "ev_value_update gave %d", r);
                return 0;
        }
        return r;
}

/* Everything a consumer does after its watch: get, wait, peek,
 * refcounting and the close of the watcher userdata.  None of it may
 * need a resource, so none of it can fail for want of one. */
static int op_consume(struct fixture *f, void *userdata) {
        ev_value_watcher *w = userdata;
        ev_value_snapshot *s;

        get_string_or_fail(w, 1, "before");
        get_fails_with(w, -EAGAIN);
        wait_fails_with(w, 0, -1, -ETIMEDOUT);
        s = peek_or_fail(f->v);
        ev_snapshot_unref(ev_snapshot_ref(s));
        ev_snapshot_unref(s);
        ev_value_unref(ev_value_ref(f->v));
        ev_watcher_close(w);
        return 0;
}

/* ---------------------------------------------------------------- tests */

Test(fault, value_new_reports_enomem) {
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_value_new, NULL, -ENOMEM), SITE(EV__FAULT_VALUE_ALLOC));
        fixture_finish(&f);
}

Test(fault, set_reports_enomem_and_keeps_the_value) {
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_set, NULL, -ENOMEM), SITE(EV__FAULT_SNAPSHOT_ALLOC));
        /* The walk ends with a successful set: version 2 is "new". */
        get_string_or_fail(f.seen, 2, "new");
        get_string_or_fail(f.unseen, 2, "new");
        fixture_finish(&f);
}

Test(fault, large_set_reports_enomem_and_keeps_the_value) {
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_set_large, NULL, -ENOMEM), SITE(EV__FAULT_SNAPSHOT_ALLOC));
        cr_assert_eq(ev_value_get_version(f.v), 2);
        ev_snapshot_unref(get_or_fail(f.seen));
        ev_snapshot_unref(get_or_fail(f.unseen));
        fixture_finish(&f);
}

Test(fault, set_owned_reports_enomem_and_leaves_the_buffer_to_the_caller) {
        struct destroy_log log = { 0 };
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_set_owned, &log, -ENOMEM), SITE(EV__FAULT_SNAPSHOT_ALLOC));
        get_string_or_fail(f.seen, 2, "owned");
        cr_assert_eq(atomic_load(&log.calls), 0);
        fixture_finish(&f);
        cr_assert_eq(atomic_load(&log.calls), 1, "the owned buffer was not destroyed once");
}

Test(fault, set_flags_reports_enomem_and_keeps_the_value) {
        struct set_flags_call c = { .bytes = "new", .flags = 0, .expected = 1 };
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_set_flags, &c, -ENOMEM), SITE(EV__FAULT_SNAPSHOT_ALLOC));
        get_string_or_fail(f.seen, 2, "new");
        get_string_or_fail(f.unseen, 2, "new");
        fixture_finish(&f);
}

Test(fault, set_flags_if_changed_reports_enomem_and_keeps_the_value) {
        struct set_flags_call c = { .bytes = "new", .flags = EV_VALUE_SET_IF_CHANGED, .expected = 1 };
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_set_flags, &c, -ENOMEM), SITE(EV__FAULT_SNAPSHOT_ALLOC));
        get_string_or_fail(f.seen, 2, "new");
        get_string_or_fail(f.unseen, 2, "new");
        fixture_finish(&f);
}

/* The comparison comes before the copy: a skipped set cannot run out of memory. */
Test(fault, set_if_changed_with_the_current_bytes_never_allocates) {
        struct set_flags_call c = { .bytes = "before", .flags = EV_VALUE_SET_IF_CHANGED,
                                    .expected = 0 };
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_set_flags, &c, -ENOMEM), 0);
        assert_fixture_unchanged(&f);
        fixture_finish(&f);
}

Test(fault, update_reports_enomem_and_keeps_the_value) {
        int result = 1;
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_update, &result, -ENOMEM), SITE(EV__FAULT_SNAPSHOT_ALLOC));
        get_string_or_fail(f.seen, 2, "new");
        get_string_or_fail(f.unseen, 2, "new");
        fixture_finish(&f);
}

/* An update whose fn keeps the value, or fails, needs no snapshot. */
Test(fault, update_that_sets_nothing_never_allocates) {
        static const int results[] = { 0, -ECANCELED };
        struct fixture f;
        size_t i;

        fixture_init(&f);
        for (i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
                int result = results[i];

                if (result == 0) {
                        cr_assert_eq(walk_faults(&f, op_update, &result, -ENOMEM), 0);
                } else {
                        ev__fault_arm(1, -ENOMEM);
                        cr_assert_eq(ev_value_update(f.v, update_to_new, &result), result);
                        cr_assert_eq(ev__fault_fired(), -1, "a failing update reached a fault site");
                        ev__fault_arm(0, 0);
                }
                assert_fixture_unchanged(&f);
        }
        fixture_finish(&f);
}

Test(fault, watch_reports_enomem_emfile_enfile) {
        static const int errors[] = { -EMFILE, -ENFILE };
        unsigned flags = 0, i;
        struct fixture f;

        fixture_init(&f);
        for (i = 0; i < sizeof(errors) / sizeof(errors[0]); i++)
                cr_assert_eq(walk_faults(&f, op_watch, &flags, errors[i]),
                             SITE(EV__FAULT_WATCHER_ALLOC) | SITE(EV__FAULT_EVENTFD));
        fixture_finish(&f);
}

Test(fault, shared_fd_watch_creates_its_fd_once) {
        unsigned flags = EV_VALUE_WATCH_SHARED_FD;
        ev_value_watcher *first;
        struct fixture f;

        fixture_init(&f);
        /* The first shared-fd watcher creates the value's eventfd... */
        cr_assert_eq(walk_faults(&f, op_watch, &flags, -EMFILE),
                     SITE(EV__FAULT_WATCHER_ALLOC) | SITE(EV__FAULT_EVENTFD));
        cr_assert_eq(ev_value_watch(f.v, flags, &first), 0);
        f.n_fds = count_open_fds();
        /* ...later ones only allocate themselves. */
        cr_assert_eq(walk_faults(&f, op_watch, &flags, -EMFILE), SITE(EV__FAULT_WATCHER_ALLOC));
        cr_assert(fd_readable(ev_watcher_get_fd(first)));
        ev_watcher_close(first);
        fixture_finish(&f);
}

Test(fault, consuming_never_allocates) {
        struct fixture f;

        fixture_init(&f);
        cr_assert_eq(walk_faults(&f, op_consume, watch_or_fail(f.v), -EMFILE), 0);
        fixture_finish(&f);
}

/* The walks above between them fail every site there is. */
Test(fault, every_site_is_walked) {
        unsigned walked = SITE(EV__FAULT_VALUE_ALLOC) | SITE(EV__FAULT_SNAPSHOT_ALLOC) |
                          SITE(EV__FAULT_WATCHER_ALLOC) | SITE(EV__FAULT_EVENTFD);
        struct fixture f;

        cr_assert_eq(walked, ALL_SITES, "a fault site has no walk in this file");
        /* And the switch really reaches the library: with every call failing
         * from the first, nothing can be created. */
        fixture_init(&f);
        ev__fault_arm(1, -EMFILE);
        peek_string_or_fail(f.v, 1, "before");
        cr_assert_eq(ev__fault_calls(EV__FAULT_VALUE_ALLOC), 0);
        cr_assert_eq(ev_value_set(f.v, "x", 2), -ENOMEM);
        cr_assert_eq(ev__fault_calls(EV__FAULT_SNAPSHOT_ALLOC), 1);
        ev__fault_arm(0, 0);
        fixture_finish(&f);
}
