/* SPDX-License-Identifier: MIT */
/*
 * glib-consumer: an event value in a GLib main loop.  main() runs
 * g_main_loop_run() with a g_unix_fd_add() source on the watcher's eventfd
 * while a producer thread sets the value (loop-example.h); when the fd is
 * readable, the callback drains the watcher, and on -EPIPE (closed, final
 * snapshot taken) quits the loop and returns G_SOURCE_REMOVE, which takes
 * the fd out of the loop before the watcher closes it.  Exits 0 when the
 * final version was seen, 1 on any error.
 */
#include <glib-unix.h>

#include "loop-example.h"

static GMainLoop *loop;

static gboolean on_readable(gint fd, GIOCondition condition, gpointer userdata) {
        int r = example_drain(userdata);

        (void)fd;
        (void)condition;
        if (r == -EAGAIN)
                return G_SOURCE_CONTINUE;
        if (r != -EPIPE)
                die("ev_watcher_get", r);
        g_main_loop_quit(loop);
        return G_SOURCE_REMOVE;         /* readable for good now */
}

int main(void) {
        struct example ex;
        int status;

        loop = g_main_loop_new(NULL, FALSE);
        example_start(&ex, "glib-consumer", -1);
        g_unix_fd_add(ev_watcher_get_fd(ex.watcher), G_IO_IN, on_readable, &ex);
        g_main_loop_run(loop);          /* until on_readable quits it */
        status = example_finish(&ex);
        g_main_loop_unref(loop);
        return status;
}
