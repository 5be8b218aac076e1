/* SPDX-License-Identifier: MIT */
/*
 * A Promela model of the notification protocol of notify.c, with the parts
 * of value.c, watcher.c and slot.c it meets, checked exhaustively with spin
 * by tests/check-model.sh.  It mirrors the C code step by step: change it
 * with notify.c.
 *
 * Processes and the C functions they model:
 *   - producer: NSETS (default 1) calls of ev_value_set: under the
 *     producers' lock, ev__slot_replace_locked (cur) and the state store;
 *     after it, ev__notify_publish (notify_collect); it stops at the first
 *     -EPIPE;
 *   - closer: one ev_value_close, at whatever point the interleaving gives
 *     it: the closed state under the lock, notify_collect after it;
 *   - consumer(i), one per watcher, two watchers: a loop of ev_watcher_get,
 *     i.e. watcher_take (the lock-free fast path), then watcher_take_new
 *     with ev__value_take_current (which stores the state of a set caught
 *     between its snapshot and its state) and ev__notify_rearm
 *     (notify_arm, notify_clear, notify_push, notify_signal_self); each get is either preceded by a
 *     poll for POLLIN or made first, with a poll only after -EAGAIN (what
 *     ev_watcher_wait does); the loop ends on -EPIPE.  Consumer 0 may
 *     instead ev_watcher_close its watcher (ev__notify_detach, which may
 *     collect) between any two gets.  The watchers are attached, armed,
 *     before anything runs; with LATE_WATCHER, consumer 1 attaches its own
 *     (ev__notify_attach) at any point, so possibly after sets or the
 *     close, with flags 0 or EV_VALUE_WATCH_SKIP_CURRENT;
 *   - monitor: the invariants below, in every reachable state;
 *   - init: starts them, and checks the end state once all have ended.
 * Up to three collectors (the producer, the closer, a closing consumer)
 * and two consumers arming run at once.  Each Promela step is one atomic
 * step of the C code: one atomic load, store, exchange or
 * compare-and-swap, one eventfd read or write, one mutex lock or unlock.
 * Thread-local computation is folded into a neighbouring step; ghost
 * variables (live, in_get, where, freed) change in the step they describe.
 * The model is sequentially consistent, as the C code is: its atomics are
 * seq_cst (the consumers' state loads, acquire, only read), and eventfd
 * reads and writes are system calls, full barriers.
 *
 * Abstractions: a snapshot is its version (cur is the one value->current
 * points to); the state and each watcher's word are small integers with
 * the C code's layout, so that a compare-and-swap compares the whole word
 * as the C code does; the stack value->armed is an array whose last entry
 * is the head, and a collector's batch is the array it took, walked head
 * first as the C code follows w->next; an eventfd is a counter (a write
 * adds one; a read fails when it is zero, else returns and zeroes it) and
 * fd_open.  The 1 ms poll of notify_sleep_owed returns when the fd is
 * readable or WRITING is clear: a timeout at any other moment only repeats
 * the loop into the same state.
 * Left out: reference counts (the split count of slot.c only decides when
 * a snapshot is freed; which version a get takes is modelled), snapshot
 * bytes and destroy callbacks, ev_value_get, w->busy (one consumer per
 * watcher), ev_watcher_wait's cancel fd and timeout, more than one watcher
 * closing at a time, the value's destruction, and the shared-fd watchers,
 * which are on no stack and whose fd every set writes and nobody drains.
 *
 * Properties: assertions and end states, verified by pan built with
 * -DSAFETY (exhaustive search, partial order reduction):
 *   (a) no lost wakeup.  Monitor: when no publication (from a set's or
 *       close's state store to the end of its collection) and no
 *       collection runs (busy, a ghost), a live armed watcher outside a
 *       get has seen the state; a live watcher outside a get whose word is
 *       not ARMED has a readable fd or a write on its way (WRITING); an
 *       armed watcher is held.  A consumer still blocked in poll when the
 *       others have ended is an invalid end state; a consumer that gets
 *       -EPIPE asserts it has the final version; at the end, every open
 *       watcher of the closed value is readable.
 *   (b) no spurious readiness.  Monitor: a live watcher outside a get, of
 *       an open value, whose eventfd is readable has not seen the value's
 *       state.  Consumer: a get right after poll reported POLLIN never
 *       returns -EAGAIN (only the consumer drains its fd).
 *   (c) no write after close, no use after free: each eventfd write
 *       asserts the fd is open and its counter zero (one write per
 *       unconsumed update); each access to a watcher's word or to the
 *       stack asserts the watcher is not freed, and a watcher is freed
 *       once.
 *   (d) no torn state: the snapshot a get takes is newer than the one it
 *       took before, and a state that changed without a newer snapshot is
 *       a closed one.
 *   (e) one place at a time: a watcher is pushed only by its holder, and
 *       HELD is set exactly when it is on the stack, in a batch, or being
 *       pushed; at the end, the closed watcher is freed or still on the
 *       stack (the value's destruction frees it).
 *
 * Mutants, each of which the check must find a violation in (spin -D...):
 *   BUG_CLEAR_ORDER          notify_clear reads the eventfd, then WRITING:
 *                            a write and the clearing of WRITING fall
 *                            between the two, and the fd stays readable
 *                            with nothing new -> (b).
 *   BUG_NO_WRITING_WAIT      ev__notify_detach closes the fd without
 *                            waiting for a write on its way -> (c).
 *   BUG_COLLECT_BEFORE_STATE a set collects before it stores its state: a
 *                            collector finds nobody to wake -> (a).
 *   BUG_STATE_BEFORE_SNAPSHOT a set stores the state before the snapshot:
 *                            a get finds the new state and the old
 *                            snapshot -> (d).
 *   BUG_REARM_CLOSED         a get re-arms even when the value is closed:
 *                            the fd stays clear while get gives -EPIPE,
 *                            and a consumer polls forever -> (a).
 *   BUG_NO_RECHECK           notify_arm does not read the state again after
 *                            arming: a set that took the stack just before
 *                            the push is missed -> (a).
 *   BUG_NO_REVISIT           notify_collect does not visit again when it
 *                            pushed watchers back and the state moved -> (a).
 *   BUG_SIGNAL_NO_CAS        a collector clears ARMED with a plain store
 *                            after its load, not a compare-and-swap: two
 *                            threads write the fd -> (c) counter > 1.
 *   BUG_FREE_HELD            ev__notify_detach frees the watcher even when
 *                            a holder still has it -> (c) use after free.
 */

/* Sets by the producer.  With 1, and the close, a watcher is signalled
 * twice, by two collectors that may run at once; 2 pass too, but take
 * over 5 minutes and 10 GB, too much for make check. */
#ifndef NSETS
#define NSETS 1
#endif

#define NW 2

/* value->state */
#define CLOSED 1
#define VERSION_ONE 2

/* w->notify: the flags and seen << 5, as in notify.c */
#define ARMED 1
#define WRITING 2
#define HELD 4
#define CLOSING 8
#define DETACHED 16
#define SEEN_ONE 32
#define SEEN(x) ((x) / SEEN_ONE)

#define OK 0
#define EAGAIN 1
#define EPIPE 2

/* where[k]: who holds watcher k */
#define NOWHERE 0
#define STACK 1
#define BY_PRODUCER 2
#define BY_CLOSER 3
#define BY_DETACHER 4
#define BY_CONSUMER 5   /* + i: between its arming swap and its push */

/* struct ev_value */
bool locked;            /* v->lock, the producers' */
byte state;             /* v->state: version << 1 | closed */
byte cur;               /* v->current's version */
byte stk[NW];           /* v->armed: stk[nstk - 1] is the head */
byte nstk;

/* struct ev_value_watcher, and its eventfd */
int word[NW];           /* w->notify */
byte cseen[NW];         /* w->seen_state, the consumer's */
byte efd[NW];           /* the eventfd's counter */
bool fd_open[NW];       /* close(w->fd) not yet called */

/* Ghosts */
bool live[NW];          /* attached and not yet closing */
bool in_get[NW];        /* inside watcher_take_new */
byte where[NW];
bool freed[NW];
byte busy;              /* publications and collections under way */

#define quiet(k) (live[k] && !in_get[k])
/* (a): when no publication or collection is under way, an armed watcher
 * has seen the state. */
#define no_lost_wakeup(k) \
	(!(quiet(k) && busy == 0 && (word[k] & ARMED)) || SEEN(word[k]) >= state)
/* (a): not armed: readable, or a write on its way; armed: held. */
#define signal_kept(k) \
	(!quiet(k) || ((word[k] & ARMED) -> (word[k] & HELD) != 0 \
	                                  : (efd[k] > 0 || (word[k] & WRITING) != 0)))
/* (b): readable while open: then something unseen. */
#define no_spurious_ready(k) \
	(!(quiet(k) && !(state & CLOSED) && efd[k] > 0) || cseen[k] < state)
/* (e): HELD exactly when somewhere. */
#define held_somewhere(k) \
	(freed[k] || ((word[k] & HELD) != 0) == (where[k] != NOWHERE))

/* The locals every process uses for the inlines below. */
#define LOCALS \
	int wd, wx; byte ls, sv, nseen, j, k, nb, b0, b1, cst; \
	bool ok, owed, rd, pushed, fdclear

inline lock() {
	atomic { !locked -> locked = true }
}

inline unlock() {
	locked = false
}

/* A compare-and-swap on word[k]: on failure, exp is reloaded. */
inline cas(k, exp, nw, ok) {
	atomic {
		assert(!freed[k]);
		if
		:: word[k] == exp -> word[k] = nw; ok = true
		:: else -> exp = word[k]; ok = false
		fi
	}
}

inline load(k, x) {
	atomic { assert(!freed[k]); x = word[k] }
}

/* notify_signal: ev__eventfd_signal */
inline eventfd_write(k) {
	atomic {
		assert(fd_open[k]);     /* (c) no write after close */
		assert(efd[k] == 0);    /* one write per unconsumed update */
		efd[k]++
	}
}

/* notify_sleep_owed: poll(fd, 1 ms) */
inline sleep_owed(k) {
	(efd[k] > 0 || !(word[k] & WRITING))
}

inline free_watcher(k) {
	atomic { assert(!freed[k]); freed[k] = true }
}

/* notify_written: atomic_fetch_and */
inline written(k) {
	atomic { assert(!freed[k]); word[k] = word[k] & ~WRITING }
}

/* notify_try_signal, when cond holds of the word: clear ARMED, set
 * WRITING, then write the fd and clear WRITING. */
inline try_signal(k, cond) {
#ifndef BUG_SIGNAL_NO_CAS
	atomic {
		assert(!freed[k]);
		wd = word[k];
		if
		:: cond -> word[k] = (wd & ~ARMED) | WRITING; ok = true
		:: else -> ok = false; wd = 0
		fi
	};
#else
	/* a load, then a plain store */
	load(k, wd);
	if
	:: cond ->
		atomic { assert(!freed[k]); word[k] = (wd & ~ARMED) | WRITING; ok = true }
	:: else -> ok = false
	fi;
#endif
	if
	:: ok ->
		eventfd_write(k);
		atomic { written(k); wd = 0; ok = false }
	:: else
	fi
}

/* notify_push, by the holder who */
inline push(k, who) {
	atomic {
		assert(!freed[k] && where[k] == who);   /* (e) */
		stk[nstk] = k;
		nstk++;
		where[k] = STACK
	}
}

#define open_armed(x) (((x) & (ARMED | CLOSING)) == ARMED)

/* notify_release, by the holder who: the word's load and the push, or the
 * swap that clears HELD, in one step (the push does not depend on the
 * word: it may change in between, with the same outcome as just after) */
inline release(k, who) {
	atomic {
		assert(!freed[k]);
		wd = word[k];
		if
		:: open_armed(wd) ->
			push(k, who);
			pushed = true
		:: else ->
			word[k] = wd & ~HELD;
			where[k] = NOWHERE;
			if
			:: wd & DETACHED -> freed[k] = true
			:: else
			fi
		fi;
		wd = 0
	}
}

/* notify_visit, against the state st */
inline visit(k, st, who) {
	try_signal(k, open_armed(wd) && st > SEEN(wd));
	release(k, who)
}

/* notify_collect */
inline collect(who) {
	do
	::
		atomic {        /* the load of v->armed, then its exchange */
			if
			:: nstk == 0 -> break
			:: else
			fi;
			nb = nstk;
			b0 = stk[0];
			b1 = (nb > 1 -> stk[1] : 0);
			j = 0;
			do
			:: j < nb -> assert(!freed[stk[j]]); where[stk[j]] = who; stk[j] = 0; j++
			:: else -> break
			od;
			nstk = 0;
			j = 0
		};
		cst = state;
		pushed = false;
		j = nb;
		do
		:: j > 0 ->
			j--;
			k = (j == 0 -> b0 : b1);
			visit(k, cst, who)
		:: else -> break
		od;
#ifndef BUG_NO_REVISIT
		if
		:: !pushed -> break
		:: else ->
			if
			:: state == cst -> break
			:: else
			fi
		fi
#else
		break
#endif
	od;
	atomic { j = 0; k = 0; nb = 0; b0 = 0; b1 = 0; cst = 0; pushed = false; busy-- }
}

/* notify_clear */
inline clear_fd(i) {
	do
	::
#ifndef BUG_CLEAR_ORDER
		atomic { owed = (word[i] & WRITING) != 0 };
		atomic { rd = efd[i] > 0; efd[i] = 0 };
		if
		:: rd || !owed -> break
		:: else
		fi;
#else
		atomic { rd = efd[i] > 0; efd[i] = 0 };
		if
		:: rd -> break
		:: else
		fi;
		atomic { owed = (word[i] & WRITING) != 0 };
		if
		:: !owed -> break
		:: else
		fi;
#endif
		sleep_owed(i)
	od;
	atomic { owed = false; rd = false }
}

/* notify_signal_self */
inline signal_self(i) {
	try_signal(i, wd & ARMED)
}

/* notify_arm */
inline arm(i, sn) {
	load(i, wd);
	do
	::
		if
		:: !(wd & ARMED) && !fdclear ->
			clear_fd(i);
			fdclear = true
		:: else
		fi;
		atomic {
			cas(i, wd, ARMED | HELD | sn * SEEN_ONE, ok);
			if
			:: ok && !(wd & HELD) -> where[i] = BY_CONSUMER + i
			:: else
			fi
		};
		if
		:: ok -> break
		:: else
		fi
	od;
	if
	:: !(wd & HELD) -> push(i, BY_CONSUMER + i)
	:: else
	fi;
#ifndef BUG_NO_RECHECK
	if
	:: state > sn -> signal_self(i)
	:: else
	fi
#endif
}

/* ev_watcher_get: watcher_take's fast path, then watcher_take_new.  Sets
 * r, and sv to the snapshot's version on OK. */
inline watcher_get(i) {
	atomic {
		ls = state;
		in_get[i] = ls > cseen[i]
	};
	if
	:: ls <= cseen[i] ->
		r = ((ls & CLOSED) != 0 -> EPIPE : EAGAIN)
	:: else ->
		atomic {
			sv = cur;               /* ev__slot_take */
			if
			:: sv > cseen[i] / 2 -> r = OK
			:: else ->
				assert(ls & CLOSED);    /* (d) changed only by closing */
				cseen[i] = ls;
				r = EPIPE
			fi
		};
		if
		:: r == OK ->
			atomic {        /* ev__value_take_current's catch-up */
				if
				:: state == (sv - 1) * 2 -> state = sv * 2
				:: else
				fi
			};
			atomic {        /* closed after it? */
				nseen = sv * 2;
				if
				:: state == nseen + CLOSED -> nseen = nseen + CLOSED
				:: else
				fi;
				cseen[i] = nseen
			}
		:: else
		fi;
		nseen = cseen[i];
#ifndef BUG_REARM_CLOSED
		if
		:: !(nseen & CLOSED) ->
#else
		if
		:: true ->
#endif
			fdclear = false;
			arm(i, nseen)
		:: else
		fi;
		atomic {
			in_get[i] = false;
			ls = 0; nseen = 0; wd = 0; ok = false; fdclear = false
		}
	fi;
	ls = 0
}

/* ev__notify_detach, under the contract that no get runs on w meanwhile */
inline watcher_detach(i) {
	atomic {
		assert(!freed[i]);
		wd = word[i];
		word[i] = wd | CLOSING;
		live[i] = false
	};
#ifndef BUG_NO_WRITING_WAIT
	do
	:: wd & WRITING ->
		sleep_owed(i);
		load(i, wd)
	:: else -> break
	od;
#endif
	fd_open[i] = false;     /* close(w->fd) */
	if
	:: wd & HELD -> busy++; collect(BY_DETACHER)
	:: else
	fi;
	atomic {
		assert(!freed[i]);
		wd = word[i];
		word[i] = wd | DETACHED;
#ifndef BUG_FREE_HELD
		freed[i] = !(wd & HELD);
#else
		freed[i] = true;
#endif
		wd = 0
	}
}

/* ev__notify_attach, for a watcher made while sets and close run */
inline watcher_attach(i) {
	fd_open[i] = true;      /* ev__eventfd_new */
	if
	:: cseen[i] = state     /* EV_VALUE_WATCH_SKIP_CURRENT */
	:: cseen[i] = 0         /* flags 0: nothing seen */
	fi;
	ls = state;
	if
	:: ls > cseen[i] || (ls & CLOSED) ->
		eventfd_write(i);
		word[i] = cseen[i] * SEEN_ONE
	:: else ->
		word[i] = 0;
		fdclear = true;
		arm(i, cseen[i])
	fi;
	live[i] = true
}

/* ev_value_set, NSETS times; it stops at the first -EPIPE. */
proctype producer() {
	byte n = 0;
	LOCALS;

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
#if !defined(BUG_COLLECT_BEFORE_STATE) && !defined(BUG_STATE_BEFORE_SNAPSHOT)
		atomic { cur = (ls >> 1) + 1; busy++ }  /* ev__slot_replace_locked */
		state = ls + VERSION_ONE;
		atomic { unlock(); ls = 0 };
		collect(BY_PRODUCER)            /* ev__notify_publish */
#elif defined(BUG_STATE_BEFORE_SNAPSHOT)
		atomic { state = ls + VERSION_ONE; busy++ };
		cur = (ls >> 1) + 1;
		unlock();
		collect(BY_PRODUCER)
#else
		atomic { cur = (ls >> 1) + 1; busy++ };
		collect(BY_PRODUCER);           /* ends with busy-- */
		atomic { busy++; state = ls + VERSION_ONE };
		atomic { unlock(); busy-- }
#endif
	:: else -> break
	od
}

/* ev_value_close */
proctype closer() {
	LOCALS;

	lock();
	ls = state;
	if
	:: !(ls & CLOSED) ->
		atomic { state = ls | CLOSED; busy++ };
		unlock();
		collect(BY_CLOSER)
	:: else ->
		unlock()
	fi
}

proctype consumer(byte i; bool late) {
	byte r, last = 0;
	bool polled, must_poll = false;
	LOCALS;

#ifdef LATE_WATCHER
	if
	:: late ->
		watcher_attach(i);
		last = cseen[i] >> 1    /* what SKIP_CURRENT counts as seen */
	:: else
	fi;
#endif
	do
	::
		if
#ifndef NO_WATCHER_CLOSE
		:: i == 0 ->
			watcher_detach(i);
			break
#endif
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
			atomic { must_poll = true; r = 0 }
		:: r == OK ->
			assert(sv > last);      /* (d) versions strictly increase */
			atomic { last = sv; sv = 0; must_poll = false; r = 0 }
		fi
	od
}

active proctype monitor() {
end:
	do
	:: atomic { !no_lost_wakeup(0) -> assert(no_lost_wakeup(0)) }
	:: atomic { !no_lost_wakeup(1) -> assert(no_lost_wakeup(1)) }
	:: atomic { !signal_kept(0) -> assert(signal_kept(0)) }
	:: atomic { !signal_kept(1) -> assert(signal_kept(1)) }
	:: atomic { !no_spurious_ready(0) -> assert(no_spurious_ready(0)) }
	:: atomic { !no_spurious_ready(1) -> assert(no_spurious_ready(1)) }
	:: atomic { !held_somewhere(0) -> assert(held_somewhere(0)) }
	:: atomic { !held_somewhere(1) -> assert(held_somewhere(1)) }
	od
}

/* The watchers are made, armed and on the stack, while the state is 0;
 * then everything starts. */
init {
	atomic {
		word[0] = ARMED | HELD; live[0] = true; fd_open[0] = true;
		stk[0] = 0; nstk = 1; where[0] = STACK;
		run producer();
		run closer();
		run consumer(0, false);
#ifndef LATE_WATCHER
		word[1] = ARMED | HELD; live[1] = true; fd_open[1] = true;
		stk[1] = 1; nstk = 2; where[1] = STACK;
		run consumer(1, false)
#else
		run consumer(1, true)
#endif
	}
	/* Everyone else has ended: (e) the closed watcher is freed or left
	 * on the stack for the value's destruction; (a) the open watchers of
	 * the closed value are readable for good. */
	_nr_pr == 2;
	assert(live[0] || freed[0] || where[0] == STACK);
	assert(!live[0] || efd[0] > 0);
	assert(!live[1] || efd[1] > 0)
}
