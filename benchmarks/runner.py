"""Run one scenario `runs` times: prepare, warm up, measure the edge, measure its baseline.

Each run measures the edge (with /metrics before/after and /proc sampling for RSS and CPU)
and then, in the same run, the matching baseline with the same generator settings:
hit/zipf -> the bare aiohttp handler, miss/avatars -> bare pyvips. Two scenarios also measure
a like-for-like ceiling: `hit` the bare handler sending the edge's hit headers (DESIGN's
contract), `miss` bare pyvips rendering from decoded pixels, as the edge's workers do for the
sources they hold (transforms/held.py).
`avatars` gets a fresh stack every run, so its lookup and variant caches start cold each time.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import scenarios as sc
from benchmarks.drive import Driver, wait_quiet
from benchmarks.edgemetrics import EdgeCounters, scrape
from benchmarks.measure import Measurement, failed_text, ratio, too_many_errors
from benchmarks.plans import MISS_PHASE, Baseline, Plan, Planner
from benchmarks.procstats import Sampler, box_noise, box_snapshot
from benchmarks.targets import Settings, Target, fetch, open_target

DEFAULT_WARMUP_S = {"hit": 2.0, "miss": 2.0, "zipf": 2.0, "avatars": 0.0}
NOISY_PCT = 10.0  # other work above this share of the box taints a measurement


@dataclass
class RunResult:
    index: int
    measurement: Measurement
    compared: str  # what the baseline ratio compares: "rps" or "misses/s"
    value: float  # the edge's figure of that kind
    edge: EdgeCounters | None = None
    procs: dict[str, Any] = field(default_factory=dict)
    peak_rss: dict[str, int] = field(default_factory=dict)  # tree -> bytes
    cpu_ms_per_request: dict[str, float] = field(default_factory=dict)
    noise: dict[str, float] = field(default_factory=dict)
    paced: Measurement | None = None  # the same load paced at `paced_target` requests/s
    paced_target: float = math.nan
    baseline: dict[str, Any] | None = None
    like_baseline: dict[str, Any] | None = None  # the same work as the edge's; "like" says how
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return ratio(self.value, self.baseline["value"]) if self.baseline else math.nan

    @property
    def like_ratio(self) -> float:
        b = self.like_baseline
        return ratio(self.value, b["value"]) if b else math.nan


class ScenarioRunner:
    def __init__(self, settings: Settings, driver: Driver) -> None:
        self.settings = settings
        self.driver = driver
        self.progress = driver.progress
        self.tmp = Path(tempfile.mkdtemp(prefix="imgcdn-bench-run-"))
        warmup = settings.warmup_s
        self.warmup_s = DEFAULT_WARMUP_S[settings.scenario] if warmup is None else warmup
        self.planner = Planner(settings, driver, self.tmp, self.warmup_s)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def run(self) -> list[RunResult]:
        results: list[RunResult] = []
        if self.settings.scenario == "avatars":  # cold caches: a fresh stack per run
            for i in range(self.settings.runs):
                async with open_target(self.settings) as target:
                    plan = await self.planner.prepare(target)
                    results.append(await self.one_run(target, plan, i))
            return results
        async with open_target(self.settings) as target:
            plan = await self.planner.prepare(target)
            for i in range(self.settings.runs):
                results.append(await self.one_run(target, plan, i))
        return results

    async def one_run(self, target: Target, plan: Plan, index: int) -> RunResult:
        s = self.settings
        label = f"[{s.scenario} {index + 1}/{s.runs}]"
        with Sampler(target.pids()) as sampler:
            if self.warmup_s > 0:
                args = plan.load_args(index)
                await self.driver.run(target.edge_url, f"{label} warm-up", self.warmup_s, **args)
            await wait_quiet(self.progress, s.quiet_wait_s)
            args = plan.load_args(index)
            before = await scrape(target.edge_url)
            sampler.sample()
            cpu0 = {t: sampler.stats.cpu_s(t) for t in target.pids()}
            box0 = box_snapshot()
            m = await self.driver.run(
                target.edge_url,
                f"{label} measuring",
                s.duration_s,
                extra=lambda: rss_text(sampler.stats.last_total_rss),
                **args,
            )
            box1 = box_snapshot()
            sampler.sample()
            cpu = {t: sampler.stats.cpu_s(t) - cpu0[t] for t in cpu0}
            after = await scrape(target.edge_url)
        edge = after.minus(before) if after and before else None
        result = RunResult(
            index,
            m,
            plan.compared,
            compared_value(m, plan.compared, edge),
            edge,
            sampler.stats.to_json(),
            dict(sampler.stats.peak_total_rss),
            {t: 1000 * c / m.requests for t, c in cpu.items() if m.requests},
            box_noise(box0, box1, sum(cpu.values())) if cpu else {},  # --url: servers unseen
            notes=list(plan.notes),
        )
        await self.check_after(target, plan, result)
        self.progress.note(f"{label} edge: {describe(result)}")
        if s.paced:
            rate = m.rps * 0.5 if s.paced == "half" else float(s.paced)
            result.paced_target = rate
            result.paced = p = await self.driver.run(
                target.edge_url, f"{label} paced", s.duration_s, rate=rate, **plan.load_args(index)
            )
            self.progress.note(
                f"{label} paced at {rate:.0f} rps: got {p.rps:.0f} rps  p50 {p.latency(50):.2f} "
                f"p90 {p.latency(90):.2f} p99 {p.latency(99):.2f} ms  errors {p.errors}"
            )
        if s.baseline:
            result.baseline = await self.measure_baseline(label, plan.baseline, result.value)
            if plan.like_baseline is not None:
                result.like_baseline = await self.measure_baseline(
                    label, plan.like_baseline, result.value
                )
        return result

    async def measure_baseline(
        self, label: str, baseline: Baseline, edge_value: float
    ) -> dict[str, Any]:
        """`baseline` measured on a quiet box, and a progress line with the edge's ratio."""
        await wait_quiet(self.progress, self.settings.quiet_wait_s)
        b = await baseline()
        self.progress.note(
            f"{label} baseline {b['label']}: {b['value']:.0f} {b['unit']}"
            f"  -> edge/baseline {ratio(edge_value, b['value']):.2f}{noise_text(b['noise'])}"
        )
        return b

    async def check_after(self, target: Target, plan: Plan, result: RunResult) -> None:
        """Notes on anything that makes this run's figures suspect."""
        m = result.measurement
        if result.noise.get("other_pct", 0) > NOISY_PCT:
            result.notes.append(f"other work used {result.noise['other_pct']:.0f}% of the box")
        if self.settings.scenario == "miss" and m.requests > MISS_PHASE:
            result.notes.append("miss URLs wrapped around: some requests were hits")
        if result.edge is None:
            result.notes.append("no /metrics from the edge: hit ratio unknown")
        if too_many_errors(m):
            result.notes.append(failed_text(m))
        if plan.mix is not None and plan.mix.real:  # a seeded user still gets their photo
            path = sc.avatar_path(plan.mix.hashes[0], 64)
            status, headers, _ = await fetch(target.edge_url + path)
            if status != 200 or headers.get("Content-Type") != "image/jpeg":
                result.notes.append(f"{path} came back {status} {headers.get('Content-Type')}")


def compared_value(m: Measurement, compared: str, edge: EdgeCounters | None) -> float:
    """The figure a run is compared by: requests/s, or the edge's misses/s; nan (no ratio)
    when too many requests failed or the misses are unknown."""
    if too_many_errors(m):
        return math.nan
    if compared == "misses/s":
        return edge.misses / m.duration_s if edge else math.nan
    return m.rps


def rss_text(rss: dict[str, int]) -> str:
    text = "  ".join(f"{tree} {v / 2**20:.0f} MB" for tree, v in sorted(rss.items()))
    return text or "-"


def noise_text(noise: dict[str, float]) -> str:
    other = noise.get("other_pct", 0.0)
    return f"  (other work {other:.0f}% of the box)" if other > NOISY_PCT else ""


def describe(r: RunResult) -> str:
    m = r.measurement
    hit = ""
    if r.edge and not math.isnan(r.edge.hit_ratio):
        hit = f"  hit ratio {r.edge.hit_ratio:.3f}"
    misses = f"  misses/s {r.value:.0f}" if r.compared == "misses/s" else ""
    if r.edge and r.edge.full_gc_text():
        hit += f"  {r.edge.full_gc_text()}"
    return (
        f"{m.rps:.0f} rps{misses}  p50 {m.latency(50):.2f} p90 {m.latency(90):.2f} "
        f"p99 {m.latency(99):.2f} ms  errors {m.errors}{hit}  peak RSS "
        f"{rss_text(r.peak_rss)}{noise_text(r.noise)}"
    )
