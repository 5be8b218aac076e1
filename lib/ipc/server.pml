/* SPDX-License-Identifier: MIT */
/*
 * A Promela model of the remote notification of server.c (the sets' hook
 * server_publish, server_unlock, server_lock, publish_locked with its
 * arm_poll, collect_acknowledgements, the counters of in_flight_enter and
 * in_flight_leave, and the part of ev_value_server_process that drops and
 * accepts peers) and of the consumer's get in remote.c (ev__remote_take,
 * remote_receive with its recvmmsg batches, the state page's fast path),
 * checked exhaustively with spin by tests/check-model.sh.  It mirrors the
 * C code step by step: change it with server.c and remote.c.
 *
 * Processes and the C functions they model:
 *   - setter, two of them: NSETS (default 1) calls of ev_value_set each:
 *     the new snapshot and state under the value's lock (one step: the
 *     sets are serialized by it, and the server reads only the snapshot,
 *     through current_state), then the hook, server_publish: pending,
 *     test_and_set(busy), publish_locked, server_unlock with its re-check
 *     of pending;
 *   - process: the producer's loop calling ev_value_server_process
 *     whenever the server's epoll fd is readable (a peer connecting, a
 *     peer hung up, or arm_fd polled, arm_polled, with an acknowledgement
 *     pending on it), until nothing is: server_lock, the epoll_wait on
 *     epoll_fd (accept and read the HELLO of a connecting peer, read the
 *     end of a dead one), publish_locked, server_unlock;
 *   - consumer(i), one per peer, NP (2) peers: a loop of gets
 *     (ev__remote_take: the page's fast path, then remote_receive's
 *     recvmmsg, whose receipt of a STATE is the acknowledgement).
 *     Consumer 0 polls for POLLIN (level-triggered) before each get (an
 *     event loop's one get per wake-up); with ANY_GETS it chooses either
 *     way before each get.  Consumer 1 is an edge-triggered loop: it gets
 *     until -EAGAIN (or the end), then waits in epoll_wait for an
 *     EPOLLIN | EPOLLET edge (edge_in), which makes the gets that end on
 *     the page's fast path.  With PEER_DIES, consumer 1 may close its
 *     connection between any two gets (or never: the runs where it lives
 *     are included); with LATE_PEER, it connects at any point and the
 *     server accepts it in process, with flags 0 or
 *     EV_VALUE_WATCH_SKIP_CURRENT;
 *   - killer, with SERVER_DIES: the producer is killed at any point (or
 *     never): every connection ends, the STATE unread in it stays
 *     readable before the end, and the end wakes the consumers;
 *   - monitor: the invariants below, in every reachable state;
 *   - quiescence: the end state, once nothing else can move (timeout).
 * Each Promela step is one atomic step of the C code: one atomic load,
 * store or test-and-set, one system call (a send, a recvmmsg, an
 * epoll_wait, arm_poll's epoll_ctl).  The server's own fields (ready
 * list, sent, published, dropped, n_in_flight, n_stale) change only under
 * busy and are read by no other thread, so their updates and tests are
 * folded into the neighbouring step (so is the walk of the ready list past
 * peers it does not send to); so is a consumer's bookkeeping of what its
 * get returns; ghost variables (working, in_publish, base) change in the
 * step they describe.  One step joins two system calls: process's
 * test_and_set of busy and its epoll_wait of epoll_fd, as nothing another
 * thread does between them is seen by the epoll_wait differently from
 * just before the test_and_set or just after the epoll_wait.  The model is
 * sequentially consistent: the C atomics are seq_cst, the page's store is
 * release and its loads acquire, and system calls are full barriers.
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
 *     consumer's receipt of a STATE (which frees the buffer, so wakes the
 *     server's end) and its close set it; an epoll_wait takes every
 *     pending edge in one step, and reports p only if p is writable then
 *     (slot empty) or hung up, as epoll polls an item again before
 *     reporting it and drops an edge-triggered one it finds not ready (a
 *     wake-up during the scan is kept for the next call: the same as a
 *     recv just after it);
 *   - the ready list is the flags ready[], walked in index order: sends
 *     to different peers touch different slots, so the order only
 *     renames interleavings the search covers anyway;
 *   - epoll_fd is readable when a peer waits to be accepted, a peer hung
 *     up and is not yet dropped, or arm_fd is in its interest set
 *     (arm_polled, EPOLLIN, else events 0, which ignores arm_fd's
 *     wake-ups) and a peer is writable with its edge pending (epoll drops
 *     from arm_fd's ready list an edge-triggered item it finds not ready
 *     when epoll_fd is polled; arm_poll's EPOLL_CTL_MOD polls arm_fd
 *     again, so an edge taken while arm_fd was not polled counts from that
 *     step on); process runs whenever it is readable, and may find by then
 *     that a set took the edge: then its publish_locked finds nothing to
 *     do, as in the C code;
 *   - n_in_flight, n_stale and arm_polled are the server's fields, updated
 *     where the C code updates them: in_flight_leave (in peer_drop, and in
 *     collect_acknowledgements before ready_add) and in_flight_enter
 *     (after a send's ready_remove) test peer_is_in_flight, which is
 *     accepted && !ready && !dropped here; publish_locked sets n_stale =
 *     n_in_flight in the step that advances published, and ends with
 *     arm_poll(n_stale > 0), a step of its own (an epoll_ctl, which the
 *     model never fails);
 *   - remote_receive is one recvmmsg of up to two messages, one atomic
 *     step: the slot's STATE if any, and the end of the stream if the
 *     producer was killed; the server sends a second message only at the
 *     close and at ev_value_server_free, which are left out, so every
 *     batch comes up short and the get returns after it.  recvmmsg is
 *     a loop of recvmsg in the kernel: a server step between the two can
 *     only be a send, and then the batch holds two messages and the get
 *     goes on with another recvmmsg, which reaches the state the model
 *     reaches with a second get; any other server step moves to after the
 *     call;
 *   - epoll_wait of consumer 1 drops an edge whose fd is not readable by
 *     then, so a pending edge_in is cleared when the consumer's recvmmsg
 *     empties a live connection (the only way it stops being readable):
 *     an edge_in pending means the fd is readable;
 *   - a killed producer's threads keep running in the model, muted: they
 *     store no page and send nothing (a send finds EPIPE and drops the
 *     peer), which is all a consumer can see of them; the no-lost-wake
 *     invariant then no longer applies;
 *   - a consumer that stops reading is one the search does not schedule:
 *     the monitor's invariant holds in every such state;
 *   - server_lock's sched_yield loop is a blocking test-and-set: a
 *     thread stuck there forever shows as an invalid end state;
 *   - a peer that dies: its close empties its queue, wakes the server's
 *     end (edge) with EPOLLHUP, and a later send fails (EPIPE); a peer
 *     that dies in a get has made that get's recvmmsg or not, so deaths
 *     between gets cover every state the server sees.
 * Left out: the close (publish_locked's finish branch and peer_finish),
 * ev_value_server_free (the page's gone flag, the last state sent past an
 * unread one), remote sets, protocol violations and the ERROR message,
 * the per-uid limit, sends failing with ENOMEM, EMFILE or ENFILE (the
 * peer stays ready with sent unchanged, and only a later set or process
 * call retries), arm_poll's epoll_ctl failing, and stashed messages
 * (-ENOMEM in get).
 *
 * Properties: assertions and end states, verified by pan built with
 * -DSAFETY (exhaustive search, partial order reduction):
 *   (1) no lost wake.  Monitor: when the producer lives, no setter is
 *       between its set and the end of its server_publish and process is
 *       not running (working == 0, a ghost), every live accepted peer has
 *       been sent the newest state (sent[p] == cur), or arm_fd is polled
 *       and the peer has a message unread (its poll returns, and its read
 *       will be an acknowledgement that wakes process) or an
 *       acknowledgement pending (edge[p]: process will run).  End: once
 *       nothing can move (the setters ended, process waits for its epoll
 *       fd, every consumer waits), every live consumer's last get
 *       returned the final state (or SKIP_CURRENT counted it as seen),
 *       every dead peer is dropped, busy is free, and arm_fd is not
 *       polled (no peer needs process: a read then wakes no one); after
 *       the producer's death, every live consumer received the last state
 *       sent to it, then the end.
 *   (2) one message in flight: the slot holds one; a ready peer never has
 *       an unread message (monitor), so a send never finds the slot full
 *       (assertion at each send, whose EAGAIN branch is modelled all the
 *       same).
 *   (3) the states a consumer receives, and the versions its gets return,
 *       strictly increase (else remote_apply would end it with -EPROTO).
 *   (4) busy excludes: at most one thread in publish_locked, and it holds
 *       busy.
 *   (5) no spurious readiness: a get right after poll reported POLLIN
 *       returns a snapshot (the page is stored before the sends) or the
 *       end, except that the producer's death, which the page cannot
 *       show, may make the one get that trusts the page return -EAGAIN;
 *       the next get asks the socket, and a -EAGAIN from the socket after
 *       POLLIN is an error.
 *   (6) the counters are exact: n_in_flight counts the peers in flight,
 *       n_stale those of them behind published (monitor).
 *   (7) an edge-triggered consumer that gets until -EAGAIN never then
 *       waits on a readable fd without an edge pending: when its get
 *       returns -EAGAIN, whatever its connection holds (a STATE, the end)
 *       came with an edge since its last epoll_wait.
 *
 * Mutants, each of which the check must find a violation in (spin -D...):
 *   BUG_NO_RECHECK       server_unlock clears busy and returns without
 *                        looking at pending: the set that found busy taken
 *                        is never published -> (1).
 *   BUG_NO_READY_ADD     collect_acknowledgements takes the edges but does
 *                        nothing with the acknowledged peers: they are
 *                        never sent the newer state -> (1).
 *   BUG_STAY_READY       a peer sent a STATE stays on the ready list (and
 *                        out of n_in_flight): the next publish sends past
 *                        the unread one -> (2).
 *   BUG_RECHECK_NO_TAS   server_unlock's re-check publishes without taking
 *                        busy again -> (4).
 *   BUG_PENDING_LATE     server_publish clears pending after its
 *                        publish_locked, not before: a set that found busy
 *                        taken meanwhile is forgotten -> (1).
 *   BUG_PAGE_AFTER_SEND  publish_locked stores the page after the sends: a
 *                        consumer woken by a STATE trusts the old page and
 *                        returns -EAGAIN -> (5).
 *   BUG_STALE_NOT_RESET  publish_locked advances published without setting
 *                        n_stale = n_in_flight: the peers in flight with
 *                        the old state are not counted, arm_fd is not
 *                        polled for them -> (6), and without (6), (1).
 *   BUG_ARM_BEFORE_RESET arm_poll's argument is the count from before the
 *                        state advanced: a peer left behind by the new
 *                        state does not wake process -> (1).
 *   BUG_NO_LEAVE         collect_acknowledgements does not call
 *                        in_flight_leave: the counters only grow, arm_fd
 *                        stays polled and every read wakes process for
 *                        nothing -> (6), and without (6), the end state.
 *   BUG_ONE_RECV         remote_receive's receipt of a STATE does not see
 *                        the end of the stream behind it (one recvmsg, as
 *                        before recvmmsg): with the producer dead, the get
 *                        returns the STATE and trusts the page, the next
 *                        returns -EAGAIN, and an edge-triggered loop waits
 *                        for an edge that came before its last wait -> (7)
 *                        (with SERVER_DIES).
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
byte n_in_flight;       /* srv->n_in_flight */
byte n_stale;           /* srv->n_stale */
bool arm_polled;        /* arm_fd in epoll_fd's interest (arm_poll) */

/* struct peer, and the connection */
bool ready[NP];         /* on srv->ready */
byte sent[NP];          /* p->sent */
bool accepted[NP];      /* a watcher, registered on arm_fd */
bool dropped[NP];       /* peer_drop'ped (p->dead) */
byte slot[NP];          /* the STATE unread in the connection, or 0 */
bool edge[NP];          /* arm_fd: an EPOLLOUT | EPOLLET event pending */
bool connecting[NP];    /* connected, not yet accepted */
bool dead[NP];          /* the consumer closed its end */
bool killed;            /* the producer was killed: every connection ended */

/* The consumers' side */
byte seen[NP];          /* r->seen */
bool fin[NP];           /* r->end: the get saw the end of the stream */
bool edge_in;           /* consumer NP - 1's EPOLLIN | EPOLLET event pending */

/* Ghosts */
byte working;           /* setters in ev_value_set, process runs */
byte in_publish;        /* threads in publish_locked */
byte base[NP];          /* the state counted as seen when accepted */
bool skip_current[NP];  /* connected with EV_VALUE_WATCH_SKIP_CURRENT */

#define live(p) (accepted[p] && !dead[p])
/* (1): at rest, every live peer has the newest state, or will have it:
 * its read (of the unread STATE, or the one made) wakes process. */
#define not_lost(p) \
	(killed || !(working == 0 && live(p)) || sent[p] == cur || \
	 (arm_polled && (slot[p] != 0 || edge[p])))
/* (2): a ready peer has no unread STATE. */
#define one_in_flight(p) (!(ready[p] && !dead[p]) || slot[p] == 0)
/* (6): peer_is_in_flight, and the counters are exact. */
#define in_flight(q) (accepted[q] && !ready[q] && !dropped[q])
#define stale(q) (in_flight(q) && sent[q] < published)
#define counts_ok \
	(n_in_flight == in_flight(0) + in_flight(1) && n_stale == stale(0) + stale(1))

/* epoll_fd is readable: a peer connects, or hung up and is not dropped,
 * or arm_fd is polled and reports a writable peer. */
#define wake(p) \
	(connecting[p] || (accepted[p] && !dropped[p] && \
	 (dead[p] || (arm_polled && edge[p] && slot[p] == 0))))

/* The locals every server thread uses for the inlines below. */
#ifndef BUG_ARM_BEFORE_RESET
#define LOCALS byte st, p; bool ok
#else
#define LOCALS byte st, p; bool ok, arm
#endif

/* in_flight_leave: p read its STATE, or is dropped. */
inline in_flight_leave(q) {
	if
	:: in_flight(q) ->
		n_in_flight--;
		if
		:: sent[q] < published -> n_stale--
		:: else
		fi
	:: else
	fi
}

/* in_flight_enter: p was sent a STATE (or found its last one unread). */
inline in_flight_enter(q) {
	n_in_flight++;
	if
	:: sent[q] < published -> n_stale++
	:: else
	fi
}

/* peer_drop: off the ready list and arm_fd, closed. */
inline drop(q) {
	in_flight_leave(q);
	ready[q] = false;
	dropped[q] = true;
	edge[q] = false
}

/* A ready peer behind st: the next to send to, in the walk of the ready
 * list (server-local data, so its test joins the step before). */
#define behind(q) (ready[q] && sent[q] < st)

/* The walk of the ready list from p on: p is the next peer to send to,
 * or NP when none is left (then arm_poll). */
inline next_behind() {
	do
	:: p < NP && !behind(p) -> p++
	:: else -> break
	od
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
#if !defined(BUG_NO_LEAVE) && !defined(BUG_NO_READY_ADD)
					in_flight_leave(p);
#endif
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
 * and in_flight_enter, or peer_drop, after it: one sendmsg.  A killed
 * producer sends nothing (its threads' later steps are muted). */
inline send() {
	atomic {
		if
		:: dead[p] || killed ->         /* EPIPE */
			drop(p)
		:: !(dead[p] || killed) && slot[p] != 0 ->     /* EAGAIN */
			assert(false);          /* (2) never past an unread one */
			ready[p] = false;
			in_flight_enter(p)
		:: !(dead[p] || killed) && slot[p] == 0 ->
			slot[p] = st;
			if
			:: p == NP - 1 -> edge_in = true        /* EPOLLIN */
			:: else
			fi;
			sent[p] = st;
#ifndef BUG_STAY_READY
			ready[p] = false;       /* its read will say when */
			in_flight_enter(p)
#else
			skip
#endif
		fi;
		p++;
		next_behind()
	}
}

/* The state moves forward: the page's store (none by a killed producer),
 * published, and every peer in flight now has an older state. */
inline advance() {
	if
	:: atomic {
		ok ->
		if
		:: !killed -> page = st
		:: else
		fi;
		published = st;
#ifndef BUG_STALE_NOT_RESET
		n_stale = n_in_flight;
#endif
		ok = false }
	:: atomic { !ok }
	fi
}

/* publish_locked: current_state's load of the snapshot, the page's
 * store when the state is new, collect_acknowledgements, a send to each
 * ready peer behind, and arm_poll(n_stale > 0). */
inline publish_locked() {
	atomic {
		assert(busy && in_publish == 0);        /* (4) */
		in_publish++;
		st = cur;
		ok = st > published;
#ifdef BUG_ARM_BEFORE_RESET
		arm = n_stale > 0
#endif
	};
#ifndef BUG_PAGE_AFTER_SEND
	advance();
#endif
	collect();
	do
	:: p < NP -> send()
	:: else -> break
	od;
#ifdef BUG_PAGE_AFTER_SEND
	advance();
#endif
	atomic {        /* arm_poll: epoll_ctl of epoll_fd */
#ifndef BUG_ARM_BEFORE_RESET
		arm_polled = n_stale > 0;
#else
		arm_polled = arm;
#endif
		in_publish--;
		st = 0;
		p = 0
	}
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

/* A get returns -EAGAIN.  (7): consumer NP - 1 waits for an edge next:
 * whatever its socket holds (a STATE, the end) came with an edge since
 * its last wait. */
inline eagain(i) {
	assert(i != NP - 1 || edge_in || (slot[i] == 0 && !killed));       /* (7) */
	trust = false;
	must_poll = true
}

/* The end of a get that went to the socket: what it returns. */
inline take_end(i) {
	if
	:: got ->
		assert(rs > seen[i]);   /* (3) versions strictly increase */
		seen[i] = rs;
		trust = !fin[i];        /* a snapshot, and the stream alive */
		must_poll = false
	:: !got && fin[i]               /* the end (-ECONNRESET) */
	:: !got && !fin[i] ->
		assert(!polled);        /* (5) a readable fd yields something */
		eagain(i)
	fi;
	rs = 0;
	got = false;
	polled = false
}

/* ev__remote_take, with its checks of what it returns: sets must_poll,
 * or fin[i] when it reached the end.  Its load of the page is one step;
 * without trust_page it reads no page.  remote_receive is one recvmmsg
 * (ev__ipc_recv_batch) of up to two messages: the STATE in the slot if
 * any, and the end of the stream if the producer is dead; a batch short
 * of two with the stream alive ends it. */
inline remote_take(i) {
	if
	:: atomic { trust && page <= seen[i] ->        /* nothing new on the page */
		/* (5): only the death of the producer, which the page
		 * cannot show, may make a readable fd yield -EAGAIN, and
		 * then this once: trust_page is cleared */
		assert(!polled || (killed && slot[i] == 0));
		eagain(i);
		polled = false }
	:: atomic { !(trust && page <= seen[i]) -> rs = seen[i] }
		atomic {        /* recvmmsg */
			if
			:: slot[i] != 0 ->
				/* remote_apply: a state not newer is -EPROTO */
				assert(slot[i] > rs);   /* (3) */
				rs = slot[i];
				slot[i] = 0;
				edge[i] = true;         /* the acknowledgement */
				got = true;
				/* nothing left to read: an EPOLLIN edge still pending is
				 * one the next epoll_wait drops */
				edge_in = edge_in && (i != NP - 1 || killed)
			:: else
			fi;
#ifndef BUG_ONE_RECV
			fin[i] = killed;
#else
			fin[i] = killed && !got;        /* one recvmsg: no look behind */
#endif
			take_end(i)
		}
	fi
}

proctype consumer(byte i) {
	byte rs;
	bool polled = false, must_poll = false, trust = false, got = false;

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
	:: fin[i] -> break              /* every get returns the end */
#ifdef PEER_DIES
	:: i == NP - 1 && !fin[i] ->
		atomic {        /* close: the queue is freed, the server's end hangs up */
			dead[i] = true;
			slot[i] = 0;
			edge[i] = accepted[i] && !dropped[i]
		};
		break
#endif
	/* Consumer NP - 1: an edge-triggered loop, which gets until -EAGAIN,
	 * then waits for an edge (epoll_wait drops one whose fd is not
	 * readable by then). */
	:: i == NP - 1 && !must_poll && !fin[i] ->
		remote_take(i)
	:: i == NP - 1 && must_poll ->
end_wait:
		atomic { edge_in -> edge_in = false; must_poll = false }
	/* Consumer 0: polls for POLLIN before each get, or with ANY_GETS
	 * chooses either before each get. */
#ifdef ANY_GETS
	:: i != NP - 1 && !must_poll && !fin[i] ->
		remote_take(i)
#endif
	:: i != NP - 1 && !fin[i] ->
end_poll:
		atomic {
			(slot[i] != 0 || killed) ->     /* poll until POLLIN */
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
	:: atomic { !counts_ok -> assert(counts_ok) }
	od
}

#ifdef SERVER_DIES
/* The producer is killed at any point, or never: every connection ends
 * (the slot's STATE stays readable before the end), and the end wakes
 * the consumers. */
active proctype killer() {
	if
	:: atomic { killed = true; edge_in = true }
	:: skip
	fi
}
#endif

/* Nothing else can move: the end state. */
active proctype quiescence() {
	byte q = 0;

	timeout;
	assert(cur == 2 * NSETS && !busy && in_publish == 0);
	/* at rest, arm_fd is polled only for a peer that needs it */
	assert(killed || !arm_polled);
	do
	:: q < NP ->
		if
		:: dead[q] ->
			assert(killed || !accepted[q] || dropped[q])
		:: !dead[q] && killed ->
			/* the last state sent, then the end */
			assert(fin[q] && slot[q] == 0);
			assert(seen[q] == sent[q] || (seen[q] == 0 && sent[q] == base[q]))
		:: !dead[q] && !killed ->
			assert(!connecting[q]);
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
