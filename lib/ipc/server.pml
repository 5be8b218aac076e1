/* SPDX-License-Identifier: MIT */
/*
 * A Promela model of the remote notification of server.c (the sets' hook
 * server_publish, server_unlock, server_lock, publish_locked,
 * collect_acknowledgements and the part of ev_value_server_process that
 * drops and accepts peers) and of the consumer's get in remote.c
 * (ev__remote_take, remote_receive, the state page's fast path), checked
 * exhaustively with spin by tests/check-model.sh.  It mirrors the C code
 * step by step: change it with server.c and remote.c.
 *
 * Processes and the C functions they model:
 *   - setter, two of them: NSETS (default 1) calls of ev_value_set each:
 *     the new snapshot and state under the value's lock (one step: the
 *     sets are serialized by it, and the server reads only the snapshot,
 *     through current_state), then the hook, server_publish: pending,
 *     test_and_set(busy), publish_locked, server_unlock with its re-check
 *     of pending;
 *   - process: the producer's loop calling ev_value_server_process
 *     whenever the server's epoll fd is readable (an acknowledgement
 *     pending on arm_fd, a peer hung up, a peer connecting), until
 *     nothing is: server_lock, the epoll_wait on epoll_fd (accept and
 *     read the HELLO of a connecting peer, read the end of a dead one),
 *     publish_locked, server_unlock;
 *   - consumer(i), one per peer, NP (2) peers: a loop of gets
 *     (ev__remote_take: the page's fast path, then remote_receive's recvs,
 *     each recv being the acknowledgement).  Consumer 0 polls for POLLIN
 *     before each get (an event loop's one get per wake-up); consumer 1
 *     gets until -EAGAIN and polls only then (ev_watcher_wait, a draining
 *     loop), which makes the gets that end on the page's fast path.  With
 *     ANY_GETS, each consumer chooses either before each get.  With
 *     PEER_DIES, consumer 1 may close its connection between any two
 *     gets (or never: the runs where it lives are included); with
 *     LATE_PEER, it connects at any point and the server accepts it in
 *     process, with flags 0 or EV_VALUE_WATCH_SKIP_CURRENT;
 *   - monitor: the invariants below, in every reachable state;
 *   - quiescence: the end state, once nothing else can move (timeout).
 * Each Promela step is one atomic step of the C code: one atomic load,
 * store or test-and-set, one system call (a send, a recv, an epoll_wait).
 * The server's own fields (ready list, sent, published, dropped) change
 * only under busy and are read by no other thread, so their updates and
 * tests are folded into the neighbouring step (so is the walk of the
 * ready list past peers it does not send to); so is a consumer's
 * bookkeeping of what its get returns; ghost variables (working,
 * in_publish, base) change in the step they describe.  One step joins two
 * system calls: process's test_and_set of busy and its epoll_wait of
 * epoll_fd, as nothing another thread does between them is seen by the
 * epoll_wait differently from just before the test_and_set or just after
 * the epoll_wait.  The model is sequentially consistent: the C atomics are
 * seq_cst, the page's store is release and its loads acquire, and system
 * calls are full barriers.
 *
 * Abstractions, and why they are sound:
 *   - a snapshot is its version, and a state is the version (no close:
 *     current_state is then the current snapshot's version << 1, and the
 *     server reads nothing else of the value); bytes, memfds, the page fd
 *     and reference counts decide nothing about who is sent what;
 *   - a peer's connection is a one-place channel slot[p] (0: empty, else
 *     the state of the STATE message in it): the server's end has the
 *     smallest send buffer, so an unread STATE makes it unwritable and a
 *     send fails with EAGAIN, which ev_value_serve's probe checks;
 *   - arm_fd's EPOLLOUT | EPOLLET registration of p is edge[p]: the
 *     consumer's recv (which frees the buffer, so wakes the server's end)
 *     and its close set it; an epoll_wait takes every pending edge in one
 *     step, and reports p only if p is writable then (slot empty) or hung
 *     up, as epoll polls an item again before reporting it and drops an
 *     edge-triggered one it finds not ready (a wake-up during the scan is
 *     kept for the next call: the same as a recv just after it);
 *   - the ready list is the flags ready[], walked in index order: sends
 *     to different peers touch different slots, so the order only
 *     renames interleavings the search covers anyway;
 *   - epoll_fd is readable when a peer is writable with its edge pending,
 *     a peer hung up and is not yet dropped, or a peer waits to be
 *     accepted (epoll drops from arm_fd's ready list an edge-triggered
 *     item it finds not ready when epoll_fd is polled); process runs
 *     whenever it is readable, and may find by then that a set took the
 *     edge: then its publish_locked finds nothing to do, as in the C code;
 *   - a consumer that stops reading is one the search does not schedule:
 *     the monitor's invariant holds in every such state;
 *   - server_lock's sched_yield loop is a blocking test-and-set: a
 *     thread stuck there forever shows as an invalid end state;
 *   - a peer that dies: its close empties its queue, wakes the server's
 *     end (edge) with EPOLLHUP, and a later send fails (EPIPE); a death
 *     between the two recvs of one get is a death after a get that made
 *     one, so deaths between gets cover every state the server sees.
 * Left out: the close (publish_locked's finish branch and peer_finish),
 * ev_value_server_free, remote sets, protocol violations and the ERROR
 * message, the per-uid limit, sends failing with ENOMEM, EMFILE or
 * ENFILE (the peer stays ready with sent unchanged, and only a later
 * set or process call retries), and stashed messages (-ENOMEM in get).
 *
 * Properties: assertions and end states, verified by pan built with
 * -DSAFETY (exhaustive search, partial order reduction):
 *   (1) no lost wake.  Monitor: when no setter is between its set and the
 *       end of its server_publish and process is not running (working ==
 *       0, a ghost), every live accepted peer has been sent the newest
 *       state (sent[p] == cur), or has a message unread (its poll
 *       returns, and its read will be an acknowledgement), or has an
 *       acknowledgement pending (edge[p]: process will run).  End: once
 *       nothing can move (the setters ended, process waits for its epoll
 *       fd, every consumer polls), every live consumer's last get
 *       returned the final state (or SKIP_CURRENT counted it as seen),
 *       every dead peer is dropped, and busy is free.
 *   (2) one message in flight: the slot holds one; a ready peer never has
 *       an unread message (monitor), so a send never finds the slot full
 *       (assertion at each send, whose EAGAIN branch is modelled all the
 *       same).
 *   (3) the states a consumer receives, and the versions its gets return,
 *       strictly increase (else remote_apply would end it with -EPROTO).
 *   (4) busy excludes: at most one thread in publish_locked, and it holds
 *       busy.
 *   (5) no spurious readiness: a get right after poll reported POLLIN
 *       returns a snapshot (the page is stored before the sends).
 *
 * Mutants, each of which the check must find a violation in (spin -D...):
 *   BUG_NO_RECHECK       server_unlock clears busy and returns without
 *                        looking at pending: the set that found busy taken
 *                        is never published -> (1).
 *   BUG_NO_READY_ADD     collect_acknowledgements takes the edges but does
 *                        not put the acknowledged peers on the ready list:
 *                        they are never sent the newer state -> (1).
 *   BUG_STAY_READY       a peer sent a STATE stays on the ready list: the
 *                        next publish sends past the unread one -> (2).
 *   BUG_RECHECK_NO_TAS   server_unlock's re-check publishes without taking
 *                        busy again -> (4).
 *   BUG_PENDING_LATE     server_publish clears pending after its
 *                        publish_locked, not before: a set that found busy
 *                        taken meanwhile is forgotten -> (1).
 *   BUG_PAGE_AFTER_SEND  publish_locked stores the page after the sends: a
 *                        consumer woken by a STATE trusts the old page and
 *                        returns -EAGAIN -> (5).
 */

/* Sets by each of the two setters. */
#ifndef NSETS
#define NSETS 1
#endif

/* Peers; process's wake-up test names both. */
#define NP 2

/* The value: the version of its current snapshot. */
byte cur;

/* struct ev_value_server */
bool busy;              /* srv->busy */
bool pending;           /* srv->pending */
byte published;         /* srv->published */
byte page;              /* srv->page->state, which every peer maps */

/* struct peer, and the connection */
bool ready[NP];         /* on srv->ready */
byte sent[NP];          /* p->sent */
bool accepted[NP];      /* a watcher, registered on arm_fd */
bool dropped[NP];       /* peer_drop'ped (p->dead) */
byte slot[NP];          /* the STATE unread in the connection, or 0 */
bool edge[NP];          /* arm_fd: an EPOLLOUT | EPOLLET event pending */
bool connecting[NP];    /* connected, not yet accepted */
bool dead[NP];          /* the consumer closed its end */

/* struct ev__remote, the consumer's */
byte seen[NP];          /* r->seen */

/* Ghosts */
byte working;           /* setters in ev_value_set, process runs */
byte in_publish;        /* threads in publish_locked */
byte base[NP];          /* the state counted as seen when accepted */
bool skip_current[NP];  /* connected with EV_VALUE_WATCH_SKIP_CURRENT */

#define live(p) (accepted[p] && !dead[p])
/* (1): at rest, every live peer has the newest state, or will have it. */
#define not_lost(p) \
	(!(working == 0 && live(p)) || sent[p] == cur || slot[p] != 0 || edge[p])
/* (2): a ready peer has no unread STATE. */
#define one_in_flight(p) (!(ready[p] && !dead[p]) || slot[p] == 0)

/* epoll_fd is readable. */
#define wake(p) \
	(connecting[p] || (accepted[p] && !dropped[p] && (dead[p] || (edge[p] && slot[p] == 0))))

/* The locals every server thread uses for the inlines below. */
#define LOCALS byte st, p; bool ok

/* peer_drop: off the ready list and arm_fd, closed. */
inline drop(q) {
	ready[q] = false;
	dropped[q] = true;
	edge[q] = false
}

/* A ready peer behind st: the next to send to, in the walk of the ready
 * list (server-local data, so its test joins the step before). */
#define behind(q) (ready[q] && sent[q] < st)

/* The walk of the ready list from p on: p is the next peer to send to,
 * or NP when none is left, and then publish_locked returns. */
inline next_behind() {
	do
	:: p < NP && !behind(p) -> p++
	:: else -> break
	od;
	if
	:: p == NP -> in_publish--; st = 0
	:: else
	fi
}

/* collect_acknowledgements: one epoll_wait of arm_fd, then the start of
 * the walk of the ready list. */
inline collect() {
	atomic {
		p = 0;
		do
		:: p < NP ->
			if
			:: accepted[p] && !dropped[p] && edge[p] ->
				edge[p] = false;
				if
				:: dead[p] -> drop(p)           /* EPOLLHUP */
				:: !dead[p] && slot[p] == 0 ->  /* EPOLLOUT */
#ifndef BUG_NO_READY_ADD
					ready[p] = true
#else
					skip
#endif
				:: else                 /* not writable: not reported */
				fi
			:: else
			fi;
			p++
		:: else -> break
		od;
		p = 0;
		next_behind()
	}
}

/* peer_send_state to p, a ready peer behind, with the walk's ready_remove
 * or peer_drop after it: one sendmsg. */
inline send() {
	atomic {
		if
		:: dead[p] ->                   /* EPIPE */
			drop(p)
		:: !dead[p] && slot[p] != 0 ->  /* EAGAIN */
			assert(false);          /* (2) never past an unread one */
			ready[p] = false
		:: !dead[p] && slot[p] == 0 ->
			slot[p] = st;
			sent[p] = st;
#ifndef BUG_STAY_READY
			ready[p] = false        /* its read will say when */
#else
			skip
#endif
		fi;
		p++;
		next_behind()
	}
}

/* publish_locked: current_state's load of the snapshot, the page's
 * store when the state is new, collect_acknowledgements, and a send to
 * each ready peer behind. */
inline publish_locked() {
	atomic {
		assert(busy && in_publish == 0);        /* (4) */
		in_publish++;
		st = cur;
		ok = st > published
	};
#ifndef BUG_PAGE_AFTER_SEND
	if
	:: atomic { ok -> page = st; published = st; ok = false }
	:: atomic { !ok }
	fi;
#endif
	collect();
	do
	:: p < NP -> send()
	:: else -> break
	od;
#ifdef BUG_PAGE_AFTER_SEND
	if
	:: atomic { ok -> page = st; published = st; ok = false }
	:: atomic { !ok }
	fi;
#endif
	p = 0
}

/* server_unlock, and the return of its caller (the ghost working). */
inline server_unlock() {
	do
	::
		busy = false;
#ifndef BUG_NO_RECHECK
		atomic {
			if
			:: !pending -> working--; break
			:: else
			fi
		};
#ifndef BUG_RECHECK_NO_TAS
		atomic {        /* test_and_set */
			if
			:: busy -> working--; break
			:: else -> busy = true
			fi
		};
#endif
		pending = false;
		publish_locked()
#else
		working--;
		break
#endif
	od
}

/* server_publish, the hook of each set */
inline server_publish() {
	pending = true;
	atomic {        /* test_and_set */
		ok = !busy;
		busy = true;
		if
		:: !ok -> working-- /* the holder publishes for us */
		:: else
		fi
	};
	if
	:: ok ->
#ifndef BUG_PENDING_LATE
		pending = false;
		publish_locked();
#else
		publish_locked();
		pending = false;
#endif
		server_unlock()
	:: else
	fi;
	ok = false
}

/* ev_value_set, NSETS times */
proctype setter() {
	byte n = 0;
	LOCALS;

	do
	:: atomic { n < NSETS -> n++; cur++; working++ }  /* the snapshot and the state */
		server_publish()
	:: atomic { else -> n = 0 }
		break
	od
}

/* The producer's loop: ev_value_server_process whenever epoll_fd is
 * readable. */
proctype process() {
	LOCALS;

end:
	do
	:: atomic { (wake(0) || wake(1)) -> working++ };
		/* server_lock: sched_yield until test_and_set(busy) finds it
		 * clear; then epoll_wait(epoll_fd), and accept_peers and
		 * peer_new with the HELLO (peer_watch: arm_fd, the skipped
		 * state, ready_add), or peer_read of a hung-up peer's end of
		 * stream: all server-local, joined to the lock's step (a
		 * consumer's connect or close just after it is seen by the
		 * next call) */
		atomic {
			!busy -> busy = true;
			p = 0;
			do
			:: p < NP ->
				if
				:: connecting[p] ->
					connecting[p] = false;
					accepted[p] = true;
					edge[p] = true;         /* EPOLL_CTL_ADD of a writable fd */
					if
					:: skip_current[p] -> sent[p] = cur; base[p] = cur
					:: else
					fi;
					ready[p] = true;
					if
					:: dead[p] -> drop(p)   /* HELLO, then end of stream */
					:: else
					fi
				:: accepted[p] && !dropped[p] && dead[p] -> drop(p)
				:: else
				fi;
				p++
			:: else -> break
			od;
			p = 0
		};
		publish_locked();
		server_unlock()
	od
}

/* The end of a get that went to the socket: what it returns. */
inline take_end(i) {
	if
	:: got ->
		assert(rs > seen[i]);   /* (3) versions strictly increase */
		seen[i] = rs;
		trust = true;
		must_poll = false
	:: else ->
		assert(!polled);        /* (5) a readable fd yields something */
		trust = false;
		must_poll = true
	fi;
	rs = 0;
	got = false;
	polled = false
}

/* ev__remote_take, with its checks of what it returns: sets must_poll.
 * Its loads of the page and its recvs are one step each; without
 * trust_page it reads no page before its recv. */
inline remote_take(i) {
	if
	:: atomic { trust && page <= seen[i] ->        /* nothing new on the page */
		trust = false;
		assert(!polled);        /* (5) */
		must_poll = true;
		polled = false }
	:: atomic { !(trust && page <= seen[i]) -> rs = seen[i] }
		do      /* remote_receive */
		:: atomic {     /* recv */
			if
			:: slot[i] == 0 -> take_end(i); break   /* EAGAIN */
			:: else
			fi;
			/* remote_apply: a state not newer is -EPROTO */
			assert(slot[i] > rs);           /* (3) */
			rs = slot[i];
			slot[i] = 0;
			edge[i] = true;         /* the acknowledgement */
			got = true
		};
			if
			:: atomic { page <= rs -> take_end(i); break } /* nothing newer can wait */
			:: atomic { page > rs }
			fi
		od
	fi
}

proctype consumer(byte i) {
	byte rs;
	bool polled, must_poll = false, trust = false, got = false;

#ifdef LATE_PEER
	if
	:: i == NP - 1 ->
		atomic {        /* ev_value_connect: the HELLO waits for process */
			if
			:: skip_current[i] = true
			:: skip_current[i] = false
			fi;
			connecting[i] = true
		}
	:: else
	fi;
#endif
	do
#ifdef PEER_DIES
	:: i == NP - 1 ->
		atomic {        /* close: the queue is freed, the server's end hangs up */
			dead[i] = true;
			slot[i] = 0;
			edge[i] = accepted[i] && !dropped[i]
		};
		break
#endif
#ifdef ANY_GETS
	:: !must_poll ->                /* get first */
		remote_take(i)
	:: true ->
#else
	:: i == NP - 1 && !must_poll -> /* get until -EAGAIN */
		remote_take(i)
	:: i != NP - 1 || must_poll ->  /* poll before each get */
#endif
end_poll:
		atomic {
			slot[i] != 0 ->         /* poll until POLLIN */
			polled = true
		};
		remote_take(i)
	od
}

active proctype monitor() {
end:
	do
	:: atomic { !not_lost(0) -> assert(not_lost(0)) }
	:: atomic { !not_lost(1) -> assert(not_lost(1)) }
	:: atomic { !one_in_flight(0) -> assert(one_in_flight(0)) }
	:: atomic { !one_in_flight(1) -> assert(one_in_flight(1)) }
	od
}

/* Nothing else can move: the end state. */
active proctype quiescence() {
	byte q = 0;

	timeout;
	assert(cur == 2 * NSETS && !busy && in_publish == 0);
	do
	:: q < NP ->
		assert(!connecting[q]);
		if
		:: dead[q] ->
			assert(!accepted[q] || dropped[q])
		:: else ->
			/* (1) the final state was delivered, or counted as seen */
			assert(accepted[q] && sent[q] == cur && slot[q] == 0);
			assert(seen[q] == cur || (seen[q] == 0 && base[q] == cur))
		fi;
		q++
	:: else -> break
	od
}

/* The peers are accepted (their initial EPOLLOUT edge pending, on the
 * ready list) before the sets start, except a late one. */
init {
	atomic {
		accepted[0] = true; edge[0] = true; ready[0] = true;
#ifndef LATE_PEER
		accepted[1] = true; edge[1] = true; ready[1] = true;
#endif
		run setter();
		run setter();
		run process();
		run consumer(0);
		run consumer(1)
	}
}
