"""Hot swap under load: 200 rps through Sluice with the three guardrails while
one of them is replaced by rename, timing rename -> new SHA-256 serving."""

import hashlib
import json
import os
import threading
import time

from .common import ADMIN_KEY, GUARDRAILS, PLUGINS, chat_body
from .loadgen import run_oha
from .processes import PROCS, http
from .sampling import Sampler
from .stats import conns_for, pct, summarize
from .targets import plugin_dir, sluice_config, start_sluice


def custom_section(tag):
    """A top-level custom section (id 0): valid anywhere in a component, it
    changes the file's sha-256 without changing behaviour."""
    def leb(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            if n:
                out.append(b | 0x80)
            else:
                out.append(b)
                return bytes(out)
    name = b"sluice-bench"
    payload = leb(len(name)) + name + tag.encode()
    return b"\x00" + leb(len(payload)) + payload


def admin_sha(port, plugin):
    st, b = http("GET", f"http://127.0.0.1:{port}/admin/plugins",
                 headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=5)
    if st != 200:
        return None
    for x in json.loads(b)["plugins"]:
        if x["name"] == plugin:
            return x.get("sha256")
    return None


def hot_swap(args, tmp, up_port):
    plugin = args.swap_plugin
    d = plugin_dir(tmp, "hotswap", GUARDRAILS)
    port, cfg = sluice_config(tmp, "sluice-hotswap", up_port, GUARDRAILS, d, watch=True, admin=True)
    p = start_sluice(tmp, "sluice-hotswap", cfg, port)
    with open(os.path.join(PLUGINS, f"{plugin}.wasm"), "rb") as f:
        a = f.read()
    swaps, interval = args.swaps, args.swap_interval
    # unique: every swap is a build the gateway has never seen (it compiles);
    # 2: alternate two builds (from the third swap on, the engine's in-memory
    # compile cache answers, so this measures the swap without compilation)
    n_builds = swaps if args.swap_builds == "unique" else 2
    builds = [a + custom_section(f"build-{i}") for i in range(n_builds)]
    shas = [hashlib.sha256(b).hexdigest() for b in builds]
    duration = int(swaps * interval + 10)
    rate = 200
    spec = dict(body=chat_body("bench"))
    result = {}

    def load():
        with Sampler(p.pid) as s:
            o = run_oha(f"http://127.0.0.1:{port}/v1/chat/completions", rate, duration, spec["body"], {},
                        conns_for(rate, args.connections))
        result["load"] = summarize(o, rate, duration)
        result["load"].update(s.result)

    th = threading.Thread(target=load, daemon=True)
    th.start()
    times, timeouts = [], 0
    time.sleep(3)
    t_start = time.monotonic()
    for i in range(swaps):
        nxt = t_start + i * interval
        time.sleep(max(0, nxt - time.monotonic()))
        k = i % n_builds
        tmpf = os.path.join(d, f".{plugin}.wasm.tmp")
        with open(tmpf, "wb") as f:
            f.write(builds[k])
        os.chmod(tmpf, 0o644)
        t0 = time.monotonic()
        os.rename(tmpf, os.path.join(d, f"{plugin}.wasm"))
        while True:
            if admin_sha(port, plugin) == shas[k]:
                times.append((time.monotonic() - t0) * 1000)
                break
            if time.monotonic() - t0 > 15:
                timeouts += 1
                break
            time.sleep(0.005)
    swaps_done_s = time.monotonic() - t_start
    th.join()
    PROCS.stop(p)
    if "load" not in result:
        raise RuntimeError("the hot-swap load run failed (see oha above)")
    L = result["load"]
    return {
        "plugin": plugin, "swaps": swaps, "builds": args.swap_builds, "interval_s": interval, "rate": rate, "duration_s": duration,
        "swaps_took_s": round(swaps_done_s, 1), "swaps_within_load": swaps_done_s + 3 < duration,
        "not_seen_within_15s": timeouts,
        "rename_to_serving_ms": {"p50": round(pct(times, 50), 1) if times else None,
                                 "p90": round(pct(times, 90), 1) if times else None,
                                 "max": round(max(times), 1) if times else None,
                                 "all": [round(x, 1) for x in times]},
        "failed_requests": L["sent"] - L["ok"], "load": L,
    }
