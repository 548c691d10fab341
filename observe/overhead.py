#!/usr/bin/python3
"""overhead.py - what weft-observe's BPF programs cost, and what its
histograms say about an EVENT load (numbers for BENCHMARKS.md).

First the programs' own cost over one RECS run (the kernel's per-program
accounting, kernel.bpf_stats_enabled on for that run only). Then it
alternates appliances with BPF on and off (`weftctl up --no-bpf`), TRIALS
each, same store: redis-benchmark RECS and EVENT throughput per trial,
then the medians and ranges (on/off order alternates per trial). Over
the EVENT runs it reports the p50/p90/p99 of weft-ingest's EVENT ack, of
event-to-visible, of the journal flush (ingest's and BPF's fdatasync), of
the ring wait and (BPF on) of the run-queue wait of each process
(histogram differences summed over the runs), and per EVENT the CPU and
run-queue wait of each process (schedstat) and the rankers' handling
time.

  observe/overhead.py [BUILD_DIR] [TRIALS]   (TRIALS 0: the programs' cost only)
"""
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
if len(sys.argv) > 1:
    os.environ["WEFT_BUILD_ROOT"] = os.path.abspath(sys.argv[1])
import harness  # noqa: E402

TRIALS = int(sys.argv[2]) if len(sys.argv) > 2 else 3
EVENTS = 50000


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


def merge(h, fam):
    rows = [v for (f, _), v in h.items() if f == fam]
    return [(rows[0][i][0], sum(r[i][1] for r in rows)) for i in range(len(rows[0]))] if rows else []


def scalars(text):
    """{(name, labels): value} of the plain samples (no buckets)."""
    out = {}
    for m in re.finditer(r'^(weft_\w+?)(?:\{(.*?)\})? (\S+)$', text, re.M):
        if not m.group(1).endswith("_bucket"):
            out[(m.group(1), m.group(2) or "")] = float(m.group(3))
    return out


def trial(td, store, bpf):
    extra = () if bpf else ("--no-bpf",)
    app = harness.Appliance(td.path, shards=2, snapshot=store.snapshot, extra=extra)
    try:
        users = store.users()
        recs = bench(app.sock, ["-r", "100000", "RECS", "s__rand_int__", users[0], "10"], 100000)
        time.sleep(2.5)  # weft-observe drains every 2 s
        before = app.weftctl("metrics").stdout
        t0 = time.time()
        ev = bench(app.sock, ["-r", "100000", "EVENT", "s__rand_int__", "-", "view",
                              store.items()[0]["item_id"]], EVENTS)
        wall = time.time() - t0
        time.sleep(2.5)
        after = app.weftctl("metrics").stdout
    finally:
        app.stop()
        for name in ("run", "up.log"):
            subprocess.run(["rm", "-rf", os.path.join(td.path, name)])
    return {"recs": recs, "ev": ev, "hb": hists(before), "ha": hists(after), "sb": scalars(before),
            "sa": scalars(after), "wall": wall}


SERIES = (("EVENT ack (ingest: received -> durable :1 sent)", "weft_request_duration_seconds",
           'command="EVENT",path="journal"'),
          ("event-to-visible (all shards)", "weft_event_visible_seconds", None),
          ("journal flush (ingest: write + fdatasync)", "weft_journal_flush_seconds", ""),
          ("journal fdatasync (BPF), weft-ingest", "weft_fsync_seconds", 'process="weft-ingest"'),
          ("ring wait (forwarded -> ranker starts it)", "weft_request_ring_wait_seconds", ""),
          ("run-queue wait (BPF), weft-ingest", "weft_runqueue_wait_seconds", 'process="weft-ingest"'),
          ("run-queue wait (BPF), ranker 0", "weft_runqueue_wait_seconds", 'process="weft-ranker",shard="0"'),
          ("run-queue wait (BPF), ranker 1", "weft_runqueue_wait_seconds", 'process="weft-ranker",shard="1"'),
          ("off-CPU preempted (BPF), weft-ingest", "weft_offcpu_seconds", 'process="weft-ingest",reason="preempted"'))


def summed_diff(trials, fam, lab):
    """The histogram difference (after - before) summed over trials."""
    tot = None
    for t in trials:
        b, a = (merge(t["hb"], fam), merge(t["ha"], fam)) if lab is None else (t["hb"].get((fam, lab)),
                                                                                t["ha"].get((fam, lab)))
        if not a or not b:
            continue
        d = [(le, x - y) for (le, x), (_, y) in zip(a, b)]
        tot = d if tot is None else [(le, x + y) for (le, x), (_, y) in zip(tot, d)]
    return tot


def interp(diff, q):
    """q-quantile of cumulative (le, count) buckets, linear inside the bucket."""
    total = diff[-1][1]
    if total <= 0:
        return float("nan"), 0
    prev_le, prev_c = 0.0, 0.0
    for le, c in diff:
        if c >= q * total:
            if le == float("inf"):
                return prev_le, total
            return prev_le + (le - prev_le) * (q * total - prev_c) / max(c - prev_c, 1e-9), total
        prev_le, prev_c = le, c
    return float("inf"), total


def per_event(t, name, lab):
    return t["sa"].get((name, lab), 0) - t["sb"].get((name, lab), 0)


def spread(xs):
    return f"median {statistics.median(xs):.0f}/s (min {min(xs):.0f}, max {max(xs):.0f}, n={len(xs)})"


BPFTOOL = next((p for p in ("/usr/sbin/bpftool", "/usr/bin/bpftool") if os.access(p, os.X_OK)), None)
STATS = "/proc/sys/kernel/bpf_stats_enabled"


def wf_progs():
    """{id: (name, run_time_ns, run_cnt)} of every weft BPF program loaded (any appliance's)."""
    import json
    out = subprocess.run([BPFTOOL, "prog", "show", "--json"], capture_output=True, text=True).stdout
    return {p["id"]: (p["name"], p.get("run_time_ns", 0), p.get("run_cnt", 0))
            for p in json.loads(out or "[]") if p.get("name", "").startswith("wf_")}


def bpf_cost(td, store):
    """What the programs themselves cost during a RECS run: the kernel's own
    per-program accounting (kernel.bpf_stats_enabled, on for the run only),
    for this appliance's weft-observe and for every weft program loaded
    (other appliances' on a shared box run on the same context switches)."""
    if not BPFTOOL or not os.access(STATS, os.W_OK):
        print("BPF cost: not measured (needs bpftool and root)")
        return
    before = set(wf_progs())
    app = harness.Appliance(td.path, shards=2, snapshot=store.snapshot)
    old = open(STATS).read().strip()
    try:
        deadline = time.time() + 20
        while time.time() < deadline and not (set(wf_progs()) - before):
            time.sleep(0.2)
        ours = set(wf_progs()) - before
        with open(STATS, "w") as f:
            f.write("1")
        s0, t0 = wf_progs(), time.time()
        users = store.users()
        recs = bench(app.sock, ["-r", "100000", "RECS", "s__rand_int__", users[0], "10"], 100000)
        s1, wall = wf_progs(), time.time() - t0
    finally:
        with open(STATS, "w") as f:
            f.write(old)
        app.stop()
        for name in ("run", "up.log"):
            subprocess.run(["rm", "-rf", os.path.join(td.path, name)])
    for label, ids in (("this appliance's weft-observe", ours), ("every weft program loaded", set(s1) & set(s0))):
        ns = sum(s1[i][1] - s0[i][1] for i in ids)
        cnt = sum(s1[i][2] - s0[i][2] for i in ids)
        print(f"BPF cost, {label} ({len(ids)} programs): {cnt} runs, {ns / max(cnt, 1):.0f} ns a run, "
              f"{ns / 1e6:.1f} ms CPU over a {wall:.2f} s RECS run at {recs:.0f}/s = {ns / 1e9 / wall / 2 * 100:.2f} % "
              f"of the 2 CPUs, {ns / 100000:.0f} ns per RECS")
        for i in sorted(ids):
            n, c = s1[i][1] - s0[i][1], s1[i][2] - s0[i][2]
            if label.startswith("this"):
                print(f"  {s1[i][0]}: {c} runs, {n / max(c, 1):.0f} ns a run")


def main():
    td = harness.TestDir("overhead")
    try:
        store = harness.Store(td.path)
        bpf_cost(td, store)
        res = {True: [], False: []}
        for t in range(TRIALS):
            for bpf in ((True, False) if t % 2 == 0 else (False, True)):
                r = trial(td, store, bpf)
                res[bpf].append(r)
                print(f"trial {t} bpf={'on' if bpf else 'off'}: RECS {r['recs']:.0f}/s EVENT {r['ev']:.0f}/s "
                      f"(load {os.getloadavg()[0]:.1f})", flush=True)
        if not TRIALS:
            return
        for bpf in (True, False):
            print(f"bpf {'on ' if bpf else 'off'}: RECS {spread([x['recs'] for x in res[bpf]])}; "
                  f"EVENT {spread([x['ev'] for x in res[bpf]])}")
        on = res[True]
        allt = res[True] + res[False]
        print(f"EVENT runs ({EVENTS} EVENTs each, redis-benchmark -c 16 -P 4): histogram differences summed "
              f"over the runs, interpolated inside power-of-two buckets")
        for name, fam, lab in SERIES:
            d = summed_diff(on if "BPF" in name else allt, fam, lab)
            if not d:
                print(f"  {name}: not measured")
                continue
            p50, n = interp(d, 0.50)
            if not n:
                print(f"  {name}: no samples in these runs")
                continue
            p90, _ = interp(d, 0.90)
            p99, _ = interp(d, 0.99)
            # Per run: the p99 of each run, median and range (a bad run
            # cannot rule the summed tail alone).
            runs = []
            for t in (on if "BPF" in name else allt):
                dt = summed_diff([t], fam, lab)
                if dt and dt[-1][1] > 0:
                    runs.append(interp(dt, 0.99)[0] * 1e6)
            mean = ""
            if fam == "weft_request_duration_seconds" or lab == "":
                cnt = sum(per_event(t, fam + "_count", lab) for t in allt)
                mean = f" mean {sum(per_event(t, fam + '_sum', lab) for t in allt) / max(cnt, 1) * 1e6:.0f}us"
            print(f"  {name}: n={n:.0f}{mean} p50 {p50 * 1e6:.0f}us p90 {p90 * 1e6:.0f}us p99 {p99 * 1e6:.0f}us; "
                  f"per-run p99 median {statistics.median(runs):.0f}us (min {min(runs):.0f}, max {max(runs):.0f})")
        # Per BPF-on run: does the event-to-visible tail follow the ack,
        # the flush or a ranker's run-queue wait?
        print("  per run (BPF on), p99 in us: visible / EVENT ack / flush (ingest) / runq ingest / "
              "runq ranker 0 / runq ranker 1; runq max bucket ranker 0 / 1")
        for t in on:
            row = []
            for fam, lab in (("weft_event_visible_seconds", None),
                             ("weft_request_duration_seconds", 'command="EVENT",path="journal"'),
                             ("weft_journal_flush_seconds", ""),
                             ("weft_runqueue_wait_seconds", 'process="weft-ingest"'),
                             ("weft_runqueue_wait_seconds", 'process="weft-ranker",shard="0"'),
                             ("weft_runqueue_wait_seconds", 'process="weft-ranker",shard="1"')):
                d = summed_diff([t], fam, lab)
                row.append(f"{interp(d, 0.99)[0] * 1e6:.0f}" if d and d[-1][1] > 0 else "-")
            mx = []
            for sh in ("0", "1"):
                d = summed_diff([t], "weft_runqueue_wait_seconds", f'process="weft-ranker",shard="{sh}"')
                top = [le for (le, c), (_, pc) in zip(d, [(0, 0)] + d[:-1]) if c > pc] if d else []
                mx.append(f"{top[-1] * 1e6:.0f}" if top else "-")
            print(f"    EVENT {t['ev']:.0f}/s: " + " / ".join(row) + "; " + " / ".join(mx))
        # Work and waiting per EVENT, over the EVENT runs: CPU (schedstat),
        # run-queue wait (schedstat), the ranker's handling time.
        for t in allt:
            t["n"] = sum(per_event(t, "weft_requests_total", f'command="EVENT",shard="{i}"') for i in range(2))
        for lab, what in (('process="weft-ingest"', "weft-ingest"), ('process="weft-ranker",shard="0"', "ranker 0"),
                          ('process="weft-ranker",shard="1"', "ranker 1")):
            cpu = [per_event(t, "weft_schedstat_cpu_seconds_total", lab) / t["n"] * 1e6 for t in allt if t["n"]]
            rq = [per_event(t, "weft_schedstat_runqueue_wait_seconds_total", lab) / t["n"] * 1e6 for t in allt
                  if t["n"]]
            print(f"  {what}: CPU {statistics.median(cpu):.2f} us/event (min {min(cpu):.2f}, max {max(cpu):.2f}), "
                  f"run-queue wait {statistics.median(rq):.2f} us/event (min {min(rq):.2f}, max {max(rq):.2f})")
        busy = [sum(per_event(t, "weft_ranker_busy_seconds_total", f'shard="{i}"') for i in range(2)) / t["n"] * 1e6
                for t in allt if t["n"]]
        print(f"  rankers handling (busy_ns): {statistics.median(busy):.2f} us/event")
        fl = [per_event(t, "weft_journal_flush_seconds_count", "") for t in allt]
        print(f"  journal flushes per run: median {statistics.median(fl):.0f} "
              f"({EVENTS / max(statistics.median(fl), 1):.1f} events each); EVENT run wall "
              f"{statistics.median(t['wall'] for t in allt):.2f} s")
    finally:
        td.cleanup()


if __name__ == "__main__":
    main()
