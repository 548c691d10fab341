#!/usr/bin/env python3
"""test_gen.py - weft-gen (tools/gen.c): same seed gives byte-identical
files, another seed different ones; events/catalog/inventory are valid in
the formats of DESIGN.md; and the properties the ranking work relies on
hold: returning users with multi-day history, anonymous visitors, sorted
timestamps with > 30 min gaps between a user's sessions, Zipf-like item
popularity, co-viewed item pairs, ~18 % pivoting sessions, carts pulling
complements, a few % of sessions converting, sold-out sizes and items,
daily seasonality.

usage: test_gen.py PATH/TO/weft-gen
"""
import collections
import filecmp
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile

EVENTS = {"view", "click", "pdp", "hover", "dwell", "scroll", "search", "cart_add", "cart_remove", "purchase"}
COMPLEMENTS = {"jackets": {"scarves", "gloves", "hats"}, "cookware": {"knives", "cutting-boards"},
               "dresses": {"heels", "bags", "sandals"}, "jeans": {"belts", "t-shirts", "sneakers"},
               "sneakers": {"socks", "t-shirts"}, "knives": {"cutting-boards", "cookware"}}
fails = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what)
    if not cond:
        fails.append(what)


def gen(exe, out, seed, *extra):
    subprocess.run([exe, "--out", out, "--users", "800", "--items", "1200", "--days", "10",
                    "--seed", str(seed), "--quiet", *extra], check=True)


def read_csv(path):
    with open(path, newline="") as f:
        lines = f.read().split("\n")
    assert lines[-1] == "", path + " must end with a newline"
    return lines[0], [line.split(",") for line in lines[1:-1]]


def main():
    exe = sys.argv[1]
    tmp = tempfile.mkdtemp(prefix="weft-test-gen.")
    try:
        a, b, c = (os.path.join(tmp, x) for x in "abc")
        gen(exe, a, 7)
        gen(exe, b, 7)
        gen(exe, c, 8)
        for name in ("events.csv", "catalog.csv", "inventory.csv"):
            check(filecmp.cmp(os.path.join(a, name), os.path.join(b, name), shallow=False),
                  f"same seed, identical {name}")
        check(not filecmp.cmp(os.path.join(a, "events.csv"), os.path.join(c, "events.csv"), shallow=False),
              "another seed, other events")
        analyse(a)
    finally:
        shutil.rmtree(tmp)
    if fails:
        print(f"{len(fails)} check(s) failed")
        sys.exit(1)


def analyse(d):
    # ---- catalog ----
    head, cat_rows = read_csv(os.path.join(d, "catalog.csv"))
    check(head == "item_id,category,brand,price,sizes", "catalog header")
    check(all(len(r) == 5 for r in cat_rows), "catalog rows have 5 fields")
    item = {}
    for iid, cat, brand, price, sizes in cat_rows:
        item[iid] = (cat, brand, float(price), sizes.split(";") if sizes else [])
    check(len(item) == 1200 and all(re.fullmatch(r"i\d{6}", i) for i in item), "1200 items with ids i000123")
    check(all(re.fullmatch(r"\d+\.\d\d", r[3]) for r in cat_rows), "prices are decimals")
    cats = {v[0] for v in item.values()}
    brands = {v[1] for v in item.values()}
    check(20 <= len(cats) <= 40, f"20-40 categories ({len(cats)})")
    check(50 <= len(brands) <= 200, f"50-200 brands ({len(brands)})")
    sized = [v for v in item.values() if v[3]]
    check(0.2 < len(sized) / len(item) < 0.8, "apparel and shoes have sizes, others none")
    check(all(v[0] not in ("knives", "mugs", "skincare") for v in sized), "home and beauty items have no sizes")

    # ---- inventory ----
    head, inv = read_csv(os.path.join(d, "inventory.csv"))
    check(head == "item_id,size,qty", "inventory header")
    ok = all(r[0] in item and (r[1] in item[r[0]][3] if item[r[0]][3] else r[1] == "") and int(r[2]) >= 0
             for r in inv)
    check(ok, "inventory rows name catalog items and their sizes")
    per_item = collections.defaultdict(list)
    for iid, _, q in inv:
        per_item[iid].append(int(q))
    zero_rows = sum(1 for r in inv if r[2] == "0") / len(inv)
    all_out = sum(1 for q in per_item.values() if max(q) == 0) / len(per_item)
    partly = sum(1 for q in per_item.values() if 0 == min(q) < max(q))
    check(0.01 < all_out < 0.08, f"a few items sold out in every size ({all_out:.3f})")
    check(partly > 0, f"some items have a sold-out size ({partly})")
    check(zero_rows < 0.2, f"most sizes in stock ({1 - zero_rows:.2f})")

    # ---- events ----
    head, ev = read_csv(os.path.join(d, "events.csv"))
    check(head == "ts,user_id,session_id,event,item_id,value", "events header")
    check(all(len(r) == 6 for r in ev), "event rows have 6 fields")
    ts = [int(r[0]) for r in ev]
    check(all(x <= y for x, y in zip(ts, ts[1:])), "events sorted by ts")
    check(all(r[3] in EVENTS for r in ev), "event types are weft's")
    bad = []
    for r in ev:
        t, v = r[3], r[5]
        if not (r[1] == "" or re.fullmatch(r"u\d{6,}", r[1])) or not re.fullmatch(r"s\d+", r[2]):
            bad.append(r)
        elif t == "search":
            if not v or (r[4] and r[4] not in item):
                bad.append(r)
        elif r[4] not in item:
            bad.append(r)
        elif t == "dwell" and not (v.isdigit() and int(v) > 0):
            bad.append(r)
        elif t == "scroll" and not (v.isdigit() and 0 <= int(v) <= 100):
            bad.append(r)
        elif t in ("cart_add", "purchase") and not (v.isdigit() and int(v) >= 1):
            bad.append(r)
        elif t not in ("dwell", "scroll", "cart_add", "purchase") and v:
            bad.append(r)
    check(not bad, f"ids and values valid ({bad[:3]})")
    counts = collections.Counter(r[3] for r in ev)
    print("     events by type:", dict(counts))

    sess = collections.defaultdict(list)
    for r in ev:
        sess[r[2]].append(r)
    check(all(len({r[1] for r in s}) == 1 for s in sess.values()), "a session belongs to one user (or none)")
    anon = sum(1 for s in sess.values() if s[0][1] == "") / len(sess)
    check(0.1 < anon < 0.8, f"anonymous visitors' sessions exist ({anon:.2f})")

    # Returning users with multi-day history, and idle gaps between sessions.
    user_days = collections.defaultdict(set)
    user_sess = collections.defaultdict(list)
    for sid, s in sess.items():
        if s[0][1]:
            user_days[s[0][1]].add(int(s[0][0]) // 86400000)
            user_sess[s[0][1]].append((int(s[0][0]), int(s[-1][0])))
    multi = sum(1 for d_ in user_days.values() if len(d_) >= 2) / len(user_days)
    check(multi > 0.5, f"most active users come back on another day ({multi:.2f})")
    gaps_ok = all(b[0] - a[1] > 30 * 60000 for ss in user_sess.values()
                  for a, b in zip(sorted(ss), sorted(ss)[1:]))
    check(gaps_ok, "more than 30 idle minutes between a user's sessions")
    intra = sorted(int(b[0]) - int(a[0]) for s in sess.values() for a, b in zip(s, s[1:]))
    med = intra[len(intra) // 2]
    check(500 <= med <= 120000, f"events in a session seconds to minutes apart (median {med} ms)")
    hours = collections.Counter((t // 3600000) % 24 for t in ts)
    check(hours[20] > 4 * hours[3], f"daily seasonality (20h {hours[20]} vs 3h {hours[3]})")

    # Conversion and carts.
    buy = sum(1 for s in sess.values() if any(r[3] == "purchase" for r in s)) / len(sess)
    cart = sum(1 for s in sess.values() if any(r[3] == "cart_add" for r in s)) / len(sess)
    check(0.01 < buy < 0.12, f"a few % of sessions purchase ({buy:.3f})")
    check(buy < cart < 0.4, f"carts happen, more often than purchases ({cart:.3f})")
    check(counts["cart_remove"] > 0, "cart_remove happens")
    check(all(any(r[3] == "cart_add" and r[4] == p[4] and int(r[0]) <= int(p[0]) for r in s)
              for s in sess.values() for p in s if p[3] == "purchase"), "purchases follow a cart_add")

    # Zipf-like popularity: the top 5 % of items take a large share of views.
    views = collections.Counter(r[4] for r in ev if r[3] == "view")
    top = sum(c for _, c in views.most_common(len(item) // 20)) / sum(views.values())
    check(top > 0.2, f"popularity is skewed (top 5 % items: {top:.2f} of views)")

    # Co-viewed pairs: consecutive views repeat far more than when shuffled.
    pairs = []
    for s in sess.values():
        v = [r[4] for r in s if r[3] == "view"]
        pairs += list(zip(v, v[1:]))
    seconds = [p[1] for p in pairs]
    random.Random(1).shuffle(seconds)

    def repeated(ps):
        c = collections.Counter(p for p in ps if p[0] != p[1])
        return sum(n for n in c.values() if n >= 3)
    real, shuf = repeated(pairs), repeated(zip((p[0] for p in pairs), seconds))
    check(real > 2 * max(shuf, 1), f"item-to-item structure (repeated pairs {real} vs shuffled {shuf})")

    # Pivots: in longer sessions the dominant category of the first and the
    # last third differ in a minority (~18 % pivot by design, plus noise).
    long_, piv = 0, 0
    for s in sess.values():
        v = [item[r[4]][0] for r in s if r[3] == "view"]
        if len(v) < 9:
            continue
        k = len(v) // 3
        long_ += 1
        first = collections.Counter(v[:k]).most_common(1)[0][0]
        last = collections.Counter(v[-k:]).most_common(1)[0][0]
        piv += first != last
    frac = piv / max(long_, 1)
    check(0.1 < frac < 0.5, f"some sessions pivot category ({frac:.2f} of {long_} long sessions)")

    # Complements: after a cart_add, complement categories get viewed more
    # than their overall share of views.
    vcat = collections.Counter(item[r[4]][0] for r in ev if r[3] == "view")
    nview = sum(vcat.values())
    share = {c: sum(vcat[x] for x in comp) / nview for c, comp in COMPLEMENTS.items()}
    after, base, n_after = 0, 0.0, 0
    for s in sess.values():
        carted = None
        for r in s:
            if r[3] == "cart_add" and item[r[4]][0] in COMPLEMENTS:
                carted = item[r[4]][0]
            elif r[3] == "view" and carted:
                n_after += 1
                after += item[r[4]][0] in COMPLEMENTS[carted]
                base += share[carted]
    ra, rb = after / max(n_after, 1), base / max(n_after, 1)
    check(n_after > 0 and ra > 2 * rb, f"carts pull complements ({ra:.2f} of views after a cart vs {rb:.2f} base)")

    # Returning users keep their taste: a user's top category covers much of
    # their views across days.
    uviews = collections.defaultdict(collections.Counter)
    for r in ev:
        if r[1] and r[3] == "view":
            uviews[r[1]][item[r[4]][0]] += 1
    heavy = [c for c in uviews.values() if sum(c.values()) >= 30]
    share = sum(c.most_common(1)[0][1] / sum(c.values()) for c in heavy) / max(len(heavy), 1)
    check(heavy and share > 0.3, f"returning users have stable favourite categories (top share {share:.2f})")


if __name__ == "__main__":
    main()
