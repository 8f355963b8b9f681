"""Flags and the order of phases: build, upstreams, then either the targets
(each rate, TTFT, idle RSS) or the hot swap; results written last."""

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile

from . import loadgen, report
from .common import (ALL_TARGETS, BASE_TARGETS, DEFAULT_TARGETS, PLUGINS, PROXY, PROXY_TARGETS, ROOT, SLUICE,
                     STATE_TARGETS, chat_body, git, log)
from .hotswap import hot_swap
from .measure import idle_rss_10_plugins, run_target
from .processes import PROCS, http, install_cleanup
from .sampling import busy_processes, listening_sockets, loadavg
from .state import shared_limit
from .targets import target_specs
from .upstream import pick_upstream, start_mock, start_nginx


def parser(description):
    ap = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", default="100,500,1000,2000,4000", help="comma-separated rps (default %(default)s)")
    ap.add_argument("--duration", type=int, default=15, help="seconds per rate (default %(default)s)")
    ap.add_argument("--targets", default=",".join(DEFAULT_TARGETS),
                    help="comma-separated, from: " + ", ".join(ALL_TARGETS) + " (default %(default)s). "
                    "proxy-nginx, proxy-hyper, proxy-reqwest: one extra hop and nothing else, the floor of "
                    "Sluice's Δ vs direct (nginx as a keep-alive reverse proxy, one worker per core; "
                    "bench/proxy's thread-per-core hyper forwarder with hyper-util's client or with reqwest "
                    "as Sluice builds it)")
    ap.add_argument("--base-bin", help="another Sluice build (e.g. main's) serving targets sluice-base, "
                    "sluice-base-tpc and sluice-base-guardrails-tpc, the same configs as sluice, sluice-tpc and "
                    "sluice-guardrails-tpc: an A/B in one run")
    ap.add_argument("--nostate-bin", help="a Sluice binary from before the state was on the request path: "
                    "target sluice-nostate, the baseline of the sluice-state* targets")
    ap.add_argument("--shared-limit", action="store_true",
                    help="run the shared rate limit scenario (two gateways, one Redis) instead of the targets")
    ap.add_argument("--shared-limit-rpm", type=int, default=100)
    ap.add_argument("--shared-limit-s", type=int, default=120, help="seconds of load (default %(default)s)")
    ap.add_argument("--shared-limit-rps", type=int, default=5, help="rate per gateway (default %(default)s)")
    ap.add_argument("--quick", action="store_true", help="smoke run: rates 100,500, 3 s, short probes")
    ap.add_argument("--hot-swap", action="store_true", help="run the hot swap scenario instead of the targets")
    ap.add_argument("--swaps", type=int, default=50)
    ap.add_argument("--swap-interval", type=float, default=1.0, help="seconds between replacements")
    ap.add_argument("--swap-plugin", default="pii-redact")
    ap.add_argument("--swap-builds", choices=["unique", "2"], default="unique",
                    help="unique: a never-seen build each swap (compiles); 2: alternate two builds")
    ap.add_argument("--peers-dir", default=os.path.join(ROOT, "target", "bench-peers"),
                    help="where bench/load/install-peers put LiteLLM and Portkey (default %(default)s)")
    ap.add_argument("--upstream", choices=["auto", "mock", "nginx"], default="auto")
    ap.add_argument("--upstream-probe-s", type=int, default=5)
    ap.add_argument("--connections", type=int, default=0, help="oha -c (default: rate/4 within 50..500)")
    ap.add_argument("--ttft-requests", type=int, default=200)
    ap.add_argument("--stream-token-delay-ms", type=int, default=0,
                    help="mock delay between streamed tokens (streaming upstream)")
    ap.add_argument("--litellm-workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    ap.add_argument("--idle-settle", type=float, default=5.0)
    ap.add_argument("--no-build", action="store_true", help="reuse target/release/sluice and target/sluice-plugins")
    ap.add_argument("--no-idle", action="store_true", help="skip the idle-RSS-with-10-plugins measurement")
    ap.add_argument("--results-dir", default=os.path.join(ROOT, "bench", "results"))
    ap.add_argument("--report", metavar="JSON", help="only print the markdown table of a results file")
    return ap


def resolve(ap, args):
    """Apply --quick's shorter defaults, parse --rates and --targets; returns the
    targets in measurement order, baselines added."""
    if args.quick:
        if args.rates == ap.get_default("rates"):
            args.rates = "100,500"
        if args.duration == ap.get_default("duration"):
            args.duration = 3
        args.upstream_probe_s = min(args.upstream_probe_s, 2)
        args.ttft_requests = min(args.ttft_requests, 30)
        args.pause = min(args.pause, 1.0)
        args.idle_settle = min(args.idle_settle, 2.0)
        args.swap_interval = min(args.swap_interval, 0.5)
    args.rates = [int(x) for x in args.rates.split(",") if x]
    targets = [t for t in args.targets.split(",") if t]
    for t in targets:
        if t not in ALL_TARGETS:
            ap.error(f"unknown target {t}")
    # baselines are measured first so overheads can be computed
    want = set(targets)
    if want & set(STATE_TARGETS):
        want.add("sluice-nostate")
    if want & {"sluice", "sluice-nostate", "sluice-guardrails", "sluice-cache-hit", "sluice-cache-miss",
               "sluice-tpc", "sluice-guardrails-tpc", "litellm", "portkey", *BASE_TARGETS, *PROXY_TARGETS}:
        want.add("direct")
    if want & {"sluice-stream", "sluice-stream-tpc"}:
        want.add("direct-stream")
    args.peers_dir = os.path.abspath(args.peers_dir)
    return [t for t in ALL_TARGETS if t in want]


def wants_bench_proxy(order):
    return bool({"proxy-hyper", "proxy-reqwest"} & set(order))


def build(args, order):
    if args.no_build:
        return
    # One command for both: cargo unifies their features, so the proxy links the very
    # hyper / reqwest builds the gateway does (and sluice's own build is unchanged).
    packages = ["-p", "sluice"] + (["-p", "sluice-bench-proxy"] if wants_bench_proxy(order) else [])
    log("cargo build --release " + " ".join(packages))
    subprocess.run(["cargo", "build", "--release", *packages], cwd=ROOT, check=True)
    log("scripts/build-plugins target/sluice-plugins")
    subprocess.run([os.path.join(ROOT, "scripts", "build-plugins"), "target/sluice-plugins"], cwd=ROOT,
                   check=True)


def meta(args, ts, tmp):
    """What the run is and what the machine was doing when it started."""
    return {
        "timestamp": ts, "smoke": args.quick, "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "nproc": os.cpu_count(), "rates": args.rates, "duration_s": args.duration,
        "oha": subprocess.run([loadgen.OHA, "--version"], capture_output=True, text=True).stdout.strip(),
        "loadavg_before": loadavg(), "busy_processes_at_start": busy_processes(),
        "connections": args.connections or "rate/4 within 50..500",
        "stream_token_delay_ms": args.stream_token_delay_ms,
        "nostate_bin": args.nostate_bin,
        "base_bin": args.base_bin,
        "tmp": tmp,
    }


def run_phases(args, tmp, doc, order):
    """Start the upstreams, then the hot swap or every target in `order`; fills doc."""
    mock_port, mock_p = start_mock(tmp, "mock")
    st, canned = http("POST", f"http://127.0.0.1:{mock_port}/v1/chat/completions", chat_body("mock-small"))
    assert st == 200, canned
    # the stream upstream is always the mock (nginx cannot tell stream from non-stream)
    if args.stream_token_delay_ms:
        stream_port, stream_p = start_mock(tmp, "mock-stream",
                                           ["--token-delay-ms", str(args.stream_token_delay_ms)])
    else:
        stream_port, stream_p = mock_port, mock_p
    nginx_port = nginx_p = None
    try:
        nginx_port, nginx_p = start_nginx(tmp, canned)
        doc["meta"]["nginx_listens"] = listening_sockets(nginx_p.pid)
    except (subprocess.CalledProcessError, RuntimeError, OSError) as e:
        log(f"nginx unavailable: {e}")
    if args.hot_swap:
        doc["meta"]["upstream"] = "mock"
        doc["hot_swap"] = hot_swap(args, tmp, mock_port)
        return
    if args.shared_limit:
        doc["meta"]["upstream"] = "mock"
        doc["shared_limit"] = shared_limit(args, tmp, mock_port)
        return
    up, probe = pick_upstream(args, mock_port, mock_p, nginx_port, nginx_p)
    doc["upstream_probe"] = probe
    doc["meta"]["upstream"] = up
    up_port, up_p = (mock_port, mock_p) if up == "mock" else (nginx_port, nginx_p)
    if up != "nginx" and nginx_p is not None:
        PROCS.stop(nginx_p)
    specs = target_specs(args, up_port, stream_port)
    doc["targets"] = {}
    for name in order:
        spec = specs[name]
        entry = {"baseline": spec.get("baseline")}
        doc["targets"][name] = entry
        log(f"--- {name}")
        run_target(name, spec, entry, doc["targets"], args, tmp, (up_port, up_p), (stream_port, stream_p))
    if not args.no_idle:
        log("--- idle RSS with 10 plugins")
        doc["idle_rss_10_plugins"] = idle_rss_10_plugins(args, tmp, up_port)


def main(description, argv=None):
    ap = parser(description)
    args = ap.parse_args(argv)
    if args.report:
        with open(args.report) as f:
            print(report.markdown(json.load(f)))
        return
    order = resolve(ap, args)

    install_cleanup()
    loadgen.ensure_oha()
    build(args, order)
    for f in (SLUICE, os.path.join(PLUGINS, "pii-redact.wasm"), *([PROXY] if wants_bench_proxy(order) else [])):
        if not os.path.exists(f):
            sys.exit(f"missing {f}: run without --no-build")

    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    log(f"configs and logs in {tmp}")
    ts = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    doc = {"meta": meta(args, ts, tmp)}
    try:
        run_phases(args, tmp, doc, order)
    finally:
        PROCS.stop_all()
        doc["meta"]["loadavg_after"] = loadavg()
    report.write(doc, args, ts)
