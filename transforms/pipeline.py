"""The one libvips entry point: `probe` (header only) and `render` (bytes -> bytes).

Steps, top to bottom: byte limit -> magic-byte allow-list -> header probe (`access=sequential`,
pixel and frame limits, the loader libvips picked must be allowed) -> `thumbnail_buffer`
(shrink-on-load, EXIF auto-rotate, smart crop; or the same `thumbnail_image` call on a
source's kept pixels, see `decode` and transforms/held.py) -> sRGB -> blur/sharpen -> alpha
(flattened onto white for JPEG) -> pad (contain) -> save without metadata. Synchronous, no
I/O, no config. Run it through `transforms.pool.TransformPool`, whose workers call
`configure_vips()`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyvips

from transforms.errors import CorruptImage, SourceTooLarge, UnsupportedImage
from transforms.formats import (
    ANIMATED_FORMATS,
    CONTENT_TYPES,
    save_options,
    sniff,
    source_output_format,
)
from transforms.geometry import Plan, plan, source_crop
from transforms.spec import Limits, TransformSpec

# The libvips loader (as `vips-loader` reports it) -> our input format name.
ALLOWED_LOADERS = {
    "jpegload_buffer": "jpeg",
    "pngload_buffer": "png",
    "gifload_buffer": "gif",
    "webpload_buffer": "webp",
    "heifload_buffer": "heif",
    "tiffload_buffer": "tiff",
}
# Their libvips classes: every other loader is blocked in the workers.
ALLOWED_LOADER_CLASSES = ("Jpeg", "Png", "Nsgif", "Webp", "Heif", "Tiff")
FAIL_ON = "error"  # stop on truncation and decode errors, not on harmless warnings
JPEG_MAX_SHRINK = 8  # libjpeg's DCT scaling: 1/2, 1/4, 1/8
WHITE = 255.0
BAND_BYTES = {"uchar": 1, "char": 1, "ushort": 2, "short": 2, "uint": 4, "int": 4, "float": 4}


@dataclass(frozen=True)
class ImageInfo:
    """What the header says. `width`/`height` are upright (after EXIF orientation)."""

    format: str
    width: int
    height: int
    frames: int
    has_alpha: bool


@dataclass(frozen=True)
class Decoded:
    """A source's pixels in memory, decoded at JPEG DCT `shrink`, to render more variants."""

    image: pyvips.Image
    shrink: int
    nbytes: int


@dataclass(frozen=True)
class Rendered:
    body: bytes
    content_type: str
    width: int
    height: int  # of one frame, for animations
    format: str


def configure_vips() -> None:
    """Process-wide libvips policy for untrusted input; call once per worker process."""
    pyvips.cache_set_max(0)  # the operation cache only costs memory in a proxy
    pyvips.cache_set_max_mem(0)
    pyvips.cache_set_max_files(0)
    pyvips.concurrency_set(1)  # parallelism comes from the process pool
    pyvips.block_untrusted_set(True)
    pyvips.operation_block_set("VipsForeignLoad", True)
    for name in ALLOWED_LOADER_CLASSES:
        pyvips.operation_block_set(f"VipsForeignLoad{name}", False)
    logging.getLogger("pyvips").setLevel(logging.ERROR)


def probe(data: bytes, limits: Limits) -> ImageInfo:
    """Read the header only and enforce the limits; 413 / 415 / 422 on refusal."""
    return open_header(data, limits)[0]


def open_header(data: bytes, limits: Limits) -> tuple[ImageInfo, pyvips.Image]:
    check_size(len(data), limits)  # before the header is even read
    if sniff(data) is None:
        raise UnsupportedImage(
            "not an image in an accepted format (jpeg, png, webp, gif, avif, tiff)"
        )
    try:
        image = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on=FAIL_ON)
        loader = str(image.get("vips-loader"))
        frames = int(image.get("n-pages")) if image.get_typeof("n-pages") else 1
        rotated = image.get_typeof("orientation") != 0 and int(image.get("orientation")) in (
            5,
            6,
            7,
            8,
        )
    except pyvips.Error:
        raise CorruptImage("the image header cannot be read") from None
    fmt = ALLOWED_LOADERS.get(loader)
    if fmt is None:
        raise UnsupportedImage("this image format is not accepted")
    if fmt not in ANIMATED_FORMATS:
        frames = 1  # only the first page/image of TIFF and HEIF is ever decoded
    width, height = (image.height, image.width) if rotated else (image.width, image.height)
    info = ImageInfo(fmt, width, height, frames, bool(image.hasalpha()))
    check_limits(info, len(data), limits)
    return info, image


def check_size(size: int, limits: Limits) -> None:
    if size > limits.max_src_bytes:
        raise SourceTooLarge(f"source is {size} bytes, the limit is {limits.max_src_bytes}")


def check_limits(info: ImageInfo, size: int, limits: Limits) -> None:
    """413 if a source of `size` bytes with this header passes `limits`."""
    check_size(size, limits)
    if info.frames > limits.max_frames:
        raise SourceTooLarge(f"source has {info.frames} frames, the limit is {limits.max_frames}")
    if info.width * info.height * info.frames > limits.max_src_pixels:
        raise SourceTooLarge(
            f"source is {info.width}x{info.height}x{info.frames} pixels, "
            f"the limit is {limits.max_src_pixels}"
        )


def render(data: bytes, spec: TransformSpec, limits: Limits) -> Rendered:
    """Transform `data` per `spec`; spec.format "auto" keeps the source's format."""
    return render_probed(data, probe(data, limits), spec, limits)


def render_probed(
    data: bytes,
    info: ImageInfo,
    spec: TransformSpec,
    limits: Limits,
    kept: Decoded | None = None,
) -> Rendered:
    """`render` for a source whose header `probe` has already read and checked into `info`;
    from `kept` (its decoded pixels, which `geometry.reusable` says serve `spec`) if given."""
    fmt = (
        spec.format if spec.format != "auto" else source_output_format(info.format, info.has_alpha)
    )
    animated = info.frames > 1 and fmt in ANIMATED_FORMATS
    p = plan_for(info, spec, limits)
    try:
        image = resize(data, p, spec, animated, None if animated else kept)
        image = finish(image, p, spec, fmt)
        suffix, options = save_options(
            fmt, spec.effective_quality(fmt), progressive=spec.progressive
        )
        body = image.write_to_buffer(suffix, keep=pyvips.enums.ForeignKeep.NONE, **options)
    except pyvips.Error:
        raise CorruptImage("the image cannot be decoded") from None
    return Rendered(bytes(body), CONTENT_TYPES[fmt], p.width, p.height, fmt)


def plan_for(info: ImageInfo, spec: TransformSpec, limits: Limits) -> Plan:
    return plan(info.width, info.height, spec, limits.max_dimension)


def pixel_bytes(image: pyvips.Image) -> int:
    """Bytes one pixel of `image` takes in memory (all bands)."""
    return int(image.bands) * BAND_BYTES.get(str(image.format), 16)


def decode_shrink(info: ImageInfo, pixel: int, max_bytes: int) -> int | None:
    """The scale to keep a source's pixels at (`pixel` bytes each, per `pixel_bytes` of its
    header): the smallest JPEG DCT shrink (1 for other formats) whose decoded pixels fit
    `max_bytes`; None if none does, or for an animation."""
    if info.frames != 1:
        return None
    for shrink in (1, 2, 4, JPEG_MAX_SHRINK) if info.format == "jpeg" else (1,):
        if -(-info.width // shrink) * -(-info.height // shrink) * pixel <= max_bytes:
            return shrink
    return None


def decode(data: bytes, shrink: int) -> Decoded:
    """All of `data`'s pixels in memory (as stored: EXIF orientation is applied later), at
    JPEG DCT `shrink`."""
    load = f"fail_on={FAIL_ON}" + (f",shrink={shrink}" if shrink > 1 else "")
    try:
        image = pyvips.Image.new_from_buffer(data, load, access="sequential").copy_memory()
    except pyvips.Error:
        raise CorruptImage("the image cannot be decoded") from None
    return Decoded(image, shrink, image.width * image.height * pixel_bytes(image))


def render_square(
    data: bytes, info: ImageInfo, side: int, quality: int, limits: Limits
) -> Rendered:
    """An intermediate for transforms/master.py: the centre square of `side` px (at most the
    short side), upright sRGB JPEG at `quality` (alpha onto white), Huffman tables not
    optimised. A JPEG is decoded at the largest DCT scale that keeps `side` and the rest is
    one `thumbnail_image`: `thumbnail_buffer` decodes at twice that and reduces (1024 -> 256
    px: 5.3 vs 2.8 ms here), and optimising the tables costs another 0.7 ms. `info`: what
    `probe` read from `data`."""
    spec = TransformSpec(width=side, height=side, fit="cover", format="jpeg", quality=quality)
    if info.format != "jpeg":
        return render_probed(data, info, spec, limits)
    shrink = 1
    while shrink < JPEG_MAX_SHRINK and min(info.width, info.height) // (2 * shrink) >= side:
        shrink *= 2
    p = plan(info.width, info.height, spec, limits.max_dimension)
    try:
        image = pyvips.Image.new_from_buffer(
            data, f"fail_on={FAIL_ON},shrink={shrink}", access="sequential"
        )
        image = finish(image.thumbnail_image(side, height=side, crop="centre"), p, spec, "jpeg")
        body = image.write_to_buffer(".jpg", keep=pyvips.enums.ForeignKeep.NONE, Q=quality)
    except pyvips.Error:
        raise CorruptImage("the image cannot be decoded") from None
    return Rendered(bytes(body), CONTENT_TYPES["jpeg"], side, side, "jpeg")


def resize(
    data: bytes, p: Plan, spec: TransformSpec, animated: bool, kept: Decoded | None = None
) -> pyvips.Image:
    """Shrink-on-load to the plan's size (or the same thumbnail from `kept` pixels of a still
    image); cover crops (smart crop for still images)."""
    if kept is not None:
        if p.crop:
            return kept.image.thumbnail_image(p.width, height=p.height, crop=spec.gravity)
        return kept.image.thumbnail_image(p.resize_width, height=p.resize_height, size="force")
    load = f"fail_on={FAIL_ON}" + (",n=-1" if animated else "")
    if p.crop and animated:
        # thumbnail would crop the whole frame strip; crop each frame in source pixels instead
        frames = pyvips.Image.new_from_buffer(data, load, access="sequential")
        page = page_height(frames)
        box = source_crop(frames.width, page, p.width, p.height)
        frames = per_page(frames, lambda f: f.extract_area(*box))
        return frames.thumbnail_image(p.width, height=p.height, size="force")
    if p.crop:
        return pyvips.Image.thumbnail_buffer(
            data, p.width, height=p.height, crop=spec.gravity, option_string=load
        )
    return pyvips.Image.thumbnail_buffer(
        data, p.resize_width, height=p.resize_height, size="force", option_string=load
    )


def finish(image: pyvips.Image, p: Plan, spec: TransformSpec, fmt: str) -> pyvips.Image:
    """Colour, filters, alpha and padding, frame by frame for animations."""
    if image.interpretation == "grey16":
        image = image.colourspace("b-w")
    elif image.interpretation not in ("srgb", "b-w"):
        image = image.colourspace("srgb")
    if spec.blur is not None:
        sigma = spec.blur
        image = per_page(image, lambda f: f.gaussblur(sigma))
    if spec.sharpen is not None:
        sigma = spec.sharpen
        image = per_page(image, lambda f: f.sharpen(sigma=sigma))
    if fmt == "jpeg" and image.hasalpha():
        image = image.flatten(background=[WHITE])
    if p.pad:
        if fmt != "jpeg" and not image.hasalpha():
            image = image.bandjoin_const([255])
        background = [WHITE] * image.bands if fmt == "jpeg" else [0.0] * image.bands
        left, top = (p.width - p.resize_width) // 2, (p.height - p.resize_height) // 2
        image = per_page(
            image,
            lambda f: f.embed(
                left, top, p.width, p.height, extend="background", background=background
            ),
        )
    return image


def page_height(image: pyvips.Image) -> int:
    if image.get_typeof("page-height"):
        return int(image.get("page-height"))
    return int(image.height)


def per_page(image: pyvips.Image, step: Callable[[pyvips.Image], pyvips.Image]) -> pyvips.Image:
    """Apply `step` to each frame of a frame strip (or to the image if it has one frame)."""
    page = page_height(image)
    if page >= image.height:
        return step(image)
    frames = [step(image.crop(0, top, image.width, page)) for top in range(0, image.height, page)]
    joined = pyvips.Image.arrayjoin(frames, across=1).copy()
    joined.set_type(pyvips.GValue.gint_type, "page-height", frames[0].height)
    return joined
