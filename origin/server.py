"""`imgcdn origin`: serve the origin API until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from imgcdn.config import OriginConfig
from origin.app import create_app
from origin.keys import INFLIGHT
from transforms.errors import ImgcdnError

log = logging.getLogger(__name__)

STRAGGLER_TIMEOUT_S = 1.0


def run_origin(config: OriginConfig) -> int:
    """Blocking: serve on config.host:port; on SIGTERM finish in-flight requests and return 0."""
    return asyncio.run(serve(config))


async def serve(config: OriginConfig) -> int:
    app = create_app(config)
    # keepalive_timeout also bounds slow headers; aiohttp's AppRunner default is an hour.
    # The grace period is spent below, waiting for requests in flight; aiohttp's own shutdown
    # then only has stragglers left (it stops reading bodies, so it cannot finish uploads).
    runner = web.AppRunner(
        app,
        keepalive_timeout=config.keepalive_timeout_s,
        shutdown_timeout=STRAGGLER_TIMEOUT_S,
        handle_signals=False,
        access_log=None,
    )
    try:
        await runner.setup()
    except ImgcdnError as err:  # the database or blob store cannot be opened
        log.error("origin cannot start: %s", err.message)
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        try:
            await site.start()
        except OSError as err:
            log.error("origin cannot listen on %s:%s: %s", config.host, config.port, err.strerror)
            return 1
        log.info("origin listening on http://%s:%s", config.host, config.port)
        await stop.wait()
        log.info("origin stopping (grace %.0f s)", config.shutdown_grace_s)
        await site.stop()  # no new connections
        if not await app[INFLIGHT].wait_idle(config.shutdown_grace_s):
            log.warning("origin: requests still running after the grace period are cancelled")
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    return 0
