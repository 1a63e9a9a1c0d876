"""The baselines and the /proc sampler, run for real (short)."""

from __future__ import annotations

import itertools
import subprocess
import sys

import aiohttp

from benchmarks.baselines import EDGE_HIT_HEADERS, run_pyvips
from benchmarks.drive import HitBaseline
from benchmarks.loadgen import run_load
from benchmarks.procstats import Sampler
from benchmarks.scenarios import RenderJob
from benchmarks.stack import SAMPLES


async def test_hit_baseline_serves_the_body_from_every_process(tmp_path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x01" * 4321)
    async with HitBaseline(body, processes=2, use_uvloop=False) as server:
        with Sampler({"baseline": server.procs[0].pid}) as sampler:
            out = await run_load(
                server.url, itertools.repeat("/any"), connections=4, duration_s=0.5
            )
        pids = [p.pid for p in server.procs]
    m = out.measurement
    assert m.requests > 20 and m.statuses == {"200": m.requests}
    assert m.body_bytes == 4321 * m.requests
    assert sampler.stats.peak_total_rss["baseline"] > 10 * 2**20  # a Python process with aiohttp
    assert all(p.poll() is not None for p in server.procs) or not server.procs
    assert len(pids) == 2


async def test_the_hit_baseline_can_send_an_edge_hits_headers(tmp_path) -> None:
    body = tmp_path / "body.bin"
    body.write_bytes(b"\x02" * 100)
    async with (
        HitBaseline(body, processes=1, use_uvloop=False, edge_headers=True) as server,
        aiohttp.ClientSession() as session,
        session.get(server.url + "/x") as response,
    ):
        assert await response.read() == b"\x02" * 100
        sent = {name: response.headers.get(name) for name in EDGE_HIT_HEADERS}
    assert sent == EDGE_HIT_HEADERS


def test_pyvips_baseline_renders_the_jobs() -> None:
    jobs = [RenderJob("coffee.jpg", 120), RenderJob("astronaut.jpg", 64, 64, True)]
    r = run_pyvips(jobs, SAMPLES, processes=1, duration_s=0.5, progressive=False)
    assert r.images >= 5 and 5 < r.rate < 5000
    assert 500 < r.mean_output_bytes < 20_000  # small JPEG thumbnails, not the sources


def test_sampler_counts_the_whole_tree() -> None:
    # a parent that starts a child holding ~60 MB; both must be in the tree's peak
    code = (
        "import subprocess, sys, time;"
        "c = subprocess.Popen([sys.executable, '-c', "
        '\'import time; b = bytearray(60 * 2**20); b[::4096] = b"x" * len(b[::4096]);'
        " time.sleep(1.5)']);"
        "c.wait()"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        with Sampler({"tree": proc.pid}, interval_s=0.1) as sampler:
            proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    stats = sampler.stats
    assert len(stats.procs) == 2
    assert stats.peak_total_rss["tree"] >= 60 * 2**20
    assert max(p.peak_rss for p in stats.procs.values()) >= 60 * 2**20
