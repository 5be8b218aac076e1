/* SPDX-License-Identifier: MIT */
/*
 * Sending and receiving the messages of protocol.h, and checking every
 * message received before anything else looks at it: its type for the
 * direction, its size against what its header says, its flags, and the
 * number of fds that came with it, counted from each control message's
 * cmsg_len.  A message that fails a check is a protocol violation; the
 * fds that came with it are closed, never used.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "protocol.h"

#define HEADER_SIZE sizeof(struct ev__ipc_header)
/* Room for more fds than any message may carry, so that a few extra ones
 * are counted (and closed) rather than truncated. */
#define CONTROL_FDS 8

int ev__ipc_send(int fd, const struct ev__ipc_header *h, const void *data, int page_fd,
                 int data_fd) {
        static const char zeros[EV__IPC_MIN_MESSAGE];
        size_t inline_size = data_fd < 0 ? (size_t)h->size : 0;
        size_t length = HEADER_SIZE + inline_size;
        struct iovec iov[3] = {
                { .iov_base = (void *)h, .iov_len = HEADER_SIZE },
                { .iov_base = (void *)data, .iov_len = inline_size },
                { .iov_base = (void *)zeros, .iov_len = 0 },
        };
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * EV__IPC_MAX_FDS)];
        } control;
        struct msghdr msg = { .msg_iov = iov, .msg_iovlen = 3 };
        int fds[EV__IPC_MAX_FDS], n_fds = 0;

        if (h->type == EV__IPC_STATE && length < EV__IPC_MIN_MESSAGE)
                iov[2].iov_len = EV__IPC_MIN_MESSAGE - length;
        if (page_fd >= 0)
                fds[n_fds++] = page_fd;
        if (data_fd >= 0)
                fds[n_fds++] = data_fd;
        if (n_fds > 0) {
                struct cmsghdr *c;

                memset(&control, 0, sizeof(control));
                msg.msg_control = control.buf;
                msg.msg_controllen = CMSG_SPACE(sizeof(int) * (size_t)n_fds);
                c = CMSG_FIRSTHDR(&msg);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * (size_t)n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * (size_t)n_fds);
        }
        if (sendmsg(fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL) < 0)
                return -errno;
        return 0;
}

/* The flags each type may carry. */
static unsigned type_flags(uint16_t type) {
        switch (type) {
        case EV__IPC_HELLO:
                return EV__IPC_SKIP_CURRENT | EV__IPC_SETTER;
        case EV__IPC_SET:
                return EV__IPC_DATA_FD | EV__IPC_IF_CHANGED;
        case EV__IPC_STATE:
                return EV__IPC_DATA_FD | EV__IPC_PAGE_FD | EV__IPC_NO_DATA;
        case EV__IPC_REPLY:
                return EV__IPC_SKIPPED;
        default:
                return 0;
        }
}

static bool type_is_from_server(uint16_t type) {
        return type == EV__IPC_STATE || type == EV__IPC_REPLY || type == EV__IPC_ERROR;
}

static bool type_is_from_peer(uint16_t type) {
        return type == EV__IPC_HELLO || type == EV__IPC_SET;
}

/* The data of a SET or STATE: size bytes inline or one memfd of a size too
 * large to go inline, the whole message padded to min_length. */
static bool data_is_valid(const struct ev__ipc_header *h, size_t n, size_t n_data_fds,
                          size_t min_length) {
        size_t length = HEADER_SIZE;

        if (h->flags & EV__IPC_DATA_FD) {
                if (n_data_fds != 1 || h->size <= EV__IPC_INLINE_MAX || h->size > EV__IPC_MAX_SIZE)
                        return false;
        } else {
                if (n_data_fds != 0 || h->size > EV__IPC_INLINE_MAX)
                        return false;
                length += (size_t)h->size;
        }
        return n == (length < min_length ? min_length : length);
}

static bool state_is_valid(const struct ev__ipc_header *h, size_t n, size_t n_fds) {
        size_t n_data_fds = n_fds - ((h->flags & EV__IPC_PAGE_FD) ? 1 : 0);

        if (h->state == 0 || ((h->flags & EV__IPC_PAGE_FD) && n_fds == 0))
                return false;
        if (h->flags & EV__IPC_NO_DATA)
                return (h->state & 1) && !(h->flags & EV__IPC_DATA_FD) && h->size == 0 &&
                       n_data_fds == 0 && n == EV__IPC_MIN_MESSAGE;
        /* Version 0 has no snapshot: only the close of a never-set value. */
        return (h->state >> 1) > 0 && data_is_valid(h, n, n_data_fds, EV__IPC_MIN_MESSAGE);
}

static bool header_is_valid(const struct ev__ipc_header *h, size_t n, size_t n_fds) {
        bool bare = n == HEADER_SIZE && n_fds == 0 && h->size == 0 && h->state == 0;

        if (h->magic != EV__IPC_MAGIC || h->reserved != 0 || (h->flags & ~type_flags(h->type)))
                return false;
        switch (h->type) {
        case EV__IPC_HELLO:
                return bare && h->code == 0;
        case EV__IPC_SET:
                return h->code == 0 && h->state == 0 && data_is_valid(h, n, n_fds, 0);
        case EV__IPC_STATE:
                return h->code == 0 && state_is_valid(h, n, n_fds);
        case EV__IPC_REPLY:
                return bare && h->code < 4096;
        case EV__IPC_ERROR:
                return bare && h->code > 0 && h->code < 4096;
        default:
                return false;
        }
}

int ev__ipc_decode(const void *buf, size_t n, const int *fds, size_t n_fds, int msg_flags,
                   bool from_server, struct ev__ipc_message *ret) {
        struct ev__ipc_header h;
        size_t i = 0;

        if ((msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || n < HEADER_SIZE || n > EV__IPC_MAX_MESSAGE ||
            n_fds > EV__IPC_MAX_FDS)
                return -EPROTO;
        memcpy(&h, buf, HEADER_SIZE);
        if (from_server ? !type_is_from_server(h.type) : !type_is_from_peer(h.type))
                return -EPROTO;
        if (!header_is_valid(&h, n, n_fds))
                return -EPROTO;
        ret->header = h;
        ret->page_fd = (h.flags & EV__IPC_PAGE_FD) ? fds[i++] : -1;
        ret->data_fd = (h.flags & EV__IPC_DATA_FD) ? fds[i++] : -1;
        ret->data = (h.type == EV__IPC_SET || h.type == EV__IPC_STATE) && ret->data_fd < 0
                            ? (const char *)buf + HEADER_SIZE
                            : NULL;
        return 0;
}

/* Take the fds of every SCM_RIGHTS in msg into fds (at most CONTROL_FDS);
 * any other control message makes the message a violation.  Returns how
 * many fds, or -EPROTO with every fd closed. */
static int take_fds(struct msghdr *msg, int fds[CONTROL_FDS]) {
        size_t n = 0;
        bool foreign = false;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(msg); c; c = CMSG_NXTHDR(msg, c)) {
                size_t k;

                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
                    c->cmsg_len < CMSG_LEN(0)) {
                        foreign = true;
                        continue;
                }
                k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                for (size_t i = 0; i < k; i++) {
                        int fd;

                        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
                        if (n < CONTROL_FDS)
                                fds[n++] = fd;
                        else
                                close(fd);
                }
        }
        if (foreign) {
                for (size_t i = 0; i < n; i++)
                        close(fds[i]);
                return -EPROTO;
        }
        return (int)n;
}

static void close_fds(const int *fds, size_t n) {
        for (size_t i = 0; i < n; i++)
                close(fds[i]);
}

int ev__ipc_recv_batch(int fd, void *const bufs[], size_t n, bool from_server,
                       struct ev__ipc_message ret[], bool *ret_ended) {
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * CONTROL_FDS)];
        } control[EV__IPC_MAX_BATCH];
        struct iovec iov[EV__IPC_MAX_BATCH];
        struct mmsghdr mm[EV__IPC_MAX_BATCH];
        int fds[EV__IPC_MAX_BATCH][CONTROL_FDS], n_fds[EV__IPC_MAX_BATCH] = { 0 };
        size_t got, decoded = 0;
        bool ended = false, broken = false;
        int k;

        if (n > EV__IPC_MAX_BATCH)
                n = EV__IPC_MAX_BATCH;
        memset(mm, 0, sizeof(mm));
        for (size_t i = 0; i < n; i++) {
                iov[i] = (struct iovec){ .iov_base = bufs[i], .iov_len = EV__IPC_MAX_MESSAGE };
                mm[i].msg_hdr.msg_iov = &iov[i];
                mm[i].msg_hdr.msg_iovlen = 1;
                mm[i].msg_hdr.msg_control = control[i].buf;
                mm[i].msg_hdr.msg_controllen = sizeof(control[i].buf);
        }
        k = recvmmsg(fd, mm, (unsigned)n, MSG_DONTWAIT | MSG_CMSG_CLOEXEC, NULL);
        if (k < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        got = (size_t)k;
        /* Every fd first, so that a violation anywhere closes them all. */
        for (size_t i = 0; i < got; i++) {
                n_fds[i] = take_fds(&mm[i].msg_hdr, fds[i]);
                if (n_fds[i] < 0) {
                        n_fds[i] = 0;
                        broken = true;
                }
        }
        for (size_t i = 0; i < got && !ended && !broken; i++) {
                struct msghdr *h = &mm[i].msg_hdr;

                /* An empty message without fds is the end of the stream
                 * (recvmmsg counts it), or a peer's empty message, which
                 * ends it all the same: what follows is dropped. */
                if (mm[i].msg_len == 0 && n_fds[i] == 0 && !(h->msg_flags & MSG_CTRUNC))
                        ended = true;
                else if (ev__ipc_decode(bufs[i], mm[i].msg_len, fds[i], (size_t)n_fds[i],
                                        h->msg_flags, from_server, &ret[i]) < 0)
                        broken = true;
                else
                        decoded++;
        }
        if (broken)
                decoded = 0;
        for (size_t i = decoded; i < got; i++) /* all, or those past the end */
                close_fds(fds[i], (size_t)n_fds[i]);
        if (broken)
                return -EPROTO;
        *ret_ended = ended;
        return (int)decoded;
}

int ev__ipc_recv(int fd, void *buf, bool from_server, struct ev__ipc_message *ret) {
        bool ended;
        int r = ev__ipc_recv_batch(fd, &buf, 1, from_server, ret, &ended);

        return r == 0 && !ended ? -EAGAIN : r;
}

void ev__ipc_message_close(struct ev__ipc_message *m) {
        if (m->page_fd >= 0)
                close(m->page_fd);
        if (m->data_fd >= 0)
                close(m->data_fd);
        m->page_fd = m->data_fd = -1;
}
