"""The cache flow shared by /img and /raw: record -> tiers -> freshness -> (miss) single-flight
(fetch -> render -> store). Handlers hand in how to render; this module decides where bytes
come from and says how (an `Outcome` for X-Cache / Cache-Status).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from edge.cache import Entry, TieredCache
from edge.freshness import Freshness, SourceRecord, classify
from edge.headers import (
    COALESCED,
    HIT_MEMORY,
    HIT_SHARED,
    MISS,
    STALE_REVALIDATING,
    Outcome,
    hit_outcome,
    revalidated,
    stale_if_error,
    strong_etag,
)
from edge.keys import flight_key, path_tag, variant_key
from edge.metrics import Metrics
from edge.originals import Originals
from edge.records import RecordStore
from edge.singleflight import SingleFlight
from edge.sources import Fetched, Source, Validators
from transforms.errors import ImgcdnError, NotFound, OriginFailed, Timeout

log = logging.getLogger(__name__)

SOURCE_DOWN = (OriginFailed, Timeout)  # the failures stale-if-error covers
RETRY_BACKOFF_S = 1.0  # after a failed background revalidation, wait this long before the next


@dataclass(frozen=True)
class Rendition:
    """What a handler's renderer makes of the source bytes."""

    body: bytes
    content_type: str


Renderer = Callable[[Fetched], Awaitable[Rendition]]


@dataclass(frozen=True)
class Served:
    entry: Entry
    outcome: Outcome
    record: SourceRecord
    timings_ms: dict[str, float] = field(default_factory=dict)
    from_cache: bool = True  # Age is sent only for responses served from a tier


@dataclass(frozen=True)
class Produced:
    entry: Entry
    record: SourceRecord
    timings_ms: dict[str, float]
    stored: bool
    tier: str | None = None  # the tier that had the variant once the fetch told its key


class VariantService:
    def __init__(
        self,
        source: Source,
        tiers: TieredCache,
        records: RecordStore,
        metrics: Metrics,
        *,
        max_age_s: float,
        stale_if_error_s: float,
        admit: Callable[[int], None] | None = None,
        originals: Originals | None = None,
    ) -> None:
        """`admit`: raises when a new miss cannot be rendered now (pool full), before any
        source is read. `originals`: recently fetched originals to render more variants from."""
        self.source = source
        self.tiers = tiers
        self.records = records
        self.metrics = metrics
        self.max_age_s = max_age_s
        self.stale_if_error_s = stale_if_error_s
        self.admit = admit
        self.originals = originals or Originals(0)
        self._count_hit = metrics.hit
        self.misses: SingleFlight[str, Produced] = SingleFlight()
        self.fetches: SingleFlight[str, Fetched] = SingleFlight()
        self.revalidations: SingleFlight[str, SourceRecord] = SingleFlight()
        self._backoff: dict[str, float] = {}
        self._background: set[asyncio.Task[None]] = set()

    def fresh_entry(
        self, source_id: str, token: str, fmt: str
    ) -> tuple[Entry, SourceRecord] | None:
        """The common hit, found without awaiting anything: a fresh variant in this
        process's memory (what `serve` would answer as HIT-MEMORY; counted as that hit).
        None: let `serve` decide (disk, stale, revalidation, miss)."""
        record = self.records.get_now(source_id)
        # not FRESH (freshness.classify's first test, inlined: this runs on every hit)
        if record is None or time.time() - record.checked_at - record.max_age >= 0:
            return None
        entry = self.tiers.memory.get_now(variant_key(source_id, record.validator, token, fmt))
        if entry is None:
            return None
        self._count_hit("memory")
        return entry, record

    def fresh_in_memory(self, source_id: str, token: str, fmt: str) -> Served | None:
        """`fresh_entry` as a `Served`."""
        found = self.fresh_entry(source_id, token, fmt)
        return None if found is None else Served(found[0], HIT_MEMORY, found[1])

    async def serve(
        self, path: str, token: str, fmt: str, render: Renderer, *, stage: str | None = "transform"
    ) -> Served:
        """The cached or freshly made variant `token`/`fmt` of source `path`; `stage` names
        the render step in Server-Timing (None: too trivial to report)."""
        source_id = self.source.identity(path)
        record = await self.records.get(source_id)
        flight = flight_key(source_id, token, fmt)
        missed = None  # a key both tiers just answered "no" for
        if record is not None:
            key = variant_key(source_id, record.validator, token, fmt)
            hit = await self.tiers.lookup(key, self._admit_for(flight, stage))
            if hit is None:
                missed = key
            else:
                served = await self._from_cache(path, source_id, record, *hit)
                if served is not None:
                    return served
        try:
            admit = self._admit_for(flight, stage)  # asked again: a miss may have started since
            if admit is not None:
                admit(self.tiers.probing)
            produced, shared = await self.misses.run(
                flight,
                lambda: self._produce(path, source_id, token, fmt, render, stage, record, missed),
            )
        except BaseException:
            self.metrics.cache_misses.inc()  # refused, failed or cancelled: a miss all the same
            raise
        if produced.tier == "shared" and not shared:
            # a source new to this host, whose variant another host stored
            self.metrics.hit("shared")
            return Served(produced.entry, HIT_SHARED, produced.record, produced.timings_ms)
        self.metrics.cache_misses.inc()
        if shared:
            self.metrics.coalesced.inc()
            return Served(produced.entry, COALESCED, produced.record, from_cache=False)
        outcome = MISS if not produced.stored else Outcome("MISS", fwd="miss", stored=True)
        return Served(
            produced.entry, outcome, produced.record, produced.timings_ms, from_cache=False
        )

    def _admit_for(self, flight: str, stage: str | None) -> Callable[[int], None] | None:
        """The pool's admission for a miss of `flight`, given other reads in flight (for
        `TieredCache.lookup`); None when it would need no place of its own."""
        admit = self.admit
        if admit is None or stage is None or self.misses.running(flight):
            return None
        return lambda probing: admit(len(self.misses) + probing)

    async def _from_cache(
        self, path: str, source_id: str, record: SourceRecord, entry: Entry, tier: str
    ) -> Served | None:
        """Answer from a cached entry per its record's freshness; None = treat as a miss."""
        state = classify(record, time.time(), self.stale_if_error_s)
        if state is Freshness.FRESH:
            self.metrics.hit(tier)
            return Served(entry, hit_outcome(tier), record)
        if state is Freshness.STALE:
            self.refresh_in_background(path, source_id, record)
            self.metrics.stale_served.inc()
            return Served(entry, STALE_REVALIDATING, record)
        try:
            fresh = await self.revalidate(path, source_id, record)
        except SOURCE_DOWN as err:
            if state is Freshness.DEAD:
                raise
            self.metrics.stale_served.inc()
            return Served(entry, stale_if_error(err.status), record)
        if fresh.validator != record.validator:
            return None
        self.metrics.hit(tier)
        return Served(entry, revalidated(tier), fresh)

    async def _produce(
        self,
        path: str,
        source_id: str,
        token: str,
        fmt: str,
        render: Renderer,
        stage: str | None,
        known: SourceRecord | None,
        missed: str | None,
    ) -> Produced:
        started = time.perf_counter()
        fetched = self.kept_original(source_id, known)
        if fetched is not None and known is not None:
            record = known
        else:
            fetched, _ = await self.fetches.run(source_id, lambda: self._fetch(path, source_id))
            record = self.new_record(fetched.validators)
        origin_ms = (time.perf_counter() - started) * 1000
        key = variant_key(source_id, record.validator, token, fmt)
        # Known bytes whose record had been dropped, or made since under a new validator; not
        # asked again when `serve` has just missed this very key (a disk read saved per miss).
        cached = await self.tiers.get(key) if key != missed else None
        if cached is not None:
            return Produced(cached[0], record, {"origin": origin_ms}, stored=False, tier=cached[1])
        started = time.perf_counter()
        rendition = await render(fetched)
        render_ms = (time.perf_counter() - started) * 1000
        now = time.time()
        entry = Entry(
            body=rendition.body,
            content_type=rendition.content_type,
            etag=strong_etag(rendition.body),
            last_modified=fetched.validators.last_modified or now,
            stored_at=now,
            tag=path_tag(source_id),
        )
        stored = await self.tiers.set(key, entry)
        timings = {"origin": origin_ms, **({stage: render_ms} if stage else {})}
        return Produced(entry, record, timings, stored)

    def kept_original(self, source_id: str, record: SourceRecord | None) -> Fetched | None:
        """The original kept in memory, while `record` (whose validator it must carry) is fresh:
        the window in which the variants themselves are served without asking the source."""
        if record is None or classify(record, time.time(), 0.0) is not Freshness.FRESH:
            return None
        return self.originals.get(("img", source_id), record.validator, Fetched)

    async def _fetch(self, path: str, source_id: str) -> Fetched:
        started = time.perf_counter()
        try:
            fetched = await self.source.fetch(path)
        except SOURCE_DOWN:
            self.metrics.origin_errors.inc()
            raise
        finally:
            self.metrics.origin_seconds.observe(time.perf_counter() - started)
        await self.records.put(source_id, self.new_record(fetched.validators))
        self.originals.put(("img", source_id), fetched.validators.validator, fetched)
        return fetched

    def new_record(self, validators: Validators) -> SourceRecord:
        max_age = validators.max_age if validators.max_age is not None else self.max_age_s
        return SourceRecord(
            validator=validators.validator,
            checked_at=time.time(),
            max_age=max_age,
            last_modified=validators.last_modified,
            etag=validators.etag,
        )

    async def revalidate(self, path: str, source_id: str, record: SourceRecord) -> SourceRecord:
        """Ask the source about `record` once, however many requests want to know."""
        fresh, _ = await self.revalidations.run(
            source_id, lambda: self._revalidate(path, source_id, record)
        )
        return fresh

    async def _revalidate(self, path: str, source_id: str, record: SourceRecord) -> SourceRecord:
        started = time.perf_counter()
        try:
            validators = await self.source.revalidate(path, record)
        except NotFound:
            self.originals.discard(("img", source_id))
            await self.records.drop(source_id)  # deleted at the source: forget it
            raise
        except SOURCE_DOWN:
            self.metrics.origin_errors.inc()
            self._backoff[source_id] = time.monotonic() + RETRY_BACKOFF_S
            raise
        finally:
            self.metrics.origin_seconds.observe(time.perf_counter() - started)
        fresh = self.new_record(validators)
        await self.records.put(source_id, fresh)
        return fresh

    def refresh_in_background(self, path: str, source_id: str, record: SourceRecord) -> None:
        if self.revalidations.running(source_id):
            return
        if self._backoff.get(source_id, 0.0) > time.monotonic():
            return
        self._backoff.pop(source_id, None)
        task = asyncio.ensure_future(self._refresh(path, source_id, record))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _refresh(self, path: str, source_id: str, record: SourceRecord) -> None:
        try:
            await self.revalidate(path, source_id, record)
        except ImgcdnError as err:
            log.info("background revalidation of %s failed: %s", path, err)
        except Exception:
            log.exception("background revalidation of %s crashed", path)

    async def purge(self, path: str) -> int:
        """Drop every variant and the record of `path` (this process's memory + the disk)."""
        source_id = self.source.identity(path)
        self.originals.discard(("img", source_id))
        await self.records.drop(source_id)
        return await self.tiers.evict(path_tag(source_id))

    def forget_locally(self, path: str) -> int:
        """Drop this process's memory copies of `path` (another process purged the disk)."""
        source_id = self.source.identity(path)
        self.originals.discard(("img", source_id))
        self.records.forget_locally(source_id)
        return self.tiers.memory.evict_now(path_tag(source_id))

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.misses.close()
        await self.fetches.close()
        await self.revalidations.close()
