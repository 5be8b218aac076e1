/* SPDX-License-Identifier: MIT */
/*
 * Remote sets: one connection per set.  The data goes inline when it is
 * small, else in a sealed memfd, so that the server maps it instead of
 * reading it through the socket; the server answers with one REPLY.  With
 * EV_VALUE_SET_IF_CHANGED the server itself compares, under the value's
 * lock, so that the compare cannot race another set and needs no state
 * first (a value never set is simply set); its REPLY says SKIPPED.
 */
#include "config.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ev-value-ipc.h"
#include "internal.h"
#include "protocol.h"

static int send_set(int fd, const void *data, size_t size, bool if_changed) {
        struct ev__ipc_header hello = { .magic = EV__IPC_MAGIC, .type = EV__IPC_HELLO,
                                        .flags = EV__IPC_SETTER };
        struct ev__ipc_header set = { .magic = EV__IPC_MAGIC, .type = EV__IPC_SET, .size = size,
                                      .flags = if_changed ? EV__IPC_IF_CHANGED : 0 };
        int data_fd = -1, r = ev__ipc_send(fd, &hello, NULL, -1, -1);

        if (r < 0)
                return r;
        if (size > EV__IPC_INLINE_MAX) {
                data_fd = ev__memfd_new_sealed(data, size);
                if (data_fd < 0)
                        return data_fd;
                set.flags |= EV__IPC_DATA_FD;
        }
        r = ev__ipc_send(fd, &set, data, -1, data_fd);
        if (data_fd >= 0)
                close(data_fd);
        return r;
}

/* What the server's answer says: 1 set, 0 skipped, or a negative errno.
 * SKIPPED answers only a set that asked for IF_CHANGED, and only one that
 * succeeded: anything else would be misread by the caller, so it is the
 * server's violation. */
static int reply_result(const struct ev__ipc_header *h, bool if_changed) {
        bool skipped = h->flags & EV__IPC_SKIPPED;

        if (h->type == EV__IPC_STATE || (skipped && (!if_changed || h->code != 0)))
                return -EPROTO;
        if (h->code != 0)
                return -(int)h->code;
        return skipped ? 0 : 1;
}

/* Wait for the REPLY: as reply_result says, or -ETIMEDOUT. */
static int receive_reply(int fd, bool if_changed, int timeout_ms) {
        uint64_t buf[EV__IPC_MAX_MESSAGE / sizeof(uint64_t) + 1];
        int64_t deadline = ev__monotonic_ns() / 1000000 + timeout_ms;
        struct pollfd pfd = { .fd = fd, .events = POLLIN };

        for (;;) {
                struct ev__ipc_message m;
                int left = -1, r;

                if (timeout_ms >= 0) {
                        int64_t now = ev__monotonic_ns() / 1000000;

                        left = now >= deadline ? 0 : (int)(deadline - now);
                }
                r = poll(&pfd, 1, left);
                if (r < 0 && errno != EINTR)
                        return -errno;
                if (r == 0)
                        return -ETIMEDOUT;
                if (r < 0)
                        continue;
                r = ev__ipc_recv(fd, buf, true, &m);
                if (r == -EAGAIN)
                        continue;
                if (r == 0)
                        return -ECONNRESET;
                if (r < 0)
                        return r;
                ev__ipc_message_close(&m);
                return reply_result(&m.header, if_changed);
        }
}

EV_VALUE_PUBLIC int ev_value_remote_set_flags(const char *path, const void *data, size_t size,
                                              unsigned flags, int timeout_ms) {
        bool if_changed = flags & EV_VALUE_SET_IF_CHANGED;
        struct sockaddr_un address;
        unsigned len;
        int fd, r;

        if ((!data && size > 0) || timeout_ms < -1 ||
            (flags & ~(unsigned)EV_VALUE_SET_IF_CHANGED))
                return -EINVAL;
        if (size > EV__IPC_MAX_SIZE)
                return -EMSGSIZE;
        r = ev__ipc_address(path, &address, &len);
        if (r < 0)
                return r;
        fd = ev__ipc_connect(&address, len);
        if (fd < 0)
                return fd;
        r = send_set(fd, data, size, if_changed);
        if (r == 0)
                r = receive_reply(fd, if_changed, timeout_ms);
        close(fd);
        return r;
}

/* One code path for both: without IF_CHANGED a set made answers 1, which
 * this older contract reports as 0. */
EV_VALUE_PUBLIC int ev_value_remote_set(const char *path, const void *data, size_t size,
                                        int timeout_ms) {
        int r = ev_value_remote_set_flags(path, data, size, 0, timeout_ms);

        return r < 0 ? r : 0;
}
