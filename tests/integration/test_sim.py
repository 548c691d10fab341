#!/usr/bin/python3
"""test_sim.py - weft-sim against a running appliance.

A generated store, its snapshot, `weftctl up`; then weft-sim: it runs
without errors, its rates are plausible (CTR per list between 1 % and
50 %, the observed CTR within 4 standard errors of the model's expected
one), two runs with the same seed under different tags print the same
numbers (deterministic for a seed), its --units-out file adds up to what
it printed, and the truth responds to the policy: with batch-only weights
the expected CTR drops (the shoppers' intent drifts within a visit, which
only the session part of the score follows). Bad usage gets a clear error.
"""
import csv
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir, prog  # noqa: E402

T = TestDir("sim")
STORE = Store(T.path, users=400, items=800, days=10)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot)


def sim(*args, check=True):
    r = subprocess.run([prog("weft-sim"), "--dir", APP.dir, "--store", STORE.dir, "--quiet", *args],
                       capture_output=True, text=True, timeout=600)
    if check and r.returncode != 0:
        raise AssertionError(f"weft-sim {args} exit {r.returncode}: {r.stdout} {r.stderr}")
    return r


def numbers(out):
    m = re.search(r"clicks +(\d+): CTR ([0-9.]+) per list \(expected from the model: ([0-9.]+)\)", out)
    p = re.search(r"page views +(\d+)", out)
    rq = re.search(r"requests +(\d+) RECS, (\d+) EVENTs, (\d+) errors", out)
    b = re.search(r"purchases +(\d+) items in (\d+) visits", out)
    assert m and p and rq and b, out
    return {"clicks": int(m[1]), "ctr": float(m[2]), "expected": float(m[3]), "pageviews": int(p[1]),
            "recs": int(rq[1]), "events": int(rq[2]), "errors": int(rq[3]), "purchases": int(b[1])}


RUNS = {}


def test_sim_runs_with_plausible_rates():
    n = numbers(sim("--shoppers", "300", "--pageviews", "6000", "--seed", "5", "--tag", "a",
                    "--units-out", os.path.join(T.path, "units.csv")).stdout)
    harness.log(f"seed 5: {n}")
    assert n["errors"] == 0 and n["pageviews"] == 6000 and n["recs"] == 6000, n
    assert 0.01 < n["ctr"] < 0.5, n
    se = (n["expected"] * (1 - n["expected"]) / n["recs"]) ** 0.5
    assert abs(n["ctr"] - n["expected"]) < 4 * se, n
    assert n["purchases"] > 0, n
    RUNS["a"] = n


def test_sim_units_add_up():
    with open(os.path.join(T.path, "units.csv")) as f:
        rows = list(csv.DictReader(f))
    n = RUNS["a"]
    assert sum(float(r["exposures"]) for r in rows) == n["recs"]
    assert sum(float(r["clicks"]) for r in rows) == n["clicks"]
    assert sum(float(r["purchases"]) for r in rows) == n["purchases"]
    assert abs(sum(float(r["expected_clicks"]) for r in rows) - n["expected"] * n["recs"]) < 0.01 * n["recs"]


def test_sim_same_seed_same_numbers():
    n = numbers(sim("--shoppers", "300", "--pageviews", "6000", "--seed", "5", "--tag", "b").stdout)
    assert n == RUNS["a"], (n, RUNS["a"])


def test_sim_truth_follows_the_session():
    pages = ("home", "pdp")
    for p in pages:
        for v in ("returning", "new"):
            APP.weftctl("weights", "set", p, v, "1", "0")
    try:
        n = numbers(sim("--shoppers", "300", "--pageviews", "6000", "--seed", "5", "--tag", "c").stdout)
    finally:
        for p in pages:
            APP.weftctl("weights", "set", p, "returning", "0.4", "0.6")
            APP.weftctl("weights", "set", p, "new", "0.1", "0.9")
    harness.log(f"batch-only weights: expected CTR {n['expected']} vs hybrid {RUNS['a']['expected']}")
    assert n["expected"] < 0.9 * RUNS["a"]["expected"], (n, RUNS["a"])


def test_sim_bad_usage_is_explained():
    r = subprocess.run([prog("weft-sim"), "--dir", APP.dir, "--shoppers", "3"], capture_output=True, text=True)
    assert r.returncode == 2 and "--store" in r.stderr, r.stderr
    r = sim("--shoppers", "3", "--store", os.path.join(T.path, "nowhere"), check=False)
    assert r.returncode == 1 and "weft-gen output" in r.stderr, r.stderr
    r = subprocess.run([prog("weft-sim"), "--dir", os.path.join(T.path, "nowhere"), "--store", STORE.dir,
                        "--shoppers", "3"], capture_output=True, text=True)
    assert r.returncode == 1 and "is weft running" in r.stderr, r.stderr


if __name__ == "__main__":
    try:
        harness.run([test_sim_runs_with_plausible_rates, test_sim_units_add_up, test_sim_same_seed_same_numbers,
                     test_sim_truth_follows_the_session, test_sim_bad_usage_is_explained])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
