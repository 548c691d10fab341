"""harness.py - start a real weft appliance for integration tests.

Each test gets its own directory, shm segment and store: a synthetic store
from weft-gen, a snapshot from weft-batch, then `weftctl up`, which starts
weft-admin, the rankers and weft-ingest. Clients are real: redis-py over the
Unix socket, redis-cli and redis-benchmark as subprocesses.

Exit code 77 means skipped (meson's convention), e.g. io_uring unavailable.
"""
import csv
import fcntl
import hashlib
import json
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import redis

BUILD = os.environ.get("WEFT_BUILD_ROOT") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def prog(name):
    for sub in ("admin", "ingest", "rankers", "batch", "tools", "eval", ""):
        p = os.path.join(BUILD, sub, name)
        if os.path.isfile(p) and os.access(p, os.X_OK):
            return p
    raise FileNotFoundError(f"{name} not found under {BUILD}: build first")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


FIXTURES = os.path.join(BUILD, "test-fixtures")


def _digest(*parts):
    h = hashlib.sha256()
    for p in parts:
        if isinstance(p, str) and os.path.isfile(p):
            st = os.stat(p)
            if p.startswith(BUILD):  # a program: rebuilt means regenerate
                h.update(f"{p}:{st.st_size}:{st.st_mtime_ns}".encode())
            else:
                with open(p, "rb") as f:
                    h.update(f.read())
        else:
            h.update(repr(p).encode())
        h.update(b"\0")
    return h.hexdigest()[:20]


def fixture(key, make):
    """make(dir) once per build tree for key; returns that dir, which callers only read.

    Tests run in parallel, so the first one to want a fixture makes it under a
    lock and the others wait for it; a fixture is complete once renamed into
    place. The key covers the programs' size and mtime, so a rebuild makes it
    again."""
    d = os.path.join(FIXTURES, key)
    os.makedirs(FIXTURES, exist_ok=True)
    with open(d + ".lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        if not os.path.isdir(d):
            tmp = d + ".tmp"
            shutil.rmtree(tmp, ignore_errors=True)
            os.makedirs(tmp)
            make(tmp)
            os.rename(tmp, d)
    return d


def batch_build(events, catalog, out, *args):
    """`weft-batch build --events EVENTS --catalog CATALOG --out OUT ARGS --quiet`, built
    once per build tree for the same inputs (by content) and arguments, then
    copied to OUT (and OUT.manifest.json, its "file" naming OUT)."""
    batch = prog("weft-batch")

    def make(d):
        subprocess.run([batch, "build", "--events", events, "--catalog", catalog, "--out",
                        os.path.join(d, "snap"), *args, "--quiet"], check=True)

    d = fixture("snap-" + _digest(batch, events, catalog, *args), make)
    shutil.copyfile(os.path.join(d, "snap"), out)
    with open(os.path.join(d, "snap.manifest.json")) as f:
        man = json.load(f)
    man["file"] = out
    with open(out + ".manifest.json", "w") as f:
        json.dump(man, f, indent=2)
        f.write("\n")


class Store:
    """A generated store and its snapshot, shared by a test file.

    weft-gen and weft-batch run once per build tree for each set of
    arguments (fixture(), batch_build()); each test gets its own copy in
    root, so what it writes there stays its own."""

    def __init__(self, root, users=300, items=600, days=10, seed=7, snapshot=True):
        self.dir = os.path.join(root, "store")
        gen = prog("weft-gen")
        args = ["--users", str(users), "--items", str(items), "--days", str(days), "--seed", str(seed)]
        src = fixture("store-" + _digest(gen, *args), lambda d: subprocess.run(
            [gen, "--out", os.path.join(d, "store"), *args, "--quiet"], check=True))
        shutil.copytree(os.path.join(src, "store"), self.dir)
        self.snapshot = os.path.join(root, "store.snap")
        if snapshot:
            batch_build(self.events, self.catalog, self.snapshot)

    @property
    def events(self):
        return os.path.join(self.dir, "events.csv")

    @property
    def catalog(self):
        return os.path.join(self.dir, "catalog.csv")

    def users(self):
        seen = []
        with open(self.events) as f:
            for row in csv.DictReader(f):
                if row["user_id"] and row["user_id"] not in seen:
                    seen.append(row["user_id"])
        return seen

    def items(self):
        with open(self.catalog) as f:
            return [r for r in csv.DictReader(f)]


def fd_limited_appliance(root, snapshot, nofile=100):
    """A one-shard appliance in root/ whose processes run under an
    open-file limit of nofile, soft and hard."""
    os.makedirs(root)
    return Appliance(root, shards=1, snapshot=snapshot,
                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile)))


def connect_many(path, n):
    """n connections to the Unix socket path (the listen backlog takes
    those the server has not accepted)."""
    conns = []
    for _ in range(n):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        conns.append(s)
    return conns


class Appliance:
    """`weftctl up` in the background; stop() shuts it down cleanly."""

    def __init__(self, root, shards=2, snapshot=None, extra=(), preexec_fn=None):
        self.dir = os.path.join(root, "run")
        self.shards = shards
        # A test store has far fewer live sessions than the routing table's
        # default (4M per half TTL, 384 MiB faulted in at start).
        args = [prog("weftctl"), "up", "--dir", self.dir, "--shards", str(shards), "--sessions", "262144"]
        if snapshot:
            args += ["--snapshot", snapshot]
        args += list(extra)
        self.logf = open(os.path.join(root, "up.log"), "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.logf, text=True,
                                     preexec_fn=preexec_fn)
        deadline = time.time() + 60
        while True:
            line = self.proc.stdout.readline()
            if "ready" in line:
                break
            if not line or time.time() > deadline:
                self.dump_log()
                raise RuntimeError(f"weftctl up did not become ready (exit {self.proc.poll()})")
        self.sock = os.path.join(self.dir, "weft.sock")
        self.admin_sock = os.path.join(self.dir, "admin.sock")

    def client(self, **kw):
        return redis.Redis(unix_socket_path=self.sock, decode_responses=True, **kw)

    def admin(self):
        return redis.Redis(unix_socket_path=self.admin_sock, decode_responses=True)

    def weftctl(self, *args, check=True):
        r = subprocess.run([prog("weftctl"), "--dir", self.dir, *args], capture_output=True,
                           text=True, timeout=120)
        if check and r.returncode != 0:
            raise RuntimeError(f"weftctl {' '.join(args)} failed: {r.stderr}")
        return r

    def dump_log(self):
        self.logf.flush()
        self.logf.seek(0)
        log("---- weftctl up log ----")
        log(self.logf.read()[-20000:])

    def pids(self, name):
        out = subprocess.run(["pgrep", "-f", f"{name} .*--dir {self.dir}"], capture_output=True,
                             text=True).stdout.split()
        return [int(p) for p in out]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise RuntimeError("weftctl up did not stop within 30 s of SIGTERM")
        self.logf.close()
        return self.proc.returncode


class TestDir:
    def __init__(self, name):
        self.path = tempfile.mkdtemp(prefix=f"weft-{name}-")

    def cleanup(self):
        shutil.rmtree(self.path, ignore_errors=True)


def run(tests):
    """Run test functions; print one line each; exit 1 on any failure."""
    failed = 0
    for t in tests:
        t0 = time.time()
        try:
            t()
            log(f"ok   {t.__name__} ({time.time() - t0:.1f}s)")
        except SkipTest as e:
            log(f"skip {t.__name__}: {e}")
            sys.exit(77)
        except Exception as e:  # noqa: BLE001 - report every failure
            import traceback
            traceback.print_exc()
            log(f"FAIL {t.__name__}: {e}")
            failed += 1
    sys.exit(1 if failed else 0)


class SkipTest(Exception):
    pass


def shard_of(key, nshards):
    """wf_shard_of() from lib/util.h: XXH3-64 of the key, scaled to nshards."""
    import ctypes
    global _xxh
    try:
        _xxh
    except NameError:
        _xxh = ctypes.CDLL("libxxhash.so.0")
        _xxh.XXH3_64bits.restype = ctypes.c_uint64
        _xxh.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
    b = key.encode()
    return (_xxh.XXH3_64bits(b, len(b)) * nshards) >> 64


def sessions_of(shard, n, nshards=2, prefix="anon"):
    """n session ids that an anonymous first request pins to shard."""
    out, i = [], 0
    while len(out) < n:
        s = f"{prefix}{i}"
        if shard_of(s, nshards) == shard:
            out.append(s)
        i += 1
    return out
