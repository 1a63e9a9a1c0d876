"""Prometheus metrics of one origin app (its own registry: no process-wide globals)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class OriginMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "imgcdn_origin_requests_total",
            "Origin API requests by route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.seconds = Histogram(
            "imgcdn_origin_request_seconds",
            "Origin API request duration by route template.",
            ["route"],
            registry=self.registry,
        )
        self.uploads = Counter(
            "imgcdn_origin_uploads_total",
            "Upload registrations by result (registered, or the refusal's code).",
            ["result"],
            registry=self.registry,
        )
        self.purges = Counter(
            "imgcdn_origin_purges_total",
            "Purge notifications sent to edges by result (ok, refused, failed).",
            ["result"],
            registry=self.registry,
        )

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route=route, status=str(status)).inc()
        self.seconds.labels(route=route).observe(seconds)

    def render(self) -> web.Response:
        response = web.Response(body=generate_latest(self.registry))
        response.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return response


def route_of(request: web.Request) -> str:
    """The route template (`/v1/photos/{photo_id}`), so labels stay few."""
    route = request.match_info.route
    resource = route.resource
    return resource.canonical if resource is not None else "unmatched"


def timer() -> float:
    return time.perf_counter()
