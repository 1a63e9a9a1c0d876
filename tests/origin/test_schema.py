"""Database URLs map onto the async drivers (pure)."""

from __future__ import annotations

import pytest

from origin.schema import async_url


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./var/origin.db", "sqlite+aiosqlite:///./var/origin.db"),
        ("sqlite:////abs/origin.db", "sqlite+aiosqlite:////abs/origin.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("postgresql://u:p@h:5432/db", "postgresql+asyncpg://u:p@h:5432/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
    ],
)
def test_async_url(url: str, expected: str) -> None:
    assert async_url(url) == expected


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match=r"origin\.database_url"):
        async_url("mysql://u@h/db")
