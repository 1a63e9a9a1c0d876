"""Real imgcdn processes for the hardening tests, and what /proc says about them.

Services run through the real CLI (`python -m imgcdn.cli edge|origin --config FILE`) on free
ports of 127.0.0.1, their output in a log file the tests can read. Helpers are synchronous so
fixtures of any scope can use them. Everything a test starts is stopped by pid, never by name.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from benchmarks.procstats import children_map, descendants, read_stat

START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_fd_limit(wanted: int = 4096) -> None:
    """Idle-connection tests open hundreds of sockets; children inherit the raised soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


@dataclass
class Service:
    """One running `imgcdn edge` or `imgcdn origin`."""

    name: str
    config: Path
    port: int
    log: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None


def write_config(path: Path, config: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def start_service(name: str, config: Path, port: int, *, wait: bool = True) -> Service:
    """`imgcdn NAME --config CONFIG`; by default wait until /healthz answers 200."""
    log = config.with_name(f"{name}-{port}.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCDN_")}
    with open(log, "ab") as out:  # the child keeps its own descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "imgcdn.cli", name, "--config", str(config)],
            cwd=config.parent,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: nothing it starts can leak
        )
    service = Service(name, config, port, log, process)
    if wait:
        try:
            wait_healthy(service)
        except BaseException:
            stop_service(service, grace_s=0)
            raise
    return service


def wait_healthy(service: Service, within_s: float = START_TIMEOUT_S) -> float:
    """Poll /healthz until 200; returns the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.log_text()[-3000:]}")
        if http_status(service.url + "/healthz") == 200:
            return time.monotonic() - started
        time.sleep(0.05)
    raise RuntimeError(f"{service.name} did not answer /healthz within {within_s:.0f} s")


def http_status(url: str, timeout_s: float = 2.0) -> int | None:
    """The status of a GET, or None when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as err:
        return int(err.code)
    except (OSError, urllib.error.URLError):
        return None


def stop_service(service: Service, grace_s: float = 15.0) -> int | None:
    """SIGTERM, wait up to `grace_s`, then SIGKILL the service and whatever it left behind
    (its process group: workers orphaned by a crashed service are still in it)."""
    tree = descendants(service.pid)
    if service.alive():
        service.process.send_signal(signal.SIGTERM)
        try:
            service.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    for pid in tree[1:]:
        kill_leftover(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(service.pid, signal.SIGKILL)  # the group we created at start
    return service.process.returncode


def kill_service(service: Service) -> None:
    """SIGKILL the service's main process only (a crash); its children are reaped later."""
    with contextlib.suppress(ProcessLookupError):
        service.process.kill()
    service.process.wait()


def kill_leftover(pid: int) -> None:
    """SIGKILL a process of a tree we started, unless it is already gone."""
    deadline = time.monotonic() + 2.0
    while time.monotonic() < deadline:
        stat = read_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# ---- /proc ----


def transform_workers(edge_pid: int) -> list[int]:
    """The pool's worker processes: children of the edge's forkserver (grandchildren)."""
    kids = children_map()
    return sorted(
        pid
        for child in kids.get(edge_pid, [])
        for pid in kids.get(child, [])
        if (stat := read_stat(pid)) is not None and stat[0] not in ("Z", "X")
    )


def status_kib(pid: int, field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/PID/status, in KiB (0 when the process is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> None:
    """Start VmHWM afresh from the current RSS (Linux: `5` into clear_refs)."""
    with contextlib.suppress(OSError), open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def bytes_read(pid: int) -> int:
    """`rchar` of /proc/PID/io: every byte the process got from read-like system calls."""
    with open(f"/proc/{pid}/io", encoding="ascii") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise RuntimeError(f"no rchar for {pid}")


# ---- raw HTTP ----


@dataclass(frozen=True)
class RawResponse:
    status: int
    head: bytes
    body: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            key, _, value = line.partition(b":")
            if key.strip().lower() == name.lower().encode():
                return value.strip().decode("latin-1")
        return None


def raw_request(port: int, data: bytes, timeout_s: float = 10.0) -> RawResponse:
    """Send `data` byte for byte (no client-side normalisation) and read until the server
    closes. Requests should carry `Connection: close`."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    reply = b"".join(chunks)
    head, _, body = reply.partition(b"\r\n\r\n")
    parts = head.split(b" ", 2)
    return RawResponse(int(parts[1]) if len(parts) > 1 else 0, head, body)


def raw_get(port: int, target: bytes, extra_headers: bytes = b"") -> RawResponse:
    return raw_request(
        port,
        b"GET "
        + target
        + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + extra_headers
        + b"\r\n",
    )
