"""`python -m benchmarks.soak [--duration S] [--rate R]`: a long run of mixed traffic.

Starts an imgcdn stack (`benchmarks.stack`), seeds avatar users through the origin API
(`benchmarks.seed`), puts a few hostile files in the edge's source folder, then sends, paced
at `--rate` requests/s (`benchmarks.loadgen.run_load`):

- 95 % good requests: 60 % Zipf-popular avatars at sizes 32..256 (`scenarios.ZipfMix`),
  40 % `/img` of the sample photos, Zipf-popular over widths and formats. Each must be 2xx/3xx.
- 5 % bad requests: bad parameters, traversals, unknown paths, a truncated JPEG, a text file
  and a 50 MB file. Each must be a 4xx: those are the *intended* 4xx, never counted as errors.

Every second it samples the RSS of every process of the stack (edge, its transform workers,
the origin). It reports the error rate (unintended statuses and socket errors over all good
and bad requests), latency p50/p99 of the good requests, and per process the RSS at the middle
and at the end of the run and the growth over the last half; for the edge's main process the
growth is judged without what its caches hold by design (the memory tier and the kept
originals, from `imgcdn_edge_cache_bytes` at the same two moments: a Zipf mix keeps adding
variants). Goals (the issue's): no unintended error, and no process growing more than 10 %
over the last half.

A warm-up (`--warmup`, 60 s) at the same rate comes first: its errors count, its latency and
RSS do not (the caches fill there). Without `--rate`, it first measures the peak of the same
mix (`--calibrate` seconds, closed loop) and soaks at 70 % of it. Results: a table on stdout
and `--out` (JSON).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import random
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.edgemetrics import sample_sum
from benchmarks.entry import add_overrides, parse_overrides
from benchmarks.loadgen import LoadOutcome, run_load
from benchmarks.procstats import children_map, descendants, process_name, rss_bytes
from benchmarks.scenarios import MID_SOURCES, ZipfMix
from benchmarks.seed import seed_users
from benchmarks.stack import SAMPLES, Stack, StackOptions

RESULTS = Path(__file__).parent / "results"
BAD_SHARE = 0.05
AVATAR_SHARE = 0.60  # of the good requests; the rest is /img
IMG_WIDTHS = (64, 100, 160, 240, 320, 480, 640, 800)
IMG_FORMATS = ("jpeg", "webp", "auto")
ACCEPT = "image/avif,image/webp,image/*,*/*;q=0.8"
GROWTH_GOAL = 0.10
BAD_REQUESTS = (
    "/img/astronaut.jpg?w=0",
    "/img/astronaut.jpg?w=abc",
    "/img/astronaut.jpg?w=1&w=2",
    "/img/astronaut.jpg?fit=zoom",
    "/img/astronaut.jpg?dpr=NaN",
    "/img/%2e%2e/etc/passwd",
    "/img/..%2fconfig.yaml",
    "/img/no-such-image.jpg?w=64",
    "/img/soak-truncated.jpg?w=64",
    "/img/soak-text.jpg?w=64",
    "/img/soak-huge.jpg?w=64",
    "/raw/soak-text.jpg",
    "/avatar/00000000000000000000000000000000?s=0",
    "/avatar/00000000000000000000000000000000?s=abc",
    "/avatar/not-a-hash",
)


@dataclass
class RssSeries:
    pid: int
    name: str
    samples: list[tuple[float, int]] = field(default_factory=list)  # (seconds, bytes)

    def around(self, t0: float, t1: float) -> float:
        """Mean RSS (bytes) of the samples taken between t0 and t1."""
        values = [rss for t, rss in self.samples if t0 <= t <= t1]
        return sum(values) / len(values) if values else math.nan


class RssSampler:
    """RSS of every process under `roots`, once per `interval_s`, in a background thread."""

    def __init__(self, roots: dict[str, int], interval_s: float = 1.0) -> None:
        self.roots = roots
        self.interval_s = interval_s
        self.series: dict[int, RssSeries] = {}
        self.started = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="soak-rss", daemon=True)

    def start(self) -> None:
        self.started = time.monotonic()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval_s):
                return

    def sample(self) -> None:
        now = time.monotonic() - self.started
        kids = children_map()
        parents = {child: parent for parent, children in kids.items() for child in children}
        for tree, root in self.roots.items():
            for pid in descendants(root, kids):
                rss = rss_bytes(pid)
                if rss == 0:
                    continue
                series = self.series.get(pid)
                if series is None:
                    name = f"{tree} {role(pid, root, parents)} (pid {pid})"
                    series = self.series[pid] = RssSeries(pid, name)
                series.samples.append((now, rss))


def role(pid: int, root: int, parents: dict[int, int]) -> str:
    """What a process of the stack is, from its command line and place in the tree."""
    if pid == root:
        return "main"
    command = process_name(pid)
    if "resource_tracker" in command:
        return "resource tracker"
    if "forkserver" in command:
        return "transform worker" if parents.get(pid) != root else "forkserver"
    return command[:40]


def good_paths(mix: ZipfMix, seed: int) -> Iterator[str]:
    """Endless good requests: Zipf avatars, and /img Zipf-popular over (source, width, fm)."""
    rng = random.Random(seed)
    variants = [(s, w, f) for w in IMG_WIDTHS for s in MID_SOURCES for f in IMG_FORMATS]
    weights = list(itertools.accumulate(1.0 / (rank + 1) for rank in range(len(variants))))
    while True:
        if rng.random() < AVATAR_SHARE:
            rank, size = mix.draw(rng)
            yield f"/avatar/{mix.hashes[rank]}?s={size}&d=identicon"
        else:
            i = min(len(variants) - 1, _bisect(weights, rng.random() * weights[-1]))
            source, width, fmt = variants[i]
            yield f"/img/{source}?w={width}&fm={fmt}"


def _bisect(cumulative: Sequence[float], x: float) -> int:
    lo, hi = 0, len(cumulative)
    while lo < hi:
        mid = (lo + hi) // 2
        if cumulative[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def bad_paths() -> Iterator[str]:
    return itertools.cycle(BAD_REQUESTS)


def write_bad_files(images: Path) -> None:
    """Hostile files the bad requests name: truncated, not an image, over max_src_bytes."""
    photo = (SAMPLES / "astronaut.jpg").read_bytes()
    (images / "soak-truncated.jpg").write_bytes(photo[: len(photo) // 2])
    (images / "soak-text.jpg").write_bytes(b"not an image\n" * 100)
    with open(images / "soak-huge.jpg", "wb") as f:
        f.write(photo)
        f.truncate(50 * 1024 * 1024)  # sparse: costs no disk


async def drive(
    url: str, mix: ZipfMix, rate: float | None, duration_s: float, connections: int, seed: int
) -> tuple[LoadOutcome, LoadOutcome]:
    """Good and bad traffic side by side; `rate` None: closed loop (the calibration)."""
    good_rate = rate * (1 - BAD_SHARE) if rate else None
    bad_rate = rate * BAD_SHARE if rate else None
    bad_connections = max(1, round(connections * BAD_SHARE * 2))
    headers = {"Accept": ACCEPT}
    good, bad = await asyncio.gather(
        run_load(url, good_paths(mix, seed), connections=connections, duration_s=duration_s,
                 headers=headers, rate=good_rate, timeout_s=30),
        run_load(url, bad_paths(), connections=bad_connections, duration_s=duration_s,
                 headers=headers, rate=bad_rate, timeout_s=30),
    )  # fmt: skip
    return good, bad


def unintended(good: LoadOutcome, bad: LoadOutcome) -> dict[str, int]:
    """Statuses that are errors: good requests not 2xx/3xx, bad ones not 4xx, socket errors."""
    errors: dict[str, int] = {}
    expected: tuple[tuple[str, LoadOutcome, range], ...] = (
        ("good", good, range(200, 400)),
        ("bad", bad, range(400, 500)),
    )
    for kind, outcome, ok in expected:
        for status, n in outcome.measurement.statuses.items():
            if not status.isdigit() or int(status) not in ok:
                errors[f"{kind}:{status}"] = errors.get(f"{kind}:{status}", 0) + n
    return errors


def percentile(values: Sequence[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


async def cache_bytes_at(edge_url: str, duration_s: float) -> tuple[float, float]:
    """What the edge holds in its caches by design (memory tier + kept originals, from
    `imgcdn_edge_cache_bytes`) at the middle and at the end of the soak: RSS that grows with
    them is the caches filling, not a leak."""
    started = time.monotonic()
    readings = []
    async with aiohttp.ClientSession() as session:
        for at in (duration_s / 2, duration_s - 1.0):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - started)))
            async with session.get(edge_url + "/metrics") as resp:
                readings.append(cached_bytes(await resp.text()))
    return readings[0], readings[1]


def cached_bytes(metrics_text: str) -> float:
    """memory + originals bytes from an edge's /metrics text."""
    held = sample_sum(
        metrics_text,
        "imgcdn_edge_cache_bytes",
        lambda labels: labels.get("tier") in ("memory", "originals"),
    )
    return held or 0.0


def net_growth(row: dict[str, Any], cached: tuple[float, float]) -> float:
    """The edge main process's growth over the last half once the caches' own growth is taken
    out (the goal applies to this; the raw growth is reported beside it)."""
    mid, end = row["rss_mid_mb"] * 2**20, row["rss_end_mb"] * 2**20
    return (end - mid - (cached[1] - cached[0])) / mid if mid else math.nan


def rss_report(sampler: RssSampler, duration_s: float) -> list[dict[str, Any]]:
    """Per process: RSS around the middle and at the end (5 s windows), and the growth."""
    mid, end = duration_s / 2, duration_s
    window = max(2.0, min(5.0, duration_s / 8))
    rows = []
    for series in sorted(sampler.series.values(), key=lambda s: s.name):
        if not series.samples or series.samples[-1][0] < end - window:
            continue  # gone before the end (e.g. a replaced worker)
        at_mid = series.around(mid - window, mid)
        at_end = series.around(end - window, end + 1.0)
        growth = (at_end - at_mid) / at_mid if at_mid and not math.isnan(at_mid) else math.nan
        peak = max(rss for _, rss in series.samples)
        rows.append(
            {
                "pid": series.pid,
                "process": series.name,
                "rss_mid_mb": round(at_mid / 2**20, 1),
                "rss_end_mb": round(at_end / 2**20, 1),
                "rss_peak_mb": round(peak / 2**20, 1),
                "growth_last_half": round(growth, 4),
                "samples": len(series.samples),
            }
        )
    return rows


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    """Start a stack, seed it, calibrate if needed, soak; return the report."""
    stack = Stack(
        StackOptions(
            transform_processes=args.transform_processes,
            overrides=args.overrides,
            keep_dir=args.keep,
        )
    )
    try:
        await stack.start()
        write_bad_files(stack.dir / "images")
        real = await seed_users(stack.origin_url, args.users, email_prefix="soak-user")
        mix = ZipfMix(real, hashes=args.hashes)
        rate = args.rate
        if rate is None:
            say(f"calibrating: {args.calibrate:g} s closed loop, {args.connections} connections")
            good, bad = await drive(stack.edge_url, mix, None, args.calibrate, args.connections, 1)
            peak = good.measurement.rps + bad.measurement.rps
            rate = round(0.7 * peak, 1)
            say(f"peak {peak:.0f} req/s -> soaking at 70 %: {rate:g} req/s")
        warmup: tuple[LoadOutcome, LoadOutcome] | None = None
        if args.warmup > 0:
            say(f"warming up: {args.warmup:g} s at {rate:g} req/s")
            warmup = await drive(stack.edge_url, mix, rate, args.warmup, args.connections, 3)
        sampler = RssSampler(stack.pids(), interval_s=1.0)
        sampler.start()
        cached = asyncio.ensure_future(cache_bytes_at(stack.edge_url, args.duration))
        say(f"soaking {args.duration:g} s at {rate:g} req/s ({stack.edge_url})")
        try:
            good, bad = await drive(stack.edge_url, mix, rate, args.duration, args.connections, 2)
        finally:
            sampler.stop()
        report = build_report(args, rate, good, bad, sampler, await cached)
        if warmup is not None:  # errors count there too; its latency and RSS do not
            report["warmup_unintended"] = unintended(*warmup)
            report["goals_met"] = report["goals_met"] and not report["warmup_unintended"]
        return report
    finally:
        stack.stop()


def build_report(
    args: argparse.Namespace,
    rate: float,
    good: LoadOutcome,
    bad: LoadOutcome,
    sampler: RssSampler,
    cached: tuple[float, float] = (0.0, 0.0),
) -> dict[str, Any]:
    errors = unintended(good, bad)
    total = good.measurement.requests + bad.measurement.requests
    total += good.measurement.socket_errors + bad.measurement.socket_errors
    rss = rss_report(sampler, args.duration)
    for row in rss:
        row["growth_judged"] = (
            round(net_growth(row, cached), 4)
            if row["process"].startswith("edge main")
            else row["growth_last_half"]
        )
    worst = max((r["growth_judged"] for r in rss), default=0.0)
    error_count = sum(errors.values())
    return {
        "command": "python -m benchmarks.soak " + " ".join(sys.argv[1:]),
        "duration_s": args.duration,
        "rate_target": rate,
        "rate_achieved": round(total / max(good.measurement.duration_s, 1e-9), 1),
        "requests": total,
        "good": good.measurement.statuses,
        "bad": bad.measurement.statuses,
        "unintended": errors,
        "error_rate": round(error_count / total, 6) if total else 0.0,
        "p50_ms": round(percentile(good.latencies_ms, 50), 2),
        "p99_ms": round(percentile(good.latencies_ms, 99), 2),
        "p99_bad_ms": round(percentile(bad.latencies_ms, 99), 2),
        "cached_mb": [round(b / 2**20, 1) for b in cached],
        "rss": rss,
        "worst_growth_last_half": worst,
        "goals_met": error_count == 0 and worst <= GROWTH_GOAL,
    }


def print_report(report: dict[str, Any]) -> None:
    print(
        f"\nsoak: {report['requests']} requests in {report['duration_s']:g} s "
        f"({report['rate_achieved']:g} req/s, target {report['rate_target']:g})"
    )
    print(f"good statuses {report['good']}  bad statuses {report['bad']}")
    print(
        f"unintended errors: {sum(report['unintended'].values())} "
        f"(rate {report['error_rate']:.4%}) {report['unintended'] or ''}"
    )
    print(f"latency of good requests: p50 {report['p50_ms']} ms, p99 {report['p99_ms']} ms")
    header = f"{'process':<40} {'mid MB':>8} {'end MB':>8} {'peak MB':>8} {'growth':>8}"
    print(f"\n{header} {'judged':>8}")
    for row in report["rss"]:
        print(
            f"{row['process']:<40} {row['rss_mid_mb']:>8} {row['rss_end_mb']:>8} "
            f"{row['rss_peak_mb']:>8} {row['growth_last_half']:>8.1%} {row['growth_judged']:>8.1%}"
        )
    mid, end = report["cached_mb"]
    print(
        f"edge caches (memory tier + kept originals): {mid} MB at the middle, {end} MB at the "
        "end; `judged` is the edge main's growth without them"
    )
    verdict = "met" if report["goals_met"] else "NOT met"
    print(
        f"\ngoals (0 unintended errors, growth <= {GROWTH_GOAL:.0%} over the last half): {verdict}"
    )


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.soak", description=__doc__.split("\n")[0]
    )
    p.add_argument("--duration", type=float, default=600.0, help="seconds of soak (600)")
    p.add_argument("--rate", type=float, help="requests/s (default: 70%% of a measured peak)")
    p.add_argument("--warmup", type=float, default=60.0, help="seconds before sampling (60)")
    p.add_argument("--calibrate", type=float, default=15.0, help="peak measurement seconds (15)")
    p.add_argument("--connections", type=int, default=16, help="connections for good traffic")
    p.add_argument("--users", type=int, default=100, help="avatar users to seed (100)")
    p.add_argument("--hashes", type=int, default=5000, help="distinct avatar hashes (5000)")
    p.add_argument("--transform-processes", type=int, default=0, help="0 = one per CPU")
    p.add_argument("--out", type=Path, default=RESULTS / "soak.json", help="JSON report path")
    p.add_argument("--keep", action="store_true", help="keep the stack's temp dir (logs)")
    add_overrides(p)
    args = p.parse_args(argv)
    if args.duration <= 0 or (args.rate is not None and args.rate <= 0) or args.connections < 1:
        p.error("--duration, --rate and --connections must be positive")
    if args.users > args.hashes:
        p.error("--users cannot exceed --hashes")
    args.overrides = parse_overrides(p, args.set)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    report = asyncio.run(soak(args))
    print_report(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"report: {args.out}")
    return 0 if report["goals_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
