"""Bounded memos for the hit path: results that are pure functions of their key, so forgetting
one only costs its recomputation, and keeping one can never serve anything stale.

What a request line resolves to (path checks, signature, parsed spec, negotiated format, cache
token) depends only on the raw path + query and the `Accept` header. Resolving it costs
~25-40 us of CPU; a cache hit as a whole costs ~50 us. So handlers memoize the resolution
per (raw path, Accept) and look the variant itself up in the tiers on every request, which
keeps purges, expiry and revalidation exactly as they were.
"""

from __future__ import annotations

from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

MAX_KEY_CHARS = 2048  # longer request lines are resolved every time, not kept


class Memo(Generic[K, V]):
    """A dict of at most `max_entries`; when full, the oldest insert makes room (FIFO: O(1),
    and a popular key that was dropped comes straight back)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: dict[K, V] = {}

    def get(self, key: K) -> V | None:
        return self._items.get(key)

    def put(self, key: K, value: V) -> None:
        items = self._items
        if self.max_entries <= 0:
            return
        if len(items) >= self.max_entries and key not in items:
            del items[next(iter(items))]
        items[key] = value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


def request_key(raw_path: str, accept: str | None) -> tuple[str, str | None] | None:
    """The memo key of a request: raw path with query, and `Accept`; None when too long."""
    if len(raw_path) + len(accept or "") > MAX_KEY_CHARS:
        return None
    return raw_path, accept
