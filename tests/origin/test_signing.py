"""Upload URL signatures (pure)."""

from __future__ import annotations

import dataclasses

import pytest

from origin.signing import UploadGrant, is_expired, sign_grant, verify_grant

KEY = b"k" * 32
GRANT = UploadGrant("u1/p1", 1_700_000_000, "image/jpeg", 12345)


def test_a_grant_verifies_with_its_own_signature() -> None:
    signature = sign_grant(GRANT, KEY)
    assert verify_grant(GRANT, signature, KEY)
    assert "=" not in signature and len(signature) == 43  # base64url of 32 bytes, unpadded


@pytest.mark.parametrize(
    "change",
    [
        {"key": "u1/p2"},
        {"key": "u2/p1"},
        {"expires": 1_700_000_001},
        {"content_type": "image/png"},
        {"length": 12346},
        {"method": "POST"},
    ],
)
def test_any_changed_field_breaks_the_signature(change: dict) -> None:
    signature = sign_grant(GRANT, KEY)
    assert not verify_grant(dataclasses.replace(GRANT, **change), signature, KEY)


def test_fields_cannot_bleed_into_each_other() -> None:
    a = UploadGrant("u1/p1", 1, "image/jpeg", 23)
    b = UploadGrant("u1/p1", 12, "image/jpeg", 3)
    assert sign_grant(a, KEY) != sign_grant(b, KEY)


@pytest.mark.parametrize("signature", ["", "x", "é" * 43, sign_grant(GRANT, b"other-key")])
def test_wrong_signatures_are_refused(signature: str) -> None:
    assert not verify_grant(GRANT, signature, KEY)


def test_expiry_is_inclusive() -> None:
    assert not is_expired(GRANT, GRANT.expires)
    assert is_expired(GRANT, GRANT.expires + 0.001)
