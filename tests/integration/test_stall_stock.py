#!/usr/bin/python3
"""test_stall_stock.py - a stalled ranker loses nothing; stock flips are seen.

1. SIGSTOP ranker 0 for 3 s while clients send pipelined EVENTs to sessions
   on both shards: shard 1 keeps answering (each call within 1 s); after
   SIGCONT every acknowledged event of shard 0 is in HISTORY, in order,
   exactly once.
2. While one client sells the top items out in every size and restocks
   them, another queries RECS for the same shopper: no reply ever contains
   an item that was sold out for the whole time the query was in flight.
"""
import csv
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir, sessions_of  # noqa: E402

T = TestDir("stall")
STORE = Store(T.path)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot)
ITEMS = [r["item_id"] for r in STORE.items()]


def test_sigstop_ranker_loses_nothing_other_shard_serves():
    s0, s1 = sessions_of(0, 4, prefix="stall0-"), sessions_of(1, 4, prefix="stall1-")
    acked0 = {s: [] for s in s0}
    errors = []

    def load():
        c = APP.client(socket_timeout=60)
        for rnd in range(30):
            p = c.pipeline(transaction=False)
            sent = []
            for s in s0:
                tag = f"{s}-{rnd}"
                p.execute_command("EVENT", s, "-", "view", ITEMS[rnd % len(ITEMS)], "n", tag)
                sent.append((s, tag))
            for s, r in zip([x for x, _ in sent], p.execute(raise_on_error=False)):
                if r == 1:
                    acked0[s].append(sent.pop(0)[1])
                else:
                    errors.append(r)
            time.sleep(0.1)

    pid = APP.pids("weft-ranker --shard 0")[0]
    t = threading.Thread(target=load)
    t.start()
    time.sleep(0.5)
    os.kill(pid, signal.SIGSTOP)
    c1 = APP.client(socket_timeout=1.0)
    t_end = time.time() + 3
    answered = 0
    while time.time() < t_end:
        for s in s1:
            assert c1.execute_command("EVENT", s, "-", "view", ITEMS[0]) == 1
            assert c1.execute_command("RECS", s, "-", 5) is not None
            answered += 1
    os.kill(pid, signal.SIGCONT)
    t.join(timeout=120)
    assert not t.is_alive(), "load did not finish after SIGCONT"
    assert not errors, errors[:3]
    assert answered > 20, answered
    c = APP.client()
    for s in s0:
        tags = [ev[ev.index("n") + 1] for ev in c.execute_command("HISTORY", s) if "n" in ev]
        assert tags == acked0[s], (s, tags[:5], acked0[s][:5])
        assert len(tags) == 30


def test_stock_flips_never_serve_sold_out():
    user = STORE.users()[0]
    c = APP.client()
    top = c.execute_command("RECS", "stock-probe", user, 10)
    sizes = {}
    with open(os.path.join(STORE.dir, "inventory.csv")) as f:
        for r in csv.DictReader(f):
            sizes.setdefault(r["item_id"], []).append((r["size"], r["qty"]))
    flip = [i for i in top[:6] if i in sizes]
    assert flip, "the top items have no inventory rows"
    out_since = {}   # item -> time its last sell-out was acknowledged
    back_at = {}     # item -> list of (out_ack, restock_sent)
    stop = threading.Event()
    bad = []

    def flipper():
        w = APP.client()
        while not stop.is_set():
            for it in flip:
                p = w.pipeline(transaction=False)
                for size, _ in sizes[it]:
                    p.execute_command("STOCK", it, size, 0)
                p.execute()
                out_since[it] = time.monotonic()
            time.sleep(0.02)
            for it in flip:
                t_restock = time.monotonic()
                back_at.setdefault(it, []).append((out_since.pop(it), t_restock))
                p = w.pipeline(transaction=False)
                for size, qty in sizes[it]:
                    p.execute_command("STOCK", it, size, max(int(qty), 1))
                p.execute()
            time.sleep(0.02)

    t = threading.Thread(target=flipper)
    t.start()
    q = APP.client()
    n = 0
    t_end = time.time() + 3
    while time.time() < t_end:
        t0 = time.monotonic()
        recs = q.execute_command("RECS", f"stock-q{n}", user, 10)
        t1 = time.monotonic()
        n += 1
        for it in recs:
            for a, b in back_at.get(it, []):
                if a <= t0 and t1 <= b:
                    bad.append((it, t0, t1))
            a = out_since.get(it)
            if a is not None and a <= t0:
                bad.append((it, t0, t1))
    stop.set()
    t.join()
    assert n > 50, n
    assert not bad, f"{len(bad)} replies held a sold-out item, e.g. {bad[0]}"


if __name__ == "__main__":
    try:
        harness.run([test_sigstop_ranker_loses_nothing_other_shard_serves,
                     test_stock_flips_never_serve_sold_out])
    finally:
        for p in APP.pids("weft-ranker"):
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
