"""HMAC-SHA256 signatures for the local store's upload URLs (pure, no I/O).

The signature binds everything the upload may not change: the method, the blob key, the expiry
(unix seconds), the content type and the exact length. A client must send those headers.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass


@dataclass(frozen=True)
class UploadGrant:
    """What one signed upload URL allows."""

    key: str
    expires: int
    content_type: str
    length: int
    method: str = "PUT"

    def message(self) -> bytes:
        """The canonical bytes signed; newline-separated so no field can bleed into another."""
        fields = (self.method, self.key, str(self.expires), self.content_type, str(self.length))
        return "\n".join(fields).encode("utf-8")


def sign_grant(grant: UploadGrant, key: bytes) -> str:
    """base64url (no padding) HMAC-SHA256 of the grant's canonical message."""
    digest = hmac.new(key, grant.message(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def verify_grant(grant: UploadGrant, signature: str, key: bytes) -> bool:
    """True when `signature` was made for exactly this grant (constant-time compare)."""
    return hmac.compare_digest(sign_grant(grant, key).encode("ascii"), signature.encode("utf-8"))


def is_expired(grant: UploadGrant, now: float) -> bool:
    """An upload URL is valid up to and including its `expires` second."""
    return now > grant.expires
