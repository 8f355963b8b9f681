"""The upstreams: `sluice mock-upstream` and a static nginx serving the same
JSON, and the probe that picks the faster for non-streamed targets."""

import json
import os
import subprocess

from .common import NGINX, SLUICE, chat_body, log
from .loadgen import run_oha
from .processes import PROCS, free_port, wait_http
from .sampling import Sampler
from .stats import conns_for, summarize


def start_mock(tmp, name, extra=()):
    port = free_port()
    p = PROCS.start(name, [SLUICE, "mock-upstream", "--listen", f"127.0.0.1:{port}", *extra], tmp)
    wait_http(f"http://127.0.0.1:{port}/v1/models", p, 30)
    return port, p


def nginx_quote(b):
    """Inside an nginx single-quoted string \\ and \\' are escapes and $ starts a variable."""
    t = b.decode()
    if "$" in t:
        raise RuntimeError("canned answer contains '$' (an nginx variable)")
    return t.replace("\\", "\\\\").replace("'", "\\'")


def nginx_conf(d, http_body, workers="auto"):
    """An nginx.conf that runs in the foreground with everything under `d` (pid, error log, temp
    files), no access log and client keep-alive held open; `http_body` goes inside `http {}`."""
    return f"""
daemon off;
worker_processes {workers};
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 75s;
{http_body}
}}
"""


def start_nginx(tmp, canned):
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    port = free_port()
    with open(os.path.join(d, "answer.json"), "wb") as f:
        f.write(canned)
    conf = nginx_conf(d, f"""
    server {{
        listen 127.0.0.1:{port};
        location / {{
            # the same JSON `sluice mock-upstream` answers, served from memory
            default_type application/json;
            return 200 '{nginx_quote(canned)}';
        }}
    }}""")
    cfg = os.path.join(d, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(conf)
    subprocess.run([NGINX, "-t", "-p", d, "-e", f"{d}/logs/error.log", "-c", cfg],
                   check=True, capture_output=True)
    p = PROCS.start("nginx", [NGINX, "-p", d, "-e", f"{d}/logs/error.log", "-c", cfg], tmp)
    got = wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", p, 30, method="POST",
                    body=chat_body("mock-small"))
    if json.loads(got) != json.loads(canned):
        raise RuntimeError(f"nginx answers {got[:200]!r}, not the mock's JSON")
    return port, p


def pick_upstream(args, mock_port, mock_p, nginx_port, nginx_p):
    """Drive each available upstream at the highest rate; returns (name, probe results).
    The higher success wins, then the lower p50 + p99, then the lower CPU."""
    rate = max(args.rates)
    dur = args.upstream_probe_s
    res = {}
    for name, port, p in (("mock", mock_port, mock_p), ("nginx", nginx_port, nginx_p)):
        if port is None:
            continue
        with Sampler(p.pid) as s:
            o = run_oha(f"http://127.0.0.1:{port}/v1/chat/completions", rate, dur,
                        chat_body("mock-small"), {}, conns_for(rate, args.connections))
        r = summarize(o, rate, dur)
        r.update(s.result)
        res[name] = r
        log(f"upstream probe {name} @ {rate} rps: success {r['success']:.4f} p50 {r['p50_ms']} "
            f"p99 {r['p99_ms']} ms, cpu {r['cpu_pct']} %")
    if args.upstream != "auto":
        return args.upstream, res
    key = lambda n: (-res[n]["success"], res[n]["p99_ms"] + res[n]["p50_ms"], res[n]["cpu_pct"])
    return min(res, key=key), res
