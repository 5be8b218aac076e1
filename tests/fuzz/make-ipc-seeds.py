#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpora of tests/fuzz/fuzz-ipc-server.c and
tests/fuzz/fuzz-ipc-consumer.c, one session per file: a few valid sessions
and one for each kind of broken message.  The encodings are described at
the top of each harness: a config byte, then records of an op byte and its
operands.

Run it from anywhere: it rewrites tests/fuzz/corpus-ipc-server/seed-* and
tests/fuzz/corpus-ipc-consumer/seed-* next to itself.
"""
import errno
import os

# ---------------------------------------------------------------- server
S_OPS = ["CONNECT", "HELLO", "MESSAGE", "RAW", "READ", "CLOSE", "SHUT", "SET",
         "PROCESS", "GOOD", "GOOD_GET", "VCLOSE", "VALID_SET"]
S = {name: i for i, name in enumerate(S_OPS)}
ALLOW_SET, SKIP = 1, 2
# protocol.h
HELLO, SET, STATE, REPLY, ERROR = 1, 2, 3, 4, 5
DATA_FD, PAGE_FD, SKIP_CURRENT, SETTER, NO_DATA = 1, 2, 4, 8, 16
BIG = 0x81  # size class of a memfd SET or STATE


def s(name, *operands):
    return bytes([S[name], *operands])


def msg(peer, type_, flags, mode, size, k=0):
    """MESSAGE: mode bits 0-3 the fds (1 sealed memfd, 3 unsealed, 4 no
    F_SEAL_WRITE, 5 no F_SEAL_SHRINK, 6 larger, 7 smaller, 8 pipe,
    9 socket, 10/11 two/three memfds, 12 MSG_CTRUNC, 13 a page, 14
    /dev/null, 15 no F_SEAL_SEAL), bit 4 wrong magic, bit 5 reserved,
    bit 6 code, bit 7 state; k bit 0: the size lies."""
    return s("MESSAGE", peer, type_, flags, mode, size, k)


def setter(peer):
    return s("CONNECT", peer) + s("HELLO", peer, SETTER) + s("PROCESS")


def watcher(peer, flags=0):
    return s("CONNECT", peer) + s("HELLO", peer, flags) + s("PROCESS")


def bad_set(mode, size=BIG, k=0, flags=DATA_FD):
    return setter(0) + msg(0, SET, flags, mode, size, k) + s("GOOD") + s("READ", 0) + \
        s("SET", 3) + s("GOOD")


SERVER_SEEDS = {
    "watch-and-close": bytes([0]) + s("SET", 5) + s("GOOD") + watcher(0) + s("READ", 0) +
    s("SET", 10) + s("SET", BIG) + s("GOOD") + s("READ", 0) + s("PROCESS") + s("READ", 0) +
    s("VCLOSE") + s("GOOD") + s("READ", 0),
    "skip-current": bytes([SKIP]) + s("SET", 4) + watcher(1, SKIP_CURRENT) + s("READ", 1) +
    s("SET", 6) + s("GOOD") + s("READ", 1),
    "remote-sets": bytes([ALLOW_SET]) + s("VALID_SET", 0, 5) + s("PROCESS") + s("READ", 0) +
    s("GOOD") + s("VALID_SET", 1, 0x82) + s("PROCESS") + s("READ", 1) + s("GOOD") +
    s("SET", 3) + s("GOOD") + s("CLOSE", 0) + s("CLOSE", 1) + s("GOOD"),
    "remote-set-eperm": bytes([0]) + s("VALID_SET", 0, 5) + s("PROCESS") + s("READ", 0) +
    s("VALID_SET", 0, BIG) + s("PROCESS") + s("READ", 0) + s("GOOD"),
    "remote-set-after-close": bytes([ALLOW_SET]) + s("SET", 2) + s("VCLOSE") +
    s("VALID_SET", 0, 5) + s("PROCESS") + s("READ", 0) + s("GOOD"),
    "never-reads": bytes([0]) + s("SET", 1) + watcher(0) +
    b"".join(s("SET", i) for i in range(2, 40)) + s("SET", BIG) + s("GOOD") +
    s("READ", 0) + s("PROCESS") + s("READ", 0) + s("GOOD"),
    "hang-ups": bytes([ALLOW_SET]) + s("SET", 1) + watcher(0) + setter(1) + s("SHUT", 0) +
    s("CLOSE", 1) + s("SET", 2) + s("GOOD") + s("CONNECT", 0) + s("CLOSE", 0) + s("GOOD"),
    "garbage": bytes([0]) + s("SET", 1) + s("CONNECT", 0) + s("PROCESS") +
    s("RAW", 0, 40) + bytes(range(40)) + s("GOOD") + s("READ", 0),
    "garbage-after-hello": bytes([0]) + s("SET", 1) + watcher(0) + s("RAW", 0, 8) +
    b"\xff" * 8 + s("GOOD") + s("READ", 0),
    "wrong-magic": bytes([0]) + s("CONNECT", 0) + msg(0, HELLO, 0, 0x10, 0, 3) + s("GOOD") +
    s("READ", 0),
    "unknown-type": bytes([0]) + s("CONNECT", 0) + msg(0, 7, 0, 0, 0) + s("GOOD") +
    s("READ", 0),
    "state-from-peer": bytes([0]) + setter(0) + msg(0, STATE, 0, 0x80, 2, 4) + s("GOOD") +
    s("READ", 0),
    "second-hello": bytes([0]) + watcher(0) + s("HELLO", 0, 0) + s("GOOD") + s("READ", 0) +
    setter(1) + s("HELLO", 1, SETTER) + s("GOOD") + s("READ", 1),
    "watcher-sets": bytes([ALLOW_SET]) + s("SET", 1) + watcher(0) + msg(0, SET, 0, 0, 2) +
    s("GOOD") + s("READ", 0),
    "set-size-lies": bytes([ALLOW_SET]) + bad_set(0, 2, 1, 0),
    "set-reserved": bytes([ALLOW_SET]) + bad_set(0x20, 2, 1, 0),
    "set-unsealed-memfd": bytes([ALLOW_SET]) + bad_set(3),
    "set-no-seal-write": bytes([ALLOW_SET]) + bad_set(4),
    "set-no-seal-shrink": bytes([ALLOW_SET]) + bad_set(5),
    "set-memfd-larger": bytes([ALLOW_SET]) + bad_set(6),
    "set-memfd-smaller": bytes([ALLOW_SET]) + bad_set(7),
    "set-pipe": bytes([ALLOW_SET]) + bad_set(8),
    "set-socket": bytes([ALLOW_SET]) + bad_set(9),
    "set-three-fds": bytes([ALLOW_SET]) + bad_set(11),
    "set-ctrunc": bytes([ALLOW_SET]) + bad_set(12),
    "set-valid-memfd": bytes([ALLOW_SET]) + bad_set(1),
    "set-flag-without-fd": bytes([ALLOW_SET]) + bad_set(0),
    "set-fd-without-flag": bytes([ALLOW_SET]) + bad_set(1, 2, 0, 0),
    "set-flood-unread": bytes([0]) + setter(0) +
    b"".join(msg(0, SET, 0, 0, 2) + s("PROCESS") for _ in range(40)) + s("GOOD") +
    s("READ", 0),
}

# ---------------------------------------------------------------- consumer
C_OPS = ["STATE", "RAW", "GET", "WAIT", "PAGE", "SHUT", "CLOSE", "ERROR", "HOLD"]
C = {name: i for i, name in enumerate(C_OPS)}


def c(name, *operands):
    return bytes([C[name], *operands])


def state(step, size=4, closed=0, page=0, data=0):
    """STATE: page modes 0 first only, 1 never, 2 always, 3 unsealed,
    4 no F_SEAL_FUTURE_WRITE, 5 too small, 6 pipe, 7 page left behind;
    data modes 0 inline, 1 sealed memfd, 2 unsealed, 3 larger, 4 smaller,
    5 shrunk, 6 pipe, 7 size lies, 8 NO_DATA, 9 inline and memfd, 10
    three fds, 11 MSG_CTRUNC, 12 not padded, 13 no F_SEAL_WRITE, 14 empty,
    15 small data in a memfd."""
    return c("STATE", step, closed | page << 1 | data << 4, size)


GET = c("GET")
FIRST = state(1) + GET


def broken(*records):
    return bytes([0]) + FIRST + b"".join(records) + GET + GET + c("WAIT") + state(1) + GET


CONSUMER_SEEDS = {
    "valid-session": bytes([0]) + FIRST + GET + state(1, 10) + state(2, 3) + GET + GET +
    state(1, 3, data=1) + GET + c("HOLD") + state(1, 2, closed=1) + GET + GET + c("SHUT") +
    GET,
    "valid-close-no-data": bytes([1]) + FIRST + state(0, 0, closed=1, data=8) + GET + GET +
    c("SHUT") + GET,
    "valid-memfds-held": bytes([0]) + state(3, 1, data=1) + GET + c("HOLD") +
    state(1, 7, data=1) + c("WAIT") + c("HOLD") + c("CLOSE") + GET + GET,
    "connection-lost": bytes([0]) + FIRST + state(2, 9) + c("CLOSE") + GET + GET + GET,
    "stale-then-newer": bytes([0]) + FIRST + state(1, 5) + state(1, 6) + state(1, 7) + GET +
    GET + GET,
    "page-ahead": bytes([0]) + FIRST + c("PAGE", 200) + GET + GET + c("WAIT"),
    "page-behind": bytes([0]) + FIRST + state(1, 5, page=7) + GET + GET + GET,
    "garbage": bytes([0]) + c("RAW", 40) + bytes(range(40)) + GET + GET,
    "garbage-later": broken(c("RAW", 64) + bytes(range(100, 164))),
    "version-backwards": broken(state(5), GET, state(130)),
    "version-repeats": broken(state(0)),
    "size-lies": broken(state(1, 5, data=7)),
    "not-padded": broken(state(1, 5, data=12)),
    "memfd-unsealed": broken(state(1, 3, data=2)),
    "memfd-larger": broken(state(1, 3, data=3)),
    "memfd-smaller": broken(state(1, 3, data=4)),
    "memfd-shrunk": broken(state(1, 3, data=5)),
    "memfd-pipe": broken(state(1, 3, data=6)),
    "inline-and-memfd": broken(state(1, 3, data=9)),
    "three-fds": broken(state(1, 3, data=10)),
    "ctrunc": broken(state(1, 3, data=11)),
    "no-seal-write": broken(state(1, 3, data=13)),
    "empty-memfd": broken(state(1, 3, data=14)),
    "small-memfd": broken(state(1, 3, data=15)),
    "page-unsealed": bytes([0]) + state(1, page=3) + GET + GET,
    "page-no-future-write": bytes([0]) + state(1, page=4) + GET + GET,
    "page-too-small": bytes([0]) + state(1, page=5) + GET + GET,
    "page-pipe": bytes([0]) + state(1, page=6) + GET + GET,
    "page-missing": bytes([0]) + state(1, page=1) + GET + GET,
    "page-twice": broken(state(1, page=2)),
    "reply": broken(c("ERROR", 0x80)),
    "error-eproto": broken(c("ERROR", errno.EPROTO)),
    "error-eusers": bytes([0]) + c("ERROR", errno.EUSERS) + GET + GET,
}


def write(corpus, seeds):
    os.makedirs(corpus, exist_ok=True)
    for name in os.listdir(corpus):
        if name.startswith("seed-"):
            os.remove(os.path.join(corpus, name))
    for name, data in seeds.items():
        with open(os.path.join(corpus, "seed-" + name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(seeds), corpus))


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    write(os.path.join(here, "corpus-ipc-server"), SERVER_SEEDS)
    write(os.path.join(here, "corpus-ipc-consumer"), CONSUMER_SEEDS)


if __name__ == "__main__":
    main()
