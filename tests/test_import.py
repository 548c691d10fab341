#!/usr/bin/env python3
"""test_import.py - weft-import (tools/import.c) on the real data sets, read
where they lie under ../shared/data (never copied): taobao and diginetica
outputs are valid weft events/catalog files, sorted by ts, with the counts
the data sets' READMEs state (rows, truncated line and stray timestamps
skipped, users, sessions cut at 30 minutes, items, event mapping). Exits 77
(skipped) when neither data set is present.

usage: test_import.py PATH/TO/weft-import
"""
import collections
import os
import shutil
import subprocess
import sys
import tempfile

fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def data_dir():
    src = os.environ.get("WEFT_SOURCE_ROOT", os.path.join(os.path.dirname(__file__), ".."))
    for d in (os.path.join(src, "..", "shared", "data"), "/work/shared/data"):
        if os.path.isdir(d):
            return d
    return None


def run(exe, fmt, path, out):
    p = subprocess.run([exe, "--format", fmt, "--in", path, "--out", out], capture_output=True, text=True)
    print(p.stderr, end="")
    check(p.returncode == 0, f"weft-import --format {fmt} exits 0")
    with open(os.path.join(out, "events.csv")) as f:
        ev = f.read().split("\n")
    with open(os.path.join(out, "catalog.csv")) as f:
        cat = f.read().split("\n")
    check(ev[0] == "ts,user_id,session_id,event,item_id,value" and ev[-1] == "", f"{fmt}: events header")
    check(cat[0] == "item_id,category,brand,price,sizes" and cat[-1] == "", f"{fmt}: catalog header")
    ev = [line.split(",") for line in ev[1:-1]]
    cat = [line.split(",") for line in cat[1:-1]]
    ts = [int(r[0]) for r in ev]
    check(all(len(r) == 6 for r in ev), f"{fmt}: event rows have 6 fields")
    check(all(a <= b for a, b in zip(ts, ts[1:])), f"{fmt}: sorted by ts")
    items = {r[0] for r in cat}
    check(len(items) == len(cat), f"{fmt}: one catalog row per item")
    check(all(r[4] in items for r in ev), f"{fmt}: every event item is in the catalog")
    return p.stderr, ev, cat


def taobao(exe, d, tmp):
    path = os.path.join(d, "taobao-userbehavior", "UserBehavior.csv")
    if not os.path.exists(path):
        return False
    err, ev, cat = run(exe, "taobao", path, os.path.join(tmp, "taobao"))
    check("rows read 84476, imported 84440, skipped 36" in err, "taobao: 84,476 read, 1 truncated + 35 stray skipped")
    check("skipped 1: wrong number of fields (first at line 84476)" in err, "taobao: truncated last line reported")
    types = collections.Counter(r[3] for r in ev)
    check(len(ev) == 84440, f"taobao: 84,440 events ({len(ev)})")
    check(set(types) == {"view", "click", "cart_add", "purchase"}, f"taobao: mapped types {dict(types)}")
    check(types["cart_add"] == 4497 and types["click"] == 2356 and types["purchase"] == 1750,
          "taobao: cart->cart_add, fav->click, buy->purchase counts")
    lo, hi = 1511539200000, 1512316800000
    check(all(lo <= int(r[0]) < hi for r in ev), "taobao: all rows inside 2017-11-25..2017-12-03 China time")
    users = {r[1] for r in ev}
    check(len(users) == 815, f"taobao: 815 users ({len(users)})")
    # Sessions: a user's events, > 30 min gap starts a new one.
    by_sess = collections.defaultdict(list)
    for r in ev:
        by_sess[r[2]].append(int(r[0]))
    check(all(r[2].startswith(r[1] + "-") for r in ev), "taobao: session ids name their user")
    check(all(b - a <= 1800000 for t in by_sess.values() for a, b in zip(t, t[1:])),
          "taobao: no > 30 min gap inside a session")
    per_user = collections.defaultdict(list)
    for s, t in by_sess.items():
        per_user[s.rsplit("-", 1)[0]].append((t[0], t[-1]))
    check(all(b[0] - a[1] > 1800000 for v in per_user.values() for a, b in zip(sorted(v), sorted(v)[1:])),
          "taobao: > 30 min between a user's sessions")
    check(14000 < len(by_sess) <= 14122, f"taobao: sessions ({len(by_sess)}; README: 14,122 before dropping strays)")
    check(all(r[1] and not r[2] and not r[3] and not r[4] for r in cat), "taobao: catalog item->category only")
    return True


def diginetica(exe, d, tmp):
    path = os.path.join(d, "diginetica-sample", "train-item-views.csv")
    if not os.path.exists(path):
        return False
    err, ev, cat = run(exe, "diginetica", path, os.path.join(tmp, "diginetica"))
    check(len(ev) == 12391 and all(r[3] == "view" for r in ev), "diginetica: 12,391 views")
    check(len({r[2] for r in ev}) == 2986, "diginetica: 2,986 sessions")
    check(len({r[1] for r in ev if r[1]}) == 1270, "diginetica: 1,270 known users, NA -> empty")
    check(any(r[1] == "" for r in ev), "diginetica: anonymous rows kept")
    check(len(cat) == 7139 and all(r[1:] == ["", "", "", ""] for r in cat), "diginetica: 7,139 items, ids only")
    # 2016-01-03 .. 2016-06-01, midnight UTC + timeframe.
    check(min(int(r[0]) for r in ev) >= 1451779200000 and max(int(r[0]) for r in ev) < 1464825600000,
          "diginetica: ts = eventdate midnight UTC + timeframe")
    return True


def main():
    exe = sys.argv[1]
    d = data_dir()
    if not d:
        print("no data sets under ../shared/data: skipped")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="weft-test-import.")
    try:
        ran = [taobao(exe, d, tmp), diginetica(exe, d, tmp)]
    finally:
        shutil.rmtree(tmp)
    if not any(ran):
        print("no data sets found: skipped")
        sys.exit(77)
    if fails:
        print(f"{len(fails)} check(s) failed")
        sys.exit(1)


if __name__ == "__main__":
    main()
