"""TransformPool with real worker processes: throughput, admission, timeouts, healing."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import wait as wait_sentinels
from pathlib import Path
from typing import Any

import pytest

from tests.transforms import images, tasks
from transforms import worker
from transforms.errors import (
    CorruptImage,
    ImgcdnError,
    Overloaded,
    SourceTooLarge,
    Timeout,
    UnsupportedImage,
    WorkerCrashed,
)
from transforms.pool import TransformPool, Worker
from transforms.spec import Limits, TransformSpec

LIMITS = Limits()
RSS_BOUND = 512 * 1024 * 1024  # the stated bound on one worker's resident memory
Read = Callable[[str], bytes]


@contextlib.asynccontextmanager
async def running(**kwargs: Any) -> AsyncIterator[TransformPool]:
    """A started pool, closed when the block ends."""
    pool = TransformPool(**kwargs)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.close()


class Restarts:
    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


@pytest.fixture
async def pool() -> AsyncIterator[TransformPool]:
    pool = TransformPool(processes=2, max_queue=256, timeout_s=20, on_restart=Restarts())
    await pool.start()
    yield pool
    await pool.close()


async def test_start_prewarms_every_worker(pool: TransformPool) -> None:
    assert len(pool.worker_pids) == 2
    assert pool.healthy
    assert pool.queued == 0


async def test_200_concurrent_renders(pool: TransformPool, sample_bytes: Read) -> None:
    data = sample_bytes("static10k.jpg")
    specs = [
        TransformSpec(width=16 + i % 48, format=("jpeg", "webp", "png")[i % 3]) for i in range(200)
    ]
    results = await asyncio.gather(*(pool.render(data, spec, LIMITS) for spec in specs))
    assert [r.width for r in results] == [s.width for s in specs]
    assert all(images.magic_format(r.body) == s.format for r, s in zip(results, specs, strict=True))
    assert pool.queued == 0
    assert pool.restarts == 0


async def test_errors_come_back_with_their_class(pool: TransformPool, sample_bytes: Read) -> None:
    with pytest.raises(UnsupportedImage):
        await pool.render(b"not an image", TransformSpec(), LIMITS)
    with pytest.raises(SourceTooLarge):
        await pool.probe(images.png_bomb(), LIMITS)
    with pytest.raises(ValueError, match="boom"):
        await pool.run(tasks.fail, "boom")
    info = await pool.probe(sample_bytes("alpha.png"), LIMITS)
    assert (info.format, info.width, info.has_alpha) == ("png", 512, True)
    assert pool.restarts == 0 and pool.queued == 0


async def test_overflow_raises_overloaded_at_once() -> None:
    async with running(processes=1, max_queue=2, timeout_s=10) as pool:
        busy = [asyncio.ensure_future(pool.run(tasks.sleep, 0.5)) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert pool.queued == 3  # one running, two waiting
        started = time.perf_counter()
        with pytest.raises(Overloaded) as err:
            await pool.run(tasks.pid)
        assert time.perf_counter() - started < 0.05
        assert err.value.status == 503
        await asyncio.gather(*busy)
        assert pool.queued == 0
        assert await pool.run(tasks.pid) in pool.worker_pids
    with pytest.raises(Overloaded):
        await pool.run(tasks.pid)


async def test_sigkilled_worker_fails_only_its_request(
    pool: TransformPool, sample_bytes: Read, tmp_path: Path
) -> None:
    marker = tmp_path / "pid"
    victim = asyncio.ensure_future(pool.run(tasks.report_and_sleep, str(marker), 10.0))
    bystanders = [asyncio.ensure_future(pool.run(tasks.sleep, 0.2)) for _ in range(3)]
    for _ in range(500):
        if marker.exists() and marker.read_text():
            break
        await asyncio.sleep(0.01)
    pid = int(marker.read_text())
    os.kill(pid, signal.SIGKILL)
    killed_at = time.perf_counter()
    with pytest.raises(WorkerCrashed) as err:
        await victim
    assert err.value.status == 500
    assert all(isinstance(p, int) for p in await asyncio.gather(*bystanders))  # retried, fine
    first = await pool.render(sample_bytes("static10k.jpg"), TransformSpec(width=50), LIMITS)
    assert first.width == 50
    assert time.perf_counter() - killed_at < 2.0  # ~0.5 s idle; 2 s leaves room for a busy CI
    data = sample_bytes("static10k.jpg")
    results = await asyncio.gather(
        *(pool.render(data, TransformSpec(width=40), LIMITS) for _ in range(50))
    )
    assert all(r.width == 40 for r in results)
    assert pool.restarts == 1
    assert isinstance(pool.on_restart, Restarts) and pool.on_restart.count == 1
    assert pid not in pool.worker_pids and pool.healthy


async def test_segfault_is_worker_crashed(pool: TransformPool) -> None:
    with pytest.raises(WorkerCrashed):
        await pool.run(tasks.crash)
    assert pool.restarts == 1
    assert await pool.run(tasks.pid) in pool.worker_pids


async def test_killing_a_worker_that_has_exited_sends_no_signal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Once a worker has exited (and its forkserver reaped it) its pid may belong to another
    process: `Worker.kill` reads the exit status first and signals nothing."""
    async with running(processes=1, max_queue=4, timeout_s=20) as pool:
        await pool.run(tasks.pid)
        (w,) = list(pool._workers)
        os.kill(w.process.pid, signal.SIGKILL)
        assert await asyncio.to_thread(wait_sentinels, [w.process.sentinel], 10.0)
        signalled: list[int] = []
        real_kill = os.kill

        def recording(pid: int, sig: int) -> None:
            signalled.append(pid)
            real_kill(pid, sig)

        monkeypatch.setattr(os, "kill", recording)
        w.kill()
        assert signalled == []
        assert w.process.exitcode == -signal.SIGKILL


async def test_timeout_kills_the_stuck_worker() -> None:
    async with running(processes=1, max_queue=4, timeout_s=1.0) as pool:
        (before,) = pool.worker_pids
        started = time.perf_counter()
        with pytest.raises(Timeout) as err:
            await pool.run(tasks.sleep, 30)
        assert 0.95 < time.perf_counter() - started < 2.0
        assert err.value.status == 504
        after = await pool.run(tasks.pid)
        assert after != before
        assert pool.restarts == 1
        assert pool.queued == 0


async def test_workers_run_the_libvips_policy(pool: TransformPool) -> None:
    policy = await pool.run(tasks.vips_policy, images.SVG)
    assert policy == {"concurrency": 1, "cache_max": 0, "svg_loads": False}


@pytest.mark.parametrize("nice", [7, 0])
async def test_workers_run_nice_steps_below_the_serving_process(nice: int) -> None:
    """Renders yield the CPU to the loop (hits, 503s) when both want it; a replacement
    worker too."""
    expected = min(19, os.getpriority(os.PRIO_PROCESS, 0) + nice)
    async with running(processes=1, max_queue=4, timeout_s=20, nice=nice) as pool:
        assert await pool.run(tasks.niceness) == expected
        with pytest.raises(WorkerCrashed):
            await pool.run(tasks.crash)
        assert await pool.run(tasks.niceness) == expected


def test_a_worker_that_may_not_lower_its_priority_still_runs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def refuse(steps: int) -> int:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(os, "nice", refuse)
    worker.lower_priority(10)  # no exception: the worker goes on at the loop's priority
    calls: list[int] = []
    monkeypatch.setattr(os, "nice", lambda steps: calls.append(steps) or 0)
    worker.lower_priority(0)
    worker.lower_priority(3)
    assert calls == [3]


async def test_hostile_inputs_keep_worker_memory_bounded(sample_bytes: Read) -> None:
    async with running(processes=1, max_queue=8, timeout_s=20) as pool:
        data = sample_bytes("astronaut.jpg")
        hostile: list[tuple[bytes, type[ImgcdnError]]] = [
            (images.png_bomb(), SourceTooLarge),
            (data[: len(data) // 2], CorruptImage),
            (b"", UnsupportedImage),
            (b"just text\n" * 100, UnsupportedImage),
            (images.SVG, UnsupportedImage),
            (images.gif_frames(10_000), SourceTooLarge),
            (sample_bytes("large.jpg") + b"\0" * 30_000_000, SourceTooLarge),
        ]
        for body, error in hostile:
            started = time.perf_counter()
            with pytest.raises(error):
                await pool.render(body, TransformSpec(width=300), LIMITS)
            assert time.perf_counter() - started < 1.5
        # the largest legitimate work, too: every sample, big outputs, each format
        for name in ("large.jpg", "hubble.jpg", "alpha.png"):
            for fmt in ("jpeg", "webp", "avif", "png"):
                spec = TransformSpec(width=2000, format=fmt, blur=1)  # type: ignore[arg-type]
                await pool.render(sample_bytes(name), spec, LIMITS)
        rss = await pool.run(worker.rss_bytes)
        assert 0 < rss < RSS_BOUND
        assert pool.restarts == 0


async def test_a_cancelled_caller_keeps_its_slot_until_the_worker_is_done() -> None:
    async with running(processes=1, max_queue=1, timeout_s=10) as pool:
        task = asyncio.ensure_future(pool.run(tasks.sleep, 0.5))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert pool.queued == 1  # the worker is still busy with it
        await asyncio.sleep(0.6)
        assert pool.queued == 0
        assert await pool.run(tasks.pid) in pool.worker_pids


async def test_close_refuses_waiting_work() -> None:
    pool = TransformPool(processes=1, max_queue=4, timeout_s=10)
    await pool.start()
    work = [asyncio.ensure_future(pool.run(tasks.sleep, 0.3)) for _ in range(4)]
    await asyncio.sleep(0.1)
    await pool.close()
    results = await asyncio.gather(*work, return_exceptions=True)
    assert isinstance(results[0], int)  # running work may finish within the grace period
    assert isinstance(results[-1], Overloaded)  # still waiting: refused, not lost
    assert all(isinstance(r, int | Overloaded) for r in results)
    assert not pool.healthy


async def test_a_task_given_to_a_worker_that_died_idle_runs_elsewhere(pool: TransformPool) -> None:
    """The worker is gone before its next task reaches it (the loop has not seen the EOF
    yet): that task never ran, so it is not the one to fail."""
    victim, survivor = pool.worker_pids
    os.kill(victim, signal.SIGKILL)
    wait_gone(victim)  # blocking on purpose: the event loop must not see the EOF first
    results = await asyncio.gather(pool.run(tasks.pid), pool.run(tasks.pid))
    assert results == [survivor, survivor]
    assert pool.restarts == 1


def stall(seconds: float) -> None:
    """Block the event loop (on purpose: it must not see what happens meanwhile)."""
    time.sleep(seconds)


def wait_gone(pid: int, within_s: float = 5.0) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} still there after {within_s} s")


@pytest.mark.parametrize("depth", [1, 2])
async def test_a_worker_is_given_its_next_task_before_it_answers(
    depth: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `depth` 2 a busy worker already has its next task (it reads it as soon as it
    answers, without waiting for the event loop); never more than `depth` at once."""
    sent: list[int] = []
    send = Worker.send
    monkeypatch.setattr(Worker, "send", lambda w, message: (sent.append(w.pid), send(w, message)))
    async with running(processes=1, max_queue=4, timeout_s=10, depth=depth) as pool:
        work = [asyncio.ensure_future(pool.run(tasks.sleep, 0.3)) for _ in range(3)]
        await asyncio.sleep(0.15)
        assert len(sent) == depth and pool.queued == 3
        assert await asyncio.gather(*work) == [pool.worker_pids[0]] * 3


async def test_the_task_queued_behind_a_crash_runs_elsewhere() -> None:
    async with running(processes=1, max_queue=4, timeout_s=10) as pool:
        (before,) = pool.worker_pids
        crashed = asyncio.ensure_future(pool.run(tasks.crash))
        behind = asyncio.ensure_future(pool.run(tasks.pid))
        await asyncio.sleep(0)
        assert len(pool._ready[0].jobs) == 2  # both were given to the one worker
        with pytest.raises(WorkerCrashed):
            await crashed
        assert await behind not in (before, None)  # it never ran there: the replacement ran it
        assert pool.restarts == 1 and pool.queued == 0


async def test_a_task_that_expires_queued_in_a_worker_is_still_stopped_if_it_hangs() -> None:
    async with running(processes=1, max_queue=4, timeout_s=1.0) as pool:
        first = asyncio.ensure_future(pool.run(tasks.sleep, 0.3))
        hanging = asyncio.ensure_future(pool.run(tasks.sleep, 30))
        await asyncio.sleep(0)
        queued = pool._ready[0].jobs[1]
        pool._expire(queued)  # as if its deadline came while it waited in the worker
        with pytest.raises(Timeout):
            await hanging  # its caller hears at once ...
        assert isinstance(await first, int)
        started = time.perf_counter()
        while pool.restarts == 0:  # ... and the worker running it is stopped in timeout_s
            assert time.perf_counter() - started < 3.0
            await asyncio.sleep(0.05)
        assert isinstance(await pool.run(tasks.pid), int) and pool.queued == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_only_the_tasks_that_crash_fail_with_worker_crashed(seed: int) -> None:
    """Random bursts of short tasks, failing tasks and crashing tasks on two workers given two
    tasks each: every caller hears its own outcome; no task is blamed for another's crash."""
    rng = random.Random(seed)
    async with running(processes=2, max_queue=64, timeout_s=20) as pool:
        kinds = [rng.choice(["ok", "ok", "ok", "fail", "crash"]) for _ in range(40)]
        calls = {
            "ok": lambda: pool.run(tasks.sleep, rng.choice([0.0, 0.01, 0.03])),
            "fail": lambda: pool.run(tasks.fail, "no"),
            "crash": lambda: pool.run(tasks.crash),
        }
        outcomes = await asyncio.gather(*(calls[kind]() for kind in kinds), return_exceptions=True)
        expected = {"ok": int, "fail": ValueError, "crash": WorkerCrashed}
        for kind, outcome in zip(kinds, outcomes, strict=True):
            assert isinstance(outcome, expected[kind]), (kind, outcome)
        assert pool.restarts == kinds.count("crash") and pool.queued == 0
        assert isinstance(await pool.run(tasks.pid), int)


async def test_a_task_written_to_a_worker_that_had_just_died_runs_elsewhere_intact() -> None:
    """The worker answers its task and dies before the loop reads that answer; the next task,
    written to its closed socket meanwhile, moves to the replacement with its arguments."""
    async with running(processes=1, max_queue=4, timeout_s=10) as pool:
        (before,) = pool.worker_pids
        first = asyncio.ensure_future(pool.run(tasks.answer_then_die, 7))
        await asyncio.sleep(0)  # written to the worker
        wait_gone(before)  # blocking on purpose: the loop reads neither the answer nor the EOF
        second = asyncio.ensure_future(pool.run(tasks.echo, "intact"))
        assert await first == 7
        assert await second == "intact"
        assert pool.restarts == 1 and pool.queued == 0


@pytest.mark.parametrize("depth", [1, 2])
async def test_a_worker_holding_the_source_is_never_given_more_than_depth(depth: int) -> None:
    """Holding a task's source only breaks ties: it never fills a worker past `depth`."""
    async with running(processes=1, max_queue=8, timeout_s=10, depth=depth) as pool:
        data = os.urandom(100_000)  # large enough to be held after the first task
        assert await pool.run(tasks.digests, data) == [sha256(data)]
        work = [asyncio.ensure_future(pool.run(tasks.digests, data)) for _ in range(4)]
        await asyncio.sleep(0)
        assert len(pool._ready[0].jobs) == depth
        assert await asyncio.gather(*work) == [[sha256(data)]] * 4


async def test_the_task_behind_one_killed_for_its_timeout_runs_elsewhere() -> None:
    """The running task's deadline comes with its answer already in the socket, unread: the
    worker is killed for that task, and the one queued behind it must not be blamed."""
    async with running(processes=1, max_queue=4, timeout_s=1.0) as pool:
        (before,) = pool.worker_pids
        slow = asyncio.ensure_future(pool.run(tasks.sleep, 0.3))
        behind = asyncio.ensure_future(pool.run(tasks.sleep, 0.2))
        await asyncio.sleep(0)
        running_job = pool._ready[0].jobs[0]
        stall(0.4)  # the answer arrives; the loop does not read it
        pool._expire(running_job)  # its timer, firing before the loop reads that answer
        with pytest.raises(Timeout):
            await slow
        assert await behind not in (before, None)  # run again by the replacement
        assert pool.restarts == 1 and pool.queued == 0


def test_a_pool_serves_a_new_event_loop_while_an_old_one_left_work_in_it() -> None:
    """Work left in the workers by a loop that ended is counted until its answers are read;
    the next loop must read them (not be refused forever), and a task of the old loop that
    hangs must still be stopped at its deadline."""
    pool = TransformPool(processes=1, max_queue=1, timeout_s=0.5)  # capacity 2: depth of one

    async def leave_work() -> None:
        await pool.start()
        left = [asyncio.ensure_future(pool.run(tasks.sleep, s)) for s in (0.1, 30.0)]  # one hangs
        await asyncio.sleep(0.05)  # both given to the worker; then this loop ends
        assert not any(task.done() for task in left)

    async def use_again() -> list[object]:
        try:
            results: list[object] = []
            for _ in range(3):
                try:
                    results.append(await pool.run(tasks.pid))
                except Overloaded:  # once at most: the old answers are not read yet
                    results.append("refused")
                    await asyncio.sleep(0.2)
            return results
        finally:
            await pool.close()

    asyncio.run(leave_work())
    time.sleep(0.2)
    results = asyncio.run(use_again())
    assert results.count("refused") <= 1
    assert sum(isinstance(r, int) for r in results) >= 2  # the hung worker was replaced
    assert pool.restarts == 1


async def test_close_answers_a_task_moved_back_by_a_crash_during_the_grace_period() -> None:
    """A task queued behind one whose worker crashes while the pool closes goes back to the
    pool's queue; with no worker left to run it, it is refused at once, not left to time out."""
    pool = TransformPool(processes=1, max_queue=4, timeout_s=5.0)
    await pool.start()
    crashing = asyncio.ensure_future(pool.run(tasks.sleep_then_crash, 0.3))
    behind = asyncio.ensure_future(pool.run(tasks.pid))
    await asyncio.sleep(0.05)  # the first runs, the second is queued behind it in the worker
    started = time.perf_counter()
    await pool.close()
    assert behind.done() and time.perf_counter() - started < 2.0
    with pytest.raises(Overloaded):
        await behind
    with pytest.raises(WorkerCrashed):
        await crashing
    assert pool.queued == 0


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
