/* SPDX-License-Identifier: MIT */
/*
 * sd-event-consumer: an event value in a systemd sd-event loop.  main()
 * runs sd_event_loop() with one I/O source on the watcher's eventfd while a
 * producer thread sets the value (loop-example.h); when the fd is readable,
 * the handler drains the watcher, and on -EPIPE (closed, final snapshot
 * taken) calls sd_event_exit().  A handler's error goes through
 * sd_event_exit() too: returned, sd-event would only disable the source and
 * the loop would wait forever.  Exits 0 when the final version was seen, 1
 * on any error.
 */
#include <systemd/sd-event.h>

#include "loop-example.h"

static int on_readable(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        int r = example_drain(userdata);

        (void)fd;
        (void)revents;
        if (r == -EAGAIN)
                return 0;
        /* -EPIPE: done (and readable for good); anything else: an error. */
        return sd_event_exit(sd_event_source_get_event(src), r == -EPIPE ? 0 : r);
}

int main(void) {
        struct example ex;
        sd_event_source *src;
        sd_event *e;
        int r;

        r = sd_event_new(&e);
        if (r < 0)
                die("sd_event_new", r);
        example_start(&ex, "sd-event-consumer", -1);
        r = sd_event_add_io(e, &src, ev_watcher_get_fd(ex.watcher), EPOLLIN, on_readable, &ex);
        if (r < 0)
                die("sd_event_add_io", r);
        r = sd_event_loop(e);   /* until on_readable calls sd_event_exit() */
        if (r < 0)
                die("ev_watcher_get, or sd_event_loop", r);
        /* The source out of sd-event's epoll set before the watcher closes
         * its fd. */
        sd_event_source_unref(src);
        r = example_finish(&ex);
        sd_event_unref(e);
        return r;
}
