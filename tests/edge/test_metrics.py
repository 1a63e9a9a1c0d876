"""The per-request tallies of edge/metrics.py export what per-request Prometheus calls would."""

from __future__ import annotations

import re

from prometheus_client import generate_latest

from edge.metrics import TIME_BUCKETS, Metrics, create_metrics

# a bucket's own bound, just past it, zero, the first and past the last bound (+Inf)
LATENCIES = (0.0, 0.001, 0.0010001, 0.0004, 0.0025, 0.7, 30.0, 31.5, *TIME_BUCKETS)


def exported(metrics: Metrics) -> str:
    text = generate_latest(metrics.registry).decode()
    return re.sub(r"(?m)^.*_created.*\n", "", text)  # creation times differ between registries


def test_a_flush_exports_what_observing_each_request_would() -> None:
    tallied, direct = create_metrics(), create_metrics()
    for i, seconds in enumerate(LATENCIES * 3):
        route, status = ("img", 200) if i % 3 else ("avatar", 404)
        tallied.request_done(route, status, seconds)
        direct.requests.labels(route=route, status=str(status)).inc()
        direct.request_seconds.labels(route=route).observe(seconds)
        tier = ("memory", "disk", "shared")[i % 3]
        tallied.hit(tier)
        direct.cache_hits.labels(tier=tier).inc()
    before = exported(tallied)
    assert "imgcdn_edge_requests_total{" not in before  # tallied, not yet exported
    tallied.flush()
    assert exported(tallied) == exported(direct)
    img_count = 2 * len(LATENCIES)  # two of every three
    assert f'imgcdn_edge_request_seconds_bucket{{le="+Inf",route="img"}} {img_count}.0' in exported(
        tallied
    )
    tallied.flush()  # the tallies start again from zero: nothing is added twice
    assert exported(tallied) == exported(direct)
    tallied.request_done("img", 200, 0.002)
    tallied.flush()
    direct.requests.labels(route="img", status="200").inc()
    direct.request_seconds.labels(route="img").observe(0.002)
    assert exported(tallied) == exported(direct)
