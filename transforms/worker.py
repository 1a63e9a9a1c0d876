"""The worker-process side of `TransformPool`: libvips policy at start, and the task shim.

Each worker records, in a slot of an array shared with the parent, the pid running each task,
so the parent can tell which request a dead worker was rendering and kill a stuck one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, MutableSequence
from typing import Any, TypeVar

from transforms.pipeline import configure_vips

T = TypeVar("T")

# Set once per worker process by `init_worker` (the array arrives with the process at spawn).
running_pids: MutableSequence[int] = []


def init_worker(slots: MutableSequence[int]) -> None:
    """Initialiser of every worker: libvips concurrency 1, cache off, untrusted loaders blocked."""
    global running_pids
    configure_vips()
    running_pids = slots


def call(slot: int, fn: Callable[..., T], *args: Any) -> T:
    """Run `fn(*args)`, marking `slot` with this worker's pid while it runs."""
    pid = os.getpid()
    running_pids[slot] = pid
    try:
        return fn(*args)
    finally:
        if running_pids[slot] == pid:
            running_pids[slot] = 0


def warm() -> int:
    """A no-op that makes the executor start a worker (and proves it answers)."""
    return os.getpid()


def rss_bytes() -> int:
    """This worker's resident set size, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
