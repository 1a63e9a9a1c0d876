"""Tables (SQLAlchemy Core) and the engine for SQLite or PostgreSQL, one code path for both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    event,
    text,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from imgcdn.config import ConfigError

metadata = MetaData()

photos = Table(
    "photos",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("storage_key", String(255), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("width", Integer, nullable=False),
    Column("height", Integer, nullable=False),
    Column("bytes", BigInteger, nullable=False),
    Column("rating", String(2), nullable=False),
    Column("version", Integer, nullable=False),
    Column("etag", String(80), nullable=False),
    Column("created_at", Float, nullable=False),
)
Index("ix_photos_user_created", photos.c.user_id, photos.c.created_at)

users = Table(
    "users",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("hash_md5", String(32), nullable=False, index=True, unique=True),
    Column("hash_sha256", String(64), nullable=False, index=True, unique=True),
    Column("token_hash", String(64), nullable=False, index=True, unique=True),
    # The active photo is a column, not a flag per photo: the edge lookup is one indexed read.
    # The foreign key makes a concurrent delete and set-active unable to leave a dangling id.
    Column(
        "active_photo_id",
        String(32),
        ForeignKey("photos.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("created_at", Float, nullable=False),
)

uploads = Table(
    "uploads",
    metadata,
    Column("photo_id", String(32), primary_key=True),
    Column("user_id", String(32), nullable=False, index=True),
    Column("storage_key", String(255), nullable=False),
    Column("content_type", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("expires_at", Float, nullable=False, index=True),
    Column("state", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
)

# Any constant: serialises schema creation when several origins start on one PostgreSQL.
SCHEMA_LOCK_ID = 0x696D6763646E


def async_url(url: str) -> str:
    """`sqlite:///x.db` -> `sqlite+aiosqlite:///x.db`, `postgresql://` -> `postgresql+asyncpg://`."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite" and parsed.drivername == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres") and "+" not in parsed.drivername:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    elif backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"origin.database_url: unsupported database {backend!r}")
    return parsed.render_as_string(hide_password=False)


def make_engine(url: str) -> AsyncEngine:
    """An async engine; SQLite gets one connection (it serialises writers anyway) and WAL."""
    full = make_url(async_url(url))
    options: dict[str, Any] = {}
    if full.get_backend_name() == "sqlite":
        database = full.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        options.update(pool_size=1, max_overflow=0, pool_timeout=10)
        if not database or database == ":memory:":
            options = {}
    else:
        options.update(
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            pool_timeout=10,
            # a dead or wedged server must become a 503, not a request that hangs
            connect_args={"timeout": 5, "command_timeout": 10},
        )
    engine = create_async_engine(full, **options)
    if full.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", configure_sqlite)
    return engine


def configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    """Per-connection pragmas: enforce foreign keys, WAL, wait for locks instead of failing."""
    cursor = dbapi_connection.cursor()
    for pragma in (
        "PRAGMA foreign_keys=ON",
        "PRAGMA journal_mode=WAL",
        "PRAGMA synchronous=NORMAL",
        "PRAGMA busy_timeout=5000",
    ):
        cursor.execute(pragma)
    cursor.close()


async def create_schema(engine: AsyncEngine) -> None:
    """Create missing tables and indexes (idempotent; safe with several origins at once)."""
    async with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(text(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_ID})"))
        await conn.run_sync(metadata.create_all)
