"""Recently fetched originals, kept in this process's memory so that more variants of the same
image skip the fetch (thumbor keeps originals in its `STORAGE` for the same reason).

Avatar traffic asks for many sizes of the same few photos; `/img` pages ask for several widths
of one source. Without this, every one of those misses reads the original again: a file read
and a thread hop for a `dir` source, an HTTP request to the origin for an avatar photo (whose
CPU the origin takes from the same machine). Entries are only ever used under the identity
that made them: a photo id + version for avatars (immutable), a source's validator while its
record is fresh for `/img` (the same window in which its variants are served without asking
the source). Bounded by the sum of body bytes (`edge.cache.originals_bytes`, 0 = off); one
original larger than an eighth of the budget is not kept.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol, TypeVar

from cachetools import LRUCache


class HasBody(Protocol):
    @property
    def body(self) -> bytes: ...


V = TypeVar("V", bound=HasBody)


def body_size(kept: tuple[Hashable, HasBody]) -> int:
    return len(kept[1].body)


class Originals:
    """One budget for every kind of original; keys are namespaced by their callers.

    An entry can be demoted to "spare": kept only while the budget has room, and the first to
    go when anything else needs it. A photo's original is demoted once its master exists
    (edge/avatar_variants.py): the master serves the sizes pages ask for, and it is a fifth
    of the bytes, but the original still serves larger sizes, and during an origin outage,
    for as long as nothing needs its room.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes  # 0: nothing is kept
        size = max(max_bytes, 1)
        self._entries: LRUCache[Hashable, tuple[Hashable, HasBody]] = LRUCache(size, body_size)
        self._spare: LRUCache[Hashable, tuple[Hashable, HasBody]] = LRUCache(size, body_size)

    def get(self, key: Hashable, version: Hashable, kind: type[V]) -> V | None:
        """The original of type `kind` kept for `key`, if it was kept under `version`."""
        kept = self._entries.get(key) or self._spare.get(key)
        if kept is None or kept[0] != version or not isinstance(kept[1], kind):
            return None
        return kept[1]

    def put(self, key: Hashable, version: Hashable, value: HasBody) -> None:
        if self.max_bytes <= 0 or len(value.body) > self.max_bytes // 8:
            return
        self.discard(key)
        while self._spare and self.size_bytes() + len(value.body) > self.max_bytes:
            self._spare.popitem()  # spare entries make room first
        self._entries[key] = (version, value)  # then the least recently used others

    def demote(self, key: Hashable) -> None:
        """Keep `key` only while there is room to spare (see the class docstring)."""
        kept = self._entries.pop(key, None)
        if kept is not None:
            self._spare[key] = kept

    def discard(self, key: Hashable) -> None:
        self._entries.pop(key, None)
        self._spare.pop(key, None)

    def size_bytes(self) -> int:
        return int(self._entries.currsize + self._spare.currsize)
