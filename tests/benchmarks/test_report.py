"""Results from finished runs: the summary's medians and ratios, the table, JSON and charts."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.edgemetrics import EdgeCounters
from benchmarks.measure import Measurement
from benchmarks.report import summarize, table, write_json
from benchmarks.runner import RunResult
from benchmarks.targets import Settings


def fake_run(index: int, rps: float, base: float) -> RunResult:
    curve = [(0.0, 0.5), (50.0, 1.0 + index), (90.0, 2.0), (99.0, 4.0), (100.0, 9.0)]
    m = Measurement("wrk", 32, 10.0, int(rps * 10), statuses={"200": int(rps * 10)}, curve=curve)
    return RunResult(
        index,
        m,
        "rps",
        m.rps,
        EdgeCounters(hits={"memory": 90.0}, misses=10.0),
        peak_rss={"edge": 150 * 2**20},
        cpu_ms_per_request={"edge": 0.2},
        noise={"steal_pct": 0.0, "irq_pct": 3.0, "other_pct": 1.0},
        baseline={
            "kind": "aiohttp",
            "label": "bare",
            "value": base,
            "unit": "rps",
            "measurement": Measurement("wrk", 32, 10.0, int(base * 10), curve=curve).to_json(),
        },
    )


def test_summary_takes_medians_and_per_run_ratios() -> None:
    runs = [fake_run(0, 1000, 2000), fake_run(1, 3000, 4000), fake_run(2, 2000, 8000)]
    s = summarize(Settings("hit", runs=3), runs)
    assert s["rps"]["median"] == 2000 and (s["rps"]["min"], s["rps"]["max"]) == (1000, 3000)
    assert s["ratio"]["runs"] == (0.5, 0.75, 0.25) and s["ratio"]["median"] == 0.5
    assert s["p50_ms"]["median"] == 2.0
    assert s["hit_ratio"]["median"] == pytest.approx(0.9)
    assert s["peak_rss_mb"] == {"edge": 150.0}
    text = table([s])
    assert "| hit | wrk -c32 | 2000 (1000-3000) | 0.50 (0.25-0.75) |" in text
    assert "0.900 (0.900-0.900)" in text
    pipelined = summarize(Settings("hit", runs=3, pipeline=8), runs)
    assert pipelined["pipeline"] == 8
    assert "| hit | wrk -c32 pipelined x8 | 2000 (1000-3000) |" in table([pipelined])


def test_pipeline_is_for_the_hit_scenario_with_wrk() -> None:
    from benchmarks.load import parse_args

    assert parse_args(["--scenario", "hit", "--pipeline", "8"]).pipeline == 8
    assert parse_args(["--scenario", "miss"]).pipeline == 1
    for bad in (
        ["--scenario", "hit", "--pipeline", "0"],
        ["--scenario", "miss", "--pipeline", "8"],
        ["--scenario", "all", "--pipeline", "8"],
        ["--scenario", "hit", "--pipeline", "8", "--paced", "half"],
        ["--scenario", "hit", "--pipeline", "8", "--generator", "builtin"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_json_and_charts_are_written(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.chart import plot_scenario, plot_summary

    runs = [fake_run(0, 1000, 2000), fake_run(1, 1500, 2500)]
    data = write_json(tmp_path, Settings("hit", runs=2), runs, "python -m benchmarks.load")
    text = (tmp_path / "hit.json").read_text()
    saved = json.loads(text, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert saved["summary"]["rps"]["median"] == 1250
    assert saved["runs"][1]["baseline"]["value"] == 2500
    assert saved["machine"]["cpus"] >= 1
    plot_scenario(data, tmp_path / "hit.png")
    assert plot_summary(tmp_path, tmp_path / "summary.png") == ["hit"]
    for name in ("hit.png", "summary.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.filterwarnings("error::UserWarning")  # e.g. a note drawn off the axes
def test_charts_of_a_pipelined_run_without_latencies(tmp_path) -> None:
    pytest.importorskip("matplotlib")
    from benchmarks.chart import plot_scenario, plot_summary

    runs = [fake_run(0, 1000, 2000), fake_run(1, 1500, 2500)]
    for run in runs:  # as `run_wrk` reports a pipelined run: no latency curve
        run.measurement.curve = []
        assert run.baseline is not None
        run.baseline["measurement"]["curve"] = []
    data = write_json(
        tmp_path, Settings("hit", runs=2, pipeline=8), runs, "python -m benchmarks.load"
    )
    plot_scenario(data, tmp_path / "hit.png")
    assert plot_summary(tmp_path, tmp_path / "summary.png") == ["hit"]
    for name in ("hit.png", "summary.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_hit_is_also_compared_with_the_handler_sending_the_same_headers() -> None:
    runs = [fake_run(0, 1000, 2000), fake_run(1, 3000, 4000)]
    for run, value in zip(runs, (1250.0, 3750.0), strict=True):
        run.like_baseline = {
            "label": "bare + headers",
            "like": "with the same headers",
            "value": value,
            "unit": "rps",
        }
    s = summarize(Settings("hit", runs=2), runs)
    assert s["like_ratio"]["runs"] == (0.8, 0.8)
    assert s["like_baseline"]["value"]["median"] == 2500
    line = table([s]).splitlines()[2]
    assert "0.62 (0.50-0.75); 0.80 (0.80-0.80) with the same headers" in line
    assert "2500 (1250-3750) rps: bare + headers" in line
    without = summarize(Settings("hit", runs=1), [fake_run(0, 1000, 2000)])
    assert "like_ratio" not in without and "same headers" not in table([without])


def test_a_run_that_mostly_failed_gets_no_ratio() -> None:
    from benchmarks.measure import failed_text, too_many_errors
    from benchmarks.runner import compared_value

    edge = EdgeCounters(hits={"memory": 5.0}, misses=400.0)
    fine = Measurement("wrk", 32, 10.0, 1000, non_2xx_3xx=10)  # 1 %: still a figure
    assert not too_many_errors(fine)
    assert compared_value(fine, "rps", edge) == 100.0
    assert compared_value(fine, "misses/s", edge) == 40.0
    bad = Measurement("wrk", 32, 10.0, 1000, statuses={"400": 11, "200": 989}, non_2xx_3xx=11)
    broken = Measurement("wrk", 32, 10.0, 0, socket_errors=32)
    for m in (bad, broken, Measurement("wrk", 32, 10.0, 0)):
        assert too_many_errors(m)
        for compared in ("rps", "misses/s"):
            assert math.isnan(compared_value(m, compared, edge))
    assert failed_text(bad) == "11 of 1000 requests failed (200: 989, 400: 11): no ratio"
    # the table shows no ratio for such runs, and the others' median is not pulled by them
    runs = [fake_run(0, 1000, 2000), fake_run(1, 3000, 4000)]
    runs[1].value = compared_value(bad, "rps", edge)
    s = summarize(Settings("hit", runs=2), runs)
    assert s["ratio"]["runs"] == (0.5,)
    runs[0].value = math.nan
    assert "| hit | wrk -c32 | 2000 (1000-3000) | - |" in table([summarize(Settings("hit"), runs)])
