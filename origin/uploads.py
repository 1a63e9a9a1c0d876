"""Upload reservations and the local store's signed `PUT /blobs/{key}`."""

from __future__ import annotations

import asyncio
import time

from aiohttp import web

from origin.blobstore import LocalBlobStore
from origin.errors import Conflict, RequestTimeout
from origin.identity import new_id
from origin.keys import BLOBS, CONFIG, DATABASE, SIGNING_KEY
from origin.models import ALLOWED_TYPES, Upload, iso8601, storage_key
from origin.payload import read_json, require_int, require_str
from origin.signing import UploadGrant, is_expired, verify_grant
from origin.users import authenticate
from transforms.errors import BadSignature, InvalidParam, SourceTooLarge, UnsupportedImage

CHUNK = 65_536
MIN_UPLOAD_RATE = 65_536  # bytes/s a client must average on top of upload_timeout_s


async def reserve_upload(request: web.Request) -> web.Response:
    """POST /v1/uploads {"content_type","size"} -> 201 with a signed URL for the bytes."""
    user = await authenticate(request)
    config = request.app[CONFIG]
    body = await read_json(request)
    content_type = require_str(body, "content_type", max_len=64).strip().lower()
    size = require_int(body, "size")
    if size < 1:
        raise InvalidParam("size: must be at least 1 byte")
    if size > config.max_upload_bytes:
        raise SourceTooLarge(f"size: more than max_upload_bytes ({config.max_upload_bytes})")
    if content_type not in ALLOWED_TYPES:
        raise UnsupportedImage(f"content_type: must be one of {', '.join(ALLOWED_TYPES)}")
    photo_id = new_id()
    key = storage_key(user.id, photo_id)
    signed = await request.app[BLOBS].presign_put(key, content_type, size, config.upload_url_ttl_s)
    upload = Upload(photo_id, user.id, key, content_type, size, signed.expires_at, "reserved")
    await request.app[DATABASE].reserve_upload(upload, time.time())
    payload = {
        "photo_id": photo_id,
        "upload_url": signed.url,
        "method": signed.method,
        "headers": signed.headers,
        "expires_at": iso8601(signed.expires_at),
    }
    return web.json_response(payload, status=201)


async def receive_blob(request: web.Request) -> web.Response:
    """PUT /blobs/{key}?expires&sig: the local store's presigned upload, usable once."""
    upload = await check_upload_request(request)
    db = request.app[DATABASE]
    if not await db.move_upload(upload.photo_id, "reserved", "writing"):
        raise Conflict("upload URL: already used")
    store = request.app[BLOBS]
    assert isinstance(store, LocalBlobStore)  # the route exists only for the local store
    deadline = request.app[CONFIG].upload_timeout_s + upload.size / MIN_UPLOAD_RATE
    try:
        async with asyncio.timeout(deadline):
            await store.receive(
                upload.storage_key, request.content.iter_chunked(CHUNK), upload.size
            )
    except BaseException as err:
        # Nothing was stored: give the URL back so the client can retry within its expiry.
        await asyncio.shield(db.move_upload(upload.photo_id, "writing", "reserved"))
        if isinstance(err, TimeoutError):
            raise RequestTimeout(f"body: not received within {deadline:.0f} s") from None
        raise
    await db.move_upload(upload.photo_id, "writing", "written")
    return web.json_response({"photo_id": upload.photo_id, "bytes": upload.size})


async def check_upload_request(request: web.Request) -> Upload:
    """The reservation this signed request may write, or 403 / 413 / 400 before any byte."""
    key = request.match_info["key"]
    try:
        expires = int(request.query["expires"])
        signature = request.query["sig"]
    except (KeyError, ValueError):
        raise BadSignature("sig: expires and sig are required") from None
    upload = await request.app[DATABASE].get_upload(key.rpartition("/")[2])
    if upload is None or upload.storage_key != key:
        raise BadSignature("sig: not a valid upload URL")
    grant = UploadGrant(key, expires, upload.content_type, upload.size)
    if not verify_grant(grant, signature, request.app[SIGNING_KEY]):
        raise BadSignature("sig: does not match this upload")
    if is_expired(grant, time.time()):
        raise BadSignature("expires: this upload URL has expired")
    if request.content_type != upload.content_type:
        raise BadSignature(f"Content-Type: must be {upload.content_type}, as signed")
    length = request.content_length
    if length is not None and length > upload.size:
        raise SourceTooLarge(f"Content-Length: larger than the signed length {upload.size}")
    if length is not None and length != upload.size:
        raise InvalidParam(f"Content-Length: must be {upload.size}, as signed")
    return upload
