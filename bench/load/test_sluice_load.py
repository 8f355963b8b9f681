"""Unit tests for the harness's pure parts (no processes, no network).

    python3 -m unittest discover bench/load
"""

import unittest

import math

from sluice_load import cli, promhist, report, stats
from sluice_load.proxies import bench_proxy_argv, nginx_proxy_conf
from sluice_load.targets import target_specs
from sluice_load.hotswap import custom_section
from sluice_load.state import gcra_allowed, state_section, summarize_shared
from sluice_load.sampling import is_loopback
from sluice_load.upstream import nginx_quote


def oha(codes, errors=None, total=3.0, p50=0.0012):
    return {"statusCodeDistribution": codes, "errorDistribution": errors or {},
            "latencyPercentiles": {"p50": p50, "p90": 0.002, "p99": 0.0035},
            "summary": {"total": total, "slowest": 0.0123}}


SCRAPE_BEFORE = """# HELP sluice_overhead_seconds Gateway overhead per request: total minus upstream time.
# TYPE sluice_overhead_seconds histogram
sluice_overhead_seconds_sum{model="bench"} 0.01
sluice_overhead_seconds_count{model="bench"} 4
sluice_overhead_seconds_bucket{le="0.00001",model="bench"} 1
sluice_overhead_seconds_bucket{le="0.00002",model="bench"} 4
sluice_overhead_seconds_bucket{le="0.00005",model="bench"} 4
sluice_overhead_seconds_bucket{le="+Inf",model="bench"} 4
sluice_request_duration_seconds_bucket{le="0.001",model="bench",provider="upstream",upstream_model="m",status="200"} 4
"""

# After: 100 more requests on `bench` (10 ≤ 10 µs, 80 in (10, 20], 10 in (20, 50])
# and 100 on a model born during the run, all in (20, 50] µs, one over 50 µs.
SCRAPE_AFTER = """sluice_overhead_seconds_bucket{le="0.00001",model="bench"} 11
sluice_overhead_seconds_bucket{le="0.00002",model="bench"} 94
sluice_overhead_seconds_bucket{le="0.00005",model="bench"} 104
sluice_overhead_seconds_bucket{le="+Inf",model="bench"} 104
sluice_overhead_seconds_bucket{le="0.00001",model="other \\"x\\""} 0
sluice_overhead_seconds_bucket{le="0.00002",model="other \\"x\\""} 0
sluice_overhead_seconds_bucket{le="0.00005",model="other \\"x\\""} 99
sluice_overhead_seconds_bucket{le="+Inf",model="other \\"x\\""} 100
"""


class PromHist(unittest.TestCase):
    def test_buckets_sum_series_and_ignore_other_metrics(self):
        b = promhist.buckets(SCRAPE_AFTER)
        self.assertEqual(b, {1e-5: 11, 2e-5: 94, 5e-5: 203, math.inf: 204})
        self.assertEqual(promhist.buckets(SCRAPE_BEFORE)[math.inf], 4)

    def test_diff_counts_only_the_run(self):
        d = promhist.diff(promhist.buckets(SCRAPE_BEFORE), promhist.buckets(SCRAPE_AFTER))
        self.assertEqual(d, {1e-5: 10, 2e-5: 90, 5e-5: 199, math.inf: 200})

    def test_quantiles_interpolate_inside_the_bucket(self):
        c = {1.0: 10, 2.0: 20, 4.0: 20, math.inf: 20}
        self.assertEqual(promhist.quantile(c, 0.25), 0.5)
        self.assertEqual(promhist.quantile(c, 0.5), 1.0)
        self.assertEqual(promhist.quantile(c, 0.75), 1.5)
        self.assertEqual(promhist.quantile(c, 1.0), 2.0)
        # Ranks in +Inf read as the largest finite bound; empty is None.
        self.assertEqual(promhist.quantile({1.0: 1, 2.0: 1, math.inf: 3}, 0.9), 2.0)
        self.assertIsNone(promhist.quantile({1.0: 0, math.inf: 0}, 0.5))
        self.assertIsNone(promhist.quantile({}, 0.5))

    def test_overhead_ms_of_a_run(self):
        r = promhist.overhead_ms(SCRAPE_BEFORE, SCRAPE_AFTER)
        self.assertEqual(r["count"], 200)
        # Ranks 91..199 are in (20, 50] µs (109 requests): rank 100 is 10/109 in.
        self.assertAlmostEqual(r["p50"], (20 + 30 * 10 / 109) / 1000, places=4)
        self.assertAlmostEqual(r["p99"], (20 + 30 * 108 / 109) / 1000, places=4)
        self.assertEqual(promhist.overhead_ms(SCRAPE_AFTER, SCRAPE_AFTER)["p50"], None)


class Stats(unittest.TestCase):
    def test_pct_is_nearest_rank(self):
        v = [5, 1, 7, 3, 6, 2, 4]  # p·n/100 not an integer: see pct's note on round()
        self.assertEqual([stats.pct(v, p) for p in (0, 10, 50, 90, 99, 100)], [1, 1, 4, 7, 7, 7])
        self.assertEqual(stats.pct(v, 40), 3)
        self.assertEqual(stats.pct([3.0, 1.0, 2.0], 50), 2.0)
        self.assertIsNone(stats.pct([], 50))

    def test_summarize_counts_and_converts_to_ms(self):
        r = stats.summarize(oha({"200": 2990, "500": 3}, {"timeout": 7}), 1000, 3)
        self.assertEqual((r["scheduled"], r["sent"], r["ok"]), (3000, 3000, 2990))
        self.assertEqual(r["success"], round(2990 / 3000, 5))
        self.assertEqual((r["p50_ms"], r["p99_ms"], r["max_ms"]), (1.2, 3.5, 12.3))
        self.assertEqual(r["achieved_rps"], 996.7)

    def test_sustained_needs_success_and_the_scheduled_volume(self):
        ok = lambda codes, errors=None: stats.summarize(oha(codes, errors), 1000, 3)["sustained"]
        self.assertTrue(ok({"200": 3000}))
        self.assertTrue(ok({"200": 2998, "502": 2}))         # 99.93 %
        self.assertFalse(ok({"200": 2990}, {"reset": 10}))   # 99.67 %
        self.assertFalse(ok({"200": 2800}))                  # all 2xx, but the target held connections

    def test_summarize_of_an_empty_run(self):
        r = stats.summarize({}, 100, 3)
        self.assertEqual((r["sent"], r["success"], r["p50_ms"], r["sustained"]), (0, 0.0, None, False))

    def test_overhead_is_target_minus_baseline_per_percentile(self):
        run = {"p50_ms": 1.5, "p90_ms": 2.25, "p99_ms": None, "max_ms": 9.0}
        base = {"p50_ms": 1.0, "p90_ms": 2.0, "p99_ms": 3.0, "max_ms": 10.0}
        self.assertEqual(stats.overhead_ms(run, base), {"p50": 0.5, "p90": 0.25, "p99": None, "max": -1.0})

    def test_connections_default_to_a_quarter_of_the_rate_within_bounds(self):
        self.assertEqual([stats.conns_for(r, 0) for r in (100, 1000, 4000)], [50, 250, 500])
        self.assertEqual(stats.conns_for(4000, 7), 7)


def row(rate, success, p50, process, sustained=True, overhead=None, gateway=None):
    r = {"rate": rate, "success": success, "ok": 300, "scheduled": 300, "p50_ms": p50, "p90_ms": 2.0,
         "p99_ms": 3.0, "max_ms": None, "achieved_rps": 100.0, "rss_mb_max": 10.0, "cpu_pct": 5.0,
         "process": process, "sustained": sustained, "loadavg_after": [1.0, 0.5, 0.25]}
    if overhead:
        r["overhead_ms"] = overhead
    if gateway:
        r["gateway_overhead_ms"] = gateway
    return r


class Report(unittest.TestCase):
    doc = {
        "meta": {"timestamp": "20260101T000000Z", "smoke": True, "git_commit": "0123456789abcdef",
                 "git_dirty": False, "nproc": 2, "upstream": "mock", "duration_s": 3,
                 "loadavg_before": [0.5, 0.4, 0.3], "loadavg_after": [1.0, 0.5, 0.25]},
        "targets": {
            "direct": {"baseline": None, "runs": [row(100, 1.0, 1.0, "upstream")]},
            "sluice": {"baseline": "direct", "runs": [dict(row(100, 0.99, 1.25, "gateway", False,
                                                               {"p50": 0.25, "p90": 0.0, "p99": None, "max": None},
                                                               {"count": 300, "p50": 0.0123, "p90": 0.02,
                                                                "p99": 0.0456}),
                                                           cpu_us_per_req=512, switches_per_req=6.25)]},
            "portkey": {"baseline": "direct", "error": "Portkey not installed"},
            "sluice-stream": {"baseline": "direct-stream", "runs": [], "error": "preflight",
                              "ttft": {"requests": 30, "failed": 1, "ttfb_p50_ms": 0.5, "ttft_p50_ms": 1.0,
                                       "ttft_p90_ms": 1.5, "ttft_p99_ms": None}},
        },
    }

    def test_markdown_rows(self):
        lines = report.markdown(self.doc).splitlines()
        self.assertTrue(lines[0].startswith("> **SMOKE RUN — not a result.**"))
        self.assertIn("Run 20260101T000000Z · sluice 0123456789ab · 2 CPUs · upstream: **mock** · 3 s per rate · "
                      "loadavg before [0.5, 0.4, 0.3] after [1.0, 0.5, 0.25]", lines)
        self.assertIn("| direct | 100 | 100.00 % | 300 / 300 | 1.00 | 2.00 | 3.00 | – | – | (baseline) "
                      "| 100 | 10.0 (upstream) | 5 (upstream) | – | – | 1.0 |", lines)
        self.assertIn("| sluice | 100 | 99.00 % ✗ | 300 / 300 | 1.25 | 2.00 | 3.00 | – | 0.012 / 0.046 "
                      "| 0.250 / 0.000 / – | 100 | 10.0 | 5 | 512 | 6.2 | 1.0 |", lines)
        self.assertIn("| portkey | – | **failed**: Portkey not installed | | | | | | | | | | | | | |", lines)
        self.assertIn("| sluice-stream | – | **failed**: preflight | | | | | | | | | | | | | |", lines)
        self.assertIn("| sluice-stream | 30 | 1 | 0.500 | 1.000 | 1.500 | – |", lines)

    def test_fmt(self):
        self.assertEqual([report.fmt(None), report.fmt(1.0), report.fmt(2.345, 1), report.fmt(7)],
                         ["–", "1.00", "2.3", "7"])


class Helpers(unittest.TestCase):
    def test_custom_section_is_a_well_formed_section_0(self):
        tag = "build-" + "x" * 200  # payload over 127 bytes: a two-byte LEB128 size
        s = custom_section(tag)
        size = (s[1] & 0x7F) | (s[2] << 7)
        self.assertEqual((s[0], s[1] & 0x80, size), (0, 0x80, len(s) - 3))
        self.assertEqual(s[3], len(b"sluice-bench"))
        self.assertEqual(s[4:16], b"sluice-bench")
        self.assertEqual(s[16:], tag.encode())
        self.assertNotEqual(custom_section("build-0"), custom_section("build-1"))

    def test_nginx_quote(self):
        self.assertEqual(nginx_quote(b'{"a":"it\'s \\\\n"}'), '{"a":"it\\\'s \\\\\\\\n"}')
        with self.assertRaises(RuntimeError):
            nginx_quote(b'{"a":"$x"}')

    def test_is_loopback(self):
        self.assertTrue(is_loopback(["v4:0100007F", "v6:00000000000000000000000001000000"]))
        self.assertFalse(is_loopback(["v4:0100007F", "v4:00000000"]))


class Proxies(unittest.TestCase):
    def test_nginx_proxy_keeps_upstream_connections_alive(self):
        conf = nginx_proxy_conf("/tmp/d", 8080, 9000, 2)
        self.assertIn("worker_processes 2;", conf)
        self.assertIn("listen 127.0.0.1:8080;", conf)
        self.assertIn("server 127.0.0.1:9000;", conf)
        self.assertIn("keepalive 256;", conf)
        self.assertIn("proxy_pass http://bench_upstream;", conf)
        self.assertIn("proxy_http_version 1.1;", conf)
        self.assertIn('proxy_set_header Connection "";', conf)
        self.assertIn("access_log off;", conf)
        self.assertEqual(conf.count("{"), conf.count("}"))

    def test_bench_proxy_argv(self):
        self.assertEqual(bench_proxy_argv("/b/p", 8080, 9000, "reqwest"),
                         ["/b/p", "--listen", "127.0.0.1:8080", "--upstream", "127.0.0.1:9000", "--client", "reqwest"])
        self.assertEqual(bench_proxy_argv("/b/p", 1, 2, "hyper", threads=3)[-4:],
                         ["--client", "hyper", "--threads", "3"])
        with self.assertRaises(ValueError):
            bench_proxy_argv("/b/p", 1, 2, "curl")

    def test_proxies_send_the_direct_request_and_compare_with_direct(self):
        specs = target_specs(None, 9000, 9001)
        for name in ("proxy-nginx", "proxy-hyper", "proxy-reqwest"):
            self.assertEqual(specs[name]["baseline"], "direct")
            self.assertEqual((specs[name]["path"], specs[name]["body"], specs[name]["headers"]),
                             (specs["direct"]["path"], specs["direct"]["body"], {}))
            self.assertNotIn("port", specs[name])  # started by the harness, not the upstream itself
        self.assertEqual(specs["direct"]["port"], 9000)

    def test_a_proxy_target_brings_its_baseline_first(self):
        ap = cli.parser("test")
        args = ap.parse_args(["--targets", "sluice-tpc,proxy-reqwest,proxy-nginx"])
        self.assertEqual(cli.resolve(ap, args), ["direct", "proxy-nginx", "proxy-reqwest", "sluice-tpc"])
        self.assertTrue(cli.wants_bench_proxy(["direct", "proxy-reqwest"]))
        self.assertFalse(cli.wants_bench_proxy(["direct", "proxy-nginx"]))


class State(unittest.TestCase):
    def test_gcra_lets_through_the_burst_and_the_rate(self):
        self.assertEqual(gcra_allowed(100, 0), 100)
        self.assertEqual(gcra_allowed(100, 120), 300)

    def test_shared_limit_summary_and_line(self):
        per = [{"ok": 149, "status": {"200": 149, "429": 451}, "errors": {}, "cpu_pct": 3.0},
               {"ok": 152, "status": {"200": 152, "429": 448}, "errors": {}, "cpu_pct": 3.0}]
        s = summarize_shared(100, 120, 120.4, 5, per)
        self.assertEqual((s["accepted"], s["expected"], s["offered"]), (301, 300.0, 1200))
        self.assertAlmostEqual(s["deviation_pct"], 0.333, places=3)
        line = report.shared_limit_line(s)
        self.assertIn("**301 accepted**", line)
        self.assertIn("**+0.33 %**", line)

    def test_state_sections(self):
        sync = state_section("sluice-state-sync", "/tmp/x")
        self.assertIn('durability = "sync"', sync)
        self.assertIn('dir = "/tmp/x/state-sluice-state-sync"', sync)
        redis = state_section("sluice-state-redis", "/tmp/x", "redis://127.0.0.1:1/", rpm=100)
        self.assertIn('backend = "redis"', redis)
        self.assertIn("interactive = { rpm = 100, tpm = 4000000000 }", redis)
        self.assertNotIn("durability", redis)


if __name__ == "__main__":
    unittest.main()
