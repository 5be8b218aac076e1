/* SPDX-License-Identifier: MIT */
/*
 * The value's current snapshot, which producers replace and consumers take
 * without a lock: a split reference count.  The slot is one 64-bit word,
 * the snapshot's address in the low 48 bits (every user-space address on
 * Linux fits unless mmap was asked for more; snapshot.c refuses the rest)
 * and the number of consumers borrowing it in the high 16.  A snapshot
 * enters the slot with SLOT_RESERVE references added to its own, the
 * reserve that borrows draw on.  A consumer borrows with one atomic add,
 * which reads the address and keeps the snapshot alive at once, takes a
 * reference of its own, then gives the borrow back to the slot; or, when a
 * producer replaced the snapshot meanwhile, to the reserve.  The producer
 * that replaces it gives back the rest of the reserve and the value's
 * reference.  Because the reserve outnumbers the borrowers, a consumer's
 * give-back can never make the count reach zero before the producer's
 * does.  A lock would let a consumer preempted while holding it stall
 * every set.
 */
#include "config.h"

#include "internal.h"

#define SLOT_ADDRESS_MASK ((UINT64_C(1) << 48) - 1)
#define SLOT_BORROW (UINT64_C(1) << 48)
/* More than the 2^16 - 1 borrows the slot can count. */
#define SLOT_RESERVE (UINT64_C(1) << 20)

static ev_value_snapshot *slot_snapshot(uint64_t word) {
        return (ev_value_snapshot *)(uintptr_t)(word & SLOT_ADDRESS_MASK);
}

ev_value_snapshot *ev__slot_take(_Atomic uint64_t *slot) {
        uint64_t word;
        ev_value_snapshot *s;

        /* Never set: nothing to borrow.  Once set, the slot is never empty
         * again, so the borrow below finds a snapshot. */
        if (!slot_snapshot(atomic_load_explicit(slot, memory_order_relaxed)))
                return NULL;
        word = atomic_fetch_add(slot, SLOT_BORROW) + SLOT_BORROW;
        s = slot_snapshot(word);
        atomic_fetch_add_explicit(&s->n_ref, 1, memory_order_relaxed);
        while (slot_snapshot(word) == s)
                if (atomic_compare_exchange_weak(slot, &word, word - SLOT_BORROW))
                        return s;
        /* Replaced: the producer took the borrow as drawn from the reserve;
         * give it back there.  Never the last reference: we hold our own. */
        atomic_fetch_sub_explicit(&s->n_ref, 1, memory_order_release);
        return s;
}

ev_value_snapshot *ev__slot_peek_locked(_Atomic uint64_t *slot) {
        return slot_snapshot(atomic_load_explicit(slot, memory_order_relaxed));
}

uint64_t ev__slot_replace_locked(_Atomic uint64_t *slot, ev_value_snapshot *s) {
        /* Not yet shared: a plain add. */
        atomic_store_explicit(&s->n_ref, atomic_load_explicit(&s->n_ref, memory_order_relaxed) +
                                                 SLOT_RESERVE,
                              memory_order_relaxed);
        return atomic_exchange(slot, (uint64_t)(uintptr_t)s);
}

void ev__slot_release(uint64_t replaced) {
        ev_value_snapshot *s = slot_snapshot(replaced);
        uint64_t borrows = replaced >> 48, ours = 1 + SLOT_RESERVE - borrows;

        if (!s)
                return;
        /* Unborrowed and unshared: nobody can reach it any more, so no
         * atomic read-modify-write is needed to free it. */
        if (borrows == 0 && atomic_load_explicit(&s->n_ref, memory_order_acquire) == ours) {
                ev__snapshot_destroy(s);
                return;
        }
        /* The value's reference and the reserve the borrowers left; each of
         * them gives back its own draw. */
        if (atomic_fetch_sub_explicit(&s->n_ref, ours, memory_order_acq_rel) == ours)
                ev__snapshot_destroy(s);
}
