#!/usr/bin/python3
"""test_eval_live.py - `weft-eval --live` does not damage a serving appliance.

An appliance serving a snapshot, with a tuned weight and an acknowledged
event: `weft-eval --live DIR` refuses it (exit 1, saying why and what to do)
and changes nothing (generation, weights, events acknowledged). With
`--live-force` it runs, and afterwards the weights are the ones it found
(not weft-eval's defaults) and the generation that served before serves
again. (`--live` on an appliance started for the evaluation is
tests/test_eval.py, suite eval.)
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

T = harness.TestDir("eval-live")
STORE = harness.Store(T.path, users=200, items=400, days=8)
# Serving: a snapshot generation is current (and, below, an event acked).
APP = harness.Appliance(T.path, shards=2, snapshot=STORE.snapshot)


def state():
    a = APP.admin()
    st = a.execute_command("STATS")
    st = dict(zip(st[::2], st[1::2]))
    ing = dict(zip(st["ingest"][::2], st["ingest"][1::2]))
    w = {}
    for m in a.execute_command("WEIGHTS", "GET"):
        m = dict(zip(m[::2], m[1::2]))
        w[(m["page"], m["visitor"])] = (m["batch"], m["session"])
    return st["snapshot_gen"], ing["events_acked"], w


def weft_eval(*extra):
    return subprocess.run([harness.prog("weft-eval"), "--events", STORE.events, "--catalog", STORE.catalog,
                           "--split-days", "2", "--k", "20", "--json", "--quiet", "--live", APP.dir, *extra],
                          capture_output=True, text=True, timeout=600)


def test_live_refuses_a_serving_appliance_and_changes_nothing():
    APP.admin().execute_command("WEIGHTS", "SET", "home", "returning", "0.3", "0.7")
    assert APP.client().execute_command("EVENT", "ev-live-1", "-", "view", STORE.items()[0]["item_id"]) == 1
    before = state()
    r = weft_eval()
    assert r.returncode == 1, r
    assert "is serving" in r.stderr and "--live-force" in r.stderr, r.stderr
    assert state() == before


def test_live_force_puts_back_what_it_found():
    gen, _, w = state()
    r = weft_eval("--live-force")
    assert r.returncode == 0, r.stderr
    assert "journal" in r.stderr, r.stderr
    gen2, _, w2 = state()
    assert w2 == w, (w2, w)
    assert w2[("home", "returning")] == ("0.3", "0.7")
    assert gen2 == gen, (gen2, gen)  # rolled back to the generation that served
    st = APP.admin().execute_command("SNAPSHOT", "STATUS")
    cur = dict(zip(st[st.index("current") + 1][::2], st[st.index("current") + 1][1::2]))
    assert cur["path"] == STORE.snapshot, cur


if __name__ == "__main__":
    try:
        harness.run([test_live_refuses_a_serving_appliance_and_changes_nothing,
                     test_live_force_puts_back_what_it_found])
    finally:
        if APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
