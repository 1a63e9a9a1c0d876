"""Prepare each scenario on a target: sanity checks, seeding, cache fill, and its baseline.

A `Plan` says what to request in each run and how to measure the matching baseline.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import scenarios as sc
from benchmarks.baselines import EDGE_HIT_HEADERS, have_uvloop, run_pyvips
from benchmarks.drive import Driver, HitBaseline
from benchmarks.measure import failed_text, too_many_errors
from benchmarks.procstats import box_noise, box_snapshot, tree_cpu_s
from benchmarks.seed import seed_users
from benchmarks.stack import SAMPLES
from benchmarks.targets import Settings, Target, check_image, check_jpeg, fetch

MISS_PHASE = 6 * 501 * 100  # distinct miss URLs reserved for each load phase
ZIPF_SAMPLE = 100_000  # requests drawn from the mix per run (cycled)

Baseline = Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class Plan:
    """A prepared scenario on one target."""

    compared: str  # what the baseline ratio compares: "rps" or "misses/s"
    baseline: Baseline
    # the ceiling for the same work as the edge's: hit, the bare handler sending the edge's
    # contract headers; miss, bare pyvips from decoded pixels (transforms/held.py)
    like_baseline: Baseline | None = None
    fixed: str | None = None  # one path for every request ...
    paths: Callable[[int], list[str]] | None = None  # ... or run index -> paths to cycle
    mix: sc.ZipfMix | None = None
    notes: list[str] = field(default_factory=list)

    def load_args(self, index: int) -> dict[str, Any]:
        if self.fixed is not None:
            return {"fixed_path": self.fixed}
        assert self.paths is not None
        return {"paths": self.paths(index)}


class Planner:
    def __init__(self, settings: Settings, driver: Driver, tmp: Path, warmup_s: float) -> None:
        self.settings = settings
        self.driver = driver
        self.progress = driver.progress
        self.tmp = tmp
        self.warmup_s = warmup_s
        self.phase = 1  # miss phases; phase 0 holds the check URL

    async def prepare(self, target: Target) -> Plan:
        scenario = self.settings.scenario
        prepare: Callable[[Target], Awaitable[Plan]] = getattr(self, f"prepare_{scenario}")
        return await prepare(target)

    async def prepare_hit(self, target: Target) -> Plan:
        body = await check_jpeg(target.edge_url + sc.HIT_PATH, 200)
        await fetch(target.edge_url + sc.HIT_PATH)  # the second one comes from the cache
        body_file = self.tmp / "hit-body.jpg"
        body_file.write_bytes(body)
        return Plan(
            "rps",
            self.hit_baseline(body_file, target),
            self.hit_baseline(body_file, target, edge_headers=True),
            fixed=sc.HIT_PATH,
        )

    async def prepare_miss(self, target: Target) -> Plan:
        _, width, _ = sc.miss_params(0)
        await check_jpeg(target.edge_url + sc.miss_path(0), width)

        def paths(index: int) -> list[str]:
            self.phase += 2  # a run's warm-up and measured phase never share a URL
            longest = max(self.warmup_s, self.settings.duration_s)
            count = min(MISS_PHASE, int(longest * 2000) + 2000)
            return [sc.miss_path(self.phase * MISS_PHASE + i) for i in range(count)]

        jobs = sc.miss_jobs()
        return Plan(
            "rps",
            self.pyvips_baseline(jobs, target),
            self.pyvips_baseline(jobs, target, decoded=True),
            paths=paths,
        )

    async def prepare_zipf(self, target: Target) -> Plan:
        mix = await self.seeded_mix(target)
        await self.check_avatars(target, mix)
        everything = mix.all_paths()
        m, sizes = await self.driver.each_once(
            target.edge_url, f"[zipf] filling the cache: {len(everything)} variants", everything
        )
        self.progress.note(
            f"[zipf] cache filled: {m.requests} requests in {m.duration_s:.1f}s, "
            f"statuses {m.statuses}"
        )
        if m.errors > len(everything) // 100:
            raise RuntimeError(f"filling the cache: {m.errors} errors, statuses {m.statuses}")
        body_file = self.tmp / "zipf-body.bin"
        body_file.write_bytes(b"\xa5" * round(mix.mean_body(sizes)))
        return Plan(
            "rps",
            self.hit_baseline(body_file, target),
            paths=lambda i: mix.paths(seed=1000 + i, count=ZIPF_SAMPLE),
            mix=mix,
            notes=[f"cache pre-filled with every variant in {m.duration_s:.0f}s"],
        )

    async def prepare_avatars(self, target: Target) -> Plan:
        mix = await self.seeded_mix(target)
        await self.check_avatars(target, mix, real=False)  # the mix's lookups stay cold
        return Plan(
            "misses/s",
            self.pyvips_baseline(sc.avatar_jobs(), target),
            paths=lambda i: mix.paths(seed=2000 + i, count=ZIPF_SAMPLE),
            mix=mix,
            notes=["cold start: fresh stack, empty lookup and variant caches"],
        )

    async def seeded_mix(self, target: Target) -> sc.ZipfMix:
        users, scenario = self.settings.users, self.settings.scenario
        if target.origin_url is None or users == 0:
            self.progress.note(f"[{scenario}] no origin to seed: every hash is unknown")
            return sc.ZipfMix([])
        self.progress.show(f"[{scenario}] seeding {users} users with photos ...")
        mix = sc.ZipfMix(await seed_users(target.origin_url, users))
        self.progress.note(
            f"[{scenario}] seeded {users} users; {mix.real_share():.0%} of requests "
            "ask for a real photo, the rest for identicons"
        )
        return mix

    async def check_avatars(self, target: Target, mix: sc.ZipfMix, real: bool = True) -> None:
        """Fail fast unless an unknown hash (outside the mix) gets an image, and a user's
        hash their JPEG photo."""
        await check_image(target.edge_url + sc.avatar_path(sc.ghost_hash(10**6), 40))
        if real and mix.real:
            await check_image(target.edge_url + sc.avatar_path(mix.hashes[0], 40), "image/jpeg")

    def hit_baseline(self, body_file: Path, target: Target, edge_headers: bool = False) -> Baseline:
        async def measure() -> dict[str, Any]:
            uv = have_uvloop()
            size = len(body_file.read_bytes())  # noqa: ASYNC240 - a few KB, once
            async with HitBaseline(body_file, target.workers, uv, edge_headers) as server:
                await self.driver.run(server.url, "[baseline] warm-up", 1.0, fixed_path="/x")
                roots = [p.pid for p in server.procs]
                cpu0, box0 = tree_cpu_s(roots), box_snapshot()
                m = await self.driver.run(
                    server.url, "[baseline] measuring", self.settings.duration_s, fixed_path="/x"
                )
                cpu = tree_cpu_s(roots) - cpu0
                noise = box_noise(box0, box_snapshot(), cpu)
            return {
                "kind": "aiohttp",
                "label": f"bare aiohttp {size} B x{target.workers}"
                + (" uvloop" if uv else "")
                + (f" + the edge's {len(EDGE_HIT_HEADERS)} hit headers" if edge_headers else "")
                + (f" ({failed_text(m)})" if too_many_errors(m) else ""),
                **({"like": "with the same headers"} if edge_headers else {}),
                "value": math.nan if too_many_errors(m) else m.rps,
                "unit": "rps",
                "cpu_ms_per_request": 1000 * cpu / m.requests if m.requests else math.nan,
                "noise": noise,
                "measurement": m.to_json(),
            }

        return measure

    def pyvips_baseline(
        self, jobs: list[sc.RenderJob], target: Target, decoded: bool = False
    ) -> Baseline:
        """Bare pyvips; `decoded`: each process decodes every source once and renders from
        those pixels, as the edge's workers do for the sources they hold."""

        async def measure() -> dict[str, Any]:
            self.progress.show(f"[baseline] bare pyvips x{target.transform_processes} ...")
            box0 = box_snapshot()
            r = await asyncio.to_thread(
                run_pyvips,
                jobs,
                SAMPLES,
                processes=target.transform_processes,
                duration_s=self.settings.duration_s,
                progressive=target.progressive,
                decoded=decoded,
            )
            self.progress.clear()
            mode = "progressive" if r.progressive else "baseline"
            return {
                "kind": "pyvips",
                "label": f"bare pyvips x{r.processes} ({mode} JPEG q80"
                + (", from decoded pixels)" if decoded else ")"),
                **({"like": "of pyvips from decoded pixels"} if decoded else {}),
                "value": r.rate,
                "unit": "img/s",
                "noise": box_noise(box0, box_snapshot(), 0.0),
                "detail": r.to_json(),
            }

        return measure
