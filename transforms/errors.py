"""Errors that carry their HTTP status and a public, one-line message.

Every failure the edge or origin reports to a client is one of these; a middleware maps
them to responses by class, so no handler matches on error strings.
"""

from __future__ import annotations


class ImgcdnError(Exception):
    """Base class: `status` is the HTTP status, `str(err)` the public message."""

    status: int = 500
    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidParam(ImgcdnError):
    status = 400
    code = "invalid_param"


class BadSignature(ImgcdnError):
    status = 403
    code = "bad_signature"


class NotFound(ImgcdnError):
    status = 404
    code = "not_found"


class SourceTooLarge(ImgcdnError):
    status = 413
    code = "too_large"


class UnsupportedImage(ImgcdnError):
    """Not an image, or a blocked format (SVG, PDF, ...)."""

    status = 415
    code = "unsupported_image"


class CorruptImage(ImgcdnError):
    """An image that fails to decode: truncated or corrupt."""

    status = 422
    code = "corrupt_image"


class WorkerCrashed(ImgcdnError):
    """The worker rendering this request died (segfault, OOM kill); only this request fails."""

    status = 500
    code = "worker_crashed"


class OriginFailed(ImgcdnError):
    status = 502
    code = "origin_failed"


class Overloaded(ImgcdnError):
    """The transform queue is full; clients should retry after `retry_after` seconds."""

    status = 503
    code = "overloaded"

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Timeout(ImgcdnError):
    status = 504
    code = "timeout"
