"""Where originals come from: a local directory, an HTTP base URL or an S3 bucket.

One small Protocol and one factory (`create_source`). Every source enforces `max_src_bytes`
before reading (size / Content-Length) and again while reading (a running count), and maps
its failures to the project's errors: 404 NotFound, 413 SourceTooLarge, 502 OriginFailed,
504 Timeout. Paths reaching a source are already `paths.clean_path`-checked.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from edge.freshness import SourceRecord
from imgcdn.config import SourceConfig
from transforms.errors import InvalidParam, NotFound, OriginFailed, SourceTooLarge


@dataclass(frozen=True)
class Validators:
    """What the source says about an object now, without its body."""

    validator: str  # enters the variant keys
    last_modified: float | None = None
    etag: str | None = None  # the source's own, for If-None-Match
    max_age: float | None = None  # from the source's Cache-Control, when it sends one


@dataclass(frozen=True)
class Fetched:
    body: bytes
    validators: Validators
    content_type: str | None = None


class Source(Protocol):
    def identity(self, path: str) -> str:
        """A string naming the object across restarts and processes (enters the cache key)."""
        ...

    async def start(self) -> None: ...
    async def close(self) -> None: ...
    async def fetch(self, path: str) -> Fetched: ...

    async def revalidate(self, path: str, record: SourceRecord) -> Validators:
        """Ask the source whether `record` still holds (conditional request / stat)."""
        ...


def too_large(path: str, max_bytes: int) -> SourceTooLarge:
    return SourceTooLarge(f"{path}: source is larger than max_src_bytes ({max_bytes})")


async def read_limited(chunks: AsyncIterator[bytes], path: str, max_bytes: int) -> bytes:
    """Collect a streamed body, stopping with 413 as soon as it passes `max_bytes`."""
    parts: list[bytes] = []
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_bytes:
            raise too_large(path, max_bytes)
        parts.append(chunk)
    return b"".join(parts)


class DirSource:
    """Files under one directory. Symlinks are followed only while they stay inside it."""

    def __init__(self, root: str, max_bytes: int) -> None:
        self.root = Path(root).resolve()
        self.max_bytes = max_bytes

    def identity(self, path: str) -> str:
        return f"dir:{self.root}|{path}"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def fetch(self, path: str) -> Fetched:
        return await asyncio.to_thread(self._read, path)

    async def revalidate(self, path: str, record: SourceRecord) -> Validators:
        return await asyncio.to_thread(self._stat, path)

    def _resolve(self, path: str) -> Path:
        try:
            real = (self.root / path).resolve(strict=True)
        except FileNotFoundError:
            raise NotFound(f"{path}: not found") from None
        except (OSError, RuntimeError):  # symlink loop, name too long, permission
            raise NotFound(f"{path}: not found") from None
        if not real.is_relative_to(self.root):
            raise InvalidParam("path: leads outside the source directory")
        return real

    def _read(self, path: str) -> Fetched:
        real = self._resolve(path)
        try:
            # O_NOFOLLOW: the resolved path holds no symlink; refuse one swapped in since.
            fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            raise NotFound(f"{path}: not found") from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise NotFound(f"{path}: not found")
            if info.st_size > self.max_bytes:
                raise too_large(path, self.max_bytes)
            body = read_fd(fd, self.max_bytes + 1)
        except OSError as err:
            raise OriginFailed(f"{path}: source read failed ({err.strerror})") from None
        finally:
            os.close(fd)
        if len(body) > self.max_bytes:  # grew while we read it
            raise too_large(path, self.max_bytes)
        return Fetched(body, validators_from_stat(info))

    def _stat(self, path: str) -> Validators:
        real = self._resolve(path)
        info = real.stat()
        if not stat.S_ISREG(info.st_mode):
            raise NotFound(f"{path}: not found")
        return validators_from_stat(info)


def read_fd(fd: int, limit: int) -> bytes:
    """Read up to `limit` bytes (fewer at end of file)."""
    parts: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def validators_from_stat(info: os.stat_result) -> Validators:
    """mtime (ns) + size + inode: a rewrite, a resize or a replace-by-rename all change it."""
    return Validators(
        validator=f"stat:{info.st_mtime_ns:x}-{info.st_size:x}-{info.st_ino:x}",
        last_modified=info.st_mtime,
    )


def create_source(config: SourceConfig, max_bytes: int) -> Source:
    """The one factory: `edge.source.type` picks the implementation."""
    if config.type == "dir":
        return DirSource(config.path, max_bytes)
    from edge.remote_sources import HttpSource, S3Source  # botocore only when needed

    if config.type == "http":
        assert config.url is not None  # validated by load_config
        return HttpSource(config.url, max_bytes, config.timeout_s)
    assert config.bucket is not None
    return S3Source(config, max_bytes)
