"""URL query -> `TransformSpec`: one pure parser driven by a table of small option parsers.

Rules (README "Transforms"):
- Integers are plain ASCII digits (`[0-9]+`, at most 6 of them); decimals are `[0-9]+(.[0-9]+)?`.
  No sign, exponent, spaces, `NaN`, or non-ASCII digits. A bad value is a 400 whose message names
  the parameter as sent and its allowed range: `w: must be an integer 1..4096`.
- A known parameter given twice (also through an alias: `w` and `width`) is a 400.
- Unknown parameters are ignored and never reach the spec, so they never split the cache.
- `cache_token()` lists the non-default options by their short names, sorted. A quality equal to
  the default of the format it will be encoded in is elided (see `cache_token`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, get_args

from transforms.errors import InvalidParam

if TYPE_CHECKING:
    from imgcdn.config import TransformsConfig

Fit = Literal["cover", "contain", "fill", "inside", "outside"]
Format = Literal["jpeg", "png", "webp", "avif", "gif"]
Gravity = Literal["centre", "attention", "entropy"]

FITS: tuple[str, ...] = get_args(Fit)
FORMATS: tuple[str, ...] = get_args(Format)
GRAVITIES: tuple[str, ...] = get_args(Gravity)
SPEC_FORMATS = frozenset((*FORMATS, "auto"))

# Default encode quality per output format; formats without a quality knob are absent.
DEFAULT_QUALITY: dict[str, int] = {"jpeg": 80, "webp": 80, "avif": 50}

AVATAR_MAX_SIZE = 2048
AVATAR_DEFAULT_SIZE = 80
MAX_VALUE_CHARS = 16  # longer than any valid value; refused before any regex runs

INT_RE = re.compile(r"[0-9]{1,6}")
DECIMAL_RE = re.compile(r"[0-9]{1,3}(?:\.[0-9]{1,6})?")


@dataclass(frozen=True)
class Limits:
    """Source and output limits, the same in every process (picklable)."""

    max_src_bytes: int = 20_971_520
    max_src_pixels: int = 50_000_000
    max_dimension: int = 4096
    max_frames: int = 100

    @classmethod
    def from_config(cls, t: TransformsConfig) -> Limits:
        return cls(
            max_src_bytes=t.max_src_bytes,
            max_src_pixels=t.max_src_pixels,
            max_dimension=t.max_dimension,
            max_frames=t.max_frames,
        )


@dataclass(frozen=True)
class TransformSpec:
    """What to do to one image. Valid by construction: `__post_init__` checks every field."""

    width: int | None = None
    height: int | None = None
    fit: Fit = "inside"
    dpr: float = 1.0
    quality: int | None = None
    format: Format | Literal["auto"] = "auto"
    gravity: Gravity = "centre"
    blur: float | None = None
    sharpen: float | None = None
    enlarge: bool = False
    progressive: bool = False  # set by the edge from config, not from the query

    def __post_init__(self) -> None:
        # Every request builds one; a list of (check, message) pairs with joined messages cost
        # 2.5 us a spec, these tests 0.9.
        if self.width is not None and self.width < 1:
            raise InvalidParam("width: must be at least 1")
        if self.height is not None and self.height < 1:
            raise InvalidParam("height: must be at least 1")
        if self.fit not in FITS:
            raise InvalidParam(f"fit: must be one of {', '.join(FITS)}")
        if not (math.isfinite(self.dpr) and 1.0 <= self.dpr <= 4.0):
            raise InvalidParam("dpr: must be 1..4")
        if self.quality is not None and not 1 <= self.quality <= 100:
            raise InvalidParam("quality: must be 1..100")
        if self.format not in SPEC_FORMATS:
            raise InvalidParam(f"format: must be one of {', '.join(FORMATS)}, auto")
        if self.gravity not in GRAVITIES:
            raise InvalidParam(f"gravity: must be one of {', '.join(GRAVITIES)}")
        if self.blur is not None and not 0.3 <= self.blur <= 100:
            raise InvalidParam("blur: must be 0.3..100")
        if self.sharpen is not None and not 0.3 <= self.sharpen <= 10:
            raise InvalidParam("sharpen: must be 0.3..10")

    def for_output(self, format: Format | Literal["auto"], progressive: bool) -> TransformSpec:
        """This spec encoding to `format` (the negotiated one), progressive or not (config).
        Every field by position: `dataclasses.replace` cost 4.1 us per request, this 1.2."""
        return TransformSpec(
            self.width,
            self.height,
            self.fit,
            self.dpr,
            self.quality,
            format,
            self.gravity,
            self.blur,
            self.sharpen,
            self.enlarge,
            progressive,
        )

    def effective_quality(self, output_format: str) -> int | None:
        """The quality to encode `output_format` with, or None when the format has no quality."""
        default = DEFAULT_QUALITY.get(output_format)
        if default is None:
            return None
        return self.quality if self.quality is not None else default

    def cache_token(self, output_format: str | None = None) -> str:
        """Canonical `k=v&...` of the non-default options, keys sorted.

        Quality elision: `q` is dropped when it equals the default of the format the image will
        be encoded in, and always for PNG/GIF (no quality knob). That format is `fm` when given,
        else `output_format` (the negotiated one, which the cache key holds anyway). With
        `fm=auto` and no `output_format`, `q` stays as given: `q=80` is a no-op for WebP but not
        for AVIF (default 50), so eliding it blindly would share one cache entry between two
        different images.
        """
        resolved = self.format if self.format != "auto" else output_format
        items: dict[str, str] = {}
        for name, default in SPEC_DEFAULTS:
            value = getattr(self, name)
            if value == default:
                continue
            if name == "quality" and quality_is_moot(value, resolved):
                continue
            items[TOKEN_NAMES[name]] = format_value(value)
        return "&".join(f"{k}={items[k]}" for k in sorted(items))


def quality_is_moot(quality: int, output_format: str | None) -> bool:
    """True when `quality` changes nothing for `output_format` (its default, or no knob)."""
    if output_format in ("png", "gif"):
        return True
    return output_format is not None and quality == DEFAULT_QUALITY.get(output_format)


# (field, default) of every spec field: built once, as every request the route memo does not
# hold asks for a token (rebuilding a default spec each time was 4 of its 5.5 us)
SPEC_DEFAULTS: tuple[tuple[str, Any], ...] = tuple(
    (field.name, field.default) for field in dataclasses.fields(TransformSpec)
)

TOKEN_NAMES = {
    "width": "w",
    "height": "h",
    "fit": "fit",
    "dpr": "dpr",
    "quality": "q",
    "format": "fm",
    "gravity": "gravity",
    "blur": "blur",
    "sharpen": "sharpen",
    "enlarge": "enlarge",
    "progressive": "progressive",
}


def format_value(value: object) -> str:
    """One canonical spelling per value: `2.0` -> `2`, `True` -> `1`, floats by shortest repr."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


# ---- option parsers: (key as sent, value) -> field value; each raises InvalidParam ----

OptionParser = Callable[[str, str], Any]


def parse_int(low: int, high: int) -> OptionParser:
    def parse(key: str, value: str) -> int:
        number = int(value) if INT_RE.fullmatch(value) else None
        if number is None or not low <= number <= high:
            raise InvalidParam(f"{key}: must be an integer {low}..{high}")
        return number

    return parse


def parse_decimal(low: float, high: float) -> OptionParser:
    def parse(key: str, value: str) -> float:
        number = float(value) if DECIMAL_RE.fullmatch(value) else None
        if number is None or not low <= number <= high:
            raise InvalidParam(f"{key}: must be a number {format_value(low)}..{format_value(high)}")
        return number

    return parse


def parse_choice(choices: dict[str, Any]) -> OptionParser:
    """`choices` maps every accepted spelling to its canonical value."""
    allowed = ", ".join(dict.fromkeys(choices))

    def parse(key: str, value: str) -> Any:
        if value not in choices:
            raise InvalidParam(f"{key}: must be one of {allowed}")
        return choices[value]

    return parse


@dataclass(frozen=True)
class Option:
    field: str
    names: tuple[str, ...]
    parse: OptionParser


@functools.lru_cache(maxsize=16)  # pure, and rebuilding it was ~8 us of every parse
def option_table(limits: Limits, *, avatar: bool) -> Mapping[str, Option]:
    """Every accepted query key (aliases included) -> its option (shared: do not modify)."""
    side = min(limits.max_dimension, AVATAR_MAX_SIZE) if avatar else limits.max_dimension
    options = [
        Option("width", ("w", "width"), parse_int(1, side)),
        Option("height", ("h", "height"), parse_int(1, side)),
        Option("dpr", ("dpr",), parse_decimal(1, 4)),
        Option("quality", ("q", "quality"), parse_int(1, 100)),
        Option(
            "format",
            ("fm", "format"),
            parse_choice(
                {"jpeg": "jpeg", "jpg": "jpeg", **{f: f for f in FORMATS}, "auto": "auto"}
            ),
        ),
        Option(
            "gravity",
            ("gravity",),
            parse_choice(
                {
                    "centre": "centre",
                    "center": "centre",
                    "attention": "attention",
                    "entropy": "entropy",
                }
            ),
        ),
        Option("blur", ("blur",), parse_decimal(0.3, 100)),
        Option("sharpen", ("sharpen",), parse_decimal(0.3, 10)),
    ]
    if avatar:  # avatars are always a cover-cropped box, so fit and enlarge are not theirs
        options.append(Option("size", ("s", "size"), parse_int(1, side)))
    else:
        options.append(Option("fit", ("fit",), parse_choice({f: f for f in FITS})))
        options.append(Option("enlarge", ("enlarge",), parse_choice({"0": False, "1": True})))
    return {name: option for option in options for name in option.names}


def parse_spec(
    params: Iterable[tuple[str, str]], limits: Limits, *, avatar: bool = False
) -> TransformSpec:
    """Build a spec from all query pairs (repeats included); raise InvalidParam on a bad one.

    `avatar=True`: `s`/`size` 1..2048 (default 80) gives a square; `w` or `h` alone gives that
    square too, both give that box; always `fit=cover` and `enlarge=1`. When `s` and `w`/`h`
    are both sent, `w`/`h` win (the seed's `?w=32` is the more specific ask).
    """
    table = option_table(limits, avatar=avatar)
    values: dict[str, Any] = {}
    sent_as: dict[str, str] = {}
    for key, value in params:
        option = table.get(key)
        if option is None:
            continue
        if option.field in values:
            raise InvalidParam(f"{key}: given more than once (also as {sent_as[option.field]})")
        if len(value) > MAX_VALUE_CHARS:
            raise InvalidParam(f"{key}: value too long")
        values[option.field] = option.parse(key, value)
        sent_as[option.field] = key
    if avatar:
        size = values.pop("size", AVATAR_DEFAULT_SIZE)
        width = values.get("width", values.get("height", size))
        height = values.get("height", values.get("width", size))
        values.update(width=width, height=height, fit="cover", enlarge=True)
    return TransformSpec(**values)
