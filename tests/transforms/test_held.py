"""Held sources: a worker keeps the large byte strings it was sent, so the next task on the
same bytes carries a token instead of them (transforms/pool.py, transforms/worker.py)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pickle
import random
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from tests.transforms import tasks
from tests.transforms.test_pool import wait_gone
from transforms import worker
from transforms.held import SOURCES as HELD
from transforms.held import Held
from transforms.pool import HOLD_MIN_BYTES, TransformPool, Worker
from transforms.spec import Limits, TransformSpec

Read = Callable[[str], bytes]
SOURCES = ("astronaut.jpg", "coffee.jpg", "rocket.jpg")  # 100-180 KB each


class Frames:
    """The size of every task frame the pool writes to a worker socket, per worker pid."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.sent: list[tuple[int, int]] = []
        send = Worker.send

        def recording(w: Worker, message: bytes) -> None:
            self.sent.append((w.pid, len(message)))
            send(w, message)

        monkeypatch.setattr(Worker, "send", recording)

    def last(self, n: int) -> list[int]:
        return [size for _, size in self.sent[-n:]]


async def started(processes: int, **kwargs: int) -> TransformPool:
    # decoded pixels off: these tests compare renders of held bytes with renders of sent ones
    kwargs.setdefault("decoded_bytes", 0)
    pool = TransformPool(processes=processes, max_queue=64, timeout_s=20, **kwargs)
    await pool.start()
    return pool


@pytest.fixture
async def one() -> AsyncIterator[TransformPool]:
    pool = await started(1)
    yield pool
    await pool.close()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def test_the_second_task_on_a_source_carries_a_token(
    one: TransformPool, sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = Frames(monkeypatch)
    data = sample_bytes("astronaut.jpg")
    first = await one.render(data, TransformSpec(width=120), Limits())
    second = await one.render(data, TransformSpec(width=120), Limits())
    big, small = frames.last(2)
    assert big > len(data) and small < 1024
    assert second.body == first.body  # the held bytes are the source, not something else
    _, seen, held = await one.run(tasks.digest_held, data)
    assert seen == sha(data) and held == len(data)


async def test_equal_bytes_of_another_object_are_carried(
    one: TransformPool, sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity, not content: a lookup by content would hash ~200 KB per task."""
    frames = Frames(monkeypatch)
    data = sample_bytes("coffee.jpg")
    await one.run(tasks.digest_held, data)
    _, seen, _ = await one.run(tasks.digest_held, bytes(bytearray(data)))
    assert seen == sha(data)
    assert all(size > len(data) for size in frames.last(2))


async def test_small_arguments_always_travel(
    one: TransformPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = Frames(monkeypatch)
    small = os.urandom(HOLD_MIN_BYTES - 1)
    for _ in range(2):
        _, seen, held = await one.run(tasks.digest_held, small)
        assert seen == sha(small) and held == 0
    assert all(size > len(small) for size in frames.last(2))


async def test_the_budget_makes_the_worker_forget_the_oldest(
    sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = [sample_bytes(name) for name in SOURCES]
    budget = len(sources[0]) + len(sources[1])  # the third pushes the first out
    pool = await started(1, hold_bytes=budget)
    frames = Frames(monkeypatch)
    try:
        for data in sources:
            _, seen, held = await pool.run(tasks.digest_held, data)
            assert seen == sha(data) and held <= budget
        _, seen, held = await pool.run(tasks.digest_held, sources[2])  # still held
        assert seen == sha(sources[2]) and frames.last(1)[0] < 1024
        _, seen, held = await pool.run(tasks.digest_held, sources[0])  # forgotten: carried
        assert seen == sha(sources[0]) and frames.last(1)[0] > len(sources[0])
        assert held <= budget
    finally:
        await pool.close()


async def test_no_budget_carries_every_time(
    sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await started(1, hold_bytes=0)
    frames = Frames(monkeypatch)
    data = sample_bytes("rocket.jpg")
    try:
        for _ in range(2):
            _, seen, held = await pool.run(tasks.digest_held, data)
            assert seen == sha(data) and held == 0
        assert all(size > len(data) for size in frames.last(2))
    finally:
        await pool.close()


async def test_an_idle_worker_that_holds_the_source_takes_the_task(
    sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = await started(2)
    frames = Frames(monkeypatch)
    sources = [sample_bytes(name) for name in SOURCES[:2]]
    try:
        # Both at once: each worker gets one source.
        owners = await asyncio.gather(*(pool.run(tasks.digest_held, d) for d in sources))
        assert owners[0][0] != owners[1][0]
        for _ in range(3):  # one at a time, both workers idle: the holder is chosen
            for data, (owner, _, _) in zip(sources, owners, strict=True):
                pid, seen, _ = await pool.run(tasks.digest_held, data)
                assert (pid, seen) == (owner, sha(data))
                assert frames.last(1)[0] < 1024
    finally:
        await pool.close()


async def test_a_replacement_worker_is_sent_the_source_again(
    one: TransformPool, sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = Frames(monkeypatch)
    data = sample_bytes("astronaut.jpg")
    victim, _, _ = await one.run(tasks.digest_held, data)
    os.kill(victim, signal.SIGKILL)
    wait_gone(victim)
    for _ in range(200):  # the loop notices the EOF and starts a replacement
        if one.worker_pids and victim not in one.worker_pids:
            break
        await asyncio.sleep(0.02)
    pid, seen, held = await one.run(tasks.digest_held, data)
    assert pid != victim and seen == sha(data) and held == len(data)
    assert frames.last(1)[0] > len(data)


def task_frame(
    args: tuple[Any, ...], carry: list[tuple[int, bytes]], forget: list[int], call: bytes = b""
) -> bytes:
    """A task frame as the pool writes it (`Worker.encode`), for `tasks.echo(*args)`."""
    call = call or pickle.dumps((tasks.echo, args))
    return pickle.dumps((carry, forget, call))


def answered(message: bytes) -> tuple[bool, Any]:
    ok, value = pickle.loads(worker.answer(message))
    return ok, value


def test_a_token_the_worker_does_not_hold_is_an_error_not_a_guess() -> None:
    HELD.update([], list(HELD.data))
    ok, error = answered(task_frame((Held(7),), [], []))
    assert not ok and isinstance(error, RuntimeError)
    assert "does not hold source 7" in str(error)
    assert answered(task_frame((Held(7),), [(7, b"x")], [])) == (True, b"x")
    assert answered(task_frame((b"y",), [], [7])) == (True, b"y")
    assert not HELD.data and not HELD.tokens


def test_what_a_task_carries_and_forgets_holds_even_when_its_call_cannot_be_read() -> None:
    """The pool counts carried bytes as held once the frame is written; the worker must
    agree even when the call itself fails to unpickle there (its caller's error alone)."""
    HELD.update([], list(HELD.data))
    HELD.update([(5, b"old")], [])
    unreadable = pickle.dumps((tasks.echo, ("x",)))[:-3]  # truncated: fails in the worker
    ok, error = answered(task_frame((), [(6, b"new")], [5], call=unreadable))
    assert not ok and isinstance(error, Exception)
    assert answered(task_frame((Held(6),), [], [])) == (True, b"new")
    assert 5 not in HELD.data
    HELD.update([], [6])


async def test_an_argument_pickle_refuses_fails_its_caller_alone(
    one: TransformPool, sample_bytes: Read
) -> None:
    data = sample_bytes("astronaut.jpg")
    await one.run(tasks.digest_held, data)
    with pytest.raises(Exception, match="pickle"):
        await one.run(tasks.digests, data, lambda: None)  # type: ignore[arg-type]
    assert one.queued == 0
    _, seen, held = await one.run(tasks.digest_held, data)  # still held, still in step
    assert seen == sha(data) and held == len(data)


async def test_a_task_never_makes_its_worker_forget_its_own_sources(
    sample_bytes: Read, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b, c = (sample_bytes(name) for name in SOURCES)
    pool = await started(1, hold_bytes=len(a) + len(b))
    try:
        assert await pool.run(tasks.digests, a, b) == [sha(a), sha(b)]
        # b and a held; c needs room: only what this task does not use may go (nothing):
        # c travels inline and the other two stay held.
        frames = Frames(monkeypatch)
        assert await pool.run(tasks.digests, b, c, a) == [sha(b), sha(c), sha(a)]
        assert len(c) < frames.last(1)[0] < len(c) + 1024
        assert await pool.run(tasks.digests, a, b) == [sha(a), sha(b)]
        assert frames.last(1)[0] < 1024
        assert await pool.run(tasks.digests, c) == [sha(c)]  # now a (the oldest) goes
        assert await pool.run(tasks.digests, b, c) == [sha(b), sha(c)]
        assert frames.last(1)[0] < 1024
    finally:
        await pool.close()


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_pool_and_worker_stay_in_step_over_random_tasks(seed: int) -> None:
    """Random tasks over a few buffers (some below the hold threshold) under a budget that
    fits two or three: every byte the worker uses is the byte sent, and it never holds more
    than the budget."""
    rng = random.Random(seed)
    buffers = [
        rng.randbytes(rng.randrange(HOLD_MIN_BYTES // 2, 6 * HOLD_MIN_BYTES)) for _ in range(6)
    ]
    budget = 9 * HOLD_MIN_BYTES
    pool = await started(2, hold_bytes=budget)
    try:
        for _ in range(10):
            batch = [rng.sample(buffers, rng.randint(1, 3)) for _ in range(4)]
            results = await asyncio.gather(*(pool.run(tasks.digests, *args) for args in batch))
            assert results == [[sha(b) for b in args] for args in batch]
            held = await asyncio.gather(*(pool.run(tasks.digest_held, b"") for _ in range(2)))
            assert all(size <= budget for _, _, size in held)
    finally:
        await pool.close()
