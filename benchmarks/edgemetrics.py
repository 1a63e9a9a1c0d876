"""Read the edge's `/metrics` before and after a run: cache hits, misses, statuses and the
cyclic GC's collections (`imgcdn_edge_gc_seconds`: each one stops the loop).

Hit ratio = delta hits (all tiers) / (delta hits + delta misses), from
`imgcdn_edge_cache_hits_total{tier}` and `imgcdn_edge_cache_misses_total`. With several edge
processes the edge aggregates them (prometheus multiprocess mode), so one scrape sees all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

HITS = "imgcdn_edge_cache_hits_total"
MISSES = "imgcdn_edge_cache_misses_total"
REQUESTS = "imgcdn_edge_requests_total"
COALESCED = "imgcdn_edge_coalesced_total"
GC_COUNT = "imgcdn_edge_gc_seconds_count"
GC_SUM = "imgcdn_edge_gc_seconds_sum"


@dataclass
class EdgeCounters:
    hits: dict[str, float] = field(default_factory=dict)  # tier -> count
    misses: float = 0.0
    coalesced: float = 0.0
    statuses: dict[str, float] = field(default_factory=dict)  # "route status" -> count
    gc_count: dict[str, float] = field(default_factory=dict)  # generation -> collections
    gc_seconds: dict[str, float] = field(default_factory=dict)  # generation -> seconds in them

    def minus(self, before: EdgeCounters) -> EdgeCounters:
        return EdgeCounters(
            hits=minus(self.hits, before.hits),
            misses=self.misses - before.misses,
            coalesced=self.coalesced - before.coalesced,
            statuses=minus(self.statuses, before.statuses),
            gc_count=minus(self.gc_count, before.gc_count),
            gc_seconds=minus(self.gc_seconds, before.gc_seconds),
        )

    def full_gc_text(self) -> str:
        """ "full GC 2 x 45 ms" for the generation-2 collections counted, "" when none."""
        count = self.gc_count.get("2", 0.0)
        if count < 1:
            return ""
        return f"full GC {count:.0f} x {self.gc_seconds.get('2', 0.0) / count * 1000:.0f} ms"

    @property
    def hit_ratio(self) -> float:
        hits = sum(self.hits.values())
        total = hits + self.misses
        return hits / total if total > 0 else math.nan

    def to_json(self) -> dict[str, object]:
        return {
            "hits_by_tier": {k: int(v) for k, v in sorted(self.hits.items()) if v},
            "misses": int(self.misses),
            "coalesced": int(self.coalesced),
            "hit_ratio": None if math.isnan(self.hit_ratio) else round(self.hit_ratio, 4),
            "requests_by_route_status": {k: int(v) for k, v in sorted(self.statuses.items()) if v},
            "gc_by_generation": {
                k: {"collections": int(v), "seconds": round(self.gc_seconds.get(k, 0.0), 4)}
                for k, v in sorted(self.gc_count.items())
            },
        }


def minus(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: v - before.get(k, 0) for k, v in after.items()}


def sample_sum(
    text: str, name: str, keep: Callable[[dict[str, str]], bool] = lambda labels: True
) -> float | None:
    """The sum of a /metrics page's samples called `name` whose labels `keep` accepts (over
    every process in multiprocess mode); None when there is none."""
    values = [
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and keep(sample.labels)
    ]
    return sum(values) if values else None


def parse_metrics(text: str) -> EdgeCounters:
    counters = EdgeCounters()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == HITS:
                tier = sample.labels.get("tier", "?")
                counters.hits[tier] = counters.hits.get(tier, 0.0) + sample.value
            elif sample.name == MISSES:
                counters.misses += sample.value
            elif sample.name == COALESCED:
                counters.coalesced += sample.value
            elif sample.name in (GC_COUNT, GC_SUM):
                into = counters.gc_count if sample.name == GC_COUNT else counters.gc_seconds
                generation = sample.labels.get("generation", "?")
                into[generation] = into.get(generation, 0.0) + sample.value
            elif sample.name == REQUESTS:
                key = f"{sample.labels.get('route', '?')} {sample.labels.get('status', '?')}"
                counters.statuses[key] = counters.statuses.get(key, 0.0) + sample.value
    return counters


async def scrape(edge_url: str) -> EdgeCounters | None:
    """The edge's counters now, or None when it has no readable /metrics."""
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.get(edge_url.rstrip("/") + "/metrics") as resp,
        ):
            if resp.status != 200:
                return None
            return parse_metrics(await resp.text())
    except (aiohttp.ClientError, ValueError):
        return None
