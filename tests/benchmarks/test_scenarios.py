"""Pure parts of the benchmark suite: URL sequences, the Zipf mix, statistics, metrics parsing."""

from __future__ import annotations

import gc
import random
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Counter as PromCounter

from benchmarks import scenarios as sc
from benchmarks.edgemetrics import EdgeCounters, parse_metrics
from benchmarks.measure import Measurement, percentile_curve, spread
from edge.metrics import create_metrics, gc_timer


def test_miss_urls_are_distinct_and_span_every_width_quickly() -> None:
    paths = [sc.miss_path(n) for n in range(20_000)]
    assert len(set(paths)) == len(paths)
    first = [sc.miss_params(n) for n in range(600)]
    widths = [w for _, w, _ in first]
    assert min(widths) < 130 and max(widths) > 570  # a few seconds of load see the whole range
    assert 300 < sum(widths) / len(widths) < 400
    assert {s for s, _, _ in first} == set(sc.MID_SOURCES)
    # h never binds: it stays above any output height of these sources at w <= 600
    assert all(h >= 1200 for _, _, h in (sc.miss_params(n) for n in range(0, 8_000_000, 997)))


def test_miss_baseline_jobs_follow_the_same_sequence() -> None:
    jobs = sc.miss_jobs(12)
    for n, job in enumerate(jobs):
        src, width, _ = sc.miss_params(n)
        assert (job.source, job.width, job.height, job.crop) == (src, width, None, False)


def test_zipf_mix_popularity_and_real_users() -> None:
    real = [f"{i:032x}" for i in range(3)]
    mix = sc.ZipfMix(real, hashes=1000)
    assert mix.hashes[:3] == real and len(set(mix.hashes)) == 1000
    rng = random.Random(7)
    draws = Counter(mix.draw(rng)[0] for _ in range(50_000))
    p1 = 1 / sum((r + 1) ** -1.1 for r in range(1000))
    assert draws[0] / 50_000 == pytest.approx(p1, rel=0.05)
    assert draws[0] > draws[1] > draws[9]  # popularity falls with rank
    assert draws[1] / draws[0] == pytest.approx(2**-1.1, rel=0.1)
    assert mix.real_share() == pytest.approx(sum((r + 1) ** -1.1 for r in range(3)) * p1)
    paths = mix.paths(seed=1, count=100)
    assert paths == mix.paths(seed=1, count=100) and paths != mix.paths(seed=2, count=100)
    assert all(p.startswith("/avatar/") and "d=identicon" in p for p in paths)
    assert len(mix.all_paths()) == 1000 * len(sc.AVATAR_SIZES)


def test_zipf_mean_body_weights_by_popularity() -> None:
    mix = sc.ZipfMix([], hashes=2, sizes=(10,))
    top, second = mix.all_paths()
    w0, w1 = 1.0, 2**-1.1
    expect = (w0 * 100 + w1 * 300) / (w0 + w1)
    assert mix.mean_body({top: 100, second: 300}) == pytest.approx(expect)
    assert mix.mean_body({}) == 0.0


def test_jpeg_size_reads_the_sof_marker(sample_bytes) -> None:
    assert sc.jpeg_size(sample_bytes("coffee.jpg")) == (1024, 683)
    assert sc.jpeg_size(sample_bytes("static10k.jpg")) == (200, 200)
    assert sc.jpeg_size(sample_bytes("alpha.png")) is None
    assert sc.jpeg_size(b"\xff\xd8\xff") is None


def test_percentiles_and_spread() -> None:
    samples = [float(i) for i in range(1, 101)]  # 1..100 ms
    curve = percentile_curve(samples, (0, 50, 90, 99, 100))
    assert curve == [(0, 1.0), (50, 50.0), (90, 90.0), (99, 99.0), (100, 100.0)]
    m = Measurement("builtin", 1, 2.0, 100, curve=curve)
    assert m.rps == 50.0
    assert m.latency(95) == pytest.approx(95.0)  # interpolated between 90 and 99
    assert percentile_curve([]) == []
    s = spread([3.0, 1.0, 2.0])
    assert (s.median, s.low, s.high) == (2.0, 1.0, 3.0)


def test_parse_edge_metrics_from_a_real_registry() -> None:
    registry = CollectorRegistry()
    hits = PromCounter("imgcdn_edge_cache_hits", "hits", ["tier"], registry=registry)
    misses = PromCounter("imgcdn_edge_cache_misses", "misses", registry=registry)
    requests = PromCounter("imgcdn_edge_requests", "reqs", ["route", "status"], registry=registry)
    hits.labels("memory").inc(5)
    before = parse_metrics(generate_latest(registry).decode())
    hits.labels("memory").inc(90)
    hits.labels("disk").inc(5)
    misses.inc(25)
    requests.labels("img", "200").inc(125)
    delta = parse_metrics(generate_latest(registry).decode()).minus(before)
    assert delta.hits == {"memory": 90, "disk": 5}
    assert delta.misses == 25
    assert delta.hit_ratio == pytest.approx(95 / 120)
    assert delta.statuses["img 200"] == 125


def test_full_gc_collections_are_read_from_the_edge_metrics() -> None:
    metrics = create_metrics()
    hook = gc_timer(metrics)
    before = parse_metrics(generate_latest(metrics.registry).decode())
    gc.callbacks.append(hook)
    try:
        gc.collect()
        gc.collect()
    finally:
        gc.callbacks.remove(hook)
    delta = parse_metrics(generate_latest(metrics.registry).decode()).minus(before)
    assert delta.gc_count["2"] == 2
    assert delta.gc_seconds["2"] > 0
    assert delta.full_gc_text().startswith("full GC 2 x ")
    assert delta.to_json()["gc_by_generation"]["2"]["collections"] == 2
    assert EdgeCounters().full_gc_text() == ""
