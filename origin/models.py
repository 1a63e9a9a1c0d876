"""Rows as frozen dataclasses and their JSON shapes (pure)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

RATINGS = ("g", "pg", "r", "x")

# Content types a client may reserve an upload for. HEIC is left out: the bundled libvips
# decodes AV1 HEIF (AVIF) but not HEVC, so an iPhone .heic could never be probed or rendered.
ALLOWED_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "image/gif",
    "image/avif",
    "image/tiff",
)

# transforms' ImageInfo.format -> the content type the origin records (the detected one).
FORMAT_TYPES = {
    "jpeg": "image/jpeg",
    "jpg": "image/jpeg",
    "png": "image/png",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
    "heif": "image/avif",  # libvips calls AVIF "heif"; the HEVC kind is refused at decode
    "tiff": "image/tiff",
}


@dataclass(frozen=True)
class User:
    id: str
    email: str
    hash_md5: str
    hash_sha256: str
    active_photo_id: str | None
    created_at: float


@dataclass(frozen=True)
class Upload:
    """A reservation: a photo id promised to a user, waiting for its bytes and registration."""

    photo_id: str
    user_id: str
    storage_key: str
    content_type: str
    size: int
    expires_at: float
    state: str  # reserved | writing | written | registered


@dataclass(frozen=True)
class Photo:
    id: str
    user_id: str
    storage_key: str
    content_type: str
    width: int
    height: int
    bytes: int
    rating: str
    version: int
    etag: str  # strong, quoted: '"<sha256 prefix>"'
    created_at: float


def storage_key(user_id: str, photo_id: str) -> str:
    """Where a photo's bytes live inside the blob store (the S3 prefix is added by the store)."""
    return f"{user_id}/{photo_id}"


def iso8601(timestamp: float) -> str:
    """UTC, seconds precision, with a Z."""
    moment = dt.datetime.fromtimestamp(timestamp, dt.UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")


def user_json(user: User) -> dict[str, Any]:
    return {
        "id": user.id,
        "email": user.email,
        "hash_md5": user.hash_md5,
        "hash_sha256": user.hash_sha256,
        "active_photo_id": user.active_photo_id,
        "created_at": iso8601(user.created_at),
    }


def photo_json(photo: Photo, active_photo_id: str | None) -> dict[str, Any]:
    """The photo object of DESIGN.md section 7, exactly these keys."""
    return {
        "id": photo.id,
        "content_type": photo.content_type,
        "width": photo.width,
        "height": photo.height,
        "bytes": photo.bytes,
        "rating": photo.rating,
        "created_at": iso8601(photo.created_at),
        "active": photo.id == active_photo_id,
    }


def avatar_json(photo: Photo) -> dict[str, Any]:
    """What an edge needs to render a hash's active photo."""
    return {
        "photo_id": photo.id,
        "version": photo.version,
        "rating": photo.rating,
        "content_type": photo.content_type,
        "etag": photo.etag,
    }
