/* SPDX-License-Identifier: MIT */
/*
 * Stress: sets from several threads reaching remote watchers while the
 * producer's loop runs ev_value_server_process in a thread of its own, as
 * ev_value_serve(3) allows.  Two setter threads set checksummed payloads,
 * a third makes remote sets through ev_value_remote_set (which the loop
 * thread answers, setting the value from process), and three consumer
 * threads watch through ev_value_connect, each in a wait loop.  Checked:
 * every snapshot a consumer gets is intact and newer than its last, every
 * consumer ends with the final version then -EPIPE after the close, no
 * set fails, and no fd is left open after the server is freed.  Sets per
 * setter default to 3000 (argv[1] or EV_VALUE_STRESS_SCALE to change).
 */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>

#include "ev-value-ipc.h"
#include "stress.h"

#define N_SETTERS 2
#define N_CONSUMERS 3

struct payload {
        uint64_t setter;
        uint64_t seq;
        uint64_t checksum; /* of setter and seq */
};

static ev_value *value;
static ev_value_server *server;
static char path[64];
static unsigned long n_sets;
static int stop_fd;
static int wait_ms;
static atomic_ulong remote_sets;

static struct payload payload_of(uint64_t setter, uint64_t seq) {
        struct payload p = { .setter = setter, .seq = seq };

        p.checksum = stress_checksum(&p, offsetof(struct payload, checksum));
        return p;
}

static void *loop_thread(void *arg) {
        struct pollfd pfd[2] = {
                { .fd = ev_value_server_get_fd(server), .events = POLLIN },
                { .fd = stop_fd, .events = POLLIN },
        };

        (void)arg;
        for (;;) {
                if (poll(pfd, 2, -1) < 0 && errno != EINTR)
                        fail("poll: %s", strerror(errno));
                if (pfd[1].revents)
                        return NULL;
                if (pfd[0].revents && ev_value_server_process(server) < 0)
                        fail("ev_value_server_process failed");
        }
}

static void *setter_thread(void *arg) {
        uint64_t setter = (uint64_t)(uintptr_t)arg;

        for (unsigned long i = 1; i <= n_sets; i++) {
                struct payload p = payload_of(setter, i);

                check_ok(ev_value_set(value, &p, sizeof(p)), "ev_value_set");
        }
        return NULL;
}

static void *remote_setter_thread(void *arg) {
        (void)arg;
        for (unsigned long i = 1; i <= n_sets / 50 + 1; i++) {
                struct payload p = payload_of(N_SETTERS, i);

                check_ok(ev_value_remote_set(path, &p, sizeof(p), wait_ms), "ev_value_remote_set");
                atomic_fetch_add(&remote_sets, 1);
        }
        return NULL;
}

struct consumer {
        pthread_t thread;
        ev_value_watcher *watcher;
        uint64_t last_version;
        unsigned long gets;
};

static void *consumer_thread(void *arg) {
        struct consumer *c = arg;
        ev_value_snapshot *s;
        int r;

        while ((r = ev_watcher_wait(c->watcher, wait_ms, -1, &s)) == 0) {
                const struct payload *p = ev_snapshot_data(s);

                check(ev_snapshot_size(s) == sizeof(*p), "snapshot of %zu bytes", ev_snapshot_size(s));
                check(p->checksum == stress_checksum(p, offsetof(struct payload, checksum)),
                      "payload of version %" PRIu64 " is torn", ev_snapshot_version(s));
                check(ev_snapshot_version(s) > c->last_version, "version %" PRIu64 " after %" PRIu64,
                      ev_snapshot_version(s), c->last_version);
                c->last_version = ev_snapshot_version(s);
                c->gets++;
                ev_snapshot_unref(s);
        }
        check(r == -EPIPE, "consumer's wait ended with %s, want EPIPE", strerror(-r));
        return NULL;
}

int main(int argc, char **argv) {
        struct consumer consumers[N_CONSUMERS] = { 0 };
        pthread_t setters[N_SETTERS], remote_setter, loop;
        int fds_before = stress_count_fds();

        wait_ms = stress_begin("stress-ipc-sets", 600);
        n_sets = stress_count_arg(argc, argv, 3000, 10);
        snprintf(path, sizeof(path), "@stress-ipc-sets-%d", (int)getpid());
        check_ok(ev_value_new(&value), "ev_value_new");
        check_ok(ev_value_serve_path(value, path, EV_VALUE_SERVE_ALLOW_SET, &server),
                 "ev_value_serve_path");
        stop_fd = eventfd(0, EFD_CLOEXEC);
        check(stop_fd >= 0, "eventfd: %s", strerror(errno));
        for (int i = 0; i < N_CONSUMERS; i++)
                check_ok(ev_value_connect(path, 0, &consumers[i].watcher), "ev_value_connect");
        check(pthread_create(&loop, NULL, loop_thread, NULL) == 0, "pthread_create");
        /* Every consumer accepted before the first set. */
        while (ev_value_server_get_peer_count(server) < N_CONSUMERS)
                stress_sleep_us(1000);
        for (int i = 0; i < N_CONSUMERS; i++)
                check(pthread_create(&consumers[i].thread, NULL, consumer_thread, &consumers[i]) == 0,
                      "pthread_create");
        for (int i = 0; i < N_SETTERS; i++)
                check(pthread_create(&setters[i], NULL, setter_thread, (void *)(uintptr_t)i) == 0,
                      "pthread_create");
        check(pthread_create(&remote_setter, NULL, remote_setter_thread, NULL) == 0,
              "pthread_create");
        for (int i = 0; i < N_SETTERS; i++)
                pthread_join(setters[i], NULL);
        pthread_join(remote_setter, NULL);
        check_ok(ev_value_close(value), "ev_value_close");
        for (int i = 0; i < N_CONSUMERS; i++) {
                pthread_join(consumers[i].thread, NULL);
                check(consumers[i].last_version == ev_value_get_version(value),
                      "consumer %d ended at version %" PRIu64 ", the value at %" PRIu64, i,
                      consumers[i].last_version, ev_value_get_version(value));
                ev_watcher_close(consumers[i].watcher);
        }
        check(ev_value_get_version(value) == N_SETTERS * n_sets + atomic_load(&remote_sets),
              "version %" PRIu64 " after %lu sets", ev_value_get_version(value),
              N_SETTERS * n_sets + atomic_load(&remote_sets));
        check(eventfd_write(stop_fd, 1) == 0, "eventfd_write");
        pthread_join(loop, NULL);
        ev_value_server_free(server);
        ev_value_unref(value);
        close(stop_fd);
        check(stress_count_fds() == fds_before, "%d fds open, %d before", stress_count_fds(),
              fds_before);
        for (int i = 0; i < N_CONSUMERS; i++)
                printf("consumer %d: %lu gets of %lu sets\n", i, consumers[i].gets,
                       N_SETTERS * n_sets + atomic_load(&remote_sets));
        return 0;
}
