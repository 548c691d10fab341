#!/usr/bin/python3
"""test_kafka_100k.py - two boxes split 100,000 Kafka events, exactly once,
across a kill -9 of each (issue 20, "Beyond one box").

librdkafka's mock cluster (weft-test-kafka-mock) holds a topic of 4
partitions; kcat writes N = 100,000 events keyed as a store's producer
keys them (user, or session for an anonymous visitor; test_kafka.keyed()),
spread over 2,000 sessions (50 events each, far under the 4,096 events and
128 KiB a session's HISTORY keeps before folding). Two appliances in one
consumer group split the partitions by assignment (--kafka-partitions 0,1
and 2,3, each naming the other with --kafka-peers). The stream comes in
three parts: the first is in the topic before the boxes start, the second
flows while box b's weft-ingest and box a's weft-kafka are killed with
SIGKILL (each once it has journaled some of it; kill_kafka()), the third
is produced after both kills; the supervisor restarts both. At the end:

* every event is in exactly one box's HISTORY, exactly once, in the box
  owning its partition, which is CRC-32 of its key mod 4 (zlib.crc32;
  checked against the partition in its `kafka` tag);
* each box answers RECS (a non-empty list) for every one of its shoppers,
  and -MOVED <partition> <the other's socket> for a sample of the other's
  (RECS and EVENT);
* each box's kafka.status shows lag 0 on its two partitions and nothing
  else;
* stopped, each supervisor saw no death but the test's kills, and no
  sanitizer report is in its log.

Setup, measured (BENCHMARKS.md, issue 20): the mock answers a fetch with
one message set per partition, finds it by walking the partition's sets
from the oldest, and keeps at most 5 MiB of sets per partition (older
ones are dropped, which a consumer sees as lost events). kcat given its
whole input at once makes few large sets and the mock keeps up (this test
passes in ~6 s, 100,000 events durable ~2.5 s after the first produce);
one set a message slows it to 4,500 events/s and falling. The events here
are ~3.5 MiB a partition uncompressed, so kcat compresses (lz4) and
lingers 50 ms to fill its sets even on a busy box (KCAT_BATCHING below).

The kill of weft-kafka tests the skip of what the journal holds (seen.h)
only when it falls between a batch's last :1 and its commit (2 runs of 5
with one kill); kill_kafka() kills again, at most 4 times, until a
restarted weft-kafka reports skipped messages (logged; not asserted: the
checks hold either way). With that skip disabled in kafka/main.c the
test failed in each of 3 runs (512, 512 and 1,536 events twice). weft-ingest's kill is always seen by box
b's weft-kafka (ingest_recoveries, asserted): part 3 reaches it after.

Not scaled down under the sanitizers: the ASan/UBSan build (build-asan,
-O1) ran all 100,000 in 8.0 s. Skips (77) without kcat or librdkafka.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zlib

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
import redis  # noqa: E402
from harness import Appliance, SkipTest, Store, TestDir, log  # noqa: E402
from test_kafka import MOCK, TOPIC, keyed, start_mock, status_of, stop_mock  # noqa: E402

N = 100000
SESSIONS = N // 50
PARTS = 4
OWNED = {"a": (0, 1), "b": (2, 3)}
# Few large sets: the mock walks its sets on every fetch and returns one a
# fetch (module docstring); lz4 keeps a partition's log far under 5 MiB.
KCAT_BATCHING = ["-z", "lz4", "-X", "linger.ms=50", "-X", "batch.num.messages=10000"]


def kcat(bootstrap):
    return ["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q", *KCAT_BATCHING]


def produce(bootstrap, lines):
    """kcat -P of lines (key|value), waited for; its time logged."""
    t0 = time.time()
    r = subprocess.run(kcat(bootstrap), input=b"\n".join(lines) + b"\n", capture_output=True, timeout=300)
    assert r.returncode == 0, r.stderr.decode(errors="replace")
    log(f"     kcat produced {len(lines)} events in {time.time() - t0:.1f} s")


def make_events(users, items):
    """N events: (kcat line, session index, key's partition)."""
    out = []
    for k in range(N):
        s = k % SESSIONS
        u = users[s % len(users)] if s % 5 else ""  # every fifth session anonymous
        ev = {"ts": 1700000000000 + k, "user_id": u, "session_id": f"ks{s}",
              "event": "view" if k % 7 else "cart_add", "item_id": items[k % len(items)], "value": f"e{k}"}
        out.append((keyed(ev), s, zlib.crc32((u or f"ks{s}").encode()) % PARTS))
    return out


def wait_for(what, pred, seconds=240):
    """pred() true within seconds (a hang guard, not a time asserted),
    looked at 20 times a second."""
    for _ in range(int(seconds * 20)):
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError(f"never: {what}")


def journaled(app):
    return (status_of(app) or {}).get("journaled", 0)


def all_durable(app, want):
    """The box's status shows exactly its partitions, each with every
    message of it (high) committed: lag 0."""
    st = status_of(app)
    if not st:
        return None
    got = {p["partition"]: p for p in st["partitions"]}
    return st if set(got) == set(want) and all(
        got[p]["high"] == want[p] and got[p]["lag"] == 0 for p in want) else None


def working(app):
    """The running weft-kafka's pid once it has journaled something."""
    st = status_of(app)
    return st["pid"] if st and st["journaled"] > 0 and st["pid"] in app.pids("weft-kafka") else None


def restarted(app, old):
    """The status of the weft-kafka after pid old once it is through its
    first batch (or has nothing to take: lag 0 everywhere)."""
    st = status_of(app)
    if not st or st["pid"] == old:
        return None
    caught_up = st["partitions"] and all(p["lag"] == 0 for p in st["partitions"])
    return st if st["journaled"] + st["skipped"] > 0 or caught_up else None


def kill_kafka(app, name, tries=4):
    """kill -9 the box's weft-kafka while it works through a backlog; again
    (at most tries times: the supervisor's backoff grows with each quick
    death) until a restarted one skips messages its journal already holds,
    i.e. a kill fell between a batch's :1s and its commit (the checks hold
    either way). Returns how many kills it took."""
    for k in range(1, tries + 1):
        pid = wait_for(f"box {name}'s weft-kafka journaling", lambda: working(app))
        log(f"     kill -9 box {name}'s weft-kafka ({k}) at {journaled(app)} journaled by it")
        os.kill(pid, signal.SIGKILL)
        st = wait_for(f"box {name}'s weft-kafka restarted", lambda: restarted(app, pid))
        if st["skipped"]:
            log(f"     the restarted weft-kafka skipped {st['skipped']} already journaled")
            return k
        if not st["journaled"]:
            break  # caught up: nothing left to kill it in the middle of
    log(f"     no kill of box {name}'s weft-kafka fell between a batch's :1s and its commit")
    return k


def check_deaths(app, label, kills):
    """After stop(): the supervisor saw no death but the test's kills of
    label, every child stopped with 0, and no sanitizer spoke."""
    with open(app.logf.name) as f:
        up = f.read()
    deaths = re.findall(r"^weftctl: (.*) \(pid \d+\) (was killed by signal \d+|exited with code \d+)(.*)$",
                        up, re.M)
    ours = [d for d in deaths if d[0] == label and d[1] == "was killed by signal 9" and "restarting" in d[2]]
    assert len(ours) == kills, (label, kills, deaths)
    others = [d for d in deaths if d not in ours and d[1] != "exited with code 0"]
    assert not others, others
    assert "Sanitizer" not in up and "runtime error" not in up, up[-4000:]


def histories(app, sessions):
    """{session: HISTORY reply or the MOVED error}, pipelined."""
    pipe = app.client().pipeline(transaction=False)
    for s in sessions:
        pipe.execute_command("HISTORY", f"ks{s}")
    return dict(zip(sessions, pipe.execute(raise_on_error=False)))


def test_two_boxes_100k_exactly_once_across_kill9():
    if not shutil.which("kcat") or not os.access(MOCK, os.X_OK):
        raise SkipTest("kcat or librdkafka (weft-test-kafka-mock) missing")
    T = TestDir("kafka-100k")
    mock, bootstrap = start_mock(TOPIC)
    apps = {}
    try:
        store = Store(T.path, users=100, items=200, days=3)
        users = store.users()
        items = [r["item_id"] for r in store.items()]
        events = make_events(users, items)
        lines = [e[0] for e in events]
        part_of_session = {s: p for _, s, p in events}
        per_part = [0] * PARTS
        for _, _, p in events:
            per_part[p] += 1
        log(f"     {N} events over {SESSIONS} sessions; per partition {per_part}")
        owner = {p: name for name, ps in OWNED.items() for p in ps}

        # part 1 (30 %) waits in the topic; the boxes start
        t0 = time.time()
        produce(bootstrap, lines[:3 * N // 10])
        socks = {name: os.path.join(T.path, name, "run", "weft.sock") for name in OWNED}
        for name, other in (("a", "b"), ("b", "a")):
            os.makedirs(os.path.join(T.path, name))
            apps[name] = Appliance(os.path.join(T.path, name), shards=2, snapshot=store.snapshot,
                                   extra=["--kafka-brokers", bootstrap, "--kafka-topic", TOPIC,
                                          "--kafka-group", "split", "--kafka-partitions",
                                          ",".join(map(str, OWNED[name])), "--kafka-peers",
                                          ",".join(map(str, OWNED[other])) + "=" + socks[other]])
        a, b = apps["a"], apps["b"]
        share = {name: sum(per_part[p] for p in OWNED[name]) for name in OWNED}

        # part 2 (40 %) flows; each box is hit once it has journaled some
        producer = subprocess.Popen(kcat(bootstrap), stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        producer.stdin.write(b"\n".join(lines[3 * N // 10:7 * N // 10]) + b"\n")
        producer.stdin.close()
        ipid = wait_for("box b's weft-ingest", lambda: b.pids("weft-ingest"))[0]
        wait_for("box b journaling", lambda: journaled(b) >= share["b"] // 5)
        log(f"     kill -9 box b's weft-ingest at {journaled(b)} of its {share['b']} journaled")
        os.kill(ipid, signal.SIGKILL)
        wait_for("box a journaling", lambda: journaled(a) >= share["a"] // 5)
        kafka_kills = kill_kafka(a, "a")
        assert producer.wait(timeout=300) == 0, producer.stderr.read()
        wait_for("box b's weft-ingest restarted", lambda: [p for p in b.pids("weft-ingest") if p != ipid])

        # part 3 (30 %) after both kills
        produce(bootstrap, lines[7 * N // 10:])
        for name, app in apps.items():
            want = {p: per_part[p] for p in OWNED[name]}
            st = wait_for(f"box {name}: every message of its partitions durable",
                          lambda: all_durable(app, want))
            log(f"     box {name} kafka.status: {st}")
        # part 3 reached box b's weft-kafka over a connection its weft-ingest's death closed
        assert status_of(b)["ingest_recoveries"] >= 1, status_of(b)
        log(f"     every event durable {time.time() - t0:.1f} s after the first produce")

        # every event once, in the box owning its partition
        seen = {}
        for name, app in apps.items():
            for s, h in histories(app, range(SESSIONS)).items():
                mine = owner[part_of_session[s]] == name
                if isinstance(h, redis.ResponseError):
                    # HISTORY names only a session: redirected by its partition
                    sp = zlib.crc32(f"ks{s}".encode()) % PARTS
                    assert not mine and str(h) == f"MOVED {sp} {socks[owner[sp]]}", (name, s, str(h))
                    continue
                assert mine or not h, f"box {name} holds ks{s} of partition {part_of_session[s]}"
                assert h or not mine, f"box {name} has no event of its session ks{s}"
                for e in h:
                    e = list(e)
                    assert e and e[0] != "folded", f"session ks{s} folded its history"
                    kv = dict(zip(e[3::2], e[4::2]))
                    topic, p, _ = kv["kafka"].split(":")
                    assert topic == TOPIC and int(p) == part_of_session[s], \
                        f"ks{s}: kcat's partition {p} is not CRC-32 of the key ({part_of_session[s]})"
                    seen.setdefault(kv["value"], []).append(name)
        twice = {v: n for v, n in seen.items() if len(n) != 1}
        assert not twice, f"{len(twice)} events not exactly once: {list(twice.items())[:10]}"
        missing = {f"e{k}" for k in range(N)} - set(seen)
        assert not missing, f"{len(missing)} events missing: {sorted(missing)[:10]}"
        assert len(seen) == N

        # RECS for every shopper of each box; -MOVED for a sample of the other's
        for name, app in apps.items():
            mine = [s for s in range(SESSIONS) if owner[part_of_session[s]] == name]
            other = [s for s in range(SESSIONS) if owner[part_of_session[s]] != name]
            pipe = app.client().pipeline(transaction=False)
            for s in mine:
                pipe.execute_command("RECS", f"ks{s}", users[s % len(users)] if s % 5 else "-", 10)
            recs = pipe.execute(raise_on_error=False)
            empty = [s for s, r in zip(mine, recs) if not isinstance(r, list) or not r]
            assert not empty, f"box {name}: no RECS for {len(empty)} of its shoppers, e.g. ks{empty[0]}: " \
                f"{recs[mine.index(empty[0])]}"
            c = app.client()
            for s in other[::max(1, len(other) // 50)]:
                u = users[s % len(users)] if s % 5 else "-"
                p = part_of_session[s]
                for cmd in (["RECS", f"ks{s}", u, "10"], ["EVENT", f"ks{s}", u, "view", items[0]]):
                    try:
                        c.execute_command(*cmd)
                        raise AssertionError(f"{cmd} on box {name} was not redirected")
                    except redis.ResponseError as e:
                        assert str(e) == f"MOVED {p} {socks[owner[p]]}", (name, cmd, str(e))
            log(f"     box {name}: RECS for its {len(mine)} sessions, -MOVED for {len(other)} of the other's")
        for name, app in apps.items():
            out = app.weftctl("status").stdout
            assert "lag" in out and "-MOVED replies" in out, out
            app.stop()
        check_deaths(a, "weft-kafka", kafka_kills)
        check_deaths(b, "weft-ingest", 1)
    finally:
        for app in apps.values():
            app.stop()
        stop_mock(mock)
        if not os.environ.get("WEFT_KEEP"):
            T.cleanup()


if __name__ == "__main__":
    harness.run([test_two_boxes_100k_exactly_once_across_kill9])
