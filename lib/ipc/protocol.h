/* SPDX-License-Identifier: MIT */
/*
 * The wire protocol between a server (server.c) and its peers (remote.c,
 * remote-set.c), over one AF_UNIX SOCK_SEQPACKET connection per peer.  Both
 * ends run on one machine, so integers are in host order.  Every message is
 * one header, then the data inline or in one memfd passed with SCM_RIGHTS:
 *
 *   peer -> server   HELLO  first message; flags: SKIP_CURRENT, SETTER
 *                    SET    (setters only) size bytes, inline or DATA_FD;
 *                           IF_CHANGED: EV_VALUE_SET_IF_CHANGED, which the
 *                           server applies under the value's lock, so
 *                           that no other set comes between the compare
 *                           and the set
 *   server -> peer   STATE  the state (version << 1 | closed) and its
 *                           snapshot: size bytes inline or DATA_FD, or
 *                           NO_DATA when the news is only the close; the
 *                           first STATE a watcher gets also carries the
 *                           state page (PAGE_FD)
 *                    REPLY  a setter's answer: code 0 or a positive errno;
 *                           with code 0, SKIPPED says that an IF_CHANGED
 *                           set found the same bytes and made no version
 *                           (only an IF_CHANGED set may be answered so)
 *                    ERROR  the peer broke the protocol or a limit (code),
 *                           sent before the server drops it
 *
 * The state page is a memfd of EV__IPC_PAGE_SIZE bytes sealed against
 * shrinking, growing and writes by anyone but the server's own mapping
 * (F_SEAL_FUTURE_WRITE): it holds the newest state the server published,
 * so that a watcher's get finds out that nothing is new without a system
 * call.  A STATE message is padded to EV__IPC_MIN_MESSAGE bytes, so that
 * while a watcher has not read it the server's end of the connection,
 * which has the smallest send buffer, reports itself unwritable: the
 * watcher's recv is its acknowledgement (server.c).
 */
#ifndef EV_VALUE_IPC_PROTOCOL_H
#define EV_VALUE_IPC_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define EV__IPC_MAGIC UINT32_C(0x65764931) /* "evI1" */

enum ev__ipc_type {
        EV__IPC_HELLO = 1,
        EV__IPC_SET = 2,
        EV__IPC_STATE = 3,
        EV__IPC_REPLY = 4,
        EV__IPC_ERROR = 5,
};

enum ev__ipc_flag {
        EV__IPC_DATA_FD = 1u << 0,      /* SET, STATE: the data is a memfd */
        EV__IPC_PAGE_FD = 1u << 1,      /* STATE: the state page comes too */
        EV__IPC_SKIP_CURRENT = 1u << 2, /* HELLO: EV_VALUE_WATCH_SKIP_CURRENT */
        EV__IPC_SETTER = 1u << 3,       /* HELLO: the peer sets, it does not watch */
        EV__IPC_NO_DATA = 1u << 4,      /* STATE: the peer has this version's
                                         * snapshot; the news is the close */
        EV__IPC_IF_CHANGED = 1u << 5,   /* SET: EV_VALUE_SET_IF_CHANGED */
        EV__IPC_SKIPPED = 1u << 6,      /* REPLY: the IF_CHANGED set was skipped */
};

struct ev__ipc_header {
        uint32_t magic;
        uint16_t type;
        uint16_t flags;
        uint32_t code;          /* REPLY, ERROR: 0 or a positive errno */
        uint32_t reserved;      /* 0 */
        uint64_t state;         /* STATE: version << 1 | closed */
        uint64_t size;          /* SET, STATE: the data's size */
};

/* The smallest STATE message (see above), and the largest message of
 * either direction.  Inline data costs less than a memfd at every size
 * measured, 256 bytes to 64 KiB (a memfd's creation, writes, seals,
 * mapping and page faults cost 9 to 12 times a message of the same size:
 * bench/scenario-ipc.c), so data goes inline up to the most that a socket
 * of the smallest send buffer takes in one message (4576 bytes here), and
 * only larger data in a memfd, which then saves the copies. */
#define EV__IPC_MIN_MESSAGE 256
#define EV__IPC_INLINE_MAX 4096
#define EV__IPC_MAX_MESSAGE (sizeof(struct ev__ipc_header) + EV__IPC_INLINE_MAX)
#define EV__IPC_PAGE_SIZE 4096
/* A STATE carries at most the page and the data; more is a violation. */
#define EV__IPC_MAX_FDS 2
/* The largest snapshot a server sends or a consumer accepts in a memfd. */
#define EV__IPC_MAX_SIZE (UINT64_C(1) << 32)
/* The largest remote set a server accepts (documented in ev_value_serve(3)). */
#define EV__IPC_MAX_SET_SIZE (UINT64_C(64) << 20)

/* What the state page holds. */
struct ev__ipc_page {
        _Atomic uint64_t state;
        _Atomic uint64_t gone;  /* 1 once the server is freed */
};

/* One received message, checked: fds taken from every SCM_RIGHTS. */
struct ev__ipc_message {
        struct ev__ipc_header header;
        const void *data;       /* inline data, or NULL */
        int data_fd;            /* DATA_FD: the memfd, else -1 */
        int page_fd;            /* PAGE_FD: the state page, else -1 */
};

/* Receive one message from fd without blocking, with MSG_CMSG_CLOEXEC,
 * into buf (EV__IPC_MAX_MESSAGE bytes) and check it as decode does: 1 with
 * *ret filled (its fds are the caller's), 0 at end of stream, -EAGAIN,
 * -EPROTO (every fd received is closed), or another negative errno. */
int ev__ipc_recv(int fd, void *buf, bool from_server, struct ev__ipc_message *ret);
/* Receive up to n (at most EV__IPC_MAX_BATCH) messages with one system
 * call, each into its buffer and checked: how many messages, with
 * *ret_ended telling whether the stream ended after them; -EAGAIN when
 * none waited; -EPROTO when any of them broke the protocol (every fd of
 * the batch closed); or another negative errno.  One call thus tells a
 * consumer what waits and whether anything may still come. */
#define EV__IPC_MAX_BATCH 2
int ev__ipc_recv_batch(int fd, void *const bufs[], size_t n, bool from_server,
                       struct ev__ipc_message ret[], bool *ret_ended);
/* Check n bytes of buf and the fds that came with them (msg_flags as
 * recvmsg gave them): 0 with *ret filled, or -EPROTO.  Takes no fd. */
int ev__ipc_decode(const void *buf, size_t n, const int *fds, size_t n_fds, int msg_flags,
                   bool from_server, struct ev__ipc_message *ret);
/* Send a header and size bytes of data (inline unless data_fd >= 0), with
 * up to two fds, without blocking: 0 or a negative errno. */
int ev__ipc_send(int fd, const struct ev__ipc_header *h, const void *data, int page_fd,
                 int data_fd);
/* Close the fds of a message the caller will not use. */
void ev__ipc_message_close(struct ev__ipc_message *m);

/* address.c: path, or "@name" for an abstract socket, as a sockaddr:
 * 0, -EINVAL or -ENAMETOOLONG. */
struct sockaddr_un;
int ev__ipc_address(const char *path, struct sockaddr_un *ret, unsigned *ret_len);
/* A new SOCK_SEQPACKET socket connected to address without waiting for
 * the server (a full backlog gives -EAGAIN), or a negative errno. */
int ev__ipc_connect(const struct sockaddr_un *address, unsigned len);
/* fd is an AF_UNIX SOCK_SEQPACKET socket, listening or connected as asked:
 * 0, -EBADF (not open), -ENOTSOCK or -EINVAL. */
int ev__ipc_check_socket(int fd, bool listening);

/* memfd.c: data in sealed memfds. */
/* A memfd holding size bytes of data, sealed against every change. */
int ev__memfd_new_sealed(const void *data, size_t size);
/* Map a memfd a peer sent as size bytes of immutable data, after checking
 * that it is a memfd of exactly that size with every seal: 0 or -EPROTO. */
int ev__memfd_map_sealed(int fd, size_t size, const void **ret);
/* The state page: created by the server, mapped read-only by watchers. */
int ev__memfd_new_page(struct ev__ipc_page **ret_page);
int ev__memfd_map_page(int fd, const struct ev__ipc_page **ret);

#endif
