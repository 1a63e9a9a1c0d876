"""What one transform worker holds: source bytes the pool sent once, and the decoded pixels of
the ones it renders again.

Bytes: the pool sends a large source once as `(token, bytes)` and then as `Held(token)`; it
alone decides when the worker forgets a token (transforms/pool.py), so both sides agree.

Pixels: decoding is about half of a miss's render (a ~1024 px JPEG to w=240: 7.4 ms from the
bytes, 3.8 ms from decoded pixels, on the benchmark machine). From the second render of a held
source, the worker decodes it once (`pipeline.decode`: JPEG at the largest DCT scale whose
pixels fit half the budget) and renders later variants from those pixels with the same libvips
thumbnail operation, minus the decode. Pixels go with their token, and the least recently used
go first when `budget` (bytes of pixels, per worker) is full. A first render, a one-off source,
an animation, or a size the kept scale cannot serve as well as `thumbnail_buffer` would
(`geometry.reusable`) renders from the bytes as before.
"""

from __future__ import annotations

import collections
from typing import Any, NamedTuple

from transforms import pipeline
from transforms.errors import CorruptImage
from transforms.geometry import reusable
from transforms.pipeline import Decoded, ImageInfo, Rendered
from transforms.spec import Limits, TransformSpec


class Held(NamedTuple):
    """In a task's `args`: the bytes this worker was given earlier under `token`."""

    token: int


class Known(NamedTuple):
    """What the first render of a held source learnt: its header, and the DCT shrink its
    pixels would be kept at (None: never kept)."""

    info: ImageInfo
    shrink: int | None


class HeldSources:
    """This worker's held bytes by token, and decoded pixels for some of them."""

    def __init__(self, budget: int = 0) -> None:
        self.budget = budget  # bytes of decoded pixels; 0: never decode for reuse
        self.data: dict[int, bytes] = {}  # token -> bytes
        self.tokens: dict[int, int] = {}  # id(bytes) -> token, for the bytes held above
        self.known: dict[int, Known] = {}  # token -> its header and pixel scale
        self.pixels: collections.OrderedDict[int, Decoded] = collections.OrderedDict()
        self.pixel_bytes = 0

    def update(self, carry: list[tuple[int, bytes]], forget: list[int]) -> None:
        """Forget what the pool said to forget, then hold what this task carries."""
        for token in forget:
            data = self.data.pop(token, None)
            if data is not None:
                del self.tokens[id(data)]
            self.known.pop(token, None)
            self._drop_pixels(token)
        for token, data in carry:
            self.data[token] = data
            self.tokens[id(data)] = token

    def resolve(self, args: tuple[Any, ...]) -> tuple[Any, ...]:
        """`args` with every `Held` replaced by its bytes."""
        try:
            return tuple(self.data[arg.token] if isinstance(arg, Held) else arg for arg in args)
        except KeyError as err:  # the pool and this worker disagree: a bug, never a guess
            raise RuntimeError(f"the transform worker does not hold source {err}") from None

    def render(self, data: bytes, spec: TransformSpec, limits: Limits) -> Rendered:
        """`pipeline.render`, from kept pixels where they serve this spec."""
        token = self.tokens.get(id(data))
        if token is None or self.budget <= 0:
            return pipeline.render(data, spec, limits)
        known = self.known.get(token)
        if known is None:  # the first render of this source: from the bytes, as always
            info, header = pipeline.open_header(data, limits)
            # at most half the budget: two sources always fit
            shrink = pipeline.decode_shrink(info, pipeline.pixel_bytes(header), self.budget // 2)
            self.known[token] = Known(info, shrink)
            return pipeline.render_probed(data, info, spec, limits)
        info, shrink = known
        pipeline.check_limits(info, len(data), limits)
        p = pipeline.plan_for(info, spec, limits)
        kept = self.pixels.get(token)  # if any, decoded at `shrink`
        if kept is not None:
            self.pixels.move_to_end(token)
        if shrink is None or not reusable(shrink, info.width, info.height, p):
            kept = None
        elif kept is None:  # decoded only for a render it serves: a smaller one may come later
            kept = self._decode(token, data, shrink)
        return pipeline.render_probed(data, info, spec, limits, kept)

    def _decode(self, token: int, data: bytes, shrink: int) -> Decoded | None:
        try:
            decoded = pipeline.decode(data, shrink)
        except CorruptImage:  # rendering from the bytes decides what the client hears
            self.known[token] = self.known[token]._replace(shrink=None)
            return None
        while self.pixels and self.pixel_bytes + decoded.nbytes > self.budget:
            self._drop_pixels(next(iter(self.pixels)))
        self.pixels[token] = decoded
        self.pixel_bytes += decoded.nbytes
        return decoded

    def _drop_pixels(self, token: int) -> None:
        decoded = self.pixels.pop(token, None)
        if decoded is not None:
            self.pixel_bytes -= decoded.nbytes


SOURCES = HeldSources()  # this process's; transforms/worker.py sets its budget


def render(data: bytes, spec: TransformSpec, limits: Limits) -> Rendered:
    """What `TransformPool.render` runs in a worker: `pipeline.render`, reusing kept pixels."""
    return SOURCES.render(data, spec, limits)
