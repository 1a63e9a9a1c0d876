"""`python -m benchmarks.overload`: how fast an overloaded edge says 503, and that it stays bounded.

The edge admits a new miss only while its transform pool could take it (`TransformPool.admit`:
transform processes + `edge.transforms.max_queue`, checked before the source is read); past
that it answers 503 with `Retry-After`. This drives the `miss` mix (every request a real
transform) with a closed loop of `--connections` (default 3 x that capacity) from one aiohttp
client, keeps per response its status, latency and whether a 503 carries `Retry-After`, and
samples the edge's `imgcdn_edge_transform_queue` from `/metrics` every 0.25 s. It reports
the latency of the 503s and of the 200s separately, the statuses, and the largest queue seen
against the capacity. Exit code 1 when a 503 lacked `Retry-After` or the queue went past the
capacity; the issue's goal (503 p99 under 50 ms) is reported, not enforced. `--rate R` paces
the connections at R requests/s in all instead (latency then excludes the self-made queue of
clients that retry the instant they are refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import random
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from yarl import URL

from benchmarks.drive import Progress, wait_quiet
from benchmarks.entry import add_overrides, command_line, parse_overrides, run_main
from benchmarks.loadgen import LoadState, wait_turn
from benchmarks.overloadstats import (
    Tally,
    cpu_by_role,
    queue_value,
    summarize,
    summarize_run,
    table,
)
from benchmarks.procstats import Sampler, box_snapshot
from benchmarks.report import machine, without_nan
from benchmarks.scenarios import MID_SOURCES, MISS_HEIGHTS, MISS_WIDTHS, miss_path
from benchmarks.stack import Stack, StackOptions, total_transform_processes

RESULTS = Path(__file__).parent / "results"
SAMPLE_EVERY_S = 0.25
MISS_KEYS = len(MID_SOURCES) * len(MISS_WIDTHS) * len(MISS_HEIGHTS)  # distinct miss URLs


async def drive(
    base: str, connections: int, first: int, warmup_s: float, duration_s: float, tally: Tally,
    state: LoadState, rate: float | None = None,
) -> None:  # fmt: skip
    """Closed loop over the miss URLs from `first` (with `rate`: each connection paced, the
    next request on a fixed schedule); only requests sent after the warm-up count."""
    clock = time.perf_counter
    start = clock()
    record_from = start + warmup_s
    deadline = record_from + duration_s
    counter = itertools.count(first)
    interval = connections / rate if rate else 0.0

    async def loop(session: aiohttp.ClientSession, slot: int) -> None:
        next_at = start + interval * slot / connections
        while clock() < deadline:
            next_at = await wait_turn(next_at, interval)
            t0 = clock()
            url = URL(base + miss_path(next(counter)), encoded=True)
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    status, headers = resp.status, resp.headers
            except (TimeoutError, aiohttp.ClientError, OSError) as err:
                if t0 >= record_from:
                    tally.errors[f"error:{type(err).__name__}"] += 1
                    state.errors += 1
                await asyncio.sleep(0.01)  # a refused connect must not spin the loop
                continue
            if t0 < record_from:
                continue
            tally.latencies.setdefault(status, []).append((clock() - t0) * 1000.0)
            state.requests += 1
            if status == 200:
                tally.ok_cached += not headers.get("X-Cache", "MISS").startswith("MISS")
            else:
                state.errors += 1
                tally.no_retry_after += status == 503 and "Retry-After" not in headers

    connector = aiohttp.TCPConnector(limit=connections, ttl_dns_cache=None)
    async with aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=30),
        auto_decompress=False,
        skip_auto_headers=("User-Agent",),
    ) as session:
        await asyncio.gather(*(loop(session, slot) for slot in range(connections)))


async def sample_queue(base: str, tally: Tally, stop: asyncio.Event) -> None:
    """`imgcdn_edge_transform_queue` every SAMPLE_EVERY_S until `stop` (own connection)."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while not stop.is_set():
            try:
                async with session.get(base + "/metrics") as resp:
                    value = queue_value(await resp.text()) if resp.status == 200 else None
            except (TimeoutError, aiohttp.ClientError, ValueError):
                value = None
            if value is not None:
                tally.queue.append(value)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), SAMPLE_EVERY_S)


async def cpu_window(
    pids: Mapping[str, int], warmup_s: float, duration_s: float
) -> dict[str, float]:
    """CPU over the measured window: the edge's processes by role, this client, the box."""
    await asyncio.sleep(warmup_s)
    sampler = Sampler({k: v for k, v in pids.items() if k == "edge"}, interval_s=duration_s)
    await asyncio.to_thread(sampler.__enter__)
    before, started = box_snapshot(), time.perf_counter()
    await asyncio.sleep(duration_s)
    after, seconds = box_snapshot(), time.perf_counter() - started
    await asyncio.to_thread(sampler.stop)
    out = cpu_by_role(list(sampler.stats.procs.values()), seconds)
    out["client"] = round(100 * (after.own - before.own) / seconds, 1)
    busy = 100 * (after.busy - before.busy) / seconds
    others = "others" if "edge" in pids else "others (edge included)"  # --url: not sampled
    out[others] = round(max(0.0, busy - sum(out.values())), 1)  # other work on the box
    out["box busy"] = round(busy, 1)
    return out


async def measure_run(
    args: argparse.Namespace, base: str, capacity: int, index: int, pids: Mapping[str, int],
    progress: Progress,
) -> dict[str, Any]:  # fmt: skip
    # A random stretch of the ~8.7 M miss URLs: a rerun on the same --url edge misses too.
    first = random.randrange(MISS_KEYS)
    async with aiohttp.ClientSession() as session, session.get(base + miss_path(first)) as resp:
        if resp.status != 200:
            raise RuntimeError(f"{miss_path(first)} answered {resp.status}, not 200")
    if args.quiet_wait > 0:
        busy = await wait_quiet(progress, args.quiet_wait)
        if busy >= 0.10:
            progress.note(f"[run {index + 1}] note: the box is {busy:.0%} busy before the run")
    tally, state, stop = Tally(), LoadState(), asyncio.Event()

    def extra() -> str:
        queue = f"{tally.queue[-1]:g}" if tally.queue else "-"
        return f"503 {len(tally.latencies.get(503, []))}  queue {queue}/{capacity}"

    total_s = args.warmup + args.duration
    follower = asyncio.create_task(progress.follow(f"run {index + 1}", state, total_s, extra=extra))
    sampler = asyncio.create_task(sample_queue(base, tally, stop))
    try:
        _, cpu = await asyncio.gather(
            drive(
                base,
                args.connections,
                first + 1,
                args.warmup,
                args.duration,
                tally,
                state,
                args.rate,
            ),
            cpu_window(pids, args.warmup, args.duration),
        )
    finally:
        stop.set()
        state.done = True
        await asyncio.gather(sampler, follower)
    return {**summarize_run(tally, args.duration, capacity), "cpu_pct": cpu}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.overload", description=__doc__.split("\n")[0]
    )
    p.add_argument("--connections", type=int, help="closed-loop connections (3 x capacity)")
    p.add_argument(
        "--max-queue", type=int, default=64, help="edge.transforms.max_queue (64, the default)"
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per run (10)")
    p.add_argument("--warmup", type=float, default=1.0, help="seconds of load not counted (1)")
    p.add_argument("--runs", type=int, default=1, help="repeat K times on the same edge (1)")
    p.add_argument(
        "--rate",
        type=float,
        help="pace the connections at RATE requests/s in all instead of a closed loop",
    )
    p.add_argument("--url", help="target this running edge (give its --max-queue, processes)")
    p.add_argument("--workers", type=int, default=1, help="edge serving processes (1)")
    p.add_argument(
        "--transform-processes", type=int, default=0, help="per serving process (0 = per CPU)"
    )
    add_overrides(p)
    p.add_argument("--quiet-wait", type=float, default=10.0, metavar="S", help="(10)")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--keep", action="store_true", help="keep the stack's temp dir (logs)")
    args = p.parse_args(argv)
    if args.duration <= 0 or args.runs < 1 or args.workers < 1 or args.max_queue < 0:
        p.error("--duration, --runs and --workers must be positive, --max-queue >= 0")
    if args.connections is not None and args.connections < 1:
        p.error("--connections must be positive")
    if args.rate is not None and args.rate <= 0:
        p.error("--rate must be positive")
    args.overrides = parse_overrides(p, args.set)
    return args


async def run(args: argparse.Namespace, command: str) -> int:
    progress = Progress()
    stack = None
    if args.url:
        base, pids = args.url.rstrip("/"), {}
        processes = total_transform_processes(args.transform_processes, args.workers)
    else:
        overrides = {**args.overrides, "edge.transforms.max_queue": args.max_queue}
        stack = Stack(
            StackOptions(args.workers, args.transform_processes, overrides, keep_dir=args.keep)
        )
        base, processes = stack.edge_url, stack.transform_processes
    capacity = processes + args.workers * args.max_queue
    args.connections = args.connections or 3 * capacity
    progress.note(
        f"== overload: {args.connections} connections "
        + (f"paced at {args.rate:g} req/s" if args.rate else "in a closed loop")
        + f" on the miss mix, capacity {capacity} "
        f"({processes} transform processes + {args.workers} x max_queue {args.max_queue}), "
        f"{args.duration:g}s x {args.runs} run(s)" + (f", target {base}" if args.url else "")
    )
    runs = []
    try:
        if stack is not None:
            await stack.start()
            pids = stack.pids()
        for index in range(args.runs):
            runs.append(await measure_run(args, base, capacity, index, pids, progress))
    finally:
        if stack is not None:
            await asyncio.to_thread(stack.stop)
    summary = summarize(runs)
    data = {
        "scenario": "overload",
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "summary": summary,
        "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "overload.json").write_text(json.dumps(without_nan(data), indent=1))
    print("\n" + table(runs, summary) + "\n")
    for r in runs:
        print("CPU, % of one core: " + ", ".join(f"{k} {v:g}" for k, v in r["cpu_pct"].items()))
    for line in summary["notes"]:
        print("note: " + line)
    for line in summary["problems"]:
        print("FAILED: " + line, file=sys.stderr)
    print(f"results: {args.out / 'overload.json'}")
    return 1 if summary["problems"] else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(run(args, command_line("benchmarks.overload", argv)))


if __name__ == "__main__":
    sys.exit(main())
