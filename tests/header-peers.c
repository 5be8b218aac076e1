/* SPDX-License-Identifier: MIT */
/*
 * Compiled, never run, by tests/check-header.sh, as C and as C++: includes
 * the headers of the event libraries a program may use next to ours, each
 * chosen by a -D macro, with <ev-value.h> first (HEADER_PEERS_OURS_FIRST),
 * last (HEADER_PEERS_OURS_LAST) or not at all.  The script compares the
 * diagnostics with and without our header, which must be identical: our
 * names must not collide with libev's (ev_watcher, EV_*, ev_ref...),
 * libevent's (EV_READ...), liburing's, sd-event's or GLib's.
 * HEADER_PEERS_USE adds code that uses libev's struct ev_watcher and our
 * ev_value_watcher side by side and checks that they are distinct types.
 * The peers' order is fixed: liburing must come before any other header in
 * strict ISO modes (it defines _GNU_SOURCE itself), and libevent's EV_READ
 * macros break libev's enums if <event2/event.h> comes first.  <glib.h>,
 * which needs `pkg-config --cflags glib-2.0`, comes last of the peers.
 * The -D macros only select lines, so every include keeps its line number
 * and the diagnostics of two builds can be compared line for line.
 */
#ifdef HEADER_PEERS_OURS_FIRST
#include <ev-value.h>
#endif

#ifdef HEADER_PEERS_LIBURING
#include <liburing.h>
#endif
#ifdef HEADER_PEERS_SD_EVENT
#include <systemd/sd-event.h>
#endif
#ifdef HEADER_PEERS_LIBEV
#include <ev.h>
#endif
#ifdef HEADER_PEERS_LIBEVENT
#include <event2/event.h>
#endif
#ifdef HEADER_PEERS_GLIB
#include <glib.h>
#endif

#ifdef HEADER_PEERS_OURS_LAST
#include <ev-value.h>
#endif

#ifdef HEADER_PEERS_USE
/* ev_value_watcher must be a type of its own, not libev's struct renamed. */
#ifdef __cplusplus
template <typename A, typename B> struct header_peers_same { enum { value = 0 }; };
template <typename A> struct header_peers_same<A, A> { enum { value = 1 }; };
#define HEADER_PEERS_DISTINCT(a, b) (!header_peers_same<a, b>::value)
#else
#define HEADER_PEERS_DISTINCT(a, b) _Generic((a *)0, b *: 0, default: 1)
#endif
typedef char header_peers_distinct[HEADER_PEERS_DISTINCT(ev_value_watcher, struct ev_watcher) ? 1 : -1];

static void header_peers_on_io(struct ev_loop *loop, ev_io *io, int revents) {
        (void)loop;
        (void)io;
        (void)revents;
}

int header_peers_use(struct ev_watcher *theirs, ev_value_watcher *ours);

/* libev's watcher, its macros and ours in one function. */
int header_peers_use(struct ev_watcher *theirs, ev_value_watcher *ours) {
        ev_io io;
        ev_value_snapshot *snapshot = NULL;
        int r;

        ev_io_init(&io, header_peers_on_io, ev_watcher_get_fd(ours), EV_READ);
        r = ev_watcher_get(ours, &snapshot);
        ev_snapshot_unref(snapshot);
        return r + ev_is_active(theirs) + ev_is_active(&io) + ev_priority(theirs);
}
#endif

/* ISO C forbids an empty translation unit. */
typedef int header_peers_not_empty;
