"""Hardening fixtures: a real `imgcdn edge` process whose source folder is full of hostile files."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.hardening.hostile import write_hostile_files
from tests.hardening.servers import (
    Service,
    free_port,
    raise_fd_limit,
    start_service,
    stop_service,
    write_config,
)

KEEPALIVE_S = 1.0  # edge.keepalive_timeout_s of the hostile edge: slow clients go after this
RSS_BOUND_KIB = 512 * 1024  # the stated bound on one transform worker's peak RSS (VmHWM)


@dataclass
class HostileEdge:
    service: Service
    images: Path
    outside: Path  # a file next to (not inside) the source folder
    expected: dict[str, int]  # hostile file name -> the status /img answers


def edge_section(port: int, root: Path, **extra: object) -> dict[str, object]:
    section: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "keepalive_timeout_s": KEEPALIVE_S,
        "shutdown_grace_s": 5,
        "source": {"type": "dir", "path": str(root / "images")},
        "cache": {
            "disk_path": str(root / "edge-cache"),
            "memory_bytes": 32 << 20,
            "disk_bytes": 256 << 20,
        },
        "transforms": {"processes": 2, "max_queue": 64, "timeout_s": 30},
    }
    section.update(extra)
    return section


def copy_samples(images: Path, samples: Path) -> None:
    images.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut.jpg", "coffee.jpg", "large.jpg", "hubble.jpg", "alpha.png"):
        shutil.copy(samples / name, images / name)


@pytest.fixture(scope="session")
def hostile_edge(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Iterator[HostileEdge]:
    """One edge process for every request-level test: started once (~2 s), checked after each."""
    raise_fd_limit()
    root = tmp_path_factory.mktemp("hostile-edge")
    images = root / "images"
    copy_samples(images, samples)
    expected = write_hostile_files(images, samples)
    outside = root / "outside.jpg"
    outside.write_bytes(b"\xff\xd8\xff SECRET OUTSIDE THE SOURCE FOLDER")
    os.symlink(outside, images / "escape.jpg")
    os.symlink(root, images / "escape-dir")
    os.symlink(images / "coffee.jpg", images / "inside-link.jpg")
    port = free_port()
    config = write_config(root / "config.yaml", {"edge": edge_section(port, root)})
    service = start_service("edge", config, port)
    yield HostileEdge(service, images, outside, expected)
    stop_service(service)


# The origin's own fixtures (an in-process origin on 127.0.0.1, real SQLite, tmp blob dir);
# moto_endpoint comes from tests/conftest.py.
from tests.origin.conftest import (  # noqa: E402, F401
    bucket,
    make_config,
    s3,
    start_origin,
)
