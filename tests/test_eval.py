#!/usr/bin/python3
"""test_eval.py - weft-eval end to end on a small generated store.

A weft-gen store (400 users, 600 items, 10 days), then weft-eval --json
with the weights tuned on the 2 days before the 2 test days. Checks: the
JSON object has the documented shape (k, events, test_sessions, the four
variants and the returning / new / pivot slices, hr and mrr fractions in
[0, 1], predictions counted); the ordering the generator's model implies:
hybrid >= batch and >= session overall (HR@20 and MRR@20), hybrid > batch
for returning shoppers, session > batch for new visitors, every variant >
popularity; 1 replay thread gives exactly what 2 and 3 give; and --live
through a running appliance (`weftctl up`, tests/integration/harness.py)
gives the in-process numbers exactly (weft-eval exits 1 when they differ).
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
import harness  # noqa: E402
from harness import Appliance, TestDir, prog  # noqa: E402

VARIANTS = ("popularity", "batch", "session", "hybrid")
SLICES = ("returning", "new", "pivot")
T = TestDir("eval")
STORE = os.path.join(T.path, "store")
subprocess.run([prog("weft-gen"), "--out", STORE, "--users", "400", "--items", "600", "--days", "10",
                "--seed", "7", "--quiet"], check=True)
EVENTS = os.path.join(STORE, "events.csv")
CATALOG = os.path.join(STORE, "catalog.csv")
SPEED = ("replay_events_per_sec", "replay_events_per_cpu_sec", "replay_threads")


WEFT_EVAL = prog("weft-eval")


def weft_eval(*extra):
    r = subprocess.run([WEFT_EVAL, "--events", EVENTS, "--catalog", CATALOG, "--split-days", "2",
                        "--valid-days", "2", "--k", "20", "--json", "--quiet", *extra],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"weft-eval {' '.join(extra)} exited {r.returncode}: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def results(d):
    """The object without the speed figures (which vary run to run)."""
    return {k: v for k, v in d.items() if k not in SPEED}


def check_metrics(m, where):
    assert set(m) >= {"hr", "mrr", "predictions"}, f"{where}: {m}"
    assert 0.0 <= m["mrr"] <= m["hr"] <= 1.0, f"{where}: {m}"
    assert isinstance(m["predictions"], int) and m["predictions"] >= 0, f"{where}: {m}"


BASE = weft_eval()


def test_json_shape():
    d = BASE
    assert d["k"] == 20
    assert isinstance(d["events"], int) and d["events"] > 1000
    assert isinstance(d["test_sessions"], int) and d["test_sessions"] > 50
    assert 0 <= d["pivot_sessions"] <= d["test_sessions"]
    assert set(d["variants"]) == set(VARIANTS)
    preds = d["variants"]["hybrid"]["predictions"]
    assert preds > 1000
    for v in VARIANTS:
        check_metrics(d["variants"][v], f"variants.{v}")
        assert d["variants"][v]["predictions"] == preds  # every variant answers every prediction
    assert set(d["slices"]) == set(SLICES)
    for s in SLICES:
        assert set(d["slices"][s]) == set(VARIANTS)
        for v in VARIANTS:
            check_metrics(d["slices"][s][v], f"slices.{s}.{v}")
    # A generated store has both returning shoppers and new visitors.
    r, n = d["slices"]["returning"]["hybrid"]["predictions"], d["slices"]["new"]["hybrid"]["predictions"]
    assert r > 0 and n > 0 and r + n == preds
    for side in ("returning", "new"):
        w = d["weights"][side]
        assert len(w) == 2 and abs(w[0] + w[1] - 1) < 1e-3


def test_variant_ordering():
    v, s = BASE["variants"], BASE["slices"]
    for m in ("hr", "mrr"):
        assert v["hybrid"][m] >= v["batch"][m], (m, v)
        assert v["hybrid"][m] >= v["session"][m], (m, v)
        for x in ("batch", "session", "hybrid"):
            assert v[x][m] > v["popularity"][m], (m, x, v)
        assert s["returning"]["hybrid"][m] > s["returning"]["batch"][m], (m, s["returning"])
        assert s["new"]["session"][m] > s["new"]["batch"][m], (m, s["new"])


def test_threads_give_identical_results():
    for t in ("1", "3"):
        assert results(weft_eval("--threads", t)) == results(BASE), f"--threads {t}"


def test_live_agrees_with_in_process():
    app = Appliance(T.path, shards=2)
    try:
        d = weft_eval("--live", app.dir)  # exits 1 when live and in-process differ
    finally:
        rc = app.stop()
    assert rc == 0, f"weftctl up exited {rc}"
    assert results({k: v for k, v in d.items() if k != "live"}) == results(BASE)
    for v in ("session", "hybrid"):
        assert d["live"][v] == d["variants"][v], (v, d["live"][v], d["variants"][v])


if __name__ == "__main__":
    try:
        harness.run([test_json_shape, test_variant_ordering, test_threads_give_identical_results,
                     test_live_agrees_with_in_process])
    finally:
        T.cleanup()
