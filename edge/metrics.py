"""Prometheus metrics of the edge (the names of DESIGN.md section 8), one registry per app.

With several edge processes (`edge.workers > 1`) the server sets PROMETHEUS_MULTIPROC_DIR
before any child imports prometheus_client; values then live in files there and `/metrics`
aggregates every process with a MultiProcessCollector built per scrape.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GC_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class Metrics:
    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    cache_hits: Counter
    cache_misses: Counter
    cache_bytes: Gauge
    cache_errors: Counter
    coalesced: Counter
    stale_served: Counter
    transform_seconds: Histogram
    transform_queue: Gauge
    pool_restarts: Counter
    origin_seconds: Histogram
    origin_errors: Counter
    gc_seconds: Histogram

    # The two calls of every request (`request_done`, `hit`) only add to these plain-Python
    # tallies, which `flush` moves into the Prometheus objects in bulk (before each scrape and
    # every `FLUSH_INTERVAL_S`, edge/status.py). Calling the objects per request cost 2.3 us a
    # hit in one process and 3.5-4.7 us in multiprocess mode (a lock and an mmap write per
    # value), 8-15 % of a memory hit; a tally costs 0.2 us (session 12).
    requests_tally: dict[tuple[str, int], list[float]] = field(default_factory=dict)
    hits_tally: dict[str, int] = field(default_factory=dict)

    def cache_error(self, kind: str) -> None:
        self.cache_errors.labels(kind=kind).inc()

    def request_done(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency under `route`."""
        try:
            tally = self.requests_tally[(route, status)]
        except KeyError:
            tally = self.requests_tally[(route, status)] = new_tally()
        tally[bisect_left(TIME_BUCKETS, seconds)] += 1  # the first bucket with seconds <= le
        tally[SUM] += seconds

    def hit(self, tier: str) -> None:
        """Count one response served from `tier` (memory | disk | shared)."""
        tallies = self.hits_tally
        tallies[tier] = tallies.get(tier, 0) + 1

    def flush(self) -> None:
        """Add the tallies to the Prometheus objects and start them again from zero."""
        for (route, status), tally in self.requests_tally.items():
            histogram = self.request_seconds.labels(route=route)
            # observe() takes one value at a time; its values (`_buckets`, one per bound and
            # +Inf, and `_sum`) have been these since prometheus_client 0.4, and a test
            # compares what a flush exports with what observe() would have
            for bucket, n in zip(histogram._buckets, tally, strict=False):
                if n:
                    bucket.inc(n)
            histogram._sum.inc(tally[SUM])
            self.requests.labels(route=route, status=str(status)).inc(sum(tally[:SUM]))
        self.requests_tally.clear()
        for tier, n in self.hits_tally.items():
            self.cache_hits.labels(tier=tier).inc(n)
        self.hits_tally.clear()


SUM = len(TIME_BUCKETS) + 1  # a tally: a count per bucket (the last +Inf), then the sum


def new_tally() -> list[float]:
    return [0.0] * (SUM + 1)


def create_metrics() -> Metrics:
    """Fresh metric objects in a fresh registry, so several apps can live in one process."""
    r = CollectorRegistry()
    p = "imgcdn_edge_"
    return Metrics(
        registry=r,
        requests=Counter(
            p + "requests_total", "Requests answered", ["route", "status"], registry=r
        ),
        request_seconds=Histogram(
            p + "request_seconds", "Request latency", ["route"], buckets=TIME_BUCKETS, registry=r
        ),
        cache_hits=Counter(
            p + "cache_hits_total", "Responses served from a tier", ["tier"], registry=r
        ),
        cache_misses=Counter(p + "cache_misses_total", "Requests no tier could answer", registry=r),
        # memory: this process's LRU (summed over processes); disk: reported by one process only.
        cache_bytes=Gauge(
            p + "cache_bytes",
            "Bytes held per tier",
            ["tier"],
            multiprocess_mode="livesum",
            registry=r,
        ),
        cache_errors=Counter(
            p + "cache_errors_total",
            "Cache tier failures (open/read/write/corrupt; shared-*: the S3 result store)",
            ["kind"],
            registry=r,
        ),
        coalesced=Counter(
            p + "coalesced_total", "Requests that waited for an identical miss", registry=r
        ),
        stale_served=Counter(p + "stale_served_total", "Stale responses served", registry=r),
        transform_seconds=Histogram(
            p + "transform_seconds",
            "Transform latency (pool round trip)",
            buckets=TIME_BUCKETS,
            registry=r,
        ),
        transform_queue=Gauge(
            p + "transform_queue",
            "Transforms waiting or running",
            multiprocess_mode="livesum",
            registry=r,
        ),
        pool_restarts=Counter(p + "pool_restarts_total", "Transform workers replaced", registry=r),
        origin_seconds=Histogram(
            p + "origin_seconds", "Source/origin fetch latency", buckets=TIME_BUCKETS, registry=r
        ),
        origin_errors=Counter(
            p + "origin_errors_total", "Failed source/origin fetches", registry=r
        ),
        gc_seconds=Histogram(
            p + "gc_seconds",
            "Cyclic GC collections (the loop stands still meanwhile), by generation",
            ["generation"],
            buckets=GC_BUCKETS,
            registry=r,
        ),
    )


GcHook = Callable[[str, dict[str, int]], None]


def gc_timer(metrics: Metrics) -> GcHook:
    """A `gc.callbacks` hook that times each collection into `imgcdn_edge_gc_seconds`. A full
    collection walks every object the GC tracks; over ~200k of them it stopped the loop for
    170-240 ms, which is what a latency tail made of it looks like."""
    by_generation = [metrics.gc_seconds.labels(generation=str(g)) for g in range(3)]
    started = 0.0

    def hook(phase: str, info: dict[str, int]) -> None:
        nonlocal started
        if phase == "start":
            started = time.perf_counter()
        else:
            by_generation[info["generation"]].observe(time.perf_counter() - started)

    return hook


def render_metrics(metrics: Metrics) -> bytes:
    """Prometheus text: this app's registry, or every process's in multiprocess mode."""
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
        return generate_latest(registry)
    return generate_latest(metrics.registry)
