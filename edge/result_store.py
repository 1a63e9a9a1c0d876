"""The shared result store (`edge.cache.result_store`): rendered variants in one S3 bucket that
every edge host reads after its own memory and disk, and fills in the background.

An object is an `Entry.encode()` under `<prefix><variant key>`. Keys name everything that
makes the bytes (source validator, or photo id + version), so objects never go stale and are
never deleted here: the bucket's lifecycle rule expires them (docs/edge.md, "Shared result
store"). The store is an optimisation, never a dependency: a read that fails, times out or
finds a corrupt object is a miss plus a counted error; an upload never delays a response, and
one more than `max_uploads` in flight is dropped, not queued.
"""

from __future__ import annotations

import asyncio
import logging
import struct
import time
from collections.abc import Callable

from edge.cache import Entry
from edge.remote_sources import CHUNK
from edge.s3 import UNREACHABLE, S3Bucket, error_code
from edge.sources import read_limited, too_large
from imgcdn.config import ResultStoreConfig
from transforms.errors import SourceTooLarge

log = logging.getLogger(__name__)

# After S3 did not answer (refused, unreachable, timed out), skip it this long: a dead or
# black-holed endpoint then costs a miss nothing, instead of `timeout_s` on every miss.
RETRY_AFTER_S = 2.0
CLOSE_WAIT_S = 2.0  # at shutdown, uploads in flight get this long to finish
# Larger objects are not read: no variant of a 4096 px side limit comes near it, and a bucket
# that others can write to must not make an edge hold an arbitrary object in memory.
MAX_OBJECT_BYTES = 64 * 1024 * 1024
READ_CONNECTIONS = 32  # connections kept for reads however many uploads are in flight


class S3Error(Exception):
    """S3 answered, but not with what was asked: its status and error code."""

    def __init__(self, status: int, code: str) -> None:
        super().__init__(f"{status} {code}")
        self.status = status
        self.code = code


def decode_object(data: bytes) -> Entry | None:
    """The entry an object holds, or None when it is truncated, corrupt or not an entry."""
    try:
        return Entry.decode(data)
    except (ValueError, KeyError, TypeError, struct.error):
        return None


class ResultStore:
    """A `CacheTier` over an S3 bucket (edge/s3.py), named "shared"."""

    name = "shared"

    def __init__(
        self,
        config: ResultStoreConfig,
        on_error: Callable[[str], None],
        max_object_bytes: int = MAX_OBJECT_BYTES,
    ) -> None:
        """`on_error(kind)` counts a failure: shared-read, shared-write, shared-corrupt (also
        an object over `max_object_bytes`, left unread), shared-dropped (an upload over the
        bound) or shared-open."""
        assert config.bucket is not None  # imgcdn.config.validate requires it
        self.config = config
        self.bucket = config.bucket
        self.prefix = config.prefix
        self.on_error = on_error
        self.max_object_bytes = max_object_bytes
        self._bucket = S3Bucket(
            config.bucket,
            endpoint_url=config.endpoint_url,
            region=config.region,
            # uploads may hold `max_uploads` connections; reads never wait behind them
            connections=config.max_uploads + READ_CONNECTIONS,
            connect_timeout_s=config.timeout_s,
        )
        self._started = False
        self._uploads: set[asyncio.Task[None]] = set()
        self._down_until = 0.0  # monotonic time before which S3 is not asked

    @property
    def uploading(self) -> int:
        """Uploads in flight."""
        return len(self._uploads)

    async def start(self) -> None:
        await self._bucket.start()
        if not self._bucket.signed:  # anonymous writes: no bucket an operator should have
            log.error(
                "result store s3://%s unusable, running without it: no AWS credentials "
                "(environment, profile or role)",
                self.bucket,
            )
            self.on_error("shared-open")
            await self._bucket.close()
            return
        self._started = True

    async def close(self) -> None:
        if self._uploads:
            await asyncio.wait(self._uploads, timeout=CLOSE_WAIT_S)
        for task in self._uploads:
            task.cancel()
        await asyncio.gather(*self._uploads, return_exceptions=True)
        self._started = False
        await self._bucket.close()

    def _usable(self) -> bool:
        return self._started and time.monotonic() >= self._down_until

    async def get(self, key: str) -> Entry | None:
        if not self._usable():
            return None
        data = await self._read(key)
        if data is None:
            return None
        entry = decode_object(data)
        if entry is None:
            # Not deleted: the miss renders the variant again and its upload overwrites it.
            log.warning("corrupt result store object %s%s", self.prefix, key)
            self.on_error("shared-corrupt")
        return entry

    async def _read(self, key: str) -> bytes | None:
        try:
            async with (
                asyncio.timeout(self.config.timeout_s),
                self._bucket.request("GET", self.prefix + key) as resp,
            ):
                if resp.status == 404:
                    return None  # no such key: a plain miss
                if resp.status != 200:
                    raise S3Error(resp.status, await error_code(resp))
                if (resp.content_length or 0) > self.max_object_bytes:
                    raise too_large(key, self.max_object_bytes)
                chunks = resp.content.iter_chunked(CHUNK)
                return await read_limited(chunks, key, self.max_object_bytes)
        except SourceTooLarge:
            log.warning("result store object %s%s too large", self.prefix, key)
            self.on_error("shared-corrupt")
        except S3Error as err:
            self._failed("shared-read", err, reachable=True)
        except UNREACHABLE as err:
            self._failed("shared-read", err, reachable=False)
        return None

    async def set(self, key: str, entry: Entry) -> bool:
        """Start uploading `entry` and return at once: True when the upload started, False
        when S3 is down or `max_uploads` are already in flight (dropped and counted)."""
        if not self._usable():
            return False
        if len(self._uploads) >= self.config.max_uploads:
            self.on_error("shared-dropped")
            return False
        task = asyncio.ensure_future(self._upload(key, entry))
        self._uploads.add(task)
        task.add_done_callback(self._uploads.discard)
        return True

    async def _upload(self, key: str, entry: Entry) -> None:
        # the type says "an entry", not the image it holds
        headers = {"Content-Type": "application/octet-stream"}
        try:
            async with (
                asyncio.timeout(self.config.upload_timeout_s),
                self._bucket.request("PUT", self.prefix + key, entry.encode(), headers) as resp,
            ):
                if resp.status != 200:
                    raise S3Error(resp.status, await error_code(resp))
        except S3Error as err:
            self._failed("shared-write", err, reachable=True)
        except UNREACHABLE as err:
            self._failed("shared-write", err, reachable=False)

    def _failed(self, kind: str, err: Exception, *, reachable: bool) -> None:
        log.warning("result store s3://%s: %s failed (%s)", self.bucket, kind, describe(err))
        self.on_error(kind)
        if not reachable:
            self._down_until = time.monotonic() + RETRY_AFTER_S

    async def evict(self, tag: str) -> int:
        """Nothing: keys are content-addressed (a changed source or photo gets new keys), so
        no purge can be answered with stale bytes from here; the lifecycle rule expires them."""
        return 0

    def size_bytes(self) -> int:
        return 0  # unknown without listing the bucket; not reported


def describe(err: Exception) -> str:
    """One short line for the log: S3's status and code, or the exception's class and message."""
    if isinstance(err, S3Error):
        return str(err)
    return f"{err.__class__.__name__}: {err}" if str(err) else err.__class__.__name__
