/* SPDX-License-Identifier: MIT */
/*
 * libev-consumer: an event value in a libev loop.  main() runs ev_run()
 * with one ev_io on the watcher's eventfd while a producer thread sets the
 * value (loop-example.h); when the fd is readable, the callback drains the
 * watcher, and on -EPIPE (closed, final snapshot taken) stops the ev_io,
 * which ends ev_run().  The names do not clash: libev's base watcher type is
 * struct ev_watcher, which ev_io extends, and ours is ev_value_watcher.
 * Exits 0 when the final version was seen, 1 on any error.
 */
#include <ev.h>

#include "loop-example.h"

static void on_readable(struct ev_loop *loop, ev_io *io, int revents) {
        int r = example_drain(io->data);

        (void)revents;
        if (r == -EPIPE)
                ev_io_stop(loop, io);   /* readable for good now; ev_run() returns */
        else if (r != -EAGAIN)
                die("ev_watcher_get", r);
}

int main(void) {
        struct ev_loop *loop = ev_default_loop(0);
        struct example ex;
        ev_io io;               /* libev's watcher: a struct ev_watcher inside */
        int status;

        if (!loop)
                die("ev_default_loop", -ENOMEM);
        example_start(&ex, "libev-consumer", -1);
        ev_io_init(&io, on_readable, ev_watcher_get_fd(ex.watcher), EV_READ);
        io.data = &ex;
        ev_io_start(loop, &io);
        ev_run(loop, 0);        /* until on_readable stops the only ev_io */
        status = example_finish(&ex);
        ev_loop_destroy(loop);
        return status;
}
