"""What the benchmark stack passes to the servers it starts."""

from __future__ import annotations

from benchmarks.stack import apply_override, child_env


def test_imgcdn_variables_are_kept_from_the_stack_and_named() -> None:
    env, dropped = child_env(
        {"PATH": "/bin", "IMGCDN_EDGE__TRANSFORMS__NICE": "0", "IMGCDN_EDGE__PORT": "1"}
    )
    assert env == {"PATH": "/bin"}
    assert dropped == ["IMGCDN_EDGE__PORT", "IMGCDN_EDGE__TRANSFORMS__NICE"]
    assert child_env({"HOME": "/root"}) == ({"HOME": "/root"}, [])


def test_overrides_land_in_the_nested_config() -> None:
    config: dict = {"edge": {"transforms": {"processes": 0}}}
    apply_override(config, "edge.transforms.nice", 0)
    apply_override(config, "edge.cache.memory_bytes", 0)
    assert config == {
        "edge": {"transforms": {"processes": 0, "nice": 0}, "cache": {"memory_bytes": 0}}
    }
