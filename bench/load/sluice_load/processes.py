"""Children of the harness, and the HTTP helpers used to wait for them.

Every child runs in its own session / process group, so cleanup kills the
whole group (LiteLLM and nginx fork workers). Cleanup runs on exit, on
SIGINT / SIGTERM / SIGHUP and on failure.
"""

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from .common import log


class Procs:
    """Every child runs in its own session/process group; cleanup kills groups."""

    def __init__(self):
        self.procs = []  # (name, Popen)
        self.lock = threading.Lock()

    def start(self, name, argv, logdir, env=None, cwd=None):
        out = open(os.path.join(logdir, f"{name}.log"), "ab")
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             env=env, cwd=cwd, start_new_session=True)
        out.close()
        self.track(name, p)
        return p

    def track(self, name, p):
        """Kill p on cleanup (for children started with their own Popen)."""
        with self.lock:
            self.procs.append((name, p))

    def forget(self, p):
        with self.lock:
            self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop(self, p, grace=5.0):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        # the leader may be gone while workers of its group live on
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            p.wait(2)
        except subprocess.TimeoutExpired:
            pass
        self.forget(p)

    def stop_all(self):
        with self.lock:
            procs = list(self.procs)
        for _, p in reversed(procs):
            self.stop(p, grace=3.0)


PROCS = Procs()


def _on_signal(signum, _frame):
    log(f"signal {signum}: cleaning up")
    PROCS.stop_all()
    sys.exit(128 + signum)


def install_cleanup():
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    atexit.register(PROCS.stop_all)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=5.0):
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def wait_http(url, proc, timeout, method="GET", body=None, headers=None, ok=(200,)):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            st, b = http(method, url, body, headers, timeout=5)
            if st in ok:
                return b
            last = f"status {st}: {b[:200]!r}"
        except (OSError, urllib.error.URLError) as e:
            last = str(e)
        time.sleep(0.25)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s ({last})")
