#!/usr/bin/python3
"""test_nightly.py - weft-batch nightly: the journal becomes tonight's snapshot.

The appliance journals live EVENTs; `weft-batch nightly --state-dir DIR
--admin admin.sock --history events.csv` turns the journal plus the history
into a snapshot, loads it (new generation on every ranker), and a shopper
seen only in today's journal is a returning shopper afterwards. A run with
nothing to build from fails with a clear message and changes nothing.
"""
import os
import time
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir, prog  # noqa: E402

T = TestDir("nightly")
STORE = Store(T.path, users=200, items=400, days=5)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot)


def test_nightly_builds_from_journal_and_loads():
    c = APP.client()
    items = [r["item_id"] for r in STORE.items()][:5]
    for i, it in enumerate(items):
        assert c.execute_command("EVENT", "today-s1", "newcomer-42", "pdp", it) == 1
        assert c.execute_command("EVENT", "today-s1", "newcomer-42", "dwell", it, "ms", str(1000 * i)) == 1
    before = APP.admin().execute_command("SNAPSHOT", "STATUS")
    assert c.execute_command("SEGMENTS", "probe", "newcomer-42") == []
    r = subprocess.run([prog("weft-batch"), "nightly", "--state-dir", APP.dir, "--admin", APP.admin_sock,
                        "--history", STORE.events, "--catalog", STORE.catalog, "--quiet"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "generation" in r.stdout.lower(), r.stdout
    snaps = [f for f in os.listdir(os.path.join(APP.dir, "snapshots")) if f.endswith(".snap")]
    assert len(snaps) == 1, snaps
    after = APP.admin().execute_command("SNAPSHOT", "STATUS")
    assert after != before
    # The shopper from today's journal now has a batch segment: known.
    assert c.execute_command("SEGMENTS", "probe2", "newcomer-42") != []


def _status_path(st, key):
    """The path of generation `key` in a SNAPSHOT STATUS reply (flat pairs)."""
    d = dict(zip(st[::2], st[1::2]))
    g = d.get(key.encode()) or d.get(key)
    if not g:
        return None
    g = dict(zip(g[::2], g[1::2]))
    p = g.get(b"path") or g.get("path")
    return p.decode() if isinstance(p, bytes) else p


def test_nightly_keep_1_never_removes_the_rollback_target():
    # Two more nights with --keep 1: the older night is weft's previous
    # generation, so it stays (rollback needs it); the one before goes.
    for _ in range(2):
        time.sleep(1.1)  # night files are named to the second
        r = subprocess.run([prog("weft-batch"), "nightly", "--state-dir", APP.dir, "--admin", APP.admin_sock,
                            "--history", STORE.events, "--catalog", STORE.catalog, "--keep", "1", "--quiet"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
    sdir = os.path.join(APP.dir, "snapshots")
    snaps = sorted(f for f in os.listdir(sdir) if f.endswith(".snap"))
    st = APP.admin().execute_command("SNAPSHOT", "STATUS")
    cur, prev = _status_path(st, "current"), _status_path(st, "previous")
    assert [os.path.join(sdir, f) for f in snaps] == [prev, cur], (snaps, cur, prev)
    APP.admin().execute_command("SNAPSHOT", "ROLLBACK")
    assert _status_path(APP.admin().execute_command("SNAPSHOT", "STATUS"), "current") == prev
    assert APP.client().execute_command("RECS", "after-rollback", "newcomer-42", "5")


def test_nightly_with_nothing_fails_clearly():
    empty = os.path.join(T.path, "empty-state")
    os.makedirs(empty)
    r = subprocess.run([prog("weft-batch"), "nightly", "--state-dir", empty], capture_output=True, text=True)
    assert r.returncode == 1
    assert "nothing to build from" in r.stderr, r.stderr


if __name__ == "__main__":
    try:
        harness.run([test_nightly_builds_from_journal_and_loads, test_nightly_keep_1_never_removes_the_rollback_target,
                     test_nightly_with_nothing_fails_clearly])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
