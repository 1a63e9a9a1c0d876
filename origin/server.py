"""`imgcdn origin`: serve the origin API until SIGTERM or SIGINT, then stop gracefully."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from imgcdn.config import OriginConfig
from origin.app import create_app

log = logging.getLogger(__name__)


def run_origin(config: OriginConfig) -> int:
    """Blocking: serve on config.host:port; on SIGTERM finish in-flight requests and return 0."""
    return asyncio.run(serve(config))


async def serve(config: OriginConfig) -> int:
    # keepalive_timeout also bounds slow headers; aiohttp's AppRunner default is an hour.
    runner = web.AppRunner(
        create_app(config),
        keepalive_timeout=config.keepalive_timeout_s,
        shutdown_timeout=config.shutdown_grace_s,
        handle_signals=False,
        access_log=None,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        site = web.TCPSite(runner, config.host, config.port, reuse_address=True)
        await site.start()
        log.info("origin listening on http://%s:%s", config.host, config.port)
        await stop.wait()
        log.info("origin stopping (grace %.0f s)", config.shutdown_grace_s)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await runner.cleanup()
    return 0
