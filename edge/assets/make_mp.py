"""Regenerate `mp.png`, the shipped `d=mp` silhouette, from the drawing in `edge/defaults.py`.

Run from the repository root: `python edge/assets/make_mp.py`. Pure Python (no pyvips); the
edge draws `d=mp` at the requested size with the same code, `tests/edge/test_defaults.py`
checks that this file still matches it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ASSETS = Path(__file__).resolve().parent
sys.path.insert(0, str(ASSETS.parents[1]))  # the repository root, when run as a script

from edge.defaults import mp_png  # noqa: E402 - after the path fix above

SIZE = 512


def main() -> None:
    """Write `mp.png` (512 x 512 RGB) next to this script."""
    target = ASSETS / "mp.png"
    target.write_bytes(mp_png(SIZE))
    print(f"wrote {target} ({SIZE}x{SIZE})")


if __name__ == "__main__":
    main()
