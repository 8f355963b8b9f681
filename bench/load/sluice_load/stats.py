"""Pure numbers: percentiles, oha summaries, the sustained rule, overheads.

No I/O here, so bench/load/test_sluice_load.py can check it all.
"""


def pct(values, p):
    """Nearest-rank percentile p (0..100) of values; None when empty.

    round() halves to even, so where p·n/100 is an odd integer this takes the
    next rank up (p99 of 100 values is the largest); kept so figures stay
    comparable with earlier runs."""
    v = sorted(values)
    if not v:
        return None
    k = min(len(v) - 1, max(0, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]


def conns_for(rate, connections):
    """oha -c: --connections if given, else rate/4 within 50..500."""
    return connections or max(50, min(500, rate // 4))


def summarize(o, rate, duration):
    """One row of results from oha's JSON output for a run at `rate` for `duration` s."""
    codes = {k: v for k, v in (o.get("statusCodeDistribution") or {}).items()}
    errors = o.get("errorDistribution") or {}
    ok = sum(v for k, v in codes.items() if k.startswith("2"))
    sent = sum(codes.values()) + sum(errors.values())
    scheduled = int(rate * duration)
    lp = o.get("latencyPercentiles") or {}
    ms = lambda v: None if v is None else round(v * 1000, 3)
    wall = (o.get("summary") or {}).get("total") or duration
    achieved = ok / wall if wall else 0
    success = ok / sent if sent else 0.0
    return {
        "rate": rate, "duration_s": duration, "scheduled": scheduled, "sent": sent, "ok": ok,
        "status": codes, "errors": errors,
        "success": round(success, 5),
        "p50_ms": ms(lp.get("p50")), "p90_ms": ms(lp.get("p90")), "p99_ms": ms(lp.get("p99")),
        "max_ms": ms((o.get("summary") or {}).get("slowest")),
        "achieved_rps": round(achieved, 1),
        # constant arrival rate: a rate is sustained only if (nearly) every
        # scheduled request was sent and answered 2xx
        "sustained": success >= 0.999 and sent >= 0.95 * scheduled and achieved >= 0.95 * rate,
    }


def overhead_ms(run, base):
    """Target − baseline per percentile, for two summarize() rows at the same rate."""
    return {q: (round(run[f"{q}_ms"] - base[f"{q}_ms"], 3)
                if run[f"{q}_ms"] is not None and base[f"{q}_ms"] is not None else None)
            for q in ("p50", "p90", "p99", "max")}
