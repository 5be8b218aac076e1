#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Write the seed corpus of tests/fuzz/fuzz-etcd-stream.c: what etcd 3.4's
JSON gateway sends (messages seen from a live server: watch-stream lines,
range and write answers), cut in different ways, and a few variants that
the library must refuse.  The encoding is described at the top of the
harness: a config byte (bits 0-5 the longest chunk, 0 the whole stream at
once; bit 7 stop at the first refused or ending line, as the follower
does; bit 6 the rest is a recipe, see below), then the stream, one JSON
message a line.

Run it from anywhere: it rewrites tests/fuzz/corpus-etcd-stream/seed-*
next to itself.
"""
import base64
import json
import os

WHOLE, BYTES, SMALL, LARGE = 0x00, 0x01, 0x07, 0x3f
RECIPE, FOLLOWER = 0x40, 0x80


def b64(data):
    return base64.b64encode(data).decode()


def js(obj):
    """Compact, in the order given, as Go's encoding/json writes it."""
    return json.dumps(obj, separators=(",", ":")).encode()


def header(revision=None):
    h = {"cluster_id": "2755613793311995676", "member_id": "9829954754940738069"}
    if revision is not None:
        h["revision"] = str(revision)
    h["raft_term"] = "2"
    return h


KEY = b64(b"k")


def kv(mod, value=None, key=KEY, create=2, version=2):
    d = {"key": key, "create_revision": str(create), "mod_revision": str(mod),
         "version": str(version)}
    if value:
        d["value"] = b64(value)
    return d


def put(mod, value=None, **kw):
    return {"kv": kv(mod, value, **kw)}


def delete(mod, key=KEY):
    return {"type": "DELETE", "kv": {"key": key, "mod_revision": str(mod)}}


def result(revision=None, **fields):
    r = {"header": header(revision)}
    r.update(fields)
    return js({"result": r})


def events(revision, *evs):
    return result(revision, events=list(evs))


CREATED = result(4, created=True)
PUT_DELETE = events(4, put(3), delete(4))
COMPACTED = result(None, canceled=True, compact_revision="3")
PROGRESS = result(9)
STREAM_ERROR = js({"error": {"grpc_code": 14, "http_code": 503,
                             "message": "etcdserver: no leader",
                             "http_status": "Service Unavailable"}})

RANGE_ABSENT = js({"header": header(1)})
RANGE_EMPTY = js({"header": header(3), "kvs": [kv(3)], "count": "1"})
RANGE_VALUE = js({"header": header(7), "kvs": [kv(6, b"val", version=3)], "count": "1"})
PUT_OK = js({"header": header(2)})
TOO_LARGE = js({"error": "etcdserver: request is too large",
                "message": "etcdserver: request is too large", "code": 3})
BAD_BASE64 = js({"error": "illegal base64 data at input byte 0",
                 "message": "illegal base64 data at input byte 0", "code": 3})
NO_LEADER = js({"error": "etcdserver: no leader", "message": "etcdserver: no leader",
                "code": 14})
TXN_SUCCEEDED = js({"header": header(2), "succeeded": True})
TXN_FAILED = js({"header": header(3), "responses": [{"response_put": {"header": header(3)}}]})
GRPC_TOO_LARGE = js({"error": "grpc: received message larger than max (2800038 vs. 2097152)",
                     "message": "grpc: received message larger than max (2800038 vs. 2097152)",
                     "code": 8})

BINARY = bytes(range(256))


def lines(*msgs):
    return b"".join(m + b"\n" for m in msgs)


SESSION = lines(CREATED, PUT_DELETE, PROGRESS,
                events(12, put(10, b"one"), put(11, b"two"), put(12, BINARY[:40])),
                events(13, delete(13)), COMPACTED)

# ------------------------------------------------------------ recipes
# The structured mode (bit 6): the harness writes the messages from these
# bytes, in the order write_message and write_event read them.  A member is
# a variant byte (0-7 valid, then its value's bytes; else one of the
# forms below).
VALID, ABSENT, NULL, NUMBER, STRING, TRUE, ARRAY, OBJECT, MINUS = 0, 8, 9, 10, 11, 12, 13, 14, 15


class Form:
    """A member written in a form other than its valid one."""

    def __init__(self, variant):
        self.variant = variant


def field(x, encode):
    if x is None:
        return bytes([ABSENT])
    if isinstance(x, Form):
        return bytes([x.variant])
    return bytes([VALID]) + encode(x)


def r_event(mod, value=b"", deleted=False, type_=True, kv=True, key=True):
    """type_, kv, key: True for the valid member, None absent, or a Form;
    a value has at most 7 bytes."""
    assert isinstance(value, Form) or value is None or len(value) < 8
    type_part = field(deleted if type_ is True else type_, lambda d: bytes([int(d)]))
    if kv is not True:
        return bytes([VALID]) + type_part + field(kv, None)
    key_part = bytes([VALID]) if key is True else field(key, None)
    return (bytes([VALID]) + type_part + bytes([VALID]) + key_part +
            field(mod, lambda m: bytes([m])) +
            field(value, lambda v: bytes([len(v)]) + v))


def r_result(rev=0, created=False, canceled=False, compact=0, events=(), header=True):
    """events: recipes of r_event, or a Form for the member itself."""
    if header is True:
        head = bytes([VALID]) + field(rev, lambda r: bytes([r]))
    else:
        head = field(header, None)
    if isinstance(events, Form):
        ev = bytes([events.variant])
    else:
        ev = bytes([VALID, len(events)]) + b"".join(events)
    return (bytes([0]) + head + field(created, lambda c: bytes([int(c)])) +
            field(canceled, lambda c: bytes([int(c)])) +
            field(compact, lambda c: bytes([c])) + ev)


def r_error(form=None):
    return bytes([7]) + (bytes([VALID]) if form is None else bytes([form.variant]))


R_SESSION = (r_result(4, created=True) +
             r_result(4, events=[r_event(3), r_event(4, deleted=True)]) +
             r_result(9) +
             r_result(12, events=[r_event(10, b"one"), r_event(11, b"two"),
                                  r_event(12, bytes(range(7)))]) +
             r_result(None, canceled=True, compact=3, header=Form(OBJECT)) +
             r_error())

SEEDS = {
    # The messages as etcd sends them, one each.
    "watch-created": bytes([WHOLE]) + lines(CREATED),
    "watch-put-delete": bytes([WHOLE]) + lines(PUT_DELETE),
    "watch-compacted": bytes([WHOLE]) + lines(COMPACTED),
    "watch-progress": bytes([WHOLE]) + lines(PROGRESS),
    "watch-error": bytes([WHOLE]) + lines(STREAM_ERROR),
    "range-absent": bytes([WHOLE]) + RANGE_ABSENT,
    "range-empty-value": bytes([WHOLE]) + RANGE_EMPTY,
    "range-value": bytes([WHOLE]) + RANGE_VALUE,
    "write-ok": bytes([WHOLE]) + PUT_OK,
    "write-too-large": bytes([WHOLE]) + TOO_LARGE,
    "write-bad-base64": bytes([WHOLE]) + BAD_BASE64,
    "write-no-leader": bytes([WHOLE]) + NO_LEADER,
    "write-txn-succeeded": bytes([WHOLE]) + TXN_SUCCEEDED,
    "write-txn-failed": bytes([WHOLE]) + TXN_FAILED,
    "write-grpc-too-large": bytes([WHOLE]) + GRPC_TOO_LARGE,
    # A session, cut in several ways.
    "session-whole": bytes([WHOLE]) + SESSION,
    "session-bytes": bytes([BYTES]) + SESSION,
    "session-small-chunks": bytes([SMALL]) + SESSION,
    "session-large-chunks": bytes([LARGE]) + SESSION,
    "session-follower": bytes([FOLLOWER | SMALL]) + SESSION + lines(PROGRESS),
    "session-partial-last-line": bytes([SMALL]) + SESSION + PROGRESS[:30],
    "empty-lines-crlf": bytes([3]) + b"\n\n" + CREATED + b"\r\n\n" + PROGRESS + b"\r\n\n\n",
    # Values.
    "events-values": bytes([SMALL]) + lines(
        events(30, put(20, b"a"), put(21, b"ab"), put(22, b"abc"), put(23, b"abcd"),
               put(24, BINARY[250:]), delete(25), put(26, b"\x00"))),
    "events-big-value": bytes([LARGE]) + lines(events(40, put(40, BINARY * 8))),
    "events-explicit-put-empty-value": bytes([WHOLE]) + lines(
        events(5, {"type": "PUT", "kv": {"key": KEY, "mod_revision": "5", "value": ""}})),
    "delete-with-value": bytes([WHOLE]) + lines(
        events(6, {"type": "DELETE", "kv": {"key": KEY, "mod_revision": "6",
                                            "value": b64(b"gone")}})),
    "revisions-at-the-limit": bytes([WHOLE]) + lines(
        result(999999999999999999, created=True),
        events(999999999999999999, put(999999999999999999, b"x")),
        result(1000000000000000000)),
    # What must be refused.
    "events-going-back": bytes([FOLLOWER]) + lines(events(9, put(8, b"x"), put(7, b"y")),
                                                   PROGRESS),
    "events-unknown-type": bytes([WHOLE]) + lines(
        events(9, {"type": "PATCH", "kv": {"key": KEY, "mod_revision": "9"}})),
    "events-other-key": bytes([WHOLE]) + lines(events(9, put(9, b"x", key=b64(b"l")))),
    "events-bad-base64": bytes([WHOLE]) + lines(
        events(9, {"kv": {"key": KEY, "mod_revision": "9", "value": "dmFs="}})),
    "range-two-kvs": bytes([WHOLE]) + js({"header": header(3), "kvs": [kv(3), kv(3)],
                                          "count": "2"}),
    "range-future": bytes([WHOLE]) + js({"header": header(3), "kvs": [kv(4, b"v")]}),
    "range-revision-types": bytes([WHOLE]) + b'{"header":{"revision":-1}}',
    "depth": bytes([WHOLE]) + b'{"result":{"events":[' + b"[" * 20 + b"]" * 20 + b"]}}\n",
    "refused-then-valid": bytes([FOLLOWER | 5]) + lines(CREATED, b'{"result":', PROGRESS),
    "garbage": bytes([2]) + b"\x00\xff{}\n[]\nnull\n{\"error\":1}\n" + bytes(range(1, 40)),
    # Recipes: the messages written by the harness, with their results.
    "recipe-zeros": bytes([RECIPE]) + bytes(16),
    "recipe-session": bytes([RECIPE | SMALL]) + R_SESSION,
    "recipe-follower": bytes([RECIPE | FOLLOWER | 3]) + R_SESSION,
    "recipe-going-back": bytes([RECIPE]) + r_result(9, events=[r_event(8, b"x"), r_event(7)]) +
    r_result(9, events=[r_event(5), r_event(5, b"same")]),
    # Every member in every form the parser must refuse or take as absent.
    "recipe-other-forms": bytes([RECIPE | BYTES]) + b"".join(
        [r_result(Form(f)) for f in (NULL, NUMBER, STRING, MINUS, ARRAY)] +
        [r_result(header=Form(f)) for f in (NULL, NUMBER, TRUE, ARRAY, OBJECT)] +
        [r_result(created=Form(f)) for f in (NULL, NUMBER, STRING, TRUE, OBJECT)] +
        [r_result(canceled=Form(f)) for f in (NULL, STRING, TRUE, ARRAY)] +
        [r_result(compact=Form(f)) for f in (NULL, NUMBER, MINUS)] +
        [r_result(events=Form(f)) for f in (NULL, NUMBER, ARRAY, OBJECT)] +
        [r_result(5, events=[r_event(5, type_=Form(f))]) for f in (NULL, NUMBER, STRING, TRUE)] +
        [r_result(5, events=[r_event(5, kv=Form(f))]) for f in (NULL, STRING, OBJECT)] +
        [r_result(5, events=[r_event(5, key=Form(f))]) for f in (NULL, NUMBER, STRING)] +
        [r_result(5, events=[r_event(Form(f))]) for f in (NULL, NUMBER, MINUS)] +
        [r_result(5, events=[r_event(5, Form(f))]) for f in (NULL, NUMBER, STRING, MINUS)] +
        [r_result(5, events=[r_event(5, Form(f), deleted=True)]) for f in (NUMBER, STRING)] +
        [r_result(5, events=[r_event(0)])] +
        [r_error(Form(f)) for f in (ABSENT, NULL, STRING, OBJECT)]),
}


def main():
    corpus = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus-etcd-stream")
    os.makedirs(corpus, exist_ok=True)
    for name in os.listdir(corpus):
        if name.startswith("seed-"):
            os.remove(os.path.join(corpus, name))
    for name, data in SEEDS.items():
        assert len(data) <= 4096, name  # within `make fuzz`'s -max_len
        with open(os.path.join(corpus, "seed-" + name), "wb") as f:
            f.write(data)
    print("wrote %d seeds to %s" % (len(SEEDS), corpus))


if __name__ == "__main__":
    main()
