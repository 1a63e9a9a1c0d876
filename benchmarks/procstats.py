"""Peak memory and CPU of process trees, sampled from /proc in a background thread (no psutil).

Every `interval_s` the sampler lists each root's descendants (by parent pid), reads VmRSS from
/proc/PID/status and utime+stime from /proc/PID/stat, and keeps per process the peak RSS and
the last CPU time, and per tree the peak of the summed RSS. Transform workers, serving
processes and their helpers are all children of the roots, so they are all counted.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass
class ProcPeak:
    pid: int
    tree: str
    name: str
    role: str = "?"  # the tree's main process, its serving copies, transform workers ...
    peak_rss: int = 0  # bytes
    cpu_s: float = 0.0  # utime+stime at the last sample
    cpu_s_first: float | None = None


@dataclass
class TreeStats:
    procs: dict[int, ProcPeak] = field(default_factory=dict)
    peak_total_rss: dict[str, int] = field(default_factory=dict)
    last_total_rss: dict[str, int] = field(default_factory=dict)
    samples: int = 0

    def cpu_s(self, tree: str) -> float:
        """CPU seconds the tree used between the first and last sample of each process."""
        return sum(p.cpu_s - (p.cpu_s_first or 0.0) for p in self.procs.values() if p.tree == tree)

    def to_json(self) -> dict[str, Any]:
        return {
            "peak_total_rss_mb": {t: round(v / 2**20, 1) for t, v in self.peak_total_rss.items()},
            "processes": [
                {
                    "pid": p.pid,
                    "tree": p.tree,
                    "name": p.name,
                    "role": p.role,
                    "peak_rss_mb": round(p.peak_rss / 2**20, 1),
                }
                for p in sorted(self.procs.values(), key=lambda p: (p.tree, p.pid))
            ],
            "samples": self.samples,
        }


def children_map() -> dict[int, list[int]]:
    """parent pid -> child pids, for every process visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        stat = read_stat(int(entry))
        if stat is not None:
            kids.setdefault(int(stat[1]), []).append(int(entry))
    return kids


def descendants(root: int, kids: Mapping[int, list[int]] | None = None) -> list[int]:
    """`root` and every process below it."""
    kids = children_map() if kids is None else kids
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out


def read_stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name: [state, ppid, ...], or None if gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def rss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def process_name(pid: int) -> str:
    """A short label from the command line (`imgcdn edge`, `python -c ...`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return "?"
    if not argv:
        return "?"
    words = [os.path.basename(argv[0]), *argv[1:]]
    return " ".join(words)[:80]


def process_role(
    pid: int, root: int, name: str, known: Mapping[int, ProcPeak], ppid: int, tree: str
) -> str:
    """A short role from the command line and the parent: `edge`, `edge serving`, `worker`."""
    parent = known.get(ppid)
    if pid == root:
        return tree
    if "resource_tracker" in name:
        return "resource tracker"
    if "forkserver" in name:
        forked = parent is not None and "forkserver" in parent.name
        return "transform worker" if forked else "forkserver"
    if parent is not None and parent.pid == root and ("spawn_main" in name or name == parent.name):
        return f"{tree} serving"  # edge.workers > 1: serving processes under a supervisor
    return "worker" if "multiprocessing" in name else os.path.basename(name.split()[0])


class Sampler:
    """Samples the trees under `roots` ({label: pid}) until `stop()`; read `.stats` after."""

    def __init__(self, roots: Mapping[str, int], interval_s: float = 0.5) -> None:
        self.roots = dict(roots)
        self.interval_s = interval_s
        self.stats = TreeStats()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="procstats", daemon=True)

    def __enter__(self) -> Sampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._thread.join()
            self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        kids = children_map()
        for tree, root in self.roots.items():
            total = 0
            for pid in descendants(root, kids):
                stat = read_stat(pid)
                rss = rss_bytes(pid)
                if stat is None or rss == 0:
                    continue
                total += rss
                proc = self.stats.procs.get(pid)
                if proc is None:
                    name = process_name(pid)
                    role = process_role(pid, root, name, self.stats.procs, int(stat[1]), tree)
                    proc = self.stats.procs[pid] = ProcPeak(pid, tree, name, role)
                proc.peak_rss = max(proc.peak_rss, rss)
                proc.cpu_s = (int(stat[11]) + int(stat[12])) / TICKS
                if proc.cpu_s_first is None:
                    proc.cpu_s_first = proc.cpu_s
            self.stats.peak_total_rss[tree] = max(self.stats.peak_total_rss.get(tree, 0), total)
            self.stats.last_total_rss[tree] = total
        self.stats.samples += 1


@dataclass(frozen=True)
class BoxSnapshot:
    """Whole-machine CPU counters (seconds) and this process's own CPU incl. reaped children."""

    total: float
    busy: float  # everything but idle, iowait and steal
    irq: float  # irq + softirq: loopback networking lands here, charged to no process
    steal: float
    own: float


def box_snapshot() -> BoxSnapshot:
    with open("/proc/stat", encoding="ascii") as f:
        ticks = [int(x) for x in f.readline().split()[1:]]
    total = sum(ticks[:8])  # user nice system idle iowait irq softirq steal (guest is in user)
    idle, irq, steal = ticks[3] + ticks[4], ticks[5] + ticks[6], ticks[7]
    t = os.times()
    own = t.user + t.system + t.children_user + t.children_system
    busy = (total - idle - steal) / TICKS
    return BoxSnapshot(total / TICKS, busy, irq / TICKS, steal / TICKS, own)


def box_noise(before: BoxSnapshot, after: BoxSnapshot, measured_cpu_s: float) -> dict[str, float]:
    """Steal, interrupt time, and CPU of processes outside the measured trees and this one,
    each in % of the box.

    `measured_cpu_s` is the servers' CPU over the same interval; the load generator's is ours
    (the built-in one runs here, wrk is our reaped child).
    """
    total = max(after.total - before.total, 1e-9)
    irq = after.irq - before.irq
    other = (after.busy - before.busy) - irq - measured_cpu_s - (after.own - before.own)
    return {
        "steal_pct": round(100 * (after.steal - before.steal) / total, 1),
        "irq_pct": round(100 * irq / total, 1),
        "other_pct": round(max(0.0, 100 * other / total), 1),
    }


def tree_cpu_s(roots: Iterable[int]) -> float:
    """utime+stime of every live process under `roots`, in seconds."""
    kids = children_map()
    total = 0
    for root in roots:
        for pid in descendants(root, kids):
            stat = read_stat(pid)
            if stat is not None:
                total += int(stat[11]) + int(stat[12])
    return total / TICKS
