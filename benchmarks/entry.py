"""How every benchmark command starts: the command line it records, and its event loop."""

from __future__ import annotations

import asyncio
import shlex
import sys
from collections.abc import Coroutine, Sequence
from typing import Any


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
