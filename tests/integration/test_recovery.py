#!/usr/bin/python3
"""test_recovery.py - sessions survive eviction and restarts (issue 15 items 7, 10).

One appliance (`weftctl up`, 2 shards, --memory-budget 4M so a flood of
sessions evicts; --checkpoint-interval 1 and --spill-budget 64M, so the
rankers' options pass through `weftctl up`):

0. `weftctl up` refuses a bad --spill-budget, --checkpoint-interval or
   --session-ttl with a usage error before starting anything; the good ones
   reach the rankers (each shard checkpoints within seconds: STATS
   checkpoint_lsn).
1. A session with three events, then 30,000 other sessions: the first is
   evicted (STATS sessions_evicted) and comes back whole: HISTORY has its
   three events, and an EVENT after that lands on them (four), not on an
   empty session (STATS sessions_restored).
2. kill -9 of both rankers: `weftctl up` restarts them; every session
   checked keeps exactly its events (the journal replay does not apply one
   twice over what the spill store brought back), the evicted one too.
3. kill -9 of weft-ingest: restarted; the sessions are unchanged and take
   new events once each.
"""
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir  # noqa: E402

T = TestDir("recovery")
STORE = Store(T.path, users=200, items=400, days=5)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot,
                extra=("--memory-budget", "4M", "--checkpoint-interval", "1", "--spill-budget", "64M"))
ITEMS = [r["item_id"] for r in STORE.items()][:50]
CHECK = {}  # session -> events it holds


def stats():
    st = APP.admin().execute_command("STATS")
    shards = dict(zip(st[::2], st[1::2]))["shards"]
    out = {}
    for sh in shards:
        d = dict(zip(sh[::2], sh[1::2]))
        for k in ("sessions_evicted", "sessions_restored", "spill_dropped"):
            out[k] = out.get(k, 0) + int(d[k])
    return out


def history_len(c, s):
    h = c.execute_command("HISTORY", s)
    if h and h[0] == "folded":
        h = h[2:]
    return len(h)


def wait_serving(old, name):
    deadline = time.time() + 30
    while time.time() < deadline:
        new = APP.pids(name)
        if new and not set(new) & set(old):
            c = APP.client(socket_timeout=10)
            try:
                c.execute_command("HISTORY", "probe")
                return c
            except Exception:  # noqa: BLE001 - not back yet
                pass
        time.sleep(0.2)
    raise AssertionError(f"{name} did not come back: {old} -> {APP.pids(name)}")


def test_up_passes_ranker_options():
    for bad, says in ((("--spill-budget", "12x"), "--spill-budget wants bytes"),
                      (("--checkpoint-interval", "-1"), "--checkpoint-interval wants seconds"),
                      (("--session-ttl", "7200"), "--session-ttl wants seconds in 1..3600")):
        r = subprocess.run([harness.prog("weftctl"), "up", "--dir", os.path.join(T.path, "never"), *bad],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and says in r.stderr, (bad, r.returncode, r.stderr)
    c = APP.client(socket_timeout=10)
    for i in range(32):  # sessions on every shard (a shard without events has nothing to checkpoint)
        assert c.execute_command("EVENT", f"ckpt{i}", "-", "view", ITEMS[i]) == 1
    deadline = time.time() + 30
    while time.time() < deadline:
        st = APP.admin().execute_command("STATS")
        shards = dict(zip(st[::2], st[1::2]))["shards"]
        lsns = [int(dict(zip(sh[::2], sh[1::2]))["checkpoint_lsn"]) for sh in shards]
        if all(lsns):
            break
        time.sleep(0.2)
    assert all(lsns), lsns


def test_evicted_session_comes_back_whole():
    c = APP.client(socket_timeout=30)
    for i in range(3):
        assert c.execute_command("EVENT", "first", "-", "view", ITEMS[i]) == 1
    CHECK["first"] = 3
    p = c.pipeline(transaction=False)
    for i in range(30000):
        p.execute_command("EVENT", f"flood{i}", "-", "view", ITEMS[i % len(ITEMS)])
        p.execute_command("EVENT", f"flood{i}", "-", "pdp", ITEMS[(i + 1) % len(ITEMS)])
        if i % 1000 == 999:
            assert all(r == 1 for r in p.execute())
    p.execute()
    deadline = time.time() + 10
    while stats()["sessions_evicted"] == 0 and time.time() < deadline:
        time.sleep(0.2)  # STATS are published about once a second
    assert stats()["sessions_evicted"] > 0, stats()
    assert history_len(c, "first") == 3
    assert c.execute_command("EVENT", "first", "-", "click", ITEMS[9]) == 1
    CHECK["first"] = 4
    assert history_len(c, "first") == 4
    for i in (0, 1, 2, 29999):
        assert history_len(c, f"flood{i}") == 2, i
        CHECK[f"flood{i}"] = 2
    deadline = time.time() + 10
    while stats()["sessions_restored"] == 0 and time.time() < deadline:
        time.sleep(0.2)
    assert stats()["sessions_restored"] > 0, stats()


def test_rankers_killed_keep_every_session_once():
    old = APP.pids("weft-ranker")
    assert len(old) == 2, old
    for pid in old:
        os.kill(pid, signal.SIGKILL)
    c = wait_serving(old, "weft-ranker")
    for s, n in CHECK.items():
        assert history_len(c, s) == n, (s, n, c.execute_command("HISTORY", s))


def test_ingest_killed_sessions_unchanged():
    old = APP.pids("weft-ingest")
    assert len(old) == 1, old
    os.kill(old[0], signal.SIGKILL)
    c = wait_serving(old, "weft-ingest")
    for s, n in CHECK.items():
        assert history_len(c, s) == n, (s, n)
    assert c.execute_command("EVENT", "first", "-", "view", ITEMS[10]) == 1
    assert history_len(c, "first") == 5


if __name__ == "__main__":
    try:
        harness.run([test_up_passes_ranker_options, test_evicted_session_comes_back_whole, test_rankers_killed_keep_every_session_once,
                     test_ingest_killed_sessions_unchanged])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
