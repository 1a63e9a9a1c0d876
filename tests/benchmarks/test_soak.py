"""The soak benchmark's command line."""

from __future__ import annotations

import pytest

from benchmarks.soak import parse_args


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
