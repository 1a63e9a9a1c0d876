"""Checks an uploaded object must pass before it becomes a photo (the origin's real guard)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

from origin.blobstore import BlobStore, discard
from origin.errors import Conflict
from origin.models import FORMAT_TYPES, Upload
from transforms.errors import CorruptImage, InvalidParam, SourceTooLarge, UnsupportedImage
from transforms.pipeline import ImageInfo, probe
from transforms.spec import Limits

log = logging.getLogger(__name__)

AVIF_BRANDS = (b"avif", b"avis")
# What the bytes themselves fail: the object is garbage and is deleted. Store failures are not.
REFUSALS = (SourceTooLarge, InvalidParam, UnsupportedImage, CorruptImage)


@dataclass(frozen=True)
class Verified:
    storage_key: str  # the sealed copy: what the photo row points at
    content_type: str  # detected from the bytes, not the type the client claimed
    width: int
    height: int
    bytes: int
    etag: str


async def verify_upload(blobs: BlobStore, upload: Upload, max_bytes: int) -> Verified:
    """Stat, seal, read and probe the object; a refused object is deleted.

    The bytes checked are read from the sealed copy, which no upload URL can write, so what
    passed the probe is exactly what the photo serves.
    """
    size = await blobs.stat(upload.storage_key)
    if size is None:
        raise Conflict("photo_id: nothing has been uploaded for this photo yet")
    key = blobs.sealed_key(upload.storage_key)
    try:
        check_size(size, upload.size, max_bytes)
        data = await blobs.get(key) if await blobs.seal(upload.storage_key) else None
        if data is None:
            raise Conflict("photo_id: the upload vanished while it was checked, register again")
        check_size(len(data), upload.size, max_bytes)  # it may have changed since the stat
        info, digest = await asyncio.to_thread(inspect, data, Limits(max_src_bytes=max_bytes))
        content_type = detected_type(info.format, data)
    except REFUSALS as err:
        log.info("refused upload %s: %s", upload.photo_id, err.message)
        await discard(blobs, upload.storage_key)
        raise
    return Verified(key, content_type, info.width, info.height, len(data), f'"{digest[:32]}"')


def inspect(data: bytes, limits: Limits) -> tuple[ImageInfo, str]:
    """Header probe and content hash, together in one worker thread (both are cheap)."""
    return probe(data, limits), hashlib.sha256(data).hexdigest()


def check_size(actual: int, reserved: int, max_bytes: int) -> None:
    if actual > max_bytes:
        raise SourceTooLarge(f"photo: {actual} bytes, more than max_upload_bytes ({max_bytes})")
    if actual > reserved:
        raise SourceTooLarge(f"photo: {actual} bytes, more than the {reserved} reserved")
    if actual < reserved:
        raise InvalidParam(f"photo: {actual} bytes uploaded, {reserved} reserved")


def detected_type(fmt: str, data: bytes) -> str:
    """The content type of a probed image; HEIF must be AVIF (HEVC cannot be decoded here)."""
    if fmt == "heif" and not any(brand in data[8:64] for brand in AVIF_BRANDS):
        raise UnsupportedImage("photo: HEIC (HEVC) images are not accepted, upload JPEG or AVIF")
    content_type = FORMAT_TYPES.get(fmt)
    if content_type is None:
        raise UnsupportedImage(f"photo: {fmt} images are not accepted")
    return content_type
