/* SPDX-License-Identifier: MIT */
/*
 * Stress: one producer sets a value N times (default 20000, argv[1] or
 * EV_VALUE_STRESS_SCALE to change) while 100 watchers, each on its own
 * thread, consume it at different paces (thread i sleeps (i % 7) * 40 us
 * after each snapshot) and by different means (poll on the fd then
 * ev_watcher_get, ev_watcher_wait with and without a cancel fd, get first
 * and poll only on -EAGAIN).  Each payload carries its sequence number, a
 * length that varies with it and a checksum.  At checkpoints (the sets
 * numbered 1000k and 1000k + 1, and the last two) the producer waits until
 * every consumer has seen that version, so the set after a checkpoint finds
 * every watcher armed and must wake each of them; a lost wakeup is a stall,
 * reported by name after a timeout.  Every consumer checks that versions
 * and sequence numbers strictly increase and agree (there is one producer),
 * that the bytes are intact (also those of the snapshot it held across the
 * next get), that a readable fd always yields a snapshot, and that it ends
 * with version N and then -EAGAIN; after ev_value_close each must see
 * -EPIPE.  Every eighth set is ev_value_set_owned, whose destroy callback
 * must run exactly once per buffer.  Prints how many updates the fastest
 * and slowest watchers saw: slow consumers skip.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "stress.h"

#define N_WATCHERS 100
#define OWNED_EVERY 8
#define PACE_STEP_US 40
#define CHECKPOINT_EVERY 1000

struct payload {
        uint64_t seq;
        uint64_t checksum;   /* of seq and the bytes that follow */
        uint32_t len;        /* number of bytes that follow */
        uint32_t reserved;
        unsigned char bytes[];
};

enum mode {
        MODE_POLL_GET,       /* poll the fd, then get, which must succeed */
        MODE_WAIT,           /* ev_watcher_wait, no cancel fd */
        MODE_GET_FIRST,      /* get; poll only after -EAGAIN */
        MODE_WAIT_CANCEL_FD, /* ev_watcher_wait with a cancel fd never written */
        N_MODES
};

static const char *const mode_names[N_MODES] = {
        "poll+get", "wait", "get-first", "wait+cancel-fd",
};

struct consumer {
        pthread_t thread;
        int index;
        enum mode mode;
        unsigned pace_us;
        ev_value_watcher *watcher;
        uint64_t seen;          /* number of snapshots returned */
        uint64_t last_version;
};

static ev_value *value;
static uint64_t n_sets;
static int stall_ms;
static int cancel_fd;
static pthread_barrier_t start_barrier, final_barrier, closed_barrier;
static _Atomic uint64_t produced;          /* last seq set, for messages */
static atomic_ulong owned_destroyed;
static atomic_ulong owned_bad_userdata;
static char owned_marker;
/* Consumers count the checkpoint versions they see; the producer waits. */
static pthread_mutex_t checkpoint_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t checkpoint_cond;
static uint64_t checkpoint_count;

static bool is_checkpoint(uint64_t seq) {
        return seq % CHECKPOINT_EVERY <= 1 || seq + 1 >= n_sets;
}

static size_t payload_len(uint64_t seq) {
        return (size_t)((seq * UINT64_C(2654435761)) % 1531);
}

static uint64_t payload_checksum(uint64_t seq, const unsigned char *bytes, size_t len) {
        return stress_checksum(bytes, len) ^ (seq * UINT64_C(0x9e3779b97f4a7c15));
}

static struct payload *payload_new(uint64_t seq, size_t *ret_size) {
        size_t len = payload_len(seq), i;
        struct payload *p = malloc(sizeof(*p) + len);

        if (!p)
                fail("out of memory for payload %" PRIu64, seq);
        p->seq = seq;
        p->len = (uint32_t)len;
        p->reserved = 0;
        for (i = 0; i < len; i++)
                p->bytes[i] = (unsigned char)(seq * 131 + i * 7);
        p->checksum = payload_checksum(seq, p->bytes, len);
        *ret_size = sizeof(*p) + len;
        return p;
}

static void owned_destroy(void *data, void *userdata) {
        if (userdata != &owned_marker)
                atomic_fetch_add(&owned_bad_userdata, 1);
        free(data);
        atomic_fetch_add(&owned_destroyed, 1);
}

/* Check s as consumer c's next snapshot (or, with c NULL, one it held). */
static void verify_snapshot(const struct consumer *c, int index, const ev_value_snapshot *s,
                            const char *what) {
        const struct payload *p = ev_snapshot_data(s);
        size_t size = ev_snapshot_size(s);
        uint64_t version = ev_snapshot_version(s);

        check(p != NULL && size >= sizeof(*p),
              "watcher %d: %s snapshot version %" PRIu64 ": data %p, size %zu",
              index, what, version, (const void *)p, size);
        check(p->seq == version,
              "watcher %d: %s snapshot version %" PRIu64 " holds seq %" PRIu64
              " (one producer: they must agree)", index, what, version, p->seq);
        check(p->len == payload_len(p->seq) && size == sizeof(*p) + p->len,
              "watcher %d: %s seq %" PRIu64 ": size %zu, len %u, want len %zu",
              index, what, p->seq, size, p->len, payload_len(p->seq));
        check(p->checksum == payload_checksum(p->seq, p->bytes, p->len),
              "watcher %d: %s seq %" PRIu64 ": checksum mismatch, bytes corrupted",
              index, what, p->seq);
        if (c)
                check(version > c->last_version && version <= n_sets,
                      "watcher %d (%s): version %" PRIu64 " after %" PRIu64
                      " (want strictly increasing, at most %" PRIu64 ")",
                      index, mode_names[c->mode], version, c->last_version, n_sets);
}

static void stalled(const struct consumer *c, const char *how) {
        fail("watcher %d (%s, pace %u us): %s: no update within %d ms; "
             "last version %" PRIu64 ", producer at %" PRIu64 " of %" PRIu64,
             c->index, mode_names[c->mode], c->pace_us, how, stall_ms, c->last_version,
             atomic_load(&produced), n_sets);
}

/* Block until the next snapshot for c and return it. */
static ev_value_snapshot *consumer_next(struct consumer *c) {
        ev_value_snapshot *s = NULL;
        int fd = ev_watcher_get_fd(c->watcher), r;

        switch (c->mode) {
        case MODE_POLL_GET:
                if (!stress_wait_readable(fd, stall_ms))
                        stalled(c, "poll");
                r = ev_watcher_get(c->watcher, &s);
                check(r == 0, "watcher %d: fd %d polled readable but ev_watcher_get gave %s "
                      "(after version %" PRIu64 ")", c->index, fd, strerror(-r), c->last_version);
                return s;
        case MODE_WAIT:
        case MODE_WAIT_CANCEL_FD:
                r = ev_watcher_wait(c->watcher, stall_ms,
                                    c->mode == MODE_WAIT ? -1 : cancel_fd, &s);
                if (r == -ETIMEDOUT)
                        stalled(c, "ev_watcher_wait");
                check(r == 0, "watcher %d: ev_watcher_wait: %s (after version %" PRIu64 ")",
                      c->index, strerror(-r), c->last_version);
                return s;
        case MODE_GET_FIRST:
        default:
                for (;;) {
                        r = ev_watcher_get(c->watcher, &s);
                        if (r == 0)
                                return s;
                        check(r == -EAGAIN, "watcher %d: ev_watcher_get: %s (after version %"
                              PRIu64 ")", c->index, strerror(-r), c->last_version);
                        if (!stress_wait_readable(fd, stall_ms))
                                stalled(c, "poll after -EAGAIN");
                }
        }
}

static void *consumer_run(void *arg) {
        struct consumer *c = arg;
        ev_value_snapshot *held = NULL, *s;
        int fd = ev_watcher_get_fd(c->watcher), r;

        pthread_barrier_wait(&start_barrier);
        while (c->last_version < n_sets) {
                s = consumer_next(c);
                verify_snapshot(c, c->index, s, "new");
                c->last_version = ev_snapshot_version(s);
                c->seen++;
                if (is_checkpoint(c->last_version)) {
                        pthread_mutex_lock(&checkpoint_lock);
                        checkpoint_count++;
                        pthread_cond_signal(&checkpoint_cond);
                        pthread_mutex_unlock(&checkpoint_lock);
                }
                /* The snapshot held since the previous get has been replaced
                 * meanwhile; it must still be intact. */
                if (held)
                        verify_snapshot(NULL, c->index, held, "held");
                ev_snapshot_unref(held);
                held = s;
                if (c->pace_us)
                        stress_sleep_us(c->pace_us);
        }
        ev_snapshot_unref(held);

        /* Version N was the last set: nothing is unseen now. */
        check(!stress_fd_readable(fd), "watcher %d: fd readable after the final version", c->index);
        r = ev_watcher_get(c->watcher, &s);
        check(r == -EAGAIN, "watcher %d: get after the final version gave %s, want -EAGAIN",
              c->index, r == 0 ? "a snapshot" : strerror(-r));

        pthread_barrier_wait(&final_barrier);
        pthread_barrier_wait(&closed_barrier);

        /* Closed after the last snapshot was seen: -EPIPE, fd stays readable. */
        r = ev_watcher_wait(c->watcher, stall_ms, -1, &s);
        check(r == -EPIPE, "watcher %d: wait after close gave %s, want -EPIPE",
              c->index, r == 0 ? "a snapshot" : strerror(-r));
        check(stress_fd_readable(fd), "watcher %d: fd not readable after close", c->index);
        r = ev_watcher_get(c->watcher, &s);
        check(r == -EPIPE, "watcher %d: second get after close gave %s, want -EPIPE",
              c->index, r == 0 ? "a snapshot" : strerror(-r));
        return NULL;
}

/* Wait until every consumer has seen version seq, the k-th checkpoint. */
static void wait_checkpoint(uint64_t seq, uint64_t k) {
        struct timespec deadline;
        int r = 0;

        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += stall_ms / 1000;
        pthread_mutex_lock(&checkpoint_lock);
        while (checkpoint_count < k * N_WATCHERS && r != ETIMEDOUT)
                r = pthread_cond_timedwait(&checkpoint_cond, &checkpoint_lock, &deadline);
        if (checkpoint_count < k * N_WATCHERS)
                fail("only %" PRIu64 " of %d watchers reached version %" PRIu64 " within %d ms "
                     "(a lost wakeup?)", checkpoint_count - (k - 1) * N_WATCHERS, N_WATCHERS,
                     seq, stall_ms);
        pthread_mutex_unlock(&checkpoint_lock);
}

static void produce(void) {
        uint64_t seq, n_owned = 0, n_checkpoints = 0;
        ev_value_snapshot *peek;
        size_t size;
        int r;

        for (seq = 1; seq <= n_sets; seq++) {
                struct payload *p = payload_new(seq, &size);

                if (seq % OWNED_EVERY == 0) {
                        r = ev_value_set_owned(value, p, size, owned_destroy, &owned_marker);
                        check_ok(r, "ev_value_set_owned");
                        n_owned++;
                } else {
                        r = ev_value_set(value, p, size);
                        free(p);
                        check_ok(r, "ev_value_set");
                }
                atomic_store(&produced, seq);
                check(ev_value_get_version(value) == seq,
                      "version %" PRIu64 " after set %" PRIu64 " (single producer)",
                      ev_value_get_version(value), seq);
                if (seq % 97 == 0) {
                        check_ok(ev_value_get(value, &peek), "ev_value_get");
                        verify_snapshot(NULL, -1, peek, "producer's peek");
                        check(ev_snapshot_version(peek) == seq, "ev_value_get: version %" PRIu64
                              " after set %" PRIu64, ev_snapshot_version(peek), seq);
                        ev_snapshot_unref(peek);
                }
                if (is_checkpoint(seq))
                        wait_checkpoint(seq, ++n_checkpoints);
        }
}

int main(int argc, char **argv) {
        static struct consumer consumers[N_WATCHERS];
        uint64_t min_seen = UINT64_MAX, max_seen = 0, total_seen = 0, n_owned;
        int guard_ms, i, r;
        int64_t start;
        double produce_s;

        guard_ms = stress_begin("stress-paced-watchers", 120);
        n_sets = stress_count_arg(argc, argv, 20000, 1);
        /* Half the guard, so a stall is reported by name before the guard fires. */
        stall_ms = guard_ms > 0 && guard_ms / 2 < 30000 ? guard_ms / 2 : 30000;
        n_owned = n_sets / OWNED_EVERY;

        cancel_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        check(cancel_fd >= 0, "eventfd: %s", strerror(errno));
        check_ok(ev_value_new(&value), "ev_value_new");
        pthread_barrier_init(&start_barrier, NULL, N_WATCHERS + 1);
        pthread_barrier_init(&final_barrier, NULL, N_WATCHERS + 1);
        pthread_barrier_init(&closed_barrier, NULL, N_WATCHERS + 1);
        {
                pthread_condattr_t attr;

                pthread_condattr_init(&attr);
                pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
                pthread_cond_init(&checkpoint_cond, &attr);
                pthread_condattr_destroy(&attr);
        }

        for (i = 0; i < N_WATCHERS; i++) {
                struct consumer *c = &consumers[i];

                c->index = i;
                c->mode = (enum mode)(i % N_MODES);
                c->pace_us = (unsigned)(i % 7) * PACE_STEP_US;
                check_ok(ev_value_watch(value, 0, &c->watcher), "ev_value_watch");
                r = pthread_create(&c->thread, NULL, consumer_run, c);
                check(r == 0, "pthread_create: %s", strerror(r));
        }

        pthread_barrier_wait(&start_barrier);
        start = stress_now_ns();
        produce();
        produce_s = stress_elapsed_s(start);

        /* Every consumer has seen version N (the last checkpoint). */
        pthread_barrier_wait(&final_barrier);
        check_ok(ev_value_close(value), "ev_value_close");
        check(ev_value_set(value, "x", 1) == -EPIPE, "set after close did not give -EPIPE");
        pthread_barrier_wait(&closed_barrier);

        for (i = 0; i < N_WATCHERS; i++) {
                struct consumer *c = &consumers[i];

                pthread_join(c->thread, NULL);
                check(c->last_version == n_sets, "watcher %d ended at version %" PRIu64,
                      i, c->last_version);
                if (c->seen < min_seen)
                        min_seen = c->seen;
                if (c->seen > max_seen)
                        max_seen = c->seen;
                total_seen += c->seen;
                c->watcher = ev_watcher_close(c->watcher);
        }
        value = ev_value_unref(value);

        /* Every owned buffer was replaced or dropped with the value. */
        check(atomic_load(&owned_destroyed) == n_owned,
              "owned destroy ran %lu times for %" PRIu64 " owned sets",
              atomic_load(&owned_destroyed), n_owned);
        check(atomic_load(&owned_bad_userdata) == 0, "owned destroy got a wrong userdata");
        close(cancel_fd);
        pthread_barrier_destroy(&start_barrier);
        pthread_barrier_destroy(&final_barrier);
        pthread_barrier_destroy(&closed_barrier);
        pthread_cond_destroy(&checkpoint_cond);

        printf("stress-paced-watchers: %d watchers, %" PRIu64 " sets (%" PRIu64 " owned) in %.2f s "
               "(%.2f s total); updates seen per watcher: min %" PRIu64 ", max %" PRIu64
               ", mean %" PRIu64 "\n",
               N_WATCHERS, n_sets, n_owned, produce_s, stress_elapsed_s(start), min_seen,
               max_seen, total_seen / N_WATCHERS);
        return 0;
}
