"""`benchmarks.transforms`: one alternating rep against real workers and a real bare pool."""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable

from benchmarks.transforms import bare_init, one_rep
from transforms.pool import TransformPool


async def test_one_rep_reports_both_rates_and_the_pools_own_cpu(
    sample_bytes: Callable[[str], bytes],
) -> None:
    chunk = [(sample_bytes(name), 64, "jpeg") for name in ("static10k.jpg", "rocket.jpg")] * 2
    pool = TransformPool(1, max_queue=len(chunk), timeout_s=30)
    await pool.start()
    bare = multiprocessing.get_context("forkserver").Pool(1, initializer=bare_init)
    try:
        pool_rate, bare_rate, own_ms = await one_rep(pool, bare, chunk, 2)
    finally:
        bare.terminate()
        bare.join()
        await pool.close()
    assert all(math.isfinite(x) and x > 0 for x in (pool_rate, bare_rate, own_ms))
    assert own_ms < 1000 / pool_rate  # the serving side's share is below a whole render
