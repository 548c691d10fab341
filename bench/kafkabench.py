#!/usr/bin/python3
"""kafkabench.py - events per second through Kafka into a durable journal
(issue 20), and the event-to-visible latency from produce to HISTORY and
to RECS.

    bench/kafkabench.py [--events N] [--partitions P] [--durability fsync|os]
                        [--probes N] [--kcat-default] [--kcat-x PROP=V]... [--timeline]

librdkafka's mock cluster (build/tests/weft-test-kafka-mock) holds a topic
of P partitions; `weftctl up --kafka-*` runs and its weft-kafka has its
partitions; then kcat produces N events keyed by user.

Throughput: N over the time from kcat's start to the kafka.status that
first shows all N journaled (durable: acked by weft-ingest after
fdatasync; weft-kafka rewrites the file 5 times a second, so the figure
is low by up to 0.2 s). kcat batches as it-kafka-100k's does (lz4, a 50 ms
linger, up to 10,000 messages a set: the mock returns one set a fetch and
walks its sets to find it); --kcat-default uses kcat's defaults instead.
--timeline prints journaled once a second.

Latency: afterwards, one event at a time, each by its own kcat run
(linger.ms=0; kcat sends what it read from a pipe only at EOF, so a kept
kcat cannot be handed one event): a view by a fresh anonymous session
(keyed by it), each after a random pause of 0-100 ms (else each would
start in step with weft-kafka's fetch cycle). From kcat's start (kcat's own start, ~ms, is inside every
sample; its run time to the mock's ack is reported beside), HISTORY and
RECS of that session are polled until HISTORY holds the event and RECS differs from what every session
without state gets (the front table's answer): the model applied it. The
viewed items are those that change that answer (a calibration EVENT on
the socket first, with the same ts: the model is a pure function of the
events, so the Kafka event changes RECS the same way).
Not a test: figures for BENCHMARKS.md.
"""
import argparse
import json
import os
import random
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir  # noqa: E402

TOPIC = "bench"
BATCHING = ["-z", "lz4", "-X", "linger.ms=50", "-X", "batch.num.messages=10000"]
K = 20


def pct(v, q):
    return v[min(len(v) - 1, int(len(v) * q))] * 1000


def throughput(a, app, bootstrap, lines, kcat):
    status = os.path.join(app.dir, "kafka.status")

    def st():
        try:
            with open(status) as f:
                return json.load(f), os.stat(status).st_mtime
        except (OSError, ValueError):
            return None, 0
    while not st()[0] or len(st()[0]["partitions"]) != a.partitions:
        time.sleep(0.05)
    t0 = time.time()
    done = {}

    def run():
        subprocess.run(kcat, input="\n".join(lines).encode() + b"\n", check=True)
        done["t"] = time.time() - t0
    th = threading.Thread(target=run)
    th.start()
    last = 0
    while True:
        s, mt = st()
        if a.timeline and time.time() - t0 >= last + 1:
            last += 1
            print(f"  t={last:3d} s journaled {s['journaled'] if s else 0}", flush=True)
        if s and s["journaled"] >= a.events:
            th.join()
            print(f"produced {a.events} events to {a.partitions} partitions in {done['t']:.1f} s (kcat)")
            print(f"through Kafka into the journal ({a.durability}): {a.events} events in {mt - t0:.2f} s "
                  f"= {a.events / (mt - t0):.0f} events/s (batches committed: {s['commits']})")
            return
        time.sleep(0.02)


def calibrate(c, items, ts):
    """The empty session's RECS, and the items whose view changes it."""
    empty = c.execute_command("RECS", "cal-empty", "-", K)
    good = []
    for j, it in enumerate(items):
        c.execute_command("EVENT", f"cal{j}", "-", "view", it, "ts", ts)
        if c.execute_command("RECS", f"cal{j}", "-", K) != empty:
            good.append(it)
    return empty, good


def latency(a, app, bootstrap, items):
    c = app.client()
    ts = str(1700000000000)
    empty, good = calibrate(c, items[:200], ts)
    assert good, "no item's view changes the empty session's RECS"
    print(f"latency probes: {len(good)} of 200 items change the empty session's RECS ({len(empty)} items)")
    hist, recs, acked = [], [], []
    rnd = random.Random(20)
    for i in range(a.probes):
        # A probe started just as the last became visible would start just
        # after weft-kafka's fetch came back, in step with its fetch cycle
        # (the mock holds an empty fetch 50 ms): start at a random phase.
        time.sleep(rnd.uniform(0, 0.1))
        s, it = f"lat{i}", good[i % len(good)]
        msg = f'{s}|{{"ts":{ts},"user_id":"","session_id":"{s}","event":"view","item_id":"{it}"}}\n'
        t = time.time()
        prod = subprocess.Popen(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q", "-X", "linger.ms=0"],
                                stdin=subprocess.PIPE)
        prod.stdin.write(msg.encode())
        prod.stdin.close()  # kcat sends what it read only at EOF
        th = tr = tk = None
        while th is None or tr is None:
            if tk is None and prod.poll() is not None:
                tk = time.time() - t
            if th is None and c.execute_command("HISTORY", s):
                th = time.time() - t
            if tr is None and c.execute_command("RECS", s, "-", K) != empty:
                tr = time.time() - t
            time.sleep(0.0002)
        assert prod.wait() == 0
        hist.append(th)
        recs.append(tr)
        acked.append(tk if tk is not None else time.time() - t)
    for name, v in (("kcat's run (start to the mock's ack, exit)", acked), ("visible in HISTORY", hist),
                    ("visible in RECS", recs)):
        v.sort()
        print(f"kcat start to {name}: p50 {pct(v, 0.5):.1f} ms, p90 {pct(v, 0.9):.1f} ms, "
              f"p99 {pct(v, 0.99):.1f} ms, max {v[-1] * 1000:.1f} ms ({len(v)} probes)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=100000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--durability", default="fsync")
    ap.add_argument("--probes", type=int, default=300)
    ap.add_argument("--kcat-default", action="store_true", help="kcat's own batching (else BATCHING)")
    ap.add_argument("--kcat-x", action="append", default=[], metavar="PROP=V",
                    help="a librdkafka property for the producing kcat (-X), after the batching")
    ap.add_argument("--timeline", action="store_true", help="journaled once a second")
    a = ap.parse_args()
    T = TestDir("kafkabench")
    mock = subprocess.Popen([os.path.join(harness.BUILD, "tests", "weft-test-kafka-mock"), TOPIC,
                             str(a.partitions)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    bootstrap = mock.stdout.readline().strip()
    store = Store(T.path, users=2000, items=2000, days=3)
    users, items = store.users(), [r["item_id"] for r in store.items()]
    lines = []
    for k in range(a.events):
        u = users[k % len(users)]
        lines.append(f'{u}|{{"ts":{1700000000000 + k},"user_id":"{u}","session_id":"b{k % 5000}",'
                     f'"event":"view","item_id":"{items[k % len(items)]}","value":""}}')
    app = Appliance(T.path, shards=2, snapshot=store.snapshot,
                    extra=["--durability", a.durability, "--kafka-brokers", bootstrap, "--kafka-topic", TOPIC])
    kcat = ["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"] + ([] if a.kcat_default else BATCHING) + \
        [x for kv in a.kcat_x for x in ("-X", kv)]
    try:
        throughput(a, app, bootstrap, lines, kcat)
        if a.probes:
            latency(a, app, bootstrap, items)
    finally:
        app.stop()
        mock.stdin.close()
        mock.wait()
        T.cleanup()


if __name__ == "__main__":
    main()
