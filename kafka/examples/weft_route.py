#!/usr/bin/python3
"""weft_route.py - a store's client for partitioned weft boxes (issue 20).

Each box owns some partitions of the Kafka topic (weft-ingest and weft-kafka
`--kafka-partitions`); a shopper belongs to the partition of its Kafka
message key -- the user id, or the session id for an anonymous visitor
("-") -- computed as librdkafka's default partitioner does for keyed
messages: CRC-32 of the key modulo the partition count (zlib.crc32 here,
lib/part.c in weft). The client sends each command to the box it believes
owns the shopper; a box that does not answers

    -MOVED <partition> <address>

(as Redis Cluster does) and the client updates its map and follows it.
Addresses are what the boxes' --kafka-peers name: a Unix socket path
(contains '/') or host:port.

    r = WeftRouter({0: "/run/a/weft.sock", 1: "/run/a/weft.sock",
                    2: "/run/b/weft.sock", 3: "/run/b/weft.sock"})
    r.execute("EVENT", "s1", "u1", "view", "i1")
    r.execute("RECS", "s1", "u1", "10")
    r.execute("HISTORY", "s1", user="u1")   # HISTORY names only a session

Needs redis-py (python3-redis). As a program: weft_route.py ADDR COMMAND...
(starting with one box's address, following redirects) prints the reply.
"""
import sys
import zlib

import redis

MAX_REDIRECTS = 3


def partition(key, n):
    """The partition of a Kafka message key among n: librdkafka's
    consistent_random (CRC-32, IEEE, of the key's bytes, mod n)."""
    if isinstance(key, str):
        key = key.encode()
    return zlib.crc32(key) % n


def shopper_key(args, user=None):
    """The Kafka key of a weft command's shopper: its user, or its session
    for an anonymous visitor. HISTORY names only a session: pass user."""
    cmd = str(args[0]).upper()
    session = args[1]
    u = user if cmd == "HISTORY" else args[2]
    return session if u in (None, "-", "") else u


class WeftRouter:
    """Send each command to the box owning its shopper; follow -MOVED."""

    def __init__(self, boxes, default=None, partitions=None):
        """boxes: {partition: address} for every partition (or {}, a
        default address and partitions, the topic's partition count: the
        map is learnt from the redirects; without the count every command
        goes to the default box first)."""
        self.boxes = dict(boxes)
        self.n = partitions or len(self.boxes)
        self.default = default or next(iter(self.boxes.values()))
        self.conns = {}
        self.redirects = 0

    def conn(self, addr):
        c = self.conns.get(addr)
        if c is None:
            if "/" in addr:
                c = redis.Redis(unix_socket_path=addr, decode_responses=True)
            else:
                host, port = addr.rsplit(":", 1)
                c = redis.Redis(host=host, port=int(port), decode_responses=True)
            self.conns[addr] = c
        return c

    def box_of(self, args, user=None):
        if not self.n:
            return self.default
        return self.boxes.get(partition(shopper_key(args, user), self.n), self.default)

    def execute(self, *args, user=None):
        addr = self.box_of(args, user)
        for _ in range(MAX_REDIRECTS + 1):
            try:
                return self.conn(addr).execute_command(*args)
            except redis.ResponseError as e:
                msg = str(e)
                if not msg.startswith("MOVED "):
                    raise
                _, part, addr = msg.split(" ", 2)
                self.boxes[int(part)] = addr  # learnt: the next one goes straight there
                self.redirects += 1
        raise redis.ResponseError(f"more than {MAX_REDIRECTS} redirects for {args[:3]}")


def main(argv):
    if len(argv) < 3:
        sys.stderr.write("usage: weft_route.py ADDR COMMAND [ARG...]\n")
        return 2
    r = WeftRouter({}, default=argv[1])
    print(r.execute(*argv[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
