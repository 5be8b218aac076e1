#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of tests/fuzz/fuzz-api.c, one scenario per file.

An input is a sequence of 4-byte records  [op | thread << 5] [a] [b] [c]:
op (mod 21) is one of the OP_* below, thread (mod 3) runs it (0 the fuzzer's
thread, 1 and 2 the workers that run in turn with it).  Operands:

  NEW       a: value slot (mod 3), used only when empty
  SET       a: value, b: size class (b & 3: 0 -> 0 bytes, and data NULL when
            b & 4; 1 -> 1 byte; 2 -> 2 + (b >> 2); 3 -> 64 * ((b >> 2) + 1)),
            c: seed of the bytes
  SET_OWNED a: value, b: variant (b & 3: 0 malloc'ed b >> 2 bytes; 1 NULL and
            0 bytes; 2 a static buffer of b >> 2 bytes, destroy NULL;
            3 malloc'ed 64 * ((b >> 2) + 1) bytes), c: seed
  GET       a: value, b: held snapshot slot (mod 8) for ev_value_get
  VERSION   a: value
  CLOSE     a: value
  REF       a: value
  UNREF     a: value (the last harness reference empties the slot)
  WATCH     a: watcher slot (mod 6), b: value, c: c & 3: 0 or 3 own fd,
            1 EV_VALUE_WATCH_SHARED_FD, 2 an undefined flag (-EINVAL);
            c & 0x40 adds EV_VALUE_WATCH_SKIP_CURRENT to 0, 1 and 3
  WGET      a: watcher, b: held slot
  WAIT      a: watcher, b: held slot, c: cancel fd (c & 7: 1 the harness's
            eventfd, 2 a hung-up pipe, 3 an fd that is not open, 4 -2,
            5 INT_MIN, else -1) | timeout << 3 (0 -> 0 ms, 1 -> -1, 2 ->
            INT_MAX, used only when the model says the wait cannot block)
  WCLOSE    a: watcher
  SREF      a: held slot to reference, b: held slot to store it in
  SUNREF    a: held slot
  CANCEL    a: odd makes the cancel eventfd readable, even drains it
  BAD       a % 3: 0 NULL objects everywhere, 1 bad arguments on value b,
            2 bad arguments on watcher b; c: size or cancel fd offset
  SET_BIG   a: value, c: seed; 1 MiB, only the first one of an input
  CHECK     a: held slot, re-checked in place
  SET_IF_CHANGED  as SET, with EV_VALUE_SET_IF_CHANGED: skipped (0) when the
            value already holds those bytes
  UPDATE    a: value, b: size class, c: seed; the function sets (c % 3 == 0),
            keeps (1) or fails with -ECANCELED (2)
  WAIT_UNTIL  a: watcher, b: held slot, c: the lowest version accepted;
            timeout 0, no cancel fd

Run it from anywhere: it rewrites tests/fuzz/corpus/seed-* next to itself.
"""
import os

OPS = ["NEW", "SET", "SET_OWNED", "GET", "VERSION", "CLOSE", "REF", "UNREF",
       "WATCH", "WGET", "WAIT", "WCLOSE", "SREF", "SUNREF", "CANCEL", "BAD",
       "SET_BIG", "CHECK", "SET_IF_CHANGED", "UPDATE", "WAIT_UNTIL"]
CODE = {name: i for i, name in enumerate(OPS)}

# Handy operand values.
OWN, SHARED, BADFLAG, SKIP = 0, 1, 2, 0x40
SIZE0, SIZE0_NULL, SIZE1 = 0, 4, 1


def small(n):       # SET size class for 2..65 bytes
    return 2 | ((n - 2) << 2)


def kib(k):         # SET size class for 64 * ... bytes, k in 64-byte units
    return 3 | ((k - 1) << 2)


def wait_c(cancel, timeout=0):
    return cancel | (timeout << 3)


def op(name, a=0, b=0, c=0, t=0):
    return bytes([CODE[name] | (t << 5), a, b, c])


SEEDS = {
    # Set first, then watch: the first get gives the current version.
    "set-then-watch": [
        op("NEW", 0), op("SET", 0, small(10), 1), op("SET", 0, SIZE1, 2),
        op("WATCH", 0, 0, OWN), op("WGET", 0, 0), op("WGET", 0, 1),
        op("VERSION", 0), op("GET", 0, 2), op("SUNREF", 0),
    ],
    # Watch a never-set value, then set: -EAGAIN, then the new version.
    "watch-then-set": [
        op("NEW", 1), op("WATCH", 1, 1, OWN), op("WGET", 1, 0),
        op("WAIT", 1, 0, wait_c(0)), op("GET", 1, 3),
        op("SET", 1, SIZE0_NULL, 7), op("WGET", 1, 0), op("WGET", 1, 1),
        op("SET", 1, SIZE0, 8), op("WAIT", 1, 2, wait_c(0, 1)),
    ],
    # Many sets while the consumer is away: one get, the newest only.
    "coalesced-sets": [
        op("NEW", 0), op("WATCH", 0, 0), op("WATCH", 1, 0),
        *[op("SET", 0, small(2 + i), i) for i in range(12)],
        op("WGET", 0, 0), op("WGET", 0, 1), op("SET", 0, kib(4), 99),
        op("WGET", 1, 2), op("WGET", 0, 3), op("CHECK", 0), op("CHECK", 2),
    ],
    # Close with watchers that have and have not seen the last version.
    "close-with-watchers": [
        op("NEW", 2), op("SET", 2, small(5), 3), op("WATCH", 0, 2),
        op("WATCH", 1, 2), op("WGET", 0, 0), op("CLOSE", 2),
        op("WGET", 0, 1), op("WGET", 1, 1), op("WGET", 1, 2),
        op("SET", 2, SIZE1, 4), op("CLOSE", 2), op("GET", 2, 3),
        op("WATCH", 2, 2), op("WGET", 2, 4), op("WGET", 2, 4),
        op("WAIT", 0, 5, wait_c(0, 1)),
    ],
    # Close a never-set value: watchers get -EPIPE, late ones too.
    "close-never-set": [
        op("NEW", 0), op("WATCH", 0, 0), op("CLOSE", 0), op("WGET", 0, 0),
        op("WATCH", 1, 0, SHARED), op("WGET", 1, 0), op("GET", 0, 0),
        op("SET_OWNED", 0, 0 | (8 << 2), 5),
    ],
    # Adopted buffers, replaced while held and after release.
    "owned-sets": [
        op("NEW", 0), op("SET_OWNED", 0, 0 | (16 << 2), 1), op("GET", 0, 0),
        op("SET_OWNED", 0, 3 | (10 << 2), 2), op("SET_OWNED", 0, 1, 3),
        op("SUNREF", 0), op("GET", 0, 1), op("SET_OWNED", 0, 2 | (40 << 2)),
        op("SREF", 1, 2), op("SUNREF", 1), op("SET", 0, SIZE1, 4),
        op("SUNREF", 2), op("SET_OWNED", 0, 0, 6),
    ],
    # The producer drops the value while watchers and snapshots live on.
    "unref-with-watchers": [
        op("NEW", 0), op("REF", 0), op("SET_OWNED", 0, 0 | (7 << 2), 9),
        op("WATCH", 3, 0), op("WATCH", 4, 0, SHARED), op("UNREF", 0),
        op("UNREF", 0), op("NEW", 0), op("WGET", 3, 0), op("WCLOSE", 3),
        op("WGET", 4, 1), op("SUNREF", 0), op("WCLOSE", 4), op("SUNREF", 1),
    ],
    # Shared-fd watchers of one value; wait on them is -EOPNOTSUPP.
    "shared-fd": [
        op("NEW", 1), op("WATCH", 0, 1, SHARED), op("WATCH", 1, 1, SHARED),
        op("WATCH", 2, 1, OWN), op("SET", 1, small(3), 1), op("WGET", 0, 0),
        op("WAIT", 1, 1, wait_c(0)), op("WGET", 1, 1), op("WGET", 1, 2),
        op("WCLOSE", 0), op("WCLOSE", 1), op("WATCH", 0, 1, SHARED),
        op("SET", 1, SIZE1, 2), op("WGET", 0, 3), op("WGET", 2, 4),
    ],
    # Watchers that skip the current snapshot: only later sets and the close.
    "skip-current": [
        op("NEW", 0), op("SET", 0, small(4), 1), op("WATCH", 0, 0, OWN | SKIP),
        op("WATCH", 1, 0, SHARED | SKIP), op("WGET", 0, 0), op("WGET", 1, 1),
        op("SET", 0, small(5), 2), op("WGET", 0, 2), op("WGET", 1, 3),
        op("CLOSE", 0), op("WATCH", 2, 0, OWN | SKIP), op("WGET", 2, 4),
        op("WGET", 0, 5),
    ],
    # Sets of unchanged bytes are skipped; changed ones set.
    "set-if-changed": [
        op("NEW", 0), op("WATCH", 0, 0), op("SET_IF_CHANGED", 0, small(6), 3),
        op("WGET", 0, 0), op("SET_IF_CHANGED", 0, small(6), 3), op("WGET", 0, 1),
        op("SET_IF_CHANGED", 0, small(6), 4), op("WGET", 0, 2),
        op("SET_IF_CHANGED", 0, SIZE0, 0), op("SET_IF_CHANGED", 0, SIZE0, 9),
        op("CLOSE", 0), op("SET_IF_CHANGED", 0, small(6), 4),
    ],
    # Read-modify-write and waiting for a version.
    "update-wait-until": [
        op("NEW", 0), op("WATCH", 0, 0), op("WATCH", 1, 0, SHARED),
        op("UPDATE", 0, small(4), 3), op("UPDATE", 0, small(4), 4),
        op("UPDATE", 0, small(4), 5), op("WAIT_UNTIL", 0, 0, 3),
        op("WAIT_UNTIL", 0, 0, 1), op("UPDATE", 0, SIZE1, 6),
        op("WAIT_UNTIL", 0, 1, 2), op("WAIT_UNTIL", 1, 1, 0),
        op("UPDATE", 0, small(3), 9), op("CLOSE", 0),
        op("WAIT_UNTIL", 0, 2, 9), op("UPDATE", 0, small(3), 9),
    ],
    # Every group of bad arguments, on own and shared watchers.
    "bad-args": [
        op("BAD", 0), op("NEW", 0), op("SET", 0, SIZE1, 1),
        op("WATCH", 0, 0, OWN), op("WATCH", 1, 0, SHARED),
        op("WATCH", 2, 0, BADFLAG | (5 << 2)), op("WATCH", 2, 0, 0x82),
        op("BAD", 1, 0, 7), op("BAD", 2, 0, 0), op("BAD", 2, 0, 255),
        op("BAD", 2, 1, 3), op("WAIT", 0, 0, wait_c(4)),
        op("WAIT", 0, 0, wait_c(5)), op("WAIT", 1, 0, wait_c(4)),
        op("WGET", 0, 0), op("BAD", 0),
    ],
    # Cancel fds: readable eventfd, hung-up pipe, not open, precedence.
    "wait-cancel": [
        op("NEW", 0), op("WATCH", 0, 0), op("WAIT", 0, 0, wait_c(1)),
        op("CANCEL", 1), op("WAIT", 0, 0, wait_c(1)),
        op("WAIT", 0, 0, wait_c(1, 1)), op("WAIT", 0, 0, wait_c(2, 2)),
        op("WAIT", 0, 0, wait_c(3, 1)), op("SET", 0, small(4), 2),
        op("WAIT", 0, 1, wait_c(1, 1)), op("CANCEL", 0),
        op("WAIT", 0, 1, wait_c(1)), op("CLOSE", 0),
        op("WAIT", 0, 2, wait_c(2, 1)), op("WAIT", 0, 2, wait_c(3)),
    ],
    # Threads in turn: set on one, get on another, release on a third.
    "cross-thread": [
        op("NEW", 0, t=1), op("WATCH", 0, 0, t=2), op("WATCH", 1, 0, SHARED, t=0),
        op("SET", 0, small(20), 1, t=1), op("WGET", 0, 0, t=2),
        op("SREF", 0, 1, t=0), op("SUNREF", 0, t=1),
        op("SET_OWNED", 0, 0 | (12 << 2), 2, t=2), op("WGET", 0, 2, t=0),
        op("WGET", 1, 3, t=1), op("SET", 0, SIZE1, 3, t=0),
        op("SUNREF", 2, t=1), op("WAIT", 0, 4, wait_c(0, 1), t=2),
        op("SUNREF", 1, t=2), op("CLOSE", 0, t=1), op("WGET", 0, 5, t=0),
        op("UNREF", 0, t=2), op("WCLOSE", 0, t=1),
    ],
    # A value of exactly 1 MiB, peeked and taken by two watchers.
    "big-set": [
        op("NEW", 0), op("WATCH", 0, 0), op("WATCH", 1, 0, SHARED),
        op("SET_BIG", 0, 0, 77), op("WGET", 0, 0), op("GET", 0, 1),
        op("WGET", 1, 2), op("SET", 0, SIZE1, 1), op("SUNREF", 0),
        op("SET_BIG", 0, 0, 78),
    ],
    # Three values, several watchers, snapshot references crossing values.
    "three-values": [
        op("NEW", 0), op("NEW", 1), op("NEW", 2),
        op("WATCH", 0, 0), op("WATCH", 1, 1), op("WATCH", 2, 2, SHARED),
        op("WATCH", 3, 0), op("SET", 0, small(8), 1), op("SET", 1, kib(2), 2),
        op("SET", 2, SIZE0, 3), op("WGET", 0, 0), op("WGET", 1, 1),
        op("WGET", 2, 2), op("SREF", 0, 3), op("SREF", 1, 4),
        op("CLOSE", 1), op("WGET", 1, 5), op("WATCH", 3, 2), op("WGET", 3, 6),
        op("UNREF", 2), op("WGET", 2, 7), op("SUNREF", 3),
    ],
    # Value reference counting around watchers.
    "refs": [
        op("NEW", 0), op("REF", 0), op("REF", 0), op("WATCH", 0, 0),
        op("UNREF", 0), op("UNREF", 0), op("SET", 0, SIZE1, 5), op("UNREF", 0),
        op("UNREF", 0), op("WGET", 0, 0), op("WCLOSE", 0), op("SUNREF", 0),
    ],
    # Repeated identical sets still notify every time.
    "identical-sets": [
        op("NEW", 0), op("WATCH", 0, 0), op("SET", 0, small(6), 9),
        op("WGET", 0, 0), op("SET", 0, small(6), 9), op("WGET", 0, 1),
        op("SET", 0, small(6), 9), op("WAIT", 0, 2, wait_c(0, 2)),
        op("SET_OWNED", 0, 2 | (6 << 2)), op("SET_OWNED", 0, 2 | (6 << 2)),
        op("WGET", 0, 3),
    ],
}


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    corpus = os.path.join(here, "corpus")
    os.makedirs(corpus, exist_ok=True)
    for name in os.listdir(corpus):
        if name.startswith("seed-"):
            os.remove(os.path.join(corpus, name))
    for name, records in SEEDS.items():
        with open(os.path.join(corpus, "seed-" + name), "wb") as f:
            f.write(b"".join(records))
    print("wrote %d seeds to %s" % (len(SEEDS), corpus))


if __name__ == "__main__":
    main()
