"""One target at a time: start it, check one request, escalate the rate until
it is not sustained, probe TTFT; and Sluice's idle RSS with 10 plugins."""

import json
import os
import statistics
import subprocess
import time

from .common import ADMIN_KEY, GUARDRAILS, PLUGINS, log
from .loadgen import run_oha, ttft_probe
from .processes import PROCS, http
from .sampling import Sampler, is_loopback, listening_sockets, proc_tree, rss_kb
from . import promhist
from .stats import conns_for, overhead_ms, summarize
from .targets import plugin_dir, sluice_config, start_sluice, start_target


def run_target(name, spec, entry, results, args, tmp, up, stream):
    """Fill `entry` (already in `results`, the targets measured so far) for target
    `name`. `up` and `stream` are the (port, Popen) of the plain and the streaming
    upstream. A target that fails records `error` and the runs it finished."""
    up_port, up_p = up
    stream_port, stream_p = stream
    try:
        port, proc = start_target(name, args, tmp, up_port, stream_port)
    except (RuntimeError, FileNotFoundError, subprocess.CalledProcessError) as e:
        log(f"{name}: cannot start: {e}")
        entry["error"] = str(e)
        return
    try:
        st, b = http("POST", f"http://127.0.0.1:{port}{spec['path']}", spec["body"], spec["headers"],
                     timeout=60)
        if st != 200:
            raise RuntimeError(f"preflight request: status {st}: {b[:300]!r}")
        if proc is not None:
            entry["listens"] = listening_sockets(proc.pid)
            entry["loopback_only"] = is_loopback(entry["listens"])
            entry["idle_rss_mb"] = round(rss_kb(proc_tree(proc.pid)) / 1024, 1)
        uproc = stream_p if name in ("direct-stream", "sluice-stream", "sluice-stream-tpc") else up_p
        entry["runs"] = measure_target(name, spec, port, proc, args, uproc, results)
        if spec.get("ttft") or spec.get("ttft_body"):
            log(f"{name}: TTFT probe, {args.ttft_requests} sequential streamed requests")
            entry["ttft"] = ttft_probe(port, spec["path"], spec.get("ttft_headers", spec["headers"]),
                                       spec.get("ttft_body", spec["body"]), args.ttft_requests)
    except RuntimeError as e:
        log(f"{name}: {e}")
        entry["error"] = str(e)
        entry.setdefault("runs", [])
    finally:
        if proc is not None:
            PROCS.stop(proc)


def measure_target(name, spec, port, proc, args, upstream_proc, results):
    """One oha run per rate, lowest first, until a rate is not sustained."""
    rows = []
    watched = proc if proc is not None else upstream_proc
    for rate in args.rates:
        url = f"http://127.0.0.1:{port}{spec['path']}"
        # Sluice's own overhead histogram, diffed over the run (None: no /metrics).
        scraped = proc is not None and name.startswith("sluice")
        before = promhist.scrape(port) if scraped else None
        with Sampler(watched.pid) as s, Sampler(upstream_proc.pid) as su:
            o = run_oha(url, rate, args.duration, spec["body"], spec["headers"], conns_for(rate, args.connections))
        after = promhist.scrape(port) if before is not None else None
        r = summarize(o, rate, args.duration)
        if after is not None:
            r["gateway_overhead_ms"] = promhist.overhead_ms(before, after)
        r.update({k: v for k, v in s.result.items()})
        r["process"] = "gateway" if proc is not None else "upstream"
        # CPU per request: on shared cores CPU is throughput (utime + stime of
        # the watched process over the run / requests answered).
        answered = max(1, r["ok"])
        r["cpu_us_per_req"] = round(1e6 * r["cpu_s"] / answered)
        r["switches_per_req"] = round(r["context_switches"] / answered, 2)
        r["upstream_cpu_pct"] = su.result["cpu_pct"]
        base = spec.get("baseline")
        if base and base in results:
            b = next((x for x in results[base]["runs"] if x["rate"] == rate), None)
            if b:
                r["overhead_ms"] = overhead_ms(r, b)
        rows.append(r)
        log(f"{name} @ {rate} rps: success {r['success']:.4f} ({r['ok']}/{r['sent']} of {r['scheduled']}) "
            f"p50 {r['p50_ms']} p99 {r['p99_ms']} ms, {r['achieved_rps']} rps, rss {r['rss_mb_max']} MB, "
            f"cpu {r['cpu_pct']} % ({r['cpu_us_per_req']} µs/req, {r['switches_per_req']} cs/req), load {r['loadavg_after'][0]}")
        if not r["sustained"]:
            log(f"{name}: {rate} rps not sustained (success < 99.9 % or under 95 % of the rate): stop escalating")
            break
        time.sleep(args.pause)
    return rows


def idle_rss_10_plugins(args, tmp, up_port):
    names = sorted(f[:-5] for f in os.listdir(PLUGINS) if f.endswith(".wasm"))
    copies = []
    i = 0
    while len(names) + len(copies) < 10:
        src = GUARDRAILS[i % len(GUARDRAILS)]
        copies.append((src, f"{src}-copy{i + 1}"))
        i += 1
    d = plugin_dir(tmp, "idle10", names, copies)
    port, cfg = sluice_config(tmp, "sluice-idle10", up_port, GUARDRAILS, d, admin=True)
    p = start_sluice(tmp, "sluice-idle10", cfg, port)
    try:
        st, b = http("GET", f"http://127.0.0.1:{port}/admin/plugins",
                     headers={"authorization": f"Bearer {ADMIN_KEY}"})
        loaded = [x["name"] for x in json.loads(b)["plugins"] if x.get("sha256")] if st == 200 else []
        time.sleep(args.idle_settle)
        samples = []
        for _ in range(8):
            samples.append(rss_kb([p.pid]))
            time.sleep(0.25)
        return {"plugins": len(loaded), "plugin_names": loaded, "copies": [c[1] for c in copies],
                "rss_mb": round(statistics.median(samples) / 1024, 1)}
    finally:
        PROCS.stop(p)
