"""The edge-facing lookup (hash -> active photo) read straight from the SQLite file, on the
event loop, on a connection of its own.

Through SQLAlchemy + aiosqlite a lookup cost the origin ~1.1 ms of CPU: a transaction, a pool
checkout and reset, and six hops to aiosqlite's thread and back. And SQLite's pool is one
connection, so every lookup also queued behind every other query. An indexed point read in
WAL mode takes tens of microseconds and never waits for a writer (a reader sees the last
commit), so it runs right on the loop. Should SQLite be busy anyway (WAL recovery, a
checkpoint), it gives up after BUSY_MS and the caller takes the pooled path. PostgreSQL keeps
the pooled path: its reads are a network round trip.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url

from origin.models import Photo

BUSY_MS = 10  # how long a lookup may block the loop waiting for a lock

LookupQuery = Callable[[str], Select[Any]]  # hash -> the pooled path's query (origin/db.py)


def sqlite_sql(query: Select[Any]) -> str:
    """The statement as SQLite runs it, its one bound value as `?`."""
    return str(query.compile(dialect=sqlite.dialect()))


class LoopReader:
    """Read-only lookups on the loop thread (the connection is used by no other thread). It
    runs the pooled path's own query, compiled once per hash kind."""

    def __init__(self, path: str, query: LookupQuery) -> None:
        self.by_md5, self.by_sha256 = sqlite_sql(query("0" * 32)), sqlite_sql(query("0" * 64))
        self.connection = sqlite3.connect(path, isolation_level=None)  # autocommit reads
        for pragma in ("PRAGMA query_only=ON", f"PRAGMA busy_timeout={BUSY_MS}"):
            self.connection.execute(pragma)

    @classmethod
    def for_url(cls, url: str, query: LookupQuery) -> LoopReader | None:
        """A reader for a SQLite file URL; None for PostgreSQL or an in-memory database."""
        parsed = make_url(url)
        database = parsed.database or ""
        if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
            return None
        if database.startswith("file:") or not Path(database).exists():
            return None
        return cls(database, query)

    def active_photo(self, avatar_hash: str) -> Photo | None:
        """Raises sqlite3.Error when SQLite is busy past BUSY_MS (or anything else is off)."""
        sql = self.by_md5 if len(avatar_hash) == 32 else self.by_sha256
        row = self.connection.execute(sql, (avatar_hash,)).fetchone()
        return None if row is None else Photo(*row)  # the query selects Photo's fields in order

    def close(self) -> None:
        self.connection.close()
