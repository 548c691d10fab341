#!/usr/bin/python3
"""test_load.py - bench/weft-load drives a real appliance and a real Redis.

weft-load (bench/load.c) replays weft-gen's sessions as page views: the
events since the last page and the page's own, then RECS (weft) or XADD
+ LRANGE (redis-server), in one round trip per page view. Here it runs
for a few seconds against an appliance from the harness and a private
redis-server loaded with the same snapshot's lists (weft-snapdump), and
the test checks behaviour only, never a time: exit 0, no bad reply, no
empty RECS or LRANGE for a returning user, the CSV's counts add up (one
RECS per page view, returning + anonymous = page views, events per page
view as sent), weft applied and Redis stored exactly the events sent,
a count bound stops each target at exactly that many page views, and the
CSV and the plot's data are written.
"""
import csv
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import BUILD, Appliance, Store, TestDir  # noqa: E402


def bench_prog(name):
    p = os.path.join(BUILD, "bench", name)
    if not os.access(p, os.X_OK):
        raise FileNotFoundError(f"{p} not built")
    return p


if not shutil.which("redis-server") or not shutil.which("redis-cli"):
    harness.log("skip: redis-server or redis-cli not installed")
    sys.exit(77)

T = TestDir("load")
STORE = Store(T.path, users=300, items=600, days=10)
APP = Appliance(T.path, shards=2, snapshot=STORE.snapshot)
RDIR = os.path.join(T.path, "redis")
os.makedirs(RDIR)
RSOCK = os.path.join(RDIR, "redis.sock")
REDIS = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", RSOCK, "--dir", RDIR, "--save", "",
                          "--appendonly", "no", "--daemonize", "no"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def redis_cli(*args, inp=None):
    return subprocess.run(["redis-cli", "-s", RSOCK, *args], input=inp, capture_output=True, check=True).stdout


def start_redis():
    for _ in range(200):
        if os.path.exists(RSOCK):
            break
        time.sleep(0.05)
    lists = subprocess.run([bench_prog("weft-snapdump"), STORE.snapshot, "--max", "20"], capture_output=True,
                           check=True).stdout
    out = subprocess.run(["redis-cli", "-s", RSOCK, "--pipe"], input=lists, capture_output=True, text=False).stdout
    assert b"errors: 0" in out, out


def load(*args, targets=None):
    """weft-load (against both unless targets says otherwise); returns
    (exit code, stdout, stderr, CSV rows)."""
    path = os.path.join(T.path, "load.csv")
    if os.path.exists(path):
        os.remove(path)
    targets = targets or ["--weft", APP.sock, "--redis", RSOCK]
    r = subprocess.run([bench_prog("weft-load"), "--events", STORE.events, *targets, "--csv", path, *args],
                       capture_output=True, text=True, timeout=300)
    harness.log(r.stdout + r.stderr)
    rows = list(csv.DictReader(open(path))) if os.path.exists(path) else []
    return r.returncode, r.stdout, r.stderr, rows


def by(rows, target, op, rnd="1"):
    m = [x for x in rows if x["target"] == target and x["op"] == op and x["round"] == rnd]
    assert len(m) == 1, f"{target} {op} round {rnd}: {len(m)} rows"
    return m[0]


def applied_events():
    return sum(sh["events"] for sh in __import__("json").loads(APP.weftctl("--json", "stats").stdout)["shards"])


def check_counts(rows, target, event_op, recs_op, rnd="1"):
    pv, ev, rc = by(rows, target, "pageview", rnd), by(rows, target, event_op, rnd), by(rows, target, recs_op, rnd)
    n = int(pv["count"])
    assert n > 0, f"{target}: no page views"
    assert int(pv["pageview_errors"]) == 0 and int(ev["bad"]) == 0 and int(rc["bad"]) == 0, pv
    assert int(pv["lost"]) == 0, f"{target}: replies never came: {pv}"
    assert int(pv["empty_known"]) == 0, f"{target}: an empty list for a returning user: {pv}"
    assert int(rc["count"]) == n, f"{target}: {rc['count']} {recs_op} for {n} page views"
    assert int(pv["known"]) + int(pv["anon"]) == n, pv
    assert int(pv["known"]) > 0 and int(pv["anon"]) > 0, f"{target}: not both kinds of visitor: {pv}"
    assert n <= int(ev["count"]) <= 32 * n, f"{target}: {ev['count']} events for {n} page views"
    assert int(pv["sessions"]) > 0, pv
    return n, int(ev["count"])


def test_load_duration_both_targets_no_errors():
    events_before = applied_events()
    code, out, err, rows = load("-c", "4", "-P", "2", "-d", "2", "--warmup", "0", "--sessions", "400",
                                "--plot", os.path.join(T.path, "load.png"))
    assert code == 0, f"weft-load exit {code}"
    assert "PAGEVIEW pageview ratio" in out, out
    assert len(rows) == 6, rows
    _, weft_events = check_counts(rows, "weft", "EVENT", "RECS")
    _, xadds = check_counts(rows, "redis", "XADD", "LRANGE")
    # Redis kept exactly the XADDs answered (the stream was empty before).
    assert int(redis_cli("XLEN", "events")) == xadds
    # weft's rankers applied exactly the EVENTs acknowledged (applying
    # follows the ack; poll, never a time bound on the assertion itself).
    for _ in range(300):
        if applied_events() - events_before == weft_events:
            break
        time.sleep(0.1)
    assert applied_events() - events_before == weft_events, (applied_events(), events_before, weft_events)
    assert os.path.getsize(os.path.join(T.path, "load.png.dat")) > 0


def test_load_count_bound_stops_each_target_exactly():
    code, out, err, rows = load("-c", "3", "-P", "3", "-n", "300", "-d", "120", "--warmup", "0", "--rounds", "2",
                                "--sessions", "400", "--label", "counted")
    assert code == 0, f"weft-load exit {code}"
    assert len(rows) == 12, rows
    for rnd in ("1", "2"):
        for target, e, r in (("weft", "EVENT", "RECS"), ("redis", "XADD", "LRANGE")):
            n, _ = check_counts(rows, target, e, r, rnd)
            assert n == 300, f"{target} round {rnd}: {n} page views, wanted 300"
            assert by(rows, target, "pageview", rnd)["label"] == "counted"
    assert sum(int(x["median"]) for x in rows if x["op"] == "pageview") == 2  # one round, both targets


def test_load_rate_paces_the_page_views():
    # --rate: 200 page views a second over 1.5 s among 6 shoppers; no
    # more may go out than were due (each shopper's first is due in the
    # first interval), and every one is answered without error. (A slow
    # box sends fewer, never more: no time is asserted.)
    code, out, err, rows = load("-c", "3", "-P", "2", "-d", "1.5", "--warmup", "0", "--rate", "200",
                                "--sessions", "400")
    assert code == 0, f"weft-load exit {code}"
    for target, e, r in (("weft", "EVENT", "RECS"), ("redis", "XADD", "LRANGE")):
        n, _ = check_counts(rows, target, e, r)
        assert n <= 200 * 1.5 + 6, f"{target}: {n} page views at --rate 200 over 1.5 s"
    # Unpaced, the same shoppers send far more than 300 in 1.5 s
    # (hundreds a second each on any box that runs this suite): the
    # bound above is a test of the pacing, not of a slow box.
    code, out, err, rows = load("-c", "3", "-P", "2", "-d", "1.5", "--warmup", "0", "--sessions", "400",
                                targets=["--redis", RSOCK])
    assert code == 0, f"weft-load exit {code}"
    n, _ = check_counts(rows, "redis", "XADD", "LRANGE")
    assert n > 2 * 306, f"unpaced: only {n} page views in 1.5 s; the paced bound above proves nothing"


def test_load_bad_replies_are_errors():
    # Lists under keys that do not exist: every returning user's LRANGE is
    # empty, an error; an anonymous visitor's popular list is still there.
    code, out, err, rows = load("-c", "2", "-n", "200", "-d", "60", "--warmup", "0", "--sessions", "400",
                                "--key-prefix", "nosuch:", targets=["--redis", RSOCK])
    assert code == 1, f"weft-load exit {code}, wanted 1"
    pv = by(rows, "redis", "pageview")
    assert int(pv["known"]) > 0 and int(pv["pageview_errors"]) == int(pv["known"]) == int(pv["empty_known"]), pv
    assert "no items for a known user" in err, err
    # A server that answers -ERR to EVENT (Redis has no such command).
    code, out, err, rows = load("-c", "2", "-n", "50", "-d", "60", "--warmup", "0", "--sessions", "400",
                                targets=["--weft", RSOCK])
    assert code == 1, f"weft-load exit {code}, wanted 1"
    pv = by(rows, "weft", "pageview")
    assert int(pv["pageview_errors"]) == int(pv["count"]) == 50, pv
    assert "bad EVENT reply: -ERR" in err, err


try:
    start_redis()
    harness.run([test_load_duration_both_targets_no_errors, test_load_count_bound_stops_each_target_exactly,
                 test_load_rate_paces_the_page_views, test_load_bad_replies_are_errors])
finally:
    REDIS.terminate()
    REDIS.wait()
    APP.stop()
    T.cleanup()
