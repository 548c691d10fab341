#!/usr/bin/python3
"""overhead.py - what weft-observe's BPF programs cost, and what its
histograms say about an EVENT load (numbers for BENCHMARKS.md).

Alternates appliances with BPF on and off (`weftctl up --no-bpf`), TRIALS
each, same store: redis-benchmark RECS and EVENT throughput per trial,
then the medians. With BPF on it also reports, over the EVENT run, the
p50/p99 of event-to-visible, of the run-queue wait of weft-ingest and the
rankers, and of weft-ingest's journal fdatasync (histogram differences).

  observe/overhead.py [BUILD_DIR] [TRIALS]
"""
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
if len(sys.argv) > 1:
    os.environ["WEFT_BUILD_ROOT"] = os.path.abspath(sys.argv[1])
import harness  # noqa: E402

TRIALS = int(sys.argv[2]) if len(sys.argv) > 2 else 3


def bench(sock, args, n):
    out = subprocess.run(["redis-benchmark", "-s", sock, "-n", str(n), "-c", "16", "-P", "4", "--csv"] + args,
                         capture_output=True, text=True, timeout=600, check=True).stdout
    return float(out.strip().splitlines()[-1].split(",")[1].strip('"'))


def hists(text):
    """{(family, labels): [(le, cumulative count)]}"""
    out = {}
    for m in re.finditer(r'^(weft_\w+)_bucket\{(.*?),?le="([^"]+)"\} (\S+)$', text, re.M):
        out.setdefault((m.group(1), m.group(2)), []).append((float(m.group(3)), float(m.group(4))))
    return out


def quantile(before, after, q):
    diff = [(le, a - b) for (le, a), (_, b) in zip(after, before)]
    total = diff[-1][1]
    if total <= 0:
        return float("nan"), 0
    for le, c in diff:
        if c >= q * total:
            return le, total
    return float("inf"), total


def merge(h, fam):
    rows = [v for (f, _), v in h.items() if f == fam]
    return [(rows[0][i][0], sum(r[i][1] for r in rows)) for i in range(len(rows[0]))] if rows else []


def trial(td, store, bpf):
    extra = () if bpf else ("--no-bpf",)
    app = harness.Appliance(td.path, shards=2, snapshot=store.snapshot, extra=extra)
    try:
        users = store.users()
        recs = bench(app.sock, ["-r", "100000", "RECS", "s__rand_int__", users[0], "10"], 100000)
        before = app.weftctl("metrics").stdout
        ev = bench(app.sock, ["-r", "100000", "EVENT", "s__rand_int__", "-", "view",
                              store.items()[0]["item_id"]], 50000)
        import time
        time.sleep(2.5)  # weft-observe drains every 2 s
        after = app.weftctl("metrics").stdout
    finally:
        app.stop()
        for name in ("run", "up.log"):
            subprocess.run(["rm", "-rf", os.path.join(td.path, name)])
    return recs, ev, hists(before), hists(after)


def main():
    td = harness.TestDir("overhead")
    try:
        store = harness.Store(td.path)
        res = {True: [], False: []}
        for t in range(TRIALS):
            for bpf in (True, False):
                r = trial(td, store, bpf)
                res[bpf].append(r)
                print(f"trial {t} bpf={'on' if bpf else 'off'}: RECS {r[0]:.0f}/s EVENT {r[1]:.0f}/s", flush=True)
        for bpf in (True, False):
            print(f"bpf {'on ' if bpf else 'off'}: RECS median {statistics.median(x[0] for x in res[bpf]):.0f}/s, "
                  f"EVENT median {statistics.median(x[1] for x in res[bpf]):.0f}/s")
        _, _, hb, ha = res[True][-1]
        for name, fam, lab in (("event-to-visible (all shards)", "weft_event_visible_seconds", None),
                               ("run-queue wait, weft-ingest", "weft_runqueue_wait_seconds",
                                'process="weft-ingest"'),
                               ("run-queue wait, ranker 0", "weft_runqueue_wait_seconds",
                                'process="weft-ranker",shard="0"'),
                               ("run-queue wait, ranker 1", "weft_runqueue_wait_seconds",
                                'process="weft-ranker",shard="1"'),
                               ("journal fdatasync, weft-ingest", "weft_fsync_seconds", 'process="weft-ingest"')):
            b, a = (merge(hb, fam), merge(ha, fam)) if lab is None else (hb.get((fam, lab)), ha.get((fam, lab)))
            if not a or not b:
                print(f"{name}: not measured")
                continue
            p50, n = quantile(b, a, 0.50)
            p99, _ = quantile(b, a, 0.99)
            print(f"{name}: n={n:.0f} p50<={p50 * 1e6:.0f}us p99<={p99 * 1e6:.0f}us (last EVENT run, bpf on)")
    finally:
        td.cleanup()


if __name__ == "__main__":
    main()
