/* SPDX-License-Identifier: MIT */
/*
 * The switchable side of lib/fault.h, built only into the test copy of the
 * library (EV_VALUE_FAULT_INJECTION): a countdown to the call that fails,
 * and a count of the calls from each site.  The state is global because the
 * sites are deep inside calls a test cannot reach into; the tests that arm
 * it run one operation at a time, so relaxed atomics are enough to keep
 * ThreadSanitizer and other threads' calls well defined.
 */
#include "config.h"

#include <errno.h>
#include <stdatomic.h>

#include "fault.h"

static atomic_uint countdown;    /* calls left until the failure; 0: disarmed */
static atomic_int armed_error;
static atomic_int fired;          /* site + 1 once injected */
static atomic_uint calls[EV__FAULT_N_SITES];

int ev__fault(enum ev__fault_site site) {
        unsigned left;

        atomic_fetch_add_explicit(&calls[site], 1, memory_order_relaxed);
        left = atomic_load_explicit(&countdown, memory_order_relaxed);
        while (left > 0 && !atomic_compare_exchange_weak_explicit(&countdown, &left, left - 1,
                                                                   memory_order_relaxed,
                                                                   memory_order_relaxed))
                ;
        if (left != 1)
                return 0;
        atomic_store_explicit(&fired, (int)site + 1, memory_order_relaxed);
        return site == EV__FAULT_EVENTFD ? atomic_load_explicit(&armed_error, memory_order_relaxed)
                                         : -ENOMEM;
}

void ev__fault_arm(unsigned n, int error) {
        int i;

        for (i = 0; i < EV__FAULT_N_SITES; i++)
                atomic_store_explicit(&calls[i], 0, memory_order_relaxed);
        atomic_store_explicit(&fired, 0, memory_order_relaxed);
        atomic_store_explicit(&armed_error, error, memory_order_relaxed);
        atomic_store_explicit(&countdown, n, memory_order_relaxed);
}

int ev__fault_fired(void) {
        return atomic_load_explicit(&fired, memory_order_relaxed) - 1;
}

unsigned ev__fault_calls(enum ev__fault_site site) {
        return atomic_load_explicit(&calls[site], memory_order_relaxed);
}
