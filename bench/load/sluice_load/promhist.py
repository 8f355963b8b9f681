"""Gateway overhead read from Sluice's own histogram, not from subtracting
two latency percentiles (which mixes two distributions and can come out
negative).

Scrape /metrics before and after a run, take the difference of the
`sluice_overhead_seconds` bucket counts (summed over models), and read
p50 / p90 / p99 by linear interpolation inside the bucket that holds the
rank, as Prometheus' histogram_quantile does. Pure functions except scrape().
"""

import math
import re

from .processes import http

OVERHEAD = "sluice_overhead_seconds"

# name_bucket{labels} value   (labels may hold escaped quotes)
_LINE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?P<labels>(?:[^"}]|"(?:[^"\\]|\\.)*")*)\}\s+(?P<value>\S+)')
_LABEL = re.compile(r'(?P<k>[a-zA-Z_][a-zA-Z0-9_]*)="(?P<v>(?:[^"\\]|\\.)*)"')


def parse_le(v):
    return math.inf if v in ("+Inf", "Inf") else float(v)


def buckets(text, name=OVERHEAD):
    """{upper bound: cumulative count} of histogram `name` in Prometheus text,
    summed over every series (cumulative counts of one bound add up)."""
    out = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if not m or m["name"] != f"{name}_bucket":
            continue
        labels = dict((x["k"], x["v"]) for x in _LABEL.finditer(m["labels"]))
        if "le" not in labels:
            continue
        le = parse_le(labels["le"])
        out[le] = out.get(le, 0) + float(m["value"])
    return out


def diff(before, after):
    """Bucket counts observed between two scrapes (a series born in between
    counts from zero)."""
    return {le: n - before.get(le, 0) for le, n in after.items()}


def quantile(cumulative, q):
    """The q quantile (0..1) of cumulative buckets {le: count}; None if empty.
    In the +Inf bucket it is the largest finite bound."""
    bounds = sorted(cumulative)
    if not bounds:
        return None
    total = cumulative[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    lower, below = 0.0, 0.0
    for le in bounds:
        c = cumulative[le]
        if c >= rank and c > below:
            if math.isinf(le):
                return lower
            return lower + (le - lower) * (rank - below) / (c - below)
        lower, below = (lower if math.isinf(le) else le), c
    return lower


def overhead_ms(before_text, after_text, name=OVERHEAD):
    """p50 / p90 / p99 overhead in ms of the requests between two scrapes,
    and how many there were."""
    d = diff(buckets(before_text, name), buckets(after_text, name))
    count = int(d.get(math.inf, 0))
    row = {"count": count}
    for key, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        v = quantile(d, q)
        row[key] = None if v is None else round(v * 1000, 4)
    return row


def scrape(port, headers=None):
    """The /metrics page of a gateway on `port`, or None when it has none."""
    try:
        st, body = http("GET", f"http://127.0.0.1:{port}/metrics", headers=headers, timeout=10)
    except OSError:
        return None
    return body.decode() if st == 200 else None
