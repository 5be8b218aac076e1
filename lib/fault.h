/* SPDX-License-Identifier: MIT */
/*
 * Fault injection points.  Every place where the library allocates memory
 * or creates a file descriptor asks ev__fault() first, naming its site.  In
 * the library users get, ev__fault() is a constant 0 and costs nothing; the
 * tests link a second build of lib/ made with EV_VALUE_FAULT_INJECTION, in
 * which lib/fault.c lets a test make the n-th such call fail, so that a test
 * can walk a failure through every site an operation reaches and check that
 * the operation reports it and changes nothing.
 */
#ifndef EV_VALUE_FAULT_H
#define EV_VALUE_FAULT_H

enum ev__fault_site {
        EV__FAULT_VALUE_ALLOC,    /* ev_value_new: the value */
        EV__FAULT_WATCHER_ALLOC,  /* ev_value_watch: the watcher */
        EV__FAULT_SNAPSHOT_ALLOC, /* every set: the snapshot */
        EV__FAULT_EVENTFD,        /* ev_value_watch: own or shared eventfd */
        EV__FAULT_N_SITES
};

#ifdef EV_VALUE_FAULT_INJECTION
/* 0 to go on, or the negative errno the site must fail with. */
int ev__fault(enum ev__fault_site site);

/* For tests: make the n-th call of ev__fault() from now fail with error
 * (an allocation site fails as malloc does, whatever error says); n == 0
 * disarms.  Resets the counts below. */
void ev__fault_arm(unsigned n, int error);
/* The site the armed failure was injected at, or -1 while it has not been. */
int ev__fault_fired(void);
/* Calls of ev__fault() from each site since the last ev__fault_arm(). */
unsigned ev__fault_calls(enum ev__fault_site site);
#else
static inline int ev__fault(enum ev__fault_site site) {
        (void)site;
        return 0;
}
#endif

#endif
