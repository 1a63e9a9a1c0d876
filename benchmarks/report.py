"""Results: a table on stdout, `<scenario>.json` and `<scenario>.png` (+ `summary.png`).

Figures over several runs are the median with the range in brackets. The ratio to the
baseline is computed per run (edge and baseline measured back to back) and then summarised.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.measure import Spread, spread
from benchmarks.runner import RunResult
from benchmarks.targets import Settings


def summarize(settings: Settings, runs: Sequence[RunResult]) -> dict[str, Any]:
    ms = [r.measurement for r in runs]
    trees = sorted({t for r in runs for t in r.peak_rss})
    summary: dict[str, Any] = {
        "scenario": settings.scenario,
        "generator": ms[0].generator if ms else "?",
        "connections": settings.connections,
        "pipeline": settings.pipeline,
        "duration_s": settings.duration_s,
        "runs": len(runs),
        "rps": spread(m.rps for m in ms).to_json(),
        "p50_ms": spread(m.latency(50) for m in ms).to_json(),
        "p90_ms": spread(m.latency(90) for m in ms).to_json(),
        "p99_ms": spread(m.latency(99) for m in ms).to_json(),
        "errors": spread(m.errors for m in ms).to_json(),
        "hit_ratio": spread(r.edge.hit_ratio if r.edge else math.nan for r in runs).to_json(),
        "compared": runs[0].compared if runs else "rps",
        "value": spread(r.value for r in runs).to_json(),
        "peak_rss_mb": {
            t: round(max(r.peak_rss.get(t, 0) for r in runs) / 2**20, 1) for t in trees
        },
        "cpu_ms_per_request": {
            t: round(spread(r.cpu_ms_per_request.get(t, math.nan) for r in runs).median, 3)
            for t in trees
        },
    }
    summary["other_cpu_pct"] = spread(r.noise.get("other_pct", math.nan) for r in runs).to_json()
    paced = [r for r in runs if r.paced is not None]
    if paced:
        summary["paced"] = {
            "target_rps": spread(r.paced_target for r in paced).to_json(),
            "rps": spread(r.paced.rps for r in paced if r.paced).to_json(),
            "p50_ms": spread(r.paced.latency(50) for r in paced if r.paced).to_json(),
            "p99_ms": spread(r.paced.latency(99) for r in paced if r.paced).to_json(),
        }
    baselines = [r.baseline for r in runs if r.baseline]
    if baselines:
        summary["baseline"] = baseline_summary(baselines)
        summary["ratio"] = spread(r.ratio for r in runs).to_json()
    likes = [r.like_baseline for r in runs if r.like_baseline]
    if likes:
        summary["like_baseline"] = baseline_summary(likes)
        summary["like_ratio"] = spread(r.like_ratio for r in runs).to_json()
    return summary


def baseline_summary(baselines: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One baseline over the runs: its label and unit, and its value as median (range)."""
    first = baselines[0]
    return {
        "label": first["label"],
        "unit": first["unit"],
        **({"like": first["like"]} if "like" in first else {}),
        "value": spread(b["value"] for b in baselines).to_json(),
    }


def run_json(r: RunResult) -> dict[str, Any]:
    return {
        "index": r.index,
        "measurement": r.measurement.to_json(),
        "compared": r.compared,
        "value": r.value,
        "edge_metrics": r.edge.to_json() if r.edge else None,
        "processes": r.procs,
        "cpu_ms_per_request": r.cpu_ms_per_request,
        "noise": r.noise,
        "paced": None
        if r.paced is None
        else {"target_rps": round(r.paced_target, 1), "measurement": r.paced.to_json()},
        "baseline": r.baseline,
        "ratio": None if math.isnan(r.ratio) else r.ratio,
        "like_baseline": r.like_baseline,
        "like_ratio": None if math.isnan(r.like_ratio) else r.like_ratio,
        "notes": r.notes,
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory_gb"] = round(int(Path("/proc/meminfo").read_text().split()[1]) / 2**20, 1)
    except (OSError, IndexError, ValueError):
        pass
    versions = {}
    for mod in ("aiohttp", "pyvips", "uvloop"):
        try:
            versions[mod] = __import__(mod).__version__
        except Exception:
            continue
    try:
        import pyvips

        versions["libvips"] = ".".join(str(pyvips.version(i)) for i in range(3))
    except Exception:
        pass
    if shutil.which("wrk"):
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        versions["wrk"] = (out.stdout or out.stderr).split("[")[0].replace("wrk", "").strip()
    info["versions"] = versions
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        info["commit"] = commit
    except (OSError, subprocess.CalledProcessError):
        pass
    return info


def write_json(
    out_dir: Path, settings: Settings, runs: Sequence[RunResult], command: str
) -> dict[str, Any]:
    data = {
        "scenario": settings.scenario,
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": asdict(settings),
        "summary": summarize(settings, runs),
        "runs": [run_json(r) for r in runs],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(without_nan(data), indent=1, default=str)
    (out_dir / f"{settings.scenario}.json").write_text(text)
    return data


def without_nan(value: Any) -> Any:
    """NaN (a figure nobody measured) -> null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: without_nan(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [without_nan(v) for v in value]
    return value


def pipelined(summary: dict[str, Any]) -> str:
    """The generator column's note for `--pipeline N` (older JSON has no such key)."""
    depth = summary.get("pipeline", 1)
    return f" pipelined x{depth}" if depth > 1 else ""


def fmt(s: dict[str, Any], digits: int = 0, unit: str = "") -> str:
    """`median` or `median (min-max)` from a Spread json (`unit` after the median)."""
    med, lo, hi = s["median"], s["min"], s["max"]
    if med is None or (isinstance(med, float) and math.isnan(med)):
        return "-"
    one = f"{med:.{digits}f}{unit}"
    return one if len(s["runs"]) < 2 else f"{one} ({lo:.{digits}f}-{hi:.{digits}f})"


def table(summaries: Sequence[dict[str, Any]]) -> str:
    head = (
        "| scenario | gen | req/s | edge vs baseline | baseline | p50 ms | p90 ms | p99 ms "
        "| errors | hit ratio | peak RSS MB | CPU ms/req |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summaries:
        ratio = "-"
        base = "-"
        if "baseline" in s:
            what = "" if s["compared"] == "rps" else f" of {fmt(s['value'])} {s['compared']}"
            ratio = fmt(s["ratio"], 2) + what
            base = (
                f"{fmt(s['baseline']['value'])} {s['baseline']['unit']}: {s['baseline']['label']}"
            )
        if "like_baseline" in s:  # also against a baseline doing the same work as the edge
            h = s["like_baseline"]
            ratio += f"; {fmt(s['like_ratio'], 2)} {h['like']}"
            base += f"; {fmt(h['value'])} {h['unit']}: {h['label']}"
        rss = ", ".join(f"{t} {v:.0f}" for t, v in s["peak_rss_mb"].items()) or "-"
        cpu = ", ".join(f"{t} {v:.2f}" for t, v in s["cpu_ms_per_request"].items() if v >= 0.005)
        cpu = cpu or "-"
        lines.append(
            f"| {s['scenario']} | {s['generator']} -c{s['connections']}{pipelined(s)} "
            f"| {fmt(s['rps'])} "
            f"| {ratio} | {base} | {fmt(s['p50_ms'], 2)} | {fmt(s['p90_ms'], 2)} "
            f"| {fmt(s['p99_ms'], 2)} | {fmt(s['errors'])} | {fmt(s['hit_ratio'], 3)} | {rss} "
            f"| {cpu} |"
        )
    paced = [s for s in summaries if "paced" in s]
    if paced:
        lines += [
            "",
            "| scenario | paced at req/s | got req/s | p50 ms | p99 ms |",
            "|---|---|---|---|---|",
        ]
        for s in paced:
            p = s["paced"]
            lines.append(
                f"| {s['scenario']} | {fmt(p['target_rps'])} | {fmt(p['rps'])} "
                f"| {fmt(p['p50_ms'], 2)} | {fmt(p['p99_ms'], 2)} |"
            )
    return "\n".join(lines)


def process_lines(datas: Sequence[dict[str, Any]]) -> str:
    """Per scenario, the peak RSS of each process of the stack (the first run's)."""
    lines = []
    for d in datas:
        if not d["runs"]:
            continue
        procs = d["runs"][0]["processes"].get("processes", [])
        parts = [f"{p['role']} {p['peak_rss_mb']:.0f}" for p in procs]
        if parts:
            lines.append(f"{d['scenario']}: " + ", ".join(parts))
    return "peak RSS per process, MB\n  " + "\n  ".join(lines) if lines else ""


def median_of(s: dict[str, Any]) -> float:
    return float("nan") if s["median"] is None else float(s["median"])


__all__ = ["Spread", "summarize", "table", "write_json"]
