/* SPDX-License-Identifier: MIT */
/*
 * A libFuzzer harness that drives the whole public API of libevvalue against
 * a reference model and traps on the first broken rule of its man pages
 * (libevvalue(7) and the section 3 pages it lists): versions, which version a watcher's get
 * returns, every return code, the readiness of every watcher's eventfd after
 * every operation (an own eventfd exactly when a get would not give -EAGAIN,
 * its counter never above 1; the shared one from its first write on), the
 * bytes of every snapshot (checked when taken and again when released), and
 * that each adopted buffer is destroyed exactly once, only after its last
 * reference; each input releases everything it made.  The input is a
 * sequence of 4-byte records [op | thread << 5] [a] [b] [c]; a trailing
 * partial record is ignored.  op (mod 21) is one of the OP_* below, thread
 * (mod 3) says who runs it: 0 the fuzzer's thread, 1 and 2 two workers that
 * run strictly in turn with it, so that references and the lock-free get
 * cross threads while every run stays deterministic.  a, b and c are the
 * operands listed at enum op_code; an index names a value slot (mod 3), a
 * watcher slot (mod 6) or a held snapshot slot (mod 8), and an operation on
 * an empty slot does nothing.  tests/fuzz/make-seeds.py writes the seed
 * corpus in this encoding.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* pipe2 */
#endif
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ev-value.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define N_SLOTS 3               /* values the input can name at once */
#define N_MODELS 8              /* values created per input */
#define N_WATCHERS 6
#define N_HELD 8                /* snapshot references the harness holds */
#define N_OWNED 64              /* adopted buffers per input */
#define N_THREADS 3             /* the fuzzer's thread and two workers */
#define MAX_REFS 16             /* references the harness holds on one value */
#define SMALL_MAX 4096
#define BIG_SIZE ((size_t)1 << 20)
#define STATIC_SEED 0x5a        /* bytes of the buffer adopted without destroy */
#define NOT_OPEN_FD INT_MAX     /* above any possible fd number */

/* Never dereferenced: they show that an output parameter was not written. */
#define SENTINEL_SNAP ((ev_value_snapshot *)(uintptr_t)0x5e5e0)
#define SENTINEL_WATCHER ((ev_value_watcher *)(uintptr_t)0x5e5f0)
#define SENTINEL_VALUE ((ev_value *)(uintptr_t)0x5e600)

enum op_code {
        OP_NEW,         /* a: value slot (must be empty) */
        OP_SET,         /* a: value, b: size class, c: data seed */
        OP_SET_OWNED,   /* a: value, b: variant | size << 2, c: data seed */
        OP_GET,         /* a: value, b: held slot for the peeked snapshot */
        OP_VERSION,     /* a: value */
        OP_CLOSE,       /* a: value */
        OP_REF,         /* a: value */
        OP_UNREF,       /* a: value */
        OP_WATCH,       /* a: watcher slot, b: value, c: flags selector */
        OP_WGET,        /* a: watcher, b: held slot */
        OP_WAIT,        /* a: watcher, b: held slot, c: cancel | timeout << 3 */
        OP_WCLOSE,      /* a: watcher */
        OP_SREF,        /* a: held slot to copy, b: held slot to fill */
        OP_SUNREF,      /* a: held slot */
        OP_CANCEL,      /* a: odd signals the cancel eventfd, even drains it */
        OP_BAD,         /* a: group of bad calls, b: value or watcher, c: size */
        OP_SET_BIG,     /* a: value, c: data seed; 1 MiB, once per input */
        OP_CHECK_HELD,  /* a: held slot, re-checked without releasing it */
        OP_SET_IF_CHANGED, /* as OP_SET, with EV_VALUE_SET_IF_CHANGED */
        OP_UPDATE,      /* a: value, b: size class, c: seed; c % 3: set, keep, fail */
        OP_WAIT_UNTIL,  /* a: watcher, b: held slot, c: lowest version accepted */
        N_OPS
};

struct op {
        unsigned code, thread;
        uint8_t a, b, c;
};

/* What a version was set with; its bytes are regenerated from the seed. */
struct version_rec {
        size_t size;
        uint8_t seed;
        bool adopted;           /* set_owned: the snapshot shows ptr itself */
        const void *ptr;
};

struct value_model {
        ev_value *v;            /* NULL once the harness holds no reference */
        unsigned refs;          /* references the harness holds */
        unsigned watchers;      /* open watchers, each holding one more */
        bool closed;
        uint64_t version;
        unsigned n_shared;      /* open shared-fd watchers */
        int shared_fd;          /* the value's shared eventfd; -1 before */
        bool shared_written;    /* it was written: readable for good */
        struct version_rec *hist; /* hist[n - 1] describes version n */
        size_t hist_cap;
};

struct watcher_model {
        ev_value_watcher *w;    /* NULL: a free slot */
        struct value_model *vm;
        bool shared;
        int fd;
        uint64_t last;          /* the version its last successful get gave */
};

struct held {
        ev_value_snapshot *s;   /* NULL: a free slot */
        struct value_model *vm;
        uint64_t version;
};

struct owned_rec {
        void *data;
        size_t size;
        uint8_t seed;
        struct value_model *vm;
        uint64_t version;
        bool published;         /* the set succeeded: destroy is owed */
        unsigned destroyed;
};

static struct model {
        struct value_model values[N_MODELS];
        unsigned n_values;
        struct value_model *slot[N_SLOTS]; /* only values with refs > 0 */
        struct watcher_model watchers[N_WATCHERS];
        struct held held[N_HELD];
        struct owned_rec owned[N_OWNED];
        unsigned n_owned;
        bool cancel_readable;
        bool big_done;
} m;

static uint8_t scratch[SMALL_MAX];
static uint8_t *big_buf;        /* the source of 1 MiB sets, kept: no page faults */
static uint8_t static_buf[64];  /* adopted with a NULL destroy */
static struct owned_rec never;  /* userdata of calls that must not adopt */
static int cancel_efd = -1;     /* a cancel fd the input turns on and off */
static int hup_fd = -1;         /* a pipe whose writer is gone: always POLLHUP */

__attribute__((noreturn, format(printf, 2, 3)))
static void fail(int line, const char *fmt, ...) {
        va_list ap;

        fprintf(stderr, "fuzz-api.c:%d: rule broken: ", line);
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

/* ------------------------------------------------------------ data */

/* The byte loops below are the hot spot of a 1 MiB set; their edges and
 * comparisons tell libFuzzer nothing, so they are left uninstrumented (and
 * not inlined, which would instrument them in the caller). */
#ifdef __clang__
#define NO_COVERAGE __attribute__((no_sanitize("coverage"), noinline))
#else
#define NO_COVERAGE
#endif

/* A version's bytes are a xorshift64 stream picked by one input byte: a
 * check regenerates them instead of keeping a copy of every version, and
 * the first n bytes do not depend on the total size, so the static buffer
 * serves every size up to its own.  Generated a block at a time so that
 * memcpy and memcmp (intercepted by ASan) run once per 4 KiB. */
struct stream {
        uint64_t x;
        uint64_t block[512];
};

NO_COVERAGE static void stream_start(struct stream *st, uint8_t seed) {
        /* Odd times non-zero: never the fixed point 0 of xorshift. */
        st->x = UINT64_C(0x9e3779b97f4a7c15) * ((uint64_t)seed + 1);
}

/* The next n <= sizeof(block) bytes of the stream, in st->block. */
NO_COVERAGE static void stream_next(struct stream *st, size_t n) {
        size_t i;

        for (i = 0; i < (n + 7) / 8; i++) {
                st->x ^= st->x << 13;
                st->x ^= st->x >> 7;
                st->x ^= st->x << 17;
                st->block[i] = st->x;
        }
}

NO_COVERAGE static void fill(void *buf, size_t size, uint8_t seed) {
        struct stream st;
        size_t off, n;

        stream_start(&st, seed);
        for (off = 0; off < size; off += n) {
                n = size - off < sizeof(st.block) ? size - off : sizeof(st.block);
                stream_next(&st, n);
                memcpy((uint8_t *)buf + off, st.block, n);
        }
}

NO_COVERAGE static bool matches(const void *data, size_t size, uint8_t seed) {
        struct stream st;
        size_t off, n;

        stream_start(&st, seed);
        for (off = 0; off < size; off += n) {
                n = size - off < sizeof(st.block) ? size - off : sizeof(st.block);
                stream_next(&st, n);
                if (memcmp((const uint8_t *)data + off, st.block, n) != 0)
                        return false;
        }
        return true;
}

/* ------------------------------------------------------------ model */

static bool object_alive(const struct value_model *vm) {
        return vm->refs > 0 || vm->watchers > 0;
}

/* ev_watcher_get would return a snapshot. */
static bool unseen(const struct watcher_model *wm) {
        return wm->vm->version > wm->last;
}

/* ev_watcher_get would not return -EAGAIN: readiness as libevvalue(7)
 * defines it ("The state of a watcher"). */
static bool ready(const struct watcher_model *wm) {
        return unseen(wm) || wm->vm->closed;
}

static struct value_model *value_at(uint8_t i) {
        return m.slot[i % N_SLOTS];
}

static struct watcher_model *watcher_at(uint8_t i) {
        struct watcher_model *wm = &m.watchers[i % N_WATCHERS];

        return wm->w ? wm : NULL;
}

static void push_version(struct value_model *vm, size_t size, uint8_t seed, bool adopted,
                         const void *ptr) {
        if (vm->version == vm->hist_cap) {
                size_t cap = vm->hist_cap ? 2 * vm->hist_cap : 16;
                struct version_rec *h = realloc(vm->hist, cap * sizeof(*h));

                CHECK(h, "harness out of memory");
                vm->hist = h;
                vm->hist_cap = cap;
        }
        vm->hist[vm->version++] = (struct version_rec){ size, seed, adopted, ptr };
}

/* s must be version `version` of vm, with exactly the bytes set then. */
static void check_snapshot(const ev_value_snapshot *s, const struct value_model *vm,
                           uint64_t version) {
        const struct version_rec *r;
        const void *data = ev_snapshot_data(s);

        CHECK(version >= 1 && version <= vm->version, "snapshot of unknown version %" PRIu64,
              version);
        r = &vm->hist[version - 1];
        CHECK(ev_snapshot_version(s) == version, "snapshot version %" PRIu64 ", want %" PRIu64,
              ev_snapshot_version(s), version);
        CHECK(ev_snapshot_size(s) == r->size, "version %" PRIu64 " has size %zu, was set with %zu",
              version, ev_snapshot_size(s), r->size);
        if (r->adopted)
                CHECK(data == r->ptr, "set_owned snapshot shows %p, not the adopted %p", data,
                      r->ptr);
        else if (r->size > 0)
                CHECK(data && (uintptr_t)data % _Alignof(max_align_t) == 0,
                      "copied bytes at %p are not aligned for any type", data);
        CHECK(matches(data, r->size, r->seed), "bytes of version %" PRIu64 " changed", version);
}

/* An adopted buffer is referenced by its value while it is current and the
 * value object lives, and by every held snapshot of its version. */
static bool owned_alive(const struct owned_rec *rec) {
        const struct value_model *vm = rec->vm;
        size_t i;

        if (object_alive(vm) && vm->version == rec->version)
                return true;
        for (i = 0; i < N_HELD; i++)
                if (m.held[i].s && m.held[i].vm == vm && m.held[i].version == rec->version)
                        return true;
        return false;
}

static void owned_destroy(void *data, void *userdata) {
        struct owned_rec *rec = userdata;

        CHECK(rec->published, "destroy ran for a set that failed");
        CHECK(rec->destroyed == 0, "destroy ran twice for %p", data);
        CHECK(data == rec->data, "destroy got %p, not the adopted %p", data, rec->data);
        CHECK(matches(data, rec->size, rec->seed), "adopted bytes changed before destroy");
        rec->destroyed++;
        free(data);
}

/* ------------------------------------------------------------ held snapshots */

static void release_held(struct held *h) {
        if (!h->s)
                return;
        /* Checked again on release: immutable whatever happened since. */
        check_snapshot(h->s, h->vm, h->version);
        CHECK(ev_snapshot_unref(h->s) == NULL, "ev_snapshot_unref did not return NULL");
        h->s = NULL;
}

static void store_held(uint8_t i, ev_value_snapshot *s, struct value_model *vm,
                       uint64_t version) {
        struct held *h = &m.held[i % N_HELD];

        release_held(h);
        *h = (struct held){ s, vm, version };
}

/* r and s are what a get or wait on wm gave; the model says what they must
 * be: the newest version if unseen, else -EPIPE or -EAGAIN. */
static void expect_take(struct watcher_model *wm, int r, ev_value_snapshot *s, uint8_t slot) {
        struct value_model *vm = wm->vm;

        if (!unseen(wm)) {
                CHECK(s == SENTINEL_SNAP, "failed get wrote its output");
                CHECK(r == (vm->closed ? -EPIPE : -EAGAIN),
                      "get gave %d with nothing new (closed %d, version %" PRIu64 ")", r,
                      vm->closed, vm->version);
                return;
        }
        CHECK(r == 0, "get gave %d, want version %" PRIu64 " (last %" PRIu64 ")", r,
              vm->version, wm->last);
        CHECK(ev_snapshot_version(s) == vm->version,
              "get gave version %" PRIu64 ", the newest is %" PRIu64, ev_snapshot_version(s),
              vm->version);
        check_snapshot(s, vm, vm->version);
        wm->last = vm->version;
        store_held(slot, s, vm, vm->version);
}

/* ------------------------------------------------------------ values */

static void op_new(const struct op *op) {
        struct value_model *vm;
        ev_value *v = SENTINEL_VALUE;

        if (m.slot[op->a % N_SLOTS] || m.n_values == N_MODELS)
                return;
        vm = &m.values[m.n_values++];
        CHECK(ev_value_new(&v) == 0, "ev_value_new failed");
        CHECK(v && v != SENTINEL_VALUE, "ev_value_new gave no value");
        CHECK(ev_value_get_version(v) == 0, "a new value has a version");
        vm->v = v;
        vm->refs = 1;
        vm->shared_fd = -1;
        m.slot[op->a % N_SLOTS] = vm;
}

/* 0, 1, 2..65, or a multiple of 64 up to 4 KiB. */
static size_t small_size(uint8_t b) {
        switch (b & 3) {
        case 0:
                return 0;
        case 1:
                return 1;
        case 2:
                return 2 + (size_t)(b >> 2);
        default:
                return ((size_t)(b >> 2) + 1) * 64;
        }
}

static void expect_set(struct value_model *vm, int r, size_t size, uint8_t seed, bool adopted,
                       const void *ptr) {
        if (vm->closed) {
                CHECK(r == -EPIPE, "set on a closed value gave %d", r);
                return;
        }
        CHECK(r == 0, "set gave %d", r);
        push_version(vm, size, seed, adopted, ptr);
        if (vm->n_shared > 0)
                vm->shared_written = true;
}

static void op_set(const struct op *op) {
        struct value_model *vm = value_at(op->a);
        size_t size = small_size(op->b);
        const void *data = scratch;

        if (!vm)
                return;
        fill(scratch, size, op->c);
        if (size == 0 && (op->b & 4))
                data = NULL; /* allowed for an empty value */
        expect_set(vm, ev_value_set(vm->v, data, size), size, op->c, false, NULL);
        /* A set copies: scribbling over the source must not show. */
        memset(scratch, 0xa5, size);
}

/* Whether v's current snapshot holds exactly size bytes of data; the
 * snapshot itself is checked against the model by every get. */
static bool current_holds(ev_value *v, const void *data, size_t size) {
        ev_value_snapshot *s;
        bool same;

        if (ev_value_get(v, &s) < 0)
                return false;
        same = ev_snapshot_size(s) == size &&
               (size == 0 || memcmp(ev_snapshot_data(s), data, size) == 0);
        ev_snapshot_unref(s);
        return same;
}

/* A set of the current bytes is skipped: 0, no version, no wake-up. */
static void op_set_if_changed(const struct op *op) {
        struct value_model *vm = value_at(op->a);
        size_t size = small_size(op->b);
        bool same;
        int r;

        if (!vm)
                return;
        fill(scratch, size, op->c);
        same = !vm->closed && current_holds(vm->v, scratch, size);
        r = ev_value_set_flags(vm->v, scratch, size, EV_VALUE_SET_IF_CHANGED);
        if (same)
                CHECK(r == 0, "a set of the current bytes gave %d, not 0 (skipped)", r);
        else
                expect_set(vm, r == 1 ? 0 : r, size, op->c, false, NULL);
}

struct update_call {
        const struct value_model *vm;
        size_t size;
        uint8_t seed;
        int result;             /* what the function returns */
        bool called;
};

/* The function of ev_value_update: sees the current snapshot (NULL before
 * the first set) and offers size bytes of seed. */
static int update_fn(const ev_value_snapshot *current, void *userdata, const void **ret_data,
                     size_t *ret_size) {
        struct update_call *u = userdata;

        u->called = true;
        if (u->vm->version == 0)
                CHECK(!current, "update of a never-set value saw a snapshot");
        else
                check_snapshot(current, u->vm, u->vm->version);
        fill(scratch, u->size, u->seed);
        *ret_data = scratch;
        *ret_size = u->size;
        return u->result;
}

static void op_update(const struct op *op) {
        static const int results[] = { 1, 0, -ECANCELED };
        struct value_model *vm = value_at(op->a);
        struct update_call u;
        int r;

        if (!vm)
                return;
        u = (struct update_call){ vm, small_size(op->b), op->c, results[op->c % 3], false };
        r = ev_value_update(vm->v, update_fn, &u);
        if (vm->closed) {
                CHECK(r == -EPIPE && !u.called, "update of a closed value gave %d", r);
                return;
        }
        CHECK(u.called, "update did not call its function");
        if (u.result == 1)
                expect_set(vm, r == 1 ? 0 : r, u.size, u.seed, false, NULL);
        else
                CHECK(r == u.result, "update whose function gave %d returned %d", u.result, r);
}

/* Rare and once per input, so that executions stay fast. */
static void op_set_big(const struct op *op) {
        struct value_model *vm = value_at(op->a);

        if (!vm || m.big_done)
                return;
        m.big_done = true;
        fill(big_buf, BIG_SIZE, op->c);
        expect_set(vm, ev_value_set(vm->v, big_buf, BIG_SIZE), BIG_SIZE, op->c, false, NULL);
        memset(big_buf, 0xa5, BIG_SIZE);
}

/* A buffer nobody frees, adopted with a NULL destroy. */
static void set_owned_static(struct value_model *vm, size_t size) {
        int r = ev_value_set_owned(vm->v, static_buf, size, NULL, NULL);

        expect_set(vm, r, size, STATIC_SEED, true, static_buf);
}

/* Variants: 0 malloc'ed 0..63 bytes, 1 NULL and 0 bytes, 2 the static
 * buffer without destroy, 3 malloc'ed 64..4096 bytes. */
static void op_set_owned(const struct op *op) {
        struct value_model *vm = value_at(op->a);
        unsigned variant = op->b & 3;
        size_t size = (size_t)(op->b >> 2);
        struct owned_rec *rec;
        int r;

        if (!vm)
                return;
        if (variant == 2) {
                set_owned_static(vm, size);
                return;
        }
        if (m.n_owned == N_OWNED)
                return;
        rec = &m.owned[m.n_owned++];
        rec->size = variant == 1 ? 0 : variant == 3 ? (size + 1) * 64 : size;
        rec->seed = op->c;
        rec->vm = vm;
        if (variant != 1) {
                rec->data = malloc(rec->size ? rec->size : 1);
                CHECK(rec->data, "harness out of memory");
                fill(rec->data, rec->size, rec->seed);
        }
        r = ev_value_set_owned(vm->v, rec->data, rec->size, owned_destroy, rec);
        expect_set(vm, r, rec->size, rec->seed, true, rec->data);
        if (r < 0) {
                free(rec->data); /* a failed set leaves the buffer ours */
                return;
        }
        rec->version = vm->version;
        rec->published = true;
}

static void op_get(const struct op *op) {
        struct value_model *vm = value_at(op->a);
        ev_value_snapshot *s = SENTINEL_SNAP;
        int r;

        if (!vm)
                return;
        r = ev_value_get(vm->v, &s);
        if (vm->version == 0) {
                CHECK(r == -EAGAIN && s == SENTINEL_SNAP, "get of a never set value gave %d", r);
                return;
        }
        CHECK(r == 0, "ev_value_get gave %d (closed %d)", r, vm->closed);
        check_snapshot(s, vm, vm->version);
        store_held(op->b, s, vm, vm->version);
}

static void op_version(const struct op *op) {
        struct value_model *vm = value_at(op->a);

        if (vm)
                CHECK(ev_value_get_version(vm->v) == vm->version,
                      "version %" PRIu64 ", want %" PRIu64, ev_value_get_version(vm->v),
                      vm->version);
}

static void op_close(const struct op *op) {
        struct value_model *vm = value_at(op->a);

        if (!vm)
                return;
        CHECK(ev_value_close(vm->v) == 0, "ev_value_close failed"); /* idempotent */
        vm->closed = true;
        if (vm->n_shared > 0)
                vm->shared_written = true;
}

static void op_ref(const struct op *op) {
        struct value_model *vm = value_at(op->a);

        if (!vm || vm->refs >= MAX_REFS)
                return;
        CHECK(ev_value_ref(vm->v) == vm->v, "ev_value_ref did not return its value");
        vm->refs++;
}

/* The last reference the harness holds goes: the slot empties, and the
 * object lives on only inside its watchers. */
static void op_unref(const struct op *op) {
        struct value_model *vm = value_at(op->a);

        if (!vm)
                return;
        CHECK(ev_value_unref(vm->v) == NULL, "ev_value_unref did not return NULL");
        if (--vm->refs > 0)
                return;
        vm->v = NULL;
        m.slot[op->a % N_SLOTS] = NULL;
}

/* ------------------------------------------------------------ watchers */

static void close_watcher(struct watcher_model *wm) {
        if (!wm->w)
                return;
        CHECK(ev_watcher_close(wm->w) == NULL, "ev_watcher_close did not return NULL");
        wm->w = NULL;
        wm->vm->watchers--;
        if (wm->shared)
                wm->vm->n_shared--;
}

/* Own eventfds are distinct; shared-fd watchers of one value share one. */
static void check_new_fd(const struct watcher_model *wm) {
        size_t i;

        CHECK(wm->fd >= 0, "watcher fd %d", wm->fd);
        CHECK(wm->fd != cancel_efd && wm->fd != hup_fd, "watcher got the harness's fd");
        for (i = 0; i < N_WATCHERS; i++) {
                const struct watcher_model *o = &m.watchers[i];

                if (!o->w || o == wm)
                        continue;
                if (wm->shared && o->shared && o->vm == wm->vm)
                        CHECK(o->fd == wm->fd, "shared-fd watchers of one value differ");
                else
                        CHECK(o->fd != wm->fd, "two unrelated watchers share fd %d", wm->fd);
        }
}

/* The shared eventfd is made by the first shared-fd watch and lives as
 * long as the value; a watch of a value already set or closed makes it
 * readable (ev_value_watch(3)). */
static void watched_shared(struct watcher_model *wm) {
        struct value_model *vm = wm->vm;

        if (vm->shared_fd < 0)
                vm->shared_fd = wm->fd;
        CHECK(wm->fd == vm->shared_fd, "shared eventfd changed from %d to %d", vm->shared_fd,
              wm->fd);
        vm->n_shared++;
        if (vm->version > 0 || vm->closed)
                vm->shared_written = true;
}

/* c & 3: 0 and 3 own fd, 1 shared fd, 2 an undefined flag; with c & 0x40,
 * a defined choice also skips the current snapshot. */
static unsigned watch_flags(uint8_t c, bool *valid) {
        unsigned skip = c & 0x40 ? EV_VALUE_WATCH_SKIP_CURRENT : 0;

        *valid = true;
        switch (c & 3) {
        case 1:
                return EV_VALUE_WATCH_SHARED_FD | skip;
        case 2:
                *valid = false;
                return 1u << (2 + (c >> 2) % 30) | (c & 0x80 ? EV_VALUE_WATCH_SHARED_FD : 0);
        default:
                return skip;
        }
}

static void op_watch(const struct op *op) {
        struct value_model *vm = value_at(op->b);
        struct watcher_model *wm = &m.watchers[op->a % N_WATCHERS];
        ev_value_watcher *w = SENTINEL_WATCHER;
        bool valid;
        unsigned flags = watch_flags(op->c, &valid);
        int r;

        if (!vm)
                return;
        if (!valid) {
                r = ev_value_watch(vm->v, flags, &w);
                CHECK(r == -EINVAL && w == SENTINEL_WATCHER, "watch flags %#x gave %d", flags, r);
                return;
        }
        close_watcher(wm);
        r = ev_value_watch(vm->v, flags, &w);
        CHECK(r == 0, "ev_value_watch gave %d", r);
        CHECK(w && w != SENTINEL_WATCHER, "ev_value_watch gave no watcher");
        /* Skipping the current snapshot is having seen it. */
        *wm = (struct watcher_model){ w, vm, (flags & EV_VALUE_WATCH_SHARED_FD) != 0,
                                      ev_watcher_get_fd(w),
                                      flags & EV_VALUE_WATCH_SKIP_CURRENT ? vm->version : 0 };
        vm->watchers++;
        check_new_fd(wm);
        if (wm->shared)
                watched_shared(wm);
}

static void op_wget(const struct op *op) {
        struct watcher_model *wm = watcher_at(op->a);
        ev_value_snapshot *s = SENTINEL_SNAP;
        int r;

        if (!wm)
                return;
        r = ev_watcher_get(wm->w, &s); /* before s is read */
        expect_take(wm, r, s, op->b);
}

struct cancel {
        int fd;
        bool readable;
        bool not_open;  /* -EBADF */
        bool invalid;   /* below -1: -EINVAL */
};

/* c & 7: 1 the harness's eventfd, 2 the hung-up pipe, 3 a closed fd number,
 * 4 and 5 invalid numbers, else -1. */
static struct cancel pick_cancel(uint8_t c) {
        switch (c & 7) {
        case 1:
                return (struct cancel){ cancel_efd, m.cancel_readable, false, false };
        case 2:
                return (struct cancel){ hup_fd, true, false, false };
        case 3:
                return (struct cancel){ NOT_OPEN_FD, false, true, false };
        case 4:
                return (struct cancel){ -2, false, false, true };
        case 5:
                return (struct cancel){ INT_MIN, false, false, true };
        default:
                return (struct cancel){ -1, false, false, false };
        }
}

/* (c >> 3) & 3: 1 forever, 2 INT_MAX ms, else 0; a long timeout only when
 * the model says the wait returns at once, so no input can block. */
static int pick_timeout(const struct watcher_model *wm, const struct cancel *k, uint8_t c) {
        bool immediate = ready(wm) || k->readable || k->not_open || k->invalid || wm->shared;

        if (!immediate)
                return 0;
        switch ((c >> 3) & 3) {
        case 1:
                return -1;
        case 2:
                return INT_MAX;
        default:
                return 0;
        }
}

static void op_wait(const struct op *op) {
        struct watcher_model *wm = watcher_at(op->a);
        ev_value_snapshot *s = SENTINEL_SNAP;
        struct cancel k;
        int r;

        if (!wm)
                return;
        k = pick_cancel(op->c);
        r = ev_watcher_wait(wm->w, pick_timeout(wm, &k, op->c), k.fd, &s);
        if (k.invalid || wm->shared) {
                /* -EINVAL for a bad cancel fd, -EOPNOTSUPP on a shared-fd
                 * watcher (ev_watcher_wait(3)); either is accepted when
                 * both apply. */
                CHECK(s == SENTINEL_SNAP, "failed wait wrote its output");
                CHECK((k.invalid && r == -EINVAL) || (wm->shared && r == -EOPNOTSUPP),
                      "wait (cancel fd %d, shared %d) gave %d", k.fd, wm->shared, r);
                return;
        }
        if (k.not_open && r == -EBADF) {
                CHECK(s == SENTINEL_SNAP, "failed wait wrote its output");
                return;
        }
        if (ready(wm)) {
                expect_take(wm, r, s, op->b); /* precedes cancel and timeout */
                return;
        }
        CHECK(s == SENTINEL_SNAP, "failed wait wrote its output");
        CHECK(!k.not_open, "wait with a closed cancel fd gave %d", r);
        CHECK(r == (k.readable ? -ECANCELED : -ETIMEDOUT),
              "wait with nothing new (cancel readable %d) gave %d", k.readable, r);
}

static bool accept_from(const ev_value_snapshot *s, void *userdata) {
        return ev_snapshot_version(s) >= *(const uint64_t *)userdata;
}

/* With timeout 0: the unseen snapshot if accepted; a rejected one is
 * consumed, then -EPIPE if it was a closed value's last, else -ETIMEDOUT. */
static void op_wait_until(const struct op *op) {
        struct watcher_model *wm = watcher_at(op->a);
        ev_value_snapshot *s = SENTINEL_SNAP;
        uint64_t from = op->c;
        int r;

        if (!wm)
                return;
        r = ev_watcher_wait_until(wm->w, accept_from, &from, 0, -1, &s);
        if (wm->shared) {
                CHECK(r == -EOPNOTSUPP && s == SENTINEL_SNAP, "wait_until on a shared fd gave %d",
                      r);
                return;
        }
        if (unseen(wm) && wm->vm->version >= from) {
                expect_take(wm, r, s, op->b);
                return;
        }
        if (unseen(wm))
                wm->last = wm->vm->version; /* rejected: consumed */
        CHECK(s == SENTINEL_SNAP, "failed wait_until wrote its output");
        CHECK(r == (wm->vm->closed ? -EPIPE : -ETIMEDOUT),
              "wait_until with nothing accepted (closed %d) gave %d", wm->vm->closed, r);
}

static void op_wclose(const struct op *op) {
        struct watcher_model *wm = watcher_at(op->a);

        if (wm)
                close_watcher(wm);
}

/* ------------------------------------------------------------ snapshots, cancel fd */

static void op_sref(const struct op *op) {
        struct held *src = &m.held[op->a % N_HELD];
        struct held *dst = &m.held[op->b % N_HELD];

        if (!src->s || src == dst)
                return;
        release_held(dst);
        CHECK(ev_snapshot_ref(src->s) == src->s, "ev_snapshot_ref did not return its snapshot");
        *dst = *src;
}

static void op_sunref(const struct op *op) {
        release_held(&m.held[op->a % N_HELD]);
}

static void op_check_held(const struct op *op) {
        struct held *h = &m.held[op->a % N_HELD];

        if (h->s)
                check_snapshot(h->s, h->vm, h->version);
}

static void op_cancel(const struct op *op) {
        uint64_t n = 1;

        if (op->a & 1) {
                CHECK(write(cancel_efd, &n, sizeof(n)) == sizeof(n), "harness eventfd write");
                m.cancel_readable = true;
        } else {
                /* Draining an empty eventfd fails with EAGAIN: fine. */
                ssize_t got = read(cancel_efd, &n, sizeof(n));

                (void)got;
                m.cancel_readable = false;
        }
}

/* ------------------------------------------------------------ bad arguments */

/* Every function with a NULL object; the accessors tolerate NULL. */
static void bad_null_objects(void) {
        ev_value_snapshot *s = SENTINEL_SNAP;
        ev_value_watcher *w = SENTINEL_WATCHER;

        CHECK(ev_value_new(NULL) == -EINVAL, "ev_value_new(NULL)");
        CHECK(ev_value_set(NULL, scratch, 4) == -EINVAL, "ev_value_set(NULL)");
        CHECK(ev_value_set(NULL, NULL, 0) == -EINVAL, "ev_value_set(NULL, NULL, 0)");
        CHECK(ev_value_set_owned(NULL, scratch, 4, owned_destroy, &never) == -EINVAL,
              "ev_value_set_owned(NULL)");
        CHECK(ev_value_get(NULL, &s) == -EINVAL && s == SENTINEL_SNAP, "ev_value_get(NULL)");
        CHECK(ev_value_close(NULL) == -EINVAL, "ev_value_close(NULL)");
        CHECK(ev_value_watch(NULL, 0, &w) == -EINVAL && w == SENTINEL_WATCHER,
              "ev_value_watch(NULL)");
        CHECK(ev_watcher_get(NULL, &s) == -EINVAL && s == SENTINEL_SNAP, "ev_watcher_get(NULL)");
        CHECK(ev_watcher_wait(NULL, 0, -1, &s) == -EINVAL && s == SENTINEL_SNAP,
              "ev_watcher_wait(NULL)");
        CHECK(ev_watcher_get_fd(NULL) == -EINVAL, "ev_watcher_get_fd(NULL)");
        CHECK(ev_watcher_close(NULL) == NULL, "ev_watcher_close(NULL)");
        CHECK(ev_value_get_version(NULL) == 0, "ev_value_get_version(NULL)");
        CHECK(ev_value_ref(NULL) == NULL && ev_value_unref(NULL) == NULL, "value ref(NULL)");
        CHECK(ev_snapshot_data(NULL) == NULL && ev_snapshot_size(NULL) == 0 &&
                      ev_snapshot_version(NULL) == 0,
              "snapshot accessors of NULL");
        CHECK(ev_snapshot_ref(NULL) == NULL && ev_snapshot_unref(NULL) == NULL,
              "snapshot ref(NULL)");
}

/* A live value with NULL data of a non-zero size or a NULL output. */
static void bad_value_args(struct value_model *vm, uint8_t c) {
        size_t size = 1 + (size_t)c;

        CHECK(ev_value_set(vm->v, NULL, size) == -EINVAL, "ev_value_set(NULL data, %zu)", size);
        CHECK(ev_value_set_owned(vm->v, NULL, size, owned_destroy, &never) == -EINVAL,
              "ev_value_set_owned(NULL data, %zu)", size);
        CHECK(ev_value_get(vm->v, NULL) == -EINVAL, "ev_value_get(v, NULL)");
        CHECK(ev_value_watch(vm->v, 0, NULL) == -EINVAL, "ev_value_watch(v, 0, NULL)");
        CHECK(ev_value_watch(vm->v, EV_VALUE_WATCH_SHARED_FD, NULL) == -EINVAL,
              "ev_value_watch(v, SHARED_FD, NULL)");
}

static bool einval_or_shared(const struct watcher_model *wm, int r) {
        return r == -EINVAL || (wm->shared && r == -EOPNOTSUPP);
}

/* A live watcher with a NULL output or a cancel fd below -1. */
static void bad_watcher_args(struct watcher_model *wm, uint8_t c) {
        ev_value_snapshot *s = SENTINEL_SNAP;
        int cancel_fd = c == 255 ? INT_MIN : -2 - (int)c;
        int r;

        CHECK(ev_watcher_get(wm->w, NULL) == -EINVAL, "ev_watcher_get(w, NULL)");
        r = ev_watcher_wait(wm->w, 0, -1, NULL);
        CHECK(einval_or_shared(wm, r), "ev_watcher_wait(w, NULL) gave %d", r);
        r = ev_watcher_wait(wm->w, 0, cancel_fd, &s);
        CHECK(einval_or_shared(wm, r) && s == SENTINEL_SNAP, "wait with cancel fd %d gave %d",
              cancel_fd, r);
}

/* a % 3: which group; the checks after the op prove nothing changed. */
static void op_bad(const struct op *op) {
        struct value_model *vm = value_at(op->b);
        struct watcher_model *wm = watcher_at(op->b);

        switch (op->a % 3) {
        case 0:
                bad_null_objects();
                break;
        case 1:
                if (vm)
                        bad_value_args(vm, op->c);
                break;
        default:
                if (wm)
                        bad_watcher_args(wm, op->c);
                break;
        }
}

/* ------------------------------------------------------------ checks after every op */

static bool fd_readable(int fd) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 0);

        CHECK(r >= 0, "poll failed: %s", strerror(errno));
        return r > 0 && (p.revents & POLLIN);
}

static void check_values(void) {
        unsigned i;

        for (i = 0; i < m.n_values; i++) {
                const struct value_model *vm = &m.values[i];

                if (!vm->v)
                        continue;
                CHECK(ev_value_get_version(vm->v) == vm->version,
                      "value version %" PRIu64 ", want %" PRIu64,
                      ev_value_get_version(vm->v), vm->version);
                CHECK(ev_value_get_watcher_count(vm->v) == vm->watchers,
                      "watcher count %zu, want %u", ev_value_get_watcher_count(vm->v),
                      (unsigned)vm->watchers);
        }
}

/* An eventfd's counter, from /proc: libevvalue(7) "Cost" says a set
 * writes an own eventfd at most once per unconsumed update. */
static uint64_t eventfd_count(int fd) {
        char path[64], line[128];
        unsigned long long count = UINT64_MAX;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/self/fdinfo/%d", fd);
        f = fopen(path, "re");
        CHECK(f, "%s: %s", path, strerror(errno));
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "eventfd-count: %llx", &count) == 1)
                        break;
        fclose(f);
        CHECK(count != UINT64_MAX, "%s has no eventfd-count", path);
        return count;
}

/* An own eventfd is readable exactly when the model says get would not
 * give -EAGAIN, with a counter of at most 1; the shared one from its first
 * write on. */
static void check_watcher(const struct watcher_model *wm, size_t i) {
        bool is, want = wm->shared ? wm->vm->shared_written : ready(wm);

        CHECK(ev_watcher_get_fd(wm->w) == wm->fd, "watcher fd changed");
        is = fd_readable(wm->fd);
        CHECK(is == want,
              "watcher %zu (shared %d) readable %d, want %d: version %" PRIu64 ", last %" PRIu64
              ", closed %d",
              i, wm->shared, is, want, wm->vm->version, wm->last, wm->vm->closed);
        if (is && !wm->shared)
                CHECK(eventfd_count(wm->fd) == 1, "watcher %zu: eventfd counter %" PRIu64, i,
                      eventfd_count(wm->fd));
}

static void check_watchers(void) {
        size_t i;

        for (i = 0; i < N_WATCHERS; i++)
                if (m.watchers[i].w)
                        check_watcher(&m.watchers[i], i);
}

static void check_owned(void) {
        unsigned i;

        for (i = 0; i < m.n_owned; i++) {
                const struct owned_rec *rec = &m.owned[i];
                unsigned want;

                if (!rec->published)
                        continue;
                want = owned_alive(rec) ? 0 : 1;
                CHECK(rec->destroyed == want, "adopted buffer of version %" PRIu64
                      " destroyed %u times, want %u", rec->version, rec->destroyed, want);
        }
        CHECK(never.destroyed == 0, "destroy ran for a rejected set_owned");
}

static void check_all(void) {
        check_values();
        check_watchers();
        check_owned();
        /* The library never reads the caller's cancel fd. */
        CHECK(fd_readable(cancel_efd) == m.cancel_readable, "the cancel eventfd changed");
}

/* ------------------------------------------------------------ threads in turn */

static void exec_op(const struct op *op) {
        static void (*const table[N_OPS])(const struct op *) = {
                [OP_NEW] = op_new,
                [OP_SET] = op_set,
                [OP_SET_OWNED] = op_set_owned,
                [OP_GET] = op_get,
                [OP_VERSION] = op_version,
                [OP_CLOSE] = op_close,
                [OP_REF] = op_ref,
                [OP_UNREF] = op_unref,
                [OP_WATCH] = op_watch,
                [OP_WGET] = op_wget,
                [OP_WAIT] = op_wait,
                [OP_WCLOSE] = op_wclose,
                [OP_SREF] = op_sref,
                [OP_SUNREF] = op_sunref,
                [OP_CANCEL] = op_cancel,
                [OP_BAD] = op_bad,
                [OP_SET_BIG] = op_set_big,
                [OP_CHECK_HELD] = op_check_held,
                [OP_SET_IF_CHANGED] = op_set_if_changed,
                [OP_UPDATE] = op_update,
                [OP_WAIT_UNTIL] = op_wait_until,
        };

        table[op->code](op);
}

/* turn names the one thread allowed to run; the mutex hands the model
 * over with it, so the workers need no other synchronisation. */
static pthread_mutex_t turn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t turn_cond[N_THREADS] = {
        PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
};
static unsigned turn;
static const struct op *turn_op;

static void *worker_main(void *arg) {
        unsigned id = (unsigned)(uintptr_t)arg;

        pthread_mutex_lock(&turn_lock);
        for (;;) {
                while (turn != id)
                        pthread_cond_wait(&turn_cond[id], &turn_lock);
                pthread_mutex_unlock(&turn_lock);
                exec_op(turn_op);
                pthread_mutex_lock(&turn_lock);
                turn = 0;
                pthread_cond_signal(&turn_cond[0]);
        }
        return NULL;
}

static void run_op(const struct op *op) {
        if (op->thread == 0) {
                exec_op(op);
                return;
        }
        pthread_mutex_lock(&turn_lock);
        turn_op = op;
        turn = op->thread;
        pthread_cond_signal(&turn_cond[op->thread]);
        while (turn != 0)
                pthread_cond_wait(&turn_cond[0], &turn_lock);
        pthread_mutex_unlock(&turn_lock);
}

/* Once per process: the workers and fds live as long as it does, so no
 * input leaks them. */
static void setup(void) {
        int p[2];
        unsigned i;

        cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        CHECK(cancel_efd >= 0 && pipe2(p, O_CLOEXEC) == 0, "harness setup: %s", strerror(errno));
        close(p[1]);
        hup_fd = p[0];
        fill(static_buf, sizeof(static_buf), STATIC_SEED);
        big_buf = malloc(BIG_SIZE);
        CHECK(big_buf, "harness setup: out of memory");
        for (i = 1; i < N_THREADS; i++) {
                pthread_t t;

                CHECK(pthread_create(&t, NULL, worker_main, (void *)(uintptr_t)i) == 0,
                      "harness setup: pthread_create");
                pthread_detach(t);
        }
}

/* ------------------------------------------------------------ one input */

/* Release everything the input left, so LeakSanitizer sees no leak and
 * every adopted buffer must have been destroyed exactly once. */
static void end_input(void) {
        unsigned i;

        for (i = 0; i < N_WATCHERS; i++)
                close_watcher(&m.watchers[i]);
        for (i = 0; i < N_HELD; i++)
                release_held(&m.held[i]);
        for (i = 0; i < N_SLOTS; i++) {
                struct op op = { .code = OP_UNREF, .a = (uint8_t)i };

                while (m.slot[i])
                        op_unref(&op);
        }
        check_owned();
        for (i = 0; i < m.n_values; i++)
                free(m.values[i].hist);
        if (m.cancel_readable)
                op_cancel(&(struct op){ .code = OP_CANCEL, .a = 0 });
        memset(&m, 0, sizeof(m));
}

static struct op decode(const uint8_t *p) {
        return (struct op){
                .code = (p[0] & 0x1fu) % N_OPS,
                .thread = (unsigned)(p[0] >> 5) % N_THREADS,
                .a = p[1],
                .b = p[2],
                .c = p[3],
        };
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, setup);
        for (; size >= 4; data += 4, size -= 4) {
                struct op op = decode(data);

                run_op(&op);
                check_all();
        }
        end_input();
        return 0;
}
