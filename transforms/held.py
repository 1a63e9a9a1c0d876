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


class HeldSources:
    """This worker's held bytes by token, and decoded pixels for some of them."""

    def __init__(self, budget: int = 0) -> None:
        self.budget = budget  # bytes of decoded pixels; 0: never decode for reuse
        self.data: dict[int, bytes] = {}  # token -> bytes
        self.tokens: dict[int, int] = {}  # id(bytes) -> token, for the bytes held above
        self.infos: dict[int, ImageInfo] = {}  # token -> what its header said
        self.shrinks: dict[int, int | None] = {}  # token -> the scale its pixels fit at
        self.pixels: collections.OrderedDict[int, Decoded] = collections.OrderedDict()
        self.pixel_bytes = 0

    def update(self, carry: list[tuple[int, bytes]], forget: list[int]) -> None:
        """Forget what the pool said to forget, then hold what this task carries."""
        for token in forget:
            data = self.data.pop(token, None)
            if data is not None:
                del self.tokens[id(data)]
            self.infos.pop(token, None)
            self.shrinks.pop(token, None)
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
        info = self.infos.get(token)
        if info is None:  # the first render of this source: from the bytes, as always
            info = pipeline.probe(data, limits)
            self.infos[token] = info
            return pipeline.render_probed(data, info, spec, limits)
        pipeline.check_limits(info, len(data), limits)
        p = pipeline.plan_for(info, spec, limits)
        kept = self.pixels.get(token)
        if kept is not None:
            self.pixels.move_to_end(token)
        else:
            if token not in self.shrinks:  # at most half the budget: two sources always fit
                self.shrinks[token] = pipeline.decode_shrink(data, info, self.budget // 2)
            shrink = self.shrinks[token]
            # decoded only for a render it serves: a later, smaller one may come first
            if shrink is not None and reusable(shrink, info.width, info.height, p):
                kept = self._decode(token, data, shrink)
        if kept is not None and not reusable(kept.shrink, info.width, info.height, p):
            kept = None
        return pipeline.render_probed(data, info, spec, limits, kept)

    def _decode(self, token: int, data: bytes, shrink: int) -> Decoded | None:
        try:
            decoded = pipeline.decode(data, shrink)
        except CorruptImage:  # rendering from the bytes decides what the client hears
            self.shrinks[token] = None
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
