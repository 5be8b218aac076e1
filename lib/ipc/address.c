/* SPDX-License-Identifier: MIT */
/*
 * Socket addresses of served values: a file system path, or "@name" for a
 * socket in the abstract namespace, which needs no directory and vanishes
 * with its last fd; connecting to one; and checking that a socket the
 * caller hands over is one of ours.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "protocol.h"

int ev__ipc_address(const char *path, struct sockaddr_un *ret, unsigned *ret_len) {
        size_t n;

        if (!path || !path[0] || (path[0] == '@' && !path[1]))
                return -EINVAL;
        n = strlen(path);
        if (n >= sizeof(ret->sun_path))
                return -ENAMETOOLONG;
        memset(ret, 0, sizeof(*ret));
        ret->sun_family = AF_UNIX;
        memcpy(ret->sun_path, path, n);
        if (path[0] == '@') {
                ret->sun_path[0] = '\0'; /* abstract: the name is every byte after it */
                *ret_len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + n);
        } else {
                *ret_len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + n + 1);
        }
        return 0;
}

int ev__ipc_connect(const struct sockaddr_un *address, unsigned len) {
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        if (fd < 0)
                return -errno;
        /* Non-blocking: on AF_UNIX, connect completes at once or fails. */
        if (connect(fd, (const struct sockaddr *)address, len) < 0) {
                int r = errno == EWOULDBLOCK ? -EAGAIN : -errno;

                close(fd);
                return r;
        }
        return fd;
}

int ev__ipc_check_socket(int fd, bool listening) {
        int domain, type, accepting = 0;
        socklen_t len = sizeof(int);

        if (fcntl(fd, F_GETFD) < 0)
                return -EBADF;
        if (getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &len) < 0)
                return errno == ENOTSOCK ? -ENOTSOCK : -EINVAL;
        len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
                return -EINVAL;
        len = sizeof(int);
        if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &len) < 0)
                return -EINVAL;
        return domain == AF_UNIX && type == SOCK_SEQPACKET && accepting == listening ? 0 : -EINVAL;
}
