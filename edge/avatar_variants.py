"""Avatar variants through the shared tiers: photos and default images, immutable by key.

A variant's key names everything that makes its bytes (photo id + version, or default kind +
hash + initials; then size and format), so nothing here ever goes stale or needs a purge: the
only mutable part of an avatar is the lookup (edge/lookup.py). Concurrent misses for one key
run one transform; concurrent misses for different sizes of one photo share one origin fetch.

Smaller from larger (`transforms.avatar_from_larger`): pages ask for many sizes of the same
few photos. First choice, a per-photo master (transforms/master.py): the first JPEG square of
256 px or less of a photo also makes a 256 px near-lossless master, kept with the originals
(`edge.cache.originals_bytes`; the original is demoted to spare room), and every such size
after it is derived from the master in ~1 ms instead of rendered from the original in 3-7 ms;
sizes asked while the master is being made wait for it. Second choice (other formats, no
master kept): a miss whose photo already has a cached variant at least `DERIVE_FACTOR` times
larger on both sides (same box shape, format and options, centre crop) is rendered from that
variant's bytes instead of the original: no origin fetch, and a small JPEG decodes in a
fraction of the time of a ~1024 px original. Quality (tests/avatars/test_from_larger.py):
against a lossless render of the original, this adds ~0.6 (JPEG) / ~1.2 (WebP) to the mean
absolute pixel error (0-255) that direct rendering has anyway (~5.6 / ~4.3); bound: +1.5 on
average, +5 at worst. Which variants exist is indexed per process, per photo.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cachetools import LRUCache

from edge.avatar_query import photo_master_key
from edge.avatar_render import render_default
from edge.cache import Entry, TieredCache
from edge.headers import COALESCED, HIT_MEMORY, Outcome, hit_outcome, strong_etag
from edge.metrics import Metrics
from edge.origin_client import Avatar, OriginClient, PhotoBytes
from edge.originals import Originals
from edge.singleflight import SingleFlight
from transforms.master import (
    MASTER_QUALITY,
    MASTER_SIDE,
    Master,
    derive,
    fits,
    may_use_master,
    render_keeping_master,
)
from transforms.pipeline import Rendered
from transforms.pool import TransformPool
from transforms.spec import Limits, TransformSpec

STORED = Outcome("MISS", fwd="miss", stored=True)
NOT_STORED = Outcome("MISS", fwd="miss")
DERIVE_FACTOR = 2  # a variant this many times larger on both sides may stand in for the original
DERIVABLE_TYPES = ("image/jpeg", "image/webp")  # cheap to decode; no animation in practice
PHOTOS_INDEXED = 10_000


@dataclass(frozen=True)
class Known:
    """A variant of a photo known to be in the tiers (it may have been evicted since)."""

    spec: TransformSpec
    fmt: str
    key: str


def master_key(avatar: Avatar) -> str:
    return photo_master_key(avatar.photo_id, avatar.version, MASTER_SIDE, MASTER_QUALITY)


def can_derive(larger: TransformSpec, smaller: TransformSpec) -> bool:
    """May `smaller` be rendered from the output of `larger`? Same everything but the size,
    the same box shape, at least DERIVE_FACTOR times larger, and a plain centre crop."""
    big_w, big_h, w, h = larger.width, larger.height, smaller.width, smaller.height
    if big_w is None or big_h is None or w is None or h is None:
        return False
    return (
        smaller.gravity == "centre"
        and big_w >= DERIVE_FACTOR * w
        and big_h >= DERIVE_FACTOR * h
        and big_w * h == big_h * w
        and dataclasses.replace(smaller, width=big_w, height=big_h) == larger
    )


@dataclass(frozen=True)
class KeptMaster:
    """A photo's master (transforms/master.py) as kept with the originals."""

    master: Master
    last_modified: float

    @property
    def body(self) -> bytes:
        return self.master.body


MASTER_TYPE = "image/jpeg; imgcdn-master"  # never served: the entry is an intermediate


def master_entry(kept: KeptMaster) -> Entry:
    """A master as a disk-tier entry; its side and the photo's "auto" format ride along as
    media-type parameters."""
    master = kept.master
    content_type = f"{MASTER_TYPE}; side={master.side}; auto={master.auto_format}"
    return Entry(master.body, content_type, "", kept.last_modified, time.time())


def kept_master(entry: Entry) -> KeptMaster | None:
    """The master a disk-tier entry holds (None for anything else)."""
    head, _, params = entry.content_type.partition(f"{MASTER_TYPE}; ")
    fields = dict(p.split("=", 1) for p in params.split("; ") if "=" in p)
    if head or not fields.get("side", "").isdigit() or "auto" not in fields:
        return None
    master = Master(entry.body, int(fields["side"]), fields["auto"])
    return KeptMaster(master, entry.last_modified)


@dataclass(frozen=True)
class Made:
    entry: Entry
    stored: bool
    timings_ms: dict[str, float]


@dataclass(frozen=True)
class AvatarServed:
    entry: Entry
    outcome: Outcome
    timings_ms: dict[str, float] = field(default_factory=dict)
    from_cache: bool = True


class AvatarVariants:
    def __init__(
        self,
        tiers: TieredCache,
        pool: TransformPool,
        limits: Limits,
        origin: OriginClient,
        metrics: Metrics,
        *,
        from_larger: bool = True,
        originals: Originals | None = None,
    ) -> None:
        self.tiers = tiers
        self.pool = pool
        self.limits = limits
        self.origin = origin
        self.metrics = metrics
        self.from_larger = from_larger
        self.originals = originals or Originals(0)  # photo bytes, immutable per id + version
        self.misses: SingleFlight[str, Made] = SingleFlight()
        self.photos: SingleFlight[str, PhotoBytes] = SingleFlight()
        # (photo id, version) -> the miss making its master; other sizes wait for the master
        self.masters: SingleFlight[tuple[str, int], tuple[Made, KeptMaster | None]] = SingleFlight()
        # (photo id, version) -> variants of it this process made or read from the disk
        self.known: LRUCache[tuple[str, int], tuple[Known, ...]] = LRUCache(PHOTOS_INDEXED)

    async def photo(self, key: str, avatar: Avatar, spec: TransformSpec, fmt: str) -> AvatarServed:
        """The variant `key` (format `fmt` as in the key) of the avatar's photo: cached, or
        rendered once from a larger cached variant or from the fetched original."""
        served = await self._serve(key, lambda: self._make_photo(avatar, spec, fmt))
        if self.from_larger and served.outcome is not HIT_MEMORY:
            self._remember(avatar, Known(spec, fmt, key))
        return served

    def _remember(self, avatar: Avatar, known: Known) -> None:
        photo = (avatar.photo_id, avatar.version)
        others = tuple(k for k in self.known.get(photo, ()) if k.key != known.key)
        self.known[photo] = (*others[-7:], known)

    async def _larger(self, avatar: Avatar, spec: TransformSpec, fmt: str) -> Entry | None:
        """The smallest cached variant of this photo that `spec` may be rendered from."""
        photo = (avatar.photo_id, avatar.version)
        candidates = [k for k in self.known.get(photo, ()) if k.fmt == fmt]
        for known in sorted(candidates, key=lambda k: k.spec.width or 0):
            if not can_derive(known.spec, spec):
                continue
            hit = await self.tiers.get(known.key)
            if hit is not None and hit[0].content_type in DERIVABLE_TYPES:
                return hit[0]
        return None

    async def default(
        self, key: str, kind: str, avatar_hash: str, initials: str, spec: TransformSpec
    ) -> AvatarServed:
        """The variant `key` of a default image (`d=` kind), drawn and rendered once."""

        async def make() -> Made:
            work = self.pool.run(render_default, kind, avatar_hash, initials, spec, self.limits)
            return await self._render(work, {}, last_modified=None)

        return await self._serve(key, make)

    async def _serve(self, key: str, make: Callable[[], Awaitable[Made]]) -> AvatarServed:
        admit = None if self.misses.running(key) else self._admit
        hit = await self.tiers.lookup(key, admit)
        if hit is not None:
            entry, tier = hit
            self.metrics.hit(tier)
            return AvatarServed(entry, hit_outcome(tier))
        self.metrics.cache_misses.inc()
        if not self.misses.running(key):
            # overloaded: 503 before any origin fetch
            self._admit(self.tiers.probing)
        made, shared = await self.misses.run(key, lambda: self._store(key, make))
        if shared:
            self.metrics.coalesced.inc()
            return AvatarServed(made.entry, COALESCED, from_cache=False)
        outcome = STORED if made.stored else NOT_STORED
        return AvatarServed(made.entry, outcome, made.timings_ms, from_cache=False)

    def _admit(self, probing: int) -> None:
        """Raise `Overloaded` when the pool has no room for one more miss, counting this
        service's misses and the shared-store reads in flight (`TieredCache.lookup`)."""
        self.pool.admit(len(self.misses) + probing)

    async def _store(self, key: str, make: Callable[[], Awaitable[Made]]) -> Made:
        made = await make()
        return Made(made.entry, await self.tiers.set(key, made.entry), made.timings_ms)

    async def _make_photo(self, avatar: Avatar, spec: TransformSpec, fmt: str) -> Made:
        if self.from_larger:
            if may_use_master(spec) and self.originals.max_bytes > 0:  # masters are kept there
                made = await self._from_master(avatar, spec)
                if made is not None:
                    return made
            larger = await self._larger(avatar, spec, fmt)
            if larger is not None:
                work = self.pool.render(larger.body, spec, self.limits)
                return await self._render(work, {}, last_modified=larger.last_modified)
        started = time.perf_counter()
        photo = await self._photo_bytes(avatar)
        timings = {"origin": (time.perf_counter() - started) * 1000}
        work = self.pool.render(photo.body, spec, self.limits)
        return await self._render(work, timings, last_modified=photo.last_modified)

    async def _from_master(self, avatar: Avatar, spec: TransformSpec) -> Made | None:
        """`spec` from the photo's master: kept, being made for another size, or made now
        (with this size) from the original. None: no master can serve `spec`."""
        flight = (avatar.photo_id, avatar.version)
        kept = self.originals.get(("master", avatar.photo_id), avatar.version, KeptMaster)
        if kept is None and not self.masters.running(flight):
            kept = await self._stored_master(avatar)  # made by another edge process
        if kept is None:
            (made, kept), shared = await self.masters.run(
                flight, lambda: self._make_master(avatar, spec)
            )
            if not shared:
                return made
        if kept is None or not fits(kept.master, spec):
            return None
        work = self.pool.run(derive, kept.master.body, kept.master.side, spec)
        return await self._render(work, {}, last_modified=kept.last_modified)

    async def _stored_master(self, avatar: Avatar) -> KeptMaster | None:
        """The photo's master from the disk tier, kept in memory from now on."""
        entry = await self.tiers.disk.get(master_key(avatar))
        kept = kept_master(entry) if entry is not None else None
        if kept is not None:
            self.originals.put(("master", avatar.photo_id), avatar.version, kept)
        return kept

    async def _make_master(
        self, avatar: Avatar, spec: TransformSpec
    ) -> tuple[Made, KeptMaster | None]:
        """`spec` from the original, making the photo's master on the way when it fits one."""
        started = time.perf_counter()
        photo = await self._photo_bytes(avatar)
        timings = {"origin": (time.perf_counter() - started) * 1000}
        kept: KeptMaster | None = None

        async def rendering() -> Rendered:
            nonlocal kept
            rendered, master = await self.pool.run(
                render_keeping_master, photo.body, spec, self.limits
            )
            if master is not None:
                kept = KeptMaster(master, photo.last_modified or time.time())
                self.originals.put(("master", avatar.photo_id), avatar.version, kept)
                # the master serves the sizes pages ask for in a fifth of the bytes: the
                # original stays only while it pushes no other photo's master out
                self.originals.demote(("photo", avatar.photo_id))
            return rendered

        made = await self._render(rendering(), timings, last_modified=photo.last_modified)
        if kept is not None:  # for the other edge processes on this disk (`edge.workers`)
            await self.tiers.disk.set(master_key(avatar), master_entry(kept))
        return made, kept

    async def _photo_bytes(self, avatar: Avatar) -> PhotoBytes:
        """The photo's original: kept in memory, or fetched once however many sizes ask."""
        key = ("photo", avatar.photo_id)
        photo = self.originals.get(key, avatar.version, PhotoBytes)
        if photo is None:
            photo, _ = await self.photos.run(
                avatar.photo_id, lambda: self.origin.photo(avatar.photo_id)
            )
            self.originals.put(key, avatar.version, photo)
        return photo

    async def _render(
        self, work: Awaitable[Rendered], timings: dict[str, float], last_modified: float | None
    ) -> Made:
        started = time.perf_counter()
        try:
            rendered = await work
        finally:
            self.metrics.transform_queue.set(self.pool.queued)
        elapsed = time.perf_counter() - started
        self.metrics.transform_seconds.observe(elapsed)
        now = time.time()
        entry = Entry(
            body=rendered.body,
            content_type=rendered.content_type,
            etag=strong_etag(rendered.body),
            last_modified=last_modified or now,
            stored_at=now,
        )
        return Made(entry, stored=False, timings_ms={**timings, "transform": elapsed * 1000})

    async def close(self) -> None:
        await self.misses.close()
        await self.photos.close()
        await self.masters.close()
