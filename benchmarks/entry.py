"""How every benchmark command starts: the command line it records, and its event loop."""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

import yaml


def command_line(module: str, argv: Sequence[str] | None) -> str:
    """`python -m benchmarks.X ...` as the user typed it (kept in the results JSON)."""
    return f"python -m {module} " + shlex.join(sys.argv[1:] if argv is None else list(argv))


def run_main(main: Coroutine[Any, Any, int]) -> int:
    """Run `main` on uvloop when installed (as the edge does), else asyncio's loop; Ctrl-C
    exits 130 (every process a benchmark starts is stopped on its way out)."""
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    try:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(main)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def add_overrides(p: argparse.ArgumentParser) -> None:
    """`--set KEY=VALUE`, repeatable: config for the stack the benchmark starts."""
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for the started stack, e.g. edge.transforms.nice=0 (repeat)",
    )


def parse_overrides(p: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, Any]:
    """`--set` items as {"edge.cache.memory_bytes": 0, ...} (values read as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.startswith(("edge.", "origin.")):
            p.error(f"--set {item!r}: expected edge.KEY=VALUE or origin.KEY=VALUE")
        out[key] = yaml.safe_load(value)
    return out
