"""One load run's outcome, whichever generator produced it, and the statistics over several runs.

Pure: no I/O. Latencies are kept as a percentile curve, (percentile, milliseconds) pairs, the
form both generators can give (wrk only reports percentiles; the built-in one sorts its samples).
"""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

# The points of the latency curve every run records (and the chart plots).
CURVE_PERCENTILES = (
    0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 75.0, 80.0, 85.0, 90.0,
    92.5, 95.0, 96.0, 97.0, 98.0, 99.0, 99.5, 99.9, 99.95, 99.99, 100.0,
)  # fmt: skip


@dataclass
class Measurement:
    """Counts and latency of one measured load run."""

    generator: str  # "wrk" or "builtin"
    connections: int
    duration_s: float
    requests: int  # responses received (any status)
    statuses: dict[str, int] = field(default_factory=dict)  # "200" -> n (builtin only)
    non_2xx_3xx: int = 0  # responses outside 200..399
    socket_errors: int = 0  # connect/read/write errors and timeouts
    body_bytes: int = 0  # response bytes (wrk: headers included)
    curve: list[tuple[float, float]] = field(default_factory=list)  # (percentile, ms)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx_3xx + self.socket_errors

    def latency(self, percentile: float) -> float:
        """Latency in ms at `percentile`, interpolated on the recorded curve (nan if none)."""
        if not self.curve:
            return math.nan
        points = sorted(self.curve)
        for (p0, v0), (p1, v1) in itertools.pairwise(points):
            if p0 <= percentile <= p1:
                return v0 if p1 == p0 else v0 + (v1 - v0) * (percentile - p0) / (p1 - p0)
        return points[-1][1] if percentile > points[-1][0] else points[0][1]

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rps"] = round(self.rps, 1)
        data["errors"] = self.errors
        for p in (50, 90, 99, 99.9):
            data[f"p{p:g}_ms"] = round(self.latency(p), 3)
        return data


def percentile_curve(
    samples_ms: Sequence[float], points: Iterable[float] = CURVE_PERCENTILES
) -> list[tuple[float, float]]:
    """Nearest-rank percentiles of `samples_ms` at `points` (empty when there are no samples)."""
    ordered = sorted(samples_ms)
    if not ordered:
        return []
    n = len(ordered)
    curve = []
    for p in points:
        rank = max(1, math.ceil(p / 100 * n))
        curve.append((p, ordered[min(rank, n) - 1]))
    return curve


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over repeated runs."""

    median: float
    low: float
    high: float
    values: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"median": self.median, "min": self.low, "max": self.high, "runs": self.values}


def spread(values: Iterable[float]) -> Spread:
    vals = tuple(v for v in values if not math.isnan(v))
    if not vals:
        return Spread(math.nan, math.nan, math.nan, ())
    return Spread(statistics.median(vals), min(vals), max(vals), vals)


ERRORS_OK = 0.01  # past this share of failed requests a run's rate is no figure to compare


def too_many_errors(m: Measurement) -> bool:
    """Whether `m` failed too often for its rate to mean anything (no answers at all included):
    a server answering every request with a 400 is fast, and no ratio may say otherwise."""
    return m.requests == 0 or m.errors > ERRORS_OK * m.requests


def failed_text(m: Measurement) -> str:
    statuses = ", ".join(f"{k}: {v}" for k, v in sorted(m.statuses.items()))
    return (
        f"{m.errors} of {m.requests} requests failed"
        + (f" ({statuses})" if statuses else "")
        + ": no ratio"
    )


def ratio(value: float, baseline: float) -> float:
    return value / baseline if baseline and not math.isnan(baseline) else math.nan
