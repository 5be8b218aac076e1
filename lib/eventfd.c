/* SPDX-License-Identifier: MIT */
/*
 * Writing and draining a watcher's eventfd.  The protocol in internal.h
 * writes an eventfd only while its counter is zero and drains it only after
 * a write, so neither call can find the counter full or empty; their errors
 * cannot happen and are deliberately ignored.
 */
#include "config.h"

#include <stdint.h>
#include <unistd.h>

#include "internal.h"

void ev__eventfd_signal(int fd) {
        uint64_t one = 1;
        ssize_t n = write(fd, &one, sizeof(one));
        (void)n;
}

void ev__eventfd_clear(int fd) {
        uint64_t counter;
        ssize_t n = read(fd, &counter, sizeof(counter));
        (void)n;
}
