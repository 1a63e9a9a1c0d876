"""Run one load phase with the chosen generator, with a progress line; the hit-baseline server.

The progress line is rewritten in place (`\\r`) when stdout is a terminal, and printed as a
plain line every few seconds otherwise (logs, CI).
"""

from __future__ import annotations

import asyncio
import itertools
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TextIO

import aiohttp

from benchmarks.baselines import hit_server_command
from benchmarks.loadgen import LoadState, run_load
from benchmarks.measure import Measurement
from benchmarks.procstats import box_snapshot
from benchmarks.stack import free_port, kill_if_alive
from benchmarks.wrk import run_wrk, wrk_binary

PLAIN_EVERY_S = 5.0
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Progress:
    """One status line while a phase runs."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.width = 0
        self.last_plain = -PLAIN_EVERY_S

    def show(self, text: str) -> None:
        if self.tty:
            pad = max(0, self.width - len(text))
            self.stream.write("\r" + text + " " * pad)
            self.width = len(text)
        elif time.monotonic() - self.last_plain >= PLAIN_EVERY_S * 0.9:
            self.last_plain = time.monotonic()
            self.stream.write(text + "\n")
        self.stream.flush()

    def clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")
            self.stream.flush()
            self.width = 0

    def note(self, text: str) -> None:
        """A line that stays (phase results, warnings)."""
        self.clear()
        self.stream.write(text + "\n")
        self.stream.flush()

    async def follow(
        self,
        label: str,
        state: LoadState,
        duration_s: float | None,
        total: int | None = None,
        extra: Callable[[], str] | None = None,
    ) -> None:
        every = 0.5 if self.tty else PLAIN_EVERY_S
        start = time.perf_counter()
        while not state.done:
            await asyncio.sleep(every)
            if state.done:
                break
            elapsed = time.perf_counter() - start
            parts = [label]
            parts.append(f"{elapsed:4.1f}/{duration_s:g}s" if duration_s else f"{elapsed:4.1f}s")
            if state.requests or total:
                done = f"{state.requests}/{total}" if total else f"{state.requests}"
                parts.append(f"{done} req  {state.requests / max(elapsed, 1e-6):7.0f} rps")
                parts.append(f"err {state.errors}")
            if extra is not None:
                parts.append(extra())
            self.show("  ".join(parts))
        self.clear()


async def wait_quiet(progress: Progress, max_wait_s: float, busy_limit: float = 0.10) -> float:
    """Wait (at most `max_wait_s`) until the box is under `busy_limit` busy over 1 s.

    Other work on a shared machine (builds, tests) otherwise lands in the figures. Returns
    the last busy fraction seen.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        a = box_snapshot()
        await asyncio.sleep(1.0)
        b = box_snapshot()
        busy = (b.busy - a.busy) / max(b.total - a.total, 1e-9)
        if busy < busy_limit or time.monotonic() >= deadline:
            progress.clear()
            return busy
        progress.show(f"waiting for a quiet box: {busy:.0%} busy (limit {busy_limit:.0%})")


def choose_generator(requested: str) -> str:
    if requested == "auto":
        return "wrk" if wrk_binary() else "builtin"
    if requested == "wrk" and not wrk_binary():
        raise SystemExit("--generator wrk: wrk is not installed (apt-get install wrk)")
    return requested


class Driver:
    """Runs load phases with one generator and one connection count."""

    def __init__(
        self, generator: str, connections: int, progress: Progress, pipeline: int = 1
    ) -> None:
        self.generator = generator
        self.connections = connections
        self.progress = progress
        self.pipeline = pipeline  # wrk's requests in flight per connection on one fixed path

    async def run(
        self,
        base_url: str,
        label: str,
        duration_s: float,
        *,
        fixed_path: str | None = None,
        paths: Sequence[str] | None = None,
        extra: Callable[[], str] | None = None,
        rate: float | None = None,
        once: bool = False,
    ) -> Measurement:
        """Closed-loop load for `duration_s` on one path or cycling over `paths`; with `rate`,
        paced at about that many requests/s instead; `once`: every path once, then stop
        (`duration_s` caps it)."""
        state = LoadState()
        follower = asyncio.create_task(self.progress.follow(label, state, duration_s, None, extra))
        try:
            if self.generator == "wrk":
                delay_ms = 0.0
                if rate:
                    delay_ms = await self.calibrate_delay(base_url, rate, fixed_path, paths)
                return await run_wrk(
                    base_url,
                    paths=paths,
                    fixed_path=fixed_path,
                    connections=self.connections,
                    duration_s=duration_s,
                    count_statuses=fixed_path is None,
                    delay_ms=delay_ms,
                    state=state,
                    once=once,
                    pipeline=self.pipeline,  # run_wrk refuses it with paths or pacing
                )
            source: Iterable[str] = (
                itertools.repeat(fixed_path) if fixed_path else itertools.cycle(paths or ())
            )
            if once and paths:
                source = paths  # a sized sequence: run_load stops at its end
            outcome = await run_load(
                base_url,
                source,
                connections=self.connections,
                duration_s=None if once else duration_s,
                state=state,
                rate=rate,
            )
            return outcome.measurement
        finally:
            state.done = True
            await follower

    async def calibrate_delay(
        self,
        base_url: str,
        rate: float,
        fixed_path: str | None,
        paths: Sequence[str] | None,
    ) -> float:
        """wrk pauses *after* each response, so a connection's cycle is delay + latency:
        measure the latency at about the target rate for 2 s and take it off the delay."""
        delay = 1000.0 * self.connections / rate
        m = await run_wrk(
            base_url,
            paths=paths,
            fixed_path=fixed_path,
            connections=self.connections,
            duration_s=2,
            count_statuses=False,
            delay_ms=delay,
        )
        latency = m.latency(50)
        return delay if math.isnan(latency) else max(0.0, delay - latency)

    async def each_once(
        self, base_url: str, label: str, paths: Sequence[str]
    ) -> tuple[Measurement, dict[str, int]]:
        """Request every path once (built-in generator); -> measurement, body size per path."""
        state = LoadState()
        follower = asyncio.create_task(self.progress.follow(label, state, None, len(paths)))
        try:
            outcome = await run_load(
                base_url,
                paths,
                connections=self.connections,
                duration_s=None,
                state=state,
                record_sizes=True,
                timeout_s=60.0,
            )
        finally:
            state.done = True
            await follower
        return outcome.measurement, outcome.sizes


class HitBaseline:
    """`processes` bare aiohttp servers on one port (SO_REUSEPORT) serving `body_file`."""

    def __init__(
        self, body_file: Path, processes: int, use_uvloop: bool, edge_headers: bool = False
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.command = hit_server_command(self.port, body_file, use_uvloop)
        if edge_headers:
            self.command.append("--edge-headers")
        self.processes = processes
        self.procs: list[subprocess.Popen[bytes]] = []

    def spawn(self) -> None:
        for _ in range(self.processes):
            self.procs.append(
                subprocess.Popen(
                    self.command,
                    cwd=PROJECT_ROOT,  # `-m benchmarks.baselines` must resolve from anywhere
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                )
            )

    async def __aenter__(self) -> HitBaseline:
        self.spawn()
        deadline = time.monotonic() + 30
        # every process must listen before load arrives, or the first takes all connections
        while listening_sockets(self.port) < self.processes:
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                await self.__aexit__()
                raise RuntimeError("the hit baseline server did not start")
            await asyncio.sleep(0.1)
        async with aiohttp.ClientSession() as session, session.get(self.url + "/") as resp:
            if resp.status != 200:
                raise RuntimeError(f"the hit baseline server answered {resp.status}")
        return self

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                await asyncio.to_thread(proc.wait, 10)
            except subprocess.TimeoutExpired:
                kill_if_alive(proc.pid)
                proc.wait()
        self.procs.clear()


def listening_sockets(port: int) -> int:
    """How many TCP sockets listen on `port` (IPv4), from /proc/net/tcp."""
    needle = f":{port:04X} "
    count = 0
    try:
        with open("/proc/net/tcp", encoding="ascii") as f:
            next(f)
            for line in f:
                fields = line.split()
                if (fields[1] + " ").endswith(needle) and fields[3] == "0A":
                    count += 1
    except OSError:
        return 0
    return count
