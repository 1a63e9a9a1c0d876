"""`python -m benchmarks.scaling`: N serving processes against one, edge and bare handler."""

from __future__ import annotations

import json
import math

import pytest

from benchmarks.scaling import main, parse_args, run_order, summarize, table


def test_counts_alternate_their_order_from_run_to_run() -> None:
    assert [run_order([1, 2], r) for r in range(3)] == [[1, 2], [2, 1], [1, 2]]
    assert parse_args(["--workers", "1,3"]).counts == [1, 3]
    for bad in (["--workers", "2"], ["--workers", "1,1"], ["--workers", "0,2"], ["--workers", "x"]):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_ratios_are_taken_per_run_then_summarised() -> None:
    runs = [
        {"edge": {1: 100.0, 2: 170.0}, "bare": {1: 200.0, 2: 300.0}},
        {"edge": {1: 50.0, 2: 80.0}, "bare": {1: 100.0, 2: 160.0}},
        {"edge": {1: 80.0, 2: math.nan}, "bare": {1: 100.0, 2: 150.0}},  # a failed phase
    ]
    s = summarize([1, 2], runs)
    assert s["edge"]["vs_first"][2].values == (1.7, 1.6)  # not the ratio of the medians
    assert s["bare"]["vs_first"][2].values == (1.5, 1.6, 1.5)
    assert s["edge_vs_bare"][1].values == (0.5, 0.5, 0.8)
    text = table([1, 2], s)
    assert "| 2 / 1, per run | **1.65x (1.60-1.70)** | 1.50x (1.50-1.60) | |" in text
    assert "| 1 | 80 (50-100) | 100 (100-200) | 0.50 (0.50-0.80) |" in text


async def test_a_short_run_measures_every_count(tmp_path) -> None:
    args = ["--workers", "1,2", "--runs", "1", "--duration", "1", "--generator", "builtin"]
    assert await main([*args, "--quiet-wait", "0", "--out", str(tmp_path)]) == 0
    data = json.loads((tmp_path / "scaling.json").read_text())
    for kind in ("edge", "bare"):
        rates = data["runs"][0][kind]
        assert set(rates) == {"1", "2"} and all(v > 0 for v in rates.values()), data
    assert data["summary"]["edge"]["vs_first"]["2"]["median"] > 0
