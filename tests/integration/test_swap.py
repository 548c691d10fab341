#!/usr/bin/python3
"""test_swap.py - snapshot swaps under load: zero errors, never a mix.

Two snapshots of the same store, built with different candidate-list
lengths (A: 3 candidates per user, the rest filled by the session model;
B: 200), so one user's reply tells which generation served it. While
redis-benchmark sends RECS at full speed and a checker queries one user
whose two lists differ, ten swaps and a rollback happen. Checks: no
redis-benchmark error; every checked reply equals the A answer or the B
answer exactly (never a mix); a corrupt and a truncated snapshot are refused
and the current one keeps serving; SNAPSHOT STATUS reports the generation.
"""
import os
import shutil
import struct
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir, prog  # noqa: E402

T = TestDir("swap")
STORE = Store(T.path, users=300, items=600, days=10)
SNAP_A = os.path.join(T.path, "a.snap")
SNAP_B = os.path.join(T.path, "b.snap")
# B is the store's own snapshot (weft-batch's default --candidates 200), copied.
harness.batch_build(STORE.events, STORE.catalog, SNAP_B)
harness.batch_build(STORE.events, STORE.catalog, SNAP_A, "--candidates", "3")
APP = Appliance(T.path, shards=2, snapshot=SNAP_A)
USERS = STORE.users()


def answers(user):
    """The RECS answer under A and under B for an empty session."""
    c = APP.client()
    a = c.execute_command("RECS", "probe-a", user, 10)
    APP.weftctl("snapshot", "load", SNAP_B)
    b = c.execute_command("RECS", "probe-b", user, 10)
    APP.weftctl("snapshot", "load", SNAP_A)
    return a, b


def test_ten_swaps_and_rollback_under_load():
    user = USERS[0]
    a, b = answers(user)
    assert a != b, "the two snapshots must answer differently for the probe"
    bench = subprocess.Popen(["redis-benchmark", "-s", APP.sock, "-n", "400000", "-c", "20", "-q", "RECS",
                              "s__rand_int__", USERS[1], "20"], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    bad, checked = [], [0]
    stop = threading.Event()

    def check():
        c = APP.client()
        i = 0
        while not stop.is_set():
            r = c.execute_command("RECS", f"chk{i}", user, 10)
            i += 1
            checked[0] += 1
            if r != a and r != b:
                bad.append(r)

    t = threading.Thread(target=check)
    t.start()
    for i in range(10):
        APP.weftctl("snapshot", "load", SNAP_B if i % 2 == 0 else SNAP_A)
    APP.weftctl("snapshot", "rollback")
    stop.set()
    t.join()
    out, _ = bench.communicate(timeout=600)
    assert bench.returncode == 0, out
    assert "error" not in out.lower(), out
    assert not bad, f"{len(bad)} replies mixed generations, e.g. {bad[0]}"
    assert checked[0] > 50, checked


def test_bad_snapshots_refused_and_current_keeps_serving():
    c = APP.client()
    before = c.execute_command("RECS", "keep", USERS[0], 10)
    status = APP.weftctl("snapshot", "status").stdout
    trunc = os.path.join(T.path, "trunc.snap")
    with open(SNAP_A, "rb") as f:
        data = f.read()
    with open(trunc, "wb") as f:
        f.write(data[: len(data) // 2])
    corrupt = os.path.join(T.path, "corrupt.snap")
    shutil.copy(SNAP_A, corrupt)
    with open(corrupt, "r+b") as f:
        f.seek(len(data) - 100)
        f.write(b"\xff" * 8)
    future = os.path.join(T.path, "future.snap")
    shutil.copy(SNAP_A, future)
    with open(future, "r+b") as f:
        f.seek(8)  # format_version, right after the 8-byte magic
        f.write(struct.pack("<I", 999))
    why = {trunc: "", corrupt: "", future: "format version 999", os.path.join(T.path, "missing.snap"): ""}
    for bad, says in why.items():
        r = APP.weftctl("snapshot", "load", bad, check=False)
        assert r.returncode != 0, r
        assert r.stderr.strip() or r.stdout.strip(), "refusal must say why"
        assert says in r.stderr + r.stdout, (says, r.stderr, r.stdout)
    assert c.execute_command("RECS", "keep", USERS[0], 10) == before
    assert APP.weftctl("snapshot", "status").stdout.split("\n")[0] == status.split("\n")[0]


def test_snapshot_diff_reports_the_change():
    import json
    r = APP.weftctl("--json", "snapshot", "diff", SNAP_A, SNAP_B)
    d = json.loads(r.stdout)
    assert d["users"]["kept"] == d["a"]["users"] and d["users"]["lost"] == 0, d["users"]
    assert d["a"]["candidates"] < d["b"]["candidates"], (d["a"], d["b"])
    assert d["changed_list"]["mean"] > 0 and d["rose"], d
    same = json.loads(APP.weftctl("--json", "snapshot", "diff", SNAP_A, SNAP_A).stdout)
    assert same["changed_top20"]["mean"] == 0 and same["rose"] == [] and same["fell"] == []


if __name__ == "__main__":
    try:
        harness.run([test_ten_swaps_and_rollback_under_load,
                     test_bad_snapshots_refused_and_current_keeps_serving,
                     test_snapshot_diff_reports_the_change])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
