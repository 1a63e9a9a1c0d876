"""Pure geometry: source size + spec -> the sizes the pipeline resizes, crops and pads to.

Fits mean what they mean in sharp/libvips, for a box `w` x `h` (after `dpr`):
- `inside`: keep aspect, as large as possible within the box (the default);
- `outside`: keep aspect, as small as possible covering the box;
- `cover`: keep aspect, cover the box, crop to it (gravity picks what survives);
- `contain`: keep aspect, within the box, padded to exactly the box;
- `fill`: stretch to exactly the box, aspect ignored.
With only one of `w`/`h` every fit scales to it keeping aspect; with neither, the source size
is kept. Without `enlarge`, no fit scales the image up (a box larger than the source gives the
source's size; cover crops the scaled image to at most the box; contain still pads to the box).
Every output side is within 1..max_dimension, whatever the source shape (checked by Hypothesis).
"""

from __future__ import annotations

from dataclasses import dataclass

from transforms.spec import TransformSpec


@dataclass(frozen=True)
class Plan:
    """`resize_*`: the image after the thumbnail step; `width`/`height`: the output.

    `crop`: the thumbnail step crops (cover with a box), then resize == output.
    `pad`: the resized image is embedded, centred, in the output size (contain).
    """

    width: int
    height: int
    resize_width: int
    resize_height: int
    crop: bool = False
    pad: bool = False


def box(spec: TransformSpec, max_dimension: int) -> tuple[int | None, int | None]:
    """The requested box after `dpr`, scaled down as one if a side would pass max_dimension."""
    w, h = spec.width, spec.height
    if w is None and h is None:
        return None, None
    largest = max(w or 0, h or 0)
    factor = min(spec.dpr, max_dimension / largest)
    return scale_side(w, factor), scale_side(h, factor)


def scale_side(side: int | None, factor: float) -> int | None:
    return None if side is None else max(1, round(side * factor))


def plan(src_width: int, src_height: int, spec: TransformSpec, max_dimension: int) -> Plan:
    """Plan the resize of an upright `src_width` x `src_height` image (after EXIF rotation)."""
    if src_width < 1 or src_height < 1:
        raise ValueError(f"source size must be positive, got {src_width}x{src_height}")
    w, h = box(spec, max_dimension)
    grow = spec.enlarge
    if w is None or h is None:
        if w is None and h is None:
            scale = 1.0
        else:
            scale = w / src_width if w is not None else (h or 1) / src_height
        return scaled(src_width, src_height, cap(scale, grow), max_dimension)
    if spec.fit == "fill":
        fw = min(w, src_width) if not grow else w
        fh = min(h, src_height) if not grow else h
        return Plan(fw, fh, fw, fh)
    if spec.fit == "inside":
        return scaled(
            src_width, src_height, cap(min(w / src_width, h / src_height), grow), max_dimension
        )
    if spec.fit == "outside":
        return scaled(
            src_width, src_height, cap(max(w / src_width, h / src_height), grow), max_dimension
        )
    if spec.fit == "contain":
        inner = scaled(
            src_width, src_height, cap(min(w / src_width, h / src_height), grow), max_dimension
        )
        return Plan(w, h, min(inner.width, w), min(inner.height, h), pad=True)
    # cover: the covering scale, then a crop of at most the box
    covering = scaled(src_width, src_height, cap(max(w / src_width, h / src_height), grow), None)
    cw, ch = min(w, covering.width), min(h, covering.height)
    return Plan(cw, ch, cw, ch, crop=True)


def cap(scale: float, grow: bool) -> float:
    return scale if grow else min(scale, 1.0)


def scaled(src_width: int, src_height: int, scale: float, max_dimension: int | None) -> Plan:
    """Keep aspect at `scale`, shrunk further if a side passes max_dimension; sides >= 1."""
    if max_dimension is not None:
        scale = min(scale, max_dimension / src_width, max_dimension / src_height)
    width = max(1, round(src_width * scale))
    height = max(1, round(src_height * scale))
    return Plan(width, height, width, height)


def source_crop(
    src_width: int, src_height: int, width: int, height: int
) -> tuple[int, int, int, int]:
    """The centred region (left, top, w, h) of the source with the aspect of `width` x `height`."""
    if src_width * height > src_height * width:  # the source is wider: trim the sides
        w, h = max(1, min(src_width, round(src_height * width / height))), src_height
    else:
        w, h = src_width, max(1, min(src_height, round(src_width * height / width)))
    return (src_width - w) // 2, (src_height - h) // 2, w, h


def reusable(shrink: int, src_width: int, src_height: int, p: Plan) -> bool:
    """May pixels decoded at `shrink` (of an upright `src_width` x `src_height` source) stand
    in for the source in plan `p`? At full scale always; at a DCT shrink only with a factor
    of two or more left to reduce, the margin libvips' own shrink-on-load leaves for quality
    (`vips_thumbnail_find_jpegshrink`)."""
    if shrink == 1:
        return True
    width, height = (p.width, p.height) if p.crop else (p.resize_width, p.resize_height)
    scale = max(width / src_width, height / src_height)
    return scale * shrink <= 0.5
