/* SPDX-License-Identifier: MIT */
/*
 * A Promela model of the notification protocol described at the top of
 * internal.h, checked exhaustively with spin by tests/check-model.sh.  It
 * mirrors value.c and watcher.c step by step: change it with them.
 *
 * Processes and the C functions they model:
 *   - producer: NSETS (default 2) calls of value_publish (ev_value_set),
 *     with notify_collect under the lock and notify_flush (notify_write,
 *     notify_wake here) after it; it stops at the first -EPIPE;
 *   - closer: one ev_value_close (notify_collect, notify_flush), at
 *     whatever point the interleaving gives it;
 *   - consumer(i), one per watcher, two watchers: a loop of ev_watcher_get,
 *     i.e. watcher_take (the lock-free fast path), then watcher_take_locked
 *     with watcher_clear_fd; each get is either preceded by a poll for
 *     POLLIN or made first, with a poll only after -EAGAIN (what
 *     ev_watcher_wait does); the loop ends on -EPIPE.  Consumer 0 may
 *     instead ev_watcher_close its watcher between any two gets.  The
 *     watchers are attached, armed, before anything runs; with
 *     LATE_WATCHER, consumer 1 attaches its own (watcher_attach_own_fd) at
 *     any point, so possibly after sets or the close, with flags 0 or
 *     EV_VALUE_WATCH_SKIP_CURRENT;
 *   - monitor: the invariants (a) and (b) below, in every reachable state.
 * Each Promela step is one atomic step of the C code: one atomic load,
 * store or read-modify-write, one eventfd read or write, one mutex lock or
 * unlock.  Thread-local computation (comparisons, the batch list, the
 * consumer's own seen_state) and the plain stores under the lock that only
 * code holding the lock reads (w->signaled, the list links, v->current) are
 * folded into a neighbouring step; ghost variables (live, in_get,
 * publishing) change in the step they describe.  The model is sequentially
 * consistent: in C, the state is stored seq_cst, the other shared
 * variables are seq_cst atomics or accessed under the lock, and eventfd
 * reads and writes are system calls, full barriers.
 *
 * Abstractions: a snapshot is its version (cur is v->current); the state is
 * version << 1 | closed in one byte, read in one step by the fast path as
 * the C code reads one 64-bit atomic; the armed and signaled lists are the
 * bits linked and signaled (armed = linked && !signaled) and the order of a
 * batch is left to the verifier; an eventfd is a counter (a write adds one;
 * a read fails when it is zero, else returns and zeroes it) and fd_open.
 * The condition variable writes_done is modelled as pthread specifies it,
 * without spurious wakeups: one step releases the lock and starts the wait
 * (cv_waiting), a broadcast under the lock ends it, and the woken closer
 * then takes the lock like any thread; so a missed broadcast shows as a
 * deadlock (a shortcut such as "unlock; (pending == 0); lock" would hide
 * it).  The 10 ms poll in watcher_clear_fd's loop returns when the fd is
 * readable or pending_writes is zero: a timeout at any other moment only
 * repeats the loop into the same state.
 * Left out: reference counts and freeing (a watcher's lifetime is live and
 * fd_open), snapshot bytes and destroy callbacks, ev_value_get, w->busy
 * (one consumer per watcher: -EBUSY cannot happen), ev_watcher_wait's
 * cancel fd and timeout, more than one watcher closing at a time, and the
 * shared-fd watchers (EV_VALUE_WATCH_SHARED_FD), which are on neither list
 * and whose fd is written by every set and never drained.
 *
 * Properties: assertions and end states, verified by pan built with
 * -DSAFETY (exhaustive search, partial order reduction):
 *   (a) no lost wakeup.  Monitor: a live watcher outside a get whose
 *       eventfd counter and pending_writes are zero has seen the value's
 *       state; the one exception is an armed watcher while a set or close
 *       holds the lock between storing the state and collecting it.  End:
 *       a consumer still blocked in poll when the others have ended is an
 *       invalid end state, and a consumer that gets -EPIPE asserts it has
 *       the final version.
 *   (b) no spurious readiness.  Monitor: a live watcher outside a get,
 *       with pending_writes zero, of an open value, whose eventfd is
 *       readable has not seen the value's state.  Consumer: a get right
 *       after poll reported POLLIN never returns -EAGAIN (only the consumer
 *       drains its fd, so the fd was still readable at the get).
 *   (c) no write after close: each eventfd write asserts the fd is open,
 *       and so does the decrement of pending_writes that follows it, a
 *       set's last access to the watcher, which is freed after the fd is
 *       closed.  A write also asserts the counter was zero, as eventfd.c
 *       assumes (one write per unconsumed update).
 *   (d) no torn state: the snapshot a get takes has the version of the
 *       state read in the same critical section, and each consumer's
 *       versions strictly increase.
 *   And no deadlock: any other process blocked at the end, such as a
 *   closer waiting for a broadcast, is an invalid end state.
 *
 * Mutants, each of which the check must find a violation in (spin -D...):
 *   BUG_CLEAR_ORDER        watcher_clear_fd reads the eventfd, then loads
 *                          pending_writes (the bug f0f1332 fixed): a write
 *                          and its decrement fall between the two and the
 *                          fd stays readable with nothing new -> (b).
 *   BUG_NO_PENDING_WAIT    ev_watcher_close closes the fd without waiting
 *                          for pending_writes -> (c).
 *   BUG_WRITE_BEFORE_STATE a set makes its writes (still under the lock)
 *                          before it stores the new state: a woken consumer
 *                          finds nothing new -> (b).
 *   BUG_NO_BROADCAST       notify_flush never wakes a waiting closer ->
 *                          ev_watcher_close deadlocks.
 *   BUG_REARM_CLOSED       a get drains and re-arms the watcher even when
 *                          the value is closed -> a consumer polls forever
 *                          after its last snapshot (the end state of (a)).
 */

/* Sets by the producer.  With 2, a search stores about 2.9 million states
 * in a few seconds, which keeps the check quick; 3 also pass, in about 6.2
 * million. */
#ifndef NSETS
#define NSETS 2
#endif

#define NW 2

#define CLOSED 1
#define VERSION_ONE 2

#define OK 0
#define EAGAIN 1
#define EPIPE 2

/* struct ev_value */
bool locked;            /* v->lock */
byte state;             /* v->state: version << 1 | closed */
byte cur;               /* v->current->version */
bool cv_waiting;        /* a closer sleeps on v->writes_done */
byte closers_waiting;   /* v->closers_waiting */

/* struct ev_value_watcher, and its eventfd */
byte seen[NW];          /* w->seen_state */
bool linked[NW];        /* on v->armed or v->signaled */
bool signaled[NW];      /* w->signaled: on v->signaled */
byte pending[NW];       /* w->pending_writes */
byte efd[NW];           /* the eventfd's counter */
bool fd_open[NW];       /* close(w->fd) not yet called */

/* Ghosts, for the properties. */
bool live[NW];          /* attached and not yet unlinked by ev_watcher_close */
bool in_get[NW];        /* inside watcher_take_locked */
bool publishing;        /* a set or close stored the state, lock not yet released */

#define armed(k) (linked[k] && !signaled[k])
#define quiet(k) (live[k] && !in_get[k] && pending[k] == 0)
/* (a): nothing owed, nothing readable: then nothing unseen. */
#define no_lost_wakeup(k) \
	(!(quiet(k) && efd[k] == 0) || seen[k] == state || (publishing && armed(k)))
/* (b): readable while open and nothing in flight: then something unseen. */
#define no_spurious_ready(k) \
	(!(quiet(k) && !(state & CLOSED) && efd[k] > 0) || seen[k] != state)

inline lock() {
	atomic { !locked -> locked = true }
}

inline unlock() {
	locked = false
}

/* ev__eventfd_signal */
inline eventfd_write(k) {
	atomic {
		assert(fd_open[k]);     /* (c) no write after close */
		assert(efd[k] == 0);    /* at most one write per unconsumed update */
		efd[k]++
	}
}

/* notify_collect, for watcher k: mark it signaled, count the write it is
 * owed and put it in the batch; the splice is the signaled bit itself. */
inline collect_one(k) {
	atomic {
		if
		:: armed(k) ->
			signaled[k] = true;
			pending[k]++;
			batch = batch | (1 << k)
		:: else
		fi
	}
}

inline notify_collect() {
	collect_one(0);
	collect_one(1)
}

/* notify_flush, first half: one write and one decrement per collected
 * watcher, in any order (the batch's order depends on the armed list's
 * history). */
inline notify_write() {
	do
	:: batch == 0 -> break
	:: else ->
		atomic {
			if
			:: batch & 1 -> k = 0
			:: batch & 2 -> k = 1
			fi;
			batch = batch & ~(1 << k);
			eventfd_write(k)
		}
		atomic {
			/* (c) the last access to w: ev_watcher_close
			 * frees it once pending_writes is zero */
			assert(fd_open[k]);
			pending[k]--
		}
	od
}

/* notify_flush, second half: wake the closers waiting for the writes. */
inline notify_wake() {
#ifndef BUG_NO_BROADCAST
	if
	:: closers_waiting > 0 ->
		lock();
		cv_waiting = false;     /* pthread_cond_broadcast */
		unlock()
	:: else
	fi
#else
	skip
#endif
}

inline notify_flush() {
	notify_write();
	notify_wake()
}

/* value_publish, NSETS times; it stops at the first -EPIPE. */
proctype producer() {
	byte n = 0, ls, batch, k;

	do
	:: n < NSETS ->
		n++;
		lock();
		ls = state;
		if
		:: ls & CLOSED ->
			unlock();
			break
		:: else
		fi;
#ifndef BUG_WRITE_BEFORE_STATE
		cur = (ls >> 1) + 1;    /* v->current = s */
		atomic { state = ls + VERSION_ONE; publishing = true };
		notify_collect();
		atomic { unlock(); publishing = false };
		notify_flush()
#else
		/* The writes land before the new state is visible, even
		 * though all of it is under the lock. */
		notify_collect();
		notify_write();
		cur = (ls >> 1) + 1;
		state = ls + VERSION_ONE;
		unlock();
		notify_wake()
#endif
	:: else -> break
	od
}

/* ev_value_close */
proctype closer() {
	byte ls, batch, k;

	lock();
	ls = state;
	if
	:: !(ls & CLOSED) ->
		atomic { state = ls | CLOSED; publishing = true };
		notify_collect()
	:: else
	fi;
	atomic { unlock(); publishing = false };
	notify_flush()
}

/* watcher_clear_fd, under the lock */
inline watcher_clear_fd(i) {
	do
	::
#ifndef BUG_CLEAR_ORDER
		owed = pending[i] > 0;
		atomic { read_ok = efd[i] > 0; efd[i] = 0 };
		if
		:: read_ok || !owed -> break
		:: else
		fi;
#else
		atomic { read_ok = efd[i] > 0; efd[i] = 0 };
		if
		:: read_ok -> break
		:: else
		fi;
		owed = pending[i] > 0;
		if
		:: !owed -> break
		:: else
		fi;
#endif
		(efd[i] > 0 || pending[i] == 0)  /* poll(&pfd, 1, 10) */
	od
}

/* ev_watcher_get: watcher_take's fast path, then watcher_take_locked.
 * Sets r, and sv to the snapshot's version on OK. */
inline watcher_get(i) {
	atomic {
		ls = state;
		in_get[i] = ls != seen[i]
	};
	if
	:: ls == seen[i] ->
		r = ((ls & CLOSED) != 0 -> EPIPE : EAGAIN)
	:: else ->
		lock();
		ls = state;
		if
		:: (ls >> 1) > (seen[i] >> 1) ->
			sv = cur;
			assert(sv == ls >> 1);  /* (d) no torn state */
			r = OK
		:: else ->
			r = EPIPE       /* changed only by closing */
		fi;
		seen[i] = ls;
#ifndef BUG_REARM_CLOSED
		if
		:: !(ls & CLOSED) && signaled[i] ->
#else
		if
		:: signaled[i] ->
#endif
			watcher_clear_fd(i);
			signaled[i] = false     /* back on the armed list */
		:: else
		fi;
		atomic { unlock(); in_get[i] = false }
	fi
}

/* ev_watcher_close, under the contract that no get runs on w meanwhile */
inline watcher_close(i) {
	lock();
	atomic { linked[i] = false; live[i] = false };  /* ev__list_del */
	closers_waiting++;
#ifndef BUG_NO_PENDING_WAIT
	do
	:: pending[i] > 0 ->
		/* pthread_cond_wait: unlock and sleep, woken, relock */
		atomic { cv_waiting = true; unlock() };
		!cv_waiting;
		lock()
	:: else -> break
	od;
#endif
	closers_waiting--;
	unlock();
	fd_open[i] = false      /* close(w->fd) */
}

/* watcher_attach_own_fd, for a watcher made while sets and close run */
inline watcher_attach(i) {
	fd_open[i] = true;      /* ev__eventfd_new */
	lock();
	atomic {
		ls = state;
		if
		:: seen[i] = ls         /* EV_VALUE_WATCH_SKIP_CURRENT */
		:: true                 /* flags 0: nothing seen */
		fi;
		if
		:: ls == seen[i] && !(ls & CLOSED) -> linked[i] = true  /* armed */
		:: else
		fi
	};
	if
	:: !linked[i] ->
		eventfd_write(i);
		signaled[i] = true;
		linked[i] = true
	:: else
	fi;
	atomic { unlock(); live[i] = true }
}

proctype consumer(byte i; bool late) {
	byte ls, sv, r, last = 0;
	bool owed, read_ok, polled, must_poll = false;

#ifdef LATE_WATCHER
	if
	:: late ->
		watcher_attach(i);
		last = seen[i] >> 1     /* what SKIP_CURRENT counts as seen */
	:: else
	fi;
#endif
	do
	::
		if
		:: i == 0 ->
			watcher_close(i);
			break
		:: !must_poll ->
			polled = false          /* get first */
		:: true ->
			polled = true;
			(efd[i] > 0)            /* poll until POLLIN */
		fi;
		watcher_get(i);
		if
		:: r == EPIPE ->
			assert(last == cur);    /* (a) got the final snapshot */
			break
		:: r == EAGAIN ->
			assert(!polled);        /* (b) a readable fd yields something */
			must_poll = true
		:: r == OK ->
			assert(sv > last);      /* (d) versions strictly increase */
			last = sv;
			must_poll = false
		fi
	od
}

active proctype monitor() {
end:
	do
	:: atomic { !no_lost_wakeup(0) -> assert(no_lost_wakeup(0)) }
	:: atomic { !no_lost_wakeup(1) -> assert(no_lost_wakeup(1)) }
	:: atomic { !no_spurious_ready(0) -> assert(no_spurious_ready(0)) }
	:: atomic { !no_spurious_ready(1) -> assert(no_spurious_ready(1)) }
	od
}

/* The watchers are made, armed, while the state is 0; then everything
 * starts. */
init {
	atomic {
		linked[0] = true; live[0] = true; fd_open[0] = true;
		run producer();
		run closer();
		run consumer(0, false);
#ifndef LATE_WATCHER
		linked[1] = true; live[1] = true; fd_open[1] = true;
		run consumer(1, false)
#else
		run consumer(1, true)
#endif
	}
}
