"""The soak script, short: 5 s of warm-up and 20 s of mixed traffic at a modest rate."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import parse_args, print_report, soak

CI_GROWTH_BOUND = 0.30  # 10 s halves are noisy; the 10 % goal is for the full 10-minute run


@pytest.mark.slow
async def test_short_soak_has_no_unintended_errors_and_flat_memory(tmp_path: Path) -> None:
    args = parse_args(
        [
            "--duration", "20", "--warmup", "5", "--rate", "30", "--connections", "8",
            "--users", "10", "--hashes", "500", "--transform-processes", "2",
            "--out", str(tmp_path / "soak.json"),
        ]
    )  # fmt: skip
    report = await soak(args)
    print_report(report)
    assert report["unintended"] == {} and report["warmup_unintended"] == {}
    assert report["requests"] >= 0.9 * 20 * 30
    bad = report["bad"]
    assert sum(bad.values()) >= 20 and all(status.startswith("4") for status in bad)
    assert set(report["good"]) == {"200"}
    assert report["p99_ms"] < 2000
    roles = [row["process"] for row in report["rss"]]
    assert sum("transform worker" in r for r in roles) == 2 and any("origin" in r for r in roles)
    assert all(row["growth_last_half"] < CI_GROWTH_BOUND for row in report["rss"]), report["rss"]
