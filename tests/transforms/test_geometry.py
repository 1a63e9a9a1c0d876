"""Geometry planning: a table per fit, and the invariant over any source size."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from transforms.geometry import Plan, plan
from transforms.spec import FITS, TransformSpec

MAXD = 4096


@pytest.mark.parametrize(
    ("src", "spec", "expected"),
    [
        # no box: the source size, shrunk only past max_dimension
        ((1000, 500), TransformSpec(), Plan(1000, 500, 1000, 500)),
        ((8000, 2000), TransformSpec(), Plan(4096, 1024, 4096, 1024)),
        ((8000, 2000), TransformSpec(dpr=2), Plan(4096, 1024, 4096, 1024)),
        # one side: keep aspect, whatever the fit
        ((1000, 500), TransformSpec(width=100), Plan(100, 50, 100, 50)),
        ((1000, 500), TransformSpec(height=100), Plan(200, 100, 200, 100)),
        ((1000, 500), TransformSpec(width=100, fit="cover"), Plan(100, 50, 100, 50)),
        ((1000, 500), TransformSpec(width=100, fit="fill"), Plan(100, 50, 100, 50)),
        ((1000, 500), TransformSpec(width=2000), Plan(1000, 500, 1000, 500)),
        ((1000, 500), TransformSpec(width=2000, enlarge=True), Plan(2000, 1000, 2000, 1000)),
        ((1000, 500), TransformSpec(width=100, dpr=2), Plan(200, 100, 200, 100)),
        ((1000, 500), TransformSpec(width=100, dpr=1.5), Plan(150, 75, 150, 75)),
        ((10, 10000), TransformSpec(width=4096, enlarge=True), Plan(4, 4096, 4, 4096)),
        ((10000, 1), TransformSpec(width=100), Plan(100, 1, 100, 1)),
        # inside
        ((1000, 500), TransformSpec(width=200, height=200), Plan(200, 100, 200, 100)),
        ((500, 1000), TransformSpec(width=200, height=200), Plan(100, 200, 100, 200)),
        ((100, 50), TransformSpec(width=200, height=200), Plan(100, 50, 100, 50)),
        ((100, 50), TransformSpec(width=200, height=200, enlarge=True), Plan(200, 100, 200, 100)),
        # outside
        (
            (1000, 500),
            TransformSpec(width=200, height=200, fit="outside"),
            Plan(400, 200, 400, 200),
        ),
        ((100, 50), TransformSpec(width=200, height=200, fit="outside"), Plan(100, 50, 100, 50)),
        (
            (1, 10000),
            TransformSpec(width=4096, height=1, fit="outside", enlarge=True),
            Plan(1, 4096, 1, 4096),
        ),
        # cover
        (
            (1000, 500),
            TransformSpec(width=200, height=200, fit="cover"),
            Plan(200, 200, 200, 200, crop=True),
        ),
        (
            (1000, 500),
            TransformSpec(width=800, height=800, fit="cover"),
            Plan(800, 500, 800, 500, crop=True),
        ),
        (
            (100, 50),
            TransformSpec(width=80, height=80, fit="cover", enlarge=True),
            Plan(80, 80, 80, 80, crop=True),
        ),
        (
            (40, 40),
            TransformSpec(width=80, height=80, fit="cover"),
            Plan(40, 40, 40, 40, crop=True),
        ),
        (
            (1000, 500),
            TransformSpec(width=100, height=50, fit="cover", dpr=2),
            Plan(200, 100, 200, 100, crop=True),
        ),
        # contain: pad to the box
        (
            (1000, 500),
            TransformSpec(width=200, height=200, fit="contain"),
            Plan(200, 200, 200, 100, pad=True),
        ),
        (
            (100, 50),
            TransformSpec(width=200, height=200, fit="contain"),
            Plan(200, 200, 100, 50, pad=True),
        ),
        # fill: stretch
        ((1000, 500), TransformSpec(width=200, height=300, fit="fill"), Plan(200, 300, 200, 300)),
        ((100, 50), TransformSpec(width=200, height=300, fit="fill"), Plan(100, 50, 100, 50)),
        (
            (100, 50),
            TransformSpec(width=200, height=300, fit="fill", enlarge=True),
            Plan(200, 300, 200, 300),
        ),
        # dpr is capped as a whole at max_dimension, keeping the box's shape
        (
            (8000, 8000),
            TransformSpec(width=3000, height=1500, fit="fill", dpr=2),
            Plan(4096, 2048, 4096, 2048),
        ),
        (
            (8000, 8000),
            TransformSpec(width=4096, height=4096, fit="cover", dpr=4),
            Plan(4096, 4096, 4096, 4096, crop=True),
        ),
    ],
)
def test_plan(src: tuple[int, int], spec: TransformSpec, expected: Plan) -> None:
    assert plan(*src, spec, MAXD) == expected


def test_plan_refuses_empty_source() -> None:
    with pytest.raises(ValueError, match="positive"):
        plan(0, 10, TransformSpec(), MAXD)


sides = st.one_of(st.none(), st.integers(1, MAXD))
specs = st.builds(
    TransformSpec,
    width=sides,
    height=sides,
    fit=st.sampled_from(FITS),
    dpr=st.floats(1.0, 4.0, allow_nan=False),
    enlarge=st.booleans(),
)


@settings(max_examples=400, deadline=None)
@given(src_w=st.integers(1, 10000), src_h=st.integers(1, 10000), spec=specs)
def test_every_plan_is_within_bounds(src_w: int, src_h: int, spec: TransformSpec) -> None:
    p = plan(src_w, src_h, spec, MAXD)
    assert 1 <= p.width <= MAXD
    assert 1 <= p.height <= MAXD
    assert 1 <= p.resize_width <= p.width
    assert 1 <= p.resize_height <= p.height
    if not spec.enlarge and spec.fit != "contain":
        assert p.width <= src_w
        assert p.height <= src_h
    if spec.fit in ("cover", "fill", "contain") and spec.width and spec.height:
        w, h = round(spec.width * spec.dpr), round(spec.height * spec.dpr)
        assert p.width <= w + 1
        assert p.height <= h + 1
