"""The two ceilings every scenario is compared with, measured in the same run.

- Hit ceiling: a bare aiohttp handler that returns a fixed bytes body of the same size (the
  very bytes of the hot variant when we have them), one process per edge serving process, all
  on one port with SO_REUSEPORT, `access_log=None`, uvloop when the edge would use it. No cache
  lookup, no headers beyond aiohttp's own: whatever the edge adds is its overhead.
- Miss ceiling: bare pyvips in as many processes as the edge has transform workers, each with
  libvips concurrency 1 and its operation cache off, looping `thumbnail_buffer` + save over the
  same sources and sizes with the edge's own save options (`transforms.formats.save_options`),
  from memory: no HTTP, no probe, no disk, no pool. For `miss` it is measured twice: from the
  bytes (a decode per image), and from each source's pixels decoded once per process, the
  work the edge's workers do for the sources they hold (transforms/held.py).

`python -m benchmarks.baselines hit-server PORT BODY_FILE [--uvloop] [--edge-headers]` runs one
hit process; `--edge-headers` adds the nine headers an edge memory hit sends (the same names,
values of the same length), to tell the edge's own work from the cost of its headers.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.scenarios import RenderJob


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# What an edge memory hit sends besides aiohttp's own Content-Length, Date and Server.
EDGE_HIT_HEADERS = {
    "Content-Type": "image/jpeg",
    "ETag": '"864f51066b20020b05990e8efc24472f"',
    "Last-Modified": "Tue, 24 Nov 2026 04:26:51 GMT",
    "Cache-Control": "public, max-age=86400, stale-while-revalidate=86400, stale-if-error=86400",
    "X-Cache": "HIT-MEMORY",
    "Cache-Status": "imgcdn; hit; ttl=86399; detail=memory",
    "X-Content-Type-Options": "nosniff",
    "Vary": "Accept",
    "Age": "0",
}


def hit_server_command(port: int, body_file: Path, use_uvloop: bool) -> list[str]:
    """argv of one bare hit-baseline process (start N of them on the same port)."""
    args = [sys.executable, "-m", "benchmarks.baselines", "hit-server", str(port), str(body_file)]
    return [*args, "--uvloop"] if use_uvloop else args


def serve_hit(port: int, body_file: Path, use_uvloop: bool, edge_headers: bool = False) -> None:
    from aiohttp import web

    body = body_file.read_bytes()

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="image/jpeg")

    async def with_edge_headers(request: web.Request) -> web.Response:
        return web.Response(body=body, headers=EDGE_HIT_HEADERS)

    app = web.Application()
    app.router.add_get("/{tail:.*}", with_edge_headers if edge_headers else handler)
    loop = None
    if use_uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
    web.run_app(
        app,
        host="127.0.0.1",
        port=port,
        access_log=None,
        reuse_port=True,
        print=None,
        loop=loop,
        handle_signals=True,
    )


@dataclass(frozen=True)
class PyvipsResult:
    processes: int
    images: int
    rate: float  # images/s, summed over processes
    mean_output_bytes: float
    progressive: bool

    def to_json(self) -> dict[str, object]:
        return {
            "processes": self.processes,
            "images": self.images,
            "images_per_s": round(self.rate, 1),
            "mean_output_bytes": round(self.mean_output_bytes),
            "progressive": self.progressive,
        }


def run_pyvips(
    jobs: Sequence[RenderJob],
    sources_dir: Path,
    *,
    processes: int,
    duration_s: float,
    progressive: bool,
    quality: int = 80,
    decoded: bool = False,
) -> PyvipsResult:
    """Render `jobs` round-robin in `processes` fresh processes for `duration_s`; images/s.
    `decoded`: from each source's pixels, decoded once per process (`thumbnail_image`)."""
    ctx = mp.get_context("spawn")  # fresh interpreters: no state inherited from this one
    start = ctx.Event()
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=pyvips_worker,
            args=(
                list(jobs),
                str(sources_dir),
                i,
                processes,
                duration_s,
                progressive,
                quality,
                decoded,
            ),
            kwargs={"start": start, "results": results},
            daemon=True,
        )
        for i in range(processes)
    ]
    for p in procs:
        p.start()
    try:
        ready = collect(results, procs, 120.0)
        if any(r != "ready" for r in ready):
            raise RuntimeError(f"pyvips baseline worker failed: {ready}")
        start.set()
        outs = collect(results, procs, duration_s + 120.0)
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
    images = sum(o[0] for o in outs)
    rate = sum(o[0] / o[1] for o in outs if o[1] > 0)
    return PyvipsResult(
        processes, images, rate, sum(o[2] for o in outs) / max(1, images), progressive
    )


def collect(results: Any, procs: Sequence[Any], timeout_s: float) -> list[Any]:
    """One message per process; fail fast when a worker dies instead of waiting forever."""
    out: list[Any] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < len(procs):
        try:
            out.append(results.get(timeout=0.5))
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if dead or time.monotonic() > deadline:
                raise RuntimeError(f"pyvips baseline workers failed (exit codes {dead})") from None
    return out


def pyvips_worker(
    jobs: list[RenderJob],
    sources_dir: str,
    index: int,
    processes: int,
    duration_s: float,
    progressive: bool,
    quality: int,
    decoded: bool,
    *,
    start: object,
    results: object,
) -> None:
    os.environ["VIPS_CONCURRENCY"] = "1"
    try:
        import pyvips

        from transforms.formats import save_options

        pyvips.cache_set_max(0)
        pyvips.cache_set_max_mem(0)
        pyvips.concurrency_set(1)
        suffix, options = save_options("jpeg", quality, progressive=progressive)
        data = {j.source: (Path(sources_dir) / j.source).read_bytes() for j in jobs}
        pixels = (
            {
                source: pyvips.Image.new_from_buffer(body, "", access="sequential").copy_memory()
                for source, body in data.items()
            }
            if decoded
            else {}
        )

        def render(job: RenderJob) -> int:
            kwargs: dict[str, object] = {}
            if job.height is not None:
                kwargs["height"] = job.height
            if job.crop:
                kwargs["crop"] = "centre"
            if decoded:
                image = pixels[job.source].thumbnail_image(job.width, **kwargs)
            else:
                image = pyvips.Image.thumbnail_buffer(data[job.source], job.width, **kwargs)
            return len(image.write_to_buffer(suffix, keep=pyvips.enums.ForeignKeep.NONE, **options))

        for source in data:  # warm up: codecs loaded, first-call costs paid
            render(next(j for j in jobs if j.source == source))
    except Exception as err:  # report instead of hanging the parent
        results.put(f"error: {err!r}")  # type: ignore[attr-defined]
        return
    results.put("ready")  # type: ignore[attr-defined]
    start.wait()  # type: ignore[attr-defined]
    n = out_bytes = 0
    i = index  # each process starts at its own offset of the same sequence
    t0 = time.perf_counter()
    deadline = t0 + duration_s
    while time.perf_counter() < deadline:
        out_bytes += render(jobs[i % len(jobs)])
        i += processes
        n += 1
    results.put((n, time.perf_counter() - t0, out_bytes))  # type: ignore[attr-defined]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.baselines")
    sub = parser.add_subparsers(dest="command", required=True)
    hit = sub.add_parser("hit-server", help="one bare aiohttp process serving a fixed body")
    hit.add_argument("port", type=int)
    hit.add_argument("body_file", type=Path)
    hit.add_argument("--uvloop", action="store_true")
    hit.add_argument("--edge-headers", action="store_true", help="send an edge hit's headers")
    args = parser.parse_args(argv)
    if args.command == "hit-server":
        serve_hit(args.port, args.body_file, args.uvloop, args.edge_headers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
