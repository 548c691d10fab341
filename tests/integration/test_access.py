#!/usr/bin/python3
"""test_access.py - the admin socket is not open to store apps.

admin.sock is mode 0660; and even when its mode is loosened, weft-admin
checks the peer's credentials (SO_PEERCRED) and refuses a user that is not
root, the weft user, or in the admin group, with a clear error, which
weftctl prints (it does not die of SIGPIPE). Needs root
to act as another user (setpriv); skipped otherwise.
"""
import os
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import Appliance, SkipTest, TestDir  # noqa: E402

T = TestDir("access")
APP = None


def as_nobody(*cmd):
    return subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *cmd],
                          capture_output=True, text=True, timeout=30)


def test_admin_socket_refuses_other_users():
    global APP
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/setpriv"):
        raise SkipTest("needs root and setpriv to act as another user")
    os.chmod(T.path, 0o755)
    APP = Appliance(T.path, shards=1)
    os.chmod(APP.dir, 0o755)
    mode = stat.S_IMODE(os.stat(APP.admin_sock).st_mode)
    assert mode == 0o660, oct(mode)
    r = as_nobody("redis-cli", "-s", APP.admin_sock, "PING")
    assert "Permission denied" in (r.stdout + r.stderr), r
    # Loosen the mode: the credential check still refuses.
    os.chmod(APP.admin_sock, 0o666)
    # weft-admin answers a refused peer at once and closes: read that.
    probe = ("import socket; s = socket.socket(socket.AF_UNIX); s.connect(%r); "
             "print(s.recv(4096).decode())" % APP.admin_sock)
    r = as_nobody("/usr/bin/python3", "-c", probe)
    assert "permission denied" in r.stdout.lower(), r
    # weftctl run by that user prints the refusal (it died silently of
    # SIGPIPE when its write hit the closed socket).
    r = as_nobody(harness.prog("weftctl"), "--dir", APP.dir, "status")
    assert r.returncode == 1, r
    assert "permission denied" in r.stderr.lower(), r
    # Root (and the weft user) still administer it.
    assert "PONG" in subprocess.run(["redis-cli", "-s", APP.admin_sock, "PING"], capture_output=True,
                                    text=True).stdout


if __name__ == "__main__":
    try:
        harness.run([test_admin_socket_refuses_other_users])
    finally:
        if APP and APP.proc.poll() is None:
            APP.stop()
        T.cleanup()
