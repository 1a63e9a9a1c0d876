"""Fixtures shared by every test package: sample images, a scratch working directory, and
moto's S3 server (the origin's S3 store and the edge's shared result store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from moto.server import ThreadedMotoServer

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


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """moto's S3 in server mode on a free port: real HTTP, like any S3 endpoint."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
        }.items():
            patch.setenv(name, value)
        patch.delenv("AWS_PROFILE", raising=False)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
        server.stop()
