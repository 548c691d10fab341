#!/usr/bin/python3
"""test_kafka.py - events from Kafka, exactly once across kill -9 (issue 20).

librdkafka's mock cluster (weft-test-kafka-mock, brokers on loopback) holds
a topic of 4 partitions; kcat, an independent producer, writes N events
keyed by user (one JSON object each, the events CSV's fields) plus bad
messages (not JSON, a missing field, an unknown event type). `weftctl up
--kafka-*` runs weft-kafka beside the appliance. While the stream flows,
weft-kafka is killed with SIGKILL, then weft-ingest; the supervisor
restarts both. At the end every good event is in its session's HISTORY
exactly once (each carries a unique value), no bad one is, the bad ones
were counted and logged, `weftctl status` shows the consumer with lag 0
on every partition, and RECS answers for the Kafka shoppers. Then the
restart window: weft-kafka killed while weft-ingest holds its connection
unread behind a full request ring (rankers stopped); the restarted one
waits for that connection to end before it reads the journal, so nothing
is journaled twice. Then two
replicas (two appliances, two consumer groups, one topic) give
byte-identical HISTORY and RECS for every shopper. Then two boxes split
the partitions (--kafka-partitions) and one's weft-kafka is killed with
SIGKILL: every event in exactly one box, exactly once, in the partition
CRC-32 of its key gives (lib/part.c, Python's zlib.crc32); each box names
the other (--kafka-peers), so a RECS, HISTORY or EVENT for the other's
shopper gets -MOVED naming that box (counted in INFO, STATS, `weftctl
status`, metrics), and the redis-py routing example
(kafka/examples/weft_route.py) follows it to the owner's answer.

Scaled down under the sanitizers (WEFT_SANITIZED=1). Skips (77) without
kcat or librdkafka.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "kafka", "examples"))
import harness  # noqa: E402
import redis  # noqa: E402
import weft_route  # noqa: E402
from harness import Appliance, SkipTest, Store, TestDir, log  # noqa: E402

BUILD = harness.BUILD
MOCK = os.path.join(BUILD, "tests", "weft-test-kafka-mock")
TOPIC = "weft-events"
N = 600 if os.environ.get("WEFT_SANITIZED") else 6000
SESSIONS = 40
BAD = [b"this is not json", b'{"ts": 1, "session_id": "sx", "event": "view"}',
       b'{"ts": 1, "user_id": "", "session_id": "sy", "event": "teleport", "item_id": "i1"}',
       b'[1, 2, 3]', b'{"ts": -5, "session_id": "sz", "event": "view", "item_id": "i1"}']


def produce(bootstrap, lines):
    """kcat -P, keyed (key|value), one message per line; waits for it."""
    r = subprocess.run(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"],
                       input=b"\n".join(lines) + b"\n", capture_output=True, timeout=120)
    assert r.returncode == 0, r.stderr.decode(errors="replace")


def keyed(ev):
    """A kcat line for event ev, keyed as a store's producer keys it: by
    the user, or by the session for an anonymous visitor."""
    return (ev["user_id"] or ev["session_id"]).encode() + b"|" + json.dumps(ev).encode()


def start_mock(topics):
    """librdkafka's mock cluster (4 partitions a topic) and its bootstrap
    address; stop_mock() ends it."""
    mock = subprocess.Popen([MOCK, topics, "4"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bootstrap = mock.stdout.readline().strip()
    assert bootstrap, "the mock cluster printed no bootstrap address"
    return mock, bootstrap


def teardown(T, mock, *apps):
    """After a test: its appliances stopped, the mock ended, its directory
    removed (kept with WEFT_KEEP=1)."""
    for app in apps:
        if app:
            app.stop()
    stop_mock(mock)
    if not os.environ.get("WEFT_KEEP"):
        T.cleanup()


def caught_up(app, pid=None):
    """kafka.status once it shows lag 0 on all 4 partitions (written by
    weft-kafka pid, if given), else None."""
    st = status_of(app)
    return st if st and (pid is None or st.get("pid") == pid) and len(st["partitions"]) == 4 and \
        all(p["lag"] == 0 for p in st["partitions"]) else None


def stop_mock(mock):
    mock.stdin.close()
    mock.wait(timeout=30)


def status_of(app):
    p = os.path.join(app.dir, "kafka.status")
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def wait_for(what, pred, tries=1200):
    for i in range(tries):
        v = pred()
        if v:
            return v
        time.sleep(0.05 if tries <= 2400 else 0.001)
    raise AssertionError(f"never: {what}")


def history_values(c):
    """value -> how many times it is in any session's HISTORY."""
    seen = {}
    for s in range(SESSIONS):
        for e in c.execute_command("HISTORY", f"ks{s}"):
            e = list(e)
            if e and e[0] == "folded":
                raise AssertionError("a test session folded its history")
            kv = dict(zip(e[3::2], e[4::2]))
            if "value" in kv:
                seen[kv["value"]] = seen.get(kv["value"], 0) + 1
                assert kv.get("kafka", "").startswith(TOPIC + ":"), e
    return seen


def test_kafka_exactly_once_across_kill9():
    if not shutil.which("kcat") or not os.access(MOCK, os.X_OK):
        raise SkipTest("kcat or librdkafka (weft-test-kafka-mock) missing")
    T = TestDir("kafka")
    mock, bootstrap = start_mock(TOPIC)
    app = None
    try:
        store = Store(T.path, users=100, items=200, days=3)
        users = store.users()
        items = [r["item_id"] for r in store.items()]
        events = []
        for k in range(N):
            s = k % SESSIONS
            u = users[s % len(users)] if s % 5 else ""  # every fifth session anonymous
            ev = {"ts": 1700000000000 + k, "user_id": u, "session_id": f"ks{s}",
                  "event": "view" if k % 7 else "cart_add", "item_id": items[k % len(items)],
                  "value": f"e{k}"}
            events.append(keyed(ev))
        third = N // 3
        produce(bootstrap, events[:third] + [b"bad|" + b for b in BAD])
        app = Appliance(T.path, shards=2, snapshot=store.snapshot,
                        extra=["--kafka-brokers", bootstrap, "--kafka-topic", TOPIC, "--kafka-group", "box"])
        c = app.client()
        log("appliance up")

        # kill -9 weft-kafka once it has journaled some, while more flows in
        wait_for("weft-kafka journaled events", lambda: (status_of(app) or {}).get("journaled", 0) > 0)
        producer = subprocess.Popen(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"],
                                    stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        producer.stdin.write(b"\n".join(events[third:2 * third]) + b"\n")
        kpid = wait_for("weft-kafka's pid", lambda: app.pids("weft-kafka"))[0]
        per = third // SESSIONS  # each session's events in a third
        wait_for("the second third flowing", lambda: len(c.execute_command("HISTORY", "ks0")) > per, tries=20000)
        os.kill(kpid, signal.SIGKILL)
        producer.stdin.close()
        assert producer.wait(timeout=120) == 0, producer.stderr.read()
        wait_for("weft-kafka restarted", lambda: [p for p in app.pids("weft-kafka") if p != kpid])
        log("weft-kafka killed and restarted")

        # kill -9 weft-ingest while the last third flows in
        producer = subprocess.Popen(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"],
                                    stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        producer.stdin.write(b"\n".join(events[2 * third:]) + b"\n")
        ipid = app.pids("weft-ingest")[0]
        wait_for("the last third flowing", lambda: len(c.execute_command("HISTORY", "ks0")) > 2 * per,
                 tries=20000)
        os.kill(ipid, signal.SIGKILL)
        producer.stdin.close()
        assert producer.wait(timeout=120) == 0, producer.stderr.read()

        def all_in():
            try:
                return len(history_values(app.client())) == N
            except Exception:  # noqa: BLE001 - ingest restarting
                return False
        log("weft-ingest killed")
        wait_for("every event in HISTORY", all_in, tries=2400)
        log("every event in HISTORY")
        seen = history_values(app.client())
        twice = {v: n for v, n in seen.items() if n != 1}
        assert not twice, f"events not exactly once: {list(twice.items())[:10]}"
        assert set(seen) == {f"e{k}" for k in range(N)}

        # lag 0 everywhere once the status catches up; bad ones counted, logged
        st = wait_for("lag 0 on every partition", lambda: caught_up(app))
        log(f"kafka.status: {json.dumps(st)}")
        app.logf.flush()
        with open(app.logf.name) as f:
            up_log = f.read()
        assert "bad message" in up_log and "unknown event type" in up_log and "not JSON" in up_log
        out = app.weftctl("status").stdout
        assert "kafka" in out and "lag" in out, out
        metrics = app.weftctl("metrics").stdout
        for p in range(4):
            assert f'weft_kafka_lag{{partition="{p}"}} 0' in metrics, metrics[-2000:]
        assert "weft_kafka_bad_total" in metrics
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
        c = app.client()
        for s in ("sx", "sy", "sz"):
            assert c.execute_command("HISTORY", s) == [], s
        recs = c.execute_command("RECS", "ks1", users[1], 10)
        assert len(recs) == 10, recs
    finally:
        teardown(T, mock, app)


def test_restart_while_ingest_stalled_no_double():
    """The restart window: the rankers are stopped (SIGSTOP), so a shard's
    request ring fills and weft-ingest stops reading weft-kafka's
    connection with EVENTs of a batch still unread in it; weft-kafka is
    killed with SIGKILL and restarted by the supervisor while that
    connection is still open (its EOF is behind the unread EVENTs); then
    the rankers go on, and weft-ingest journals the dead connection's
    EVENTs after the new weft-kafka connected. The new one must not read
    the journal (what it holds) before weft-ingest closed that connection
    and made its EVENTs durable (INFO kafka_conns, journal_next_lsn), or it
    sends them again when the group gives it the batch again: twice."""
    if not shutil.which("kcat") or not os.access(MOCK, os.X_OK):
        raise SkipTest("kcat or librdkafka (weft-test-kafka-mock) missing")
    T = TestDir("kafka-stalled")
    mock, bootstrap = start_mock(TOPIC)
    app = None
    sessions, n = 2000, 80000  # a 4 MiB request ring holds ~30k of these EVENTs
    try:
        store = Store(T.path, users=100, items=200, days=3)
        items = [r["item_id"] for r in store.items()]
        events = [keyed({"ts": 1700000000000 + k, "user_id": "", "session_id": f"kt{k % sessions}",
                         "event": "view", "item_id": items[k % len(items)], "value": f"e{k}"})
                  for k in range(n)]
        app = Appliance(T.path, shards=2, snapshot=store.snapshot,
                        extra=["--kafka-brokers", bootstrap, "--kafka-topic", TOPIC, "--kafka-group", "stalled"])
        wait_for("weft-kafka up", lambda: status_of(app))
        rpids = app.pids("weft-ranker")
        kpid = app.pids("weft-kafka")[0]
        for p in rpids:
            os.kill(p, signal.SIGSTOP)
        try:
            produce(bootstrap, events)

            def stuck():
                a = app.client().info("stats")
                time.sleep(0.5)
                b = app.client().info("stats")
                return a["journal_next_lsn"] == b["journal_next_lsn"] and a["journal_next_lsn"] > 1000
            wait_for("weft-ingest stalled on a full ring", stuck, tries=120)
            os.kill(kpid, signal.SIGKILL)
            wait_for("weft-kafka restarted", lambda: [p for p in app.pids("weft-kafka") if p != kpid])
            time.sleep(1.5)  # the new one is connected and answered
        finally:
            for p in rpids:
                os.kill(p, signal.SIGCONT)
        assert sorted(app.pids("weft-ranker")) == sorted(rpids), "a ranker was restarted: the window was not tested"
        knew = [p for p in app.pids("weft-kafka") if p != kpid][0]

        # the new consumer rejoins the group (the dead member's session
        # times out first), is given the unfinished batch again, and must
        # skip what the dead connection made durable
        st = wait_for("the restarted weft-kafka caught up, lag 0", lambda: caught_up(app, knew), tries=2400)
        log(f"kafka.status after the window: {json.dumps(st)}")
        c = app.client()
        seen = {}
        for s in range(sessions):
            for e in c.execute_command("HISTORY", f"kt{s}"):
                kv = dict(zip(e[3::2], e[4::2]))
                seen[kv["value"]] = seen.get(kv["value"], 0) + 1
        twice = {v: k for v, k in seen.items() if k != 1}
        assert not twice, f"events journaled twice across the restart: {len(twice)}, e.g. {sorted(twice)[:5]}"
        assert set(seen) == {f"e{k}" for k in range(n)}, f"{n - len(seen)} events missing"
        assert st["skipped"] > 0, f"the restarted weft-kafka was given nothing again: the window was not tested: {st}"
    finally:
        teardown(T, mock, app)


def test_two_replicas_give_identical_recs():
    """Two appliances, each its own consumer group, read the same topic
    (the partitions interleave differently in each); once both hold every
    event, RECS (and HISTORY) are byte-identical for every shopper."""
    if not shutil.which("kcat") or not os.access(MOCK, os.X_OK):
        raise SkipTest("kcat or librdkafka (weft-test-kafka-mock) missing")
    n = N // 3
    T = TestDir("kafka-replicas")
    mock, bootstrap = start_mock(TOPIC)
    apps = []
    try:
        store = Store(T.path, users=100, items=200, days=3)
        users = store.users()
        items = [r["item_id"] for r in store.items()]
        lines = []
        for k in range(n):
            s = k % SESSIONS
            u = users[s % len(users)] if s % 5 else ""
            ev = {"ts": 1700000000000 + k * 1000, "user_id": u, "session_id": f"ks{s}",
                  "event": ["view", "click", "pdp", "cart_add", "purchase"][k % 5 if k % 3 else 0],
                  "item_id": items[(k * 7) % len(items)], "value": f"e{k}"}
            lines.append(keyed(ev))
        produce(bootstrap, lines)
        for name in ("a", "b"):
            os.makedirs(os.path.join(T.path, name))
            apps.append(Appliance(os.path.join(T.path, name), shards=2, snapshot=store.snapshot,
                                  extra=["--kafka-brokers", bootstrap, "--kafka-topic", TOPIC,
                                         "--kafka-group", "replica-" + name]))
        for app in apps:
            wait_for("every event in this replica", lambda: len(history_values(app.client())) == n, tries=2400)
        answers = []
        for app in apps:
            c = app.client()
            got = []
            for s in range(SESSIONS):
                u = users[s % len(users)] if s % 5 else "-"
                got.append(("HISTORY", s, c.execute_command("HISTORY", f"ks{s}")))
                got.append(("RECS", s, c.execute_command("RECS", f"ks{s}", u, 20)))
                got.append(("RECS PAGE", s, c.execute_command("RECS", f"ks{s}", u, 10, "PAGE", "pdp", "ANCHOR", items[s])))
            answers.append(got)
        diff = [(a[0], a[1]) for a, b in zip(*answers) if a != b]
        assert not diff, f"replicas differ: {diff[:10]}"
        assert all(len(r[2]) == 20 for r in answers[0] if r[0] == "RECS"), "a RECS short of 20"
    finally:
        teardown(T, mock, *apps)


def test_two_boxes_split_partitions_exactly_once():
    """Two appliances in one group, each owning two partitions
    (--kafka-partitions 0,1 and 2,3, each naming the other with
    --kafka-peers); weft-kafka of the first is killed with SIGKILL while
    events flow. Every event is in exactly one appliance's HISTORY,
    exactly once, and only in the box owning its partition, which is
    CRC-32 of its key mod 4. Then the redirect: a box asked for the other's
    shopper answers -MOVED naming it, and the routing example follows."""
    if not shutil.which("kcat") or not os.access(MOCK, os.X_OK):
        raise SkipTest("kcat or librdkafka (weft-test-kafka-mock) missing")
    n = N // 2
    T = TestDir("kafka-split")
    mock, bootstrap = start_mock(TOPIC)
    apps = []
    try:
        store = Store(T.path, users=100, items=200, days=3)
        users = store.users()
        items = [r["item_id"] for r in store.items()]
        lines = []
        for k in range(n):
            s = k % SESSIONS
            u = users[s % len(users)] if s % 5 else ""
            ev = {"ts": 1700000000000 + k, "user_id": u, "session_id": f"ks{s}", "event": "view",
                  "item_id": items[k % len(items)], "value": f"e{k}"}
            lines.append(keyed(ev))
        produce(bootstrap, lines[:n // 2])
        owned = {"a": {0, 1}, "b": {2, 3}}
        socks = {name: os.path.join(T.path, name, "run", "weft.sock") for name in owned}
        for name, other in (("a", "b"), ("b", "a")):
            os.makedirs(os.path.join(T.path, name))
            apps.append(Appliance(os.path.join(T.path, name), shards=2, snapshot=store.snapshot,
                                  extra=["--kafka-brokers", bootstrap, "--kafka-topic", TOPIC, "--kafka-group",
                                         "split", "--kafka-partitions",
                                         ",".join(str(p) for p in sorted(owned[name])),
                                         "--kafka-peers",
                                         ",".join(str(p) for p in sorted(owned[other])) + "=" + socks[other]]))
        producer = subprocess.Popen(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"],
                                    stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        producer.stdin.write(b"\n".join(lines[n // 2:]) + b"\n")
        kpid = wait_for("box a's weft-kafka", lambda: apps[0].pids("weft-kafka"))[0]
        wait_for("box a journaling", lambda: (status_of(apps[0]) or {}).get("journaled", 0) > 0, tries=20000)
        os.kill(kpid, signal.SIGKILL)
        producer.stdin.close()
        assert producer.wait(timeout=120) == 0, producer.stderr.read()

        def history(app, s):
            """A session's HISTORY; [] where the box redirects (no event of it here)."""
            try:
                return app.client().execute_command("HISTORY", f"ks{s}")
            except redis.ResponseError as e:
                assert str(e).startswith("MOVED "), e
                return []

        def tags(app):
            out = {}
            for s in range(SESSIONS):
                for e in history(app, s):
                    kv = dict(zip(e[3::2], e[4::2]))
                    out.setdefault(kv["value"], []).append(int(kv["kafka"].split(":")[1]))
            return out

        def total():
            try:
                return sum(len(v) for app in apps for v in tags(app).values()) >= n
            except Exception:  # noqa: BLE001 - a restart in progress
                return False
        wait_for("every event in one box", total, tries=2400)
        ta, tb = tags(apps[0]), tags(apps[1])
        assert not set(ta) & set(tb), f"events in both boxes: {sorted(set(ta) & set(tb))[:10]}"
        for name, t in (("a", ta), ("b", tb)):
            assert all(len(v) == 1 for v in t.values()), f"box {name}: an event twice"
            assert {p for v in t.values() for p in v} <= owned[name], f"box {name} took another's partition"
        assert set(ta) | set(tb) == {f"e{k}" for k in range(n)}
        assert ta and tb
        check_redirects(apps, owned, socks, users)
    finally:
        teardown(T, mock, *apps)


def check_redirects(apps, owned, socks, users):
    """Each session's events went to the partition CRC-32 of its key gives
    (kcat's partitioner is lib/part.c's and zlib's); a box asked for the
    other's shopper answers -MOVED <partition> <the other's socket>; the
    routing example, started at the wrong box, gets the owner's answer."""
    box = {"a": apps[0], "b": apps[1]}
    name_of = {p: name for name, ps in owned.items() for p in ps}
    router = weft_route.WeftRouter({p: socks["a"] for p in range(4)})  # all wrong for b's shoppers
    moved = 0
    before = sum(int(app.client().info("stats")["redirects"]) for app in apps)
    for s in range(SESSIONS):
        u = users[s % len(users)] if s % 5 else "-"
        key = f"ks{s}" if u == "-" else u
        p = weft_route.partition(key, 4)
        owner, other = name_of[p], "b" if name_of[p] == "a" else "a"
        hist = box[owner].client().execute_command("HISTORY", f"ks{s}")
        assert hist, f"session ks{s} (partition {p}) has no events in its owner {owner}"
        assert all(int(dict(zip(e[3::2], e[4::2]))["kafka"].split(":")[1]) == p for e in hist), \
            f"ks{s}: kcat's partition is not CRC-32 of the key"
        for cmd in (["RECS", f"ks{s}", u, "5"], ["EVENT", f"ks{s}", u, "view", "i1"]):
            try:
                box[other].client().execute_command(*cmd)
                raise AssertionError(f"{cmd} on box {other} was not redirected")
            except redis.ResponseError as e:
                assert str(e) == f"MOVED {p} {socks[owner]}", (cmd, str(e))
            moved += 1
        if u == "-":  # HISTORY names a session: keyed by it (anonymous visitors)
            try:
                box[other].client().execute_command("HISTORY", f"ks{s}")
                raise AssertionError(f"HISTORY ks{s} on box {other} was not redirected")
            except redis.ResponseError as e:
                assert str(e) == f"MOVED {p} {socks[owner]}", str(e)
            moved += 1
        want = box[owner].client().execute_command("RECS", f"ks{s}", u, "5")
        assert want, f"no RECS for ks{s}"
        assert router.execute("RECS", f"ks{s}", u, "5") == want
        assert router.execute("HISTORY", f"ks{s}", user=u) == hist
    assert router.redirects >= 1 and router.boxes[2] == socks["b"] and router.boxes[3] == socks["b"]
    got = sum(int(app.client().info("stats")["redirects"]) for app in apps) - before
    assert got == moved + router.redirects, (got, moved, router.redirects)
    for app in apps:
        st = app.weftctl("status").stdout
        assert "-MOVED replies" in st, st
        assert "weft_redirects_total" in app.weftctl("metrics").stdout


def test_out_topic_transitions_at_least_once():
    """--kafka-out-topic: weft-kafka reads the segment transitions with
    TRIGGERS, and the experiment exposures from the journal up to its
    durable LSN, and produces each to the out topic keyed by its shopper;
    it is killed with SIGKILL after its first produced round and restarted
    by the supervisor. At the end kcat reads the out topic: every
    transition TRIGGERS 0 knows is there (by id), every exposure the
    experiment report counts is there once or more (by id: its journal
    LSN), nothing else is, copies only from the one at-least-once window
    (a round acked but its cursor not yet written), and the cursor files
    hold the last ids."""
    if not shutil.which("kcat") or not os.access(MOCK, os.X_OK):
        raise SkipTest("kcat or librdkafka (weft-test-kafka-mock) missing")
    out = "weft-out"
    ns = 20 if os.environ.get("WEFT_SANITIZED") else 60
    T = TestDir("kafka-out")
    mock, bootstrap = start_mock(f"{TOPIC},{out}")
    app = None
    try:
        store = Store(T.path, users=100, items=200, days=3)
        items = [r["item_id"] for r in store.items()]
        app = Appliance(T.path, shards=2, snapshot=store.snapshot,
                        extra=["--kafka-brokers", bootstrap, "--kafka-topic", TOPIC, "--kafka-out-topic", out])
        app.weftctl("segment", "define", "twice", "count(view, 10m) >= 2")
        app.weftctl("experiment", "create", "ox", "--arm", "a=50:live", "--arm", "b=50:live")
        app.weftctl("experiment", "start", "ox")
        now = int(time.time() * 1000)

        def recs(lo, hi):
            c = app.client()
            for s in range(lo, hi):
                assert c.execute_command("RECS", f"os{s}", "-", 5)

        def views(lo, hi):
            return [keyed({"ts": now + s, "user_id": "", "session_id": f"os{s}", "event": "view",
                           "item_id": items[(s + v) % len(items)]}) for s in range(lo, hi) for v in range(2)]
        produce(bootstrap, views(0, ns // 2))
        recs(0, ns // 2)
        wait_for("a round produced", lambda: (status_of(app) or {}).get("out_produced", 0) > 0, tries=2400)
        os.kill(app.pids("weft-kafka")[0], signal.SIGKILL)
        produce(bootstrap, views(ns // 2, ns))
        recs(ns // 2, ns)

        def all_trig():
            return app.client().execute_command("TRIGGERS", "0", "COUNT", "1000")
        wait_for("every session entered", lambda: len(all_trig()) >= ns, tries=2400)
        want = {json.loads(t)["id"]: json.loads(t) for t in all_trig()}
        last = max(int(i) for i in want)
        wait_for("the cursor at the last transition",
                 lambda: (status_of(app) or {}).get("out_cursor") == last, tries=2400)
        with open(os.path.join(app.dir, "kafka-out.cursor")) as f:
            assert int(f.read()) == last
        rep = json.loads(app.weftctl("--json", "experiment", "report", "ox").stdout)
        nexp = int(sum(a["exposures"] for a in rep["arms"].values()))
        assert nexp >= ns, f"the experiment counted {nexp} exposures for {ns} RECS"
        durable = app.client().info("stats")["journal_durable_lsn"]
        wait_for("the exposure cursor past every exposure",
                 lambda: (status_of(app) or {}).get("out_exposure_cursor", 0) >= durable, tries=2400)
        assert f"out topic {out}:" in app.weftctl("status").stdout
        metrics = app.weftctl("metrics").stdout
        assert "weft_kafka_out_exposures_total" in metrics and "weft_kafka_out_produced_total" in metrics
        if shutil.which("promtool"):
            r = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
            assert r.returncode == 0, r.stdout + r.stderr
        r = subprocess.run(["kcat", "-b", bootstrap, "-t", out, "-C", "-e", "-q", "-f", "%k|%s\\n"],
                           capture_output=True, timeout=60, text=True)
        assert r.returncode == 0, r.stderr
        got, exposures = {}, {}
        for line in r.stdout.splitlines():
            key, msg = line.split("|", 1)
            t = json.loads(msg)
            if t.get("kind") == "exposure":
                assert t["experiment"] == "ox" and t["arm"] in ("a", "b") and t["items"], t
                assert t["unit"] == "s:" + t["session"] and t["user"] == "-" and key == t["session"], (key, t)
                exposures[t["id"]] = exposures.get(t["id"], 0) + 1
                continue
            assert t == want[t["id"]], t
            assert key == (t["user"] if t["user"] != "-" else t["session"]), (key, t)
            got[t["id"]] = got.get(t["id"], 0) + 1
        assert set(got) == set(want), f"missing {sorted(set(want) - set(got))[:5]}, extra {sorted(set(got) - set(want))[:5]}"
        dup = sum(v - 1 for v in got.values())
        assert dup <= 512, f"{dup} copies: more than one round"
        log(f"     {len(want)} transitions in the out topic, {dup} produced twice (the at-least-once window)")
        assert len(exposures) == nexp, f"{len(exposures)} exposures in the out topic, the report counts {nexp}"
        edup = sum(v - 1 for v in exposures.values())
        assert edup <= 512, f"{edup} exposure copies: more than one round"
        with open(os.path.join(app.dir, "kafka-out.cursor.exposures")) as f:
            assert int(f.read()) >= max(int(i) for i in exposures)
        log(f"     {nexp} exposures in the out topic, {edup} produced twice")
    finally:
        teardown(T, mock, app)


if __name__ == "__main__":
    harness.run([test_kafka_exactly_once_across_kill9, test_restart_while_ingest_stalled_no_double,
                 test_two_replicas_give_identical_recs, test_two_boxes_split_partitions_exactly_once, test_out_topic_transitions_at_least_once])
