"""What the edge knows about a source object, and how fresh that knowledge is. Pure.

Every source path has one `SourceRecord`: the validator its cached variants were made from and
when the source last confirmed it. Freshness is judged on the record, not per variant, so one
revalidation (a stat, or one conditional request) refreshes every size and format of a path.
"""

from __future__ import annotations

import enum
import json
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class SourceRecord:
    validator: str  # enters every variant key: ETag, Last-Modified, mtime+size or a body hash
    checked_at: float  # epoch seconds of the last fetch or successful revalidation
    max_age: float  # freshness lifetime: edge.cache.max_age_s, or the source's own max-age
    last_modified: float | None = None  # epoch seconds, from the source when it says
    etag: str | None = None  # the source's own ETag, sent back as If-None-Match

    def age(self, now: float) -> float:
        return max(0.0, now - self.checked_at)

    def ttl(self, now: float) -> float:
        """Seconds of freshness left; negative once stale (RFC 9211 `ttl`)."""
        return self.max_age - self.age(now)

    def encode(self) -> bytes:
        return json.dumps(asdict(self), separators=(",", ":")).encode("utf-8")

    @classmethod
    def decode(cls, data: bytes) -> SourceRecord:
        """Parse a stored record; raise ValueError on anything malformed."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or not isinstance(raw.get("validator"), str):
            raise ValueError("not a source record")
        return cls(
            validator=raw["validator"],
            checked_at=float(raw["checked_at"]),
            max_age=float(raw["max_age"]),
            last_modified=None if raw.get("last_modified") is None else float(raw["last_modified"]),
            etag=raw.get("etag") if isinstance(raw.get("etag"), str) else None,
        )


class Freshness(enum.Enum):
    FRESH = "fresh"  # serve from cache
    STALE = "stale"  # serve from cache now, revalidate in the background (stale-while-revalidate)
    EXPIRED = "expired"  # revalidate first; if the source fails, serve stale (stale-if-error)
    DEAD = "dead"  # revalidate first; past stale-if-error, a failing source is an error


def classify(record: SourceRecord, now: float, stale_if_error_s: float) -> Freshness:
    """Fresh for `max_age`; then served stale while revalidating for another `max_age`
    (the stale-while-revalidate window); stale-if-error covers `stale_if_error_s` past expiry."""
    past = now - record.checked_at - record.max_age
    if past < 0:
        return Freshness.FRESH
    if past < record.max_age:
        return Freshness.STALE
    if past < stale_if_error_s:
        return Freshness.EXPIRED
    return Freshness.DEAD


def parse_max_age(cache_control: str | None) -> float | None:
    """The freshness a source asks for in its Cache-Control: `s-maxage` over `max-age`;
    `no-cache`/`no-store`/`private` mean 0 (revalidate on every use). None when unsaid."""
    if not cache_control:
        return None
    directives: dict[str, str] = {}
    for part in cache_control.split(","):
        name, _, value = part.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if {"no-cache", "no-store", "private"} & directives.keys():
        return 0.0
    for name in ("s-maxage", "max-age"):
        value = directives.get(name, "")
        if value.isdigit():
            return float(value)
    return None
