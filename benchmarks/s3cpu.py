"""CPU of one S3 call from the edge's event loop: edge/s3.py against aiobotocore, same run.

The result store reads S3 on misses and uploads every new variant; the S3 source fetches
originals. What each call costs the serving process is this client CPU (S3's own time is
latency, not CPU here). Both clients run in this process, alternating, against the same
endpoint: by default a local stand-in S3 in a process of its own that keeps connections
alive, as S3 does (moto's server closes every connection, which adds a TCP connect to
every call of both clients). Per call: a GET of a missing key, a GET of a 20 KB object, a
PUT of 20 KB. The figure is this process's utime + stime per call.

    python -m benchmarks.s3cpu --runs 3
    python -m benchmarks.s3cpu --endpoint http://127.0.0.1:5055 --bucket b   # e.g. moto
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import statistics
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from benchmarks.stack import free_port
from edge.s3 import S3Bucket

BODY = os.urandom(20_000)
CALLS = ("get missing", "get 20 KB", "put 20 KB")


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def per_call_ms(call: Callable[[int], Awaitable[Any]], calls: int) -> float:
    for i in range(min(20, calls)):  # connections opened, credentials resolved
        await call(i)
    started = cpu_s()
    for i in range(calls):
        await call(i)
    return (cpu_s() - started) * 1000 / calls


async def lean_calls(bucket: S3Bucket) -> dict[str, Callable[[int], Awaitable[Any]]]:
    async def get(key: str) -> bytes:
        async with bucket.request("GET", key) as resp:
            return await resp.read()

    async def put(i: int) -> None:
        async with bucket.request("PUT", f"lean/{i}", BODY) as resp:
            assert resp.status == 200, resp.status

    await put(0)
    return {
        "get missing": lambda i: get("no/such/key"),
        "get 20 KB": lambda i: get("lean/0"),
        "put 20 KB": put,
    }


async def boto_calls(client: Any, name: str) -> dict[str, Callable[[int], Awaitable[Any]]]:
    from botocore.exceptions import ClientError

    async def get(key: str) -> bytes:
        try:
            resp = await client.get_object(Bucket=name, Key=key)
        except ClientError:
            return b""
        async with resp["Body"] as stream:
            return bytes(await stream.read())

    async def put(i: int) -> None:
        await client.put_object(Bucket=name, Key=f"boto/{i}", Body=BODY)

    await put(0)
    return {
        "get missing": lambda i: get("no/such/key"),
        "get 20 KB": lambda i: get("boto/0"),
        "put 20 KB": put,
    }


async def measure(endpoint: str, name: str, calls: int, runs: int) -> dict[str, Any]:
    from aiobotocore.session import get_session

    bucket = S3Bucket(name, endpoint_url=endpoint, region=None, connections=10, connect_timeout_s=5)
    await bucket.start()
    figures: dict[str, dict[str, list[float]]] = {c: {"edge": [], "boto": []} for c in CALLS}
    try:
        async with get_session().create_client(
            "s3", endpoint_url=endpoint, region_name="us-east-1"
        ) as client:
            sides = {"edge": await lean_calls(bucket), "boto": await boto_calls(client, name)}
            for run in range(runs):
                for side in ("edge", "boto") if run % 2 == 0 else ("boto", "edge"):
                    for call in CALLS:
                        figures[call][side].append(await per_call_ms(sides[side][call], calls))
    finally:
        await bucket.close()
    return figures


def stand_in(port: int) -> None:
    """A bare S3 stand-in: PUT stores, GET answers the object or NoSuchKey; keep-alive."""
    objects: dict[str, bytes] = {}

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        if request.method == "PUT":
            objects[request.raw_path] = body
            return web.Response()
        if request.raw_path in objects:
            return web.Response(body=objects[request.raw_path])
        return web.Response(status=404, body=b"<Error><Code>NoSuchKey</Code></Error>")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} ({min(values):.3f}-{max(values):.3f})"


def report(figures: dict[str, dict[str, list[float]]]) -> list[str]:
    lines = [
        "| call | edge/s3.py ms CPU | aiobotocore ms CPU | edge / aiobotocore |",
        "|---|---|---|---|",
    ]
    for call, sides in figures.items():
        ratios = [e / b for e, b in zip(sides["edge"], sides["boto"], strict=True) if b > 0]
        lines.append(
            f"| {call} | {spread(sides['edge'])} | {spread(sides['boto'])} | {spread(ratios)} |"
        )
    return lines


async def wait_listening(port: int) -> None:
    for _ in range(100):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return
    raise RuntimeError("the stand-in S3 did not start")


async def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300, help="calls per figure (300)")
    parser.add_argument("--runs", type=int, default=3, help="alternating rounds (3)")
    parser.add_argument("--endpoint", help="an S3 endpoint instead of the stand-in")
    parser.add_argument("--bucket", default="bench", help="its bucket, which must exist")
    args = parser.parse_args(argv)
    for name, value in (("AWS_ACCESS_KEY_ID", "bench"), ("AWS_SECRET_ACCESS_KEY", "bench")):
        os.environ.setdefault(name, value)  # the stand-in checks nothing
    server = None
    endpoint = args.endpoint
    if endpoint is None:
        port = free_port()
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.s3cpu", "--serve", str(port)
        )
        endpoint = f"http://127.0.0.1:{port}"
    try:
        if server is not None:
            await wait_listening(port)
        figures = await measure(endpoint, args.bucket, args.calls, args.runs)
    finally:
        if server is not None:
            server.terminate()
            await server.wait()
    print(f"{args.runs} alternating rounds of {args.calls} calls each, against {endpoint}")
    print("\n".join(report(figures)))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        stand_in(int(sys.argv[2]))
    else:
        sys.exit(asyncio.run(main()))
