"""Origin-only errors; the shared ones (400, 403, 404, 413, 415, 422, ...) live in transforms."""

from __future__ import annotations

from transforms.errors import ImgcdnError


class Unauthorized(ImgcdnError):
    """Missing or unknown bearer token."""

    status = 401
    code = "unauthorized"


class RequestTimeout(ImgcdnError):
    """The client did not send its body within the deadline."""

    status = 408
    code = "request_timeout"


class Conflict(ImgcdnError):
    """The request clashes with the current state (duplicate email, reused upload URL, ...)."""

    status = 409
    code = "conflict"


class StorageFailed(ImgcdnError):
    """The blob store did not answer or refused an operation."""

    status = 502
    code = "storage_failed"


class DatabaseUnavailable(ImgcdnError):
    """The database did not answer (locked, down, out of connections)."""

    status = 503
    code = "database_unavailable"
