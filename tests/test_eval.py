#!/usr/bin/python3
"""test_eval.py - weft-eval end to end on a small generated store.

A weft-gen store (400 users, 600 items, 10 days), then weft-eval --json
with the weights tuned on the 2 days before the 2 test days. Checks: the
JSON object has the documented shape (k, events, test_sessions, weft's four
variants and the baselines sknn / ar / sr, overall and in every slice:
returning / new, repeat / novel, first / later, pivot; 0 <= mrr <= hr <= 1,
predictions and hits counted, each pair of slices adding up to all); the
ordering the generator's model implies:
hybrid >= batch and >= session overall (HR@20 and MRR@20), hybrid > batch
for returning shoppers, session > batch for new visitors, every variant >
popularity; 1 replay thread gives exactly what 2 and 3 give; and --live
through a running appliance (`weftctl up`, tests/integration/harness.py)
gives the in-process numbers exactly (weft-eval exits 1 when they differ),
also on a log whose test session clicks only items the snapshot never had
(live items, found at the repeat curve's place).

Then small hand-made logs where each baseline's answer is known (--k 4, one
prediction, so MRR@4 is 1 / (rank + 1)): sr follows order and weights by
1 / gap, ar counts pairs in both directions, sknn weighs the most recent
item of the session most and does not filter the items already viewed.
"""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "integration"))
import harness  # noqa: E402
from harness import Appliance, TestDir, prog  # noqa: E402

VARIANTS = ("popularity", "batch", "session", "hybrid", "sknn", "ar", "sr")
SLICES = ("returning", "new", "repeat", "novel", "first", "later", "pivot")
PAIRS = (("returning", "new"), ("repeat", "novel"), ("first", "later"))
T = TestDir("eval")
STORE = os.path.join(T.path, "store")
subprocess.run([prog("weft-gen"), "--out", STORE, "--users", "400", "--items", "600", "--days", "10",
                "--seed", "7", "--quiet"], check=True)
EVENTS = os.path.join(STORE, "events.csv")
CATALOG = os.path.join(STORE, "catalog.csv")
SPEED = ("replay_events_per_sec", "replay_events_per_cpu_sec", "replay_threads", "baseline_train_secs",
         "baseline_replay_secs", "baseline_events_per_cpu_sec")


WEFT_EVAL = prog("weft-eval")


def weft_eval(*extra, events=EVENTS, base=("--catalog", CATALOG, "--split-days", "2", "--valid-days", "2",
                                           "--k", "20")):
    r = subprocess.run([WEFT_EVAL, "--events", events, *base, "--json", "--quiet", *extra],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        raise AssertionError(f"weft-eval {' '.join(extra)} exited {r.returncode}: {r.stderr[-2000:]}")
    return json.loads(r.stdout)


def results(d):
    """The object without the speed figures (which vary run to run)."""
    return {k: v for k, v in d.items() if k not in SPEED}


def check_metrics(m, where):
    assert set(m) >= {"hr", "mrr", "predictions", "hits"}, f"{where}: {m}"
    assert 0.0 <= m["mrr"] <= m["hr"] <= 1.0, f"{where}: {m}"
    assert isinstance(m["predictions"], int) and m["predictions"] >= 0, f"{where}: {m}"
    assert isinstance(m["hits"], int) and 0 <= m["hits"] <= m["predictions"], f"{where}: {m}"
    if m["predictions"]:
        assert abs(m["hr"] - m["hits"] / m["predictions"]) < 1e-9, f"{where}: {m}"


# Under the sanitizers each full replay takes a minute and a half: the
# base run itself uses 3 threads there (the multi-threaded replay under
# ASan/UBSan), and the plain build checks that 1 and 3 give what it gives.
SANITIZED = bool(os.environ.get("WEFT_SANITIZED"))
BASE = weft_eval("--threads", "3") if SANITIZED else weft_eval()


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
    # Each pair of slices splits every prediction (and every hit), for
    # every variant; a generated store has both sides of each pair.
    for v in VARIANTS:
        for a, b in PAIRS:
            x, y = d["slices"][a][v], d["slices"][b][v]
            assert x["predictions"] > 0 and y["predictions"] > 0, (a, b, v)
            assert x["predictions"] + y["predictions"] == preds, (a, b, v)
            assert x["hits"] + y["hits"] == d["variants"][v]["hits"], (a, b, v)
    assert d["slices"]["first"]["hybrid"]["predictions"] <= d["test_sessions"]
    # the item just looked at is one the session has seen
    assert 0 <= d["predictions_next_is_last_item"] <= d["slices"]["repeat"]["hybrid"]["predictions"]
    assert set(d["baselines"]) == {"sknn", "ar", "sr"}
    for side in ("returning", "new"):
        w = d["weights"][side]
        assert len(w) == 2 and abs(w[0] + w[1] - 1) < 1e-3


def test_variant_ordering():
    """Hybrid >= batch and >= session. The blend is chosen by MRR on the
    validation days, so on the test days MRR must hold strictly; HR is a
    by-product of that choice, and on this 400-user store one hit is
    0.02 %: HR may trail session by at most 0.1 % of the predictions (the
    generator's store differs between gcc and clang builds, and on the
    clang one hybrid has 3,851 hits to session's 3,852). EVAL.md's
    5,000-user store shows the strict order on both measures."""
    v, s = BASE["variants"], BASE["slices"]
    slack = {"hr": 0.001, "mrr": 0.0}
    for m in ("hr", "mrr"):
        assert v["hybrid"][m] >= v["batch"][m], (m, v)
        assert v["hybrid"][m] >= v["session"][m] - slack[m], (m, v)
        for x in ("batch", "session", "hybrid"):
            assert v[x][m] > v["popularity"][m], (m, x, v)
        assert s["returning"]["hybrid"][m] > s["returning"]["batch"][m], (m, s["returning"])
        assert s["new"]["session"][m] > s["new"]["batch"][m], (m, s["new"])


def test_baselines_answer():
    """The baselines learn from the same events and beat popularity here."""
    v = BASE["variants"]
    for x in ("sknn", "ar", "sr"):
        assert v[x]["hits"] > 0 and v[x]["mrr"] > v["popularity"]["mrr"], (x, v[x])


def test_threads_give_identical_results():
    # Under the sanitizers BASE ran on 3 threads and test_live_agrees...
    # compares a default-threads run with it.
    for t in () if SANITIZED else ("1", "3"):
        assert results(weft_eval("--threads", t)) == results(BASE), f"--threads {t}"


def test_live_agrees_with_in_process():
    live_log = live_items_log()
    live_base = ("--split-days", "1", "--k", "4")
    in_process = weft_eval(events=live_log, base=live_base)
    # Under the sanitizers the full store's replay through the appliance
    # (a minute and a half there) runs on a smaller generated store: the
    # same replay, live and in process, the same checks, with the
    # 3-thread in-process run as BASE on it.
    events, base, want = EVENTS, None, BASE
    if SANITIZED:
        small = os.path.join(T.path, "small")
        subprocess.run([prog("weft-gen"), "--out", small, "--users", "100", "--items", "300", "--days", "10",
                        "--seed", "7", "--quiet"], check=True)
        events = os.path.join(small, "events.csv")
        base = ("--catalog", os.path.join(small, "catalog.csv"), "--split-days", "2", "--valid-days", "2",
                "--k", "20")
        want = weft_eval("--threads", "3", events=events, base=base)
        assert want["variants"]["session"]["hits"] > 0, want["variants"]["session"]
    app = Appliance(T.path, shards=2)
    try:
        # exits 1 when live and in-process differ
        d = weft_eval("--live", app.dir, events=events, **({"base": base} if base else {}))
        # the same appliance again: it now serves the first run's snapshot
        dl = weft_eval("--live", app.dir, "--live-force", events=live_log, base=live_base)
    finally:
        rc = app.stop()
    assert rc == 0, f"weftctl up exited {rc}"
    assert results({k: v for k, v in d.items() if k != "live"}) == results(want)
    for v in ("session", "hybrid"):
        assert d["live"][v] == d["variants"][v], (v, d["live"][v], d["variants"][v])
    # items the snapshot never had come back as live items, the same
    # through the appliance (by id) as in process (by code)
    assert results({k: v for k, v in dl.items() if k != "live"}) == results(in_process)
    assert in_process["variants"]["session"]["hits"] >= 2, in_process["variants"]["session"]
    for v in ("session", "hybrid"):
        assert dl["live"][v] == dl["variants"][v], (v, dl["live"][v], dl["variants"][v])


DAY = 86400000


def live_items_log():
    """Training days where the next click often returns to the item two
    back (a b a), so the learned repeat curve is > 0 there; a test session
    of items the snapshot never had: after n1 x the next click n1, after
    n1 n2 the next n1, each a live item at the curve's place."""
    return hand_log("live", [["a", "b", "a"]] * 6 + [["c", "d"]] * 3, [["n1", "x", "n1", "n2", "n1"]])


def hand_log(name, train, test):
    """An events CSV: the train sessions on day 0 (an hour apart), the test
    sessions two days later; anonymous views, 10 s apart."""
    path = os.path.join(T.path, name + ".csv")
    t0 = 1700000000000
    with open(path, "w") as f:
        f.write("ts,user_id,session_id,event,item_id,value\n")
        for day, sessions in ((0, train), (2, test)):
            for n, items in enumerate(sessions):
                for i, it in enumerate(items):
                    f.write(f"{t0 + day * DAY + n * 3600000 + i * 10000},,{name}-{day}-{n},view,{it},\n")
    return path


def ranks(path):
    """Per baseline, the rank of the one later prediction's target (MRR@4
    is 1 / (rank + 1); None: not in the top 4)."""
    d = weft_eval(events=path, base=("--split-days", "1", "--k", "4"))
    out = {}
    for x in ("sknn", "ar", "sr"):
        m = d["slices"]["later"][x] if d["slices"]["later"][x]["predictions"] else d["variants"][x]
        assert m["predictions"] == 1, (x, m)
        out[x] = round(1 / m["mrr"]) - 1 if m["mrr"] else None
    return out


def test_rules_follow_order():
    """a is followed by c three times and preceded by b five times: after
    a, sr says c first; ar counts both directions (b 5, c 3); sknn scores
    a itself highest (every neighbour holds it: no filtering), then b, c."""
    r = ranks(hand_log("order", [["b", "a"]] * 5 + [["a", "c"]] * 3, [["a", "c"]]))
    assert r == {"sr": 0, "ar": 1, "sknn": 2}, r


def test_sr_weighs_by_gap():
    """a x c four times, a d three times: sr's a->x 4, a->d 3, a->c 4 x 1/2;
    ar: x 4, c 4, d 3; sknn: a 7, x 4, c 4, d 3."""
    r = ranks(hand_log("gap", [["a", "x", "c"]] * 4 + [["a", "d"]] * 3, [["a", "d"]]))
    assert r == {"sr": 1, "ar": 2, "sknn": 3}, r


def test_sknn_weighs_recent_items_most():
    """Session p a, next r. Neighbours: p q (3 times, similarity 1/2 each),
    a r (twice, 1), a (once, 1): a 3, r 2, p 1.5, q 1.5. With equal
    weights q (3) would come before r (2)."""
    r = ranks(hand_log("decay", [["p", "q"]] * 3 + [["a", "r"]] * 2 + [["a"]], [["p", "a", "r"]]))
    assert r["sknn"] == 1, r
    assert r["sr"] == 0 and r["ar"] == 0, r


if __name__ == "__main__":
    try:
        harness.run([test_json_shape, test_variant_ordering, test_baselines_answer,
                     test_threads_give_identical_results, test_rules_follow_order, test_sr_weighs_by_gap,
                     test_sknn_weighs_recent_items_most, test_live_agrees_with_in_process])
    finally:
        T.cleanup()
