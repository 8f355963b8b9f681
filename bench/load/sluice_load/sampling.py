"""What a process tree uses (RSS, CPU, listening sockets) and how busy the
machine is, read from /proc."""

import os
import statistics
import subprocess
import threading
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_tree(pid):
    """pid and all its descendants (LiteLLM and nginx run worker processes)."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                st = f.read()
            ppid = int(st[st.rindex(")") + 2:].split()[1])
            children.setdefault(ppid, []).append(int(d))
        except (OSError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_ticks(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
            fields = st[st.rindex(")") + 2:].split()
            t += int(fields[11]) + int(fields[12])  # utime + stime
        except (OSError, ValueError, IndexError):
            pass
    return t


def context_switches(pids):
    """Voluntary and involuntary context switches summed over every thread of
    `pids` (a thread that exits takes its counts with it)."""
    t = 0
    for p in pids:
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{p}/task/{tid}/status") as f:
                    for line in f:
                        if line.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")):
                            t += int(line.split()[1])
            except (OSError, ValueError):
                pass
    return t


def rss_kb(pids):
    t = 0
    for p in pids:
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        t += int(line.split()[1])
        except OSError:
            pass
    return t


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def system_busy():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]
    return sum(v), idle


def busy_processes():
    """The five busiest processes at start (to see what else loads the machine)."""
    r = subprocess.run(["ps", "-eo", "pcpu,pid,comm", "--sort=-pcpu"], capture_output=True, text=True)
    return [l.strip() for l in r.stdout.splitlines()[1:6]]


class Sampler:
    """Samples RSS (VmRSS summed over the process tree) every 250 ms; CPU from
    utime+stime deltas of the tree (ticks of processes that exit are lost)."""

    def __init__(self, pid):
        self.pid, self.samples, self.stop_ev = pid, [], threading.Event()
        self.ticks = {}

    def _tick(self):
        pids = proc_tree(self.pid)
        for p in pids:
            self.ticks[p] = cpu_ticks([p])
        self.samples.append(rss_kb(pids))

    def __enter__(self):
        self.t0 = time.monotonic()
        pids = proc_tree(self.pid)
        self.start_ticks = {p: cpu_ticks([p]) for p in pids}
        self.switches0 = context_switches(pids)
        self.sys0 = system_busy()
        self.load0 = loadavg()
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        return self

    def _run(self):
        while not self.stop_ev.wait(0.25):
            self._tick()

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.th.join()
        self._tick()
        switches = context_switches(proc_tree(self.pid)) - self.switches0
        wall = time.monotonic() - self.t0
        used = sum(t - self.start_ticks.get(p, 0) for p, t in self.ticks.items())
        tot1, idle1 = system_busy()
        tot0, idle0 = self.sys0
        busy = 1 - (idle1 - idle0) / max(1, tot1 - tot0)
        self.result = {
            "rss_mb_max": round(max(self.samples) / 1024, 1) if self.samples else None,
            "rss_mb_mean": round(statistics.mean(self.samples) / 1024, 1) if self.samples else None,
            "cpu_pct": round(100 * used / CLK_TCK / wall, 1),  # 100 = one core
            "cpu_s": used / CLK_TCK,
            "context_switches": switches,
            "machine_busy_pct": round(100 * busy, 1),
            "loadavg_before": self.load0,
            "loadavg_after": loadavg(),
        }
        return False


def listening_sockets(pid):
    """Local addresses the process tree listens on (to check loopback-only)."""
    inodes = set()
    for p in proc_tree(pid):
        try:
            for fd in os.listdir(f"/proc/{p}/fd"):
                try:
                    l = os.readlink(f"/proc/{p}/fd/{fd}")
                    if l.startswith("socket:["):
                        inodes.add(l[8:-1])
                except OSError:
                    pass
        except OSError:
            pass
    addrs = []
    for tbl in ("tcp", "tcp6"):
        with open(f"/proc/net/{tbl}") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[3] == "0A" and parts[9] in inodes:  # LISTEN
                    ip = parts[1].split(":")[0]
                    addrs.append(("v4:" if tbl == "tcp" else "v6:") + ip)
    return sorted(set(addrs))


def is_loopback(addrs):
    ok = {"v4:0100007F", "v6:00000000000000000000000001000000"}
    return all(a in ok for a in addrs)
