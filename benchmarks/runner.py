"""Run one scenario `runs` times: prepare, warm up, measure the edge, measure its baseline.

Each run measures the edge (with /metrics before/after and /proc sampling for RSS and CPU)
and then, in the same run, the matching baseline with the same generator settings:
hit/zipf -> the bare aiohttp handler, miss/avatars -> bare pyvips. `avatars` gets a fresh
stack every run, so its lookup and variant caches start cold each time.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import scenarios as sc
from benchmarks.baselines import have_uvloop, run_pyvips
from benchmarks.drive import Driver, HitBaseline
from benchmarks.edgemetrics import EdgeCounters, scrape
from benchmarks.measure import Measurement, ratio
from benchmarks.procstats import Sampler
from benchmarks.seed import seed_users
from benchmarks.stack import SAMPLES
from benchmarks.targets import Settings, Target, check_jpeg, fetch, open_target

DEFAULT_WARMUP_S = {"hit": 2.0, "miss": 2.0, "zipf": 2.0, "avatars": 0.0}
MISS_PHASE = 6 * 501 * 100  # distinct miss URLs reserved for each load phase
ZIPF_SAMPLE = 100_000  # requests drawn from the mix per run (cycled)


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
    baseline: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return ratio(self.value, self.baseline["value"]) if self.baseline else math.nan


@dataclass
class Plan:
    """A prepared scenario on one target."""

    paths: Callable[[int], list[str]] | None  # run index -> paths to cycle (None: fixed)
    fixed: str | None
    compared: str
    baseline: Callable[[int], Awaitable[dict[str, Any]]]
    notes: list[str] = field(default_factory=list)


class ScenarioRunner:
    def __init__(self, settings: Settings, driver: Driver) -> None:
        self.settings = settings
        self.driver = driver
        self.progress = driver.progress
        self.phase = 1  # miss phases; 0 is the check URL's
        self.tmp = Path(tempfile.mkdtemp(prefix="imgcdn-bench-run-"))
        self.warmup_s = (
            settings.warmup_s
            if settings.warmup_s is not None
            else DEFAULT_WARMUP_S[settings.scenario]
        )
        self.mix = sc.ZipfMix([])

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    async def run(self) -> list[RunResult]:
        results: list[RunResult] = []
        if self.settings.scenario == "avatars":  # cold caches: a fresh stack per run
            for i in range(self.settings.runs):
                async with open_target(self.settings) as target:
                    results.append(await self.one_run(target, await self.prepare(target), i))
            return results
        async with open_target(self.settings) as target:
            plan = await self.prepare(target)
            for i in range(self.settings.runs):
                results.append(await self.one_run(target, plan, i))
        return results

    async def one_run(self, target: Target, plan: Plan, index: int) -> RunResult:
        s = self.settings
        label = f"[{s.scenario} {index + 1}/{s.runs}]"
        with Sampler(target.pids()) as sampler:
            if self.warmup_s > 0:
                await self.driver.run(
                    target.edge_url,
                    f"{label} warm-up",
                    self.warmup_s,
                    **self.load_args(plan, index),
                )
            before = await scrape(target.edge_url)
            sampler.sample()
            cpu0 = {t: sampler.stats.cpu_s(t) for t in target.pids()}
            m = await self.driver.run(
                target.edge_url,
                f"{label} measuring",
                s.duration_s,
                extra=lambda: rss_text(sampler.stats.last_total_rss),
                **self.load_args(plan, index),
            )
            sampler.sample()
            cpu = {t: sampler.stats.cpu_s(t) - cpu0[t] for t in cpu0}
            after = await scrape(target.edge_url)
        edge = after.minus(before) if after and before else None
        value = m.rps
        if plan.compared == "misses/s":
            value = edge.misses / m.duration_s if edge else math.nan
        result = RunResult(
            index,
            m,
            plan.compared,
            value,
            edge,
            sampler.stats.to_json(),
            dict(sampler.stats.peak_total_rss),
            {t: 1000 * c / m.requests for t, c in cpu.items() if m.requests},
            notes=list(plan.notes),
        )
        if plan.paths is not None and s.scenario == "miss" and m.requests > MISS_PHASE:
            result.notes.append("miss URLs wrapped around: some requests were hits")
        if s.scenario == "avatars":
            await self.check_avatar_after(target, result)
        self.progress.note(f"{label} edge: {describe(result)}")
        if s.baseline:
            result.baseline = await plan.baseline(index)
            b = result.baseline
            self.progress.note(
                f"{label} baseline {b['label']}: {b['value']:.0f} {b['unit']}"
                f"  -> edge/baseline {result.ratio:.2f}"
            )
        return result

    def load_args(self, plan: Plan, index: int) -> dict[str, Any]:
        if plan.fixed is not None:
            return {"fixed_path": plan.fixed}
        assert plan.paths is not None
        return {"paths": plan.paths(index)}

    async def prepare(self, target: Target) -> Plan:
        return await getattr(self, f"prepare_{self.settings.scenario}")(target)

    async def prepare_hit(self, target: Target) -> Plan:
        body = await check_jpeg(target.edge_url + sc.HIT_PATH, 200)
        await fetch(target.edge_url + sc.HIT_PATH)  # second fetch: from the cache
        body_file = self.tmp / "hit-body.jpg"
        body_file.write_bytes(body)
        return Plan(None, sc.HIT_PATH, "rps", self.hit_baseline(body_file, target))

    async def prepare_miss(self, target: Target) -> Plan:
        _src, width, _height = sc.miss_params(0)
        await check_jpeg(f"{target.edge_url}{sc.miss_path(0)}", width)

        def paths(index: int) -> list[str]:
            self.phase += 2  # this run's warm-up and measured phases never share a URL
            count = min(MISS_PHASE, int(max(self.warmup_s, self.settings.duration_s) * 2000) + 2000)
            first = self.phase * MISS_PHASE
            return [sc.miss_path(first + i) for i in range(count)]

        return Plan(paths, None, "rps", self.pyvips_baseline(sc.miss_jobs(), target))

    async def prepare_zipf(self, target: Target) -> Plan:
        mix = await self.seeded_mix(target)
        everything = mix.all_paths()
        m, sizes = await self.driver.each_once(
            target.edge_url,
            f"[zipf] filling the cache with all {len(everything)} variants",
            everything,
        )
        self.progress.note(
            f"[zipf] cache filled: {m.requests} requests in {m.duration_s:.1f}s, "
            f"statuses {m.statuses}"
        )
        body_file = self.tmp / "zipf-body.bin"
        body_file.write_bytes(b"\xa5" * round(mix.mean_body(sizes)))
        notes = [f"mean body of the mix {body_file.stat().st_size} B; cache pre-filled"]
        return Plan(
            lambda i: mix.paths(seed=1000 + i, count=ZIPF_SAMPLE),
            None,
            "rps",
            self.hit_baseline(body_file, target),
            notes,
        )

    async def prepare_avatars(self, target: Target) -> Plan:
        mix = await self.seeded_mix(target)
        self.mix = mix
        return Plan(
            lambda i: mix.paths(seed=2000 + i, count=ZIPF_SAMPLE),
            None,
            "misses/s",
            self.pyvips_baseline(sc.avatar_jobs(), target),
            ["cold: fresh stack, empty lookup and variant caches"],
        )

    async def seeded_mix(self, target: Target) -> sc.ZipfMix:
        users = self.settings.users
        if target.origin_url is None or users == 0:
            self.progress.note("no origin to seed: every hash is unknown (identicons only)")
            return sc.ZipfMix([])
        self.progress.show(f"[{self.settings.scenario}] seeding {users} users with photos ...")
        hashes = await seed_users(target.origin_url, users)
        mix = sc.ZipfMix(hashes)
        self.progress.note(
            f"[{self.settings.scenario}] seeded {users} users: "
            f"{mix.real_share():.0%} of requests ask for a real photo"
        )
        return mix

    async def check_avatar_after(self, target: Target, result: RunResult) -> None:
        if not self.mix.real:
            return
        status, headers, _ = await fetch(target.edge_url + sc.avatar_path(self.mix.hashes[0], 64))
        if status != 200 or headers.get("Content-Type") != "image/jpeg":
            result.notes.append(f"a seeded user's avatar came back {status} {headers}")

    def hit_baseline(self, body_file: Path, target: Target) -> Callable[[int], Awaitable[dict]]:
        async def measure(index: int) -> dict[str, Any]:
            uv = have_uvloop()
            size = len(body_file.read_bytes())  # noqa: ASYNC240 - a few KB, once
            async with HitBaseline(body_file, target.workers, uv) as server:
                await self.driver.run(server.url, "[baseline] warm-up", 1.0, fixed_path="/x")
                m = await self.driver.run(
                    server.url, "[baseline] measuring", self.settings.duration_s, fixed_path="/x"
                )
            return {
                "kind": "aiohttp",
                "label": f"bare aiohttp {size} B x{target.workers}" + (" (uvloop)" if uv else ""),
                "value": m.rps,
                "unit": "rps",
                "measurement": m.to_json(),
            }

        return measure

    def pyvips_baseline(
        self, jobs: list[sc.RenderJob], target: Target
    ) -> Callable[[int], Awaitable[dict]]:
        async def measure(index: int) -> dict[str, Any]:
            self.progress.show(f"[baseline] bare pyvips x{target.transform_processes} ...")
            r = await asyncio.to_thread(
                run_pyvips,
                jobs,
                SAMPLES,
                processes=target.transform_processes,
                duration_s=self.settings.duration_s,
                progressive=target.progressive,
            )
            self.progress.clear()
            mode = "progressive" if r.progressive else "baseline"
            return {
                "kind": "pyvips",
                "label": f"bare pyvips x{r.processes} ({mode} JPEG q80)",
                "value": r.rate,
                "unit": "img/s",
                "detail": r.to_json(),
            }

        return measure


def rss_text(rss: dict[str, int]) -> str:
    return "  ".join(f"{tree} {v / 2**20:.0f} MB" for tree, v in sorted(rss.items()))


def describe(r: RunResult) -> str:
    m = r.measurement
    hit = (
        f"  hit ratio {r.edge.hit_ratio:.3f}" if r.edge and not math.isnan(r.edge.hit_ratio) else ""
    )
    return (
        f"{m.rps:.0f} rps  p50 {m.latency(50):.2f} p90 {m.latency(90):.2f} "
        f"p99 {m.latency(99):.2f} ms  errors {m.errors}{hit}  peak RSS {rss_text(r.peak_rss)}"
    )
