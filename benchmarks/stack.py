"""Start and stop a throwaway imgcdn stack (origin + edge) for one benchmark.

Everything lives in a temporary directory: a generated `config.yaml`, the edge's `dir` source
(the sample images), its disk cache, the origin's SQLite database and blob directory. Both
services run through the real CLI (`imgcdn origin --config F`, `imgcdn edge --config F`) on
free ports of 127.0.0.1; `IMGCDN_*` variables of the caller are not passed on, so the file is
the whole configuration. Stopping sends SIGTERM to each service, waits for a graceful exit,
then kills whatever is left of the processes it started (by pid).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml

import imgcdn
from benchmarks.procstats import descendants, read_stat

SAMPLES = Path(imgcdn.__file__).parent / "samples"
START_TIMEOUT_S = 90.0


@dataclass(frozen=True)
class StackOptions:
    workers: int = 1  # edge serving processes (edge.workers)
    transform_processes: int = 0  # edge.transforms.processes; 0 = one per CPU
    overrides: Mapping[str, Any] = field(default_factory=dict)  # "edge.cache.memory_bytes": 0
    keep_dir: bool = False


def total_transform_processes(processes: int, workers: int) -> int:
    """Transform workers of the whole edge: each serving process has its own pool of
    `processes`, or with 0 its share of one per CPU (as `edge.server.split_processes`)."""
    per_worker = processes if processes > 0 else max(1, (os.cpu_count() or 1) // workers)
    return per_worker * workers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def imgcdn_command(*args: str) -> list[str]:
    """argv running the imgcdn CLI of this interpreter's environment."""
    script = Path(sys.executable).parent / "imgcdn"
    if script.exists():
        return [str(script), *args]
    return [
        sys.executable,
        "-c",
        "import sys; from imgcdn.cli import main; sys.exit(main())",
        *args,
    ]


async def wait_answering(
    proc: subprocess.Popen[bytes],
    url: str,
    name: str,
    log: Path,
    timeout_s: float = START_TIMEOUT_S,
) -> None:
    """Poll `url` until it answers 200; fail at once (with the log's tail) if `proc` exits."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start:\n{tail(log, 30)}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{name} did not answer {url} in {timeout_s:.0f}s")


def tail(path: Path, lines: int) -> str:
    """The last `lines` lines of a log file ("" if unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def child_env(environ: Mapping[str, str]) -> tuple[dict[str, str], list[str]]:
    """The environment the stack's servers get, and the `IMGCDN_*` names left out of it: the
    benchmark's config file decides, so a shell's settings cannot skew a run unseen."""
    dropped = sorted(k for k in environ if k.startswith("IMGCDN_"))
    return {k: v for k, v in environ.items() if not k.startswith("IMGCDN_")}, dropped


def apply_override(config: dict[str, Any], dotted: str, value: Any) -> None:
    """Set `edge.cache.memory_bytes`-style keys in a nested config mapping."""
    *parents, last = dotted.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


class Stack:
    """One origin + one edge (with its workers), started by `start()`, ended by `stop()`."""

    def __init__(self, options: StackOptions) -> None:
        self.options = options
        self.dir = Path(tempfile.mkdtemp(prefix="imgcdn-bench-"))
        self.edge_port, self.origin_port = free_port(), free_port()
        self.edge_url = f"http://127.0.0.1:{self.edge_port}"
        self.origin_url = f"http://127.0.0.1:{self.origin_port}"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.config = self.build_config()

    @property
    def progressive(self) -> bool:
        return bool(self.config["edge"].get("transforms", {}).get("jpeg_progressive", False))

    @property
    def transform_processes(self) -> int:
        return total_transform_processes(
            int(self.config["edge"]["transforms"].get("processes", 0)), self.workers
        )

    @property
    def workers(self) -> int:
        return int(self.config["edge"].get("workers", 1))

    def build_config(self) -> dict[str, Any]:
        token = secrets.token_urlsafe(16)
        config: dict[str, Any] = {
            "edge": {
                "host": "127.0.0.1",
                "port": self.edge_port,
                "workers": self.options.workers,
                "origin_url": self.origin_url,
                "source": {"type": "dir", "path": str(self.dir / "images")},
                "cache": {"disk_path": str(self.dir / "edge-cache")},
                "transforms": {"processes": self.options.transform_processes},
                "security": {"purge_token": token},
            },
            "origin": {
                "host": "127.0.0.1",
                "port": self.origin_port,
                "public_url": self.origin_url,
                "database_url": f"sqlite:///{self.dir / 'origin.db'}",
                "storage": {"type": "local", "path": str(self.dir / "blobs")},
                "edges": [self.edge_url],
                "purge_token": token,
            },
        }
        for key, value in self.options.overrides.items():
            apply_override(config, key, value)
        return config

    async def start(self) -> None:
        """Write the config, copy the sample images, start origin then edge, wait for both."""
        images = self.dir / "images"
        images.mkdir(parents=True, exist_ok=True)
        for sample in SAMPLES.iterdir():
            if sample.suffix in (".jpg", ".png"):
                shutil.copyfile(sample, images / sample.name)
        config_file = self.dir / "config.yaml"
        config_file.write_text(yaml.safe_dump(self.config, sort_keys=False), encoding="utf-8")
        env, dropped = child_env(os.environ)
        if dropped:  # an experiment switched this way would silently measure nothing
            print(
                f"note: {', '.join(dropped)} not passed to the started stack; "
                "use --set edge.KEY=VALUE",
                file=sys.stderr,
            )
        try:
            for name in ("origin", "edge"):
                self.spawn(name, config_file, env)
                url = self.origin_url if name == "origin" else self.edge_url
                await self.wait_healthy(name, url)
        except BaseException:
            self.stop()
            raise

    def spawn(self, name: str, config_file: Path, env: Mapping[str, str]) -> None:
        """Start `imgcdn NAME --config FILE` with `env`, output to NAME.log in the stack's
        directory."""
        with open(self.dir / f"{name}.log", "wb") as log:  # the child keeps its own copy
            self.procs[name] = subprocess.Popen(
                imgcdn_command(name, "--config", str(config_file)),
                cwd=self.dir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    async def wait_healthy(self, name: str, url: str) -> None:
        await wait_answering(self.procs[name], url + "/healthz", name, self.dir / f"{name}.log")

    def log_tail(self, name: str, lines: int = 30) -> str:
        return tail(self.dir / f"{name}.log", lines)

    def pids(self) -> dict[str, int]:
        return {name: p.pid for name, p in self.procs.items() if p.poll() is None}

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM each service (edge first), wait, then SIGKILL any of their processes left."""
        for name in ("edge", "origin"):
            proc = self.procs.get(name)
            if proc is None:
                continue
            stop_tree(proc, grace_s)
        self.procs.clear()
        if not self.options.keep_dir:
            shutil.rmtree(self.dir, ignore_errors=True)


def stop_tree(proc: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM `proc`, wait `grace_s`, SIGKILL it if need be, then any process of its tree
    still running (by pid: only processes this benchmark started)."""
    tree = descendants(proc.pid)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for pid in tree[1:]:
        kill_if_alive(pid)


def kill_if_alive(pid: int) -> None:
    """SIGKILL a leftover child we started (it is ours: it was in our service's tree)."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        stat = read_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):  # gone, or a zombie waiting to be reaped
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
