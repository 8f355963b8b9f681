"""Sluice load harness, run through bench/load/run (see bench/load/README.md).

common     paths, constants, the benchmark request, logging
processes  children in their own process groups, cleanup, HTTP helpers
sampling   RSS, CPU and listening sockets of a process tree from /proc; machine load
stats      pure: percentiles, oha summaries, the sustained rule, overheads
loadgen    oha (constant arrival rate) and the sequential TTFT probe
upstream   mock and nginx upstreams, and the probe that picks one
targets    what each target is and how it starts (Sluice configs, LiteLLM, Portkey)
measure    per-target rate escalation, preflight, idle RSS with 10 plugins
hotswap    guardrail replacement under load
report     the markdown table and the results files
cli        flags and the order of phases

Python 3 standard library only.
"""
