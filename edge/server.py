"""`run_edge(config)`: serve until SIGTERM/SIGINT, then finish in-flight requests and return 0.

`edge.workers > 1`: this process becomes a small supervisor. It reserves the port, points
PROMETHEUS_MULTIPROC_DIR at a fresh directory *before* any child starts, and spawns N children
(`spawn`: each imports prometheus_client anew, after the variable is set) that all bind the
port with SO_REUSEPORT; the kernel spreads connections between them. A child that dies later
is replaced; one that fails right at start stops the whole edge (exit 1).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Coroutine
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from aiohttp import web

from imgcdn.config import EdgeConfig

log = logging.getLogger("imgcdn.edge")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
EARLY_EXIT_S = 10.0  # a child dying this soon after its start is a startup failure, not a crash
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def run_edge(config: EdgeConfig) -> int:
    """Blocking. Returns the process exit code (0 after a graceful stop)."""
    setup_logging()
    if config.workers <= 1:
        return run_worker(config, reports_shared=True, reuse_port=False)
    return supervise(config)


def setup_logging() -> None:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def run_worker(config: EdgeConfig, *, reports_shared: bool, reuse_port: bool) -> int:
    return run_loop(serve(config, reports_shared=reports_shared, reuse_port=reuse_port))


def run_loop(main: Coroutine[Any, Any, int]) -> int:
    """asyncio.run, on uvloop when it is installed (the `speed` extra)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def serve(config: EdgeConfig, *, reports_shared: bool, reuse_port: bool) -> int:
    from edge.app import create_app  # after PROMETHEUS_MULTIPROC_DIR is settled

    app = create_app(config, reports_shared=reports_shared)
    # keepalive_timeout also bounds slow headers (aiohttp's AppRunner default is an hour);
    # shutdown_timeout is how long in-flight requests get after SIGTERM.
    runner = web.AppRunner(
        app,
        keepalive_timeout=config.keepalive_timeout_s,
        shutdown_timeout=config.shutdown_grace_s,
        handle_signals=False,
        access_log=None,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_port=reuse_port or None)
        try:
            await site.start()
        except OSError as err:
            print(
                f"imgcdn: edge cannot listen on {config.host}:{config.port}: {err.strerror}",
                file=sys.stderr,
            )
            return 1
        host, port = runner.addresses[0][:2]
        settle_heap()
        log.info("edge listening on http://%s:%s (pid %d)", host, port, os.getpid())
        await stop.wait()
        log.info("edge stopping (grace %.0f s)", config.shutdown_grace_s)
    finally:
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
        await runner.cleanup()  # stops listening, waits for in-flight requests, closes the app
    return 0


def settle_heap() -> None:
    """Start-up is over: collect its garbage once, then move what survived (modules, the
    app: ~40k objects) to the GC's permanent generation. The full collections that stop the
    loop then walk only what serving creates. Once, not periodically: anything frozen that
    later becomes cyclic garbage is never freed."""
    gc.collect()
    gc.freeze()


# ---- several processes on one port ----


def worker_main(config: EdgeConfig, index: int) -> None:
    """Entry point of a child process (must stay a picklable top-level function)."""
    setup_logging()
    sys.exit(run_worker(config, reports_shared=index == 0, reuse_port=True))


def supervise(config: EdgeConfig) -> int:
    owned_dir = prepare_metrics_dir()
    try:
        listener = reserve_port(config.host, config.port)
    except OSError as err:
        print(
            f"imgcdn: edge cannot listen on {config.host}:{config.port}: {err.strerror}",
            file=sys.stderr,
        )
        return 1
    child_config = dataclasses.replace(
        config, port=listener.getsockname()[1], transforms=split_processes(config)
    )
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in STOP_SIGNALS}
    children: dict[int, tuple[BaseProcess, float]] = {}

    def start(index: int) -> None:
        process = context.Process(target=worker_main, args=(child_config, index), daemon=False)
        process.start()
        children[index] = (process, time.monotonic())

    code = 0
    try:
        for index in range(config.workers):
            start(index)
        log.info("edge: %d workers on http://%s:%s", config.workers, config.host, child_config.port)
        while not stop.wait(0.2):
            for index, (process, started) in list(children.items()):
                if process.exitcode is None:
                    continue
                mark_dead(process.pid)
                if time.monotonic() - started < EARLY_EXIT_S:
                    log.error("edge worker %d exited at start (code %s)", index, process.exitcode)
                    code = 1
                    stop.set()
                    break
                log.warning("edge worker %d died (code %s); replacing it", index, process.exitcode)
                start(index)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        stop_children([p for p, _ in children.values()], config.shutdown_grace_s)
        listener.close()
        if owned_dir:
            shutil.rmtree(owned_dir, ignore_errors=True)
    return code


def prepare_metrics_dir() -> str | None:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty directory; return it if we made it."""
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:  # set by the operator's supervisor: wipe the previous run's files
        Path(existing).mkdir(parents=True, exist_ok=True)
        for stale in Path(existing).glob("*.db"):
            stale.unlink(missing_ok=True)
        return None
    directory = tempfile.mkdtemp(prefix="imgcdn-edge-metrics-")
    os.environ[MULTIPROC_ENV] = directory
    return directory


def reserve_port(host: str, port: int) -> socket.socket:
    """Bind (without listening) so port 0 resolves once and every worker shares that port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def split_processes(config: EdgeConfig) -> Any:
    """`transforms.processes: 0` means one per CPU for the host, shared out between workers."""
    t = config.transforms
    if t.processes > 0:
        return t
    per_worker = max(1, (os.cpu_count() or 1) // config.workers)
    return dataclasses.replace(t, processes=per_worker)


def mark_dead(pid: int | None) -> None:
    if pid is None:
        return
    from prometheus_client import multiprocess

    with contextlib.suppress(OSError):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def stop_children(processes: list[BaseProcess], grace_s: float) -> None:
    for process in processes:
        if process.exitcode is None and process.pid is not None:
            os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s + 5.0
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
        if process.exitcode is None:
            process.kill()
            process.join(1.0)
