/* SPDX-License-Identifier: MIT */
/*
 * Sealed memfds: how bytes cross to another process without a copy through
 * the socket, and without trusting that process.  A snapshot's memfd is
 * sealed against every change before it is sent, and a receiver maps one
 * only after checking those seals and its size, so neither side can make
 * the other SIGBUS or change bytes it already handed out.  The state page
 * is the one memfd the server keeps writing, through the shared mapping it
 * made before sealing F_SEAL_FUTURE_WRITE: nobody else can write it.  A
 * write-sealed memfd is mapped MAP_PRIVATE: a read-only shared mapping of
 * one fails before Linux 6.7.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "protocol.h"

#ifndef F_SEAL_FUTURE_WRITE
#define F_SEAL_FUTURE_WRITE 0x0010
#endif

#define SEALS_DATA (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)
#define SEALS_PAGE (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL)

static int memfd_new(void) {
        int fd = memfd_create("ev-value", MFD_CLOEXEC | MFD_ALLOW_SEALING);

        return fd < 0 ? -errno : fd;
}

static int write_all(int fd, const void *data, size_t size) {
        const char *p = data;

        while (size > 0) {
                ssize_t n = write(fd, p, size);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return n < 0 ? -errno : -EIO;
                p += n;
                size -= (size_t)n;
        }
        return 0;
}

int ev__memfd_new_sealed(const void *data, size_t size) {
        int fd = memfd_new(), r;

        if (fd < 0)
                return fd;
        r = write_all(fd, data, size);
        if (r == 0 && fcntl(fd, F_ADD_SEALS, SEALS_DATA) < 0)
                r = -errno;
        if (r < 0) {
                close(fd);
                return r;
        }
        return fd;
}

/* fd is a memfd of exactly size bytes carrying at least the seals. */
static bool memfd_is_sealed(int fd, int seals, uint64_t size) {
        struct stat st;
        int got = fcntl(fd, F_GET_SEALS);

        return got >= 0 && (got & seals) == seals && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
               st.st_size >= 0 && (uint64_t)st.st_size == size;
}

int ev__memfd_map_sealed(int fd, size_t size, const void **ret) {
        void *p;

        if (size == 0 || !memfd_is_sealed(fd, SEALS_DATA, size))
                return -EPROTO;
        /* Populated: a consumer reads its snapshot, and mapping every page
         * at once costs less than a fault per page (a 16 or 64 KiB state
         * crossed in 2.6-3.0 times a raw message's time instead of 3.8-4.8:
         * bench/scenario-ipc.c). */
        p = mmap(NULL, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (p == MAP_FAILED)
                return errno == ENOMEM ? -ENOMEM : -EPROTO;
        *ret = p;
        return 0;
}

int ev__memfd_new_page(struct ev__ipc_page **ret_page) {
        int fd = memfd_new(), r = 0;
        void *p = MAP_FAILED;

        if (fd < 0)
                return fd;
        if (ftruncate(fd, EV__IPC_PAGE_SIZE) < 0)
                r = -errno;
        if (r == 0) {
                p = mmap(NULL, EV__IPC_PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                if (p == MAP_FAILED)
                        r = -errno;
        }
        /* After the mapping: the seal forbids new writable ones, not it. */
        if (r == 0 && fcntl(fd, F_ADD_SEALS, SEALS_PAGE | F_SEAL_FUTURE_WRITE) < 0)
                r = -errno;
        if (r < 0) {
                if (p != MAP_FAILED)
                        munmap(p, EV__IPC_PAGE_SIZE);
                close(fd);
                return r;
        }
        *ret_page = p;
        return fd;
}

int ev__memfd_map_page(int fd, const struct ev__ipc_page **ret) {
        void *p;

        /* Written by the server alone: F_SEAL_FUTURE_WRITE keeps the
         * other peers out. */
        if (!memfd_is_sealed(fd, SEALS_PAGE | F_SEAL_FUTURE_WRITE, EV__IPC_PAGE_SIZE))
                return -EPROTO;
        p = mmap(NULL, EV__IPC_PAGE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return errno == ENOMEM ? -ENOMEM : -EPROTO;
        *ret = p;
        return 0;
}
