"""The soak benchmark's command line."""

from __future__ import annotations

import pytest

from benchmarks.loadgen import LoadOutcome
from benchmarks.measure import Measurement
from benchmarks.soak import parse_args, unintended


def test_config_overrides_reach_the_stack_options_and_bad_ones_are_refused() -> None:
    args = parse_args(["--duration", "60", "--set", "edge.transforms.nice=0"])
    assert args.duration == 60.0 and args.overrides == {"edge.transforms.nice": 0}
    assert parse_args([]).overrides == {}
    for bad in (
        ["--set", "nice"],
        ["--set", "transforms.nice=0"],
        ["--users", "9", "--hashes", "3"],
    ):
        with pytest.raises(SystemExit):
            parse_args(bad)


def test_unintended_statuses_are_good_ones_failing_and_bad_ones_accepted() -> None:
    def outcome(statuses: dict[str, int]) -> LoadOutcome:
        return LoadOutcome(Measurement("builtin", 4, 1.0, sum(statuses.values()), statuses))

    good = outcome({"200": 90, "304": 5, "399": 1, "400": 2, "503": 1, "error:Timeout": 1})
    bad = outcome({"400": 40, "404": 3, "499": 1, "200": 2, "502": 1})
    assert unintended(good, bad) == {
        "good:400": 2,
        "good:503": 1,
        "good:error:Timeout": 1,
        "bad:200": 2,
        "bad:502": 1,
    }
