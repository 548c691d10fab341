#!/usr/bin/python3
"""test_ranker_restart.py - kill -9 of one ranker under queries.

While clients query sessions of both shards, ranker 0 is killed with
SIGKILL. Queries to shard 1 keep being answered throughout (each within a
1 s socket timeout); `weftctl up` restarts ranker 0 (new pid), and shard 0's
sessions are answered again, including the requests that were in flight.
`weftctl up --memory-budget` reaches every ranker, the restarted one too.

Then the restart's replay keeps request order: with ranker 0 stopped
(SIGSTOP), one connection pipelines EVENT s A, RECS s, EVENT s B; once
both EVENTs are durable (INFO journal_durable_lsn) the ranker is killed.
The restarted ranker answers that RECS as it was asked, after A and
before B (the same list as a twin session that saw A only), and the next
RECS sees B: the replay stops where the request ring begins
(rankers/replay.c), it does not apply B ahead of the RECS before it.
"""
import os
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir, sessions_of  # noqa: E402

T = TestDir("restart")
STORE = Store(T.path)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot, extra=("--memory-budget", "64M"))
USERS = STORE.users()


def test_kill_ranker_other_shard_keeps_serving():
    s0, s1 = sessions_of(0, 20), sessions_of(1, 20)
    c1 = APP.client(socket_timeout=1.0)
    for s in s1:
        assert c1.execute_command("RECS", s, "-", 5) is not None
    old = APP.pids("weft-ranker .*--shard 0")
    assert len(old) == 1, old
    errors, answered = [], [0]
    stop = threading.Event()

    def hammer():
        while not stop.is_set():
            for s in s1:
                try:
                    c1.execute_command("RECS", s, "-", 5)
                    answered[0] += 1
                except Exception as e:  # noqa: BLE001
                    errors.append(repr(e))

    t = threading.Thread(target=hammer)
    t.start()
    time.sleep(0.3)
    os.kill(old[0], signal.SIGKILL)
    time.sleep(3.0)
    stop.set()
    t.join()
    assert not errors, errors[:5]
    assert answered[0] > 100, answered
    # Restarted with a new pid; its sessions answer again.
    deadline = time.time() + 20
    while time.time() < deadline:
        new = APP.pids("weft-ranker .*--shard 0")
        if new and new != old:
            break
        time.sleep(0.2)
    assert new and new != old, (old, new)
    for pid in APP.pids("weft-ranker"):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert b"\0--memory-budget\x0064M\0" in f.read(), pid
    c0 = APP.client(socket_timeout=10.0)
    for s in s0:
        assert c0.execute_command("EVENT", s, "-", "view", "i1") == 1
    st = APP.weftctl("status").stdout
    assert "ready" in st.lower() or "serving" in st.lower(), st


def durable_lsn(c):
    return int(c.info("stats")["journal_durable_lsn"])


def wait_new_ranker(old):
    deadline = time.time() + 20
    while time.time() < deadline:
        new = APP.pids("weft-ranker .*--shard 0")
        if new and new != old:
            return new
        time.sleep(0.1)
    raise AssertionError(f"ranker 0 not restarted: {old}")


def test_restart_replay_keeps_request_order():
    c = APP.client(socket_timeout=10.0)
    items = [r["item_id"] for r in STORE.items()]
    twins = sessions_of(0, 40, prefix="order")
    a, ref_a = items[0], None
    # The twins: what a RECS after A alone answers, and an item B whose
    # view changes that answer (so the check below can fail).
    assert c.execute_command("EVENT", twins[0], "-", "view", a) == 1
    ref_a = c.execute_command("RECS", twins[0], "-", 10)
    b = None
    for i, cand in enumerate(items[1:30]):
        t = twins[1 + i]
        assert c.execute_command("EVENT", t, "-", "view", a) == 1
        assert c.execute_command("EVENT", t, "-", "view", cand) == 1
        if c.execute_command("RECS", t, "-", 10) != ref_a:
            b, ref_ab = cand, c.execute_command("RECS", t, "-", 10)
            break
    assert b is not None, "no item changes the list"
    s = twins[-1]
    old = APP.pids("weft-ranker .*--shard 0")
    before = durable_lsn(c)
    os.kill(old[0], signal.SIGSTOP)
    replies = []

    def pipelined():
        p = APP.client(socket_timeout=30.0).pipeline(transaction=False)
        p.execute_command("EVENT", s, "-", "view", a)
        p.execute_command("RECS", s, "-", 10)
        p.execute_command("EVENT", s, "-", "view", b)
        replies.extend(p.execute())

    t = threading.Thread(target=pipelined)
    t.start()
    deadline = time.time() + 20
    while durable_lsn(c) < before + 2 and time.time() < deadline:
        time.sleep(0.02)
    assert durable_lsn(c) >= before + 2, (before, durable_lsn(c))
    os.kill(old[0], signal.SIGKILL)
    wait_new_ranker(old)
    t.join(30)
    assert not t.is_alive()
    assert replies[0] == 1 and replies[2] == 1, replies
    assert replies[1] == ref_a, (replies[1], ref_a)
    assert c.execute_command("RECS", s, "-", 10) == ref_ab


if __name__ == "__main__":
    try:
        harness.run([test_kill_ranker_other_shard_keeps_serving, test_restart_replay_keeps_request_order])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
