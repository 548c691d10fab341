"""bench/benchlib.py - what bench/run and bench/snap1m both need.

Finding the built programs, a weft started with `weftctl up`, user ids
redis-benchmark can name, one redis-benchmark run (with the CPU the
server's processes spent on it), and readers of /proc. The scripts put
their own directory on sys.path and import this; it is not run.
Progress goes to stderr; the figures are the scripts' own stdout lines.
"""
import csv
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = "bench/" + os.path.basename(sys.argv[0])
TCK = os.sysconf("SC_CLK_TCK")


def say(*a):
    """Progress, on stderr."""
    print(*a, file=sys.stderr, flush=True)


def prog(build, name):
    """The path of program name under the build directory; exits if it is not built."""
    for sub in ("admin", "ingest", "rankers", "batch", "tools", "bench"):
        p = os.path.join(build, sub, name)
        if os.access(p, os.X_OK):
            return p
    sys.exit(f"{SCRIPT}: {name} not found under {build}; run ./dev build first")


# One pass over events.csv (GBs at a million users, hence awk). weft-gen
# writes no quoted fields, so splitting on commas is the CSV reading.
RENUMBER = r"""
NR > 1 && $2 != "" {
    if (!($2 in id))
        id[$2] = n++
    $2 = sprintf("u%012d", dense ? id[$2] : substr($2, 2))
}
{ print }
END { print n + 0 > "/dev/stderr" }
"""


def renumber_users(src, dst, dense=True):
    """Copy events.csv with the user ids (second column) as u%012d, the form
    redis-benchmark's __rand_int__ names. dense: number the users 0, 1, ...
    in order of first appearance, so -r <count> names only users with events;
    otherwise keep weft-gen's numbers (u016191 -> u000000016191). Returns the
    number of distinct users."""
    with open(dst, "w") as fo:
        r = subprocess.run(["awk", "-F,", "-v", "OFS=,", "-v", f"dense={int(dense)}", RENUMBER, src], stdout=fo,
                           stderr=subprocess.PIPE, text=True, env=dict(os.environ, LC_ALL="C"))
    if r.returncode != 0:
        raise RuntimeError(f"renumbering the users of {src}: {r.stderr.strip()}")
    return int(r.stderr.split()[-1])


def pids(name, path):
    """Pids of the running programs called name whose command line names path."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")
        except OSError:
            continue
        if cmd[0].endswith(name.encode()) and path.encode() in b" ".join(cmd[1:]):
            found.append(int(pid))
    return found


def proc_stat(pids):
    """Summed minor faults, major faults and CPU seconds (user + system) the
    processes and their threads have had so far; one that is gone counts 0."""
    minflt = majflt = ticks = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                v = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        minflt += int(v[7])
        majflt += int(v[9])
        ticks += int(v[11]) + int(v[12])
    return minflt, majflt, ticks / TCK


def cpu_s(pids):
    """User + system CPU seconds the processes have used so far."""
    return proc_stat(pids)[2]


def _kb(path, key):
    with open(path) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def rss_mb(pid):
    """Resident set size (VmRSS) in MiB."""
    return _kb(f"/proc/{pid}/status", "VmRSS") / 1024


def anon_mb(pid):
    """Anonymous memory (smaps_rollup: the arenas, not the mapped file) in MiB."""
    return _kb(f"/proc/{pid}/smaps_rollup", "Anonymous") / 1024


def bench(server, args, n, clients, pipeline=1, rand=None, timeout=900):
    """redis-benchmark --csv against server (anything with .sock and .procs,
    {name: [pid, ...]}: a Weft, bench/run's Redis): rps, p50, p99 and max
    latency (ms), errors (lines of its stderr saying so), and cpu: the CPU
    microseconds each of the server's processes spent per request."""
    before = {k: cpu_s(v) for k, v in server.procs.items()}
    cmd = ["redis-benchmark", "-s", server.sock, "-n", str(n), "-c", str(clients), "-P", str(pipeline), "--csv"]
    if rand:
        cmd += ["-r", str(rand)]
    out = subprocess.run(cmd + args, capture_output=True, text=True, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {out.stderr.strip()}")
    rows = list(csv.reader(io.StringIO(out.stdout)))
    d = dict(zip(rows[0], rows[-1]))
    return {"rps": float(d["rps"]), "p50": float(d.get("p50_latency_ms", "nan")),
            "p99": float(d.get("p99_latency_ms", "nan")), "max": float(d.get("max_latency_ms", "nan")),
            "errors": sum(1 for line in out.stderr.splitlines() if "rror" in line),
            "cpu": {k: (cpu_s(v) - before[k]) * 1e6 / n for k, v in server.procs.items()}}


class Weft:
    """`weftctl up` in WORK/NAME, serving snap (None: nothing until load()),
    its stderr appended to WORK/weft.log; returns once it is ready. The
    directory is wiped first: weft-admin would reload the last run's
    snapshot from its state. .sock is its socket, .procs the pids of its
    weft-ingest and weft-ranker processes."""

    def __init__(self, build, work, snap, shards, extra=(), name="weft"):
        self.build = build
        self.dir = os.path.join(work, name)
        shutil.rmtree(self.dir, ignore_errors=True)
        self.log = open(os.path.join(work, "weft.log"), "a")
        cmd = [prog(build, "weftctl"), "up", "--dir", self.dir] + (["--shards", str(shards)] if shards else [])
        if snap:
            cmd += ["--snapshot", snap]
        self.proc = subprocess.Popen(cmd + list(extra), stdout=subprocess.PIPE, stderr=self.log, text=True)
        while True:
            line = self.proc.stdout.readline()
            if not line:
                sys.exit(f"{SCRIPT}: weft did not start; see {self.log.name}")
            if "ready" in line:
                break
        self.sock = os.path.join(self.dir, "weft.sock")
        self.procs = {p: pids(p, self.dir) for p in ("weft-ingest", "weft-ranker")}
        self.log.flush()
        with open(self.log.name) as f:  # weftctl's "layout: ..." line, the last one is this start's
            self.layout = ([x.split("layout: ", 1)[1].strip() for x in f if "layout: " in x] or ["?"])[-1]

    def ctl(self, *a, check=False):
        """weftctl's stdout; check: raise if it fails."""
        r = subprocess.run([prog(self.build, "weftctl"), "--dir", self.dir, *a], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"weftctl {' '.join(a)}: {r.stderr.strip()}")
        return r.stdout

    def load(self, snap):
        """`weftctl snapshot load`: its wall time (s) and weft-admin's own figure (ms, -1 if absent)."""
        t0 = time.time()
        out = self.ctl("snapshot", "load", snap, check=True)
        wall = time.time() - t0
        m = re.search(r"loaded by \d+ rankers in (\d+) ms", out)
        return wall, int(m.group(1)) if m else -1

    def stop(self, timeout=60):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=timeout)
        self.log.close()
