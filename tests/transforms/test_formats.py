"""Format negotiation and the source-format fallback (pure)."""

from __future__ import annotations

import pytest

from transforms.formats import CONTENT_TYPES, negotiate, save_options, source_output_format

CHROME = "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
SAFARI_OLD = "image/webp,image/png,image/svg+xml,image/*;q=0.8,video/*;q=0.8,*/*;q=0.5"
FIREFOX_OLD = "image/webp,*/*"


@pytest.mark.parametrize(
    ("requested", "accept", "auto", "expected"),
    [
        ("auto", CHROME, ("avif", "webp"), ("avif", True)),
        ("auto", CHROME, ("webp", "avif"), ("webp", True)),
        ("auto", SAFARI_OLD, ("avif", "webp"), ("webp", True)),
        ("auto", FIREFOX_OLD, ("avif", "webp"), ("webp", True)),
        ("auto", "*/*", ("avif", "webp"), ("source", True)),
        ("auto", "image/*", ("avif", "webp"), ("source", True)),
        ("auto", None, ("avif", "webp"), ("source", True)),
        ("auto", "", ("avif", "webp"), ("source", True)),
        ("auto", "image/avif;q=0,image/webp", ("avif", "webp"), ("webp", True)),
        ("auto", "image/avif;q=0.0, image/webp;q=0", ("avif", "webp"), ("source", True)),
        ("auto", "IMAGE/AVIF", ("avif", "webp"), ("avif", True)),
        ("auto", "image/avif ; q=0.5", ("avif", "webp"), ("avif", True)),
        ("auto", "image/avif;q=bogus", ("avif", "webp"), ("avif", True)),
        ("auto", ",,;,image/webp", ("avif", "webp"), ("webp", True)),
        ("auto", CHROME, (), ("source", True)),
        ("auto", "image/png", ("avif", "webp", "png"), ("png", True)),
        ("webp", None, ("avif", "webp"), ("webp", False)),
        ("jpeg", CHROME, ("avif", "webp"), ("jpeg", False)),
        ("jpg", CHROME, ("avif", "webp"), ("jpeg", False)),
        ("png", "image/webp", ("avif", "webp"), ("png", False)),
        ("avif", "", ("avif", "webp"), ("avif", False)),
        ("gif", CHROME, ("avif", "webp"), ("gif", False)),
    ],
)
def test_negotiate(
    requested: str, accept: str | None, auto: tuple[str, ...], expected: tuple[str, bool]
) -> None:
    assert negotiate(requested, accept, auto) == expected


@pytest.mark.parametrize(
    ("source", "alpha", "expected"),
    [
        ("jpeg", False, "jpeg"),
        ("png", True, "png"),
        ("png", False, "png"),
        ("gif", True, "gif"),
        ("webp", True, "webp"),
        ("heif", False, "jpeg"),
        ("heif", True, "png"),
        ("tiff", False, "jpeg"),
        ("tiff", True, "png"),
    ],
)
def test_source_output_format(source: str, alpha: bool, expected: str) -> None:
    assert source_output_format(source, alpha) == expected


def test_save_options_cover_every_format() -> None:
    for fmt in CONTENT_TYPES:
        suffix, options = save_options(fmt, 70, progressive=False)
        assert suffix.startswith(".")
        assert "keep" not in options  # the pipeline adds keep=NONE itself
    assert save_options("jpeg", 70, progressive=True)[1]["interlace"] is True
    with pytest.raises(ValueError, match="bmp"):
        save_options("bmp", None, progressive=False)
