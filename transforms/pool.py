"""`TransformPool`: libvips renders in worker processes, with admission, timeouts and healing.

Each worker is a process of its own, started through `forkserver` (never `fork`: the parent
has threads), with one socket to the pool. The pool writes tasks to the sockets and reads the
answers on the event loop: no executor, no feeder or manager threads, no thread hop per task
(`concurrent.futures.ProcessPoolExecutor` cost the edge ~0.5 ms of CPU per render in thread
wake-ups; see benchmarks/README.md). A worker is given up to `depth` tasks at a time (2: the
one it runs and the next, which it reads as soon as it answers, so it does not sit idle until
the busy event loop reads that answer and writes it more work). Idle workers are served
first; a task waits behind at most `depth - 1` others in a worker.

- Admission: at most `processes + max_queue` tasks in flight (running + waiting); the next
  raises `Overloaded` at once.
- Timeout: a task past `timeout_s` (queue wait included) raises `Timeout`; if a worker is
  running it, that worker is SIGKILLed and replaced (a task that expires queued in a worker
  is given another `timeout_s` to run once it starts).
- Healing: a worker that dies (segfault, OOM kill, SIGKILL) fails only the task it was running
  (`WorkerCrashed`): the tasks queued behind it in its socket never started and run elsewhere.
  A replacement starts at once, so one dead worker never breaks the pool (as it breaks a
  `ProcessPoolExecutor` for good).
- Workers live as long as the pool (no `max_tasks_per_child`, which deadlocks on 3.11).
- Held sources: a worker keeps the last `hold_bytes` of large byte-string arguments it was
  sent (transforms/worker.py), and an idle worker that holds a task's source is preferred, so
  the next variant of the same original crosses the socket as a token instead of ~200 KB
  (sending it was a quarter of the edge's own CPU per miss; see benchmarks/README.md).
- Decoded sources: from the second render of a held source, a worker renders from its decoded
  pixels (`decoded_bytes` of them per worker; transforms/held.py), about half the CPU.
- Priority: workers run `nice` steps below the serving process, so a loop with requests
  waiting (hits, 503s) is scheduled before a render; renders still get every cycle the loop
  leaves idle (benchmarks/README.md has the measurement).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import multiprocessing
import os
import pickle
import socket
import struct
from collections.abc import Callable, Coroutine
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, TypeVar, cast

from transforms import held, worker
from transforms.errors import Overloaded, Timeout, WorkerCrashed
from transforms.held import Held
from transforms.pipeline import ImageInfo, Rendered, probe
from transforms.spec import Limits, TransformSpec

T = TypeVar("T")
log = logging.getLogger(__name__)
START_TIMEOUT_S = 60.0
FRAME = struct.Struct("!i")  # `multiprocessing.Connection`'s frame header: a signed length
MAX_RESPAWN_DELAY_S = 5.0
READ_SIZE = 256 * 1024
# Smaller arguments travel with every task; avatar masters (22-45 KB) are held.
HOLD_MIN_BYTES = 16 * 1024
HOLD_BYTES = 8 * 1024 * 1024  # per worker: the originals of the last few dozen misses
DEPTH = 2  # tasks a worker is given at once: the one it runs and the next
# per worker (transforms/held.py): the sample corpus's working set at the scales kept. 32 MiB
# let the worst case of edge + workers (every budget full at once) pass DESIGN's 300 MB +
# memory_bytes by ~15 MB; 16 MiB cost a third of the pool's reuse on the corpus.
DECODED_BYTES = 24 * 1024 * 1024
# Below the serving loop (0: at its priority). Closed-loop overload, alternating: 503 p50
# 40-42 -> 25 ms, p99 70-86 -> 54-55 ms; misses/s and the avatar mix level (4 pairs).
NICE = 10


class Job:
    """One task: its call, the caller's future, and the worker running it (if any). The call
    is pickled when a worker is chosen: what it must carry depends on what that worker holds."""

    __slots__ = ("args", "fn", "future", "released", "timer", "undelivered", "worker")

    def __init__(
        self, fn: Callable[..., Any], args: tuple[Any, ...], future: asyncio.Future[Any]
    ) -> None:
        self.fn = fn
        self.args = args
        self.future = future
        self.timer: asyncio.TimerHandle | None = None
        self.worker: Worker | None = None
        self.released = False
        self.undelivered = False  # it could not even be written: its worker was gone


class Worker:
    """The pool's end of one worker process's socket: frames out, frames in, on the loop's
    own readiness callbacks (rebound when the pool is used from another event loop)."""

    def __init__(self, pool: TransformPool, process: BaseProcess, sock: socket.socket) -> None:
        self.pool = pool
        self.process = process
        self.pid = process.pid or 0
        self.sock = sock
        self.fd = sock.fileno()
        sock.setblocking(False)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.jobs: collections.deque[Job] = collections.deque()  # running first, then queued
        self.ready = False
        self.gone = False
        self.undelivered = False  # a task could not even be written: the worker was gone
        self.killed_for: Job | None = None  # the running task the pool killed this worker for
        self._buffer = bytearray()
        self._need = -1  # body length of the frame being read; -1: reading a header
        self._out: collections.deque[memoryview] = collections.deque()  # unsent bytes
        # What the worker holds (transforms/worker.py), oldest first: id(bytes) -> (token,
        # bytes). The bytes are referenced so that no other object can take their id.
        self.held: collections.OrderedDict[int, tuple[int, bytes]] = collections.OrderedDict()
        self.held_bytes = 0

    def holds(self, args: tuple[Any, ...]) -> bool:
        return any(id(arg) in self.held for arg in args if type(arg) is bytes)

    def encode(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> bytes:
        """The task frame for this worker: large bytes it holds as `Held` tokens, others
        carried (and held from then on) as far as the budget allows, minus what it must
        forget to make room (never what this task uses). What the worker holds is updated
        only once the frame exists: an argument pickle refuses changes nothing."""
        budget, held = self.pool.hold_bytes, self.held
        size = self.held_bytes
        used: dict[int, int] = {}  # id -> token of every held argument of this task
        mine = {id(arg) for arg in args if type(arg) is bytes}  # never forgotten for this task
        new: list[tuple[int, int, bytes]] = []  # (id, token, bytes) held from this task on
        dropped: list[int] = []  # ids to forget, oldest first
        sent: list[Any] = []
        for arg in args:
            if type(arg) is not bytes or not HOLD_MIN_BYTES <= len(arg) <= budget:
                sent.append(arg)
                continue
            key = id(arg)
            token = used.get(key) or (held[key][0] if key in held else None)
            if token is None:
                victims = (k for k in held if k not in mine and k not in dropped)
                while size + len(arg) > budget and (victim := next(victims, None)) is not None:
                    dropped.append(victim)
                    size -= len(held[victim][1])
                if size + len(arg) > budget:  # the rest is this task's own: carry it once
                    sent.append(arg)
                    continue
                token = next(self.pool.tokens)
                new.append((key, token, arg))
                size += len(arg)
            used[key] = token
            sent.append(Held(token))
        carry = [(token, data) for _, token, data in new]
        forget = [held[key][0] for key in dropped]
        # The call is pickled inside the frame: the worker applies `carry` and `forget` first,
        # so what it holds follows the pool even when the call cannot be rebuilt there.
        call = pickle.dumps((fn, tuple(sent)), protocol=pickle.HIGHEST_PROTOCOL)
        message = pickle.dumps((carry, forget, call), protocol=pickle.HIGHEST_PROTOCOL)
        for key in dropped:
            del held[key]
        for key in used:
            if key in held:
                held.move_to_end(key)
        for key, token, data in new:
            held[key] = (token, data)
        self.held_bytes = size
        return message

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        self.detach()
        self.loop = loop
        loop.add_reader(self.fd, self._readable)
        if self._out:
            loop.add_writer(self.fd, self._writable)

    def detach(self) -> None:
        loop, self.loop = self.loop, None
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.fd)
            loop.remove_writer(self.fd)

    def close(self) -> None:
        self.detach()
        self.sock.close()  # the worker reads EOF and exits

    def kill(self) -> None:
        # Not os.kill(pid): once the worker has exited (and the forkserver reaped it) its pid
        # may belong to another process; `exitcode` reads the exit status first.
        if self.process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.kill()

    def send(self, message: bytes) -> None:
        parts = [FRAME.pack(len(message)), message]
        if not self._out:
            try:
                sent = self.sock.sendmsg(parts)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self.undelivered = True  # a dead worker: its socket reads EOF next
                return
            if sent == len(parts[0]) + len(message):
                return
            for part in parts:
                if sent >= len(part):
                    sent -= len(part)
                    continue
                self._out.append(memoryview(part)[sent:])
                sent = 0
            if self.loop is not None:
                self.loop.add_writer(self.fd, self._writable)
            return
        self._out.extend(memoryview(part) for part in parts)

    def _writable(self) -> None:
        out = self._out
        while out:
            try:
                sent = self.sock.send(out[0])
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                out.clear()
                break
            if sent < len(out[0]):
                out[0] = out[0][sent:]
                return
            out.popleft()
        if self.loop is not None:
            self.loop.remove_writer(self.fd)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self.detach()
            self.pool._on_lost(self)
            return
        buffer = self._buffer
        buffer += data
        while True:
            if self._need < 0:
                if len(buffer) < FRAME.size:
                    return
                (self._need,) = FRAME.unpack_from(buffer)
                del buffer[: FRAME.size]
                if self._need < 0:  # only frames over 2 GiB look like this: never ours
                    self.kill()
                    return
            if len(buffer) < self._need:
                return
            frame = bytes(buffer[: self._need])
            del buffer[: self._need]
            self._need = -1
            self.pool._on_frame(self, frame)


class TransformPool:
    def __init__(
        self,
        processes: int,
        max_queue: int,
        timeout_s: float,
        on_restart: Callable[[], None] | None = None,
        hold_bytes: int = HOLD_BYTES,
        decoded_bytes: int = DECODED_BYTES,
        depth: int = DEPTH,
        nice: int = NICE,
    ) -> None:
        self.processes = processes if processes > 0 else (os.cpu_count() or 1)
        self.hold_bytes = hold_bytes  # per worker; 0: every task carries its source
        self.decoded_bytes = decoded_bytes  # per worker: pixels of held sources rendered again
        self.depth = max(1, depth)
        self.nice = nice  # added to the workers' niceness; 0: the serving process's priority
        self.tokens = itertools.count(1)
        self.max_queue = max_queue
        self.timeout_s = timeout_s
        self.on_restart = on_restart
        self.restarts = 0
        self.capacity = self.processes + max_queue
        self._context = multiprocessing.get_context("forkserver")
        # Workers fork from a server that has already imported libvips (no threads yet), so a
        # replacement worker is ready in milliseconds. Ignored if the server is already running.
        self._context.set_forkserver_preload(["transforms.worker"])
        self._workers: set[Worker] = set()
        self._ready: list[Worker] = []  # started and not lost
        self._waiting: collections.deque[Job] = collections.deque()
        self._in_flight = 0  # jobs waiting or running (a cancelled caller's too, until done)
        self._started = False
        self._closed = False
        self._failed_starts = 0  # workers in a row that died before they were ready
        self._background: set[asyncio.Task[None]] = set()
        self._ready_waiters: list[asyncio.Future[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def queued(self) -> int:
        """Tasks in flight: waiting plus running."""
        return self._in_flight

    @property
    def healthy(self) -> bool:
        return self._started and not self._closed and any(w.ready for w in self._workers)

    @property
    def worker_pids(self) -> list[int]:
        return [w.pid for w in self._workers if w.ready and not w.gone]

    async def start(self) -> None:
        """Start every worker now, so the first request does not pay for a spawn."""
        self._bind()
        workers = [await self._spawn() for _ in range(self.processes)]
        async with asyncio.timeout(START_TIMEOUT_S):
            while not all(w.ready for w in workers):
                if any(w.gone for w in workers):
                    raise RuntimeError("a transform worker died while starting")
                await self._next_ready()
        self._started = True

    async def close(self) -> None:
        """Refuse waiting work, give running work `timeout_s` to finish, stop every worker."""
        if self._closed:
            return
        self._bind()
        self._closed = True
        while self._waiting:
            job = self._waiting.popleft()
            self._release(job)
            settle(job.future, Overloaded("the transform pool is shutting down"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while any(w.jobs for w in self._workers) and loop.time() < deadline:
            await self._next_ready(max(0.0, deadline - loop.time()))
        for task in list(self._background):
            task.cancel()
        # What a worker lost meanwhile moved back to `_waiting` (no worker may be left to run
        # it), and what the workers still have is killed with them: answer both now.
        left = [*self._waiting, *(job for w in self._workers for job in w.jobs)]
        self._waiting.clear()
        for job in left:
            self._release(job)
            settle(job.future, Overloaded("the transform pool is shutting down"))
        workers = list(self._workers)
        for w in workers:
            if w.jobs:
                w.kill()
            w.close()
        await asyncio.to_thread(join_all, [w.process for w in workers], 2.0)

    def admit(self, in_flight: int = 0) -> None:
        """Raise `Overloaded` now when a task submitted now would be refused. Callers check
        before fetching a source, so an overloaded edge answers 503 in a few ms instead of
        after reading the original; `in_flight`: the caller's own work that will need a
        slot and may not hold one yet (a burst passes this check before any of it does)."""
        if self._closed or not self._started:
            raise Overloaded("the transform pool is not running")
        if max(self._in_flight, in_flight) >= self.capacity:
            raise Overloaded("too many transforms waiting")

    async def render(self, data: bytes, spec: TransformSpec, limits: Limits) -> Rendered:
        return await self.run(held.render, data, spec, limits)

    async def probe(self, data: bytes, limits: Limits) -> ImageInfo:
        return await self.run(probe, data, limits)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` in a worker; `fn` must be a picklable top-level function."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            self._bind()  # first: work a previous loop left in the workers must be counted
        self.admit()
        job = Job(fn, args, loop.create_future())
        job.timer = loop.call_later(self.timeout_s, self._expire, job)
        self._in_flight += 1
        self._waiting.append(job)
        self._dispatch()
        try:
            return cast(T, await job.future)
        except asyncio.CancelledError:
            # A caller that leaves drops a waiting task; a running one keeps its slot until
            # its worker is done with it (the worker is busy either way).
            if job.worker is None and not job.released:
                with contextlib.suppress(ValueError):
                    self._waiting.remove(job)
                self._release(job)
            raise

    def _bind(self) -> None:
        """Serve the running event loop (tests use one pool from several loops in turn).
        Work of a previous loop is dropped: nobody can wait for it any more."""
        loop = asyncio.get_running_loop()
        if loop is self._loop:
            return
        self._loop = loop
        for w in list(self._workers):
            w.attach(loop)
            for job in w.jobs:  # their timers were on the old loop: a hang must still end
                job.timer = loop.call_later(self.timeout_s, self._expire, job)
        self._waiting.clear()
        self._in_flight = sum(len(w.jobs) for w in self._workers)
        self._background.clear()
        if self._started and not self._closed:
            for _ in range(self.processes - len(self._workers)):
                self._start_background(self._respawn())

    def _start_background(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _dispatch(self) -> None:
        while self._waiting:
            job = self._waiting[0]
            w = self._pick(job)
            if w is None:
                return
            self._waiting.popleft()
            try:
                message = w.encode(job.fn, job.args)
            except Exception as err:  # an argument pickle cannot carry: this caller's error
                self._release(job)
                settle(job.future, err)
                continue
            w.jobs.append(job)
            job.worker = w
            w.send(message)
            job.undelivered = w.undelivered
            if not w.undelivered and len(w.jobs) == 1:
                job.args = ()  # running; a queued job keeps them in case it must move

    def _pick(self, job: Job) -> Worker | None:
        """The worker with the fewest tasks (below `depth`), one that holds the job's source
        among equals; None when every worker has `depth` tasks."""
        best: Worker | None = None
        best_rank = (self.depth, True)
        for w in self._ready:
            if w.undelivered or len(w.jobs) >= self.depth:  # gone (lost once its socket says), full
                continue
            rank = (len(w.jobs), not w.holds(job.args))
            if rank < best_rank:
                best, best_rank = w, rank
        return best

    def _release(self, job: Job) -> None:
        if job.released:
            return
        job.released = True
        self._in_flight -= 1
        if job.timer is not None:
            job.timer.cancel()
            job.timer = None

    def _expire(self, job: Job) -> None:
        job.timer = None
        error = Timeout(f"the transform took longer than {self.timeout_s:g} s")
        w = job.worker
        if w is None:  # still waiting
            with contextlib.suppress(ValueError):
                self._waiting.remove(job)
            self._release(job)
            settle(job.future, error)
            return
        settle(job.future, error)
        if w.jobs and w.jobs[0] is job:
            # A running task cannot be interrupted: kill its worker (replaced when its socket
            # closes; the slot is free then). The task behind it is innocent, even if the
            # answer of this one is read before the socket closes.
            w.killed_for = job
            w.kill()
        elif self._loop is not None and not self._closed and not w.gone:
            # queued in a worker: it may still hang once it runs
            job.timer = self._loop.call_later(self.timeout_s, self._expire, job)

    def _on_frame(self, w: Worker, frame: bytes) -> None:
        if not w.ready:  # the first frame: libvips is set up
            w.ready = True
            self._failed_starts = 0
            self._ready.append(w)
            self._wake_ready()
            self._dispatch()
            return
        if not w.jobs:  # an answer nobody asked for: this worker cannot be trusted
            w.kill()
            return
        job = w.jobs.popleft()
        if w.jobs and not w.jobs[0].undelivered and w.killed_for is None:
            # the next one is running now (one never written, or behind a task this worker
            # was killed for, may still move)
            w.jobs[0].args = ()
        self._release(job)
        try:
            ok, value = pickle.loads(frame)
        except Exception as err:
            ok, value = False, WorkerCrashed(f"unreadable answer from a transform worker: {err}")
        if not job.future.done():
            with contextlib.suppress(RuntimeError):  # a future of a closed loop
                if ok:
                    job.future.set_result(value)
                else:
                    job.future.set_exception(value)
        self._wake_ready()
        self._dispatch()

    def _on_lost(self, w: Worker) -> None:
        if w.gone:
            return
        w.gone = True
        w.close()
        self._workers.discard(w)
        if w in self._ready:
            self._ready.remove(w)
        jobs, w.jobs = list(w.jobs), collections.deque()
        for i, job in reversed(list(enumerate(jobs))):
            if job.future.done():  # timed out or its caller left: nothing to run it for
                self._release(job)
            elif i > 0 or job.undelivered or w.killed_for not in (None, job):
                # Queued behind the running task, or it died (or was killed for the task
                # before) before this one reached it: the task is innocent: run it elsewhere,
                # in its turn.
                job.worker = None
                self._waiting.appendleft(job)
            else:
                self._release(job)
                crashed = WorkerCrashed("the transform worker died while rendering this image")
                settle(job.future, crashed)
        if not w.ready:
            self._failed_starts += 1
        self._wake_ready()
        self._dispatch()
        if self._closed:
            return
        self.restarts += 1
        if self.on_restart is not None:
            try:
                self.on_restart()
            except Exception:
                log.exception("on_restart callback failed")
        self._start_background(self._respawn())

    async def _respawn(self) -> None:
        """Start a replacement; back off while replacements die before they are ready."""
        if self._failed_starts:
            await asyncio.sleep(min(MAX_RESPAWN_DELAY_S, 0.05 * 2**self._failed_starts))
        if self._closed:
            return
        try:
            await self._spawn()
        except Exception:
            log.exception("could not start a transform worker")

    async def _spawn(self) -> Worker:
        parent, child = socket.socketpair()
        conn = Connection(child.detach())
        try:
            process = self._context.Process(
                target=worker.serve,
                args=(conn, self.decoded_bytes, self.nice),
                name="imgcdn-transform",
                daemon=True,
            )
            process.start()
        except BaseException:
            parent.close()
            raise
        finally:
            conn.close()  # the worker has its own copy now
        w = Worker(self, process, parent)
        self._workers.add(w)
        w.attach(asyncio.get_running_loop())
        return w

    async def _next_ready(self, within_s: float | None = None) -> None:
        """Wait (at most `within_s`) until a worker becomes ready, finishes a task or dies."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ready_waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=within_s)
        finally:
            with contextlib.suppress(ValueError):
                self._ready_waiters.remove(waiter)

    def _wake_ready(self) -> None:
        if self._ready_waiters:
            waiters, self._ready_waiters = self._ready_waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)


def settle(future: asyncio.Future[Any], error: BaseException) -> None:
    if not future.done():
        with contextlib.suppress(RuntimeError):  # a future of a closed loop
            future.set_exception(error)


def join_all(processes: list[BaseProcess], grace_s: float) -> None:
    """Wait for stopped workers to exit; kill what is left after `grace_s`."""
    for process in processes:
        process.join(grace_s)
        if process.exitcode is None:
            process.kill()
            process.join(1.0)
