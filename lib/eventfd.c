/* SPDX-License-Identifier: MIT */
/*
 * Creating, writing and draining a watcher's eventfd.  The protocol in
 * notify.c writes a watcher's own eventfd only while its counter is zero;
 * the shared eventfd is written once per set and never drained, and would
 * need 2^64 sets to fill.  So a write cannot fail and its result is
 * deliberately ignored.
 */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

/* A new eventfd as every watcher has it; a negative errno on failure. */
int ev__eventfd_new(void) {
        int fd = ev__fault(EV__FAULT_EVENTFD);

        if (fd < 0)
                return fd;
        fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        return fd < 0 ? -errno : fd;
}

void ev__eventfd_signal(int fd) {
        uint64_t one = 1;
        ssize_t n = write(fd, &one, sizeof(one));
        (void)n;
}

/* Reset fd's counter; false when it was already zero. */
bool ev__eventfd_clear(int fd) {
        uint64_t counter;

        return read(fd, &counter, sizeof(counter)) == sizeof(counter);
}

