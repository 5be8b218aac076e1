/* SPDX-License-Identifier: MIT */
/*
 * libevent-consumer: an event value in a libevent 2 loop.  main() runs
 * event_base_dispatch() with one persistent read event on the watcher's
 * eventfd while a producer thread sets the value (loop-example.h); when the
 * fd is readable, the callback drains the watcher, and on -EPIPE (closed,
 * final snapshot taken) deletes the event, which ends the dispatch.  The
 * names do not clash: libevent's EV_READ and EV_PERSIST next to our
 * EV_VALUE_* names.  Exits 0 when the final version was seen, 1 on any
 * error.
 */
#include <event2/event.h>

#include "loop-example.h"

static struct event *watcher_event;     /* libevent's, on the watcher's fd */

static void on_readable(evutil_socket_t fd, short what, void *arg) {
        int r = example_drain(arg);

        (void)fd;
        (void)what;
        if (r == -EPIPE)
                event_del(watcher_event);       /* readable for good now; the dispatch returns */
        else if (r != -EAGAIN)
                die("ev_watcher_get", r);
}

int main(void) {
        struct event_base *base = event_base_new();
        struct example ex;
        int status;

        if (!base)
                die("event_base_new", -ENOMEM);
        example_start(&ex, "libevent-consumer", -1);
        watcher_event = event_new(base, ev_watcher_get_fd(ex.watcher), EV_READ | EV_PERSIST,
                                  on_readable, &ex);
        if (!watcher_event || event_add(watcher_event, NULL) < 0)
                die("event_new or event_add", -ENOMEM);
        if (event_base_dispatch(base) < 0)      /* until on_readable deletes the event */
                die("event_base_dispatch", -EIO);
        event_free(watcher_event);
        status = example_finish(&ex);
        event_base_free(base);
        return status;
}
