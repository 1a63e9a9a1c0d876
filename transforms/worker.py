"""The worker-process side of `TransformPool`: libvips policy at start, then one task at a time.

A worker talks to the pool over one socket (a `multiprocessing` `Connection`): it sends an
empty frame once libvips is set up, then for every frame `(fn, args)` it receives, it answers
one frame `(True, result)` or `(False, exception)`. It exits when the pool closes the socket.
"""

from __future__ import annotations

import pickle
import signal
from multiprocessing.connection import Connection
from typing import Any

from transforms.pipeline import configure_vips

READY = b""


def serve(conn: Connection) -> None:
    """The worker's main loop (the target of every worker process)."""
    # Ctrl-C reaches the whole process group; the pool decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_vips()
    conn.send_bytes(READY)
    while True:
        try:
            message = conn.recv_bytes()
        except (EOFError, OSError):
            return  # the pool closed the socket (or died): nothing left to do
        conn.send_bytes(answer(message))


def answer(message: bytes) -> bytes:
    """Run the task `message` holds; the reply frame, whatever happened."""
    try:
        fn, args = pickle.loads(message)
        reply: tuple[bool, Any] = (True, fn(*args))
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
