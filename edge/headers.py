"""Response headers for cached images (DESIGN.md section 3). Pure: strings in, strings out.

X-Cache and its RFC 9211 `Cache-Status` twin:
  HIT-MEMORY  imgcdn; hit; ttl=N; detail=memory
  HIT-DISK    imgcdn; hit; ttl=N; detail=disk
  HIT-SHARED  imgcdn; hit; ttl=N; detail=shared   (the S3 result store of all edge hosts)
  MISS        imgcdn; fwd=miss; stored
  COALESCED   imgcdn; fwd=miss; collapsed
  STALE       imgcdn; fwd=stale; ttl=-N; detail=stale-while-revalidate      (refresh running)
  STALE       imgcdn; fwd=stale; fwd-status=502; ttl=-N; detail=stale-if-error (source failed)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, replace
from email.utils import formatdate

CACHE_NAME = "imgcdn"


@dataclass(frozen=True)
class Outcome:
    """How a response was produced, in the words of X-Cache and RFC 9211 Cache-Status."""

    x_cache: str
    hit: bool = False
    fwd: str | None = None  # miss | stale
    fwd_status: int | None = None
    stored: bool = False
    collapsed: bool = False
    detail: str | None = None


HIT_MEMORY = Outcome("HIT-MEMORY", hit=True, detail="memory")
HIT_DISK = Outcome("HIT-DISK", hit=True, detail="disk")
HIT_SHARED = Outcome("HIT-SHARED", hit=True, detail="shared")
MISS = Outcome("MISS", fwd="miss")
COALESCED = Outcome("COALESCED", fwd="miss", collapsed=True)
STALE_REVALIDATING = Outcome("STALE", fwd="stale", detail="stale-while-revalidate")


def hit_outcome(tier: str) -> Outcome:
    """The hit of tier `tier` (memory | disk | shared, as `CacheTier.name`)."""
    if tier == "memory":
        return HIT_MEMORY
    return HIT_SHARED if tier == "shared" else HIT_DISK


def stale_if_error(status: int) -> Outcome:
    return Outcome("STALE", fwd="stale", fwd_status=status, detail="stale-if-error")


def revalidated(tier: str) -> Outcome:
    """A hit confirmed by the source (304 or same mtime) before answering."""
    return replace(hit_outcome(tier), hit=False, fwd="stale", fwd_status=304)


def cache_status(outcome: Outcome, ttl: float | None) -> str:
    parts = [CACHE_NAME]
    if outcome.hit:
        parts.append("hit")
    if outcome.fwd:
        parts.append(f"fwd={outcome.fwd}")
    if outcome.fwd_status is not None:
        parts.append(f"fwd-status={outcome.fwd_status}")
    if ttl is not None and outcome.fwd != "miss":
        parts.append(f"ttl={int(ttl)}")
    if outcome.stored:
        parts.append("stored")
    if outcome.collapsed:
        parts.append("collapsed")
    if outcome.detail:
        parts.append(f"detail={outcome.detail}")
    return "; ".join(parts)


def cache_control(max_age: float, stale_while_revalidate: float, stale_if_error: float) -> str:
    directives = [f"public, max-age={int(max_age)}"]
    if stale_while_revalidate > 0:
        directives.append(f"stale-while-revalidate={int(stale_while_revalidate)}")
    if stale_if_error > 0:
        directives.append(f"stale-if-error={int(stale_if_error)}")
    return ", ".join(directives)


def strong_etag(body: bytes) -> str:
    """A strong validator from the bytes themselves: same bytes, same ETag, on every edge."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against a comma-separated list, or `*`."""
    if not if_none_match:
        return False
    ours = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == ours:
            return True
    return False


def http_date(epoch: float) -> str:
    return formatdate(epoch, usegmt=True)


def server_timing(durations_ms: Mapping[str, float]) -> str:
    """`origin;dur=3.1, transform;dur=12.0` (milliseconds, one decimal)."""
    return ", ".join(f"{name};dur={ms:.1f}" for name, ms in durations_ms.items())


@dataclass(frozen=True)
class ImageMeta:
    """The parts of a cached image that headers are built from."""

    content_type: str
    etag: str
    last_modified: float


def image_headers(
    meta: ImageMeta,
    *,
    cache_control_value: str,
    vary_accept: bool,
    outcome: Outcome,
    age: float | None,
    ttl: float | None,
    timings_ms: Mapping[str, float] | None = None,
) -> dict[str, str]:
    """Every header of an image response except Content-Length (set from the body)."""
    headers = {
        "Content-Type": meta.content_type,
        "ETag": meta.etag,
        "Last-Modified": http_date(meta.last_modified),
        "Cache-Control": cache_control_value,
        "X-Cache": outcome.x_cache,
        "Cache-Status": cache_status(outcome, ttl),
        # /raw passes originals through: a polyglot (JPEG header on a ZIP/HTML) stays an image.
        "X-Content-Type-Options": "nosniff",
    }
    if vary_accept:
        headers["Vary"] = "Accept"
    if age is not None:
        headers["Age"] = str(int(age))
    if timings_ms:
        headers["Server-Timing"] = server_timing(timings_ms)
    return headers
