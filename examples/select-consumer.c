/* SPDX-License-Identifier: MIT */
/*
 * select-consumer: an event value in a select() loop, next to a pipe.
 * main() select()s on the watcher's eventfd and a pipe's read end while a
 * producer thread sets the value (loop-example.h) and, when it is done,
 * closes the pipe's write end.  When the eventfd is readable main() drains
 * the watcher, and on -EPIPE (closed, final snapshot taken) leaves the
 * eventfd out of the set, since it stays readable for good; the pipe is
 * finished at EOF.  Either may come first.  Exits 0 when the final version
 * was seen, 1 on any error.
 */
#include <stdbool.h>
#include <sys/select.h>

#include "loop-example.h"

/* Add fd to the set when wanted; returns the nfds select() needs. */
static int watch_fd(fd_set *set, int fd, bool wanted, int nfds) {
        if (!wanted)
                return nfds;
        FD_SET(fd, set);
        return fd + 1 > nfds ? fd + 1 : nfds;
}

int main(void) {
        bool watching = true, piping = true;
        struct example ex;
        int done_pipe[2];       /* stands in for a real program's sockets */
        int fd, r;

        if (pipe(done_pipe) < 0)
                die("pipe", -errno);
        example_start(&ex, "select-consumer", done_pipe[1]);
        fd = ev_watcher_get_fd(ex.watcher);
        /* select() takes only fds below FD_SETSIZE (1024): FD_SET() on a
         * bigger one writes past the fd_set.  A program with many files
         * open needs poll() or epoll instead. */
        if (fd >= FD_SETSIZE || done_pipe[0] >= FD_SETSIZE)
                die("an fd too big for select()", -EMFILE);

        while (watching || piping) {
                fd_set readable;
                int nfds;

                FD_ZERO(&readable);     /* select() overwrites the set: rebuild it */
                nfds = watch_fd(&readable, fd, watching, 0);
                nfds = watch_fd(&readable, done_pipe[0], piping, nfds);
                if (select(nfds, &readable, NULL, NULL, NULL) < 0) {
                        if (errno == EINTR)
                                continue;
                        die("select", -errno);
                }
                if (watching && FD_ISSET(fd, &readable)) {
                        r = example_drain(&ex);
                        if (r == -EPIPE)
                                watching = false;       /* readable for good now */
                        else if (r != -EAGAIN)
                                die("ev_watcher_get", r);
                }
                if (piping && FD_ISSET(done_pipe[0], &readable)) {
                        char byte;
                        ssize_t n = read(done_pipe[0], &byte, 1);

                        if (n < 0)
                                die("read", -errno);
                        piping = n > 0;         /* until EOF */
                }
        }
        close(done_pipe[0]);
        return example_finish(&ex);
}
