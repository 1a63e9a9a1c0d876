"""Per-photo masters: one near-lossless square made from the original, every small size from it.

Avatar pages ask for several sizes of the same photo (32, 64, 80, 128, 256 px). Rendering each
from the ~1024 px original costs a full entropy decode every time (3.3-7.4 ms here). The first
small square of a photo instead renders a `MASTER_SIDE` px centre square at `MASTER_QUALITY`
from the original (libvips, `pipeline.render_square`, the hostile-input path), and that size
and every later one is derived from the master's bytes: 0.5-1.5 ms each.

The derivation uses Pillow, not libvips: on a 256 px JPEG libvips costs ~2 ms of fixed
per-pipeline overhead (a decode to memory alone is ~1 ms); Pillow decodes (DCT-scaled),
resizes (Lanczos) and encodes in 0.3-1.5 ms (benchmarks/README.md, "Avatars: per-photo
masters"). Pillow only ever reads masters: JPEGs libvips wrote here, never client bytes.

Quality (tests/transforms/test_master.py): against a lossless render of the original, a size
derived from the master adds 0.7 on average (4.0 at worst) to the mean absolute pixel error
(0-255) that rendering directly has anyway (4.9), much of it the exactly-centred crop; the
bound is the one `avatar_from_larger` is held to.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from PIL import Image

from transforms.formats import CONTENT_TYPES, source_output_format
from transforms.pipeline import Rendered, probe, render_probed, render_square
from transforms.spec import Limits, TransformSpec

MASTER_SIDE = 256  # covers Gravatar's common sizes (80 by default, 256 for 2x of 128)
MASTER_QUALITY = 95  # a second JPEG generation at 95 adds ~0.1 mean error at the same size
SUBSAMPLE_BELOW = 90  # libvips' `subsample_mode=auto`: 4:2:0 below Q90, 4:4:4 from it


@dataclass(frozen=True)
class Master:
    """A square, upright, sRGB (or grey) JPEG centre crop of one photo, alpha on white."""

    body: bytes
    side: int
    auto_format: str  # what `format="auto"` means for the photo it was made from


def may_use_master(spec: TransformSpec) -> bool:
    """Could `spec` come from a master (before knowing the photo)? A plain square centre
    crop no larger than MASTER_SIDE, in JPEG or the source's format, without filters."""
    return (
        spec.width is not None
        and spec.width == spec.height
        and spec.width <= MASTER_SIDE
        and spec.fit == "cover"
        and spec.gravity == "centre"
        and spec.dpr == 1.0
        and spec.blur is None
        and spec.sharpen is None
        and spec.format in ("jpeg", "auto")
    )


def fits(master: Master, spec: TransformSpec) -> bool:
    """May `spec` be derived from `master`: no larger, and JPEG once "auto" is resolved."""
    fmt = master.auto_format if spec.format == "auto" else spec.format
    return may_use_master(spec) and (spec.width or 0) <= master.side and fmt == "jpeg"


def render_keeping_master(
    data: bytes, spec: TransformSpec, limits: Limits
) -> tuple[Rendered, Master | None]:
    """`spec` rendered from the original `data`, by way of a new master when it fits one
    (else directly, and no master: one that could not serve this request costs for nothing)."""
    info = probe(data, limits)
    side = min(MASTER_SIDE, info.width, info.height)
    planned = Master(b"", side, source_output_format(info.format, info.has_alpha))
    if not fits(planned, spec):
        return render_probed(data, info, spec, limits), None
    square = render_square(data, info, side, MASTER_QUALITY, limits)
    master = Master(square.body, side, planned.auto_format)
    return derive(master.body, master.side, spec), master


def derive(body: bytes, master_side: int, spec: TransformSpec) -> Rendered:
    """`spec` (which `fits` the master) from a master's `body`: DCT-scaled decode, Lanczos,
    encode. The bytes are an argument of their own, not a `Master`, so a pool worker that
    holds them (transforms/pool.py, held sources) is sent a token instead."""
    side = spec.width or master_side
    quality = spec.effective_quality("jpeg") or MASTER_QUALITY
    opened = Image.open(io.BytesIO(body))
    # DCT-scaled decode to >= 2x the size, Lanczos the rest: scaling all the way in the
    # decoder adds ~1 to the mean error, for 0.3 ms less
    opened.draft(opened.mode, (2 * side, 2 * side))
    image: Image.Image = opened
    if image.size != (side, side):
        image = image.resize((side, side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(
        out,
        "JPEG",
        quality=quality,
        optimize=True,
        progressive=spec.progressive,
        subsampling=0 if quality >= SUBSAMPLE_BELOW else 2,
    )
    return Rendered(out.getvalue(), CONTENT_TYPES["jpeg"], side, side, "jpeg")
