"""Drive `wrk` (apt package `wrk`) with `lua/paths.lua` and read back its JSON summary.

wrk is a C event loop and costs far less CPU per request than any Python client, so on a
2-core box it leaves more of the machine to the server: the hit path needs it to show its real
ceiling. Varying URLs come from a file of paths that the Lua script cycles through (each wrk
thread its own interleaved slice); one fixed path uses no per-request Lua at all.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path

from benchmarks.loadgen import LoadState
from benchmarks.measure import Measurement

LUA_SCRIPT = Path(__file__).parent / "lua" / "paths.lua"
MARK = "BENCH_JSON "
DONE_MARK = b"BENCH_DONE"  # a thread of `--once` has had every path of its share answered


def wrk_binary() -> str | None:
    return shutil.which("wrk")


def wrk_threads(connections: int, pipeline: int = 1) -> int:
    """One wrk thread per CPU; one in all when pipelining.

    Pipelined, one thread drives 66 000 req/s at a third of a core, 5.0-5.6 us of CPU per
    request, where two threads spend 8.7-10.8 us (bare aiohttp in two processes, 32
    connections, 8-64 deep, session 12): the second thread only contends with the servers.
    """
    if pipeline > 1:
        return 1
    return max(1, min(connections, os.cpu_count() or 1))


async def run_wrk(
    base_url: str,
    *,
    paths: Sequence[str] | None = None,
    fixed_path: str | None = None,
    connections: int,
    duration_s: float,
    timeout_s: float = 10.0,
    count_statuses: bool = True,
    delay_ms: float = 0.0,
    state: LoadState | None = None,
    once: bool = False,
    pipeline: int = 1,
) -> Measurement:
    """Run wrk for `duration_s` against `base_url` with `paths` (cycled) or one `fixed_path`.

    `delay_ms` > 0 makes each connection pause that long before each request (paced load).
    `once`: request every path once and stop when all are answered (`duration_s` is a cap).
    `pipeline` > 1 (with `fixed_path`): each connection sends that many requests at once and
    waits for every answer (HTTP/1.1 pipelining); no latencies are reported then.
    """
    binary = wrk_binary()
    if binary is None:
        raise RuntimeError("wrk is not installed (apt-get install wrk)")
    if (paths is None) == (fixed_path is None):
        raise ValueError("give exactly one of paths and fixed_path")
    if pipeline < 1 or (pipeline > 1 and (fixed_path is None or delay_ms > 0)):
        raise ValueError("pipeline > 1 needs one fixed_path and no delay")
    threads = wrk_threads(connections, pipeline)
    state = state or LoadState()
    with tempfile.TemporaryDirectory(prefix="imgcdn-wrk-") as tmp:
        env = {**os.environ, "BENCH_THREADS": str(threads)}
        if fixed_path is not None:
            env["BENCH_FIXED_PATH"] = fixed_path
        else:
            assert paths is not None
            paths_file = Path(tmp) / "paths.txt"
            paths_file.write_text("\n".join(paths) + "\n", encoding="ascii")
            env["BENCH_PATHS_FILE"] = str(paths_file)
        if count_statuses:
            env["BENCH_STATUSES"] = "1"
        if delay_ms > 0:
            env["BENCH_DELAY_MS"] = f"{delay_ms:.3f}"
        if once:
            env["BENCH_ONCE"] = "1"
        if pipeline > 1:
            env["BENCH_PIPELINE"] = str(pipeline)
        args = [
            binary,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration_s))}s",
            f"--timeout={max(1, round(timeout_s))}s",
            "--latency",
            "-s",
            str(LUA_SCRIPT),
            base_url.rstrip("/"),
        ]
        loop = asyncio.get_running_loop()
        state.started = loop.time()
        proc = await asyncio.create_subprocess_exec(
            *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            out, err = await (finish_once(proc, threads) if once else proc.communicate())
        except asyncio.CancelledError:
            proc.kill()  # our own child: do not leave it loading the server
            await proc.wait()
            raise
        state.done = True
    text = out.decode(errors="replace")
    if proc.returncode != 0 or MARK not in text:
        detail = (err.decode(errors="replace") or text).strip()[-500:]
        raise RuntimeError(f"wrk failed (exit {proc.returncode}): {detail}")
    measured = parse_wrk_json(text, connections)
    if pipeline > 1:  # wrk times a batch, not a request, and its percentiles past ~80 % read 0
        measured.curve = []
    return measured


async def finish_once(proc: asyncio.subprocess.Process, threads: int) -> tuple[bytes, bytes]:
    """Wait for every wrk thread's BENCH_DONE, then SIGINT wrk: it stops and reports (its
    own timer would otherwise run to `-d`); -> (stdout, stderr) like `communicate`."""
    assert proc.stdout is not None and proc.stderr is not None
    errors = asyncio.ensure_future(proc.stderr.read())
    lines: list[bytes] = []
    while line := await proc.stdout.readline():
        lines.append(line)
        if line.strip() == DONE_MARK:
            threads -= 1
            if threads == 0 and proc.returncode is None:
                proc.send_signal(signal.SIGINT)
    await proc.wait()
    return b"".join(lines), await errors


def parse_wrk_json(text: str, connections: int) -> Measurement:
    """Build a Measurement from the `BENCH_JSON {...}` line `lua/paths.lua` prints."""
    line = next(ln for ln in text.splitlines() if ln.startswith(MARK))
    data = json.loads(line[len(MARK) :])
    errors = data["errors"]
    statuses = {str(k): int(v) for k, v in sorted(data.get("statuses", {}).items())}
    return Measurement(
        generator="wrk",
        connections=connections,
        duration_s=data["duration_us"] / 1e6,
        requests=int(data["requests"]),
        statuses=statuses,
        non_2xx_3xx=int(errors["status"]),
        socket_errors=int(errors["connect"] + errors["read"] + errors["write"] + errors["timeout"]),
        body_bytes=int(data["bytes"]),
        curve=[(float(p), us / 1000.0) for p, us in data["curve"]],
    )
