"""PNG charts from result JSON (matplotlib, the `bench` extra): per scenario and a summary.

Left: latency by percentile on a "nines" axis (50, 90, 99, 99.9 ... evenly spaced), every run
of the edge solid, the aiohttp baseline dashed. Right: throughput of the edge beside its
baseline per run, with the ratio written above.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

NINES_TICKS = (0, 50, 90, 99, 99.9, 99.99)


def nines(p: float) -> float:
    """Percentile -> x position: 0 -> 0, 90 -> 1, 99 -> 2, 99.9 -> 3."""
    return -math.log10(max(1e-5, 1 - p / 100))


def curve_xy(curve: Sequence[Sequence[float]]) -> tuple[list[float], list[float]]:
    points = [(p, ms) for p, ms in curve if p < 100]
    return [nines(p) for p, _ in points], [ms for _, ms in points]


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def style_latency_axis(ax: Any) -> None:
    ax.set_xticks([nines(p) for p in NINES_TICKS], [f"{p:g}" for p in NINES_TICKS])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency ms")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)


def finish_latency_axis(ax: Any, drawn: bool, title: str) -> None:
    """Style the latency panel, or say why it is empty: a pipelined run (`--pipeline`)
    records no latencies, and a log axis over no values fails."""
    ax.set_title(title)
    if drawn:
        style_latency_axis(ax)
        ax.legend(fontsize=7)
        return
    note = "no latencies recorded\n(pipelined requests)"
    ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_scenario(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    runs = data["runs"]
    drawn = False
    for i, r in enumerate(runs):
        x, y = curve_xy(r["measurement"]["curve"])
        left.plot(x, y, "-", color=f"C{i}", label=f"edge run {r['index'] + 1}")
        drawn = drawn or bool(x)
        base = r.get("baseline") or {}
        if base.get("kind") == "aiohttp":
            bx, by = curve_xy(base["measurement"]["curve"])
            left.plot(
                bx, by, "--", color=f"C{i}", alpha=0.6, label=f"baseline run {r['index'] + 1}"
            )
    s = data["summary"]
    title = f"{data['scenario']}: latency ({s['generator']}, {s['connections']} conns)"
    finish_latency_axis(left, drawn, title)
    labels = [f"run {r['index'] + 1}" for r in runs]
    edge = [r["value"] for r in runs]
    unit = s["compared"]
    xs = range(len(runs))
    right.bar([x - 0.2 for x in xs], edge, 0.4, label=f"edge {unit}")
    if any(r.get("baseline") for r in runs):
        base_vals = [(r.get("baseline") or {}).get("value", 0) for r in runs]
        right.bar([x + 0.2 for x in xs], base_vals, 0.4, label=runs[0]["baseline"]["label"])
        for pos, r in zip(xs, runs, strict=True):
            if r.get("ratio") is not None:
                top = max(r["value"] or 0, r["baseline"]["value"] or 0)
                right.text(pos, top * 1.02, f"{r['ratio']:.2f}x", ha="center", fontsize=9)
    right.set_xticks(list(xs), labels)
    right.set_ylabel(unit)
    right.set_title("throughput, edge vs baseline")
    right.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_summary(results_dir: Path, path: Path) -> list[str]:
    """One chart over every `<scenario>.json` in `results_dir`; -> the scenarios drawn."""
    datas = []
    for name in ("hit", "miss", "zipf", "avatars"):
        f = results_dir / f"{name}.json"
        if f.exists():
            datas.append(json.loads(f.read_text()))
    if not datas:
        return []
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    drawn = False
    for d in datas:
        runs = sorted(d["runs"], key=lambda r: r["measurement"]["rps"])
        median_run = runs[len(runs) // 2]
        x, y = curve_xy(median_run["measurement"]["curve"])
        left.plot(x, y, "-", label=d["scenario"])
        drawn = drawn or bool(x)
    finish_latency_axis(left, drawn, "latency by scenario (median run)")
    xs = range(len(datas))
    edge = [d["summary"]["value"]["median"] or 0 for d in datas]
    base = [(d["summary"].get("baseline") or {}).get("value", {}).get("median") or 0 for d in datas]
    right.bar([x - 0.2 for x in xs], edge, 0.4, label="edge")
    right.bar([x + 0.2 for x in xs], base, 0.4, label="baseline")
    for pos, d in zip(xs, datas, strict=True):
        r = (d["summary"].get("ratio") or {}).get("median")
        if r is not None and not math.isnan(r):
            top = max(edge[pos], base[pos]) * 1.1
            right.text(pos, top, f"{r:.2f}x", ha="center", fontsize=9)
    right.set_xticks(
        list(xs), [f"{d['scenario']}\n({d['summary']['compared']})" for d in datas], fontsize=8
    )
    right.set_yscale("log")
    shown = [v for v in edge + base if v > 0]
    if shown:
        right.set_ylim(bottom=min(shown) / 3, top=max(shown) * 2)
    right.set_title("throughput vs baseline (median of runs)")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [d["scenario"] for d in datas]
