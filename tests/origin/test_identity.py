"""Emails, Gravatar hashes, tokens and ids (pure)."""

from __future__ import annotations

import pytest

from origin.identity import hash_token, identify_email, new_id, new_token, parse_avatar_hash
from transforms.errors import InvalidParam


def test_hashes_match_gravatars_documented_example() -> None:
    identity = identify_email("  MyEmailAddress@example.com ")
    assert identity.email == "myemailaddress@example.com"
    assert identity.hash_md5 == "0bc83cb571cd1c50ba6f3e8a78ef1346"
    assert identity.hash_sha256 == (
        "84059b07d4be67b806386c0aad8070a23f18836bbaae342275dc0a83414c32ee"
    )


@pytest.mark.parametrize(
    "email",
    [
        "",
        "plain",
        "@example.com",
        "a@",
        "a@b",
        "a b@example.com",
        "a@exa mple.com",
        "a@@example.com",
        "a@example..com",
        "a@.example.com",
        "x" * 65 + "@example.com",
        "a@" + "b" * 250 + ".com",
    ],
)
def test_invalid_emails_are_400(email: str) -> None:
    with pytest.raises(InvalidParam, match=r"^email: "):
        identify_email(email)


@pytest.mark.parametrize("email", ["a@b.co", "first.last+tag@sub.example.org", "ü@例え.jp"])
def test_valid_emails(email: str) -> None:
    assert identify_email(email).email == email.lower()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0BC83CB571CD1C50BA6F3E8A78EF1346", "0bc83cb571cd1c50ba6f3e8a78ef1346"),
        ("a" * 64, "a" * 64),
        ("a" * 31, None),
        ("a" * 33, None),
        ("a" * 63, None),
        ("g" * 32, None),
        ("0bc83cb571cd1c50ba6f3e8a78ef134.", None),
        ("", None),
    ],
)
def test_avatar_hashes(raw: str, expected: str | None) -> None:
    assert parse_avatar_hash(raw) == expected


def test_tokens_and_ids_are_random_and_tokens_are_stored_hashed() -> None:
    tokens = {new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43 and hash_token(token) != token and len(hash_token(token)) == 64
    ids = {new_id() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 24 for i in ids)
