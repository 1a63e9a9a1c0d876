"""Counting what the cyclic GC would have to walk: each object it tracks costs every full
collection (which stops the loop) about a microsecond, so caches and memos must keep few."""

from __future__ import annotations

import gc
from collections.abc import Iterable


def tracked_held(values: Iterable[object]) -> int:
    """The distinct GC-tracked objects among `values` and what each holds directly (classes
    left out: they are shared by every instance)."""
    seen: dict[int, object] = {}
    for value in values:
        for obj in (value, *gc.get_referents(value)):
            if gc.is_tracked(obj) and not isinstance(obj, type):
                seen[id(obj)] = obj
    return len(seen)
