"""Fixtures shared by every test package: sample images and a scratch working directory."""

from __future__ import annotations

from pathlib import Path

import pytest

import imgcdn

SAMPLES = Path(imgcdn.__file__).parent / "samples"


@pytest.fixture(scope="session")
def samples() -> Path:
    """The real photos shipped with imgcdn (copied from shared/corpus; licences in LICENSES.md)."""
    return SAMPLES


@pytest.fixture
def sample_bytes(samples: Path):
    """Read a sample image by file name: `sample_bytes("astronaut.jpg")`."""

    def read(name: str) -> bytes:
        return (samples / name).read_bytes()

    return read
