"""`imgcdn up`: wiring (pure), directory seeding, and the real supervisor as a subprocess."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import pyvips

from imgcdn.config import (
    Config,
    ConfigError,
    EdgeConfig,
    OriginConfig,
    SecurityConfig,
    SourceConfig,
)
from imgcdn.up import base_url, plan_up, prepare_dirs

GRACE_S = 3
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("127.0.0.1", 8080, "http://127.0.0.1:8080"),
        ("0.0.0.0", 80, "http://127.0.0.1:80"),
        ("", 81, "http://127.0.0.1:81"),
        ("::", 82, "http://[::1]:82"),
        ("::1", 83, "http://[::1]:83"),
        ("edge.local", 84, "http://edge.local:84"),
    ],
)
def test_base_url(host: str, port: int, expected: str) -> None:
    assert base_url(host, port) == expected


def test_plan_defaults_share_a_new_token_and_point_at_each_other() -> None:
    plan = plan_up(Config(), new_token=lambda: "tok")
    assert (plan.edge_url, plan.origin_url) == ("http://127.0.0.1:8080", "http://127.0.0.1:8081")
    assert plan.env == {
        "IMGCDN_EDGE__SECURITY__PURGE_TOKEN": "tok",
        "IMGCDN_ORIGIN__PURGE_TOKEN": "tok",
        "IMGCDN_EDGE__ORIGIN_URL": "http://127.0.0.1:8081",
        "IMGCDN_ORIGIN__EDGES": "http://127.0.0.1:8080",
        "IMGCDN_ORIGIN__PUBLIC_URL": "http://127.0.0.1:8081",
    }
    assert plan.grace_s == 10


def test_plan_generates_a_fresh_random_token() -> None:
    first, second = plan_up(Config()), plan_up(Config())
    token = first.env["IMGCDN_ORIGIN__PURGE_TOKEN"]
    assert len(token) >= 32 and token != second.env["IMGCDN_ORIGIN__PURGE_TOKEN"]


@pytest.mark.parametrize(
    ("edge_token", "origin_token", "expected"),
    [("e", None, "e"), (None, "o", "o"), ("e", "o", "e")],
)
def test_plan_shares_a_configured_token(
    edge_token: str | None, origin_token: str | None, expected: str
) -> None:
    config = Config(
        edge=EdgeConfig(security=SecurityConfig(purge_token=edge_token)),
        origin=OriginConfig(purge_token=origin_token),
    )
    env = plan_up(config, new_token=lambda: "unused").env
    assert (
        env["IMGCDN_EDGE__SECURITY__PURGE_TOKEN"] == env["IMGCDN_ORIGIN__PURGE_TOKEN"] == expected
    )


def test_plan_follows_moved_ports_and_keeps_extra_edges() -> None:
    config = Config(
        edge=EdgeConfig(host="0.0.0.0", port=9000, shutdown_grace_s=4),
        origin=OriginConfig(
            port=9001,
            public_url="https://origin.example",
            edges=("http://127.0.0.1:8080", "http://other-edge:9000"),
            shutdown_grace_s=7,
        ),
    )
    plan = plan_up(config, new_token=lambda: "t")
    assert plan.env["IMGCDN_EDGE__ORIGIN_URL"] == "http://127.0.0.1:9001"
    assert plan.env["IMGCDN_ORIGIN__EDGES"] == "http://127.0.0.1:9000,http://other-edge:9000"
    assert "IMGCDN_ORIGIN__PUBLIC_URL" not in plan.env  # configured on purpose: kept
    assert plan.grace_s == 7


def test_plan_refuses_one_port_for_both() -> None:
    config = Config(edge=EdgeConfig(port=9000), origin=OriginConfig(port=9000))
    with pytest.raises(ConfigError, match=r"^edge\.port: "):
        plan_up(config)


def test_prepare_dirs_seeds_an_empty_source_with_samples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, samples: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    notes = prepare_dirs(Config())
    images = sorted(p.name for p in (tmp_path / "var" / "images").iterdir())
    assert "astronaut.jpg" in images and "alpha.png" in images
    assert "LICENSES.md" not in images
    assert (tmp_path / "var" / "images" / "coffee.jpg").read_bytes() == (
        samples / "coffee.jpg"
    ).read_bytes()
    assert notes == [f"copied {len(images)} sample images into var/images"]
    for sub in ("edge-cache", "blobs"):
        assert (tmp_path / "var" / sub).is_dir()
    (tmp_path / "var" / "images" / "astronaut.jpg").unlink()
    assert prepare_dirs(Config()) == []  # not empty: left alone
    assert not (tmp_path / "var" / "images" / "astronaut.jpg").exists()


def test_prepare_dirs_leaves_other_sources_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = Config(edge=EdgeConfig(source=SourceConfig(type="http", url="http://x/")))
    assert prepare_dirs(config) == []
    assert not (tmp_path / "var" / "images").exists()


# --- the real supervisor, as a user runs it ---------------------------------------------------


def up_env(edge_port: int, origin_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("IMGCDN_")}
    env.update(
        IMGCDN_EDGE__PORT=str(edge_port),
        IMGCDN_ORIGIN__PORT=str(origin_port),
        IMGCDN_EDGE__TRANSFORMS__PROCESSES="1",
        IMGCDN_EDGE__SHUTDOWN_GRACE_S=str(GRACE_S),
        IMGCDN_ORIGIN__SHUTDOWN_GRACE_S=str(GRACE_S),
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def start_up(tmp_path: Path):
    """Start `imgcdn up ARGS` in tmp_path; at teardown nothing it started may be left running."""
    started: list[subprocess.Popen[str]] = []

    def start(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
        log = (tmp_path / "up-stderr.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "imgcdn.cli", "up", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=GRACE_S + 10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    for pid in running_in(tmp_path):
        os.kill(pid, signal.SIGKILL)


def read_lines(process: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Drain stdout in a thread (so children never block on a full pipe)."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for_line(lines: queue.Queue[str | None], needle: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.2)
        except queue.Empty:
            continue
        if line is None:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"no line with {needle!r} within {timeout_s} s; got {seen}")


def descendants(pid: int) -> set[int]:
    """Every live process below `pid`, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def running_in(directory: Path) -> set[int]:
    """Live processes whose working directory is `directory` (children inherit it)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and entry.name != str(os.getpid()):
            try:
                if Path(os.readlink(entry / "cwd")) == directory.resolve() and alive(
                    int(entry.name)
                ):
                    found.add(int(entry.name))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def fetch(url: str) -> tuple[int, str, bytes]:
    with LOCAL.open(url, timeout=30) as response:
        return response.status, response.headers["Content-Type"], response.read()


def printed_urls(lines: queue.Queue[str | None]) -> dict[str, str]:
    """The `label   URL` lines `up --demo` prints, until its last line."""
    urls = {}
    while True:
        line = wait_for_line(lines, "imgcdn up: ", timeout_s=120)
        if "Ctrl-C stops both" in line:
            return urls
        label, _, url = line.removeprefix("imgcdn up:").strip().rpartition(" ")
        if url.startswith("http://"):
            urls[label.strip()] = url


def stop_and_check(up: subprocess.Popen[str], tmp_path: Path, children: set[int]) -> None:
    """SIGTERM -> exit 0 within the grace period, no process left, no traceback logged."""
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=GRACE_S + 10) == 0
    assert not [pid for pid in children if alive(pid)]
    assert not running_in(tmp_path)
    stderr = (tmp_path / "up-stderr.log").read_text()
    assert "Traceback" not in stderr, stderr


def test_up_demo_prints_working_urls_and_stops_cleanly_on_sigterm(tmp_path: Path, start_up) -> None:
    up = start_up(up_env(free_port(), free_port()), "--demo")
    urls = printed_urls(read_lines(up))
    assert len(urls) == 9, urls
    children = descendants(up.pid)
    assert len(children) >= 2  # origin and edge (and their workers)
    status, _, body = fetch(urls["any image, resized"])
    assert status == 200 and pyvips.Image.new_from_buffer(body, "").width == 300
    stop_and_check(up, tmp_path, children)


def test_up_demo_avatar_urls_answer_with_images(tmp_path: Path, start_up) -> None:
    up = start_up(up_env(free_port(), free_port()), "--demo")
    urls = printed_urls(read_lines(up))
    children = descendants(up.pid)
    for label, size, loader in [
        ("avatar s=80", 80, "jpegload_buffer"),
        ("avatar s=256 webp", 256, "webpload_buffer"),
        ("avatar by sha-256", 80, "jpegload_buffer"),
        ("unknown hash, d=identicon", 128, None),
    ]:
        status, content_type, body = fetch(urls[label])
        assert status == 200 and content_type.startswith("image/"), label
        image = pyvips.Image.new_from_buffer(body, "")
        assert (image.width, image.height) == (size, size), label
        assert loader is None or image.get("vips-loader") == loader, label
    stop_and_check(up, tmp_path, children)


def test_up_interrupted_while_starting_stops_both_and_exits_0(tmp_path: Path, start_up) -> None:
    up = start_up(up_env(free_port(), free_port()), "--demo")
    wait_for_line(read_lines(up), "copied", timeout_s=30)  # printed once signals are handled
    children = descendants(up.pid)
    up.send_signal(signal.SIGINT)
    assert up.wait(timeout=GRACE_S + 10) == 0
    assert not [pid for pid in children if alive(pid)]
    assert not running_in(tmp_path)


def test_up_demo_again_reuses_the_demo_user(tmp_path: Path, start_up) -> None:
    """Second run on the same ./var: the user exists (409), its saved token is reused."""
    env = up_env(free_port(), free_port())
    for expected in ("created", "reused"):
        up = start_up(env, "--demo")
        lines = read_lines(up)
        wait_for_line(lines, f"demo: {expected} demo@imgcdn.example", timeout_s=120)
        wait_for_line(lines, "Ctrl-C stops both", timeout_s=5)
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=GRACE_S + 10) == 0


def test_up_says_which_child_failed_and_stops_the_other(tmp_path: Path, start_up) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        up = start_up(up_env(taken.getsockname()[1], free_port()))
        assert up.wait(timeout=60) == 1
    stderr = (tmp_path / "up-stderr.log").read_text()
    assert "imgcdn up: edge exited with code" in stderr, stderr
    assert not running_in(tmp_path)


def test_up_refuses_a_bad_config_in_one_line(tmp_path: Path, start_up) -> None:
    (tmp_path / "bad.yaml").write_text("edge:\n  workers: lots\n")
    up = start_up(up_env(free_port(), free_port()), "--config", "bad.yaml")
    assert up.wait(timeout=30) == 2
    stderr = (tmp_path / "up-stderr.log").read_text().strip()
    assert stderr == "imgcdn: edge.workers: expected an integer, got 'lots'"
    assert not (tmp_path / "var").exists()  # nothing started, nothing created
