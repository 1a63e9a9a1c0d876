"""`TransformPool`: libvips renders in worker processes, with admission, timeouts and healing.

- Admission: at most `processes + max_queue` tasks in flight (running + waiting); the next
  raises `Overloaded` at once, without touching the executor.
- Timeout: a task past `timeout_s` (queue wait included) raises `Timeout`; a running task
  cannot be cancelled, so its worker is SIGKILLed and the executor replaced.
- Healing: a dead worker (segfault, OOM kill, SIGKILL) breaks a `ProcessPoolExecutor` for
  everyone. The pool builds a new executor once per break (a generation counter), fails the
  request whose worker died with `WorkerCrashed`, and retries the innocent ones once.
  The culprit is told apart by exit status: the executor SIGTERMs the survivors when it breaks.
- Workers start through `forkserver` (never `fork`: the parent has threads) and live as long as
  the pool (no `max_tasks_per_child`: it deadlocks on 3.11, CPython gh-115634).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, MutableSequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar, cast

from transforms import worker
from transforms.errors import Overloaded, Timeout, WorkerCrashed
from transforms.executors import Generation, alive, culprit, stop_generation
from transforms.pipeline import ImageInfo, Rendered, probe, render
from transforms.spec import Limits, TransformSpec

T = TypeVar("T")
log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0


class TransformPool:
    def __init__(
        self,
        processes: int,
        max_queue: int,
        timeout_s: float,
        on_restart: Callable[[], None] | None = None,
    ) -> None:
        self.processes = processes if processes > 0 else (os.cpu_count() or 1)
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.on_restart = on_restart
        self.restarts = 0
        self.capacity = self.processes + max_queue
        self._context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has already imported libvips (no threads yet), so a
        # replacement worker is ready in milliseconds. Ignored if the server is already running.
        self._context.set_forkserver_preload(["transforms.worker"])
        # One slot per task in flight; a task keeps its slot until its worker is done with it.
        size = self.capacity
        self._slots = cast(MutableSequence[int], self._context.Array("q", size, lock=False))
        self._free = list(range(size))
        self._generation: Generation | None = None
        self._numbers = 0
        self._lock = threading.Lock()
        self._closed = False
        self._background: set[asyncio.Task[None]] = set()
        # While a broken executor reaps its workers, nobody may start processes: Process.start()
        # polls every child, racing the reaper for the exit status (one of them reads 255).
        self._settling: asyncio.Future[None] | None = None

    @property
    def queued(self) -> int:
        """Tasks in flight: waiting plus running."""
        return len(self._slots) - len(self._free)

    @property
    def healthy(self) -> bool:
        gen = self._generation
        return gen is not None and not self._closed and not getattr(gen.executor, "_broken", False)

    @property
    def worker_pids(self) -> list[int]:
        gen = self._generation
        if gen is None:
            return []
        gen.note_processes()
        return [pid for pid in gen.processes if alive(pid)]

    async def start(self) -> None:
        """Start every worker now, so the first request does not pay for a spawn."""
        gen = self._new_generation()
        futures = [gen.executor.submit(worker.warm) for _ in range(self.processes)]
        gen.note_processes()
        async with asyncio.timeout(START_TIMEOUT_S):
            await asyncio.gather(*map(asyncio.wrap_future, futures))

    async def close(self) -> None:
        self._closed = True
        gen, self._generation = self._generation, None
        if gen is not None:
            await asyncio.to_thread(stop_generation, gen, self.timeout_s)
        for task in list(self._background):
            task.cancel()

    def admit(self, in_flight: int = 0) -> None:
        """Raise `Overloaded` now when a task submitted now would be refused. Callers check
        before fetching a source, so an overloaded edge answers 503 in a few ms instead of
        after reading the original; `in_flight`: the caller's own work that will need a
        slot and may not hold one yet (a burst passes this check before any of it does)."""
        if self._closed or self._generation is None:
            raise Overloaded("the transform pool is not running")
        if max(self.queued, in_flight) >= self.capacity:
            raise Overloaded("too many transforms waiting")

    async def render(self, data: bytes, spec: TransformSpec, limits: Limits) -> Rendered:
        return await self.run(render, data, spec, limits)

    async def probe(self, data: bytes, limits: Limits) -> ImageInfo:
        return await self.run(probe, data, limits)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker; `fn` must be a picklable top-level function."""
        self.admit()
        slot = self._free.pop()
        deadline = asyncio.get_running_loop().time() + self.timeout_s
        future: Future[T] | None = None
        try:
            for _attempt in (1, 2):
                gen, future = await self._submit(slot, fn, args)
                if future is None:
                    continue  # that executor was already broken and has been replaced
                outcome = await self._await(gen, slot, future, deadline)
                if outcome is not RETRY:
                    return cast(T, outcome)
            raise WorkerCrashed("the transform workers died twice during this task")
        finally:
            if future is not None:
                future.cancel()  # a no-op unless we are leaving while it still waits
            self._release_when_done(slot, future)

    def _release_when_done(self, slot: int, future: Future[Any] | None) -> None:
        """Free `slot` now, or when a worker still running it is done (a cancelled caller)."""

        def free() -> None:
            self._slots[slot] = 0
            self._free.append(slot)

        if future is None or future.done():
            free()
        else:
            loop = asyncio.get_running_loop()
            future.add_done_callback(lambda _: loop.call_soon_threadsafe(free))

    async def _submit(
        self, slot: int, fn: Callable[..., T], args: tuple[Any, ...]
    ) -> tuple[Generation, Future[T] | None]:
        if self._settling is not None:
            await asyncio.shield(self._settling)
        gen = self._generation
        if gen is None:
            raise Overloaded("the transform pool is not running")
        self._slots[slot] = 0
        try:
            future: Future[T] = gen.executor.submit(worker.call, slot, fn, *args)
        except BrokenProcessPool:
            self._replace(gen)
            return gen, None
        gen.note_processes()
        return gen, future

    async def _await(
        self, gen: Generation, slot: int, future: Future[T], deadline: float
    ) -> T | object:
        loop = asyncio.get_running_loop()
        waiting = asyncio.wrap_future(future)
        waiting.add_done_callback(consume)  # also when the caller leaves before it is done
        done, _ = await asyncio.wait({waiting}, timeout=max(0.0, deadline - loop.time()))
        if not done:
            self._stop_stuck(gen, slot, future)
            raise Timeout(f"the transform took longer than {self.timeout_s:g} s")
        if waiting.cancelled():  # a replaced or closed executor dropped it before it started
            if self._closed:
                raise Overloaded("the transform pool is shutting down")
            return RETRY
        try:
            return waiting.result()
        except BrokenProcessPool:
            pid = self._slots[slot]
            self._replace(gen)
            if pid and pid not in gen.killed and await culprit(gen, pid):
                raise WorkerCrashed(
                    "the transform worker died while rendering this image"
                ) from None
            return RETRY

    def _stop_stuck(self, gen: Generation, slot: int, future: Future[Any]) -> None:
        """Cancel a waiting task; kill the worker of a running one and replace the executor."""
        if future.cancel() or future.done():
            return
        pid = self._slots[slot]
        if pid:
            gen.killed.add(pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            self._replace(gen)

    def _replace(self, broken: Generation) -> None:
        """Swap in a new executor unless another failure already did (same generation)."""
        with self._lock:
            if self._closed or self._generation is not broken:
                return
            self._new_generation()
            self.restarts += 1
        settling = asyncio.ensure_future(asyncio.to_thread(stop_generation, broken, 0.0))
        self._settling = settling
        settling.add_done_callback(lambda _: self._settled(settling))
        if self.on_restart is not None:
            try:
                self.on_restart()
            except Exception:
                log.exception("on_restart callback failed")
        gen = self._generation
        if gen is not None:
            task = asyncio.get_running_loop().create_task(self._warm(gen))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _settled(self, settling: asyncio.Future[None]) -> None:
        if self._settling is settling:
            self._settling = None

    def _new_generation(self) -> Generation:
        self._numbers += 1
        executor = ProcessPoolExecutor(
            self.processes,
            mp_context=self._context,
            initializer=worker.init_worker,
            initargs=(self._slots,),
        )
        self._generation = Generation(self._numbers, executor)
        return self._generation

    async def _warm(self, gen: Generation) -> None:
        """Start a replacement's workers in the background; errors surface on real tasks."""
        with contextlib.suppress(Exception):
            if self._settling is not None:
                await asyncio.shield(self._settling)
            futures = [gen.executor.submit(worker.warm) for _ in range(self.processes)]
            gen.note_processes()
            async with asyncio.timeout(START_TIMEOUT_S):
                await asyncio.gather(*map(asyncio.wrap_future, futures))


RETRY = object()


def consume(done: asyncio.Future[Any]) -> None:
    """Mark a future's exception as seen, so asyncio does not log it as lost."""
    if not done.cancelled():
        done.exception()
