"""The serving process's own CPU per miss, with the renders made almost free.

In the `miss` scenario the renders take ~90 % of the CPU, so a change to what the serving
process does per miss (routing, the pool's messages, the disk write, the response) moves its
throughput by less than this machine's noise. Here every source is a 64 px JPEG and every
request a new variant of it (`/img/t{k}.jpg?w=&h=`, 8..63 px each way), so the transform
workers have little to do and wrk meets a serving process that is the bottleneck. The figure
is that process's utime + stime (its threads included: the disk tier's writer) divided by
the requests answered, read from /proc around the load.

    python -m benchmarks.servecpu --duration 8 --runs 3

To compare two commits, run it from each checkout in turn (alternating: this box's speed
drifts by 20 % within an hour), e.g. `git worktree add /tmp/base <commit>`, then
`cd /tmp/base && PYTHONPATH=/tmp/base python -m benchmarks.servecpu`.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pyvips
import yaml

from benchmarks.procstats import TICKS, read_stat
from benchmarks.stack import SAMPLES, free_port, imgcdn_command, stop_tree, wait_answering
from benchmarks.wrk import run_wrk, wrk_binary

SIDE = 64  # px of every source
SIZES = range(8, 64)  # w and h of the variants asked for: 56 x 56 per source
CONNECTIONS = 16


@dataclass(frozen=True)
class Run:
    misses_per_s: float
    cpu_ms_per_miss: float  # the serving process and its threads
    errors: int


def variant_paths(sources: int) -> list[str]:
    """Every variant once: `sources` x 56 x 56 distinct URLs (~25k for the 8 samples)."""
    return [f"/img/t{k}.jpg?w={w}&h={h}" for h in SIZES for w in SIZES for k in range(sources)]


def make_sources(directory: Path) -> int:
    """64 px JPEGs of the shipped samples; returns how many."""
    directory.mkdir(parents=True)
    samples = sorted(SAMPLES.glob("*.jpg"))
    for k, sample in enumerate(samples):
        pyvips.Image.thumbnail(str(sample), SIDE).jpegsave(str(directory / f"t{k}.jpg"), Q=80)
    return len(samples)


def process_cpu_s(pid: int) -> float:
    stat = read_stat(pid)
    if stat is None:
        raise RuntimeError("the edge exited during the run")
    return (int(stat[11]) + int(stat[12])) / TICKS


def start_edge(config_file: Path, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:  # the child keeps its own descriptor
        return subprocess.Popen(
            imgcdn_command("edge", "--config", str(config_file)),
            cwd=config_file.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def one_run(work: Path, duration_s: float) -> Run:
    """A fresh edge (empty caches) on its own port, loaded for `duration_s`."""
    sources = make_sources(work / "src")
    port = free_port()
    config = {
        "edge": {
            "port": port,
            "origin_url": f"http://127.0.0.1:{free_port()}",  # /img never asks the origin
            "source": {"type": "dir", "path": str(work / "src")},
            "cache": {"disk_path": str(work / "cache")},
        }
    }
    config_file = work / "config.yaml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    log = work / "edge.log"
    edge = start_edge(config_file, log)
    try:
        base = f"http://127.0.0.1:{port}"
        await wait_answering(edge, f"{base}/healthz", "edge", log)
        before = process_cpu_s(edge.pid)
        measured = await run_wrk(
            base, paths=variant_paths(sources), connections=CONNECTIONS, duration_s=duration_s
        )
        spent = process_cpu_s(edge.pid) - before
    finally:
        stop_tree(edge, grace_s=10)
    answered = max(1, measured.requests)
    return Run(
        misses_per_s=measured.rps,
        cpu_ms_per_miss=spent * 1000 / answered,
        errors=measured.non_2xx_3xx + measured.socket_errors,
    )


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--runs", type=int, default=3, help="fresh edges in turn (3)")
    args = parser.parse_args(argv)
    if wrk_binary() is None:
        print("benchmarks.servecpu needs wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    runs = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="imgcdn-servecpu-") as work:
            run = await one_run(Path(work), args.duration)
        runs.append(run)
        print(
            f"[run {n + 1}/{args.runs}] {run.misses_per_s:.0f} misses/s, "
            f"{run.cpu_ms_per_miss:.3f} ms of serving-process CPU per miss, "
            f"{run.errors} errors",
            flush=True,
        )
    print(
        f"serving-process CPU per miss: {spread([r.cpu_ms_per_miss for r in runs])} ms; "
        f"misses/s {spread([r.misses_per_s for r in runs])}"
    )
    return 1 if any(r.errors for r in runs) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
