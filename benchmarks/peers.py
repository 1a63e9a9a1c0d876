"""`python -m benchmarks.peers avatars [options]`: the edge's avatar misses/s next to thumbor's
transforms/s on the same mix, in the same run.

The mix: U users seeded through the origin API, user i with the sample JPEG `benchmarks.seed`
gives it (the six ~1024 px photos in turn), and every (user, size) pair for the sizes
32/64/80/128/256 exactly once, shuffled with a fixed seed, so every request is a variant miss.
The edge gets `/avatar/{hash}?s={size}`; thumbor `/unsafe/{size}x{size}/u{i}.jpg` (its square
centre crop) over a directory holding user i's photo as `u{i}.jpg`, in the same order. Each run
sends the whole mix once to each row, with wrk (or the built-in generator), and divides by the
time it took: every row does the same work. The default mix lasts `--duration` seconds at 400
misses/s (U = 80 x duration); a row that needs more than 6x that is stopped and says so.

1. the edge with `edge.transforms.avatar_from_larger` on, on a fresh stack;
2. the edge with it off, on another fresh stack;
3. thumbor (no result storage, no storage: every request is a transform).

Before measuring, every user's lookup is warmed with `?s=16&fm=png` (another size and format,
so it can never stand in for a mix size; it also leaves that user's original in the edge's
memory while `edge.cache.originals_bytes` holds it), so both sides do image work only; `--cold`
skips it.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.drive import Driver, Progress, choose_generator, wait_quiet
from benchmarks.edgemetrics import scrape
from benchmarks.entry import add_overrides, command_line, parse_overrides, run_main
from benchmarks.load import RESULTS
from benchmarks.peermix import (
    CHECK_QUERY,
    MIX_SEED,
    RATE_CEILING,
    ROWS,
    WARM_QUERY,
    WARM_SIZE,
    RowRun,
    build_mix,
    derivable_share,
    describe,
    edge_path,
    jpeg_frame,
    mix_users,
    run_notes,
    summarize,
    table,
    thumbor_path,
    trees_ms,
    user_file,
    user_photo,
)
from benchmarks.procstats import box_noise, box_snapshot, tree_cpu_s
from benchmarks.report import machine, without_nan
from benchmarks.scenarios import AVATAR_SIZES
from benchmarks.seed import seed_users
from benchmarks.stack import Stack, StackOptions, total_transform_processes
from benchmarks.targets import fetch
from benchmarks.thumbor import DEFAULT_BINARY, INSTALL_HINT, ThumborPeer, thumbor_version

PEERS = ("avatars",)
ONCE_CAP = 6  # a row stops after this many times --duration even if the mix is not done


async def check_square(url: str, size: int) -> str:
    """GET `url`, insist on a 200 `size`x`size` JPEG; -> "baseline JPEG" or "progressive JPEG"."""
    status, headers, body = await fetch(url)
    frame = jpeg_frame(body) if status == 200 else None
    if frame is None or frame[1:] != (size, size):
        raise RuntimeError(
            f"{url} -> {status} {headers.get('Content-Type')}: expected a {size}x{size} JPEG, "
            f"got {frame}"
        )
    return f"{frame[0]} JPEG"


class PeerBench:
    """The three rows of every run, over one mix."""

    def __init__(self, args: argparse.Namespace, driver: Driver, tmp: Path) -> None:
        self.args = args
        self.driver = driver
        self.progress = driver.progress
        self.tmp = tmp
        self.users = args.users or mix_users(args.duration)
        self.pairs = build_mix(self.users)
        self.thumbor: ThumborPeer | None = None
        self.thumbor_output = "?"

    async def run(self) -> dict[str, list[RowRun]]:
        runs: dict[str, list[RowRun]] = {row: [] for row in ROWS}
        try:
            await self.start_thumbor()
            for index in range(self.args.runs):
                runs["edge on"].append(await self.edge_row("edge on", index))
                runs["edge off"].append(await self.edge_row("edge off", index))
                if self.thumbor is not None:
                    runs["thumbor"].append(await self.thumbor_row(index))
        finally:
            if self.thumbor is not None:
                self.thumbor.stop()
        return runs

    async def start_thumbor(self) -> None:
        binary: Path = self.args.thumbor
        if not self.args.thumbor_found:
            self.progress.note(INSTALL_HINT.format(path=binary) + "; skipping the thumbor row")
            return
        files = {user_file(u): user_photo(u) for u in range(self.users)}
        self.thumbor = peer = ThumborPeer(
            binary, self.tmp / "thumbor", files, self.args.thumbor_processes, not self.args.no_nginx
        )
        self.progress.show(f"[thumbor] starting {peer.layout} ...")
        await peer.start()
        user, size = self.pairs[0]
        self.thumbor_output = await check_square(peer.url + thumbor_path(user, size), size)
        warm = [thumbor_path(u, WARM_SIZE) for u in range(min(self.users, 100))]
        await self.warm(peer.url, "[thumbor] warm-up", warm)

    async def edge_row(self, row: str, index: int) -> RowRun:
        label = f"[{row} {index + 1}/{self.args.runs}]"
        overrides = {
            **self.args.overrides,
            "edge.transforms.avatar_from_larger": row == "edge on",
        }
        if self.args.progressive:
            overrides["edge.transforms.jpeg_progressive"] = True
        options = StackOptions(
            self.args.workers, self.args.transform_processes, overrides, self.args.keep
        )
        stack = Stack(options)
        self.progress.show(f"{label} starting a fresh stack ...")
        await stack.start()
        try:
            self.progress.show(f"{label} seeding {self.users} users ...")
            hashes = await seed_users(stack.origin_url, self.users, concurrency=16)
            check = stack.edge_url + edge_path(hashes[0], WARM_SIZE) + CHECK_QUERY
            output = await check_square(check, WARM_SIZE)
            if not self.args.cold:
                warm = [edge_path(h, WARM_SIZE) + WARM_QUERY for h in hashes]
                await self.warm(stack.edge_url, f"{label} warming lookups", warm)
            paths = [edge_path(hashes[u], s) for u, s in self.pairs]
            return await self.measure(row, index, stack.edge_url, paths, stack.pids(), output)
        finally:
            stack.stop()

    async def thumbor_row(self, index: int) -> RowRun:
        assert self.thumbor is not None
        paths = [thumbor_path(u, s) for u, s in self.pairs]
        return await self.measure(
            "thumbor", index, self.thumbor.url, paths, self.thumbor.pids(), self.thumbor_output
        )

    async def warm(self, base_url: str, label: str, paths: Sequence[str]) -> None:
        m, _ = await self.driver.each_once(base_url, f"{label}: {len(paths)} requests", paths)
        if m.errors:
            raise RuntimeError(f"{label}: {m.errors} errors, statuses {m.statuses}")

    async def measure(
        self, row: str, index: int, url: str, paths: list[str], roots: dict[str, int], out: str
    ) -> RowRun:
        label = f"[{row} {index + 1}/{self.args.runs}]"
        edge = row != "thumbor"
        await wait_quiet(self.progress, self.args.quiet_wait)
        before = await scrape(url) if edge else None
        cpu0, box0 = {t: tree_cpu_s([pid]) for t, pid in roots.items()}, box_snapshot()
        cap = ONCE_CAP * self.args.duration
        m = await self.driver.run(url, f"{label} measuring", cap, paths=paths, once=True)
        box1 = box_snapshot()
        cpu = {t: tree_cpu_s([pid]) - cpu0[t] for t, pid in roots.items()}
        after = await scrape(url) if edge else None
        counters = after.minus(before) if after and before else None
        value = m.rps
        if edge:
            value = counters.misses / m.duration_s if counters else math.nan
        run = RowRun(row, index, m, value, trees_ms(cpu, m.requests), out, edge=counters)
        if edge:
            run.derivable = derivable_share(self.pairs, m.requests)
        run.noise = box_noise(box0, box1, sum(cpu.values()))
        run.notes = run_notes(run, len(paths))
        self.progress.note(f"{label} {describe(run)}")
        return run


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.peers", description=__doc__.split("\n")[0]
    )
    p.add_argument("peer", choices=PEERS, help="the comparison: avatars (the edge vs thumbor)")
    p.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="sizes the mix: seconds of it at 400 misses/s (10)",
    )
    p.add_argument("--runs", type=int, default=1, help="repeat all rows K times (1)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    p.add_argument(
        "--users",
        type=int,
        default=0,
        help=f"users seeded (0: {RATE_CEILING:.0f} misses/s x duration / 5 sizes, no repeats)",
    )
    p.add_argument("--thumbor", type=Path, default=DEFAULT_BINARY, help="the thumbor binary")
    p.add_argument(
        "--thumbor-processes",
        type=int,
        default=0,
        help="thumbor processes (0: as many as the edge has transform workers)",
    )
    p.add_argument(
        "--no-nginx", action="store_true", help="thumbor --processes N instead of nginx in front"
    )
    p.add_argument(
        "--progressive",
        action="store_true",
        help="edge.transforms.jpeg_progressive=true: progressive JPEG like thumbor's",
    )
    p.add_argument("--cold", action="store_true", help="no lookup warm-up before measuring")
    p.add_argument("--workers", type=int, default=1, help="edge serving processes (1)")
    p.add_argument(
        "--transform-processes", type=int, default=0, help="edge transform workers (0 = per CPU)"
    )
    add_overrides(p)
    p.add_argument("--generator", choices=("auto", "wrk", "builtin"), default="auto")
    p.add_argument(
        "--quiet-wait", type=float, default=20.0, metavar="S", help="wait for a quiet box (20)"
    )
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--keep", action="store_true", help="keep each stack's temp dir (logs)")
    args = p.parse_args(argv)
    if min(args.duration, args.runs, args.connections, args.workers) <= 0 or args.users < 0:
        p.error("--duration, --runs, --connections and --workers must be positive")
    args.overrides = parse_overrides(p, args.set)
    args.thumbor_found = args.thumbor.is_file()
    if args.thumbor_processes <= 0:
        args.thumbor_processes = total_transform_processes(args.transform_processes, args.workers)
    return args


async def run(args: argparse.Namespace, command: str) -> int:
    progress = Progress()
    generator = choose_generator(args.generator)
    tmp = Path(tempfile.mkdtemp(prefix="imgcdn-peers-"))
    bench = PeerBench(args, Driver(generator, args.connections, progress), tmp)
    progress.note(
        f"== avatars, edge vs thumbor: {generator} -c{args.connections}, {args.duration:g}s x "
        f"{args.runs} run(s); {bench.users} users x {len(AVATAR_SIZES)} sizes = "
        f"{len(bench.pairs)} distinct avatars; lookups {'cold' if args.cold else 'warmed'}"
    )
    try:
        runs = await bench.run()
    except (RuntimeError, OSError, aiohttp.ClientError) as err:
        progress.note(f"FAILED: {err}")
        return 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    thumbor = "thumbor (not run)"
    if bench.thumbor is not None:
        thumbor = f"{thumbor_version(args.thumbor)}, {bench.thumbor.layout}"
    titles = {
        "edge on": "imgcdn edge, avatar_from_larger on",
        "edge off": "imgcdn edge, avatar_from_larger off",
        "thumbor": thumbor,
    }
    summary = summarize(runs, titles)
    path = write_results(args, bench, summary, runs, command)
    print()
    print(table(summary))
    for rs in runs.values():
        for r in rs:
            for note in r.notes:
                print(f"note [{r.row} {r.index + 1}]: {note}")
    print(f"\nresults: {path}")
    return 0


def write_results(
    args: argparse.Namespace,
    bench: PeerBench,
    summary: dict[str, Any],
    runs: Mapping[str, Sequence[RowRun]],
    command: str,
) -> Path:
    settings = {
        "duration_s": args.duration,
        "runs": args.runs,
        "connections": args.connections,
        "users": bench.users,
        "distinct_avatars": len(bench.pairs),
        "sizes": list(AVATAR_SIZES),
        "mix_seed": MIX_SEED,
        "lookups": "cold" if args.cold else f"warmed with ?s={WARM_SIZE}{WARM_QUERY}",
        "progressive": args.progressive,
        "workers": args.workers,
        "transform_processes": args.transform_processes,
        "overrides": args.overrides,
        "thumbor": None
        if bench.thumbor is None
        else {"binary": str(args.thumbor), "layout": bench.thumbor.layout},
    }
    data = {
        "peer": "avatars",
        "command": command,
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "settings": settings,
        "summary": summary,
        "runs": [r.to_json() for rs in runs.values() for r in rs],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path: Path = args.out / "peers-avatars.json"
    path.write_text(json.dumps(without_nan(data), indent=1, default=str))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(run(args, command_line("benchmarks.peers", argv)))


if __name__ == "__main__":
    sys.exit(main())
