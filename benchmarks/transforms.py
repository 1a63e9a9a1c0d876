"""Transform throughput: `TransformPool` against bare pyvips in plain processes, same run.

    python -m benchmarks.transforms                 # ~30-50 s: w=32/240/512 x jpeg/webp
    python -m benchmarks.transforms --reps 5 --repeat 6 --processes 4

Both sides render the sample corpus (`imgcdn/samples`) with the same number of processes,
libvips concurrency 1 and its cache off, and the same save options (`transforms.formats`).
The bare side is `multiprocessing.Pool.imap_unordered` over `thumbnail_buffer` + save: no
probe, no limits, no allow-list, no admission or healing. The pool side is
`TransformPool.render` from an asyncio loop. Each rep alternates short chunks (two corpus
passes) between the sides, so a busy machine's drift lands on both; the ratio is computed per
rep and reported as median and min..max over reps.
A second, noise-free figure per cell: CPU ms per image of `pipeline.render` against the bare
calls, in this process. A third: the pool's own CPU per image in this process (the serving
process's share of a render: pickling, the socket, the loop), which `--held-bytes 0` shows
without held sources (every task then carries its ~100-270 KB source). The corpus is rendered
over and over, so by default the pool's workers render from decoded pixels
(transforms/held.py) and the ratio shows that saving; `--decoded-bytes 0` measures the
pool against bare pyvips doing the same work. Writes `benchmarks/results/transforms.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from multiprocessing.pool import Pool
from pathlib import Path
from typing import Any

import pyvips

import imgcdn
from transforms.formats import save_options
from transforms.pipeline import render
from transforms.pool import DECODED_BYTES, HOLD_BYTES, TransformPool
from transforms.spec import Limits, TransformSpec

SAMPLES = Path(imgcdn.__file__).parent / "samples"
RESULTS = Path(__file__).parent / "results" / "transforms.json"
WIDTHS = (32, 240, 512)
FORMATS = ("jpeg", "webp")
GOAL_WIDTH, GOAL_RATIO = 240, 0.90
CHUNK_PASSES = 2  # corpus passes per alternating chunk


def corpus() -> list[bytes]:
    return [p.read_bytes() for p in sorted(SAMPLES.iterdir()) if p.suffix in (".jpg", ".png")]


# ---- the bare side: plain processes, nothing but libvips ----


def bare_init() -> None:
    pyvips.cache_set_max(0)
    pyvips.concurrency_set(1)


def bare_render(job: tuple[bytes, int, str]) -> int:
    data, width, fmt = job
    image = pyvips.Image.thumbnail_buffer(data, width)
    suffix, options = save_options(fmt, 80, progressive=False)
    body = image.write_to_buffer(suffix, keep=pyvips.enums.ForeignKeep.NONE, **options)
    return len(body)


def run_bare(pool: Pool, jobs: Sequence[tuple[bytes, int, str]]) -> float:
    """Seconds to render `jobs`."""
    started = time.perf_counter()
    for _ in pool.imap_unordered(bare_render, jobs, chunksize=1):
        pass
    return time.perf_counter() - started


# ---- the pool side ----


async def run_pool(pool: TransformPool, jobs: Sequence[tuple[bytes, int, str]]) -> float:
    """Seconds to render `jobs`."""
    limits = Limits()
    specs = {(w, f): TransformSpec(width=w, format=f) for _, w, f in jobs}  # type: ignore[arg-type]
    started = time.perf_counter()
    await asyncio.gather(*(pool.render(data, specs[w, f], limits) for data, w, f in jobs))
    return time.perf_counter() - started


async def one_rep(
    pool: TransformPool, bare: Pool, chunk: list[tuple[bytes, int, str]], chunks: int
) -> tuple[float, float, float]:
    """Images/s of each side over `chunks` alternating chunks (drift on a busy machine then
    lands on both sides alike), and the pool's CPU ms per image in this process."""
    pool_s = bare_s = pool_cpu_s = 0.0
    for i in range(chunks):
        if i % 2:
            bare_s += await asyncio.to_thread(run_bare, bare, chunk)
        cpu = time.process_time()
        pool_s += await run_pool(pool, chunk)
        pool_cpu_s += time.process_time() - cpu
        if i % 2 == 0:
            bare_s += await asyncio.to_thread(run_bare, bare, chunk)
    count = len(chunk) * chunks
    return count / pool_s, count / bare_s, pool_cpu_s * 1000 / count


def summarize(width: int, fmt: str, pool_ips: list[float], bare_ips: list[float]) -> dict[str, Any]:
    ratios = [p / b for p, b in zip(pool_ips, bare_ips, strict=True)]
    return {
        "width": width,
        "format": fmt,
        "pool_images_per_s": [round(x, 1) for x in pool_ips],
        "bare_images_per_s": [round(x, 1) for x in bare_ips],
        "pool_median": round(statistics.median(pool_ips), 1),
        "bare_median": round(statistics.median(bare_ips), 1),
        "ratio_median": round(statistics.median(ratios), 3),
        "ratio_min": round(min(ratios), 3),
        "ratio_max": round(max(ratios), 3),
    }


def cpu_cost(images: list[bytes], width: int, fmt: str) -> dict[str, float]:
    """CPU ms per image in this process, `pipeline.render` vs bare: the pipeline's own cost,
    free of scheduling noise (no pool, no IPC). Alternated, best of three rounds."""
    spec = TransformSpec(width=width, format=fmt)  # type: ignore[arg-type]
    limits = Limits()
    best = {"pipeline": float("inf"), "bare": float("inf")}
    for _ in range(3):
        for side in best:
            started = time.process_time()
            for data in images:
                if side == "pipeline":
                    render(data, spec, limits)
                else:
                    bare_render((data, width, fmt))
            spent = (time.process_time() - started) * 1000 / len(images)
            best[side] = round(min(best[side], spent), 2)
    return best


async def measure(
    processes: int,
    reps: int,
    repeat: int,
    held_bytes: int = HOLD_BYTES,
    decoded_bytes: int = DECODED_BYTES,
) -> list[dict[str, Any]]:
    images = corpus()
    pool = TransformPool(
        processes,
        max_queue=len(images) * CHUNK_PASSES,
        timeout_s=120,
        hold_bytes=held_bytes,
        decoded_bytes=decoded_bytes,
    )
    await pool.start()
    context = multiprocessing.get_context("forkserver")
    bare = context.Pool(processes, initializer=bare_init)
    cells = []
    try:
        for width in WIDTHS:
            for fmt in FORMATS:
                chunk = [(data, width, fmt) for data in images] * CHUNK_PASSES
                await run_pool(pool, chunk)  # warm-up
                await asyncio.to_thread(run_bare, bare, chunk)
                pool_ips, bare_ips, own_ms = [], [], []
                for _ in range(reps):
                    pool_rate, bare_rate, own = await one_rep(pool, bare, chunk, repeat)
                    pool_ips.append(pool_rate)
                    bare_ips.append(bare_rate)
                    own_ms.append(own)
                cell = summarize(width, fmt, pool_ips, bare_ips)
                cell["pool_own_cpu_ms_per_image"] = round(statistics.median(own_ms), 3)
                cell["cpu_ms_per_image"] = cpu_cost(images, width, fmt)
                print_row(cell)
                cells.append(cell)
    finally:
        bare.terminate()
        bare.join()
        await pool.close()
    return cells


HEADER = (
    f"{'w':>5} {'fmt':<5} {'pool img/s':>11} {'bare img/s':>11} {'ratio':>6}  {'spread':<10}"
    f"  cpu ms/img pipeline vs bare  pool's own"
)


def print_row(cell: dict[str, Any]) -> None:
    print(
        f"{cell['width']:>5} {cell['format']:<5} {cell['pool_median']:>11.1f}"
        f" {cell['bare_median']:>11.1f} {cell['ratio_median']:>6.2f}"
        f"  {cell['ratio_min']:.2f}..{cell['ratio_max']:.2f}  "
        f"  {cell['cpu_ms_per_image']['pipeline']:.2f} vs {cell['cpu_ms_per_image']['bare']:.2f}"
        f"  {cell['pool_own_cpu_ms_per_image']:.3f}",
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--reps", type=int, default=3, help="measured runs per cell and side")
    parser.add_argument("--repeat", type=int, default=3, help="alternating chunks per rep")
    parser.add_argument(
        "--held-bytes",
        type=int,
        default=HOLD_BYTES,
        help=f"sources each worker keeps (edge.transforms.held_source_bytes; {HOLD_BYTES})",
    )
    parser.add_argument(
        "--decoded-bytes",
        type=int,
        default=DECODED_BYTES,
        help=f"decoded pixels each worker keeps (edge.transforms.decoded_source_bytes; "
        f"{DECODED_BYTES})",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    count = len(corpus()) * CHUNK_PASSES * args.repeat
    print(f"{count} images per rep and side, {args.processes} processes, {args.reps} reps")
    print(HEADER, flush=True)
    started = time.perf_counter()
    bare_init()  # the in-process CPU comparison runs with the workers' libvips settings
    cells = asyncio.run(
        measure(args.processes, args.reps, args.repeat, args.held_bytes, args.decoded_bytes)
    )
    met = all(c["ratio_median"] >= GOAL_RATIO for c in cells if c["width"] == GOAL_WIDTH)
    result = {
        "benchmark": "transforms",
        "command": " ".join(["python -m benchmarks.transforms", *argv]),
        "machine": {
            "cpus": os.cpu_count(),
            "load_average_after": os.getloadavg(),
            "python": platform.python_version(),
            "libvips": ".".join(str(pyvips.version(i)) for i in range(3)),
        },
        "settings": {
            "processes": args.processes,
            "held_bytes": args.held_bytes,
            "decoded_bytes": args.decoded_bytes,
            "reps": args.reps,
            "images_per_rep": count,
            "widths": WIDTHS,
            "formats": FORMATS,
            "quality": 80,
        },
        "cells": cells,
        "goal": {
            "width": GOAL_WIDTH,
            "ratio": GOAL_RATIO,
            "met": met,
        },
        "seconds": round(time.perf_counter() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"goal ratio >= {GOAL_RATIO} at w={GOAL_WIDTH}: " + ("met" if met else "NOT met"))
    print(f"wrote {args.out} in {result['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
