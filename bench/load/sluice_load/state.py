"""Sluice with its state on the request path, and the shared rate limit.

The state targets run Sluice with a virtual key whose every stage does work
(4 GCRA checks: requests and tokens for the key and its user; a budget
reservation over 4 counters: key and user, day and month; the ledger record
that settles it), limits and budgets far above what a run spends so nothing
is refused:

- sluice-state:       sled, group commit (the default)
- sluice-state-sync:  sled, `durability = "sync"` (an fsync per record)
- sluice-state-redis: Redis (a local redis-server, persistence off)

Their baseline is sluice-nostate: a Sluice binary from before the state was
wired into the request path (`--nostate-bin`), same config otherwise.

The shared limit (`--shared-limit`): two gateways on one Redis, a key limited
to 100 requests per minute, both driven well above it at once; what they let
through together is compared with what GCRA allows: the burst (the whole
minute's 100) plus 100 per minute of the run.
"""

import os
import socket
import subprocess
import threading
import time

from .common import STATE_KEY, chat_body, log
from .loadgen import run_oha
from .processes import PROCS, free_port
from .sampling import Sampler

# far above what a run can spend or send: every stage runs, none refuses
HUGE = 4_000_000_000


def state_section(name, tmp, redis_url=None, rpm=HUGE, tpm=HUGE):
    """The [[keys]] entry and the [state] of a state target (TOML)."""
    limits = f"{{ rpm = {rpm}, tpm = {tpm} }}"
    backend = (f'backend = "redis"\nredis-url = "{redis_url}"\nkey-prefix = "{name}:"\n' if redis_url
               else f'dir = "{os.path.join(tmp, "state-" + name)}"\n')
    durability = 'durability = "sync"\n' if name.endswith("-sync") else ""
    return f"""
[[keys]]
id = "bench"
key = "{STATE_KEY}"
user = "bench-user"
budget-usd = 1e9

[state]
{backend}{durability}
[state.budgets]
default-user = {{ day-usd = 1e9, month-usd = 1e9 }}
default-key = {{ day-usd = 1e9, month-usd = 1e9 }}

[state.rate-limits.key]
interactive = {limits}

[state.rate-limits.user]
interactive = {limits}
"""


def wait_tcp(port, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before port {port} listened")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"port {port} not listening after {timeout:.0f}s")


def start_redis(tmp, name="redis"):
    """A local redis-server (persistence off, loopback only); returns (url, Popen)."""
    d = os.path.join(tmp, name)
    os.makedirs(d, exist_ok=True)
    port = free_port()
    p = PROCS.start(name, ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                           "--appendonly", "no", "--dir", d], tmp)
    wait_tcp(port, p, 30)
    return f"redis://127.0.0.1:{port}/", p


def gcra_allowed(limit_per_min, seconds):
    """What a GCRA limit with a burst of the whole minute lets through in
    `seconds` of steady overload from a full bucket."""
    return limit_per_min + limit_per_min * seconds / 60.0


def shared_limit(args, tmp, up_port):
    """Two gateways, one Redis, one key at `--shared-limit-rpm`; oha drives
    both at `--shared-limit-rps` each for `--shared-limit-s` seconds."""
    from .targets import plugin_dir, sluice_config, start_sluice  # noqa: PLC0415 (cycle)
    rpm = args.shared_limit_rpm
    url, _redis = start_redis(tmp)
    gateways = []
    for i in (1, 2):
        name = f"sluice-shared-{i}"
        extra = state_section("shared", tmp, url, rpm=rpm)
        port, cfg = sluice_config(tmp, name, up_port, [], plugin_dir(tmp, name, []), extra=extra)
        gateways.append((port, start_sluice(tmp, name, cfg, port)))
    headers = {"authorization": f"Bearer {STATE_KEY}"}
    results = [None, None]

    def drive(i, port, proc):
        with Sampler(proc.pid) as s:
            o = run_oha(f"http://127.0.0.1:{port}/v1/chat/completions", args.shared_limit_rps,
                        args.shared_limit_s, chat_body("bench"), headers, 4)
        results[i] = (o, s.result)

    log(f"shared limit: 2 gateways x {args.shared_limit_rps} rps for {args.shared_limit_s} s "
        f"against one key at {rpm} rpm on one Redis")
    start = time.monotonic()
    threads = [threading.Thread(target=drive, args=(i, port, proc)) for i, (port, proc) in enumerate(gateways)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.monotonic() - start
    per = []
    for (o, sampled) in results:
        codes = o.get("statusCodeDistribution") or {}
        per.append({"status": codes, "ok": sum(v for k, v in codes.items() if k.startswith("2")),
                    "errors": o.get("errorDistribution") or {}, "cpu_pct": sampled["cpu_pct"]})
    for _, p in gateways:
        PROCS.stop(p)
    return summarize_shared(rpm, args.shared_limit_s, wall, args.shared_limit_rps, per)


def summarize_shared(rpm, duration_s, wall_s, rps_each, per_gateway):
    """The shared-limit result: accepted vs what GCRA allows over the run."""
    accepted = sum(g["ok"] for g in per_gateway)
    expected = gcra_allowed(rpm, duration_s)
    return {
        "limit_rpm": rpm, "duration_s": duration_s, "wall_s": round(wall_s, 2), "rps_each": rps_each,
        "offered": 2 * rps_each * duration_s, "accepted": accepted, "expected": round(expected, 1),
        "deviation_pct": round(100.0 * (accepted - expected) / expected, 3),
        "gateways": per_gateway,
    }
