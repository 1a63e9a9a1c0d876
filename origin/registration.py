"""Checks an uploaded object must pass before it becomes a photo (the origin's real guard)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass

from origin.blobstore import BlobStore
from origin.errors import Conflict
from origin.models import FORMAT_TYPES, Upload
from transforms.errors import CorruptImage, InvalidParam, SourceTooLarge, UnsupportedImage
from transforms.pipeline import probe
from transforms.spec import Limits

log = logging.getLogger(__name__)

AVIF_BRANDS = (b"avif", b"avis")
# What the bytes themselves fail: the object is garbage and is deleted. Store failures are not.
REFUSALS = (SourceTooLarge, InvalidParam, UnsupportedImage, CorruptImage)


@dataclass(frozen=True)
class Verified:
    content_type: str  # detected from the bytes, not the type the client claimed
    width: int
    height: int
    bytes: int
    etag: str


async def verify_upload(blobs: BlobStore, upload: Upload, max_bytes: int) -> Verified:
    """Stat, size-check, read and probe the object; a refused object is deleted."""
    size = await blobs.stat(upload.storage_key)
    if size is None:
        raise Conflict("photo_id: nothing has been uploaded for this photo yet")
    try:
        check_size(size, upload.size, max_bytes)
        data = await blobs.get(upload.storage_key)
        if data is None:
            raise Conflict("photo_id: nothing has been uploaded for this photo yet")
        check_size(len(data), upload.size, max_bytes)  # it may have changed since the stat
        # Header-only probe: cheap enough for a thread, no need for a process pool.
        info = await asyncio.to_thread(probe, data, Limits(max_src_bytes=max_bytes))
        content_type = detected_type(info.format, data)
    except REFUSALS as err:
        log.info("refused upload %s: %s", upload.photo_id, err.message)
        await blobs.delete(upload.storage_key)
        raise
    etag = '"' + hashlib.sha256(data).hexdigest()[:32] + '"'
    return Verified(content_type, info.width, info.height, len(data), etag)


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
