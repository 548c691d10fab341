#!/usr/bin/python3
"""test_faults.py - nothing acknowledged is ever lost.

Under a load of pipelined EVENTs from several clients, kill -9 weft-ingest,
a ranker or weft-admin at random moments, twenty rounds. Each client records
every event the appliance acknowledged (`:1`). Afterwards, with nobody
touching the appliance (`weftctl up` restarts what died), every acknowledged
event is in HISTORY of its session exactly once, and the appliance serves.

Events carry a unique tag in a field (`n <client>-<seq>`) so duplicates and
losses can be told apart. A client whose connection dies reconnects and
carries on; events it sent without an ack may or may not be there (at most
once each).
"""
import os
import random
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir  # noqa: E402

ROUNDS = int(os.environ.get("WEFT_FAULT_ROUNDS", "20"))
T = TestDir("faults")
STORE = Store(T.path, users=200, items=400, days=5)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot)
ITEMS = [r["item_id"] for r in STORE.items()][:100]


class Client(threading.Thread):
    def __init__(self, cid, sessions):
        super().__init__(daemon=True)
        self.cid, self.sessions = cid, sessions
        self.acked = {}  # tag -> session
        self.sent = {}
        self.stop = threading.Event()
        self.reconnects = 0

    def run(self):
        seq = 0
        c = APP.client(socket_timeout=30)
        while not self.stop.is_set():
            p = c.pipeline(transaction=False)
            batch = []
            for _ in range(50):
                # A new session every 100 events keeps each HISTORY short.
                s = f"f{self.cid}-{seq // 100}"
                tag = f"{self.cid}-{seq}"
                p.execute_command("EVENT", s, "-", "view", ITEMS[seq % len(ITEMS)], "n", tag)
                batch.append((tag, s))
                self.sent[tag] = s
                seq += 1
            try:
                out = p.execute(raise_on_error=False)
            except Exception:  # noqa: BLE001 - the server went away mid-batch
                self.reconnects += 1
                time.sleep(0.05)
                c = APP.client(socket_timeout=30)
                continue
            for (tag, s), r in zip(batch, out):
                if r == 1:
                    self.acked[tag] = s


def victims():
    v = [("weft-ingest", APP.pids("weft-ingest")), ("weft-admin", APP.pids("weft-admin"))]
    for i in range(APP.shards):
        v.append((f"ranker {i}", APP.pids(f"weft-ranker --shard {i}")))
    return [(n, p) for n, p in v if p]


def test_kill9_under_load_loses_no_acked_event():
    clients = [Client(i, None) for i in range(4)]
    for c in clients:
        c.start()
    rnd = random.Random(1234)
    killed = []
    for _ in range(ROUNDS):
        time.sleep(rnd.uniform(0.2, 0.6))
        deadline = time.time() + 15
        while not (alive := victims()) and time.time() < deadline:
            time.sleep(0.1)  # everything is being restarted right now
        assert alive, "no weft process came back within 15 s"
        name, pids = rnd.choice(alive)
        os.kill(pids[0], signal.SIGKILL)
        killed.append(name)
    time.sleep(1.0)
    for c in clients:
        c.stop.set()
    for c in clients:
        c.join(timeout=60)
    acked = {}
    for c in clients:
        acked.update(c.acked)
    harness.log(f"killed: {killed}; acked {len(acked)} events; "
                f"reconnects {[c.reconnects for c in clients]}")
    assert len(acked) > 1000, len(acked)
    # Every process is back without anyone touching the appliance.
    deadline = time.time() + 30
    c = APP.client(socket_timeout=10)
    while time.time() < deadline:
        try:
            if c.ping():
                break
        except Exception:  # noqa: BLE001
            time.sleep(0.2)
    sessions = sorted({s for cl in clients for s in cl.sent.values()})
    seen = {}
    for s in sessions:
        for ev in c.execute_command("HISTORY", s):
            ev = [str(x) for x in ev]
            if "n" in ev:
                tag = ev[ev.index("n") + 1]
                seen[tag] = seen.get(tag, 0) + 1
    lost = [t for t in acked if t not in seen]
    dup = [t for t, n in seen.items() if n > 1]
    assert not lost, f"{len(lost)} acknowledged events lost, e.g. {lost[:5]}"
    assert not dup, f"{len(dup)} events applied twice, e.g. {dup[:5]}"
    sent = set().union(*(cl.sent for cl in clients))
    assert set(seen) <= sent, "HISTORY holds events nobody sent"
    assert c.execute_command("RECS", "after-faults", "-", 5) is not None


if __name__ == "__main__":
    try:
        harness.run([test_kill9_under_load_loses_no_acked_event])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        if os.environ.get("WEFT_KEEP"):
            print("kept", T.path, file=sys.stderr)
        else:
            T.cleanup()
