"""One `ProcessPoolExecutor` generation of `TransformPool`: its workers, and how it ends.

`ProcessPoolExecutor` keeps its worker processes and manager thread in private attributes and
drops them on shutdown; `Generation` keeps them so the pool can tell, after a break, which
worker died by itself, and can reap and kill them.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
from concurrent.futures import ProcessPoolExecutor
from multiprocessing.process import BaseProcess

CULPRIT_WAIT_S = 2.0  # how long to wait for a broken executor to reap its workers


class Generation:
    """One executor and the worker processes it has started (kept after it drops them)."""

    def __init__(self, number: int, executor: ProcessPoolExecutor) -> None:
        self.number = number
        self.executor = executor
        self.processes: dict[int, BaseProcess] = {}
        self.killed: set[int] = set()  # pids we SIGKILLed for a timeout
        self.manager: threading.Thread | None = None

    def note_processes(self) -> None:
        # `_processes` and `_executor_manager_thread` are private, but the executor keeps its
        # workers nowhere else, and drops both references on shutdown.
        live = getattr(self.executor, "_processes", None)
        if live:
            self.processes.update(live)
        if self.manager is None:
            self.manager = getattr(self.executor, "_executor_manager_thread", None)

    def settled(self) -> bool:
        """True once the executor's manager thread is gone: it has reaped every worker."""
        return self.manager is None or not self.manager.is_alive()


async def culprit(gen: Generation, pid: int) -> bool:
    """Did worker `pid` die by itself, rather than SIGTERMed by its breaking executor?

    Exit codes are read only after the manager thread has reaped every worker: two threads
    polling one forkserver sentinel can misread an exit code as 255.
    """
    process = gen.processes.get(pid)
    if process is None:
        return False
    if gen.manager is not None:
        await asyncio.to_thread(gen.manager.join, CULPRIT_WAIT_S)
    if not gen.settled():
        return False
    code = process.exitcode
    return code is not None and code != -signal.SIGTERM


def alive(pid: int) -> bool:
    """Is `pid` running? (Without polling its Process, which would race the executor.)"""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_generation(gen: Generation, grace_s: float) -> None:
    """Shut an executor down: pending tasks cancelled, running ones given `grace_s`, then killed."""
    gen.note_processes()
    gen.executor.shutdown(wait=False, cancel_futures=True)
    if gen.manager is not None:
        gen.manager.join(grace_s + 1.0)  # a broken executor reaps its workers itself
    for process in gen.processes.values():
        process.join(grace_s)
        if process.exitcode is None:
            process.kill()
            process.join(1.0)
