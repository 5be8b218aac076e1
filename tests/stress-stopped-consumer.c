/* SPDX-License-Identifier: MIT */
/*
 * Stress: a consumer stopped at any instruction of its get cannot stall a
 * producer.  A consumer thread calls ev_watcher_get (and ev_value_get) in
 * a tight loop; the main thread, the producer, sets the value so that the
 * consumer's next get takes the slow path, lets it run for a random few
 * microseconds, then stops it with a signal whose handler blocks in read()
 * until released: wherever it is, mid-borrow of the current snapshot or
 * mid-re-arm.  While it is stopped, the producer must finish 100 sets, a
 * watcher made and closed beside it, and (the last round) the close,
 * without sleeping.  A lock held by the stopped consumer would make it
 * hang (the alarm turns that into a failure); a producer that waited a
 * while for borrowers to leave would sleep in every round that stopped
 * the consumer mid-borrow: about a third of them, measured with a slot
 * that waits 1 ms at most.  So the rounds in which the producer made a
 * voluntary context switch (getrusage RUSAGE_THREAD) are counted, and at
 * most 1% may have one: the kernel alone sometimes makes it sleep, for
 * instance in the mmap() with which a sanitizer's allocator grows its heap
 * (the new mapping merges with the last, under a lock that the kernel's
 * page scanners hold at times).  Then the consumer is released and must
 * see the final version.  Rounds default to 2000 (argv[1] or
 * EV_VALUE_STRESS_SCALE to change).  Under valgrind, which runs one thread
 * at a time, the context switches are not counted.
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/resource.h>

#include "stress.h"

#define SETS_WHILE_STOPPED 100
/* Of every 100 rounds, how many may see the producer sleep. */
#define SLEEPY_ROUNDS_PERCENT 1

static ev_value *value;
static int release_pipe[2], stopped_pipe[2];
static atomic_bool done;

/* SIGUSR1, on the consumer thread: say so, then block until released. */
static void on_stop(int sig) {
        char c = 's';
        ssize_t n;

        (void)sig;
        n = write(stopped_pipe[1], &c, 1);
        n = read(release_pipe[0], &c, 1);
        (void)n;
}

static void *consumer_run(void *arg) {
        ev_value_watcher *w = arg;
        uint64_t last = 0;
        ev_value_snapshot *s;
        int r;

        for (;;) {
                r = ev_watcher_get(w, &s);
                if (r == 0) {
                        check(ev_snapshot_version(s) > last, "version %" PRIu64 " after %" PRIu64,
                              ev_snapshot_version(s), last);
                        last = ev_snapshot_version(s);
                        ev_snapshot_unref(s);
                } else if (r == -EPIPE) {
                        break;
                } else {
                        check(r == -EAGAIN, "ev_watcher_get: %s", strerror(-r));
                }
                if (ev_value_get(value, &s) == 0)
                        ev_snapshot_unref(s);
        }
        check(last == ev_value_get_version(value), "ended at %" PRIu64 " of %" PRIu64, last,
              ev_value_get_version(value));
        atomic_store(&done, true);
        return NULL;
}

static long voluntary_switches(void) {
        struct rusage ru;

        check(getrusage(RUSAGE_THREAD, &ru) == 0, "getrusage: %s", strerror(errno));
        return ru.ru_nvcsw;
}

/* What the producer does while the consumer is stopped; returns whether
 * it made a voluntary context switch. */
static bool produce_while_stopped(bool last_round) {
        long before = voluntary_switches();
        ev_value_watcher *other;

        for (int i = 0; i < SETS_WHILE_STOPPED; i++)
                check_ok(ev_value_set(value, &i, sizeof(i)), "ev_value_set");
        check_ok(ev_value_watch(value, 0, &other), "ev_value_watch");
        ev_watcher_close(other);
        if (last_round)
                check_ok(ev_value_close(value), "ev_value_close");
        return voluntary_switches() != before;
}

int main(int argc, char **argv) {
        struct sigaction sa = { .sa_handler = on_stop };
        unsigned long rounds, round, sleepy_rounds = 0;
        pthread_t consumer;
        ev_value_watcher *w;
        char c = 'r';
        int r;

        stress_begin("stress-stopped-consumer", 120);
        rounds = stress_count_arg(argc, argv, 2000, 1);
        check(pipe(release_pipe) == 0 && pipe(stopped_pipe) == 0, "pipe: %s", strerror(errno));
        sigemptyset(&sa.sa_mask);
        check(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
        check_ok(ev_value_new(&value), "ev_value_new");
        check_ok(ev_value_watch(value, 0, &w), "ev_value_watch");
        r = pthread_create(&consumer, NULL, consumer_run, w);
        check(r == 0, "pthread_create: %s", strerror(r));

        for (round = 0; round < rounds; round++) {
                check_ok(ev_value_set(value, &round, sizeof(round)), "ev_value_set");
                stress_sleep_us((unsigned)(rand() % 20));
                check(pthread_kill(consumer, SIGUSR1) == 0, "pthread_kill");
                check(read(stopped_pipe[0], &c, 1) == 1, "read: %s", strerror(errno));
                sleepy_rounds += produce_while_stopped(round + 1 == rounds);
                check(write(release_pipe[1], &c, 1) == 1, "write: %s", strerror(errno));
        }
        pthread_join(consumer, NULL);
        check(atomic_load(&done), "the consumer did not finish");
        if (!RUNNING_ON_VALGRIND)
                check(sleepy_rounds <= rounds * SLEEPY_ROUNDS_PERCENT / 100,
                      "the producer slept in %lu of %lu rounds while the consumer was stopped",
                      sleepy_rounds, rounds);
        ev_watcher_close(w);
        ev_value_unref(value);
        printf("stress-stopped-consumer: PASS: %lu rounds, %lu sets while stopped, "
               "the producer slept in %lu rounds\n",
               rounds, rounds * SETS_WHILE_STOPPED, sleepy_rounds);
        return 0;
}
