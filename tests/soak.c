/* SPDX-License-Identifier: MIT */
/*
 * Soak: the whole library under steady load for a bounded time, 60 s by
 * default (--duration, or EV_VALUE_SOAK_SECONDS so that make check and CI
 * can run a short one).  Four producer threads set eight values, each time
 * one picked at random, with payloads of a 32-byte header and 0 to 64 KiB
 * of bytes (one set in four adopted with ev_value_set_owned); the header
 * names the value, the producer and its sequence on that value, the length
 * and a checksum.  Eight consumer threads each poll() eight watchers, 64 in
 * all, and keep closing one of them and watching the same or another value
 * instead.  Checked: every snapshot is intact, has the size its header
 * says and belongs to its watcher's value; versions, and each producer's
 * sequence, strictly increase over a watcher's lifetime; a polled fd always
 * yields a snapshot; a watcher never lags its value for long with its fd
 * not readable (a lost wakeup).  Every second the program samples the open
 * fd count and the RSS: after a warm-up the fd count must stay flat and the
 * RSS must not grow.  At the end each value gets one last set and is
 * closed, every live watcher must see that version and then -EPIPE, the
 * versions must add up to the number of sets, every owned buffer must have
 * been destroyed exactly once and the fd count must be back where it began.
 * Prints a progress line every 5 s and a summary of the sets, snapshots,
 * recreations, RSS and fd figures.
 */
#include "config.h"

#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "stress.h"

#define N_PRODUCERS 4
#define N_VALUES 8
/* Eight consumer threads of eight watchers each rather than 64 threads of
 * one: on a 2-vCPU machine 64 consumers would mostly measure the scheduler
 * (and TSan and valgrind, which serialise threads, would crawl), while 8
 * poll() loops are how an event loop uses the library, see several of their
 * fds readable at once (sometimes two watchers of one value) and leave the
 * producers enough CPU to keep every value moving.  13 threads on 2 CPUs
 * still get preempted inside library calls, which is what races need. */
#define N_CONSUMERS 8
#define WATCHES_PER_CONSUMER 8
#define N_WATCHERS (N_CONSUMERS * WATCHES_PER_CONSUMER)
#define MAIN_PRODUCER N_PRODUCERS       /* main's first and last set of each value */
#define MAX_LEN (64 * 1024)
#define OWNED_ONE_IN 4
#define RECREATE_ONE_IN 32              /* per snapshot consumed */
#define POLL_MS 100                     /* how often an idle consumer looks at the clock */
#define PROGRESS_EVERY_S 5
#define DEFAULT_SECONDS 60
#define MIN_SECONDS 2
#define WARMUP_MIN_S 5
#define GUARD_EXTRA_S 90
/* RSS growth allowed from the first to the last third of the run: the
 * larger of this and a tenth.  glibc gives each of the 13 threads an arena
 * that keeps freed memory, and which arena holds the ~150 payloads of up to
 * 64 KiB in flight (8 current, 64 held by watchers, 64 being checked, the
 * producers' and the replaced ones not yet dropped: up to ~10 MiB) drifts
 * with scheduling, so a few MiB come and go.  A leak of one snapshot per
 * set or per recreation grows by tens of MiB per second. */
#define RSS_SLACK_MIN (8 * 1024 * 1024)

struct payload {
        uint32_t value;         /* index of the value it was set on */
        uint32_t producer;      /* producer index, or MAIN_PRODUCER */
        uint64_t seq;           /* the producer's sets on this value, from 1 */
        uint64_t len;           /* number of bytes that follow */
        uint64_t checksum;      /* of the fields above and the bytes */
        unsigned char bytes[];
};

struct producer {
        pthread_t thread;
        int index;
        uint64_t rng;
        uint64_t seq[N_VALUES];
        struct payload *buf;            /* reused by the copying sets */
        _Atomic uint64_t sets, owned;   /* main reads them for progress */
};

/* One watcher's lifetime in a consumer's slot. */
struct watch {
        ev_value_watcher *watcher;
        int value;
        uint64_t watched_at;            /* the value's version just before the watch */
        uint64_t last_version;          /* 0 before the first snapshot */
        uint64_t last_seq[N_PRODUCERS + 1];
        ev_value_snapshot *held;        /* the previous snapshot, re-checked when dropped */
        int64_t behind_since;           /* value ahead and fd not readable since; 0: not */
        bool done;                      /* saw the last version, then -EPIPE */
};

struct consumer {
        pthread_t thread;
        int index;
        uint64_t rng;
        struct watch watches[WATCHES_PER_CONSUMER];
        struct pollfd pfds[WATCHES_PER_CONSUMER];
        _Atomic uint64_t snapshots, recreations;
};

struct sample {
        uint64_t rss;
        int fds;
};

static ev_value *values[N_VALUES];
static int stall_ms;
static pthread_barrier_t start_barrier;
static atomic_bool stop_producers;
static atomic_bool closing;                     /* consumers stop recreating */
static _Atomic uint64_t final_version[N_VALUES]; /* stored before the value's close */
static _Atomic int64_t closed_at_ns;            /* when the last value was closed */
static atomic_ulong owned_destroyed;
static atomic_ulong owned_bad_userdata;
static char owned_marker;

/* xorshift64*: fast, and each thread has its own state. */
static uint64_t rng_next(uint64_t *state) {
        uint64_t x = *state;

        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        *state = x;
        return x * UINT64_C(0x2545f4914f6cdd1d);
}

static uint64_t rng_seed(uint64_t n) {
        return (n + 1) * UINT64_C(0x9e3779b97f4a7c15);
}

static uint64_t payload_checksum(const struct payload *p) {
        return stress_checksum(p, offsetof(struct payload, checksum)) ^
               stress_checksum(p->bytes, (size_t)p->len) * UINT64_C(0x9e3779b97f4a7c15);
}

/* Fill p with len fresh pseudo-random bytes, so a stale or mixed-up buffer
 * cannot pass for the new one. */
static void payload_fill(struct payload *p, int value, int producer, uint64_t seq,
                         size_t len, uint64_t *rng) {
        uint64_t x = rng_next(rng) | 1;
        size_t i;

        p->value = (uint32_t)value;
        p->producer = (uint32_t)producer;
        p->seq = seq;
        p->len = len;
        for (i = 0; i + sizeof(x) <= len; i += sizeof(x)) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                memcpy(p->bytes + i, &x, sizeof(x));
        }
        for (; i < len; i++)
                p->bytes[i] = (unsigned char)(x >> (i % 8 * 8));
        p->checksum = payload_checksum(p);
}

/* What is wrong with s as a snapshot of value v, or NULL. */
static const char *payload_error(const ev_value_snapshot *s, int v) {
        const struct payload *p = ev_snapshot_data(s);
        size_t size = ev_snapshot_size(s);

        if (!p || size < sizeof(*p))
                return "shorter than the header";
        if (p->value != (uint32_t)v)
                return "header names another value";
        if (p->producer > MAIN_PRODUCER)
                return "header names no producer";
        if (p->len > MAX_LEN || size != sizeof(*p) + p->len)
                return "size does not match the header's length";
        if (p->checksum != payload_checksum(p))
                return "checksum mismatch: bytes corrupted";
        return NULL;
}

/* Scribble over the header before freeing, so a reader that still had the
 * buffer (a destroy run too early) fails its check rather than passing. */
static void owned_destroy(void *data, void *userdata) {
        if (userdata != &owned_marker)
                atomic_fetch_add(&owned_bad_userdata, 1);
        memset(data, 0xdd, sizeof(struct payload));
        free(data);
        atomic_fetch_add(&owned_destroyed, 1);
}

/* One set of a random value with a random length, copied or adopted. */
static void producer_set(struct producer *pr) {
        int v = (int)(rng_next(&pr->rng) % N_VALUES);
        size_t len = (size_t)(rng_next(&pr->rng) % (MAX_LEN + 1));
        bool owned = rng_next(&pr->rng) % OWNED_ONE_IN == 0;
        uint64_t seq = ++pr->seq[v];
        uint64_t before = ev_value_get_version(values[v]);
        struct payload *p = owned ? malloc(sizeof(*p) + len) : pr->buf;
        int r;

        check(p != NULL, "producer %d: out of memory for %zu bytes", pr->index, len);
        payload_fill(p, v, pr->index, seq, len, &pr->rng);
        if (owned) {
                r = ev_value_set_owned(values[v], p, sizeof(*p) + len, owned_destroy,
                                       &owned_marker);
                if (r < 0)
                        free(p);
        } else {
                r = ev_value_set(values[v], p, sizeof(*p) + len);
        }
        check(r == 0, "producer %d: %s(value %d, %zu bytes): %s", pr->index,
              owned ? "ev_value_set_owned" : "ev_value_set", v, sizeof(*p) + len,
              strerror(-r));
        /* Other producers may have set it too, but never backwards. */
        check(ev_value_get_version(values[v]) > before,
              "producer %d: value %d at version %" PRIu64 " after a set, %" PRIu64 " before",
              pr->index, v, ev_value_get_version(values[v]), before);
        if (owned)
                atomic_store_explicit(&pr->owned, pr->owned + 1, memory_order_relaxed);
        atomic_store_explicit(&pr->sets, pr->sets + 1, memory_order_relaxed);
}

static void *producer_run(void *arg) {
        struct producer *pr = arg;

        pthread_barrier_wait(&start_barrier);
        while (!atomic_load_explicit(&stop_producers, memory_order_relaxed))
                producer_set(pr);
        return NULL;
}

/* Main's sets: the first (so every new watcher starts readable) and the
 * last (the version every watcher must end with). */
static void main_set(int v, uint64_t seq) {
        static uint64_t rng = 1;
        struct payload *p = malloc(sizeof(*p) + 64);

        check(p != NULL, "out of memory");
        payload_fill(p, v, MAIN_PRODUCER, seq, 64, &rng);
        check_ok(ev_value_set(values[v], p, sizeof(*p) + 64), "ev_value_set by main");
        free(p);
}

static void watch_open(struct consumer *c, int slot, int v) {
        struct watch *w = &c->watches[slot];
        int fd, r;

        memset(w, 0, sizeof(*w));
        w->value = v;
        w->watched_at = ev_value_get_version(values[v]);
        r = ev_value_watch(values[v], 0, &w->watcher);
        check(r == 0, "consumer %d: ev_value_watch(value %d): %s", c->index, v, strerror(-r));
        fd = ev_watcher_get_fd(w->watcher);
        /* Main set every value before the threads started. */
        check(stress_fd_readable(fd), "consumer %d slot %d: new watcher of value %d "
              "(version %" PRIu64 ") not readable", c->index, slot, v, w->watched_at);
        c->pfds[slot] = (struct pollfd){ .fd = fd, .events = POLLIN };
}

static void watch_close(struct consumer *c, int slot) {
        struct watch *w = &c->watches[slot];
        const char *err;

        if (w->held) {
                err = payload_error(w->held, w->value);
                check(!err, "consumer %d slot %d (value %d): held version %" PRIu64 ": %s",
                      c->index, slot, w->value, ev_snapshot_version(w->held), err);
        }
        w->held = ev_snapshot_unref(w->held);
        w->watcher = ev_watcher_close(w->watcher);
        c->pfds[slot].fd = -1;
}

/* Check s, the new snapshot of slot's watcher, and keep it. */
static void watch_accept(struct consumer *c, int slot, ev_value_snapshot *s) {
        struct watch *w = &c->watches[slot];
        uint64_t version = ev_snapshot_version(s);
        const struct payload *p = ev_snapshot_data(s);
        const char *err = payload_error(s, w->value);

        check(!err, "consumer %d slot %d (value %d): version %" PRIu64 ": %s",
              c->index, slot, w->value, version, err);
        check(version > w->last_version && version >= w->watched_at &&
              version <= ev_value_get_version(values[w->value]),
              "consumer %d slot %d (value %d): version %" PRIu64 " after %" PRIu64 " (watched "
              "at %" PRIu64 "): want strictly increasing, at most the value's",
              c->index, slot, w->value, version, w->last_version, w->watched_at);
        /* A producer's sets of one value are ordered, so the versions are. */
        check(p->seq > w->last_seq[p->producer] && p->seq <= version,
              "consumer %d slot %d (value %d): version %" PRIu64 " holds producer %u's seq %"
              PRIu64 " after its seq %" PRIu64, c->index, slot, w->value, version,
              p->producer, p->seq, w->last_seq[p->producer]);
        w->last_seq[p->producer] = p->seq;
        w->last_version = version;
        /* The previous snapshot has been replaced since; it must be intact. */
        if (w->held) {
                err = payload_error(w->held, w->value);
                check(!err, "consumer %d slot %d (value %d): held version %" PRIu64 ": %s",
                      c->index, slot, w->value, ev_snapshot_version(w->held), err);
        }
        ev_snapshot_unref(w->held);
        w->held = s;
        atomic_store_explicit(&c->snapshots, c->snapshots + 1, memory_order_relaxed);
}

/* -EPIPE: only once the value is closed and its last version was seen. */
static void watch_finish(struct consumer *c, int slot) {
        struct watch *w = &c->watches[slot];
        uint64_t last = atomic_load(&final_version[w->value]);
        const struct payload *p = ev_snapshot_data(w->held);
        ev_value_snapshot *s;
        int fd = c->pfds[slot].fd, r;

        check(last != 0 && w->last_version == last,
              "consumer %d slot %d (value %d): -EPIPE after version %" PRIu64 "; the last "
              "version is %" PRIu64 " (0: not closed yet)", c->index, slot, w->value,
              w->last_version, last);
        check(p && p->producer == MAIN_PRODUCER, "consumer %d slot %d (value %d): last "
              "snapshot not main's last set", c->index, slot, w->value);
        check(stress_fd_readable(fd), "consumer %d slot %d (value %d): fd not readable "
              "after -EPIPE", c->index, slot, w->value);
        r = ev_watcher_get(w->watcher, &s);
        check(r == -EPIPE, "consumer %d slot %d (value %d): second get after -EPIPE: %s",
              c->index, slot, w->value, r == 0 ? "a snapshot" : strerror(-r));
        w->done = true;
        /* Its fd stays readable; poll() skips negative fds. */
        c->pfds[slot].fd = -1;
}

/* slot's fd polled readable, so the get must not give -EAGAIN.  Returns
 * true when the watcher is done. */
static bool watch_consume(struct consumer *c, int slot) {
        struct watch *w = &c->watches[slot];
        ev_value_snapshot *s;
        int r = ev_watcher_get(w->watcher, &s);

        if (r == -EPIPE) {
                watch_finish(c, slot);
                return true;
        }
        check(r == 0, "consumer %d slot %d (value %d): fd polled readable but ev_watcher_get "
              "gave %s after version %" PRIu64, c->index, slot, w->value, strerror(-r),
              w->last_version);
        watch_accept(c, slot, s);
        return false;
}

/* A watcher whose value is ahead of it must become readable: the write can
 * lag the new version by a preemption, not by stall_ms. */
static void watch_check_behind(struct consumer *c, int slot) {
        struct watch *w = &c->watches[slot];
        int64_t now;

        if (ev_value_get_version(values[w->value]) <= w->last_version) {
                w->behind_since = 0;
                return;
        }
        now = stress_now_ns();
        if (!w->behind_since)
                w->behind_since = now;
        check(now - w->behind_since < (int64_t)stall_ms * 1000000,
              "consumer %d slot %d (value %d): value at version %" PRIu64 ", watcher at %"
              PRIu64 ", fd not readable for %d ms (a lost wakeup?)", c->index, slot, w->value,
              ev_value_get_version(values[w->value]), w->last_version, stall_ms);
}

/* A watcher behind its value is owed a wakeup.  Wait for it before the
 * close: otherwise recreates, which replace every slot within a second or
 * so, would hide a lost wakeup from watch_check_behind. */
static void watch_check_owed(struct consumer *c, int slot) {
        struct watch *w = &c->watches[slot];
        uint64_t version = ev_value_get_version(values[w->value]);

        check(version <= w->last_version || stress_wait_readable(c->pfds[slot].fd, stall_ms),
              "consumer %d slot %d (value %d): value at version %" PRIu64 ", watcher at %"
              PRIu64 ", fd not readable within %d ms (a lost wakeup?)", c->index, slot,
              w->value, version, w->last_version, stall_ms);
}

static void consumer_recreate(struct consumer *c) {
        int slot = (int)(rng_next(&c->rng) % WATCHES_PER_CONSUMER);
        int v = (int)(rng_next(&c->rng) % N_VALUES);

        watch_check_owed(c, slot);
        /* Close first: the watcher count then dips during a recreate but
         * never exceeds 64, which the fd check relies on. */
        watch_close(c, slot);
        watch_open(c, slot, v);
        atomic_store_explicit(&c->recreations, c->recreations + 1, memory_order_relaxed);
}

/* Once every value is closed, every watcher must reach -EPIPE in time. */
static void consumer_check_end(const struct consumer *c) {
        int64_t closed_at = atomic_load(&closed_at_ns);
        int slot;

        if (!closed_at || stress_now_ns() - closed_at < (int64_t)stall_ms * 1000000)
                return;
        for (slot = 0; slot < WATCHES_PER_CONSUMER; slot++) {
                const struct watch *w = &c->watches[slot];

                check(w->done, "consumer %d slot %d (value %d): no -EPIPE within %d ms of the "
                      "close; at version %" PRIu64 ", last %" PRIu64, c->index, slot, w->value,
                      stall_ms, w->last_version, atomic_load(&final_version[w->value]));
        }
}

static void consumer_poll(struct consumer *c) {
        int n;

        do
                n = poll(c->pfds, WATCHES_PER_CONSUMER, POLL_MS);
        while (n < 0 && errno == EINTR);
        check(n >= 0, "consumer %d: poll: %s", c->index, strerror(errno));
}

static void *consumer_run(void *arg) {
        struct consumer *c = arg;
        int n_done = 0, slot;

        pthread_barrier_wait(&start_barrier);
        while (n_done < WATCHES_PER_CONSUMER) {
                bool recreate = false;

                consumer_poll(c);
                for (slot = 0; slot < WATCHES_PER_CONSUMER; slot++) {
                        short revents = c->pfds[slot].revents;

                        if (c->watches[slot].done)
                                continue;
                        check(!(revents & POLLNVAL), "consumer %d slot %d: POLLNVAL",
                              c->index, slot);
                        if (!(revents & POLLIN)) {
                                watch_check_behind(c, slot);
                                continue;
                        }
                        c->watches[slot].behind_since = 0;
                        if (watch_consume(c, slot))
                                n_done++;
                        else if (rng_next(&c->rng) % RECREATE_ONE_IN == 0)
                                recreate = true;
                }
                /* Not before the closes: a watcher must stay to see -EPIPE. */
                if (recreate && !atomic_load(&closing))
                        consumer_recreate(c);
                consumer_check_end(c);
        }
        for (slot = 0; slot < WATCHES_PER_CONSUMER; slot++)
                watch_close(c, slot);
        return NULL;
}

/* The fd count, least of three: a count taken while consumers recreate can
 * be off by the recreates it straddles, a leak is in every count. */
static int count_fds(void) {
        int n = stress_count_fds(), i, m;

        for (i = 0; i < 2; i++) {
                m = stress_count_fds();
                if (m < n)
                        n = m;
        }
        return n;
}

static void totals(const struct producer *producers, const struct consumer *consumers,
                   uint64_t *ret_sets, uint64_t *ret_owned, uint64_t *ret_snapshots,
                   uint64_t *ret_recreations) {
        int i;

        *ret_sets = *ret_owned = *ret_snapshots = *ret_recreations = 0;
        for (i = 0; i < N_PRODUCERS; i++) {
                *ret_sets += atomic_load_explicit(&producers[i].sets, memory_order_relaxed);
                *ret_owned += atomic_load_explicit(&producers[i].owned, memory_order_relaxed);
        }
        for (i = 0; i < N_CONSUMERS; i++) {
                *ret_snapshots += atomic_load_explicit(&consumers[i].snapshots,
                                                       memory_order_relaxed);
                *ret_recreations += atomic_load_explicit(&consumers[i].recreations,
                                                         memory_order_relaxed);
        }
}

static void print_progress(unsigned t, unsigned duration, const struct sample *s,
                           const struct producer *producers, const struct consumer *consumers) {
        uint64_t sets, owned, snapshots, recreations;

        totals(producers, consumers, &sets, &owned, &snapshots, &recreations);
        printf("soak: %u/%u s: %" PRIu64 " sets (%.0f/s), %" PRIu64 " snapshots, %" PRIu64
               " recreations, RSS %" PRIu64 " KiB, %d fds\n", t, duration, sets,
               (double)sets / t, snapshots, recreations, s->rss / 1024, s->fds);
}

/* After the warm-up the watcher count is constant but for recreates in
 * flight, each a dip of one: a sample may differ from the warm-up one (which
 * may itself have caught dips) by at most one per consumer. */
static void check_fds_flat(const struct sample *samples, unsigned warmup, unsigned t) {
        int base = samples[warmup].fds, fds = samples[t].fds;

        check(fds <= base + N_CONSUMERS && fds >= base - N_CONSUMERS,
              "%d fds open at %u s, %d at the end of the warm-up (%u s); allowed: %d either way "
              "(watchers being recreated)", fds, t, base, warmup, N_CONSUMERS);
}

static void run_and_sample(struct sample *samples, unsigned duration, unsigned warmup,
                           int64_t start, const struct producer *producers,
                           const struct consumer *consumers) {
        unsigned t;

        for (t = 1; t <= duration; t++) {
                int64_t left = start + (int64_t)t * 1000000000 - stress_now_ns();

                if (left > 0)
                        stress_sleep_us((unsigned)(left / 1000));
                samples[t].rss = stress_rss_bytes();
                samples[t].fds = count_fds();
                if (t >= warmup)
                        check_fds_flat(samples, warmup, t);
                if (t % PROGRESS_EVERY_S == 0 && t < duration)
                        print_progress(t, duration, &samples[t], producers, consumers);
        }
}

/* Max RSS of the last third of the post-warm-up samples against the first
 * third's.  Skipped where valgrind or a sanitizer owns the heap: the RSS is
 * then mostly theirs (shadow memory, quarantines, race history); valgrind's
 * and ASan's leak checks stand in for it. */
static void check_rss_flat(const struct sample *samples, unsigned duration, unsigned warmup,
                           uint64_t *ret_first_max, uint64_t *ret_last_max) {
        unsigned m = duration - warmup + 1, third = m / 3 ? m / 3 : 1, t;
        uint64_t first_max = 0, last_max = 0, slack;

        for (t = warmup; t < warmup + third; t++)
                if (samples[t].rss > first_max)
                        first_max = samples[t].rss;
        for (t = duration + 1 - third; t <= duration; t++)
                if (samples[t].rss > last_max)
                        last_max = samples[t].rss;
        *ret_first_max = first_max;
        *ret_last_max = last_max;
        if (RUNNING_ON_VALGRIND || UNDER_SANITIZER) {
                printf("soak: RSS bound not checked: %s replaces the allocator and adds "
                       "memory of its own\n", RUNNING_ON_VALGRIND ? "valgrind" : "a sanitizer");
                return;
        }
        slack = first_max / 10 > RSS_SLACK_MIN ? first_max / 10 : RSS_SLACK_MIN;
        check(last_max <= first_max + slack,
              "RSS grew: max %" PRIu64 " KiB in the last %u s, %" PRIu64 " KiB in the first %u s "
              "after the warm-up; allowed %" PRIu64 " KiB more", last_max / 1024, third,
              first_max / 1024, third, slack / 1024);
}

/* Stop the producers, then give each value its last set and close it. */
static void finish_values(struct producer *producers) {
        int i;

        atomic_store(&stop_producers, true);
        for (i = 0; i < N_PRODUCERS; i++)
                pthread_join(producers[i].thread, NULL);
        atomic_store(&closing, true);
        for (i = 0; i < N_VALUES; i++) {
                main_set(i, 2);
                /* Published before the close, so a consumer's -EPIPE sees it. */
                atomic_store(&final_version[i], ev_value_get_version(values[i]));
                check_ok(ev_value_close(values[i]), "ev_value_close");
        }
        atomic_store(&closed_at_ns, stress_now_ns());
}

/* The closed values keep their last state and refuse sets; the versions
 * account for every set (gapless). */
static void check_closed_values(uint64_t sets) {
        uint64_t versions = 0;
        int i;

        for (i = 0; i < N_VALUES; i++) {
                ev_value_snapshot *s;
                struct payload *p;
                const char *err;

                check_ok(ev_value_get(values[i], &s), "ev_value_get on a closed value");
                err = payload_error(s, i);
                check(!err && ev_snapshot_version(s) == atomic_load(&final_version[i]),
                      "value %d: closed state version %" PRIu64 ", want %" PRIu64 ": %s", i,
                      ev_snapshot_version(s), atomic_load(&final_version[i]), err ? err : "ok");
                ev_snapshot_unref(s);
                versions += ev_value_get_version(values[i]);
                check(ev_value_set(values[i], "x", 1) == -EPIPE, "value %d: set after close "
                      "did not give -EPIPE", i);
                /* On failure the caller keeps the buffer: no destroy call. */
                p = malloc(sizeof(*p));
                check(p != NULL, "out of memory");
                check(ev_value_set_owned(values[i], p, sizeof(*p), owned_destroy,
                                         &owned_marker) == -EPIPE,
                      "value %d: owned set after close did not give -EPIPE", i);
                free(p);
        }
        check(versions == sets, "the values' versions add up to %" PRIu64 " for %" PRIu64
              " sets: not gapless", versions, sets);
}

static void start_threads(struct producer *producers, struct consumer *consumers) {
        int i, slot, r;

        for (i = 0; i < N_PRODUCERS; i++) {
                struct producer *pr = &producers[i];

                pr->index = i;
                pr->rng = rng_seed((uint64_t)i);
                pr->buf = malloc(sizeof(struct payload) + MAX_LEN);
                check(pr->buf != NULL, "out of memory");
                r = pthread_create(&pr->thread, NULL, producer_run, pr);
                check(r == 0, "pthread_create: %s", strerror(r));
        }
        for (i = 0; i < N_CONSUMERS; i++) {
                struct consumer *c = &consumers[i];

                c->index = i;
                c->rng = rng_seed((uint64_t)(N_PRODUCERS + i));
                /* Every consumer starts with one watcher per value: 8 per
                 * value.  Recreates then pick values at random, so the
                 * spread drifts while the total stays 64. */
                for (slot = 0; slot < WATCHES_PER_CONSUMER; slot++)
                        watch_open(c, slot, slot % N_VALUES);
                r = pthread_create(&c->thread, NULL, consumer_run, c);
                check(r == 0, "pthread_create: %s", strerror(r));
        }
}

static void usage(FILE *f, const char *argv0) {
        fprintf(f, "usage: %s [--duration SECONDS]\n"
                "Soak libevvalue: %d producers, %d values, %d watchers on %d consumer threads.\n"
                "  -d, --duration SECONDS  run time, at least %d (default %d, or "
                "EV_VALUE_SOAK_SECONDS)\n"
                "  -h, --help              this text\n"
                "EV_VALUE_STRESS_TIMEOUT overrides the time guard (duration + %d s).\n",
                argv0, N_PRODUCERS, N_VALUES, N_WATCHERS, N_CONSUMERS, MIN_SECONDS,
                DEFAULT_SECONDS, GUARD_EXTRA_S);
}

/* Seconds from s, or 0 when s is not a number in range. */
static unsigned parse_seconds(const char *s) {
        unsigned long n;
        char *end;

        errno = 0;
        n = strtoul(s, &end, 10);
        if (errno || end == s || *end != '\0' || n < MIN_SECONDS || n > 7 * 86400)
                return 0;
        return (unsigned)n;
}

static unsigned parse_args(int argc, char **argv) {
        static const struct option options[] = {
                { "duration", required_argument, NULL, 'd' },
                { "help", no_argument, NULL, 'h' },
                { NULL, 0, NULL, 0 },
        };
        const char *arg = getenv("EV_VALUE_SOAK_SECONDS");
        unsigned duration = DEFAULT_SECONDS;
        int opt;

        if (arg && *arg && !(duration = parse_seconds(arg))) {
                fprintf(stderr, "soak: EV_VALUE_SOAK_SECONDS=%s: want seconds, at least %d\n",
                        arg, MIN_SECONDS);
                exit(1);
        }
        while ((opt = getopt_long(argc, argv, "d:h", options, NULL)) != -1) {
                switch (opt) {
                case 'd':
                        if (!(duration = parse_seconds(optarg))) {
                                fprintf(stderr, "soak: --duration %s: want seconds, at least "
                                        "%d\n", optarg, MIN_SECONDS);
                                exit(1);
                        }
                        break;
                case 'h':
                        usage(stdout, argv[0]);
                        exit(0);
                default:
                        usage(stderr, argv[0]);
                        exit(1);
                }
        }
        if (optind < argc) {
                usage(stderr, argv[0]);
                exit(1);
        }
        return duration;
}

/* 20% of the run or WARMUP_MIN_S, whichever is larger, but at most half. */
static unsigned warmup_seconds(unsigned duration) {
        unsigned w = duration / 5 > WARMUP_MIN_S ? duration / 5 : WARMUP_MIN_S;

        return w > duration / 2 ? duration / 2 : w;
}

int main(int argc, char **argv) {
        static struct producer producers[N_PRODUCERS];
        static struct consumer consumers[N_CONSUMERS];
        uint64_t sets, owned, snapshots, recreations, rss_first_max, rss_last_max;
        uint64_t rss_max = 0;
        unsigned duration, warmup, t;
        int fds_start, fds_end, fds_max = 0, guard_ms, i;
        struct sample *samples;
        double produce_s;
        int64_t start;

        duration = parse_args(argc, argv);
        guard_ms = stress_begin("soak", duration + GUARD_EXTRA_S);
        stall_ms = guard_ms > 0 && guard_ms / 2 < 30000 ? guard_ms / 2 : 30000;
        warmup = warmup_seconds(duration);
        fds_start = stress_count_fds();
        if (fds_start < 0 || stress_rss_bytes() == 0) {
                printf("soak: SKIP: /proc is not mounted: cannot count fds or read RSS\n");
                return 77;
        }
        samples = calloc(duration + 1, sizeof(*samples));
        check(samples != NULL, "out of memory");

        for (i = 0; i < N_VALUES; i++) {
                check_ok(ev_value_new(&values[i]), "ev_value_new");
                main_set(i, 1);
        }
        pthread_barrier_init(&start_barrier, NULL, N_PRODUCERS + N_CONSUMERS + 1);
        start_threads(producers, consumers);
        pthread_barrier_wait(&start_barrier);
        start = stress_now_ns();
        run_and_sample(samples, duration, warmup, start, producers, consumers);
        /* Before the teardown checks: growth is the more telling diagnosis. */
        check_rss_flat(samples, duration, warmup, &rss_first_max, &rss_last_max);
        finish_values(producers);
        produce_s = stress_elapsed_s(start);
        for (i = 0; i < N_CONSUMERS; i++)
                pthread_join(consumers[i].thread, NULL);

        totals(producers, consumers, &sets, &owned, &snapshots, &recreations);
        check_closed_values(sets + 2 * N_VALUES);
        for (i = 0; i < N_VALUES; i++)
                values[i] = ev_value_unref(values[i]);
        for (i = 0; i < N_PRODUCERS; i++)
                free(producers[i].buf);
        check(atomic_load(&owned_destroyed) == owned, "owned destroy ran %lu times for %"
              PRIu64 " owned sets", atomic_load(&owned_destroyed), owned);
        check(atomic_load(&owned_bad_userdata) == 0, "owned destroy got a wrong userdata");
        fds_end = stress_count_fds();
        check(fds_end == fds_start, "%d fds open after closing everything, %d at the start",
              fds_end, fds_start);

        for (t = warmup; t <= duration; t++) {
                if (samples[t].rss > rss_max)
                        rss_max = samples[t].rss;
                if (samples[t].fds > fds_max)
                        fds_max = samples[t].fds;
        }
        pthread_barrier_destroy(&start_barrier);

        printf("soak: PASS %u s (warm-up %u s): %" PRIu64 " sets (%" PRIu64 " owned, %.0f/s), %"
               PRIu64 " snapshots, %" PRIu64 " recreations; RSS after warm-up %" PRIu64
               " KiB, max %" PRIu64 " KiB, final %" PRIu64 " KiB (max first third %" PRIu64
               ", last third %" PRIu64 "); fds %d at start, after warm-up %d, max %d, final %d, "
               "end %d\n", duration, warmup, sets, owned, (double)sets / produce_s, snapshots,
               recreations, samples[warmup].rss / 1024, rss_max / 1024,
               samples[duration].rss / 1024, rss_first_max / 1024, rss_last_max / 1024,
               fds_start, samples[warmup].fds, fds_max, samples[duration].fds, fds_end);
        free(samples);
        return 0;
}
