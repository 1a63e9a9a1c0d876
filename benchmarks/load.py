"""`python -m benchmarks.load --scenario hit|miss|zipf|avatars|all [options]`

Starts an imgcdn stack on temporary ports (or targets `--url`), seeds it, drives load with wrk
when installed (the built-in aiohttp generator otherwise), measures the matching baseline in
the same run, prints a table and writes `<scenario>.json` / `.png` and `summary.png` under
`--out` (default `benchmarks/results/`). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import aiohttp

from benchmarks.chart import plot_scenario, plot_summary
from benchmarks.drive import Driver, Progress, choose_generator
from benchmarks.entry import add_overrides, command_line, parse_overrides, run_main
from benchmarks.report import process_lines, table, write_json
from benchmarks.runner import ScenarioRunner
from benchmarks.scenarios import DEFAULT_USERS, SCENARIOS
from benchmarks.targets import Settings

RESULTS = Path(__file__).parent / "results"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.load", description=__doc__.split("\n")[0]
    )
    p.add_argument(
        "--scenario",
        required=True,
        action="append",
        help="hit, miss, zipf, avatars or all (repeat or comma-separate for several)",
    )
    p.add_argument("--duration", type=float, default=10.0, help="seconds measured per run (10)")
    p.add_argument("--connections", type=int, default=32, help="concurrent connections (32)")
    p.add_argument("--runs", type=int, default=1, help="repeat each scenario K times (1)")
    p.add_argument(
        "--pipeline",
        type=int,
        default=1,
        metavar="N",
        help="hit only, with wrk: each connection sends N requests at once (HTTP/1.1 "
        "pipelining), edge and baseline alike, so wrk takes less of a small box (1)",
    )
    p.add_argument("--url", help="benchmark this running edge instead of starting a stack")
    p.add_argument("--origin-url", help="with --url: seed avatar users through this origin")
    p.add_argument("--workers", type=int, default=1, help="edge serving processes (1)")
    p.add_argument(
        "--transform-processes", type=int, default=0, help="edge transform workers (0 = per CPU)"
    )
    p.add_argument("--no-baseline", action="store_true", help="skip the baseline measurements")
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory")
    p.add_argument("--generator", choices=("auto", "wrk", "builtin"), default="auto")
    p.add_argument("--warmup", type=float, help="warm-up seconds per run (scenario default)")
    p.add_argument("--users", type=int, default=DEFAULT_USERS, help="avatar users to seed (200)")
    add_overrides(p)
    p.add_argument(
        "--progressive",
        action="store_true",
        help="with --url: the edge emits progressive JPEG (the miss baseline then does too)",
    )
    p.add_argument(
        "--paced",
        metavar="RATE",
        help="after each run, repeat its load paced at RATE requests/s, or 'half' of the "
        "rate just measured, and report the latency there",
    )
    p.add_argument(
        "--quiet-wait",
        type=float,
        default=20.0,
        metavar="S",
        help="before each measurement wait up to S seconds for the box to be <10%% busy (20)",
    )
    p.add_argument("--keep", action="store_true", help="keep the stack's temp dir (logs)")
    args = p.parse_args(argv)
    names = [n.strip() for s in args.scenario for n in s.split(",") if n.strip()]
    if "all" in names:
        names = list(SCENARIOS)
    bad = [n for n in names if n not in SCENARIOS]
    if bad:
        p.error(f"unknown scenario {bad[0]!r}; choose from {', '.join(SCENARIOS)} or all")
    if args.connections < 1 or args.duration <= 0 or args.runs < 1 or args.workers < 1:
        p.error("--connections, --duration, --runs and --workers must be positive")
    if args.pipeline < 1:
        p.error("--pipeline must be positive")
    if args.pipeline > 1 and (names != ["hit"] or args.paced or args.generator == "builtin"):
        p.error("--pipeline: the hit scenario alone, with wrk, and without --paced")
    if args.paced not in (None, "half"):
        try:
            if float(args.paced) <= 0:
                raise ValueError
        except ValueError:
            p.error("--paced: a positive number of requests/s or 'half'")
    args.scenarios = list(dict.fromkeys(names))
    args.overrides = parse_overrides(p, args.set)
    return args


def settings_for(args: argparse.Namespace, scenario: str) -> Settings:
    return Settings(
        scenario=scenario,
        duration_s=args.duration,
        connections=args.connections,
        runs=args.runs,
        url=args.url,
        origin_url=args.origin_url,
        workers=args.workers,
        transform_processes=args.transform_processes,
        baseline=not args.no_baseline,
        warmup_s=args.warmup,
        users=args.users,
        generator=args.generator,
        progressive=args.progressive if args.url else None,
        overrides=args.overrides,
        keep=args.keep,
        quiet_wait_s=args.quiet_wait,
        paced=args.paced,
        pipeline=args.pipeline,
    )


async def run(args: argparse.Namespace, command: str) -> int:
    progress = Progress()
    generator = choose_generator(args.generator)
    summaries, datas, failed = [], [], []
    for scenario in args.scenarios:
        settings = settings_for(args, scenario)
        progress.note(
            f"== {scenario}: {generator}, {args.connections} connections, "
            f"{args.duration:g}s x {args.runs} run(s)"
            + (f", target {args.url}" if args.url else ", own stack")
        )
        if args.pipeline > 1 and generator != "wrk":
            progress.note(f"[{scenario}] FAILED: --pipeline needs wrk (apt-get install wrk)")
            failed.append(scenario)
            continue
        driver = Driver(generator, args.connections, progress, args.pipeline)
        runner = ScenarioRunner(settings, driver)
        try:
            results = await runner.run()
        except (RuntimeError, OSError, aiohttp.ClientError) as err:
            progress.note(f"[{scenario}] FAILED: {err}")
            failed.append(scenario)
            continue
        finally:
            runner.cleanup()
        data = write_json(args.out, settings, results, command)
        plot_scenario(data, args.out / f"{scenario}.png")
        summaries.append(data["summary"])
        datas.append(data)
        for r in results:
            for note in r.notes:
                progress.note(f"[{scenario} {r.index + 1}] note: {note}")
    if summaries:
        plot_summary(args.out, args.out / "summary.png")
        print()
        print(table(summaries))
        print()
        print(process_lines(datas))
        print(f"\nresults: {args.out}/<scenario>.json, <scenario>.png, summary.png")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run_main(run(args, command_line("benchmarks.load", argv)))


if __name__ == "__main__":
    sys.exit(main())
