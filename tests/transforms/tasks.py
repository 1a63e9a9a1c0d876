"""Top-level functions the pool tests run in workers (they must be importable by name)."""

from __future__ import annotations

import os
import signal
import time


def sleep(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def pid() -> int:
    return os.getpid()


def niceness() -> int:
    return os.getpriority(os.PRIO_PROCESS, 0)


def crash() -> None:
    """Die the way a libvips segfault would."""
    os.kill(os.getpid(), signal.SIGSEGV)


def sleep_then_crash(seconds: float) -> None:
    time.sleep(seconds)
    crash()


def fail(message: str) -> None:
    raise ValueError(message)


def report_and_sleep(path: str, seconds: float) -> int:
    """Write this worker's pid to `path`, then sleep: a render the test can kill mid-way."""
    with open(path, "w", encoding="ascii") as out:
        out.write(str(os.getpid()))
    return sleep(seconds)


def vips_policy(svg: bytes) -> dict[str, object]:
    """What the worker initialiser set up, seen from inside a worker."""
    import pyvips

    try:
        pyvips.Image.new_from_buffer(svg, "")
        svg_loads = True
    except pyvips.Error:
        svg_loads = False
    return {
        "concurrency": pyvips.concurrency_get(),
        "cache_max": pyvips.cache_get_max(),
        "svg_loads": svg_loads,
    }


def digest_held(data: bytes) -> tuple[int, str, int]:
    """(pid, sha256 of `data` as this worker received it, bytes the worker holds)."""
    import hashlib

    from transforms.held import SOURCES

    return os.getpid(), hashlib.sha256(data).hexdigest(), sum(map(len, SOURCES.data.values()))


def digests(*parts: bytes) -> list[str]:
    """sha256 of every argument as this worker received it."""
    import hashlib

    return [hashlib.sha256(part).hexdigest() for part in parts]


def kept_pixels() -> list[tuple[int, int]]:
    """(shrink, bytes) of every source whose decoded pixels this worker keeps."""
    from transforms.held import SOURCES

    return [(kept.shrink, kept.nbytes) for kept in SOURCES.pixels.values()]


def echo(value: object) -> object:
    return value


def answer_then_die(value: object) -> object:
    """Return `value`, then exit ~50 ms later (after the worker has written the answer)."""
    import threading

    threading.Timer(0.05, os._exit, args=(0,)).start()
    return value
