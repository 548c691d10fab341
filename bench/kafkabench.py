#!/usr/bin/python3
"""kafkabench.py - events per second through Kafka into a durable journal
(issue 20), and the event-to-visible latency from produce to HISTORY.

    bench/kafkabench.py [--events N] [--partitions P] [--durability fsync|os]

librdkafka's mock cluster (build/tests/weft-test-kafka-mock) holds a topic
of P partitions; `weftctl up --kafka-*` runs and its weft-kafka has its
partitions; then kcat produces N events keyed by user. Throughput: N over
the time from kcat's start to the kafka.status that first shows all N
journaled (durable: acked by weft-ingest after fdatasync; weft-kafka
rewrites the file 5 times a second, so the figure is low by up to 0.2 s). Latency: afterwards, one event at a time produced with kcat
and HISTORY polled until it is there (includes kcat's start, ~ms).
Not a test: figures for BENCHMARKS.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "integration"))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir  # noqa: E402

TOPIC = "bench"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=200000)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--durability", default="fsync")
    ap.add_argument("--latency-samples", type=int, default=50)
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
    status = os.path.join(app.dir, "kafka.status")

    def st():
        try:
            with open(status) as f:
                return json.load(f), os.stat(status).st_mtime
        except (OSError, ValueError):
            return None, 0
    try:
        while not st()[0] or len(st()[0]["partitions"]) != a.partitions:
            time.sleep(0.05)
        t0 = time.time()
        subprocess.run(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"],
                       input="\n".join(lines).encode() + b"\n", check=True)
        print(f"produced {a.events} events to {a.partitions} partitions in {time.time() - t0:.1f} s")
        while True:
            s, mt = st()
            if s and s["journaled"] >= a.events:
                print(f"through Kafka into the journal ({a.durability}): {a.events} events in {mt - t0:.2f} s "
                      f"= {a.events / (mt - t0):.0f} events/s (batches committed: {s['commits']})")
                break
            time.sleep(0.02)
        c = app.client()
        lat = []
        for i in range(a.latency_samples):
            u = users[i]
            msg = f'{u}|{{"ts":1,"user_id":"{u}","session_id":"lat{i}","event":"view","item_id":"{items[i]}"}}'
            t = time.time()
            subprocess.run(["kcat", "-b", bootstrap, "-t", TOPIC, "-P", "-K", "|", "-q"],
                           input=msg.encode() + b"\n", check=True)
            while not c.execute_command("HISTORY", f"lat{i}"):
                time.sleep(0.0005)
            lat.append(time.time() - t)
        lat.sort()
        print(f"produce (kcat run) to visible in HISTORY: p50 {lat[len(lat) // 2] * 1000:.1f} ms, "
              f"p90 {lat[int(len(lat) * 0.9)] * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms ({len(lat)} samples)")
    finally:
        app.stop()
        mock.stdin.close()
        mock.wait()
        T.cleanup()


if __name__ == "__main__":
    main()
