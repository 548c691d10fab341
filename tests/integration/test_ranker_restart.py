#!/usr/bin/python3
"""test_ranker_restart.py - kill -9 of one ranker under queries.

While clients query sessions of both shards, ranker 0 is killed with
SIGKILL. Queries to shard 1 keep being answered throughout (each within a
1 s socket timeout); `weftctl up` restarts ranker 0 (new pid), and shard 0's
sessions are answered again, including the requests that were in flight.
`weftctl up --memory-budget` reaches every ranker, the restarted one too.
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


if __name__ == "__main__":
    try:
        harness.run([test_kill_ranker_other_shard_keeps_serving])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
