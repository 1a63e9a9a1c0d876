"""What each scenario requests: URL sequences and the matching baseline jobs. Pure, no I/O.

- `hit`: one hot variant, `/img/static10k.jpg?w=200`, pre-warmed.
- `miss`: `/img/{src}?w={w}&h={h}` over the six ~1024 px JPEGs, `w` cycling 100..600 (in
  strides of 97, so any few seconds of load see the whole range evenly). `h` runs
  from 4096 down to 1200: far above any output height these landscape/square sources reach at
  w <= 600, so with the default `fit=inside` the image is exactly what `?w={w}` alone gives (and
  what the baseline renders), yet `h` is a real parameter that enters the cache key. That gives
  6 x 501 x 2897 (~8.7 M) distinct keys before one repeats, so every request is a real transform
  with the default cache sizes. (Unknown parameters like `?n=1` do not enter the key.)
- `zipf` / `avatars`: 10 000 avatar hashes, popularity Zipf(1.1) by rank, sizes 32/64/80/128/256
  uniformly, `/avatar/{hash}?s={size}&d=identicon`. The top `users` ranks are real users with
  photos (seeded through the origin API); the other hashes are unknown and get identicons.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

SCENARIOS = ("hit", "miss", "zipf", "avatars")

MID_SOURCES = (
    "astronaut.jpg",
    "coffee.jpg",
    "rocket.jpg",
    "hubble.jpg",
    "retina.jpg",
    "pendants.jpg",
)
HIT_SOURCE = "static10k.jpg"
HIT_PATH = "/img/static10k.jpg?w=200"
MISS_WIDTHS = range(100, 601)
MISS_HEIGHTS = range(4096, 1199, -1)
WIDTH_STRIDE = 97
AVATAR_SIZES = (32, 64, 80, 128, 256)
ZIPF_EXPONENT = 1.1
ZIPF_HASHES = 10_000
DEFAULT_USERS = 200


@dataclass(frozen=True)
class RenderJob:
    """One image the bare-pyvips baseline renders: a source file to `width` (x `height`)."""

    source: str
    width: int
    height: int | None = None  # set -> a `height` box; with `crop` a centred cover crop
    crop: bool = False


def miss_path(n: int) -> str:
    """The `n`-th miss URL; distinct for every n below ~8.7 M."""
    src, width, height = miss_params(n)
    return f"/img/{src}?w={width}&h={height}"


def miss_params(n: int) -> tuple[str, int, int]:
    sources, widths = len(MID_SOURCES), len(MISS_WIDTHS)
    src = MID_SOURCES[n % sources]
    # stride 97 (coprime to 501): every short window already spans the whole 100..600 range
    width = MISS_WIDTHS[(n // sources * WIDTH_STRIDE) % widths]
    height = MISS_HEIGHTS[(n // (sources * widths)) % len(MISS_HEIGHTS)]
    return src, width, height


def miss_paths(start: int = 0) -> Iterator[str]:
    return (miss_path(n) for n in itertools.count(start))


def miss_jobs(count: int = 3006) -> list[RenderJob]:
    """Baseline inputs for `miss`: the same sources and widths, in the same order."""
    return [RenderJob(miss_params(n)[0], miss_params(n)[1]) for n in range(count)]


def avatar_jobs() -> list[RenderJob]:
    """Baseline inputs for the avatar scenarios: every photo at every size, square cover crop."""
    return [RenderJob(src, s, s, True) for s in AVATAR_SIZES for src in MID_SOURCES]


def ghost_hash(rank: int) -> str:
    """A hash nobody registered (md5 of an address under the reserved `.invalid` TLD)."""
    return hashlib.md5(f"ghost-{rank}@bench.invalid".encode()).hexdigest()


def avatar_path(avatar_hash: str, size: int) -> str:
    return f"/avatar/{avatar_hash}?s={size}&d=identicon"


class ZipfMix:
    """Avatar requests: rank r (1-based) is drawn with probability ~ r^-s, the size uniformly."""

    def __init__(
        self,
        real_hashes: Sequence[str] = (),
        hashes: int = ZIPF_HASHES,
        exponent: float = ZIPF_EXPONENT,
        sizes: Sequence[int] = AVATAR_SIZES,
    ) -> None:
        if len(real_hashes) > hashes:
            raise ValueError("more real users than hashes")
        self.hashes = [*real_hashes, *(ghost_hash(r) for r in range(len(real_hashes), hashes))]
        self.sizes = tuple(sizes)
        self.weights: list[float] = [float(rank + 1) ** -exponent for rank in range(hashes)]
        self.cumulative = list(itertools.accumulate(self.weights))
        self.real = len(real_hashes)

    def draw(self, rng: random.Random) -> tuple[int, int]:
        """-> (rank index 0.., size)."""
        rank = bisect.bisect_right(self.cumulative, rng.random() * self.cumulative[-1])
        return min(rank, len(self.hashes) - 1), rng.choice(self.sizes)

    def paths(self, seed: int, count: int) -> list[str]:
        """`count` requests drawn from the mix with a fixed seed (the same list for wrk)."""
        rng = random.Random(seed)
        return [avatar_path(self.hashes[r], s) for r, s in (self.draw(rng) for _ in range(count))]

    def all_paths(self) -> list[str]:
        """Every (hash, size) once, most popular hash first: the warm-up that fills the cache."""
        return [avatar_path(h, s) for h in self.hashes for s in self.sizes]

    def probability(self, path_index: int) -> float:
        """Probability of `all_paths()[path_index]` in the mix."""
        rank = path_index // len(self.sizes)
        return self.weights[rank] / self.cumulative[-1] / len(self.sizes)

    def real_share(self) -> float:
        """Share of requests that ask for a real user's photo."""
        return self.cumulative[self.real - 1] / self.cumulative[-1] if self.real else 0.0

    def mean_body(self, sizes: Mapping[str, int]) -> float:
        """Expected response body size of the mix, from body sizes seen per path."""
        paths = self.all_paths()
        total = weight = 0.0
        for i, path in enumerate(paths):
            if path in sizes:
                p = self.probability(i)
                total += p * sizes[path]
                weight += p
        return total / weight if weight else 0.0


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a JPEG's SOF marker, or None when `data` is not a readable JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        if marker in (0xC0, 0xC1, 0xC2):
            height = int.from_bytes(data[i + 5 : i + 7], "big")
            width = int.from_bytes(data[i + 7 : i + 9], "big")
            return width, height
        i += 2 + length
    return None
