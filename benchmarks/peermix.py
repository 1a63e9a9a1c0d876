"""What the avatars peer comparison requests, and its rows summarised: pure, no I/O.

The mix is every (user, size) pair once, shuffled with a fixed seed: the edge gets
`/avatar/{hash}?s={size}`, thumbor `/unsafe/{size}x{size}/u{i}.jpg` in the same order. A row is
the edge with `avatar_from_larger` on or off, or thumbor; ratios to thumbor are taken per run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.edgemetrics import EdgeCounters
from benchmarks.measure import Measurement, Spread, ratio, spread
from benchmarks.report import fmt
from benchmarks.scenarios import AVATAR_SIZES, MID_SOURCES
from benchmarks.stack import SAMPLES

MIX_SEED = 7
RATE_CEILING = 400.0  # misses/s at which the default mix lasts --duration seconds
WARM_SIZE = 16  # below every mix size: a variant that can never stand in for one of them
# The warm-up asks for PNG and the format check for q=79: neither is the mix's JPEG at the
# default quality, so no warm-up variant (nor an anchor made for one) can stand in for a mix size.
WARM_QUERY = "&fm=png"
CHECK_QUERY = "&q=79"
NOISY_PCT = 10.0


def mix_users(duration_s: float, sizes: int = len(AVATAR_SIZES)) -> int:
    """Users whose pairs last `duration_s` of load at RATE_CEILING misses/s."""
    return max(10, math.ceil(RATE_CEILING * duration_s / sizes))


def build_mix(
    users: int, sizes: Sequence[int] = AVATAR_SIZES, seed: int = MIX_SEED
) -> list[tuple[int, int]]:
    """Every (user, size) pair once, shuffled with `seed`."""
    pairs = [(user, size) for user in range(users) for size in sizes]
    random.Random(seed).shuffle(pairs)
    return pairs


def derivable_share(pairs: Sequence[tuple[int, int]], count: int) -> float:
    """Share of the first `count` requests whose user had a size asked before: with
    `avatar_from_larger` the photo's master, made by that first size, serves them (every
    mix size is within a master's 256 px)."""
    seen: set[int] = set()
    derivable = 0
    head = pairs[:count]
    for user, _ in head:
        derivable += user in seen
        seen.add(user)
    return derivable / len(head) if head else math.nan


def edge_path(avatar_hash: str, size: int) -> str:
    return f"/avatar/{avatar_hash}?s={size}"


def user_file(user: int) -> str:
    return f"u{user}.jpg"


def thumbor_path(user: int, size: int) -> str:
    return f"/unsafe/{size}x{size}/{user_file(user)}"


def user_photo(user: int) -> Path:
    """The sample `benchmarks.seed.seed_users` uploads for user `user`."""
    return SAMPLES / MID_SOURCES[user % len(MID_SOURCES)]


def jpeg_frame(data: bytes) -> tuple[str, int, int] | None:
    """("baseline" | "progressive", width, height) from a JPEG's SOF marker, or None."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data) and data[i] == 0xFF:
        marker, length = data[i + 1], int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return ("progressive" if marker == 0xC2 else "baseline"), width, height
        i += 2 + length
    return None


ROWS = ("edge on", "edge off", "thumbor")


@dataclass
class RowRun:
    """One row of one run: the edge with avatar_from_larger on or off, or thumbor."""

    row: str  # one of ROWS
    index: int
    measurement: Measurement
    value: float  # misses/s for the edge (from /metrics), requests/s for thumbor
    cpu_ms: dict[str, float]  # CPU ms per request of each process tree
    output: str  # "baseline JPEG" or "progressive JPEG", as checked
    edge: EdgeCounters | None = None
    derivable: float = math.nan  # edge rows: derivable_share of the requests sent
    noise: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def unit(self) -> str:
        return "req/s" if self.row == "thumbor" else "misses/s"

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "index": self.index,
            "value": round(self.value, 1),
            "unit": self.unit,
            "measurement": self.measurement.to_json(),
            "cpu_ms_per_request": {t: round(v, 3) for t, v in self.cpu_ms.items()},
            "output": self.output,
            "edge_metrics": self.edge.to_json() if self.edge else None,
            "derivable_share": round(self.derivable, 4),
            "noise": self.noise,
            "notes": self.notes,
        }


def per_run_ratios(rows: Sequence[RowRun], base: Sequence[RowRun]) -> Spread:
    """Each run's value over the same run's `base` value (measured minutes apart)."""
    by_index = {r.index: r.value for r in base}
    return spread(ratio(r.value, by_index.get(r.index, math.nan)) for r in rows)


def summarize(runs: Mapping[str, Sequence[RowRun]], titles: Mapping[str, str]) -> dict[str, Any]:
    """Median (min-max) of every figure per row; ratios to thumbor and on/off per run."""
    thumbor = runs.get("thumbor", ())
    rows: dict[str, Any] = {}
    for row, rs in runs.items():
        if not rs:
            continue
        ms = [r.measurement for r in rs]
        rows[row] = {
            "title": titles.get(row, row),
            "unit": rs[0].unit,
            "value": spread(r.value for r in rs).to_json(),
            "rps": spread(m.rps for m in ms).to_json(),
            "p50_ms": spread(m.latency(50) for m in ms).to_json(),
            "p99_ms": spread(m.latency(99) for m in ms).to_json(),
            "errors": spread(m.errors for m in ms).to_json(),
            "cpu_ms_per_request": spread(sum(r.cpu_ms.values()) for r in rs).to_json(),
            "output": ", ".join(sorted({r.output for r in rs})),
            "vs_thumbor": per_run_ratios(rs, thumbor).to_json(),
            "derivable_pct": spread(100 * r.derivable for r in rs).to_json(),
        }
    on_off = per_run_ratios(runs.get("edge on", ()), runs.get("edge off", ()))
    return {"rows": rows, "on_vs_off": on_off.to_json()}


def table(summary: Mapping[str, Any]) -> str:
    """The markdown table: one line per row, then the on/off ratio and derivable share."""
    head = "| | misses/s (edge) or req/s (thumbor) | vs thumbor | req/s | p50 ms | p99 ms "
    head += "| errors | CPU ms/req | output |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for s in summary["rows"].values():
        lines.append(
            f"| {s['title']} | {fmt(s['value'])} {s['unit']} | {fmt(s['vs_thumbor'], 2)} "
            f"| {fmt(s['rps'])} | {fmt(s['p50_ms'], 1)} | {fmt(s['p99_ms'], 1)} "
            f"| {fmt(s['errors'])} | {fmt(s['cpu_ms_per_request'], 2)} | {s['output']} |"
        )
    on_off = fmt(summary["on_vs_off"], 2)
    if on_off != "-":
        lines += ["", f"avatar_from_larger on / off: {on_off}"]
    on = summary["rows"].get("edge on")
    if on is not None and fmt(on["derivable_pct"]) != "-":
        share = fmt(on["derivable_pct"])
        lines.append(
            f"requests whose photo had a size asked earlier in the run (so a master): {share} %"
        )
    return "\n".join(lines)


def describe(r: RowRun) -> str:
    m = r.measurement
    cpu = " ".join(f"{t} {v:.2f}" for t, v in r.cpu_ms.items())
    return (
        f"{r.value:.0f} {r.unit}  {m.rps:.0f} req/s  p50 {m.latency(50):.1f} "
        f"p99 {m.latency(99):.1f} ms  errors {m.errors}  CPU ms/req {cpu}  {r.output}"
    )


def trees_ms(cpu_s: dict[str, float], requests: int) -> dict[str, float]:
    """CPU ms per request per tree, `thumbor-1` and `thumbor-2` counted as one `thumbor`."""
    out: dict[str, float] = {}
    for name, seconds in cpu_s.items():
        tree = name.split("-")[0]
        out[tree] = out.get(tree, 0.0) + (1000 * seconds / requests if requests else math.nan)
    return out


def run_notes(run: RowRun, paths: int) -> list[str]:
    """What makes this run's figures suspect."""
    notes: list[str] = []
    if run.measurement.requests < paths:
        notes.append(f"stopped after {run.measurement.requests} of {paths} requests (the cap)")
    if run.row != "thumbor" and run.edge is None:
        notes.append("no /metrics from the edge: misses unknown")
    hits = sum(run.edge.hits.values()) if run.edge is not None else 0.0
    if hits > run.measurement.connections:  # more than the repeats in flight at the end
        notes.append(f"{hits:.0f} cache hits during the run")
    if run.noise.get("other_pct", 0.0) > NOISY_PCT:
        notes.append(f"other work used {run.noise['other_pct']:.0f}% of the box")
    return notes
