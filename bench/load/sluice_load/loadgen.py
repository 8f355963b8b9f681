"""Load: oha at a constant arrival rate, and the sequential TTFT probe."""

import json
import os
import re
import shutil
import socket
import subprocess
import time

from .common import log
from .processes import PROCS
from .stats import pct

# replaced by ensure_oha() when oha is elsewhere on PATH; read it as loadgen.OHA
OHA = os.path.expanduser("~/.cargo/bin/oha")


def ensure_oha():
    global OHA
    if os.path.exists(OHA):
        return
    found = shutil.which("oha")
    if found:
        OHA = found
        return
    log("oha not found: cargo install oha --locked (a few minutes)")
    subprocess.run(["cargo", "install", "oha", "--locked"], check=True)


def run_oha(url, rate, duration, body, headers, conns, timeout_s=10):
    argv = [OHA, "--no-tui", "--output-format", "json", "-z", f"{duration}s", "-q", str(rate),
            "--latency-correction", "-w", "-c", str(conns), "-t", f"{timeout_s}s",
            "-m", "POST", "-T", "application/json", "-d", json.dumps(body)]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    argv.append(url)
    # tracked like every other child, so Ctrl-C kills it too (also from the hot-swap thread)
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                         text=True, start_new_session=True)
    PROCS.track("oha", p)
    try:
        out, err = p.communicate()
    finally:
        PROCS.forget(p)
    if p.returncode != 0:
        raise RuntimeError(f"oha failed ({p.returncode}): {err[-500:]}")
    return json.loads(out)


TOKEN_RE = re.compile(rb'"content"\s*:\s*"(?:[^"\\]|\\.)')


def ttft_once(port, path, headers, body):
    """Fresh connection (not timed), send, then time to response headers and
    to the first SSE chunk carrying a non-empty `content`."""
    payload = json.dumps(body).encode()
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Content-Type: application/json",
            f"Content-Length: {len(payload)}", "Connection: close", "Accept: text/event-stream"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    req = ("\r\n".join(head) + "\r\n\r\n").encode() + payload
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        buf = b""
        t0 = time.perf_counter()
        s.sendall(req)
        t_head = t_tok = None
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
            if t_head is None and b"\r\n\r\n" in buf:
                t_head = time.perf_counter()
                status = buf.split(b" ", 2)[1]
                if not status.startswith(b"2"):
                    raise RuntimeError(f"status {status.decode()}: {buf[:300]!r}")
            if t_head is not None and TOKEN_RE.search(buf.split(b"\r\n\r\n", 1)[1]):
                t_tok = time.perf_counter()
                break
        while s.recv(65536):  # drain the rest so both sides finish cleanly
            pass
        if t_tok is None:
            raise RuntimeError(f"no token in stream: {buf[:300]!r}")
        return (t_head - t0) * 1000, (t_tok - t0) * 1000
    finally:
        s.close()


def ttft_probe(port, path, headers, body, n):
    heads, toks, fails = [], [], 0
    for _ in range(n):
        try:
            h, t = ttft_once(port, path, headers, body)
            heads.append(h)
            toks.append(t)
        except (OSError, RuntimeError) as e:
            fails += 1
            last = str(e)
    r = {"requests": n, "failed": fails}
    if fails:
        r["last_error"] = last[:300]
    for name, vals in (("ttfb", heads), ("ttft", toks)):
        for p in (50, 90, 99):
            r[f"{name}_p{p}_ms"] = round(pct(vals, p), 3) if vals else None
    return r
