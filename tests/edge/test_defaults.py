"""Avatar default images: sizes, determinism, variety, symmetry, alpha, initials and `d` rules."""

from __future__ import annotations

import random

import pytest
import pyvips
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.defaults import MP_ASSET, Redirect, default_png, initials_from, resolve_default

KINDS = ["mp", "identicon", "retro", "initials", "color", "blank"]
MD5 = "0bc83cb571cd1c50ba6f3e8a78ef1346"


def load(png: bytes) -> pyvips.Image:
    image = pyvips.Image.new_from_buffer(png, "")
    assert image.get("vips-loader") == "pngload_buffer"
    return image


def difference(a: pyvips.Image, b: pyvips.Image) -> float:
    """Mean absolute difference per channel value, 0..255."""
    return float((a.cast("float") - b.cast("float")).abs().avg())


def spread(image: pyvips.Image) -> float:
    """Largest standard deviation of any band: 0 for a flat colour."""
    return max(float(band.deviate()) for band in image.bandsplit())


def random_hashes(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [f"{rng.getrandbits(128):032x}" for _ in range(n)]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [1, 2, 3, 80, 2048])
def test_exact_dimensions(kind: str, size: int) -> None:
    image = load(default_png(kind, MD5, size, initials="JD"))
    assert (image.width, image.height) == (size, size)
    assert image.bands == (4 if kind == "blank" else 3)


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(KINDS),
    size=st.integers(1, 300),
    digest=st.text(max_size=70),
    letters=st.text(max_size=3),
)
def test_any_size_and_hash_gives_a_valid_square_png(
    kind: str, size: int, digest: str, letters: str
) -> None:
    image = load(default_png(kind, digest, size, initials=letters))
    assert (image.width, image.height) == (size, size)
    image.avg()  # decodes every pixel


@pytest.mark.parametrize("kind", KINDS)
def test_same_hash_same_bytes_in_any_case(kind: str) -> None:
    first = default_png(kind, MD5, 120, initials="AB")
    assert default_png(kind, MD5, 120, initials="AB") == first
    assert default_png(kind, MD5.upper(), 120, initials="AB") == first


@pytest.mark.parametrize(
    ("kind", "threshold"),
    [("identicon", 20.0), ("retro", 20.0), ("color", 20.0), ("initials", 20.0)],
)
def test_different_hashes_look_different(kind: str, threshold: float) -> None:
    hashes = random_hashes(40, seed=5)
    pairs = list(zip(hashes[::2], hashes[1::2], strict=True))
    diffs = [
        difference(
            load(default_png(kind, a, 64, initials="AB")),
            load(default_png(kind, b, 64, initials="AB")),
        )
        for a, b in pairs
    ]
    assert min(diffs) > threshold / 4, diffs  # no pair is nearly identical
    assert sum(diffs) / len(diffs) > threshold, diffs


@pytest.mark.parametrize("kind", ["identicon", "retro"])
@pytest.mark.parametrize("size", [7, 80, 81, 255])
def test_patterns_are_mirrored_left_right(kind: str, size: int) -> None:
    for digest in random_hashes(10, seed=size):
        image = load(default_png(kind, digest, size))
        assert difference(image, image.fliphor()) == 0.0
        assert difference(image, image.flipver()) > 0.0 or kind == "retro"


def test_identicon_has_a_margin_and_a_pattern() -> None:
    image = load(default_png("identicon", MD5, 100))
    assert image.getpoint(1, 1) == image.getpoint(98, 98) == [240.0, 240.0, 240.0]
    inner = image.crop(8, 8, 84, 84)
    assert spread(inner) > 10  # two colours in the grid, not one flat block


def test_blank_is_fully_transparent() -> None:
    image = load(default_png("blank", MD5, 80))
    assert image.hasalpha()
    assert image.extract_band(3).max() == 0


def test_color_is_one_flat_colour() -> None:
    image = load(default_png("color", MD5, 50))
    assert spread(image) == 0.0


def test_initials_draw_letters_on_the_hash_colour() -> None:
    plain = load(default_png("initials", MD5, 200, initials=""))
    lettered = load(default_png("initials", MD5, 200, initials="JD"))
    assert spread(plain) == 0.0  # nothing usable: just the colour
    assert plain.getpoint(0, 0) == lettered.getpoint(0, 0)  # same background
    assert spread(lettered) > 10
    # anti-aliased: edge pixels hold levels between background and text colour
    levels = set(
        map(
            tuple,
            (
                lettered.crop(0, 60, 200, 80).colourspace("b-w").getpoint(x, y)
                for x in range(200)
                for y in range(0, 20, 5)
            ),
        )
    )
    assert len(levels) > 4


def test_initials_text_contrasts_with_background() -> None:
    for digest in random_hashes(20, seed=3):
        image = load(default_png("initials", digest, 100, initials="W")).colourspace("b-w")
        assert image.max() - image.min() > 90, digest


def test_initials_differ_by_letters() -> None:
    a = load(default_png("initials", MD5, 100, initials="AB"))
    b = load(default_png("initials", MD5, 100, initials="XY"))
    assert difference(a, b) > 2.0


def test_every_font_letter_draws() -> None:
    for letter in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        image = load(default_png("initials", MD5, 64, initials=letter))
        assert spread(image) > 5, letter


def test_mp_asset_matches_the_drawing() -> None:
    asset = MP_ASSET
    shipped = load(asset.read_bytes())
    assert (shipped.width, shipped.height) == (512, 512)
    assert difference(shipped, load(default_png("mp", "", 512))) == 0.0


def test_mp_is_neutral_grey() -> None:
    image = load(default_png("mp", MD5, 64))
    r, g, b = image.bandsplit()
    assert difference(r, g) == 0.0 and difference(g, b) == 0.0
    assert spread(image) > 10  # a figure on a background


@pytest.mark.parametrize("size", [0, -1, 4097])
def test_size_out_of_range_is_refused(size: int) -> None:
    with pytest.raises(ValueError):
        default_png("identicon", MD5, size)


@pytest.mark.parametrize("kind", ["404", "nope", ""])
def test_kinds_without_a_picture_are_refused(kind: str) -> None:
    with pytest.raises(ValueError):
        default_png(kind, MD5, 10)


@pytest.mark.parametrize(
    ("initials", "name", "expected"),
    [
        ("jd", None, "JD"),
        ("abc", None, "AB"),
        ("x", "Jane Doe", "X"),
        ("", "Jane Doe", "JD"),
        (None, "jane", "J"),
        (None, "Jane van der Berg", "JB"),
        (None, "  jane   doe  ", "JD"),
        (None, "(Jane) Doe!", "JD"),
        (None, "42 Jane 7", "J"),
        ("1!", "Ann Lee", "AL"),
        (None, "Émile Zola", "EZ"),
        ("é", None, "E"),
        (None, "Жанна Иванова", ""),
        (None, "123 456", ""),
        (None, "", ""),
        (None, None, ""),
        ("", "", ""),
    ],
)
def test_initials_from(initials: str | None, name: str | None, expected: str) -> None:
    assert initials_from(initials, name) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "mp"),
        ("", "mp"),
        ("404", "404"),
        ("mp", "mp"),
        ("identicon", "identicon"),
        ("IDENTICON", "identicon"),
        ("retro", "retro"),
        ("initials", "initials"),
        ("color", "color"),
        ("blank", "blank"),
        ("monsterid", "identicon"),
        ("wavatar", "identicon"),
        ("robohash", "identicon"),
        ("mm", "mp"),
        ("nonsense", "mp"),
    ],
)
def test_resolve_default_kinds(value: str | None, expected: str) -> None:
    assert resolve_default(value) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/avatar.png",
        "https://example.com/a/b.png?x=1&y=2",
        "HTTPS://Example.COM/a.png",
        "https://example.com:8443/a.png",
        "http://127.0.0.1/a.png",
        "https://[2001:db8::1]/a.png",
        "https://example.com/" + "a" * 2000,
    ],
)
def test_resolve_default_redirects_good_urls(url: str) -> None:
    assert resolve_default(url) == Redirect(url)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.png",
        "javascript:alert(1)",
        "data:image/png;base64,AAAA",
        "//example.com/a.png",
        "/relative/a.png",
        "http://",
        "http:///a.png",
        "https://exa mple.com/a.png",
        "https://example.com/a b.png",
        "https://example.com/a\n.png",
        "https://example.com/a\r\nSet-Cookie: x=1",
        "https://example.com/\x00",
        "https://example.com/\x7f",
        "https://exämple.com/a.png",
        "https://user:pass@example.com/a.png",
        "https://example.com\\@evil.com/",
        "https://example.com:99999/a.png",
        "https://example.com:port/a.png",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_resolve_default_refuses_bad_urls(url: str) -> None:
    assert resolve_default(url) == "mp"
