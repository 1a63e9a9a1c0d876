"""Default avatar images rendered in a transform worker (called through `TransformPool.run`).

Drawing a default is pure Python (`edge/defaults.py`: ~30-70 ms at 2048 px) and encoding it is
libvips, so both run in the pool, off the event loop, in one round trip.
"""

from __future__ import annotations

from edge.defaults import default_png
from transforms.pipeline import Rendered, render
from transforms.spec import Limits, TransformSpec


def render_default(
    kind: str, avatar_hash: str, initials: str, spec: TransformSpec, limits: Limits
) -> Rendered:
    """The `d=kind` image for `avatar_hash`, drawn square at the spec's larger side, then
    cover-cropped to the spec's box and encoded in its format ("auto": PNG, as drawn)."""
    side = max(spec.width or 1, spec.height or 1)
    return render(default_png(kind, avatar_hash, side, initials=initials), spec, limits)
