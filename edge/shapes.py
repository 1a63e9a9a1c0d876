"""Anti-aliased flat shapes (capsules and ellipses) rasterised into runs of colour, pure Python.

A shape answers one question: which x-interval does it cover on the horizontal line `y`?
Each pixel row is sampled on a few sub-rows; on each sub-row the intervals of every shape are
merged and their exact horizontal coverage is added per pixel. Only pixels an edge passes through
get their own run, so the cost is per row and per edge, not per pixel.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from edge.png import Row


@dataclass(frozen=True)
class Capsule:
    """All points within `r` of the segment (x0, y0)-(x1, y1): a stroke with round ends."""

    x0: float
    y0: float
    x1: float
    y1: float
    r: float

    def bounds(self) -> tuple[float, float]:
        return min(self.y0, self.y1) - self.r, max(self.y0, self.y1) + self.r

    def spanner(self) -> SpanFn:
        """A function y -> the x-interval covered on line y (or None), precomputed for speed."""
        r, rr = self.r, self.r * self.r
        ends = ((self.x0, self.y0), (self.x1, self.y1))
        dx, dy = self.x1 - self.x0, self.y1 - self.y0
        length = math.hypot(dx, dy)
        edges: list[tuple[float, float, float, float]] = []  # (y_min, y_max, x at y_min, dx/dy)
        if length > 0:  # the body: a parallelogram with corners at the ends +- r * normal
            nx, ny = -dy / length * r, dx / length * r
            corners = (
                (self.x0 + nx, self.y0 + ny),
                (self.x1 + nx, self.y1 + ny),
                (self.x1 - nx, self.y1 - ny),
                (self.x0 - nx, self.y0 - ny),
            )
            for (ax, ay), (bx, by) in zip(corners, corners[1:] + corners[:1], strict=True):
                if ay != by:
                    (ax, ay), (bx, by) = sorted(((ax, ay), (bx, by)), key=lambda p: p[1])
                    edges.append((ay, by, ax, (bx - ax) / (by - ay)))

        def span(y: float) -> tuple[float, float] | None:
            lo, hi = math.inf, -math.inf
            for cx, cy in ends:
                d = y - cy
                if -r <= d <= r:
                    half = math.sqrt(rr - d * d)
                    if cx - half < lo:
                        lo = cx - half
                    if cx + half > hi:
                        hi = cx + half
            for y_min, y_max, x_at, slope in edges:
                if y_min <= y <= y_max:
                    x = x_at + (y - y_min) * slope
                    if x < lo:
                        lo = x
                    if x > hi:
                        hi = x
            return (lo, hi) if lo <= hi else None

        return span


@dataclass(frozen=True)
class Ellipse:
    """A filled axis-aligned ellipse."""

    cx: float
    cy: float
    rx: float
    ry: float

    def bounds(self) -> tuple[float, float]:
        return self.cy - self.ry, self.cy + self.ry

    def spanner(self) -> SpanFn:
        cx, cy, rx, ry = self.cx, self.cy, self.rx, self.ry

        def span(y: float) -> tuple[float, float] | None:
            t = (y - cy) / ry
            if not -1.0 <= t <= 1.0:
                return None
            half = rx * math.sqrt(1.0 - t * t)
            return cx - half, cx + half

        return span


Shape = Capsule | Ellipse
SpanFn = Callable[[float], tuple[float, float] | None]


def blend_table(background: bytes, foreground: bytes) -> list[bytes]:
    """256 pixels from `background` (coverage 0) to `foreground` (coverage 255)."""
    return [
        bytes(round(b + (f - b) * level / 255) for b, f in zip(background, foreground, strict=True))
        for level in range(256)
    ]


def rasterise(
    shapes: Sequence[Shape], width: int, height: int, colours: list[bytes], subrows: int = 4
) -> list[tuple[Row, int]]:
    """Rows of runs for `shapes` painted with `colours` (a `blend_table`) over its background."""
    by_row: list[list[SpanFn]] = [[] for _ in range(height)]  # the shapes touching each row
    for shape in shapes:
        top, bottom = shape.bounds()
        span = shape.spanner()
        for j in range(max(0, math.floor(top)), min(height, math.ceil(bottom))):
            by_row[j].append(span)
    empty: Row = ((colours[0], width),)
    rows: list[tuple[Row, int]] = []
    previous: Row | None = None
    for j, active in enumerate(by_row):
        row = tuple(row_runs(active, j, width, colours, subrows)) if active else empty
        if row == previous:
            rows[-1] = (row, rows[-1][1] + 1)
        else:
            rows.append((row, 1))
            previous = row
    return rows


def row_runs(
    spans: Sequence[SpanFn], j: int, width: int, colours: list[bytes], subrows: int
) -> list[tuple[bytes, int]]:
    """The runs of pixel row `j`: coverage averaged over `subrows` horizontal samples."""
    weight = 1.0 / subrows
    steps: dict[int, float] = {}  # full-coverage changes: +weight from x onwards
    partial: dict[int, float] = {}  # extra coverage of single edge pixels
    for k in range(subrows):
        y = j + (k + 0.5) * weight
        covered = sorted(s for span in spans if (s := span(y)) is not None)
        for lo, hi in merge(covered):
            lo, hi = max(lo, 0.0), min(hi, float(width))
            if hi <= lo:
                continue
            first, last = int(lo), int(hi)
            if first == last or (last == first + 1 and hi == last):
                partial[first] = partial.get(first, 0.0) + weight * (hi - lo)
                continue
            partial[first] = partial.get(first, 0.0) + weight * (first + 1 - lo)
            steps[first + 1] = steps.get(first + 1, 0.0) + weight
            steps[last] = steps.get(last, 0.0) - weight
            if hi > last:
                partial[last] = partial.get(last, 0.0) + weight * (hi - last)
    runs: list[tuple[bytes, int]] = []
    x, level = 0, 0.0
    for p in sorted(steps.keys() | partial.keys()):
        if p >= width:
            break
        add_run(runs, colours, level, p - x)
        level += steps.get(p, 0.0)
        x = p
        if p in partial:
            add_run(runs, colours, level + partial[p], 1)
            x = p + 1
    add_run(runs, colours, level, width - x)
    return runs


def merge(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Union of sorted intervals."""
    merged: list[tuple[float, float]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


def add_run(runs: list[tuple[bytes, int]], colours: list[bytes], coverage: float, n: int) -> None:
    """Append `n` pixels at `coverage` (0..1), joining the previous run when the colour matches."""
    if n <= 0:
        return
    pixel = colours[min(255, max(0, round(coverage * 255)))]
    if runs and runs[-1][0] == pixel:
        runs[-1] = (pixel, runs[-1][1] + n)
    else:
        runs.append((pixel, n))
