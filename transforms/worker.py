"""The worker-process side of `TransformPool`: libvips policy at start, then one task at a time.

A worker talks to the pool over one socket (a `multiprocessing` `Connection`): it sends an
empty frame once libvips is set up, then for every frame `(carry, forget, call)` it receives
(`call`: the pickle of `(fn, args)`), it answers one frame `(True, result)` or
`(False, exception)`. It exits when the pool closes the socket.

Large byte-string arguments (sources) are held: a task carries `(token, bytes)` the first time
the pool sends those bytes to this worker and `Held(token)` in `args` after that, so the
variants of one source do not copy it through the socket again. The pool decides what is kept
and when it is forgotten (`forget`), so both sides agree on what the worker holds
(transforms/held.py, which also keeps decoded pixels of the sources rendered again).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
from multiprocessing.connection import Connection
from typing import Any

from transforms.held import SOURCES
from transforms.pipeline import configure_vips

READY = b""


def serve(conn: Connection, decoded_bytes: int = 0, nice: int = 0) -> None:
    """The worker's main loop (the target of every worker process); `decoded_bytes`: the
    budget for decoded pixels of held sources (transforms/held.py); `nice`: how far below the
    serving process's CPU priority to run."""
    # Ctrl-C reaches the whole process group; the pool decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    lower_priority(nice)
    configure_vips()
    SOURCES.budget = decoded_bytes
    conn.send_bytes(READY)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the pool closed the socket (or died): nothing left to do
        conn.send_bytes(answer(message))


def lower_priority(steps: int) -> None:
    """Run `steps` nice steps below the serving process. Raising one's own niceness needs no
    privilege; a sandbox that forbids it anyway leaves the worker at the loop's priority
    rather than stopping it."""
    if steps > 0:
        with contextlib.suppress(OSError):
            os.nice(steps)


def answer(message: bytes) -> bytes:
    """Run the task `message` holds; the reply frame, whatever happened."""
    try:
        carry, forget, call = pickle.loads(message)
        SOURCES.update(carry, forget)  # first: whatever the call turns out to be
        fn, args = pickle.loads(call)
        reply: tuple[bool, Any] = (True, fn(*SOURCES.resolve(args)))
    except Exception as err:
        reply = (False, err)
    try:
        return pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as err:  # an unpicklable result or exception: say so, as text
        failure = RuntimeError(f"the worker could not send back {type(reply[1]).__name__}: {err}")
        return pickle.dumps((False, failure), protocol=pickle.HIGHEST_PROTOCOL)


def rss_bytes() -> int:
    """This worker's resident set size, from /proc (Linux)."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0
