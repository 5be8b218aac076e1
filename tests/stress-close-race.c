/* SPDX-License-Identifier: MIT */
/*
 * Stress: ev_watcher_close racing with ev_value_set.  Two producer threads
 * set one value continuously while two closer threads, in a tight loop,
 * create a watcher, bring it up to date with a get (so the next set writes
 * its eventfd; one iteration in four skips the get and closes a watcher
 * that is still signaled), close it and at once open a sentinel eventfd,
 * which usually takes the fd number just freed.  Each closer keeps its last
 * 64 sentinels open and, before closing one, checks that its counter is
 * still zero: a set that wrote to a closed watcher's fd number after the
 * close would have written to the sentinel instead.  Also checked: gets
 * return intact payloads, sets never fail, versions stay gapless (the final
 * version equals the number of sets) and no fd leaks.  Iterations per
 * closer default to 50000 (argv[1] or EV_VALUE_STRESS_SCALE to change);
 * prints how often a sentinel reused a closed watcher's fd number.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "stress.h"

#define N_PRODUCERS 2
#define N_CLOSERS 2
#define RING_SIZE 64

struct payload {
        uint64_t producer;
        uint64_t seq;
        uint64_t checksum;      /* of producer and seq */
};

struct closer {
        pthread_t thread;
        int index;
        unsigned long iterations;
        unsigned long reused;   /* sentinel took the closed watcher's fd number */
        unsigned long gets;
        int ring[RING_SIZE];
};

struct producer {
        pthread_t thread;
        int index;
        uint64_t sets;
};

static ev_value *value;
static unsigned long n_iterations;
static atomic_bool stop_producers;

static uint64_t payload_checksum(const struct payload *p) {
        return stress_checksum(p, offsetof(struct payload, checksum));
}

static void *producer_run(void *arg) {
        struct producer *pr = arg;
        struct payload p = { .producer = (uint64_t)pr->index };
        int r;

        while (!atomic_load_explicit(&stop_producers, memory_order_relaxed)) {
                p.seq = ++pr->sets;
                p.checksum = payload_checksum(&p);
                r = ev_value_set(value, &p, sizeof(p));
                check(r == 0, "producer %d: ev_value_set #%" PRIu64 ": %s",
                      pr->index, p.seq, strerror(-r));
        }
        return NULL;
}

/* A sentinel's counter must still be zero: nothing may write to it. */
static void sentinel_check_and_close(const struct closer *c, int fd) {
        uint64_t counter;
        ssize_t n = read(fd, &counter, sizeof(counter));

        if (n == sizeof(counter))
                fail("closer %d: sentinel eventfd %d was written (counter %" PRIu64 "): a set "
                     "wrote to the fd number of a closed watcher", c->index, fd, counter);
        check(n < 0 && errno == EAGAIN, "closer %d: read(sentinel %d): %zd, %s",
              c->index, fd, n, strerror(errno));
        close(fd);
}

static void *closer_run(void *arg) {
        struct closer *c = arg;
        unsigned long i;
        int slot;

        for (slot = 0; slot < RING_SIZE; slot++)
                c->ring[slot] = -1;
        for (i = 0, slot = 0; i < n_iterations; i++, slot = (slot + 1) % RING_SIZE) {
                ev_value_watcher *w;
                ev_value_snapshot *s;
                int fd, sentinel, r;

                r = ev_value_watch(value, 0, &w);
                check(r == 0, "closer %d: ev_value_watch: %s", c->index, strerror(-r));
                fd = ev_watcher_get_fd(w);
                check(fd >= 0, "closer %d: ev_watcher_get_fd: %d", c->index, fd);
                if (i % 4 != 3) {
                        const struct payload *p;

                        /* The value was set before the watch: the first get
                         * succeeds, and arms the fd for the next set. */
                        r = ev_watcher_get(w, &s);
                        check(r == 0, "closer %d: first get on a new watcher: %s",
                              c->index, strerror(-r));
                        p = ev_snapshot_data(s);
                        check(ev_snapshot_size(s) == sizeof(*p) && p->checksum == payload_checksum(p),
                              "closer %d: snapshot version %" PRIu64 " corrupted",
                              c->index, ev_snapshot_version(s));
                        ev_snapshot_unref(s);
                        c->gets++;
                }
                w = ev_watcher_close(w);

                sentinel = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                check(sentinel >= 0, "closer %d: eventfd: %s", c->index, strerror(errno));
                if (sentinel == fd)
                        c->reused++;
                if (c->ring[slot] >= 0)
                        sentinel_check_and_close(c, c->ring[slot]);
                c->ring[slot] = sentinel;
        }
        /* The newest sentinels had the least time to catch a late write. */
        stress_sleep_us(2000);
        for (slot = 0; slot < RING_SIZE; slot++)
                if (c->ring[slot] >= 0)
                        sentinel_check_and_close(c, c->ring[slot]);
        c->iterations = i;
        return NULL;
}

int main(int argc, char **argv) {
        static struct producer producers[N_PRODUCERS];
        static struct closer closers[N_CLOSERS];
        unsigned long iterations = 0, reused = 0, gets = 0;
        uint64_t sets = 1;
        int fds_before, fds_after, i, r;
        int64_t start;

        stress_begin("stress-close-race", 120);
        n_iterations = stress_count_arg(argc, argv, 50000, 1);
        fds_before = stress_count_fds();

        check_ok(ev_value_new(&value), "ev_value_new");
        {
                struct payload p = { .producer = N_PRODUCERS, .seq = 0 };

                p.checksum = payload_checksum(&p);
                check_ok(ev_value_set(value, &p, sizeof(p)), "first ev_value_set");
        }

        start = stress_now_ns();
        for (i = 0; i < N_PRODUCERS; i++) {
                producers[i].index = i;
                r = pthread_create(&producers[i].thread, NULL, producer_run, &producers[i]);
                check(r == 0, "pthread_create: %s", strerror(r));
        }
        for (i = 0; i < N_CLOSERS; i++) {
                closers[i].index = i;
                r = pthread_create(&closers[i].thread, NULL, closer_run, &closers[i]);
                check(r == 0, "pthread_create: %s", strerror(r));
        }
        for (i = 0; i < N_CLOSERS; i++) {
                pthread_join(closers[i].thread, NULL);
                iterations += closers[i].iterations;
                reused += closers[i].reused;
                gets += closers[i].gets;
        }
        atomic_store(&stop_producers, true);
        for (i = 0; i < N_PRODUCERS; i++) {
                pthread_join(producers[i].thread, NULL);
                sets += producers[i].sets;
        }

        check(ev_value_get_version(value) == sets,
              "version %" PRIu64 " after %" PRIu64 " successful sets: not gapless",
              ev_value_get_version(value), sets);
        check_ok(ev_value_close(value), "ev_value_close");
        value = ev_value_unref(value);
        fds_after = stress_count_fds();
        check(fds_after == fds_before, "%d fds open at the start, %d at the end",
              fds_before, fds_after);
        /* Without reuse the sentinels tested nothing. */
        check(reused > 0, "no sentinel ever reused a closed watcher's fd number");

        printf("stress-close-race: %lu watchers closed (%lu after a get) against %" PRIu64
               " sets by %d threads in %.2f s; a sentinel took the closed fd number %lu times "
               "(%.0f%%), none was written\n",
               iterations, gets, sets, N_PRODUCERS, stress_elapsed_s(start), reused,
               100.0 * (double)reused / (double)iterations);
        return 0;
}
