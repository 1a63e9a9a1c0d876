"""Query -> TransformSpec: every parameter's valid and invalid values, aliases, tokens."""

from __future__ import annotations

import dataclasses

import pytest

from imgcdn.config import TransformsConfig
from transforms.errors import InvalidParam
from transforms.spec import Limits, TransformSpec, parse_spec

LIMITS = Limits()


def parse(query: str, *, avatar: bool = False, limits: Limits = LIMITS) -> TransformSpec:
    pairs = [tuple(p.split("=", 1)) for p in query.split("&") if p] if query else []
    return parse_spec([(k, v) for k, v in pairs], limits, avatar=avatar)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", TransformSpec()),
        ("w=100", TransformSpec(width=100)),
        ("width=100", TransformSpec(width=100)),
        ("w=1", TransformSpec(width=1)),
        ("w=4096", TransformSpec(width=4096)),
        ("w=007", TransformSpec(width=7)),
        ("h=300", TransformSpec(height=300)),
        ("height=300", TransformSpec(height=300)),
        ("fit=cover", TransformSpec(fit="cover")),
        ("fit=contain", TransformSpec(fit="contain")),
        ("fit=fill", TransformSpec(fit="fill")),
        ("fit=inside", TransformSpec(fit="inside")),
        ("fit=outside", TransformSpec(fit="outside")),
        ("dpr=1", TransformSpec()),
        ("dpr=2", TransformSpec(dpr=2.0)),
        ("dpr=1.5", TransformSpec(dpr=1.5)),
        ("dpr=4.0", TransformSpec(dpr=4.0)),
        ("q=1", TransformSpec(quality=1)),
        ("quality=100", TransformSpec(quality=100)),
        ("fm=jpeg", TransformSpec(format="jpeg")),
        ("fm=jpg", TransformSpec(format="jpeg")),
        ("format=png", TransformSpec(format="png")),
        ("fm=webp", TransformSpec(format="webp")),
        ("fm=avif", TransformSpec(format="avif")),
        ("fm=gif", TransformSpec(format="gif")),
        ("fm=auto", TransformSpec()),
        ("gravity=centre", TransformSpec()),
        ("gravity=center", TransformSpec()),
        ("gravity=attention", TransformSpec(gravity="attention")),
        ("gravity=entropy", TransformSpec(gravity="entropy")),
        ("blur=0.3", TransformSpec(blur=0.3)),
        ("blur=100", TransformSpec(blur=100.0)),
        ("sharpen=0.3", TransformSpec(sharpen=0.3)),
        ("sharpen=10", TransformSpec(sharpen=10.0)),
        ("enlarge=1", TransformSpec(enlarge=True)),
        ("enlarge=0", TransformSpec()),
        ("w=100&v=123&utm_source=x&sig=abc", TransformSpec(width=100)),  # unknown keys ignored
        ("s=100", TransformSpec()),  # s is an avatar key only
    ],
)
def test_valid_values(query: str, expected: TransformSpec) -> None:
    assert parse(query) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("w=0", "w: must be an integer 1..4096"),
        ("w=4097", "w: must be an integer 1..4096"),
        ("width=-1", "width: must be an integer 1..4096"),
        ("w=", "w: must be an integer 1..4096"),
        ("w=+5", "w: must be an integer 1..4096"),
        ("w= 5", "w: must be an integer 1..4096"),
        ("w=5 ", "w: must be an integer 1..4096"),
        ("w=1e3", "w: must be an integer 1..4096"),
        ("w=NaN", "w: must be an integer 1..4096"),
        ("w=10.0", "w: must be an integer 1..4096"),
        ("w=\u0661\u0662", "w: must be an integer 1..4096"),  # Arabic-Indic digits
        ("w=\uff11\uff10", "w: must be an integer 1..4096"),  # full-width digits
        ("w=0x10", "w: must be an integer 1..4096"),
        ("w=1_000", "w: must be an integer 1..4096"),
        ("w=99999999999999999999", "w: value too long"),
        ("h=5000", "h: must be an integer 1..4096"),
        ("height=abc", "height: must be an integer 1..4096"),
        ("fit=crop", "fit: must be one of cover, contain, fill, inside, outside"),
        ("fit=COVER", "fit: must be one of cover, contain, fill, inside, outside"),
        ("fit=", "fit: must be one of cover, contain, fill, inside, outside"),
        ("dpr=0.5", "dpr: must be a number 1..4"),
        ("dpr=4.5", "dpr: must be a number 1..4"),
        ("dpr=NaN", "dpr: must be a number 1..4"),
        ("dpr=inf", "dpr: must be a number 1..4"),
        ("dpr=2.", "dpr: must be a number 1..4"),
        ("dpr=.5", "dpr: must be a number 1..4"),
        ("dpr=1e0", "dpr: must be a number 1..4"),
        ("dpr=\u0662", "dpr: must be a number 1..4"),
        ("q=0", "q: must be an integer 1..100"),
        ("quality=101", "quality: must be an integer 1..100"),
        ("fm=bmp", "fm: must be one of jpeg, jpg, png, webp, avif, gif, auto"),
        ("format=svg", "format: must be one of jpeg, jpg, png, webp, avif, gif, auto"),
        ("gravity=north", "gravity: must be one of centre, center, attention, entropy"),
        ("blur=0.2", "blur: must be a number 0.3..100"),
        ("blur=101", "blur: must be a number 0.3..100"),
        ("blur=-1", "blur: must be a number 0.3..100"),
        ("sharpen=0", "sharpen: must be a number 0.3..10"),
        ("sharpen=11", "sharpen: must be a number 0.3..10"),
        ("enlarge=true", "enlarge: must be one of 0, 1"),
        ("enlarge=2", "enlarge: must be one of 0, 1"),
        ("w=100&w=100", "w: given more than once (also as w)"),
        ("w=100&width=200", "width: given more than once (also as w)"),
        ("q=80&quality=80", "quality: given more than once (also as q)"),
        ("fm=webp&format=webp", "format: given more than once (also as fm)"),
    ],
)
def test_invalid_values(query: str, message: str) -> None:
    with pytest.raises(InvalidParam) as err:
        parse(query)
    assert err.value.message == message
    assert err.value.status == 400


def test_max_dimension_comes_from_limits() -> None:
    small = Limits(max_dimension=500)
    assert parse("w=500", limits=small).width == 500
    with pytest.raises(InvalidParam, match=r"w: must be an integer 1\.\.500"):
        parse("w=501", limits=small)


def test_limits_from_config() -> None:
    config = TransformsConfig(max_src_bytes=1, max_src_pixels=2, max_dimension=300, max_frames=4)
    assert Limits.from_config(config) == Limits(1, 2, 300, 4)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", TransformSpec(width=80, height=80, fit="cover", enlarge=True)),
        ("s=64", TransformSpec(width=64, height=64, fit="cover", enlarge=True)),
        ("size=2048", TransformSpec(width=2048, height=2048, fit="cover", enlarge=True)),
        ("w=32", TransformSpec(width=32, height=32, fit="cover", enlarge=True)),
        ("h=40", TransformSpec(width=40, height=40, fit="cover", enlarge=True)),
        ("w=30&h=20", TransformSpec(width=30, height=20, fit="cover", enlarge=True)),
        ("s=100&w=50", TransformSpec(width=50, height=50, fit="cover", enlarge=True)),
        (
            "s=64&fit=inside&enlarge=0&d=mp&r=pg",
            TransformSpec(width=64, height=64, fit="cover", enlarge=True),
        ),
        (
            "s=64&fm=webp&q=70",
            TransformSpec(
                width=64, height=64, fit="cover", enlarge=True, format="webp", quality=70
            ),
        ),
    ],
)
def test_avatar_values(query: str, expected: TransformSpec) -> None:
    assert parse(query, avatar=True) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("s=0", "s: must be an integer 1..2048"),
        ("size=2049", "size: must be an integer 1..2048"),
        ("s=abc", "s: must be an integer 1..2048"),
        ("s=1.5", "s: must be an integer 1..2048"),
        ("w=3000", "w: must be an integer 1..2048"),
        ("s=10&size=10", "size: given more than once (also as s)"),
    ],
)
def test_avatar_invalid(query: str, message: str) -> None:
    with pytest.raises(InvalidParam) as err:
        parse(query, avatar=True)
    assert err.value.message == message


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("w=100", "width=100&q=80&fm=jpeg"[: len("width=100")]),
        ("w=100&fm=jpeg", "width=100&q=80&fm=jpeg"),
        ("w=100&fm=webp", "fm=webp&quality=80&w=100"),
        ("w=100&fm=avif", "w=100&fm=avif&q=50"),
        ("w=100&fm=png", "w=100&fm=png&q=30"),  # PNG has no quality: q is moot
        ("w=100&fm=gif", "w=100&fm=gif&q=99"),
        ("h=5&w=100", "w=100&h=5"),
        ("w=100&v=1", "w=100&v=2"),
        ("w=100", "w=100&fit=inside&dpr=1&gravity=centre&enlarge=0&fm=auto"),
        ("w=100&dpr=2", "w=100&dpr=2.0"),
        ("w=100&dpr=1.5", "w=100&dpr=1.50"),
        ("gravity=center", "gravity=centre"),
        ("fm=jpg", "fm=jpeg"),
    ],
)
def test_equal_tokens(a: str, b: str) -> None:
    assert parse(a).cache_token() == parse(b).cache_token()


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("w=100", "w=101"),
        ("w=100", "h=100"),
        ("w=100&fm=avif", "w=100&fm=avif&q=80"),
        ("w=100&fm=jpeg", "w=100&fm=jpeg&q=81"),
        ("w=100&fm=webp", "w=100&fm=jpeg"),
        ("w=100", "w=100&q=80"),  # fm=auto: q=80 is not a no-op for AVIF
        ("fit=cover", "fit=fill"),
        ("blur=1", "blur=1.5"),
        ("sharpen=1", ""),
        ("enlarge=1", ""),
        ("dpr=2", ""),
    ],
)
def test_distinct_tokens(a: str, b: str) -> None:
    assert parse(a).cache_token() != parse(b).cache_token()


def test_token_spelling() -> None:
    spec = parse(
        "width=100&height=50&fit=cover&dpr=2&q=70&fm=webp&gravity=attention&blur=1.5&sharpen=2&enlarge=1"
    )
    assert spec.cache_token() == (
        "blur=1.5&dpr=2&enlarge=1&fit=cover&fm=webp&gravity=attention&h=50&q=70&sharpen=2&w=100"
    )
    assert TransformSpec().cache_token() == ""
    assert dataclasses.replace(TransformSpec(), progressive=True).cache_token() == "progressive=1"


@pytest.mark.parametrize(
    ("query", "output", "token"),
    [
        ("w=100&q=80", "jpeg", "w=100"),  # the example, once the format is known
        ("w=100&q=80", "webp", "w=100"),
        ("w=100&q=80", "avif", "q=80&w=100"),
        ("w=100&q=50", "avif", "w=100"),
        ("w=100&q=80", "source", "q=80&w=100"),  # the source's default is unknown here
        ("w=100&q=80", "png", "w=100"),
        ("w=100&q=80&fm=avif", "webp", "fm=avif&q=80&w=100"),  # fm wins over output_format
    ],
)
def test_token_with_output_format(query: str, output: str, token: str) -> None:
    assert parse(query).cache_token(output) == token
    assert parse("w=100").cache_token(output) == "w=100"


def test_spec_cannot_be_invalid() -> None:
    for bad, message in [
        ({"width": 0}, "width: must be at least 1"),
        ({"height": -3}, "height: must be at least 1"),
        ({"fit": "crop"}, "fit: must be one of cover, contain, fill, inside, outside"),
        ({"dpr": 0.5}, "dpr: must be 1..4"),
        ({"dpr": float("nan")}, "dpr: must be 1..4"),
        ({"quality": 0}, "quality: must be 1..100"),
        ({"format": "bmp"}, "format: must be one of jpeg, png, webp, avif, gif, auto"),
        ({"gravity": "north"}, "gravity: must be one of centre, attention, entropy"),
        ({"blur": 0.1}, "blur: must be 0.3..100"),
        ({"sharpen": 11.0}, "sharpen: must be 0.3..10"),
    ]:
        with pytest.raises(InvalidParam) as err:
            TransformSpec(**bad)  # type: ignore[arg-type]
        assert err.value.message == message


def test_for_output_changes_only_the_format_and_progressive() -> None:
    spec = TransformSpec(
        width=10, height=20, fit="cover", dpr=2.0, quality=70, format="auto",
        gravity="entropy", blur=1.5, sharpen=2.0, enlarge=True,
    )  # fmt: skip
    assert all(  # every field differs from its default, so a dropped one would show
        getattr(spec, f.name) != f.default
        for f in dataclasses.fields(spec)
        if f.name not in ("progressive", "format")
    )
    out = spec.for_output("webp", True)
    assert out == dataclasses.replace(spec, format="webp", progressive=True)
    assert spec.for_output("auto", False) == spec


def test_effective_quality() -> None:
    assert TransformSpec().effective_quality("jpeg") == 80
    assert TransformSpec().effective_quality("webp") == 80
    assert TransformSpec().effective_quality("avif") == 50
    assert TransformSpec().effective_quality("png") is None
    assert TransformSpec(quality=33).effective_quality("avif") == 33
