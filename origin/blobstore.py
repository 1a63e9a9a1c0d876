"""Where photo bytes live: a local directory or an S3 bucket, behind one small Protocol."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol
from urllib.parse import quote, urlencode

from imgcdn.config import OriginConfig
from origin.errors import StorageFailed
from origin.signing import UploadGrant, sign_grant
from transforms.errors import InvalidParam, NotFound, SourceTooLarge

# Keys are ours ("{user_id}/{photo_id}", hex), so a strict pattern costs nothing and no
# key can name "..", an absolute path or anything outside the store's directory.
KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){0,3}$")


@dataclass(frozen=True)
class PresignedUpload:
    """How a client sends the bytes of one reserved upload."""

    url: str
    method: str
    headers: dict[str, str]
    expires_at: float


class BlobStore(Protocol):
    kind: str

    async def presign_put(
        self, key: str, content_type: str, length: int, expires_in: int
    ) -> PresignedUpload: ...

    async def stat(self, key: str) -> int | None:
        """The object's size in bytes, or None when it does not exist."""

    async def get(self, key: str) -> bytes | None: ...

    def sealed_key(self, key: str) -> str:
        """Where an upload's bytes live once registered: out of reach of its upload URL."""

    async def seal(self, key: str) -> bool:
        """Copy `key` to `sealed_key(key)`; False when `key` does not exist."""

    async def put(self, key: str, data: bytes, content_type: str) -> None: ...

    async def delete(self, key: str) -> None: ...

    async def check(self) -> None:
        """Raise StorageFailed unless the store answers."""


async def discard(blobs: BlobStore, upload_key: str) -> None:
    """Delete an upload's object and its sealed copy, if any."""
    for key in dict.fromkeys((upload_key, blobs.sealed_key(upload_key))):
        await blobs.delete(key)


def check_key(key: str) -> str:
    if not KEY_RE.match(key):
        raise NotFound("key: no such blob")
    return key


class LocalBlobStore:
    """A directory; writes go to a temp file in the target's directory, then rename."""

    kind = "local"

    def __init__(self, root: str | os.PathLike[str], public_url: str, signing_key: bytes) -> None:
        self.root = Path(root).resolve()
        self.public_url = public_url.rstrip("/")
        self.signing_key = signing_key

    def path_for(self, key: str) -> Path:
        path = (self.root / check_key(key)).resolve()
        if not path.is_relative_to(self.root):  # belt and braces: KEY_RE already forbids it
            raise NotFound("key: no such blob")
        return path

    async def presign_put(
        self, key: str, content_type: str, length: int, expires_in: int
    ) -> PresignedUpload:
        grant = UploadGrant(check_key(key), int(time.time()) + expires_in, content_type, length)
        query = urlencode({"expires": grant.expires, "sig": sign_grant(grant, self.signing_key)})
        return PresignedUpload(
            url=f"{self.public_url}/blobs/{quote(key)}?{query}",
            method="PUT",
            headers={"Content-Type": content_type, "Content-Length": str(length)},
            expires_at=float(grant.expires),
        )

    async def stat(self, key: str) -> int | None:
        try:
            return (await asyncio.to_thread(os.stat, self.path_for(key))).st_size
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StorageFailed("storage: cannot read the blob directory") from err

    async def get(self, key: str) -> bytes | None:
        try:
            return await asyncio.to_thread(self.path_for(key).read_bytes)
        except FileNotFoundError:
            return None
        except OSError as err:
            raise StorageFailed("storage: cannot read the blob") from err

    def sealed_key(self, key: str) -> str:
        return key  # the upload URL is single-use and written by rename: nothing can follow

    async def seal(self, key: str) -> bool:
        return await self.stat(key) is not None

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        async def one() -> AsyncIterator[bytes]:
            yield data

        await self.receive(key, one(), len(data))

    async def receive(self, key: str, chunks: AsyncIterator[bytes], length: int) -> None:
        """Store exactly `length` bytes from `chunks` under `key`, or nothing at all.

        More bytes than `length` is a 413, fewer a 400; either way the temp file is removed and
        the key is untouched, as it is when the caller cancels (deadline, disconnect).
        """
        path = self.path_for(key)
        try:
            await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
            fd, tmp = await asyncio.to_thread(
                tempfile.mkstemp, dir=path.parent, prefix=".upload-", suffix=".part"
            )
        except OSError as err:
            raise StorageFailed("storage: cannot write the blob directory") from err
        file = os.fdopen(fd, "wb")
        try:
            received = 0
            async for chunk in chunks:
                received += len(chunk)
                if received > length:
                    raise SourceTooLarge(f"body: larger than the signed length {length}")
                await asyncio.to_thread(file.write, chunk)
            if received != length:
                raise InvalidParam(f"body: {received} bytes received, {length} signed")
            await asyncio.to_thread(flush_to_disk, file)
            file.close()
            await asyncio.to_thread(os.replace, tmp, path)
        except OSError as err:
            raise StorageFailed("storage: cannot write the blob") from err
        finally:
            file.close()
            await asyncio.shield(asyncio.to_thread(remove_if_present, tmp))

    async def delete(self, key: str) -> None:
        try:
            await asyncio.to_thread(self.path_for(key).unlink, missing_ok=True)
        except OSError as err:
            raise StorageFailed("storage: cannot delete the blob") from err

    async def check(self) -> None:
        ok = await asyncio.to_thread(os.access, self.root, os.W_OK | os.X_OK)
        if not ok:
            raise StorageFailed("storage: the blob directory is not writable")


def remove_if_present(path: str) -> None:
    """Drop a temp file; after a successful rename there is nothing left to drop."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def flush_to_disk(file: IO[bytes]) -> None:
    file.flush()
    os.fsync(file.fileno())


@asynccontextmanager
async def open_blobstore(config: OriginConfig, signing_key: bytes) -> AsyncIterator[BlobStore]:
    """The store `config.storage` describes, open for the app's lifetime."""
    storage = config.storage
    if storage.type == "local":
        root = Path(storage.path)
        await asyncio.to_thread(root.mkdir, parents=True, exist_ok=True)
        yield LocalBlobStore(root, config.public_url, signing_key)
        return
    from origin.s3store import connect_s3  # aiobotocore is only imported when it is used

    async with connect_s3(storage) as store:
        yield store
