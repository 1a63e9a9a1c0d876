"""A built-in stroke font for the `initials` avatar: A-Z as polylines, drawn as round capsules.

No system font is needed (a fresh machine may have none). Glyph coordinates: x from 0 to the
glyph's advance, y from 0 (cap line) to 1 (baseline), y pointing down like the image rows.
"""

from __future__ import annotations

import itertools
import math

from edge.shapes import Capsule

Point = tuple[float, float]
Stroke = list[Point]
STROKE_RADIUS = 0.085  # half the stroke width, in cap heights
LETTER_GAP = 0.30  # space between two glyph boxes, in cap heights


def arc(cx: float, cy: float, rx: float, ry: float, start: float, end: float) -> Stroke:
    """Points on an elliptic arc from `start` to `end` degrees (0 = right, 90 = up)."""
    steps = max(2, math.ceil(abs(end - start) / 9))  # 9 degrees: smooth at 2048 px
    return [
        (
            cx + rx * math.cos(math.radians(start + (end - start) * i / steps)),
            cy - ry * math.sin(math.radians(start + (end - start) * i / steps)),
        )
        for i in range(steps + 1)
    ]


GLYPHS: dict[str, tuple[float, list[Stroke]]] = {
    "A": (0.72, [[(0, 1), (0.36, 0), (0.72, 1)], [(0.13, 0.64), (0.59, 0.64)]]),
    "B": (
        0.64,
        [
            [(0, 1), (0, 0), (0.36, 0), *arc(0.36, 0.245, 0.245, 0.245, 90, -90), (0, 0.49)],
            [(0, 0.49), (0.38, 0.49), *arc(0.38, 0.745, 0.255, 0.255, 90, -90), (0, 1)],
        ],
    ),
    "C": (0.7, [arc(0.38, 0.5, 0.38, 0.5, 42, 318)]),
    "D": (0.7, [[(0, 0), (0, 1), (0.25, 1), *arc(0.25, 0.5, 0.45, 0.5, -90, 90), (0, 0)]]),
    "E": (0.6, [[(0.6, 0), (0, 0), (0, 1), (0.6, 1)], [(0, 0.5), (0.5, 0.5)]]),
    "F": (0.58, [[(0.58, 0), (0, 0), (0, 1)], [(0, 0.5), (0.48, 0.5)]]),
    "G": (0.76, [[*arc(0.38, 0.5, 0.38, 0.5, 45, 360), (0.76, 0.56), (0.44, 0.56)]]),
    "H": (0.7, [[(0, 0), (0, 1)], [(0.7, 0), (0.7, 1)], [(0, 0.5), (0.7, 0.5)]]),
    "I": (0.0, [[(0, 0), (0, 1)]]),
    "J": (0.52, [[(0.52, 0), (0.52, 0.72), *arc(0.26, 0.72, 0.26, 0.28, 0, -180)]]),
    "K": (0.66, [[(0, 0), (0, 1)], [(0.64, 0), (0, 0.62)], [(0.22, 0.44), (0.66, 1)]]),
    "L": (0.56, [[(0, 0), (0, 1), (0.56, 1)]]),
    "M": (0.84, [[(0, 1), (0, 0), (0.42, 0.66), (0.84, 0), (0.84, 1)]]),
    "N": (0.7, [[(0, 1), (0, 0), (0.7, 1), (0.7, 0)]]),
    "O": (0.8, [arc(0.4, 0.5, 0.4, 0.5, 0, 360)]),
    "P": (0.62, [[(0, 1), (0, 0), (0.35, 0), *arc(0.35, 0.27, 0.27, 0.27, 90, -90), (0, 0.54)]]),
    "Q": (0.8, [arc(0.4, 0.5, 0.4, 0.5, 0, 360), [(0.5, 0.74), (0.82, 1.04)]]),
    "R": (
        0.66,
        [
            [(0, 1), (0, 0), (0.35, 0), *arc(0.35, 0.27, 0.27, 0.27, 90, -90), (0, 0.54)],
            [(0.34, 0.54), (0.66, 1)],
        ],
    ),
    "S": (0.64, [[*arc(0.32, 0.25, 0.3, 0.25, 30, 270), *arc(0.32, 0.75, 0.32, 0.25, 90, -150)]]),
    "T": (0.7, [[(0, 0), (0.7, 0)], [(0.35, 0), (0.35, 1)]]),
    "U": (0.7, [[(0, 0), (0, 0.64), *arc(0.35, 0.64, 0.35, 0.36, 180, 360), (0.7, 0)]]),
    "V": (0.72, [[(0, 0), (0.36, 1), (0.72, 0)]]),
    "W": (1.0, [[(0, 0), (0.24, 1), (0.5, 0.3), (0.76, 1), (1.0, 0)]]),
    "X": (0.7, [[(0, 0), (0.7, 1)], [(0.7, 0), (0, 1)]]),
    "Y": (0.72, [[(0, 0), (0.36, 0.52), (0.72, 0)], [(0.36, 0.52), (0.36, 1)]]),
    "Z": (0.66, [[(0, 0), (0.66, 0), (0, 1), (0.66, 1)]]),
}


def text_capsules(text: str, size: int, cap_height: float, max_width: float) -> list[Capsule]:
    """Capsules drawing `text` (letters A-Z) centred in a `size` square.

    The cap height is `cap_height` x size, reduced so the text fits in `max_width` x size.
    """
    glyphs = [GLYPHS[c] for c in text if c in GLYPHS]
    if not glyphs:
        return []
    advances = sum(width for width, _ in glyphs) + LETTER_GAP * (len(glyphs) - 1)
    inked = advances + 2 * STROKE_RADIUS
    height = min(cap_height * size, max_width * size / inked)
    radius = STROKE_RADIUS * height
    x = (size - advances * height) / 2
    y = (size - height) / 2
    capsules: list[Capsule] = []
    for width, strokes in glyphs:
        for stroke in strokes:
            points = [(x + px * height, y + py * height) for px, py in stroke]
            capsules.extend(
                Capsule(ax, ay, bx, by, radius) for (ax, ay), (bx, by) in itertools.pairwise(points)
            )
        x += (width + LETTER_GAP) * height
    return capsules
