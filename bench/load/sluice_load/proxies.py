"""One extra hop and nothing else: the proxy-* targets, the floor Sluice's
added latency is compared with (bench/README.md, "One extra hop: the floor").

proxy-nginx is nginx as a keep-alive reverse proxy (the industry's C floor);
proxy-hyper and proxy-reqwest are bench/proxy (`sluice-bench-proxy`), built
from the pieces of Sluice's thread-per-core serving, with hyper-util's
client or with reqwest as Sluice builds it. Each forwards the same request
as `direct` to the same upstream.
"""

import os
import subprocess

from .common import NGINX, PROXY, chat_body
from .processes import PROCS, free_port, wait_http
from .upstream import nginx_conf


def nginx_proxy_conf(d, port, upstream_port, workers):
    """nginx.conf for a reverse proxy on `port` to 127.0.0.1:`upstream_port`: one worker per
    core, upstream connections kept alive (HTTP/1.1, no `Connection: close`), no access log."""
    return nginx_conf(d, f"""
    upstream bench_upstream {{
        server 127.0.0.1:{upstream_port};
        # idle upstream connections each worker keeps (as Sluice's pool does)
        keepalive 256;
        keepalive_requests 1000000;
        keepalive_timeout 75s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}""", workers)


def start_nginx_proxy(tmp, upstream_port, workers=None):
    """nginx proxying to the upstream, `workers` worker processes (default: one per core)."""
    d = os.path.join(tmp, "nginx-proxy")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    port = free_port()
    cfg = os.path.join(d, "nginx.conf")
    with open(cfg, "w") as f:
        f.write(nginx_proxy_conf(d, port, upstream_port, workers or os.cpu_count() or 1))
    argv = [NGINX, "-p", d, "-e", f"{d}/logs/error.log", "-c", cfg]
    subprocess.run([*argv, "-t"], check=True, capture_output=True)
    p = PROCS.start("proxy-nginx", argv, tmp)
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", p, 30, method="POST", body=chat_body("mock-small"))
    return port, p


def bench_proxy_argv(binary, port, upstream_port, client, threads=None):
    """The command line of sluice-bench-proxy: `client` is hyper or reqwest; threads default
    to one per core (the proxy's own default, as Sluice's thread-per-core)."""
    if client not in ("hyper", "reqwest"):
        raise ValueError(client)
    argv = [binary, "--listen", f"127.0.0.1:{port}", "--upstream", f"127.0.0.1:{upstream_port}",
            "--client", client]
    return argv + (["--threads", str(threads)] if threads else [])


def start_bench_proxy(tmp, name, upstream_port, client, binary=PROXY):
    if not os.path.exists(binary):
        raise FileNotFoundError(f"{binary} missing: run without --no-build "
                                "(cargo build --release -p sluice-bench-proxy)")
    port = free_port()
    p = PROCS.start(name, bench_proxy_argv(binary, port, upstream_port, client), tmp)
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", p, 30, method="POST", body=chat_body("mock-small"))
    return port, p
