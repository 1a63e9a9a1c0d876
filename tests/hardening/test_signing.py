"""Signed /img URLs on a running edge with `edge.security.signing_key`, and `imgcdn sign`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hardening.conftest import copy_samples, edge_section
from tests.hardening.servers import (
    Service,
    free_port,
    raw_get,
    start_service,
    stop_service,
    write_config,
)
from tests.hardening.test_requests import assert_one_line

KEY = "hardening-signing-key"


@pytest.fixture(scope="module")
def signed_edge(tmp_path_factory: pytest.TempPathFactory, samples: Path) -> Iterator[Service]:
    root = tmp_path_factory.mktemp("signed-edge")
    copy_samples(root / "images", samples)
    port = free_port()
    section = edge_section(port, root, security={"signing_key": KEY})
    section["transforms"] = {"processes": 1}
    service = start_service("edge", write_config(root / "config.yaml", {"edge": section}), port)
    yield service
    stop_service(service)


def cli_sign(url: str, *args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "imgcdn.cli", "sign", url, *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=True,
    )
    return done.stdout.strip()


def test_imgcdn_sign_makes_urls_the_running_edge_serves(signed_edge: Service) -> None:
    url = cli_sign(f"{signed_edge.url}/img/astronaut.jpg?w=64&fm=webp", "--key", KEY)
    assert url.startswith(f"{signed_edge.url}/img/astronaut.jpg?w=64&fm=webp&sig=")
    r = raw_get(signed_edge.port, url.removeprefix(signed_edge.url).encode())
    assert r.status == 200 and r.header("Content-Type") == "image/webp"
    # the key from the config file, as the README documents it
    from_config = cli_sign("/img/coffee.jpg?w=30", cwd=signed_edge.config.parent)
    assert raw_get(signed_edge.port, from_config.encode()).status == 200


def refusals(good: str, sig: str) -> list[str]:
    path, _, query = good.partition("?")
    return [
        "/img/astronaut.jpg?w=32",  # missing
        good.replace(sig, sig[:10]),  # truncated
        good.replace(sig, sig[:-1]),  # one character short
        good.replace(sig, sig + "="),  # padded
        good.replace(sig, sig.swapcase()),  # wrong
        good.replace("sig=" + sig, "sig="),  # empty
        good + "&sig=" + sig,  # given twice
        good.replace("w=32", "w=33"),  # other parameters
        good + "&fm=png",  # a parameter added
        good.replace("w=32&", ""),  # a parameter removed
        good.replace("astronaut.jpg", "coffee.jpg"),  # another path
        good.replace("/img/astronaut.jpg", "/img/./astronaut.jpg"),  # the path respelled
        good.replace("/img/astronaut.jpg", "/img/astronaut%2Ejpg"),
        good + "&x=%FF",  # a query that is not UTF-8
        path + "?" + query.replace("sig=", "SIG="),
    ]


def test_bad_signatures_are_one_line_403s(signed_edge: Service) -> None:
    good = cli_sign("/img/astronaut.jpg?w=32", "--key", KEY)
    sig = good.rsplit("sig=", 1)[1]
    assert raw_get(signed_edge.port, good.encode()).status == 200
    for target in refusals(good, sig):
        r = raw_get(signed_edge.port, target.encode())
        assert_one_line(r, 403, "sig:")
    other_key = cli_sign("/img/astronaut.jpg?w=32", "--key", KEY + "x")
    assert_one_line(raw_get(signed_edge.port, other_key.encode()), 403, "sig:")


def test_signature_comes_before_everything_else(signed_edge: Service) -> None:
    """Unsigned hostile requests are 403 without being looked at; signed bad ones are 400."""
    assert raw_get(signed_edge.port, b"/img/../outside.jpg").status in (400, 403)
    assert raw_get(signed_edge.port, b"/img/astronaut.jpg?w=0").status == 403
    signed_bad = cli_sign("/img/astronaut.jpg?w=0", "--key", KEY)
    assert_one_line(raw_get(signed_edge.port, signed_bad.encode()), 400, "w:")
    assert raw_get(signed_edge.port, b"/raw/astronaut.jpg").status == 200  # /raw is unsigned
