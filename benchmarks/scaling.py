"""Hit throughput with N serving processes (`edge.workers`) against one, in one run.

    python -m benchmarks.scaling --runs 3                 # 1 and 2 processes, pipelined x8
    python -m benchmarks.scaling --workers 1,2,3 --pipeline 1

Every run measures the `hit` scenario once per process count, each followed by the bare
aiohttp handler in as many processes, the order of the counts reversed from one run to the
next so that a drift of the box favours none. It reports each count's requests/s and, per
run, its ratio to the first count's, for the edge and the bare handler alike: how the edge
scales beside how the handler alone scales on the same box. With wrk the default is
`--pipeline 8` (one wrk thread): unpipelined, wrk needs about a third of what the server
spends per request, and on two cores that share caps any server's scaling near 1.5x.
Writes `scaling.json` under `--out`.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import aiohttp

from benchmarks.drive import Driver, Progress, choose_generator
from benchmarks.entry import command_line, run_main
from benchmarks.load import RESULTS
from benchmarks.measure import Spread, ratio, spread
from benchmarks.report import fmt, machine, without_nan
from benchmarks.runner import ScenarioRunner
from benchmarks.targets import Settings

EDGE, BARE = "edge", "bare"
Figures = dict[str, dict[int, float]]  # "edge" | "bare" -> process count -> requests/s


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.scaling", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--workers", default="1,2", help="serving process counts, the first the reference (1,2)"
    )
    p.add_argument("--runs", type=int, default=3, help="runs, each measuring every count (3)")
    p.add_argument("--duration", type=float, default=8.0, help="seconds measured per phase (8)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    p.add_argument(
        "--pipeline",
        type=int,
        help="requests each connection sends at once (wrk only; default 8 with wrk, else 1)",
    )
    p.add_argument("--generator", choices=("auto", "wrk", "builtin"), default="auto")
    p.add_argument("--no-baseline", action="store_true", help="skip the bare aiohttp handler")
    p.add_argument("--quiet-wait", type=float, default=20.0, metavar="S", help=argparse.SUPPRESS)
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    args = p.parse_args(argv)
    try:
        args.counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        p.error(f"--workers: comma-separated process counts, got {args.workers!r}")
    if len(args.counts) < 2 or min(args.counts) < 1 or len(set(args.counts)) != len(args.counts):
        p.error("--workers: at least two different counts, each 1 or more")
    if args.runs < 1 or args.duration <= 0:
        p.error("--runs and --duration must be positive")
    if args.pipeline is not None and args.pipeline < 1:
        p.error("--pipeline must be positive")
    return args


def run_order(counts: Sequence[int], run: int) -> list[int]:
    """The counts in the given order on even runs, reversed on odd ones."""
    return list(counts) if run % 2 == 0 else list(reversed(counts))


def summarize(counts: Sequence[int], runs: Sequence[Figures]) -> dict[str, Any]:
    """Per kind and count: requests/s over the runs, and the per-run ratio to the first count."""
    first = counts[0]
    summary: dict[str, Any] = {}
    for kind in (EDGE, BARE):
        rates = {w: spread(r[kind].get(w, math.nan) for r in runs) for w in counts}
        ratios = {
            w: spread(ratio(r[kind].get(w, math.nan), r[kind].get(first, math.nan)) for r in runs)
            for w in counts[1:]
        }
        summary[kind] = {"rps": rates, "vs_first": ratios}
    summary["edge_vs_bare"] = {
        w: spread(ratio(r[EDGE].get(w, math.nan), r[BARE].get(w, math.nan)) for r in runs)
        for w in counts
    }
    return summary


def table(counts: Sequence[int], summary: dict[str, Any]) -> str:
    edge, bare = summary[EDGE], summary[BARE]
    lines = [
        "| serving processes | edge req/s | bare aiohttp req/s | edge / bare |",
        "|---|---|---|---|",
    ]
    for w in counts:
        versus = fmt(summary["edge_vs_bare"][w].to_json(), 2)
        rates = f"{fmt(edge['rps'][w].to_json())} | {fmt(bare['rps'][w].to_json())}"
        lines.append(f"| {w} | {rates} | {versus} |")
    for w in counts[1:]:
        lines.append(
            f"| {w} / {counts[0]}, per run | **{fmt(edge['vs_first'][w].to_json(), 2, 'x')}** "
            f"| {fmt(bare['vs_first'][w].to_json(), 2, 'x')} | |"
        )
    return "\n".join(lines)


def jsonable(value: Any) -> Any:
    """Spreads as their JSON, process counts as string keys."""
    if isinstance(value, Spread):
        return value.to_json()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    return value


async def measure(args: argparse.Namespace, progress: Progress) -> list[Figures]:
    generator = choose_generator(args.generator)
    pipeline = args.pipeline or (8 if generator == "wrk" else 1)
    if pipeline > 1 and generator != "wrk":
        raise SystemExit("--pipeline needs wrk (apt-get install wrk)")
    runs: list[Figures] = []
    for run in range(args.runs):
        figures: Figures = {EDGE: {}, BARE: {}}
        for workers in run_order(args.counts, run):
            progress.note(f"== run {run + 1}/{args.runs}: {workers} serving process(es)")
            settings = Settings(
                "hit",
                duration_s=args.duration,
                connections=args.connections,
                workers=workers,
                baseline=not args.no_baseline,
                generator=generator,
                quiet_wait_s=args.quiet_wait,
                pipeline=pipeline,
            )
            runner = ScenarioRunner(
                settings, Driver(generator, args.connections, progress, pipeline)
            )
            try:
                (result,) = await runner.run()
            finally:
                runner.cleanup()
            for note in result.notes:
                progress.note(f"[{workers} process(es)] note: {note}")
            figures[EDGE][workers] = result.value
            if result.baseline is not None:
                figures[BARE][workers] = result.baseline["value"]
        runs.append(figures)
    return runs


async def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    progress = Progress()
    try:
        runs = await measure(args, progress)
    except (RuntimeError, OSError, aiohttp.ClientError) as err:
        print(f"failed: {err}", file=sys.stderr)
        return 1
    summary = summarize(args.counts, runs)
    print()
    print(table(args.counts, summary))
    args.out.mkdir(parents=True, exist_ok=True)
    data = {
        "command": command_line("benchmarks.scaling", argv),
        "machine": machine(),
        "counts": args.counts,
        "runs": [{k: {str(w): v for w, v in f.items()} for k, f in r.items()} for r in runs],
        "summary": jsonable(summary),
    }
    out = args.out / "scaling.json"
    out.write_text(json.dumps(without_nan(data), indent=1))
    print(f"\nresults: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(run_main(main()))
