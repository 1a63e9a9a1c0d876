"""Edge-only errors (the shared hierarchy lives in transforms/errors.py)."""

from __future__ import annotations

from transforms.errors import ImgcdnError


class Unauthorized(ImgcdnError):
    """No credentials where they are required (POST /_purge without a bearer token)."""

    status = 401
    code = "unauthorized"


class Forbidden(ImgcdnError):
    """Credentials that do not grant this (a wrong purge token, purging disabled)."""

    status = 403
    code = "forbidden"
