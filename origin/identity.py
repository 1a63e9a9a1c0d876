"""Emails, Gravatar hashes, bearer tokens and random ids (pure)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from transforms.errors import InvalidParam

# Deliberately loose (RFC 5322 is not worth parsing): one @, no spaces, a dot in the domain.
EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")
HASH_RE = re.compile(r"^(?:[0-9a-f]{32}|[0-9a-f]{64})$")
MAX_EMAIL = 254


@dataclass(frozen=True)
class EmailIdentity:
    """A normalised email and the two hashes Gravatar URLs use for it."""

    email: str
    hash_md5: str
    hash_sha256: str


def identify_email(raw: str) -> EmailIdentity:
    """Trim and lower-case `raw`, check it looks like an email, hash it as Gravatar does."""
    email = raw.strip().lower()
    if len(email) > MAX_EMAIL or not EMAIL_RE.match(email):
        raise InvalidParam("email: not a valid email address")
    data = email.encode("utf-8")
    return EmailIdentity(
        email=email,
        hash_md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        hash_sha256=hashlib.sha256(data).hexdigest(),
    )


def parse_avatar_hash(raw: str) -> str | None:
    """The lower-cased hash if `raw` is 32 (MD5) or 64 (SHA-256) hex characters, else None."""
    value = raw.lower()
    return value if HASH_RE.match(value) else None


def new_token() -> str:
    """A bearer token: 256 random bits, shown to the user once."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """What the database keeps of a token (a plain SHA-256 suffices for 256-bit secrets)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_id() -> str:
    """A random id for users and photos: 96 bits, 24 hex characters (never 32 or 64)."""
    return secrets.token_hex(12)
