"""benchmarks.s3cpu: both S3 clients against its stand-in, figures per call."""

from __future__ import annotations

import re

import pytest

from benchmarks.s3cpu import main, report


def test_report_gives_medians_and_per_round_ratios() -> None:
    lines = report({"get missing": {"edge": [0.1, 0.2, 0.3], "boto": [1.0, 1.0, 0.5]}})
    assert (
        lines[2]
        == "| get missing | 0.200 (0.100-0.300) | 1.000 (0.500-1.000) | 0.200 (0.100-0.600) |"
    )


async def test_both_clients_are_measured_against_the_stand_in(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")  # else main() sets them for the whole session
    assert await main(["--calls", "5", "--runs", "1"]) == 0
    rows = [
        line
        for line in capsys.readouterr().out.splitlines()
        if line.startswith("| get") or line.startswith("| put")
    ]
    assert len(rows) == 3
    for row in rows:
        edge, boto = (float(m) for m in re.findall(r"\| (\d+\.\d+) \(", row)[:2])
        assert edge > 0 and boto > 0
