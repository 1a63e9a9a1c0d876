"""`imgcdn up`: run the origin and the edge together on embedded defaults, as a small supervisor.

Both run as child processes (`python -m imgcdn.cli origin|edge`) with the same config file,
plus environment overrides that wire them together: one purge token (generated unless one is
configured), `edge.origin_url` -> the origin, `origin.edges` -> the edge. Ctrl-C or SIGTERM stops
both (SIGTERM, then SIGKILL past the grace period) and exits 0; if one dies, the other is stopped
and `up` exits 1 with one line saying which.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import imgcdn
from imgcdn.config import Config, ConfigError, OriginConfig, load_config
from imgcdn.demo import LOCAL, DemoError, demo_urls, seed_demo

STARTUP_TIMEOUT_S = 60.0  # both must answer /healthz within this (a cold edge spawns its pool)
POLL_S = 0.1
KILL_MARGIN_S = 5.0  # on top of the grace period, for interpreter teardown
DEMO_STATE = Path("var/demo.json")
SAMPLES = Path(imgcdn.__file__).parent / "samples"
SAMPLE_SUFFIXES = (".jpg", ".jpeg", ".png")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass(frozen=True)
class Plan:
    """How the two children are wired: their URLs and the environment overrides they share."""

    edge_url: str
    origin_url: str
    env: dict[str, str]
    grace_s: float


def plan_up(
    config: Config, new_token: Callable[[], str] = lambda: secrets.token_urlsafe(24)
) -> Plan:
    """Pure: the URLs of both services and the `IMGCDN_*` overrides that connect them."""
    edge, origin = config.edge, config.origin
    if (edge.host, edge.port) == (origin.host, origin.port):
        raise ConfigError(f"edge.port: the edge and the origin both want {edge.host}:{edge.port}")
    edge_url = base_url(edge.host, edge.port)
    origin_url = base_url(origin.host, origin.port)
    token = edge.security.purge_token or origin.purge_token or new_token()
    placeholder = OriginConfig().edges  # the shipped default, replaced by the real edge
    edges = [edge_url, *(e for e in origin.edges if e not in (edge_url, *placeholder))]
    env = {
        "IMGCDN_EDGE__SECURITY__PURGE_TOKEN": token,
        "IMGCDN_ORIGIN__PURGE_TOKEN": token,
        "IMGCDN_EDGE__ORIGIN_URL": origin_url,
        "IMGCDN_ORIGIN__EDGES": ",".join(edges),
    }
    if origin.public_url == OriginConfig().public_url:  # follow the origin's actual address
        env["IMGCDN_ORIGIN__PUBLIC_URL"] = origin_url
    return Plan(edge_url, origin_url, env, max(edge.shutdown_grace_s, origin.shutdown_grace_s))


def base_url(host: str, port: int) -> str:
    """The URL to reach a server listening on host:port (a wildcard address means loopback)."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def prepare_dirs(config: Config) -> list[str]:
    """Create the local directories the defaults use; seed an empty image source with samples."""
    notes = []
    if config.edge.source.type == "dir":
        source = Path(config.edge.source.path)
        source.mkdir(parents=True, exist_ok=True)
        if not any(source.iterdir()):
            copied = [
                shutil.copy2(sample, source / sample.name)
                for sample in sorted(SAMPLES.iterdir())
                if sample.suffix.lower() in SAMPLE_SUFFIXES
            ]
            notes.append(f"copied {len(copied)} sample images into {source}")
    Path(config.edge.cache.disk_path).mkdir(parents=True, exist_ok=True)
    if config.origin.storage.type == "local":
        Path(config.origin.storage.path).mkdir(parents=True, exist_ok=True)
    scheme, _, rest = config.origin.database_url.partition(":///")
    if scheme.startswith("sqlite") and rest and not rest.startswith(":memory:"):
        Path(rest.split("?")[0]).parent.mkdir(parents=True, exist_ok=True)
    return notes


@dataclass
class Child:
    name: str
    health_url: str
    process: subprocess.Popen[bytes]


@dataclass
class Signals:
    """Stop signals received so far; handlers only record, the supervisor acts between steps."""

    received: list[int] = field(default_factory=list)
    previous: dict[int, object] = field(default_factory=dict)

    def install(self) -> None:
        for signum in STOP_SIGNALS:
            self.previous[signum] = signal.signal(signum, self.record)

    def record(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]  # what signal() returned

    @property
    def stopping(self) -> bool:
        return bool(self.received)


def run_up(config_path: str | None, demo: bool, env: Mapping[str, str] | None = None) -> int:
    """Blocking: start origin and edge, optionally seed the demo, supervise until a stop signal.

    Returns 0 after a stop signal, 1 if a child failed; a bad config raises ConfigError.
    """
    environ = dict(os.environ if env is None else env)
    config = load_config(config_path, environ)  # ConfigError: the CLI prints it, exit 2
    plan = plan_up(config)
    try:
        notes = prepare_dirs(config)
    except OSError as err:
        say(f"cannot prepare the local directories: {err}", error=True)
        return 1
    signals = Signals()
    signals.install()
    for note in notes:
        say(note)
    children: list[Child] = []
    try:
        for name, url in (("origin", plan.origin_url), ("edge", plan.edge_url)):
            children.append(start_child(name, url, config_path, {**environ, **plan.env}))
        failed = wait_healthy(children, signals)
        if failed is None and not signals.stopping:
            say(f"origin {plan.origin_url}  edge {plan.edge_url}  (one purge token shared)")
            failed = run_demo(plan, signals) if demo else None
            if failed is None and not signals.stopping:
                say("Ctrl-C stops both.")
                failed = supervise(children, signals)
        if failed and not signals.stopping:
            say(failed, error=True)
            return 1
        return 0
    finally:
        stop_children(children, plan.grace_s + KILL_MARGIN_S, signals)
        signals.restore()


def start_child(name: str, url: str, config_path: str | None, env: dict[str, str]) -> Child:
    """`python -m imgcdn.cli <name> [--config F]` in its own process group (Ctrl-C goes to us)."""
    argv = [sys.executable, "-m", "imgcdn.cli", name]
    if config_path is not None:
        argv += ["--config", config_path]
    process = subprocess.Popen(argv, env=env, process_group=0)
    return Child(name, f"{url}/healthz", process)


def wait_healthy(children: list[Child], signals: Signals) -> str | None:
    """Poll each /healthz until all answer 200; one line saying why not if one exits or stalls."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    pending = list(children)
    while pending and not signals.stopping:
        for child in list(pending):
            code = child.process.poll()
            if code is not None:
                return f"{child.name} exited with code {code} before it answered /healthz"
            if answers(child.health_url):
                pending.remove(child)
        if time.monotonic() > deadline:
            names = " and ".join(c.name for c in pending)
            return f"{names} did not answer /healthz within {STARTUP_TIMEOUT_S:.0f} s"
        if pending:
            time.sleep(POLL_S)
    return None


def answers(url: str) -> bool:
    try:
        with LOCAL.open(url, timeout=1.0) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def run_demo(plan: Plan, signals: Signals) -> str | None:
    """Seed the demo user and print the URLs to open; a one-line failure or None."""
    try:
        result = seed_demo(plan.origin_url, DEMO_STATE, SAMPLES, stopping=lambda: signals.stopping)
    except DemoError as err:
        return f"demo: {err}"
    say(f"demo: {result.note}")
    say("Open these:")
    for label, url in demo_urls(plan.edge_url):
        say(f"  {label:<27} {url}")
    return None


def supervise(children: list[Child], signals: Signals) -> str | None:
    """Wait for a stop signal (-> None) or for a child to exit on its own (-> what happened)."""
    while not signals.stopping:
        for child in children:
            code = child.process.poll()
            if code is not None:
                return f"{child.name} exited with code {code}; stopping the other"
        time.sleep(POLL_S)
    return None


def stop_children(children: list[Child], timeout_s: float, signals: Signals) -> None:
    """SIGTERM every child, wait up to `timeout_s` (a second signal cuts it short), then SIGKILL.

    Whatever is left in a child's process group (its own workers) is killed too.
    """
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
    seen = len(signals.received)
    deadline = time.monotonic() + timeout_s
    while any(c.process.poll() is None for c in children) and time.monotonic() < deadline:
        if len(signals.received) > seen:
            say("second stop signal: killing", error=True)
            break
        time.sleep(0.05)
    for child in children:
        if child.process.poll() is None:
            say(f"{child.name} did not stop within {timeout_s:.0f} s: killing it", error=True)
        kill_group(child.process.pid)
        child.process.wait()


def kill_group(pgid: int) -> None:
    """SIGKILL what is left in a child's process group (nothing, after a clean exit)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def say(line: str, *, error: bool = False) -> None:
    print(f"imgcdn up: {line}", file=sys.stderr if error else sys.stdout, flush=True)
