"""The overload benchmark's pure part: latency split by status, the verdict, the table."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from benchmarks.overload import parse_args
from benchmarks.overloadstats import (
    Tally,
    cpu_by_role,
    latency_summary,
    notes,
    problems,
    queue_value,
    summarize,
    summarize_run,
    table,
)
from benchmarks.procstats import ProcPeak


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([], (math.nan,) * 4),
        ([7.0], (7.0, 7.0, 7.0, 7.0)),
        ([float(i) for i in range(1, 101)], (50.0, 90.0, 99.0, 100.0)),
        ([float(i) for i in range(1000, 0, -1)], (500.0, 900.0, 990.0, 1000.0)),
        ([1.0] * 98 + [60.0, 500.0], (1.0, 1.0, 60.0, 500.0)),
    ],
)
def test_latency_summary_is_nearest_rank(samples: list[float], expected: tuple[float, ...]) -> None:
    got = latency_summary(samples)
    assert list(got) == ["p50_ms", "p90_ms", "p99_ms", "max_ms"]
    for value, want in zip(got.values(), expected, strict=True):
        assert (math.isnan(value) and math.isnan(want)) or value == want


def tally(
    ok: int = 10, refused: int = 30, missing: int = 0, queue: tuple[float, ...] = (3.0, 66.0)
) -> Tally:
    return Tally(
        latencies={
            200: [100.0 + i for i in range(ok)],
            503: [float(i + 1) for i in range(refused)],
            504: [10_000.0],
        },
        no_retry_after=missing,
        errors=Counter({"error:ServerDisconnectedError": 2}),
        queue=list(queue),
    )


def test_a_run_splits_statuses_and_counts_the_rest() -> None:
    r = summarize_run(tally(), duration_s=2.0, capacity=66)
    assert r["requests"] == 10 + 30 + 1 + 2
    assert r["rps"] == pytest.approx(43 / 2.0)
    assert (r["ok"], r["overloaded"]) == (10, 30)
    assert r["ok_share"] == pytest.approx(10 / 43)
    assert r["overloaded_share"] == pytest.approx(30 / 43)
    assert r["latency_503"] == {"p50_ms": 15.0, "p90_ms": 27.0, "p99_ms": 30.0, "max_ms": 30.0}
    assert r["latency_200"]["max_ms"] == 109.0
    assert r["other"] == {"504": 1, "error:ServerDisconnectedError": 2}
    assert (r["queue_max"], r["queue_samples"], r["capacity"]) == (66.0, 2, 66)


def test_an_empty_run_has_no_shares_and_no_queue() -> None:
    r = summarize_run(Tally(), duration_s=1.0, capacity=10)
    assert r["requests"] == 0 and math.isnan(r["ok_share"]) and r["queue_max"] is None


@pytest.mark.parametrize(
    ("missing", "queue", "expected"),
    [
        (0, (0.0, 66.0), []),  # full to the brim is allowed
        (3, (66.0,), ["run 1: 3 503s without Retry-After"]),
        (0, (40.0, 67.0), ["run 1: queue reached 67 > capacity 66"]),
        (
            1,
            (80.0,),
            ["run 1: 1 503s without Retry-After", "run 1: queue reached 80 > capacity 66"],
        ),
        (0, (), []),  # no samples: nothing proven broken (a note says so)
    ],
)
def test_problems_are_missing_retry_after_and_a_queue_past_capacity(
    missing: int, queue: tuple[float, ...], expected: list[str]
) -> None:
    run = summarize_run(tally(missing=missing, queue=queue), 1.0, 66)
    assert problems([run]) == expected


def test_notes_judge_the_50ms_goal_on_the_worst_run_and_flag_weak_runs() -> None:
    fast = summarize_run(tally(refused=40), 1.0, 66)  # 503 p99 40 ms
    slow = summarize_run(tally(refused=60), 1.0, 66)  # 503 p99 60 ms
    assert notes([fast])[-1] == "503 p99 40.0 ms (worst run): under the 50 ms goal"
    assert notes([fast, slow])[-1] == "503 p99 60.0 ms (worst run): OVER the 50 ms goal"
    idle = summarize_run(tally(refused=0, queue=()), 1.0, 66)
    idle["ok_cached"] = 4
    assert notes([idle]) == [
        "run 1: no 503 at all: the edge was not overloaded (more --connections)",
        "run 1: 4 200s came from a cache, not a transform",
        "run 1: imgcdn_edge_transform_queue not seen in /metrics: queue bound unchecked",
    ]


def test_summary_takes_medians_over_runs_and_totals_what_must_be_zero() -> None:
    runs = [
        summarize_run(tally(refused=10, missing=1, queue=(50.0,)), 1.0, 66),
        summarize_run(tally(refused=30, queue=(66.0,)), 1.0, 66),
        summarize_run(tally(refused=20, queue=(60.0,)), 1.0, 66),
    ]
    s = summarize(runs)
    assert s["runs"] == 3
    assert s["latency_503"]["max_ms"] == {
        "median": 20.0,
        "min": 10.0,
        "max": 30.0,
        "runs": (10.0, 30.0, 20.0),
    }
    assert s["rps"]["median"] == 33.0  # 10 + 20 + 1 + 2 requests in 1 s
    assert (s["no_retry_after"], s["queue_max"], s["capacity"]) == (1, 66.0, 66)
    assert s["problems"] == ["run 1: 1 503s without Retry-After"]


def test_table_has_a_row_per_run_and_a_median_row_for_several() -> None:
    one = [summarize_run(tally(), 2.0, 66)]
    text = table(one, summarize(one))
    lines = text.splitlines()
    assert len(lines) == 3 and lines[0].count("|") == lines[2].count("|")
    assert "| 30 (70%) |" in lines[2] and "15.0 / 27.0 / 30.0 / 30.0" in lines[2]
    assert "504: 1, error:ServerDisconnectedError: 2" in lines[2] and "66 / 66" in lines[2]
    two = [*one, summarize_run(tally(refused=20), 2.0, 66)]
    lines = table(two, summarize(two)).splitlines()
    assert len(lines) == 5 and lines[-1].startswith("| median (min-max) |")
    assert lines[-1].count("|") == lines[0].count("|")


METRICS_PAGE = """\
# HELP imgcdn_edge_transform_queue Transforms waiting or running
# TYPE imgcdn_edge_transform_queue gauge
imgcdn_edge_transform_queue 41.0
# HELP imgcdn_edge_pool_restarts_total Transform workers replaced
# TYPE imgcdn_edge_pool_restarts_total counter
imgcdn_edge_pool_restarts_total 0.0
"""


def test_queue_value_reads_the_gauge_or_says_it_is_absent() -> None:
    assert queue_value(METRICS_PAGE) == 41.0
    per_process = METRICS_PAGE.replace(
        "imgcdn_edge_transform_queue 41.0",
        'imgcdn_edge_transform_queue{pid="1"} 30.0\nimgcdn_edge_transform_queue{pid="2"} 5.0',
    )
    assert queue_value(per_process) == 35.0
    assert queue_value(METRICS_PAGE.split("# HELP imgcdn_edge_pool")[0].replace("41.0", "0")) == 0
    assert queue_value("imgcdn_edge_pool_restarts_total 0.0\n") is None


def test_cpu_by_role_sums_each_role_over_the_window() -> None:
    procs = [
        ProcPeak(1, "edge", "imgcdn edge", "edge", cpu_s=12.0, cpu_s_first=10.0),
        ProcPeak(2, "edge", "w", "transform worker", cpu_s=5.0, cpu_s_first=1.0),
        ProcPeak(3, "edge", "w", "transform worker", cpu_s=3.0, cpu_s_first=0.0),
    ]
    assert cpu_by_role(procs, 4.0) == {"edge": 50.0, "transform worker": 175.0}


def test_default_connections_are_left_to_the_capacity_and_bad_options_refused() -> None:
    args = parse_args(["--duration", "8"])
    assert args.connections is None and args.max_queue == 64 and args.duration == 8.0
    for bad in (["--connections", "0"], ["--runs", "0"], ["--max-queue", "-1"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_config_overrides_are_parsed_and_checked() -> None:
    args = parse_args(["--set", "edge.transforms.nice=0", "--set", "edge.cache.disk_bytes=0"])
    assert args.overrides == {"edge.transforms.nice": 0, "edge.cache.disk_bytes": 0}
    with pytest.raises(SystemExit):
        parse_args(["--set", "nice=0"])
