#!/usr/bin/python3
"""test_experiments.py - A/B experiments through the real appliance (issue 17).

weftctl experiment create/start/stop/list/status/report against `weftctl up`
on a generated store: bad definitions get clear errors; a stale-vs-live
experiment on the home page serves each unit its arm (a stale arm from the
previous snapshot generation, after a reload); every RECS of a unit in an
arm is an exposure (a repeated RECS too: nothing is answered from ingest's
front table behind the experiment's back); clicks, carts and purchases on
shown items are attributed; the report (table and JSON) is the same after
kill -9 of weft-admin, each ranker and weft-ingest, and the same units keep
their arms; a stopped experiment exposes nothing more.

Exposures reach the journal through weft-ingest's notes (issue 16's
ingest side): without them the report has no exposures and the test is
skipped (77) with that reason.
"""
import json
import os
import random
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, SkipTest, Store, TestDir  # noqa: E402

T = TestDir("exp")
STORE = Store(T.path)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot)
USERS = STORE.users()[:120]
ITEMS = [r["item_id"] for r in STORE.items()]


def ctl(*args, check=True):
    return APP.weftctl(*args, check=check)


def report():
    return json.loads(ctl("experiment", "report", "sl", "--json").stdout)


def test_bad_input_gets_clear_errors():
    r = ctl("experiment", "create", "bad", "--arm", "a=50:fresh", check=False)
    assert r.returncode == 1 and "unknown policy 'fresh'" in r.stderr, r.stderr
    r = ctl("experiment", "create", "bad", "--arm", "a=60:live", "--arm", "b=50:batch", check=False)
    assert r.returncode == 1 and "over 100" in r.stderr, r.stderr
    r = ctl("experiment", "report", "nope", check=False)
    assert r.returncode == 1 and "no experiment named 'nope'" in r.stderr, r.stderr
    r = ctl("experiment", "status", "nope", check=False)
    assert r.returncode == 1 and "no experiment named 'nope'" in r.stderr, r.stderr
    r = ctl("experiment", "create", "x", "--arm", "a=50:live", "--pages", "home,moon", check=False)
    assert r.returncode == 1 and "unknown page 'moon'" in r.stderr, r.stderr


def shop(c, rounds, seed):
    """Each user: a RECS on home, a click on a shown item, sometimes a
    cart_add and a purchase (with value) of it."""
    rnd = random.Random(seed)
    for u in USERS:
        sid = f"{u}-visit-{seed}"
        c.execute_command("EVENT", sid, u, "view", rnd.choice(ITEMS))
        for _ in range(rounds):
            shown = c.execute_command("RECS", sid, u, 6)
            assert shown, (u, shown)
            pick = rnd.choice(shown)
            c.execute_command("EVENT", sid, u, "click", pick)
            if rnd.random() < 0.3:
                c.execute_command("EVENT", sid, u, "cart_add", pick)
                if rnd.random() < 0.5:
                    c.execute_command("EVENT", sid, u, "purchase", pick, "value", "19.90")


def ready_again(old):
    """Every process of the appliance runs under a new pid where old named
    one, and serves."""
    deadline = time.time() + 30
    while time.time() < deadline:
        now = {k: APP.pids(k) for k in old}
        if all(now[k] and now[k] != old[k] for k in old):
            try:
                c = APP.client(socket_timeout=2.0)
                if c.execute_command("PING") and ctl("status", check=False).returncode == 0:
                    return
            except Exception:  # noqa: BLE001 - still coming back
                pass
        time.sleep(0.3)
    APP.dump_log()
    raise AssertionError(f"not back after kill -9: {old}")


def arms_units(rep):
    return {a: v["units"] for a, v in rep["arms"].items()}


def test_stale_vs_live_exposed_attributed_and_survives_kill9():
    # a second generation, so the stale arm has yesterday's list to serve
    ctl("snapshot", "load", STORE.snapshot)
    ctl("experiment", "create", "sl", "--arm", "control=50:stale", "--arm", "treat=50:live",
        "--pages", "home", "--window", "30m")
    r = ctl("experiment", "create", "ov", "--arm", "a=10:live", "--pages", "home,pdp")
    r = ctl("experiment", "start", "sl")
    r = ctl("experiment", "start", "ov", check=False)
    assert r.returncode == 1 and "overlaps running experiment 'sl'" in r.stderr, r.stderr
    r = ctl("experiment", "start", "sl", check=False)
    assert r.returncode == 1 and "starts once" in r.stderr, r.stderr
    st = json.loads(ctl("--json", "experiment", "status", "sl").stdout)
    assert st["state"] == "running" and [a["policy"] for a in st["arms"]] == ["stale", "live"], st
    assert "sl" in ctl("experiment", "list").stdout

    c = APP.client(socket_timeout=5.0)
    shop(c, 3, seed=1)
    rep = report()
    if rep["journal"]["exposures"] == 0:
        raise SkipTest("no exposure in the journal: this weft-ingest does not journal the rankers' "
                       "notes yet (issue 16's ingest side)")
    assert rep["journal"]["exposures"] == 3 * len(USERS), rep["journal"]
    units = arms_units(rep)
    assert sum(units.values()) == len(USERS) and min(units.values()) > 20, units
    assert rep["arms"]["treat"]["ctr"] > 0 and rep["arms"]["control"]["ctr"] > 0, rep["arms"]
    text = ctl("experiment", "report", "sl").stdout
    assert "control" in text and "treat" in text, text

    # a repeated RECS (what ingest's front table would answer) is exposed too
    before = rep["journal"]["exposures"]
    u = USERS[0]
    for _ in range(3):
        c.execute_command("RECS", "front-probe", u, 6)
    assert report()["journal"]["exposures"] == before + 3

    before = report()
    for name in ("weft-admin", "weft-ranker .*--shard 0", "weft-ranker .*--shard 1", "weft-ingest"):
        pids = APP.pids(name)
        assert len(pids) == 1, (name, pids)
        os.kill(pids[0], signal.SIGKILL)
        ready_again({name: pids})
        after = report()
        assert after["arms"] == before["arms"], (name, after["arms"], before["arms"])
        assert after["comparisons"] == before["comparisons"], name
        assert after["srm_p"] == before["srm_p"], name

    # the same units, the same arms, after every restart
    shop(APP.client(socket_timeout=5.0), 1, seed=1)
    again = report()
    assert arms_units(again) == arms_units(before), (arms_units(again), arms_units(before))
    assert again["journal"]["exposures"] == before["journal"]["exposures"] + len(USERS)

    ctl("experiment", "stop", "sl")
    n = report()["journal"]["exposures"]
    shop(APP.client(socket_timeout=5.0), 1, seed=2)
    assert report()["journal"]["exposures"] == n
    ctl("experiment", "start", "ov")  # no longer overlapping a running one


if __name__ == "__main__":
    # Not harness.run(): a skip of the second test (no notes journaled)
    # must not hide a failure of the first, which needs no notes.
    failed, skipped = 0, None
    try:
        for t in (test_bad_input_gets_clear_errors, test_stale_vs_live_exposed_attributed_and_survives_kill9):
            try:
                t()
                harness.log(f"ok   {t.__name__}")
            except SkipTest as e:
                skipped = f"skip {t.__name__}: {e}"
                harness.log(skipped)
            except Exception:  # noqa: BLE001 - report every failure
                import traceback
                traceback.print_exc()
                harness.log(f"FAIL {t.__name__}")
                failed += 1
    finally:
        APP.stop()
        T.cleanup()
    sys.exit(1 if failed else 77 if skipped else 0)
