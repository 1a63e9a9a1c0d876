"""benchmarks/servecpu.py: every request a new variant of a small source."""

from __future__ import annotations

from pathlib import Path

import pyvips

from benchmarks.servecpu import SIDE, SIZES, make_sources, variant_paths


def test_every_path_is_a_distinct_variant() -> None:
    paths = variant_paths(3)
    assert len(paths) == len(set(paths)) == 3 * len(SIZES) ** 2
    assert {p.split("?")[0] for p in paths} == {f"/img/t{k}.jpg" for k in range(3)}


def test_the_sources_are_small_jpegs_of_the_samples(tmp_path: Path) -> None:
    count = make_sources(tmp_path / "src")
    assert count >= 6
    for k in range(count):
        image = pyvips.Image.new_from_file(str(tmp_path / "src" / f"t{k}.jpg"))
        assert max(image.width, image.height) == SIDE
