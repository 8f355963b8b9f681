"""The results: one JSON document per run and its markdown table.

markdown() is pure (a results document in, the table out), so
`bench/load/run --report FILE.json` reprints any earlier run.
"""

import json
import os

from .common import log


def fmt(v, nd=2):
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def markdown(doc):
    """The markdown report of a results document (printed, and latest*.md)."""
    m = doc["meta"]
    out = []
    if m.get("smoke"):
        out.append("> **SMOKE RUN — not a result.** Short runs on a shared, busy machine; "
                   "only shows that the harness works.\n")
    out.append(f"Run {m['timestamp']} · sluice {m['git_commit'][:12]}{' (dirty tree)' if m['git_dirty'] else ''} · "
               f"{m['nproc']} CPUs · upstream: **{m['upstream']}** · {m['duration_s']} s per rate · "
               f"loadavg before {m['loadavg_before']} after {m['loadavg_after']}\n")
    if doc.get("targets"):
        out += load_table(doc["targets"])
    tt = {n: t["ttft"] for n, t in doc.get("targets", {}).items() if t.get("ttft")}
    if tt:
        out += ttft_table(tt)
    out += footer(doc)
    return "\n".join(out)


def load_table(targets):
    """One row per target and rate, failures, and the legend."""
    out = ["| target | rate | success | ok / scheduled | p50 ms | p90 ms | p99 ms | max ms "
           "| gateway overhead p50 / p99 ms (histogram) | Δ vs baseline p50 / p90 / p99 ms "
           "| achieved rps | RSS MB | CPU % | CPU µs / req | ctx sw / req | load 1m |",
           "|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, t in targets.items():
        if t.get("error") and not t.get("runs"):
            out.append(f"| {name} | – | **failed**: {t['error'][:80]} | | | | | | | | | | | | | |")
            continue
        for r in t["runs"]:
            oh = r.get("overhead_ms")
            ohs = " / ".join(fmt(oh[q], 3) for q in ("p50", "p90", "p99")) if oh else "(baseline)"
            gh = r.get("gateway_overhead_ms")
            ghs = f"{fmt(gh['p50'], 3)} / {fmt(gh['p99'], 3)}" if gh and gh["count"] else "–"
            rss = fmt(r["rss_mb_max"], 1) + ("" if r["process"] == "gateway" else " (upstream)")
            cpu = fmt(r["cpu_pct"], 0) + ("" if r["process"] == "gateway" else " (upstream)")
            per_req = fmt(r.get("cpu_us_per_req"), 0)
            switches = fmt(r.get("switches_per_req"), 1)
            flag = "" if r["sustained"] else " ✗"
            out.append(f"| {name} | {r['rate']} | {100 * r['success']:.2f} %{flag} | {r['ok']} / {r['scheduled']} | {fmt(r['p50_ms'])} | "
                       f"{fmt(r['p90_ms'])} | {fmt(r['p99_ms'])} | {fmt(r['max_ms'])} | {ghs} | {ohs} | "
                       f"{fmt(r['achieved_rps'], 0)} | {rss} | {cpu} | {per_req} | {switches} | {r['loadavg_after'][0]} |")
    for name, t in targets.items():
        if t.get("error") and t.get("runs"):
            out.append(f"\n{name}: stopped by an error: {t['error'][:200]}")
    out.append("\nsuccess = 2xx / requests sent. ✗ = not sustained (success < 99.9 %, or under 95 % of the "
               "scheduled requests sent or answered: the target held every connection); "
               "escalation stopped there. Gateway overhead (histogram) = Sluice's "
               "`sluice_overhead_seconds` (total − upstream time, per request) diffed over the run, "
               "p50 / p99 interpolated in its buckets (5 µs to 1 s, at most 2x apart). "
               "Δ vs baseline = target − baseline percentile at the same rate (streams against "
               "direct-stream): two distributions subtracted, so it can be negative; kept for comparison. "
               "CPU µs / req = the process's utime + stime over the run ÷ 2xx answers (the upstream's on "
               "direct rows); ctx sw / req = voluntary + involuntary context switches of its threads ÷ "
               "answers.\n")
    return out


def ttft_table(tt):
    """TTFB / TTFT percentiles of each target that was probed (name -> ttft_probe result)."""
    out = ["Time to first token (sequential streamed requests, fresh connection each, "
           "connect not timed):\n",
           "| target | requests | failed | TTFB p50 ms | TTFT p50 ms | TTFT p90 ms | TTFT p99 ms |",
           "|---|---:|---:|---:|---:|---:|---:|"]
    for n, r in tt.items():
        out.append(f"| {n} | {r['requests']} | {r['failed']} | {fmt(r['ttfb_p50_ms'], 3)} | "
                   f"{fmt(r['ttft_p50_ms'], 3)} | {fmt(r['ttft_p90_ms'], 3)} | {fmt(r['ttft_p99_ms'], 3)} |")
    out.append("")
    return out


def footer(doc):
    """Upstream probe, idle RSS and hot swap, one paragraph each when present."""
    m = doc["meta"]
    out = []
    if doc.get("upstream_probe"):
        out.append("Upstream probe (same rate, brief): " + "; ".join(
            f"{n}: success {100 * r['success']:.2f} %, p50 {fmt(r['p50_ms'], 3)} ms, p99 {fmt(r['p99_ms'], 3)} ms, "
            f"CPU {fmt(r['cpu_pct'], 0)} %" for n, r in doc["upstream_probe"].items())
            + f" → using **{m['upstream']}**.\n")
    if doc.get("idle_rss_10_plugins"):
        i = doc["idle_rss_10_plugins"]
        out.append(f"Idle RSS of Sluice with {i['plugins']} plugins loaded: **{i['rss_mb']} MB** "
                   f"(copies under other names: {', '.join(i['copies']) or 'none'}).\n")
    if doc.get("hot_swap"):
        h = doc["hot_swap"]
        r = h["rename_to_serving_ms"]
        out.append(f"Hot swap: {h['swaps']} replacements of `{h['plugin']}` ({h['builds']} builds) every {h['interval_s']} s during "
                   f"{h['rate']} rps for {h['duration_s']} s: **{h['failed_requests']} failed requests** "
                   f"({h['load']['ok']}/{h['load']['sent']} ok, status {h['load']['status']}, "
                   f"errors {h['load']['errors']}); rename → new sha serving: p50 {fmt(r['p50'], 1)} ms, "
                   f"p90 {fmt(r['p90'], 1)} ms, max {fmt(r['max'], 1)} ms; not seen within 15 s: "
                   f"{h['not_seen_within_15s']}; load p99 {fmt(h['load']['p99_ms'])} ms.\n")
    if doc.get("shared_limit"):
        out.append(shared_limit_line(doc["shared_limit"]))
    return out


def shared_limit_line(s):
    """The shared-limit scenario in one paragraph."""
    each = ", ".join(f"{g['ok']} ({g['status']})" for g in s["gateways"])
    return (f"Shared limit: two gateways on one Redis, one key at {s['limit_rpm']} RPM, each driven at "
            f"{s['rps_each']} rps for {s['duration_s']} s ({s['offered']} requests offered): "
            f"**{s['accepted']} accepted** (per gateway: {each}); GCRA allows {s['expected']} "
            f"(the minute's burst plus {s['limit_rpm']}/min): **{s['deviation_pct']:+.2f} %**.\n")


def write(doc, args, ts):
    """bench/results/<ts>[-smoke][-hotswap].json and latest[-hotswap].md; prints the table."""
    os.makedirs(args.results_dir, exist_ok=True)
    suffix = "-smoke" if args.quick else ""
    suffix += "-hotswap" if args.hot_swap else ""
    suffix += "-sharedlimit" if getattr(args, "shared_limit", False) else ""
    path = os.path.join(args.results_dir, f"{ts}{suffix}.json")
    with open(path, "w") as f:
        json.dump(doc, f, indent=2)
    md = markdown(doc)
    latest = os.path.join(args.results_dir, "latest-hotswap.md" if args.hot_swap
                          else "latest-sharedlimit.md" if getattr(args, "shared_limit", False) else "latest.md")
    with open(latest, "w") as f:
        f.write(md + "\n")
    print(md)
    log(f"wrote {path} and {latest}")
