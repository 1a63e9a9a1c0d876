"""Every query the origin makes, each in its own short transaction (no I/O held inside one)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Select, delete, exists, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from origin.errors import Conflict, DatabaseUnavailable
from origin.loopread import LoopReader
from origin.models import Photo, Upload, User
from origin.schema import create_schema, make_engine, photos, uploads, users

log = logging.getLogger(__name__)


class Database:
    """The origin's tables behind small async methods that return frozen rows."""

    def __init__(self, engine: AsyncEngine, reader: LoopReader | None = None) -> None:
        self.engine = engine
        self.reader = reader  # SQLite: lookups read on the loop (loopread.py)

    @classmethod
    async def open(cls, url: str) -> Database:
        """Connect and create or update the schema."""
        db = cls(make_engine(url))
        try:
            async with db.begin():
                pass
            await create_schema(db.engine)
            db.reader = LoopReader.for_url(url, active_photo_query)
        except BaseException:
            await db.engine.dispose()
            raise
        return db

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
        await self.engine.dispose()

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        """A transaction; driver and pool failures become DatabaseUnavailable (503)."""
        try:
            async with self.engine.begin() as conn:
                yield conn
        except IntegrityError:
            raise
        except (DBAPIError, PoolTimeout, OSError, TimeoutError) as err:
            cause = getattr(err, "orig", None) or err
            log.warning("database error: %s: %s", type(cause).__name__, str(cause).split("\n")[0])
            raise DatabaseUnavailable("database: not available, try again") from err

    async def ping(self) -> None:
        async with self.begin() as conn:
            await conn.execute(text("SELECT 1"))

    # users

    async def create_user(self, user: User, token_hash: str) -> None:
        """Insert a user; a taken email is a 409."""
        values = {**user.__dict__, "token_hash": token_hash}
        try:
            async with self.begin() as conn:
                await conn.execute(insert(users).values(**values))
        except IntegrityError:
            raise Conflict("email: a user with this email already exists") from None

    async def user_by_token(self, token_hash: str) -> User | None:
        async with self.begin() as conn:
            row = (
                await conn.execute(select(*user_columns()).where(users.c.token_hash == token_hash))
            ).first()
        return User(**row._mapping) if row else None

    async def user_by_id(self, user_id: str) -> User | None:
        async with self.begin() as conn:
            row = (await conn.execute(select(*user_columns()).where(users.c.id == user_id))).first()
        return User(**row._mapping) if row else None

    # uploads

    async def reserve_upload(self, upload: Upload, now: float) -> None:
        async with self.begin() as conn:
            await conn.execute(insert(uploads).values(**upload.__dict__, created_at=now))

    async def get_upload(self, photo_id: str) -> Upload | None:
        async with self.begin() as conn:
            row = (
                await conn.execute(select(*upload_columns()).where(uploads.c.photo_id == photo_id))
            ).first()
        return Upload(**row._mapping) if row else None

    async def move_upload(self, photo_id: str, old: str, new: str) -> bool:
        """Compare-and-set an upload's state; False when it was not `old` (someone else won)."""
        async with self.begin() as conn:
            result = await conn.execute(
                update(uploads)
                .where(uploads.c.photo_id == photo_id, uploads.c.state == old)
                .values(state=new)
            )
        return result.rowcount == 1

    async def register_photo(self, photo: Photo) -> bool:
        """Consume the reservation and insert the photo in one transaction; False if consumed."""
        async with self.begin() as conn:
            claimed = await conn.execute(
                update(uploads)
                .where(
                    uploads.c.photo_id == photo.id,
                    uploads.c.user_id == photo.user_id,
                    uploads.c.state != "registered",
                )
                .values(state="registered")
            )
            if claimed.rowcount != 1:
                return False
            await conn.execute(insert(photos).values(**photo.__dict__))
        return True

    async def stale_uploads(self, cutoff: float, limit: int = 100) -> list[Upload]:
        """Reservations that expired before `cutoff`, registered or not."""
        query = select(*upload_columns()).where(uploads.c.expires_at < cutoff).limit(limit)
        async with self.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [Upload(**row._mapping) for row in rows]

    async def drop_upload(self, photo_id: str) -> bool:
        """Delete a reservation; True when it was never registered (its blob is garbage)."""
        async with self.begin() as conn:
            result = await conn.execute(
                delete(uploads).where(uploads.c.photo_id == photo_id).returning(uploads.c.state)
            )
            row = result.first()
        return row is not None and row.state != "registered"

    # photos

    async def list_photos(self, user_id: str) -> list[Photo]:
        query = (
            select(*photo_columns())
            .where(photos.c.user_id == user_id)
            .order_by(photos.c.created_at.desc(), photos.c.id.desc())
        )
        async with self.begin() as conn:
            rows = (await conn.execute(query)).all()
        return [Photo(**row._mapping) for row in rows]

    async def get_photo(self, photo_id: str, user_id: str | None = None) -> Photo | None:
        query = select(*photo_columns()).where(photos.c.id == photo_id)
        if user_id is not None:
            query = query.where(photos.c.user_id == user_id)
        async with self.begin() as conn:
            row = (await conn.execute(query)).first()
        return Photo(**row._mapping) if row else None

    async def set_active(self, user_id: str, photo_id: str) -> bool:
        """Point the user at one of their own photos; False when it is not theirs (or gone)."""
        owned = exists().where(photos.c.id == photo_id, photos.c.user_id == user_id)
        try:
            async with self.begin() as conn:
                result = await conn.execute(
                    update(users)
                    .where(users.c.id == user_id, owned)
                    .values(active_photo_id=photo_id)
                )
        except IntegrityError:  # deleted by a concurrent request after the EXISTS saw it
            return False
        return result.rowcount == 1

    async def clear_active(self, user_id: str) -> None:
        async with self.begin() as conn:
            await conn.execute(
                update(users).where(users.c.id == user_id).values(active_photo_id=None)
            )

    async def delete_photo(self, user_id: str, photo_id: str) -> tuple[Photo, bool] | None:
        """Delete one of the user's photos; returns it and whether it was the active one."""
        async with self.begin() as conn:
            row = (
                await conn.execute(
                    select(*photo_columns()).where(
                        photos.c.id == photo_id, photos.c.user_id == user_id
                    )
                )
            ).first()
            if row is None:
                return None
            cleared = await conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.active_photo_id == photo_id)
                .values(active_photo_id=None)
            )
            await conn.execute(delete(photos).where(photos.c.id == photo_id))
            await conn.execute(delete(uploads).where(uploads.c.photo_id == photo_id))
        return Photo(**row._mapping), cleared.rowcount == 1

    async def active_photo(self, avatar_hash: str) -> Photo | None:
        """The active photo of the user with this MD5 or SHA-256 email hash."""
        if self.reader is not None:
            try:
                return self.reader.active_photo(avatar_hash)
            except sqlite3.Error as err:  # busy past its wait, or worse: the pool decides
                log.info("lookup read on the loop failed (%s); using the pool", err)
        async with self.begin() as conn:
            row = (await conn.execute(active_photo_query(avatar_hash))).first()
        return Photo(**row._mapping) if row else None


def active_photo_query(avatar_hash: str) -> Select[Any]:
    """The lookup: the active photo's columns (in `Photo`'s field order) for a hash."""
    column = users.c.hash_md5 if len(avatar_hash) == 32 else users.c.hash_sha256
    return (
        select(*photo_columns())
        .select_from(users.join(photos, photos.c.id == users.c.active_photo_id))
        .where(column == avatar_hash)
    )


def user_columns() -> list[Any]:
    return [users.c[name] for name in User.__dataclass_fields__]


def upload_columns() -> list[Any]:
    return [uploads.c[name] for name in Upload.__dataclass_fields__]


def photo_columns() -> list[Any]:
    return [photos.c[name] for name in Photo.__dataclass_fields__]
