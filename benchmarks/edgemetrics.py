"""Read the edge's `/metrics` before and after a run: cache hits, misses and statuses.

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


@dataclass
class EdgeCounters:
    hits: dict[str, float] = field(default_factory=dict)  # tier -> count
    misses: float = 0.0
    coalesced: float = 0.0
    statuses: dict[str, float] = field(default_factory=dict)  # "route status" -> count

    def minus(self, before: EdgeCounters) -> EdgeCounters:
        return EdgeCounters(
            hits={k: v - before.hits.get(k, 0) for k, v in self.hits.items()},
            misses=self.misses - before.misses,
            coalesced=self.coalesced - before.coalesced,
            statuses={k: v - before.statuses.get(k, 0) for k, v in self.statuses.items()},
        )

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
        }


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
