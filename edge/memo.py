"""Bounded memos for the hit path: results that are pure functions of their key, so forgetting
one only costs its recomputation, and keeping one can never serve anything stale.

What a request line resolves to (path checks, signature, parsed spec, negotiated format, cache
token) depends only on the raw path + query and the `Accept` header. Resolving it costs
~25-40 us of CPU; a cache hit as a whole costs ~50 us. So handlers memoize the resolution
per (raw path, Accept) and look the variant itself up in the tiers on every request, which
keeps purges, expiry and revalidation exactly as they were. A route is kept only once its
request was answered: the 503s and 404s of URLs never seen would push the hits' routes out.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Generic, TypeVar, cast

K = TypeVar("K")
V = TypeVar("V")
T = TypeVar("T")

MAX_KEY_CHARS = 2048  # longer request lines are resolved every time, not kept


class Memo(Generic[K, V]):
    """A dict of at most `max_entries`; when full, the oldest insert makes room (FIFO: O(1),
    and a popular key that was dropped comes straight back).

    An OrderedDict, not a dict: a dict's oldest key is found by scanning past the slots of
    the keys already dropped, so under a stream of new URLs (misses, 503s) each insert cost
    1.4 / 5 / 19 us at 1k / 8k / 64k entries against 0.4 us here; lookups cost the same."""

    def __init__(self, max_entries: int, key_chars: Callable[[K], int] | None = None) -> None:
        """`key_chars`: a key's size; keys over MAX_KEY_CHARS are never kept (so `get` needs
        no check: it simply misses them)."""
        self.max_entries = max_entries
        self.key_chars = key_chars
        self._items: OrderedDict[K, V] = OrderedDict()
        self.get: Callable[[K], V | None] = self._items.get  # the dict's own: no frame of ours

    def put(self, key: K, value: V) -> None:
        items = self._items
        if self.max_entries <= 0:
            return
        if self.key_chars is not None and self.key_chars(key) > MAX_KEY_CHARS:
            return
        if len(items) >= self.max_entries and key not in items:
            items.popitem(last=False)
        items[key] = value

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


class Interner:
    """One shared instance per distinct value, so memoized routes that resolve to equal
    parts (every hash asking `?s=80` has the same spec and query) hold one object between
    them, not a copy each: each copy was one more object for every full collection of the
    cyclic GC to walk, with the loop stopped. Bounded: when full it starts over (routes keep
    what they hold; only the sharing is lost)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._items: dict[object, object] = {}

    def __call__(self, value: T) -> T:
        """`value`, or the equal one kept earlier (values must be hashable)."""
        kept = self._items.get(value)
        if kept is not None:
            return cast(T, kept)
        if len(self._items) >= self.max_entries:
            self._items.clear()
        self._items[value] = value
        return value

    def __len__(self) -> int:
        return len(self._items)


RequestKey = tuple[str, str | None]  # raw path with query, and `Accept`


def request_chars(key: RequestKey) -> int:
    return len(key[0]) + len(key[1] or "")


def request_memo(max_entries: int) -> Memo[RequestKey, Any]:
    """A memo of request resolutions keyed by (raw path with query, `Accept`)."""
    return Memo(max_entries, request_chars)
