"""Drops expired upload reservations and the bytes of those never registered."""

from __future__ import annotations

import asyncio
import logging
import time

from origin.blobstore import BlobStore, discard
from origin.db import Database
from transforms.errors import ImgcdnError

log = logging.getLogger(__name__)


async def sweep_uploads(db: Database, blobs: BlobStore, cutoff: float) -> int:
    """Forget reservations that expired before `cutoff`; returns how many blobs were deleted.

    The row goes first, in a statement that cannot race a registration: a reservation either
    became a photo (its blob stays) or is gone (its blob, if any, is garbage).
    """
    deleted = 0
    for upload in await db.stale_uploads(cutoff):
        if await db.drop_upload(upload.photo_id):
            await discard(blobs, upload.storage_key)
            deleted += 1
        elif blobs.sealed_key(upload.storage_key) != upload.storage_key:
            await blobs.delete(upload.storage_key)  # a replayed PUT after registration
    return deleted


async def sweep_forever(db: Database, blobs: BlobStore, ttl_s: float) -> None:
    """Every min(ttl, 60) s, sweep reservations more than one more ttl past their expiry."""
    while True:
        await asyncio.sleep(min(ttl_s, 60.0))
        try:
            count = await sweep_uploads(db, blobs, time.time() - ttl_s)
        except ImgcdnError as err:
            log.warning("upload sweep failed: %s", err.message)
            continue
        if count:
            log.info("swept %d abandoned uploads", count)
