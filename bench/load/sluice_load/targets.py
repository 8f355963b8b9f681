"""The targets: what each one is (request, headers, baseline) and how it starts.

direct / direct-stream are the upstream itself; sluice, sluice-guardrails and
sluice-stream are Sluice with generated configs; the proxy-* targets are one
extra hop without Sluice (proxies.py); sluice-nostate is an earlier
Sluice binary (--nostate-bin) and the sluice-state* targets have their state
on the request path (see state.py); litellm and portkey are the peers
installed by bench/load/install-peers.
"""

import os
import shutil
import subprocess

from .common import (ADMIN_KEY, BASE_TARGETS, CACHE_TARGETS, GUARDRAILS, LITELLM_KEY, PLUGINS, SLUICE, STATE_KEY,
                     PROXY_TARGETS, STATE_TARGETS, TPC_SERVER, TPC_TARGETS, chat_body)
from .processes import PROCS, free_port, wait_http
from .proxies import start_bench_proxy, start_nginx_proxy
from .state import start_redis, state_section


def target_specs(args, up_port, stream_port):
    """name -> dict(path, body, headers, baseline) plus, where they apply, port
    (direct targets), ttft (probe with the same request), ttft_body and
    ttft_headers (probe with a streamed variant)."""
    t = {
        "direct": dict(path="/v1/chat/completions", body=chat_body("mock-small"), headers={},
                       baseline=None, port=up_port),
        "direct-stream": dict(path="/v1/chat/completions", body=chat_body("mock-small", True), headers={},
                              baseline=None, port=stream_port, ttft=True),
        "sluice": dict(path="/v1/chat/completions", body=chat_body("bench"), headers={}, baseline="direct"),
        "sluice-nostate": dict(path="/v1/chat/completions", body=chat_body("bench"), headers={},
                               baseline="direct"),
        "sluice-guardrails": dict(path="/v1/chat/completions", body=chat_body("bench"), headers={},
                                  baseline="direct"),
        "sluice-stream": dict(path="/v1/chat/completions", body=chat_body("bench", True), headers={},
                              baseline="direct-stream", ttft=True),
        "litellm": dict(path="/v1/chat/completions", body=chat_body("bench"),
                        headers={"authorization": f"Bearer {LITELLM_KEY}"}, baseline="direct",
                        ttft_body=chat_body("bench-stream", True)),
        "portkey": dict(path="/v1/chat/completions", body=chat_body("mock-small"),
                        headers=portkey_headers(up_port), baseline="direct",
                        ttft_body=chat_body("mock-small", True), ttft_headers=portkey_headers(stream_port)),
    }
    for name in PROXY_TARGETS:
        # the direct request, verbatim, one hop further
        t[name] = dict(t["direct"], baseline="direct")
        del t[name]["port"]
    for name in STATE_TARGETS:
        t[name] = dict(path="/v1/chat/completions", body=chat_body("bench"),
                       headers={"authorization": f"Bearer {STATE_KEY}"}, baseline="sluice-nostate")
    for name in TPC_TARGETS:
        t[name] = dict(t[name[:-len("-tpc")]])
    for name in BASE_TARGETS:
        t[name] = dict(t[name.replace("-base", "")])
    deterministic = dict(chat_body("bench"), temperature=0)
    t["sluice-cache-hit"] = dict(path="/v1/chat/completions", body=deterministic, headers={}, baseline="direct")
    t["sluice-cache-miss"] = dict(path="/v1/chat/completions", body=deterministic,
                                  headers={"cache-control": "no-cache"}, baseline="direct")
    return t


def start_target(name, args, tmp, up_port, stream_port):
    """Returns (port, Popen or None)."""
    if name == "direct":
        return up_port, None
    if name == "direct-stream":
        return stream_port, None
    if name == "proxy-nginx":
        return start_nginx_proxy(tmp, up_port)
    if name in ("proxy-hyper", "proxy-reqwest"):
        return start_bench_proxy(tmp, name, up_port, name[len("proxy-"):])
    if name == "sluice":
        port, cfg = sluice_config(tmp, name, up_port, [], plugin_dir(tmp, name, []))
        return port, start_sluice(tmp, name, cfg, port)
    if name == "sluice-nostate":
        if not args.nostate_bin or not os.path.exists(args.nostate_bin):
            raise FileNotFoundError("sluice-nostate needs --nostate-bin (a Sluice build without state)")
        binary = os.path.abspath(args.nostate_bin)
        port, cfg = sluice_config(tmp, name, up_port, [], plugin_dir(tmp, name, []), binary=binary)
        return port, start_sluice(tmp, name, cfg, port, binary=binary)
    if name in BASE_TARGETS:
        if not args.base_bin or not os.path.exists(args.base_bin):
            raise FileNotFoundError(f"{name} needs --base-bin (the Sluice build to compare with)")
        binary = os.path.abspath(args.base_bin)
        server_extra = TPC_SERVER if name.endswith("-tpc") else ""
        guards = GUARDRAILS if "-guardrails" in name else []
        port, cfg = sluice_config(tmp, name, up_port, guards, plugin_dir(tmp, name, guards), binary=binary,
                                  server_extra=server_extra, metrics=True)
        return port, start_sluice(tmp, name, cfg, port, binary=binary)
    if name in STATE_TARGETS:
        redis_url = start_redis(tmp, f"redis-{name}")[0] if name.endswith("-redis") else None
        extra = state_section(name, tmp, redis_url)
        port, cfg = sluice_config(tmp, name, up_port, [], plugin_dir(tmp, name, []), extra=extra)
        return port, start_sluice(tmp, name, cfg, port)
    if name in CACHE_TARGETS:
        extra = '\n[models.bench.cache]\nmode = "exact"\n'
        port, cfg = sluice_config(tmp, name, up_port, [], plugin_dir(tmp, name, []), extra=extra)
        return port, start_sluice(tmp, name, cfg, port)
    if name in TPC_TARGETS:
        # the same target served by single-threaded runtimes, one per core
        base = name[:-len("-tpc")]
        guards = [] if base == "sluice" else GUARDRAILS
        up = stream_port if base == "sluice-stream" else up_port
        port, cfg = sluice_config(tmp, name, up, guards, plugin_dir(tmp, name, guards),
                                  server_extra=TPC_SERVER)
        return port, start_sluice(tmp, name, cfg, port)
    if name == "sluice-guardrails":
        port, cfg = sluice_config(tmp, name, up_port, GUARDRAILS, plugin_dir(tmp, name, GUARDRAILS))
        return port, start_sluice(tmp, name, cfg, port)
    if name == "sluice-stream":
        port, cfg = sluice_config(tmp, name, stream_port, GUARDRAILS, plugin_dir(tmp, name, GUARDRAILS))
        return port, start_sluice(tmp, name, cfg, port)
    if name == "litellm":
        if not litellm_bin(args.peers_dir):
            raise FileNotFoundError(f"LiteLLM not installed under {args.peers_dir} (bench/load/install-peers)")
        return start_litellm(tmp, args.peers_dir, up_port, stream_port, args.litellm_workers)
    if name == "portkey":
        if not portkey_js(args.peers_dir):
            raise FileNotFoundError(f"Portkey not installed under {args.peers_dir} (bench/load/install-peers)")
        return start_portkey(tmp, args.peers_dir, up_port)
    raise ValueError(name)


# ------------------------------------------------------------------ sluice

def sluice_config(tmp, name, upstream_port, guardrails, plugin_dir, watch=False, admin=False, extra="",
                  binary=SLUICE, server_extra="", metrics=None):
    """metrics: serve /metrics publicly (default: only for the build under test, since an older
    binary given for comparison may not know the key)."""
    port = free_port()
    metrics = binary == SLUICE if metrics is None else metrics
    guards = ", ".join(f'"{g}"' for g in guardrails)
    cfg = f"""# generated by bench/load/run (based on examples/sluice.toml)
[server]
listen = "127.0.0.1:{port}"
request-timeout-ms = 30000
{f'admin-key = "{ADMIN_KEY}"' if admin else ''}
{'metrics = "public"' if metrics else ''}
{server_extra}

[plugins]
dir = "{plugin_dir}"
watch = {'true' if watch else 'false'}

[[providers]]
name = "upstream"
kind = "openai"
base-url = "http://127.0.0.1:{upstream_port}/v1"

[models.bench]
routes = [{{ provider = "upstream", model = "mock-small" }}]
input-guardrails = []
output-guardrails = [{guards}]

[models.bench.stream]
mode = "sentence"
{extra}"""
    path = os.path.join(tmp, f"{name}.toml")
    with open(path, "w") as f:
        f.write(cfg)
    r = subprocess.run([binary, "config", "check", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"sluice config check {path}: {r.stdout}{r.stderr}")
    return port, path


def plugin_dir(tmp, name, plugins, copies=()):
    d = os.path.join(tmp, f"plugins-{name}")
    os.makedirs(d, exist_ok=True)
    for p in plugins:
        for ext in ("wasm", "toml"):
            shutil.copy(os.path.join(PLUGINS, f"{p}.{ext}"), os.path.join(d, f"{p}.{ext}"))
    for src, dst in copies:
        for ext in ("wasm", "toml"):
            shutil.copy(os.path.join(PLUGINS, f"{src}.{ext}"), os.path.join(d, f"{dst}.{ext}"))
    return d


def start_sluice(tmp, name, cfg_path, port, binary=SLUICE):
    env = dict(os.environ)
    p = PROCS.start(name, [binary, "serve", "--config", cfg_path], tmp, env=env)
    wait_http(f"http://127.0.0.1:{port}/readyz", p, 120)
    return p


# ------------------------------------------------------------------- peers

def litellm_bin(peers):
    for c in (os.path.join(peers, "litellm-venv", "bin", "litellm"),):
        if os.path.exists(c):
            return c
    return None


def portkey_js(peers):
    c = os.path.join(peers, "portkey", "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
    return c if os.path.exists(c) else None


def start_litellm(tmp, peers, upstream_port, stream_port, workers):
    port = free_port()
    cfg = os.path.join(tmp, "litellm.yaml")
    with open(cfg, "w") as f:
        f.write(f"""model_list:
  - model_name: bench
    litellm_params:
      model: openai/mock-small
      api_base: http://127.0.0.1:{upstream_port}/v1
      api_key: sk-mock
  - model_name: bench-stream
    litellm_params:
      model: openai/mock-small
      api_base: http://127.0.0.1:{stream_port}/v1
      api_key: sk-mock
litellm_settings:
  drop_params: true
general_settings:
  master_key: {LITELLM_KEY}
""")
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # 1.108 aborts on an empty one
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_MASTER_KEY": LITELLM_KEY,
                "NO_PROXY": "127.0.0.1,localhost", "LITELLM_LOG": "ERROR"})
    for k in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env.pop(k, None)
    argv = [litellm_bin(peers), "--config", cfg, "--host", "127.0.0.1", "--port", str(port),
            "--num_workers", str(workers)]
    if workers > 1:
        argv += ["--timeout_worker_healthcheck", "120"]  # busy machines need more than 5 s
    p = PROCS.start("litellm", argv, tmp, env=env)
    wait_http(f"http://127.0.0.1:{port}/health/liveliness", p, 300)
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", p, 120, method="POST",
              body=chat_body("bench"), headers={"authorization": f"Bearer {LITELLM_KEY}"})
    return port, p


def start_portkey(tmp, peers, upstream_port):
    port = free_port()
    # Portkey's server binds every interface; this preload pins it to loopback.
    pre = os.path.join(tmp, "loopback-only.cjs")
    with open(pre, "w") as f:
        f.write("""const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && (args[1] === undefined || typeof args[1] === 'function')) {
    if (args[1] === undefined) args.splice(1, 1, '127.0.0.1'); else args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
""")
    env = dict(os.environ, NODE_ENV="production")
    p = PROCS.start("portkey", ["node", "--require", pre, portkey_js(peers), f"--port={port}", "--headless"],
                    tmp, env=env)
    wait_http(f"http://127.0.0.1:{port}/v1/chat/completions", p, 120, method="POST",
              body=chat_body("mock-small"), headers=portkey_headers(upstream_port))
    return port, p


def portkey_headers(upstream_port):
    return {"x-portkey-provider": "openai",
            "x-portkey-custom-host": f"http://127.0.0.1:{upstream_port}/v1",
            "authorization": "Bearer sk-mock"}
