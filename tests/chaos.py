#!/usr/bin/python3
"""chaos.py - keep every promise under attack (issue 15's chaos soak).

    tests/chaos.py [--seconds S] [--clients N] [--seed X]

Starts its own appliance the way tests/integration/harness.py does (a
weft-gen store, two weft-batch snapshots of it, `weftctl up` with a memory
budget and client timeouts) and, for S seconds (default 600, at most 600),
runs mixed EVENT/RECS/STOCK load from N client threads (each EVENT names a
unique item, every `:1` recorded) while a driver at random intervals:
kill -9s a ranker or weft-ingest (weftctl up restarts them), SIGSTOPs a
ranker for up to 1.5 s, fills the journal disk and frees it (a tmpfs mounted
on the journal directory when root may mount; skipped and said otherwise),
loads the second snapshot and rolls back, floods new sessions, and opens
idle and half-request connections. Then it stops by itself and checks:

  * every acked event is in its session's HISTORY exactly once, and no
    event (acked or not: an unacked one may be stored, but once) twice:
    each session right after its last EVENT (on the same connection),
    every session again at the end, evicted ones included (the budget
    evicts in a run of several minutes: an evicted session comes back
    whole from the spill store, rankers/README.md); only when the spill
    store's disk budget dropped sessions are missing events shown, not
    counted (duplicates still are);
  * no RECS answer was empty for a known user (non-empty under both
    snapshots at the start); errors during a restart are counted, allowed;
  * every process is back (`weftctl status`: ingest ready, 2/2 rankers,
    the snapshot loaded by 2/2);
  * each ranker's sessions plus snapshot stayed within --memory-budget
    (STATS, sampled throughout).

Prints the figures; exits 1 on a violation, 77 when io_uring or the
appliance cannot start here. Runs under the sanitized build as the other
integration tests do (WEFT_BUILD_ROOT).
"""
import argparse
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "integration"))
import harness  # noqa: E402
from harness import Appliance, Store, TestDir, log, prog  # noqa: E402

import redis  # noqa: E402

BUDGET = 16 << 20          # per ranker (--memory-budget): a ten-minute run reaches it
SESSION_EVENTS = 12        # events per tracked session: short, never folded
FLOOD = 2000               # new sessions per flood
PAUSE = 0.003              # between one client's requests: a ten-minute journal fits the tmpfs


class Figures:
    def __init__(self):
        self.lock = threading.Lock()
        self.c = {}
        self.violations = []

    def add(self, key, n=1):
        with self.lock:
            self.c[key] = self.c.get(key, 0) + n

    def bad(self, what):
        with self.lock:
            self.violations.append(what)
            if len(self.violations) <= 20:
                log(f"VIOLATION: {what}")


def client(app):
    # No retry: a resent EVENT would be the client's own duplicate.
    return app.client(socket_timeout=5.0, socket_connect_timeout=5.0)


class Worker(threading.Thread):
    """One client: EVENT (60 %), RECS (30 %), STOCK (10 %) until stopped."""

    def __init__(self, w, app, users, items, stop, fig, seed):
        super().__init__(daemon=True)
        self.w, self.app, self.users, self.items = w, app, users, items
        self.stop, self.fig, self.rnd = stop, fig, random.Random(seed)
        self.acked = {}       # session -> [item] acked with :1
        self.sent = {}        # session -> [item] sent (acked or not)
        self.n = 0

    def run(self):
        c = client(self.app)
        sess, user, left = None, None, 0
        while not self.stop.is_set():
            if left == 0:
                if sess is not None:
                    c = self.check(c, sess)
                sess = f"c{self.w}s{self.n}"
                user = self.rnd.choice(self.users)
                left = SESSION_EVENTS
                self.acked[sess], self.sent[sess] = [], []
            op = self.rnd.random()
            time.sleep(PAUSE)
            try:
                if op < 0.6:
                    item = f"e{self.w}_{self.n}"
                    self.n += 1
                    left -= 1
                    self.sent[sess].append(item)
                    r = c.execute_command("EVENT", sess, user, "view", item)
                    if r == 1:
                        self.acked[sess].append(item)
                        self.fig.add("events_acked")
                    else:
                        self.fig.add("events_odd_reply")
                elif op < 0.9:
                    r = c.execute_command("RECS", sess, user, 10)
                    self.fig.add("recs")
                    if not r:
                        self.fig.add("recs_empty")
                        self.fig.bad(f"empty RECS for known user {user} (session {sess}) at "
                                     f"{time.strftime('%H:%M:%S')}")
                else:
                    c.execute_command("STOCK", self.rnd.choice(self.items), self.rnd.randint(1, 9))
                    self.fig.add("stock")
            except redis.ResponseError as e:
                self.fig.add("errors_event" if op < 0.6 else "errors_recs" if op < 0.9 else "errors_stock")
                self.fig.add("err:" + str(e)[:48])
            except (redis.ConnectionError, redis.TimeoutError, OSError):
                self.fig.add("reconnects")
                c.close()
                time.sleep(0.05)
                c = client(self.app)
        c.close()

    def check(self, c, sess):
        """A finished session's HISTORY at once, on the same connection
        (ordered after its EVENTs): before any later eviction could
        forget it. A broken connection skips the check (counted)."""
        try:
            got, _ = history_items(c, sess)
        except (redis.ConnectionError, redis.TimeoutError, OSError, redis.ResponseError):
            self.fig.add("live_checks_skipped")
            c.close()
            return client(self.app)
        self.fig.add("live_checks")
        for it in self.acked[sess]:
            if got.count(it) != 1:
                self.fig.bad(f"acked event {it} is {got.count(it)} times in HISTORY {sess} right after "
                             f"the session (has {got})")
        return c


class Driver:
    def __init__(self, app, snap_a, snap_b, jdir, mounted, stop, fig, rnd):
        self.app, self.snap_a, self.snap_b = app, snap_a, snap_b
        self.jdir, self.mounted, self.stop, self.fig, self.rnd = jdir, mounted, stop, fig, rnd
        self.mem_max = {}
        self.flood_n = 0
        self.acked, self.sent = {}, {}   # the disk filler's big EVENTs, checked as the clients' are
        self.spill_last = {}
        self.big = []
        for f in range(29):
            self.big += [f"f{f}", "x" * 1000]

    def sample_memory(self):
        try:
            st = self.app.admin().execute_command("STATS")
        except redis.RedisError:
            return
        shards = dict(zip(st[::2], st[1::2]))["shards"]
        for sh in shards:
            d = dict(zip(sh[::2], sh[1::2]))
            used = int(d["session_bytes"]) + int(d["snapshot_bytes"])
            k = int(d["shard"])
            self.mem_max[k] = max(self.mem_max.get(k, 0), used)
            if int(d["memory_budget"]) != BUDGET:
                self.fig.bad(f"shard {k} memory_budget {d['memory_budget']} != {BUDGET}")
            if used > BUDGET:
                self.fig.bad(f"shard {k} uses {used} bytes > budget {BUDGET}")
            self.fig.c["sessions_evicted"] = max(self.fig.c.get("sessions_evicted", 0),
                                                 int(d["sessions_evicted"]))
            # Sessions the spill store had to drop (its disk budget): the
            # only ones that come back without their events. The counter
            # restarts with its ranker: summed over what each sample adds.
            sd, last = int(d.get("spill_dropped", 0)), self.spill_last.get(k, 0)
            self.fig.c["spill_dropped"] = self.fig.c.get("spill_dropped", 0) + (sd - last if sd >= last else sd)
            self.spill_last[k] = sd

    def kill(self, name):
        pids = self.app.pids(name)
        if pids:
            os.kill(self.rnd.choice(pids), signal.SIGKILL)
            self.fig.add(f"kill9_{name}")

    def sigstop(self):
        pids = self.app.pids("weft-ranker")
        if not pids:
            return
        pid = self.rnd.choice(pids)
        try:
            os.kill(pid, signal.SIGSTOP)
            time.sleep(self.rnd.uniform(0.2, 1.5))
        finally:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.fig.add("sigstop_ranker")

    def fill_disk(self):
        if not self.mounted:
            self.fig.add("fill_disk_skipped")
            return
        filler = os.path.join(self.jdir, "filler")
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            for chunk in (b"\0" * (1 << 20), b"\0" * 4096):
                try:
                    while True:
                        os.write(fd, chunk)
                except OSError:
                    pass
            self.exhaust()
            end = time.time() + self.rnd.uniform(0.5, 2.5)
            while time.time() < end:  # a refusal gives back its segment's cut tail: take it again
                try:
                    os.write(fd, b"\0" * 4096)
                except OSError:
                    time.sleep(0.05)
        finally:
            os.close(fd)
            os.unlink(filler)
        self.fig.add("disk_filled_freed")

    def exhaust(self):
        """fsync mode writes 4 MiB of zeros ahead of the journal's data:
        30 KB EVENTs use them up until one is refused, so the clients'
        EVENTs meet the full disk too."""
        k = len(self.sent)
        try:
            c = client(self.app)
            for i in range(400):
                # One session each: a session's history holds 128 KiB.
                sess = item = f"df{k + i}"
                self.acked[sess], self.sent[sess] = [], [item]
                try:
                    r = c.execute_command("EVENT", sess, "-", "view", item, *self.big)
                except redis.ResponseError:
                    self.fig.add("disk_full_refusals")
                    break
                if r == 1:
                    self.acked[sess].append(item)
            c.close()
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self.fig.add("reconnects")

    def swap(self):
        r = self.app.weftctl("snapshot", "load", self.snap_b, check=False)
        self.fig.add("snapshot_load" if r.returncode == 0 else "snapshot_load_refused")
        time.sleep(self.rnd.uniform(0.2, 1.0))
        r = self.app.weftctl("snapshot", "rollback", check=False)
        self.fig.add("snapshot_rollback" if r.returncode == 0 else "snapshot_rollback_refused")

    def flood(self):
        try:
            c = client(self.app)
            p = c.pipeline(transaction=False)
            for _ in range(FLOOD):
                p.execute_command("EVENT", f"fl{self.flood_n}", "-", "view", "flood")
                self.flood_n += 1
            p.execute(raise_on_error=False)
            c.close()
            self.fig.add("flood_sessions", FLOOD)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            self.fig.add("flood_broken")

    def idle(self):
        socks = []
        for i in range(100):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                s.connect(self.app.sock)
                if i % 2:
                    s.sendall(b"*4\r\n$4\r\nRECS\r\n$2\r\nid")
                socks.append(s)
            except OSError:
                s.close()
        self.fig.add("idle_conns", len(socks))
        time.sleep(self.rnd.uniform(0.5, 2.0))
        for s in socks:
            s.close()

    def run(self):
        acts = [lambda: self.kill("weft-ranker"), lambda: self.kill("weft-ingest"), self.sigstop,
                self.fill_disk, self.swap, self.flood, self.idle]
        while not self.stop.is_set():
            self.sample_memory()
            self.stop.wait(self.rnd.uniform(0.5, 3.0))
            if self.stop.is_set():
                break
            self.rnd.choice(acts)()
        self.sample_memory()


def wait_back(app, timeout=90):
    deadline = time.time() + timeout
    st = ""
    while time.time() < deadline:
        st = app.weftctl("status", check=False).stdout
        if ("ingest   ready" in st and "rankers  2/2 ready" in st and "loaded by 2/2" in st):
            return True, st
        time.sleep(0.5)
    return False, st


def history_items(c, sess):
    h = c.execute_command("HISTORY", sess)
    folded = 0
    if h and h[0] and h[0][0] == "folded":
        folded = int(h[0][1])
        h = h[1:]
    return [e[2] for e in h], folded


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args()
    secs = min(max(a.seconds, 1), 600)
    seed = a.seed if a.seed is not None else random.randrange(1 << 30)
    log(f"chaos: {secs:.0f} s, {a.clients} clients, seed {seed}")
    rnd = random.Random(seed)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    T = TestDir("chaos")
    app, mounted, jdir = None, False, None
    try:
        store = Store(T.path, users=200, items=400, days=4)
        snap_a, snap_b = os.path.join(T.path, "a.snap"), os.path.join(T.path, "b.snap")
        for path, n in ((snap_a, 20), (snap_b, 200)):
            subprocess.run([prog("weft-batch"), "build", "--events", store.events, "--catalog", store.catalog,
                            "--out", path, "--candidates", str(n), "--quiet"], check=True)
        # Room for the whole run's journal (~0.4 MiB/s with the filler's
        # big EVENTs), filled to ENOSPC on purpose now and then.
        tmpfs = f"{max(64, int(16 + 0.4 * secs))}m"
        jdir = os.path.join(T.path, "run", "journal")
        os.makedirs(jdir)
        mounted = (os.geteuid() == 0 and not os.environ.get("WEFT_TEST_NO_MOUNT") and subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={tmpfs}", "tmpfs", jdir],
            capture_output=True).returncode == 0)
        log(f"journal: {'a ' + tmpfs + ' tmpfs, filled and freed' if mounted else 'no tmpfs (cannot mount): the disk-full action is skipped'}")
        try:
            app = Appliance(T.path, shards=2, snapshot=snap_a,
                            extra=["--memory-budget", str(BUDGET), "--idle-timeout", "5",
                                   "--request-timeout", "2"])
        except RuntimeError as e:
            print(f"skip: appliance did not start: {e}")
            return 77

        # Known users: non-empty answers under both snapshots.
        c = client(app)
        users = store.users()
        a_ok = {u for u in users if c.execute_command("RECS", "-", u, 10)}
        app.weftctl("snapshot", "load", snap_b)
        b_ok = {u for u in users if c.execute_command("RECS", "-", u, 10)}
        app.weftctl("snapshot", "rollback")
        known = sorted(a_ok & b_ok)
        c.close()
        if not known:
            log("no user has recommendations under both snapshots")
            return 1
        items = [r["item_id"] for r in store.items()]
        log(f"{len(known)} known users of {len(users)}, {len(items)} items")

        fig, stop = Figures(), threading.Event()
        workers = [Worker(w, app, known, items, stop, fig, rnd.randrange(1 << 30)) for w in range(a.clients)]
        driver = Driver(app, snap_a, snap_b, jdir, mounted, stop, fig, random.Random(rnd.randrange(1 << 30)))
        dt = threading.Thread(target=driver.run, daemon=True)
        t0 = time.time()
        for w in workers:
            w.start()
        dt.start()
        stop.wait(secs)
        stop.set()
        dt.join(60)
        for w in workers:
            w.join(30)
        for pid in app.pids("weft-ranker") + app.pids("weft-ingest"):  # never leave one stopped
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        log(f"load stopped after {time.time() - t0:.0f} s; waiting for every process")

        back, st = wait_back(app)
        if not back:
            fig.bad(f"not every process is back:\n{st}")
        # The rollbacks leave A serving.
        snap = app.weftctl("snapshot", "status", check=False).stdout
        if "a.snap" not in snap.split("current:")[-1].split("previous")[0]:
            fig.bad(f"snapshot A is not the one serving after the last rollback:\n{snap}")

        # Every acked event in HISTORY exactly once; no event twice.
        driver.sample_memory()

        def f_dropped():
            return fig.c.get("spill_dropped", 0) > 0
        c = client(app)
        sessions = missing = dup = stored_unacked = folded_total = 0
        for w in workers + [driver]:
            for sess, sent in w.sent.items():
                sessions += 1
                got, folded = None, 0
                for _ in range(20):
                    try:
                        got, folded = history_items(c, sess)
                        break
                    except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                        c.close()
                        time.sleep(0.5)
                        c = client(app)
                if got is None:
                    fig.bad(f"HISTORY {sess} never answered")
                    continue
                folded_total += folded
                counts = {}
                for it in got:
                    counts[it] = counts.get(it, 0) + 1
                for it, n in counts.items():
                    if n > 1:
                        dup += 1
                        fig.bad(f"event {it} is {n} times in HISTORY {sess}")
                acked = set(w.acked[sess])
                for it in acked:
                    if it not in counts:
                        missing += 1
                        if not f_dropped():  # an evicted session comes back whole unless its spill record was dropped
                            fig.bad(f"acked event {it} missing from HISTORY {sess} (has {got}, folded {folded})")
                stored_unacked += sum(1 for it in counts if it not in acked and it in sent)
        c.close()
        driver.sample_memory()

        # No process died but by the driver's kill -9; no sanitizer report.
        app.logf.flush()
        with open(app.logf.name, errors="replace") as lf:
            crashes = [ln.strip() for ln in lf if ("exited with code" in ln or "AddressSanitizer" in ln
                       or "runtime error:" in ln or ("killed by signal" in ln and "signal 9 " not in ln))]
        for ln in crashes[:5]:
            fig.bad(f"weftctl up log: {ln}")

        f = fig.c
        print(f"chaos soak: {time.time() - t0:.0f} s, seed {seed}, {a.clients} clients, "
              f"journal {'tmpfs ' + tmpfs if mounted else 'not mounted (disk-full skipped)'}")
        print(f"  load: {f.get('events_acked', 0)} events acked, {f.get('recs', 0)} RECS, "
              f"{f.get('stock', 0)} STOCK; errors: EVENT {f.get('errors_event', 0)}, "
              f"RECS {f.get('errors_recs', 0)}, STOCK {f.get('errors_stock', 0)}; "
              f"{f.get('reconnects', 0)} reconnects")
        for k in sorted(k for k in f if k.startswith("err:")):
            print(f"    {f[k]:6d} x {k[4:]}")
        acts = ["kill9_weft-ranker", "kill9_weft-ingest", "sigstop_ranker", "disk_filled_freed", "disk_full_refusals",
                "fill_disk_skipped", "snapshot_load", "snapshot_load_refused", "snapshot_rollback",
                "snapshot_rollback_refused", "flood_sessions", "flood_broken", "idle_conns"]
        print("  chaos: " + ", ".join(f"{k} {f[k]}" for k in acts if k in f))
        print(f"  history right after each session: {f.get('live_checks', 0)} sessions checked "
              f"({f.get('live_checks_skipped', 0)} skipped: connection broken)")
        print(f"  history at the end: {sessions} sessions checked, {missing} acked events missing"
              f"{' (the spill store dropped sessions: not counted)' if f_dropped() and missing else ''}, "
              f"{dup} events stored twice, {stored_unacked} unacked events stored (once), "
              f"{folded_total} folded")
        print(f"  RECS empty for a known user: {f.get('recs_empty', 0)}")
        print(f"  processes back: {'yes' if back else 'NO'}; other deaths or sanitizer reports: {len(crashes)}")
        print("  memory (sessions + snapshot, max sampled) per shard: " + ", ".join(
            f"shard {k} {v / 1048576:.1f} MiB" for k, v in sorted(driver.mem_max.items())) +
            f" of a {BUDGET >> 20} MiB budget; sessions evicted {f.get('sessions_evicted', 0)}, "
            f"dropped by the spill store {f.get('spill_dropped', 0)}")
        du = subprocess.run(["du", "-sk", jdir], capture_output=True, text=True).stdout.split()
        print(f"  journal at the end: {du[0] if du else '?'} KiB")
        if fig.violations:
            print(f"FAIL: {len(fig.violations)} violations (first: {fig.violations[0]})")
            return 1
        print("ok: every promise held")
        return 0
    finally:
        if app is not None:
            for pid in app.pids("weft-ranker") + app.pids("weft-ingest"):
                try:
                    os.kill(pid, signal.SIGCONT)
                except ProcessLookupError:
                    pass
            if os.environ.get("WEFT_CHAOS_LOG"):
                app.dump_log()
            if app.proc.poll() is None:
                try:
                    log(f"weftctl up exited with {app.stop()}")
                except RuntimeError as e:
                    log(str(e))
        if mounted:
            subprocess.run(["umount", "-l", jdir], capture_output=True)
        T.cleanup()


if __name__ == "__main__":
    sys.exit(main())
