"""`imgcdn edge` and `imgcdn sign` as real processes: start, serve, aggregate metrics, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from edge.signing import verify
from edge.status import FLUSH_INTERVAL_S
from tests.edge.sourceserver import FakeSource


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def scrape(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with aiohttp.ClientSession() as session, session.get(base + "/metrics") as r:
        text = await r.text()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def write_config(tmp_path: Path, port: int, source: str, workers: int = 1) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"edge:\n  port: {port}\n  workers: {workers}\n  shutdown_grace_s: 5\n"
        f"  source: {source}\n"
        f"  cache: {{disk_path: {tmp_path / 'cache'}, max_age_s: 60}}\n"
        "  transforms: {processes: 1}\n"
    )
    return path


async def start_edge(config: Path, env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "imgcdn.cli",
        "edge",
        "--config",
        str(config),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


async def wait_healthy(session: aiohttp.ClientSession, base: str, within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while True:
        try:
            async with session.get(base + "/healthz") as r:
                if r.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        assert time.monotonic() < deadline, "the edge did not come up"
        await asyncio.sleep(0.1)


async def test_single_process_edge_finishes_in_flight_requests_on_sigterm(
    aiohttp_server, tmp_path, sample_bytes
):
    source = FakeSource()
    source.files["slow.jpg"] = sample_bytes("coffee.jpg")
    server = await aiohttp_server(source.app())
    port = free_port()
    config = write_config(tmp_path, port, f"{{type: http, url: '{server.make_url('/img/')}'}}")
    edge = await start_edge(config)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base)
            source.delay_s = 1.0
            in_flight = asyncio.ensure_future(session.get(base + "/img/slow.jpg?w=20"))
            await asyncio.sleep(0.3)
            edge.send_signal(signal.SIGTERM)
            response = await in_flight
            assert response.status == 200  # finished within the grace period
            assert response.headers["X-Cache"] == "MISS"
        code = await asyncio.wait_for(edge.wait(), 15)
        assert code == 0
    finally:
        if edge.returncode is None:
            edge.kill()
            await edge.wait()


async def test_two_workers_share_the_port_and_aggregate_metrics(tmp_path, images):
    port = free_port()
    config = write_config(tmp_path, port, f"{{type: dir, path: {images}}}", workers=2)
    metrics_dir = tmp_path / "prom"
    edge = await start_edge(config, {"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            await wait_healthy(session, base)
        await asyncio.sleep(1.0)  # let the second worker finish starting too
        for _ in range(40):  # a new connection each time: SO_REUSEPORT spreads them
            fresh = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
            async with fresh as s, s.get(base + "/img/astronaut.jpg?w=33") as r:
                assert r.status == 200
        # the process that answers the scrape adds its own tallies first; the other one's
        # reach the files within FLUSH_INTERVAL_S
        answered = ("imgcdn_edge_requests_total", (("route", "img"), ("status", "200")))
        deadline = time.monotonic() + 2 * FLUSH_INTERVAL_S + 1
        while True:
            values = await scrape(base)
            if values.get(answered) == 40 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
        assert values[answered] == 40
        pids = {p.stem.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, pids  # both processes answered some of them
        hits = sum(v for (name, _), v in values.items() if name == "imgcdn_edge_cache_hits_total")
        misses = values[("imgcdn_edge_cache_misses_total", ())]
        assert hits + misses == 40 and 1 <= misses <= 2  # one miss per process at most
        edge.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(edge.wait(), 20) == 0
    finally:
        if edge.returncode is None:
            edge.kill()
            await edge.wait()


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "imgcdn.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_sign_prints_a_url_the_edge_accepts(tmp_path: Path) -> None:
    done = run_cli("sign", "http://127.0.0.1:8080/img/a.jpg?w=64", "--key", "k", cwd=tmp_path)
    assert done.returncode == 0
    url = done.stdout.strip()
    assert url.startswith("http://127.0.0.1:8080/img/a.jpg?w=64&sig=")
    verify(url.removeprefix("http://127.0.0.1:8080"), "k")
    (tmp_path / "config.yaml").write_text("edge:\n  security: {signing_key: from-config}\n")
    configured = run_cli("sign", "/img/a.jpg", cwd=tmp_path)
    verify(configured.stdout.strip(), "from-config")


def test_cli_errors_are_one_line_and_exit_2(tmp_path: Path) -> None:
    no_key = run_cli("sign", "/img/a.jpg", cwd=tmp_path)
    assert no_key.returncode == 2
    assert no_key.stderr.strip().startswith("imgcdn: edge.security.signing_key")
    (tmp_path / "bad.yaml").write_text("edge:\n  cache: {memory_bytes: lots}\n")
    bad = run_cli("edge", "--config", "bad.yaml", cwd=tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip() == "imgcdn: edge.cache.memory_bytes: expected an integer, got 'lots'"
    (tmp_path / "unknown.yaml").write_text("edge:\n  cache: {memory_byte: 5}\n")
    unknown = run_cli("edge", "--config", "unknown.yaml", cwd=tmp_path)
    assert unknown.returncode == 2 and "edge.cache.memory_byte: unknown key" in unknown.stderr
