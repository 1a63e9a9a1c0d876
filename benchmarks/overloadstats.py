"""The pure part of `benchmarks.overload`: one run's tally, its figures, the verdict, the table.

No I/O. A run's figures are a plain dict (what goes into `results/overload.json`); latencies are
nearest-rank percentiles of every response kept, split by status.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from benchmarks.edgemetrics import sample_sum
from benchmarks.measure import percentile_curve, spread
from benchmarks.procstats import ProcPeak
from benchmarks.report import fmt

QUEUE_METRIC = "imgcdn_edge_transform_queue"
GOAL_P99_MS = 50.0  # issue 7: overload answered within 50 ms
LATENCY_POINTS = (("p50_ms", 50.0), ("p90_ms", 90.0), ("p99_ms", 99.0), ("max_ms", 100.0))


@dataclass
class Tally:
    """What one run saw, filled in by the client and the /metrics sampler."""

    latencies: dict[int, list[float]] = field(default_factory=dict)  # status -> ms
    no_retry_after: int = 0  # 503s without Retry-After
    ok_cached: int = 0  # 200s served from a cache (X-Cache not MISS): not the miss path
    errors: Counter[str] = field(default_factory=Counter)  # connect/read errors, timeouts
    queue: list[float] = field(default_factory=list)  # imgcdn_edge_transform_queue samples


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """Nearest-rank p50/p90/p99/max in ms (nan when there are none)."""
    curve = dict(percentile_curve(samples_ms, [p for _, p in LATENCY_POINTS]))
    return {name: curve.get(p, math.nan) for name, p in LATENCY_POINTS}


def summarize_run(tally: Tally, duration_s: float, capacity: int) -> dict[str, Any]:
    """One run's figures: rate, the 200/503 split, their latencies, the rest, the queue."""
    counts = {status: len(ms) for status, ms in tally.latencies.items()}
    total = sum(counts.values()) + sum(tally.errors.values())
    other = {str(s): n for s, n in sorted(counts.items()) if s not in (200, 503)}
    other.update(sorted(tally.errors.items()))
    return {
        "duration_s": duration_s,
        "requests": total,
        "rps": total / duration_s if duration_s > 0 else math.nan,
        "ok": counts.get(200, 0),
        "ok_share": counts.get(200, 0) / total if total else math.nan,
        "ok_cached": tally.ok_cached,
        "overloaded": counts.get(503, 0),
        "overloaded_share": counts.get(503, 0) / total if total else math.nan,
        "latency_503": latency_summary(tally.latencies.get(503, [])),
        "latency_200": latency_summary(tally.latencies.get(200, [])),
        "no_retry_after": tally.no_retry_after,
        "other": other,
        "queue_max": max(tally.queue) if tally.queue else None,
        "queue_samples": len(tally.queue),
        "capacity": capacity,
    }


def problems(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """Broken promises (the exit code): 503s without Retry-After, a queue past capacity."""
    out = []
    for i, r in enumerate(runs, 1):
        if r["no_retry_after"]:
            out.append(f"run {i}: {r['no_retry_after']} 503s without Retry-After")
        if r["queue_max"] is not None and r["queue_max"] > r["capacity"]:
            out.append(f"run {i}: queue reached {r['queue_max']:g} > capacity {r['capacity']}")
    return out


def notes(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    """What makes a run say less than it should, and the 50 ms goal."""
    out = []
    for i, r in enumerate(runs, 1):
        if not r["overloaded"]:
            out.append(f"run {i}: no 503 at all: the edge was not overloaded (more --connections)")
        if r["ok_cached"]:
            out.append(f"run {i}: {r['ok_cached']} 200s came from a cache, not a transform")
        if r["queue_max"] is None:
            out.append(f"run {i}: {QUEUE_METRIC} not seen in /metrics: queue bound unchecked")
    p99s = [r["latency_503"]["p99_ms"] for r in runs if r["overloaded"]]
    if p99s:
        worst = max(p99s)
        verdict = "under" if worst < GOAL_P99_MS else "OVER"
        out.append(f"503 p99 {worst:.1f} ms (worst run): {verdict} the {GOAL_P99_MS:g} ms goal")
    return out


def summarize(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Median (min-max) over runs of each figure; totals for what must be zero."""

    def over(get: Any) -> dict[str, Any]:
        return spread(float(get(r)) for r in runs).to_json()

    summary: dict[str, Any] = {
        "runs": len(runs),
        "rps": over(lambda r: r["rps"]),
        "ok_share": over(lambda r: r["ok_share"]),
        "overloaded_share": over(lambda r: r["overloaded_share"]),
        "no_retry_after": sum(r["no_retry_after"] for r in runs),
        "queue_max": max(
            (r["queue_max"] for r in runs if r["queue_max"] is not None), default=None
        ),
        "capacity": max((r["capacity"] for r in runs), default=0),
    }
    for kind in ("latency_503", "latency_200"):
        summary[kind] = {
            name: over(lambda r, n=name, k=kind: r[k][n]) for name, _ in LATENCY_POINTS
        }
    summary["problems"] = problems(runs)
    summary["notes"] = notes(runs)
    return summary


def table(runs: Sequence[Mapping[str, Any]], summary: Mapping[str, Any]) -> str:
    """Markdown: one row per run, then the median (min-max) row when there are several."""
    head = (
        "| run | req/s | 200 | 503 | 503 p50 / p90 / p99 / max ms | 200 p50 / p90 / p99 / max ms "
        "| 503 w/o Retry-After | other | queue max / capacity |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]

    def lat(d: Mapping[str, float]) -> str:
        return " / ".join("-" if math.isnan(d[n]) else f"{d[n]:.1f}" for n, _ in LATENCY_POINTS)

    for i, r in enumerate(runs, 1):
        other = ", ".join(f"{k}: {v}" for k, v in r["other"].items()) or "0"
        queue = "-" if r["queue_max"] is None else f"{r['queue_max']:g}"
        lines.append(
            f"| {i} | {r['rps']:.0f} | {r['ok']} ({r['ok_share']:.0%}) "
            f"| {r['overloaded']} ({r['overloaded_share']:.0%}) | {lat(r['latency_503'])} "
            f"| {lat(r['latency_200'])} | {r['no_retry_after']} | {other} "
            f"| {queue} / {r['capacity']} |"
        )
    if len(runs) > 1:
        s = summary

        def lats(kind: str) -> str:
            return " / ".join(fmt(s[kind][n], 1) for n, _ in LATENCY_POINTS)

        queue = "-" if s["queue_max"] is None else f"{s['queue_max']:g}"
        lines.append(
            f"| median (min-max) | {fmt(s['rps'])} | {fmt(pct(s['ok_share']))} % "
            f"| {fmt(pct(s['overloaded_share']))} % | {lats('latency_503')} "
            f"| {lats('latency_200')} | {s['no_retry_after']} (total) | | "
            f"{queue} (max) / {s['capacity']} |"
        )
    return "\n".join(lines)


def pct(s: Mapping[str, Any]) -> dict[str, Any]:
    """A share's spread in percent."""
    scale = {k: None if s[k] is None else 100 * s[k] for k in ("median", "min", "max")}
    return {**scale, "runs": s["runs"]}


def queue_value(text: str) -> float | None:
    """The transform queue from a /metrics page (summed over processes), None if absent."""
    return sample_sum(text, QUEUE_METRIC)


def cpu_by_role(procs: Sequence[ProcPeak], seconds: float) -> dict[str, float]:
    """CPU of each role of the edge's tree (edge, transform worker ...) in % of one core."""
    used: dict[str, float] = {}
    for p in procs:
        used[p.role] = used.get(p.role, 0.0) + p.cpu_s - (p.cpu_s_first or 0.0)
    return {role: round(100 * s / seconds, 1) for role, s in sorted(used.items()) if seconds > 0}
