"""A user's photos: register an upload, list, choose the active one, delete."""

from __future__ import annotations

import logging
import time

from aiohttp import web

from origin.errors import Conflict, StorageFailed
from origin.keys import BLOBS, CONFIG, DATABASE, METRICS, PURGER
from origin.models import RATINGS, Photo, User, photo_json
from origin.payload import optional_choice, read_json, require_str
from origin.registration import verify_upload
from origin.users import authenticate
from transforms.errors import ImgcdnError, InvalidParam, NotFound

log = logging.getLogger(__name__)


async def register_photo(request: web.Request) -> web.Response:
    """POST /v1/photos {"photo_id","rating"?} -> 201 photo, once its object passes the checks."""
    user = await authenticate(request)
    body = await read_json(request)
    photo_id = require_str(body, "photo_id", max_len=64)
    rating = optional_choice(body, "rating", RATINGS, default="g")
    db = request.app[DATABASE]
    upload = await db.get_upload(photo_id)
    if upload is None or upload.user_id != user.id:
        raise NotFound("photo_id: no upload with this id")
    if upload.state == "registered":
        raise Conflict("photo_id: already registered")
    metrics = request.app[METRICS]
    try:
        verified = await verify_upload(
            request.app[BLOBS], upload, request.app[CONFIG].max_upload_bytes
        )
    except ImgcdnError as err:
        metrics.uploads.labels(result=err.code).inc()
        raise
    photo = Photo(
        id=photo_id,
        user_id=user.id,
        storage_key=verified.storage_key,
        content_type=verified.content_type,
        width=verified.width,
        height=verified.height,
        bytes=verified.bytes,
        rating=rating,
        version=1,
        etag=verified.etag,
        created_at=time.time(),
    )
    if not await db.register_photo(photo):
        raise Conflict("photo_id: already registered")
    metrics.uploads.labels(result="registered").inc()
    if photo.storage_key != upload.storage_key:  # sealed: the uploaded original is not needed
        await delete_quietly(request, upload.storage_key)
    return web.json_response(photo_json(photo, user.active_photo_id), status=201)


async def list_photos(request: web.Request) -> web.Response:
    """GET /v1/photos -> {"photos": [...]}, newest first."""
    user = await authenticate(request)
    photos = await request.app[DATABASE].list_photos(user.id)
    return web.json_response({"photos": [photo_json(p, user.active_photo_id) for p in photos]})


async def set_active_photo(request: web.Request) -> web.Response:
    """PUT /v1/me/active-photo {"photo_id"} (null clears it) -> {"active_photo_id"}."""
    user = await authenticate(request)
    body = await read_json(request)
    if "photo_id" not in body:
        raise InvalidParam("photo_id: required (null clears the active photo)")
    db = request.app[DATABASE]
    if body["photo_id"] is None:
        await db.clear_active(user.id)
    else:
        photo_id = require_str(body, "photo_id", max_len=64)
        if not await db.set_active(user.id, photo_id):
            raise NotFound("photo_id: no such photo")
    purge(request, user)
    return web.json_response({"active_photo_id": body["photo_id"]})


async def delete_photo(request: web.Request) -> web.Response:
    """DELETE /v1/photos/{photo_id} -> 204; clears the active photo if it was this one."""
    user = await authenticate(request)
    deleted = await request.app[DATABASE].delete_photo(user.id, request.match_info["photo_id"])
    if deleted is None:
        raise NotFound("photo_id: no such photo")
    photo, was_active = deleted
    if was_active:
        purge(request, user)
    # the row is gone first, so a failure here leaves garbage, never a row without bytes
    await delete_quietly(request, photo.storage_key)
    return web.Response(status=204)


async def delete_quietly(request: web.Request, key: str) -> None:
    """Delete a blob nothing points at any more; a failure only leaves garbage behind."""
    try:
        await request.app[BLOBS].delete(key)
    except StorageFailed:
        log.warning("blob %s was not deleted", key)


def purge(request: web.Request, user: User) -> None:
    """Tell the edges (in the background) that this user's avatar changed."""
    request.app[PURGER].notify([user.hash_md5, user.hash_sha256])
