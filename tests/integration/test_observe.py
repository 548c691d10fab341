#!/usr/bin/python3
"""test_observe.py - weft's metrics and weft-observe (issue 18), on a real
appliance started by `weftctl up --metrics-file`.

Modes (argv[1]), one meson test each:
  metrics     `promtool check metrics` passes on `weftctl metrics` and on
              the --metrics-file weft-observe writes; the families exist;
              `weftctl status` has its observability line
  textfile    a real prometheus-node-exporter on a free loopback port with
              only the textfile collector serves weft's metrics over HTTP
  top         `weftctl top --once` and `weftctl top` under tmux (80 x 24):
              every line fits, the labels are there, q quits
  unprivileged  the whole appliance as user nobody (setpriv, no
              capabilities): it serves, `weftctl status` says observability
              is degraded and why, and metrics still carry schedstat
  latency     `weftctl latency` lists every command's request latency,
              event-to-visible, the journal flush and (BPF) run-queue wait,
              with counts; `weftctl latency --plot F.png` draws a real PNG
              (magic bytes, IHDR, over 10 KB); a request latency sum agrees
              with its count and mean
  runqlat     under redis-benchmark load, the BPF run-queue wait of
              weft-ingest and every weft-ranker has counts and its total
              agrees with /proc schedstat over the same interval (20 %);
              weft-ingest's journal fsyncs are timed when that program runs;
              every process has off-CPU sleep time
Skips (77): latency without gnuplot, metrics without promtool, textfile without
prometheus-node-exporter, top without tmux, unprivileged without setpriv or
user nobody, runqlat when BPF cannot load here (says why).
"""
import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import Appliance, SkipTest, Store, TestDir, log  # noqa: E402

SHARDS = 2


def which(name):
    return shutil.which(name) or next((p for p in (f"/usr/bin/{name}", f"/usr/sbin/{name}")
                                       if os.access(p, os.X_OK)), None)


def need(name, why):
    p = which(name)
    if not p:
        raise SkipTest(why)
    return p


@contextlib.contextmanager
def appliance(name):
    """(td, store, app, metrics file) of an appliance, stopped and removed after."""
    td = TestDir(f"observe-{name}")
    try:
        store = Store(td.path)
        app, mfile = start(td, store)
        try:
            yield td, store, app, mfile
        finally:
            app.stop()
    finally:
        td.cleanup()


def start(td, store):
    textdir = os.path.join(td.path, "textfile")
    os.mkdir(textdir)
    mfile = os.path.join(textdir, "weft.prom")
    app = Appliance(td.path, shards=SHARDS, snapshot=store.snapshot, extra=("--metrics-file", mfile))
    return app, mfile


def wait_for(pred, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def some_traffic(app, store, n=50):
    c = app.client()
    users, items = store.users(), store.items()
    for i in range(n):
        u = users[i % len(users)]
        c.execute_command("EVENT", f"s{i % 7}", u, "view", items[i % len(items)]["item_id"])
        c.execute_command("RECS", f"s{i % 7}", u, 10)


def parse(text):
    """{(name, frozenset(labels)): value} of an exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$', line)
        assert m, f"bad exposition line: {line!r}"
        labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def metrics(app):
    return app.weftctl("metrics").stdout


def test_metrics():
    promtool = need("promtool", "promtool not installed (Debian package prometheus)")
    with appliance("metrics") as (td, store, app, mfile):
        some_traffic(app, store)
        sub = app.client().pubsub()  # a segment subscriber: the pubsub gauge counts it
        sub.subscribe("cart_abandon")
        assert sub.get_message(timeout=5)["type"] == "subscribe"
        text = metrics(app)
        r = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, f"promtool check metrics failed:\n{r.stdout}{r.stderr}\n{text[:3000]}"
        m = parse(text)
        names = {k[0] for k in m}
        for fam in ("weft_commands_total", "weft_command_errors_total", "weft_events_acked_total",
                    "weft_requests_total", "weft_event_visible_seconds_bucket", "weft_ring_used_bytes",
                    "weft_ring_fullness_ratio", "weft_sessions_live", "weft_session_arena_bytes",
                    "weft_snapshot_arena_bytes", "weft_snapshot_generation", "weft_snapshot_age_seconds",
                    "weft_journal_bytes", "weft_schedstat_runqueue_wait_seconds_total",
                    "weft_segment_transitions_total", "weft_experiment_exposures_total",
                    "weft_pubsub_clients", "weft_pubsub_disconnects_total"):
            assert fam in names, f"{fam} missing from weftctl metrics"
        assert all(n.startswith("weft_") for n in names)
        recs = sum(v for (n, lab), v in m.items() if n == "weft_requests_total" and ("command", "RECS") in lab)
        assert recs >= 50, f"RECS served {recs}, want >= 50"
        ev = sum(v for (n, lab), v in m.items() if n == "weft_requests_total" and ("command", "EVENT") in lab)
        assert ev >= 50, f"EVENTs applied {ev}, want >= 50"
        assert m[("weft_snapshot_generation", frozenset())] >= 1
        assert m[("weft_pubsub_clients", frozenset())] == 1, "the subscriber above"
        sub.close()
        # weft-ingest's request latency: every EVENT ack and RECS reply timed, in base units.
        def req(cmd, path, suffix):
            return m.get((f"weft_request_duration_seconds_{suffix}",
                          frozenset({("command", cmd), ("path", path)})), 0)
        assert req("EVENT", "journal", "count") >= 50, "EVENT acks timed"
        assert req("RECS", "front", "count") + req("RECS", "ranker", "count") >= 50, "RECS replies timed"
        assert 0 < req("EVENT", "journal", "sum") < 50 * 10, "EVENT latency sum in seconds"
        inf = m[("weft_request_duration_seconds_bucket",
                 frozenset({("command", "EVENT"), ("path", "journal"), ("le", "+Inf")}))]
        assert inf == req("EVENT", "journal", "count")
        for fam in ("weft_journal_flush_seconds_count", "weft_request_ring_wait_seconds_count"):
            assert m[(fam, frozenset())] > 0, fam
        assert m[("weft_journal_bytes", frozenset())] > 0
        # The file weft-observe writes for node_exporter: complete, valid.
        wait_for(lambda: os.path.exists(mfile), "the --metrics-file")
        with open(mfile) as f:
            ftext = f.read()
        r = subprocess.run([promtool, "check", "metrics"], input=ftext, capture_output=True, text=True)
        assert r.returncode == 0, f"promtool on {mfile} failed:\n{r.stdout}{r.stderr}"
        assert "weft_observe_bpf " in ftext and "weft_requests_total{" in ftext
        # Without weft-admin or the segment (a user outside the weft and admin
        # groups), `weftctl metrics` prints the copy systemd's weft-observe
        # keeps in DIR/metrics/weft.prom.
        other = os.path.join(td.path, "other")
        os.makedirs(os.path.join(other, "metrics"))
        shutil.copy(mfile, os.path.join(other, "metrics", "weft.prom"))
        with open(os.path.join(other, "metrics", "weft.prom")) as f:
            copied = f.read()
        r = subprocess.run([harness.prog("weftctl"), "--dir", other, "metrics"], capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout == copied and "weft_requests_total{" in copied, r.stderr
        assert "weft-observe's copy" in r.stderr, r.stderr
        st = app.weftctl("status").stdout
        line = [x for x in st.splitlines() if x.startswith("observability: ")]
        assert len(line) == 1, st
        assert re.match(r"observability: (ok: |degraded: \S)", line[0]), line[0]
        log(line[0])


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_textfile():
    exporter = which("node_exporter") or need("prometheus-node-exporter", "prometheus-node-exporter not installed")
    with appliance("textfile") as (td, store, app, mfile):
        some_traffic(app, store, 20)
        wait_for(lambda: os.path.exists(mfile), "the --metrics-file")
        port = free_port()
        nelog = open(os.path.join(td.path, "node_exporter.log"), "w+")
        ne = subprocess.Popen([exporter, f"--web.listen-address=127.0.0.1:{port}",
                               "--collector.disable-defaults", "--collector.textfile",
                               f"--collector.textfile.directory={os.path.dirname(mfile)}"],
                              stdout=nelog, stderr=subprocess.STDOUT)

        def scrape():
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                    body = r.read().decode()
            except OSError:
                return None
            # weft-observe rewrites the file every 2 s: wait for the traffic.
            return body if "weft_requests_total{" in body else None

        try:
            try:
                body = wait_for(scrape, "node_exporter to serve weft's metrics")
            except AssertionError:
                nelog.seek(0)
                log(nelog.read()[-4000:])
                raise
            assert re.search(r'^node_textfile_scrape_error 0$', body, re.M), "textfile collector reports an error"
            for fam in ("weft_commands_total", "weft_event_visible_seconds_bucket", "weft_observe_bpf"):
                assert re.search(rf'^{fam}[{{ ]', body, re.M), f"{fam} not served by node_exporter"
        finally:
            ne.terminate()
            ne.wait(timeout=10)
            nelog.close()


def schedstat_wait(pid):
    """Run-queue wait of every live thread of pid, seconds."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                total += int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            pass  # the thread just exited
    return total / 1e9


def rq_totals(app):
    """{process: (bpf count, bpf sum s, schedstat s)} for ingest and each ranker,
    schedstat read right after weft-observe's drain (its observe.prom rewrite),
    so both cover the same interval to a few ms."""
    prom = os.path.join(app.dir, "observe.prom")
    pids = {"weft-ingest": app.pids("weft-ingest")}
    for i in range(SHARDS):
        pids[f"weft-ranker@{i}"] = app.pids(f"weft-ranker --shard {i}")
    t0 = os.stat(prom).st_mtime_ns
    wait_for(lambda: os.stat(prom).st_mtime_ns != t0, "weft-observe to publish", timeout=10)
    sched = {k: schedstat_wait(v[0]) for k, v in pids.items()}
    with open(prom) as f:
        m = parse(f.read())
    out = {}
    for k in pids:
        proc, _, shard = k.partition("@")
        lab = {("process", proc)} | ({("shard", shard)} if shard else set())
        out[k] = (m.get(("weft_runqueue_wait_seconds_count", frozenset(lab)), 0.0),
                  m.get(("weft_runqueue_wait_seconds_sum", frozenset(lab)), 0.0), sched[k])
    return out


def test_runqlat():
    need("redis-benchmark", "redis-benchmark not installed")
    if os.environ.get("WEFT_SANITIZED"):
        # A measurement of the scheduler, not of memory safety: the
        # sanitizer build's 3-10x slower processes change what it measures
        # and cost the suite a minute; the plain build runs it.
        raise SkipTest("the sanitizer build does not measure run-queue latency")
    with appliance("runqlat") as (td, store, app, mfile):
        line = wait_for(lambda: [x for x in app.weftctl("status").stdout.splitlines()
                                 if x.startswith("observability: ") and "not running" not in x],
                        "weft-observe's state")[0]
        if not line.startswith("observability: ok"):
            raise SkipTest(f"BPF cannot load here: {line}")
        time.sleep(2.5)
        before = rq_totals(app)
        users = len(store.users())
        r = subprocess.run(["redis-benchmark", "-s", app.sock, "-n", "60000", "-c", "16", "-P", "4",
                            "-r", str(users), "RECS", "s__rand_int__", store.users()[0], "10"],
                           capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        r = subprocess.run(["redis-benchmark", "-s", app.sock, "-n", "30000", "-c", "16", "-P", "4",
                            "-r", "1000", "EVENT", "s__rand_int__", "-", "view",
                            store.items()[0]["item_id"]], capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr
        # EVENT acks do not wait for the rankers: let them empty their rings
        # first, so no wait falls between weft-observe's drain and our
        # schedstat read. Soon after, though: ingest's io-wq workers exit
        # when idle, taking their schedstat with them (BPF keeps theirs).
        wait_for(lambda: all(v == 0 for (n, _), v in parse(metrics(app)).items() if n == "weft_ring_used_bytes"),
                 "the rankers to empty their rings", timeout=60)
        after = rq_totals(app)
        text = metrics(app)
        if "fsync latency" in line and "no fsync latency" not in line:
            n = parse(text).get(("weft_fsync_seconds_count", frozenset({("process", "weft-ingest")})), 0)
            log(f"weft-ingest: {n:.0f} fsyncs timed")
            assert n > 0, "EVENTs were journaled but no weft-ingest fsync was timed"
        m = parse(text)
        for proc, shard in [("weft-ingest", None)] + [("weft-ranker", str(i)) for i in range(SHARDS)]:
            lab = {("process", proc), ("reason", "sleep")} | ({("shard", shard)} if shard else set())
            n = m.get(("weft_offcpu_seconds_count", frozenset(lab)), 0)
            assert n > 0, f"{proc} {shard or ''}: no off-CPU sleep counted"
        want = ["weft-ingest"] + [f"weft-ranker@{i}" for i in range(SHARDS)]
        for k in want:
            assert k in before and k in after, f"{k} missing: {sorted(after)}"
            dc = after[k][0] - before[k][0]
            db, ds = after[k][1] - before[k][1], after[k][2] - before[k][2]
            log(f"{k}: {dc:.0f} waits, BPF {db * 1e3:.2f} ms, schedstat {ds * 1e3:.2f} ms")
            assert dc > 0, f"{k}: no run-queue wait counted under load"
            assert ds > 0, f"{k}: schedstat shows no run-queue wait"
            assert abs(db - ds) <= 0.2 * ds, f"{k}: BPF {db:.6f} s vs schedstat {ds:.6f} s: over 20 % apart"


def test_top():
    tmux = need("tmux", "tmux not installed")
    # A private tmux server per mode, ours to kill: killing a server's last
    # session makes it exit, and a new session started on the same socket
    # meanwhile fails with "server exited unexpectedly".
    servers = [[tmux, "-L", f"weft-top-{os.getpid()}-{n}", "-f", "/dev/null"] for n in range(2)]
    with appliance("top") as (td, store, app, mfile):
        try:
            some_traffic(app, store, 30)
            weftctl = harness.prog("weftctl")
            labels = ["observability:", "EVENT", "RECS", "RERANK", "visible p50", "shard", "req ring",
                      "vis p99", "process", "runq p99", "ingest", "ranker 0", f"ranker {SHARDS - 1}", "sessions"]
            for T, mode in zip(servers, (["top", "--once"], ["top"])):
                cmd = " ".join([weftctl, "--dir", app.dir] + mode) + ("; sleep 60" if "--once" in mode else "")
                subprocess.run(T + ["new-session", "-d", "-s", "top", "-x", "80", "-y", "24", cmd], check=True)

                def capture():
                    return subprocess.run(T + ["capture-pane", "-p", "-t", "top"], capture_output=True,
                                          text=True).stdout

                def pane():
                    out = capture()
                    return out if all(x in out for x in labels) else None

                try:
                    out = wait_for(pane, f"weftctl {' '.join(mode)} in tmux")
                except AssertionError:
                    log(capture())
                    raise
                lines = out.rstrip("\n").split("\n")
                assert len(lines) <= 24, f"{len(lines)} lines"
                assert all(len(x) <= 80 for x in lines), [x for x in lines if len(x) > 80]
                # What tmux shows is what weftctl wrote: no line was wrapped.
                assert lines[0].startswith("weft top"), lines[0]
                if "--once" in mode:
                    subprocess.run(T + ["kill-session", "-t", "top"], check=True)
                    continue
                # The first frame shows totals; refreshed ones show rates.
                wait_for(lambda: (pane() or "").startswith("weft top") and "(rates per second)" in pane(),
                         "the live view to refresh", timeout=10)
                subprocess.run(T + ["send-keys", "-t", "top", "q"], check=True)
                wait_for(lambda: subprocess.run(T + ["has-session", "-t", "top"], capture_output=True).returncode,
                         "weftctl top to quit on q")
        finally:
            for T in servers:
                subprocess.run(T + ["kill-server"], capture_output=True)


def test_latency():
    need("gnuplot", "gnuplot not installed (Debian package gnuplot-nox)")
    with appliance("latency") as (td, store, app, mfile):
        some_traffic(app, store)
        c = app.client()
        u, items = store.users()[0], store.items()
        for i in range(10):
            c.execute_command("RERANK", f"s{i % 7}", u, items[0]["item_id"], items[1]["item_id"])
            c.execute_command("HISTORY", f"s{i % 7}")
        out = app.weftctl("latency").stdout
        log(out)
        rows = {}
        for line in out.splitlines():
            m = re.match(r"^(\S.*?\S|\s+visible shard \d+)\s+(\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", line)
            if m:
                rows[m.group(1).strip()] = (int(m.group(2)), m.group(3), m.group(4), m.group(6))
        for cmd in ("EVENT ack", "RECS front", "RECS ranker", "RERANK", "HISTORY", "SEGMENTS", "local",
                    "jrnl flush", "ring wait", "event visible"):
            assert cmd in rows, f"{cmd} missing from weftctl latency:\n{out}"
        assert rows["EVENT ack"][0] >= 50 and rows["event visible"][0] >= 50, out
        assert rows["RECS front"][0] + rows["RECS ranker"][0] >= 50, out
        assert rows["RERANK"][0] >= 10 and rows["HISTORY"][0] >= 10, out
        assert rows["jrnl flush"][0] >= 1 and rows["SEGMENTS"][0] == 0 and rows["SEGMENTS"][3] == "-", out
        # The table agrees with the exposition: count, and mean = sum / count.
        m = parse(metrics(app))
        lab = frozenset({("command", "EVENT"), ("path", "journal")})
        n, tot = m[("weft_request_duration_seconds_count", lab)], m[("weft_request_duration_seconds_sum", lab)]
        assert n >= rows["EVENT ack"][0] >= 50
        mean = rows["EVENT ack"][1]
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1}[re.sub(r"[\d.]", "", mean)]
        assert float(re.sub(r"[a-z]", "", mean)) * unit > 0 and tot > 0
        # The same series in INFO latencystats (Redis 7's form) and STATS.
        info = c.execute_command("INFO", "latencystats")
        info = info if isinstance(info, dict) else harness.redis.client.parse_info(info)
        assert "latency_percentiles_usec_event" in info and ("latency_percentiles_usec_recs" in info or
                                                             "latency_percentiles_usec_recs_front" in info), info
        st = json.loads(app.weftctl("--json", "stats").stdout)
        lat = st["ingest"]["latency"]
        assert lat["event_count"] >= 50 and 0 < lat["event_p50_ns"] <= lat["event_p99_ns"], lat
        png = os.path.join(td.path, "latency.png")
        r = app.weftctl("latency", "--plot", png)
        assert png in r.stdout, r.stdout
        with open(png, "rb") as f:
            data = f.read()
        assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
        assert data[12:16] == b"IHDR" and int.from_bytes(data[16:20], "big") >= 800, "PNG header"
        assert len(data) > 10000, f"{len(data)} bytes: an empty picture?"
        bad = app.weftctl("latency", "--plot", os.path.join(td.path, "no", "such", "dir", "x.png"), check=False)
        assert bad.returncode != 0 and "could not draw" in bad.stderr and "No such file" in bad.stderr, (bad.returncode, bad.stderr)


def test_unprivileged():
    import pwd
    setpriv = need("setpriv", "setpriv not installed (util-linux)")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        raise SkipTest("no user nobody")
    drop = [setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all"] if os.geteuid() == 0 else []
    td = TestDir("observe-unpriv")
    try:
        store = Store(td.path)
        os.chmod(td.path, 0o777)  # nobody creates run/ here
        # The programs where nobody can reach them: a clone in a private
        # directory (mktemp -d is 0700) has a build nobody cannot enter.
        bindir = os.path.join(td.path, "bin")
        os.mkdir(bindir)
        for name in ("weftctl", "weft-admin", "weft-ingest", "weft-ranker"):
            shutil.copy2(harness.prog(name), bindir)
        shutil.copy2(os.path.join(harness.BUILD, "observe", "weft-observe"), bindir)
        os.chmod(bindir, 0o755)
        weftctl = os.path.join(bindir, "weftctl")
        rundir = os.path.join(td.path, "run")
        logf = open(os.path.join(td.path, "up.log"), "w+")
        up = subprocess.Popen(drop + [weftctl, "up", "--dir", rundir, "--shards", str(SHARDS),
                                      "--sessions", "262144", "--snapshot", store.snapshot],
                              stdout=subprocess.PIPE, stderr=logf, text=True)
        try:
            line = up.stdout.readline()
            if "ready" not in line:
                logf.seek(0)
                log(logf.read()[-4000:])
                raise AssertionError(f"unprivileged weftctl up did not become ready: {line!r}")
            wctl = [weftctl, "--dir", rundir]

            def status():
                out = subprocess.run(wctl + ["status"], capture_output=True, text=True).stdout
                obs = [x for x in out.splitlines() if x.startswith("observability: ")]
                return obs[0] if obs and "not running" not in obs[0] else None

            obs = wait_for(status, "weft-observe's state")
            log(obs)
            assert obs.startswith("observability: degraded: "), obs
            assert "privilege" in obs or "BTF" in obs or "without BPF" in obs, obs
            c = harness.redis.Redis(unix_socket_path=os.path.join(rundir, "weft.sock"), decode_responses=True)
            u = store.users()[0]
            assert c.execute_command("EVENT", "s1", u, "view", store.items()[0]["item_id"]) == 1
            assert len(c.execute_command("RECS", "s1", u, 5)) > 0
            text = subprocess.run(wctl + ["metrics"], capture_output=True, text=True, check=True).stdout
            m = parse(text)
            assert m[("weft_observe_bpf", frozenset())] == 0
            assert any(n == "weft_schedstat_runqueue_wait_seconds_total" and ("process", "weft-ingest") in l
                       for (n, l) in m), "no schedstat fallback for weft-ingest"
            subprocess.run(wctl + ["shutdown"], capture_output=True, check=True)
            assert up.wait(timeout=30) == 0
        finally:
            if up.poll() is None:
                up.terminate()
                up.wait(timeout=30)
            logf.close()
    finally:
        td.cleanup()


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "metrics"
    harness.run([{"metrics": test_metrics, "textfile": test_textfile, "runqlat": test_runqlat,
                 "top": test_top, "unprivileged": test_unprivileged, "latency": test_latency}[mode]])
