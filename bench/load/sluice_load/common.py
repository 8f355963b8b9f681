"""Paths, constants and the benchmark request shared by every module."""

import os
import subprocess
import sys

# bench/load/sluice_load/ -> repository root
ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
# cargo's output directory: CARGO_TARGET_DIR when set (as `cargo build` uses it)
TARGET_DIR = os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target")
SLUICE = os.path.join(TARGET_DIR, "release", "sluice")
# bench/proxy: the floor of one extra hop (targets proxy-hyper, proxy-reqwest)
PROXY = os.path.join(TARGET_DIR, "release", "sluice-bench-proxy")
PLUGINS = os.path.join(ROOT, "target", "sluice-plugins")
NGINX = "/usr/sbin/nginx"

# in measurement order: baselines come before the targets compared with them
ALL_TARGETS = ["direct", "proxy-nginx", "proxy-hyper", "proxy-reqwest", "sluice-nostate", "sluice-base", "sluice", "sluice-base-tpc", "sluice-tpc", "sluice-state", "sluice-state-sync",
               "sluice-state-redis", "sluice-cache-miss", "sluice-cache-hit",
               "sluice-guardrails", "sluice-base-guardrails-tpc", "sluice-guardrails-tpc", "direct-stream", "sluice-stream", "sluice-stream-tpc",
               "litellm", "portkey"]
# what a run measures without --targets (the state targets are asked for by name)
DEFAULT_TARGETS = ["direct", "sluice", "sluice-guardrails", "direct-stream", "sluice-stream", "litellm", "portkey"]
# Sluice with ledger, budgets and rate limits on the request path; compared with sluice-nostate
STATE_TARGETS = ["sluice-state", "sluice-state-sync", "sluice-state-redis"]
# the response cache (exact, sled): every request a hit, or a miss (`Cache-Control: no-cache`: the
# upstream call and the store, without the lookup); asked for by name
CACHE_TARGETS = ["sluice-cache-miss", "sluice-cache-hit"]
# sluice, sluice-guardrails and sluice-stream with `[server] runtime = "thread-per-core"`
# (one single-threaded runtime per core); asked for by name
TPC_TARGETS = ["sluice-tpc", "sluice-guardrails-tpc", "sluice-stream-tpc"]
TPC_SERVER = 'runtime = "thread-per-core"'
# sluice, sluice-tpc and sluice-guardrails-tpc served by another build (--base-bin, e.g. main's) in the
# same run, with the same plugin files: an A/B of a change; asked for by name
BASE_TARGETS = ["sluice-base", "sluice-base-tpc", "sluice-base-guardrails-tpc"]
# one extra hop and nothing else, compared with direct like sluice (proxies.py); asked for by name
PROXY_TARGETS = ["proxy-nginx", "proxy-hyper", "proxy-reqwest"]
GUARDRAILS = ["pii-redact", "length-check", "business-rules"]
PROMPT = ("Summarise our gateway for a customer in two sentences. Mention that "
          "guardrails check every answer and that streams are checked window by window.")
LITELLM_KEY = "sk-bench-master-key"
ADMIN_KEY = "bench-admin-key"
STATE_KEY = "sk-bench-state-key"


def log(*a):
    print("[bench]", *a, file=sys.stderr, flush=True)


def chat_body(model, stream=False):
    b = {"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 128}
    if stream:
        b["stream"] = True
    return b


def git(*a):
    r = subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True)
    return r.stdout.strip()
