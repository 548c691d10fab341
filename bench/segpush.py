#!/usr/bin/python3
"""bench/segpush.py - segment pushes: event-to-push latency and timer lateness.

A generated store and its snapshot, `weftctl up`, 20 segments defined (18
over views, clicks, pdps and searches, so every event of the load is
evaluated against several; `probe` = did(cart_add, 1h), entered on the
event itself; `timer` = did(cart_add, 1h) and idle(2s) and not
did(purchase, 1h), entered by the session's timer). redis-benchmark sends
EVENTs (views on --sessions random sessions) as background load while a probe
sends one cart_add on a new session every --every ms; a subscriber on
both channels takes the time each push arrives.

  event-to-push: the probe's send of EVENT -> its `probe` enter received
  timer lateness: its `timer` enter received - (the send + 2 s)

Both on this box's monotonic clock, the probe and the subscriber in this
process. Prints SEGPUSH lines (p50, p99, max, count) and the EVENT rate
of the load. A measurement, never a pass/fail.

  bench/segpush.py [--build build] [--work DIR] [--seconds 20] [--every 20]
                   [--clients 8] [--pipeline 16] [--sessions 20000] [--durability fsync|os]

Each probe's figures go to WORK/segpush.csv (t_s, push_ms, late_ms), for a
look over time; INFO segments at the end on stderr.
"""
import argparse
import json
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchlib import ROOT, Weft, prog, say  # noqa: E402

NOISE = [
    "count(view, 10m) >= 3", "count(view, 10m) >= 10", "count(view, 1h) >= 30", "did(view, 30s)",
    "count(pdp, 10m) >= 2", "count(pdp, 30m) >= 5", "did(pdp, 1m) and not did(cart_add, 1h)",
    "count(click, 10m) >= 3", "did(search, 10m)", "count(view, 5m) >= 5 and not did(pdp, 5m)",
    "did(view, 1h) and idle(5m)", "count(any, 10m) >= 20", "did(pdp, 10m) and idle(1m)",
    "count(view, 2m) >= 4", "visitor = new and count(view, 10m) >= 2", "did(view, 10m) or did(pdp, 10m)",
    "count(pdp, 1h) >= 10 and did(view, 1m)", "not did(purchase, 1h) and count(view, 30m) >= 8",
]


def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(p / 100 * len(v)))] if v else float("nan")


class Subscriber(threading.Thread):
    """SUBSCRIBE probe timer on a raw socket; arrival times by session."""

    def __init__(self, sock):
        super().__init__(daemon=True)
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.connect(sock)
        self.s.sendall(b"SUBSCRIBE probe timer\r\n")
        self.got = {"probe": {}, "timer": {}}
        self.buf = b""

    def run(self):
        while True:
            b = self.s.recv(1 << 16)
            if not b:
                return
            now = time.monotonic()
            self.buf += b
            while b"}\r\n" in self.buf:
                line, self.buf = self.buf.split(b"}\r\n", 1)
                j = json.loads(line[line.index(b"{"):] + b"}")
                if j["event"] == "enter":
                    self.got[j["segment"]].setdefault(j["session"], now)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--work", default=os.path.join(ROOT, "bench", "out", "segpush"))
    ap.add_argument("--seconds", type=float, default=20)
    ap.add_argument("--every", type=float, default=20, help="ms between probes")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--pipeline", type=int, default=16)
    ap.add_argument("--durability", default="fsync")
    ap.add_argument("--sessions", type=int, default=20000, help="the load's sessions (redis-benchmark -r)")
    ap.add_argument("--preview-sessions", type=int, default=0,
                    help="then time SEGMENT PREVIEW over this many more live sessions (0: not)")
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    store = os.path.join(a.work, "store")
    snap = os.path.join(a.work, "store.snap")
    if not os.path.exists(snap):
        say("segpush: a store and its snapshot")
        subprocess.run([prog(a.build, "weft-gen"), "--out", store, "--users", "2000", "--items", "3000", "--days",
                        "7", "--seed", "5", "--quiet"], check=True)
        subprocess.run([prog(a.build, "weft-batch"), "build", "--events", os.path.join(store, "events.csv"),
                        "--catalog", os.path.join(store, "catalog.csv"), "--out", snap, "--quiet"], check=True)
    cat_lines = open(os.path.join(store, "catalog.csv")).readlines()
    item = cat_lines[1].split(",")[0]
    head = cat_lines[0].strip().split(",")
    category = cat_lines[1].split(",")[head.index("category")] if "category" in head else None
    w = Weft(a.build, a.work, snap, 2, extra=("--durability", a.durability, "--sessions", "262144"))
    try:
        for d in json.loads(w.ctl("--json", "segment", "list", check=True)):
            w.ctl("segment", "drop", d["name"], check=True)  # the built-in ones: exactly 20 below
        for i, rule in enumerate(NOISE):
            w.ctl("segment", "define", f"noise{i}", rule, check=True)
        w.ctl("segment", "define", "probe", "did(cart_add, 1h)", check=True)
        w.ctl("segment", "define", "timer", "did(cart_add, 1h) and idle(2s) and not did(purchase, 1h)", check=True)
        n_defs = len(json.loads(w.ctl("--json", "segment", "list", check=True)))
        say(f"segpush: {n_defs} segments defined")
        sub = Subscriber(w.sock)
        sub.start()
        time.sleep(0.5)
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        probe.connect(w.sock)
        acked0 = info_acked(w.sock)
        load = subprocess.Popen(["redis-benchmark", "-s", w.sock, "-c", str(a.clients), "-P", str(a.pipeline),
                                 "-n", "100000000", "-r", str(a.sessions), "EVENT", "load__rand_int__", "-", "view",
                                 item], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        sent = {}
        t_end = time.monotonic() + a.seconds
        k = 0
        t_load0 = time.monotonic()
        while time.monotonic() < t_end:
            s = f"probe{k}"
            cmd = f"EVENT {s} - cart_add {item}\r\n".encode()
            sent[s] = time.monotonic()
            probe.sendall(cmd)
            if probe.recv(64) != b":1\r\n":
                sys.exit("segpush: EVENT refused")
            k += 1
            time.sleep(a.every / 1000)
        load_s = time.monotonic() - t_load0
        acked1 = info_acked(w.sock)
        time.sleep(3.5)  # the last timers
        load.terminate()
        load.wait()
        push = [(sub.got["probe"][s] - t) * 1e3 for s, t in sent.items() if s in sub.got["probe"]]
        late = [(sub.got["timer"][s] - t - 2.0) * 1e3 for s, t in sent.items() if s in sub.got["timer"]]
        rate = (acked1 - acked0) / load_s
        print(f"SEGPUSH segments={n_defs} durability={a.durability} load_events_per_s={rate:.0f} probes={len(sent)}")
        print(f"SEGPUSH event_to_push_ms p50={pct(push, 50):.2f} p99={pct(push, 99):.2f} max={max(push):.2f} "
              f"n={len(push)}")
        print(f"SEGPUSH timer_lateness_ms p50={pct(late, 50):.1f} p99={pct(late, 99):.1f} max={max(late):.1f} "
              f"n={len(late)}")
        with open(os.path.join(a.work, "segpush.csv"), "w") as f:  # per probe, for a look over time
            f.write("t_s,push_ms,late_ms\n")
            t0 = min(sent.values())
            for s, t in sorted(sent.items(), key=lambda x: x[1]):
                p_ms = (sub.got["probe"][s] - t) * 1e3 if s in sub.got["probe"] else ""
                l_ms = (sub.got["timer"][s] - t - 2.0) * 1e3 if s in sub.got["timer"] else ""
                f.write(f"{t - t0:.3f},{p_ms},{l_ms}\n")
        info = subprocess.run(["redis-cli", "-s", w.sock, "INFO", "segments"], capture_output=True, text=True).stdout
        say(info.strip())
        missing = len(sent) - len(push), len(sent) - len(late)
        if missing != (0, 0):
            print(f"SEGPUSH missing probe={missing[0]} timer={missing[1]}")
        if a.preview_sessions:
            preview(w, a, item, category)
    finally:
        w.stop()


def preview(w, a, item, category):
    """SEGMENT PREVIEW through weft-admin (admin.sock -> weft.sock SEGPREVIEW
    -> every ranker) with --preview-sessions live sessions of 3 pdps each,
    for each rule of the Issue 16 preview table (the category one on the
    probe item's category)."""
    n = a.preview_sessions
    say(f"segpush: {n} sessions of 3 pdp events for the preview")
    subprocess.run(["redis-benchmark", "-s", w.sock, "-c", "8", "-P", "32", "-n", str(3 * n), "-r", str(n),
                    "EVENT", "pv__rand_int__", "-", "pdp", item], stdout=subprocess.DEVNULL, check=True)
    adm = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    adm.connect(os.path.join(w.dir, "admin.sock"))
    rules = ["count(pdp, 10m) >= 3"]
    if category:
        rules.append(f"count(pdp, category={category}, 10m) >= 3")
    rules += ["did(cart_add, 1h) and idle(2s)", "lifecycle = at_risk", "lifecycle = vip and ltv >= 400"]
    for rule in rules:
        preview_rule(adm, n, rule.encode())


def preview_rule(adm, n, rule):
    """11 SEGMENT PREVIEWs of rule: p50 and max of the round trip."""
    cmd = b"*3\r\n$7\r\nSEGMENT\r\n$7\r\nPREVIEW\r\n$%d\r\n%s\r\n" % (len(rule), rule)
    times, matched = [], None
    for _ in range(11):
        t0 = time.monotonic()
        adm.sendall(cmd)
        buf = b""
        while True:  # the map: 13 lines, then 9 a sample (a map of session, user)
            buf += adm.recv(1 << 16)
            if buf.startswith(b"-"):
                sys.exit(f"segpush: preview refused: {buf!r}")
            lines = buf.split(b"\r\n")
            if len(lines) > 13 and len(lines) - 1 >= 13 + 9 * int(lines[12][1:]):
                break
        times.append((time.monotonic() - t0) * 1e3)
        matched = int(lines[3][1:])
    print(f"SEGPUSH preview sessions={n} matched={matched} ms p50={pct(times, 50):.1f} max={max(times):.1f} "
          f"rule={rule.decode()!r} (SEGMENT PREVIEW on admin.sock, 11 runs)")


def info_acked(sock):
    """INFO's events_acked (one bulk reply read whole)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock)
    s.sendall(b"INFO stats\r\n")
    buf = b""
    while b"\r\n" not in buf or len(buf) < buf.index(b"\r\n") + 2 + int(buf[1:buf.index(b"\r\n")]) + 2:
        buf += s.recv(1 << 16)
    s.close()
    for line in buf.decode().split("\r\n"):
        if line.startswith("events_acked:"):
            return int(line.split(":")[1])
    return 0


if __name__ == "__main__":
    main()
