"""Config loading: defaults, the shipped config.yaml, env overrides and one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from imgcdn.config import Config, ConfigError, ResultStoreConfig, load_config

ROOT = Path(__file__).resolve().parent.parent


def test_missing_file_means_all_defaults(tmp_path: Path) -> None:
    assert load_config(tmp_path / "absent.yaml", env={}) == Config()


def test_shipped_config_yaml_lists_the_defaults() -> None:
    assert load_config(ROOT / "config.yaml", env={}) == Config()


def test_env_overrides_nested_keys(tmp_path: Path) -> None:
    env = {
        "IMGCDN_EDGE__PORT": "9000",
        "IMGCDN_EDGE__CACHE__MEMORY_BYTES": "1000",
        "IMGCDN_EDGE__TRANSFORMS__AUTO_FORMATS": "[webp]",
        "IMGCDN_ORIGIN__EDGES": "http://a:1,http://b:2",
        "IMGCDN_EDGE__SECURITY__SIGNING_KEY": "secret",
        "OTHER_VAR": "ignored",
    }
    config = load_config(None, env=env)
    assert config.edge.port == 9000
    assert config.edge.cache.memory_bytes == 1000
    assert config.edge.transforms.auto_formats == ("webp",)
    assert config.origin.edges == ("http://a:1", "http://b:2")
    assert config.edge.security.signing_key == "secret"


def test_file_values_are_read(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("edge:\n  source: {type: http, url: 'http://x/'}\n  cache: {max_age_s: 5}\n")
    config = load_config(path, env={})
    assert config.edge.source.type == "http"
    assert config.edge.source.url == "http://x/"
    assert config.edge.cache.max_age_s == 5


def test_result_store_is_off_by_default_and_read_from_file_and_env(tmp_path: Path) -> None:
    assert Config().edge.cache.result_store is None
    path = tmp_path / "c.yaml"
    path.write_text(
        "edge:\n  cache:\n    result_store:\n"
        "      {type: s3, bucket: results, prefix: v/, endpoint_url: 'http://s3:9000'}\n"
    )
    env = {"IMGCDN_EDGE__CACHE__RESULT_STORE__TIMEOUT_S": "0.5"}
    assert load_config(path, env=env).edge.cache.result_store == ResultStoreConfig(
        bucket="results", prefix="v/", endpoint_url="http://s3:9000", timeout_s=0.5
    )
    only_env = {"IMGCDN_EDGE__CACHE__RESULT_STORE__BUCKET": "results"}
    store = load_config(None, env=only_env).edge.cache.result_store
    assert store == ResultStoreConfig(bucket="results")


STORE = "edge:\n  cache:\n    result_store: "


@pytest.mark.parametrize(
    ("text", "env", "message"),
    [
        ("edge:\n  prot: 1\n", {}, "edge.prot: unknown key"),
        (
            "edge:\n  cache:\n    memory_bytes: lots\n",
            {},
            "edge.cache.memory_bytes: expected an integer",
        ),
        ("edge:\n  source: {type: ftp}\n", {}, "edge.source.type: must be one of dir, http, s3"),
        ("edge:\n  source: {type: http}\n", {}, "edge.source.url: required for http"),
        ("origin:\n  storage: {type: s3}\n", {}, "origin.storage.bucket: required for s3"),
        ("edge:\n  port: 70000\n", {}, "edge.port: must be 1..65535"),
        (
            "edge:\n  cache:\n    originals_bytes: -1\n",
            {},
            "edge.cache.originals_bytes: must be 0 or more",
        ),
        (
            "edge:\n  transforms:\n    held_source_bytes: -1\n",
            {},
            "edge.transforms.held_source_bytes: must be 0 or more",
        ),
        (
            "edge:\n  transforms:\n    decoded_source_bytes: -1\n",
            {},
            "edge.transforms.decoded_source_bytes: must be 0 or more",
        ),
        ("edge:\n  transforms:\n    nice: 20\n", {}, "edge.transforms.nice: must be 0..19"),
        ("edge:\n  transforms:\n    nice: -1\n", {}, "edge.transforms.nice: must be 0..19"),
        ("edge:\n  workers: true\n", {}, "edge.workers: expected an integer"),
        ("edge: [1, 2]\n", {}, "edge: expected a mapping"),
        ("- a\n", {}, "the top level must be a mapping"),
        ("edge: {port: [\n", {}, "not valid YAML"),
        ("", {"IMGCDN_EDGE__TRANSFORMS__TIMEOUT_S": "soon"}, "edge.transforms.timeout_s"),
        ("", {"IMGCDN_EDGE__TRANSFORMS__AUTO_FORMATS": "[bmp]"}, "auto_formats"),
        ("", {"IMGCDN_NOPE__X": "1"}, "nope: unknown key"),
        (STORE + "{type: s3}\n", {}, "edge.cache.result_store.bucket: required for s3"),
        (STORE + "{}\n", {}, "edge.cache.result_store.bucket: required for s3"),
        (STORE + "{type: gcs, bucket: b}\n", {}, "edge.cache.result_store.type: must be one of s3"),
        (STORE + "{bucket: b, buket: c}\n", {}, "edge.cache.result_store.buket: unknown key"),
        (STORE + "s3://b\n", {}, "edge.cache.result_store: expected a mapping"),
        (
            STORE + "{bucket: b, timeout_s: 0}\n",
            {},
            "edge.cache.result_store.timeout_s: must be positive",
        ),
        (
            STORE + "{bucket: b, upload_timeout_s: -1}\n",
            {},
            "edge.cache.result_store.upload_timeout_s: must be positive",
        ),
        (
            STORE + "{bucket: b, max_uploads: 0}\n",
            {},
            "edge.cache.result_store.max_uploads: must be at least 1",
        ),
        *(
            (
                STORE + "{bucket: b, endpoint_url: '" + url + "'}\n",
                {},
                "edge.cache.result_store.endpoint_url: expected http(s)://host[:port][/path]",
            )
            for url in ("minio:9000", "ftp://h", "http://", "http://h:99999", "http://h/?x=1")
        ),
        (
            "edge:\n  source: {type: s3, bucket: b, endpoint_url: 'minio:9000'}\n",
            {},
            "edge.source.endpoint_url: expected http(s)://host[:port][/path]",
        ),
        (
            "",
            {
                "IMGCDN_EDGE__CACHE__RESULT_STORE__BUCKET": "b",
                "IMGCDN_EDGE__CACHE__RESULT_STORE__MAX_UPLOADS": "many",
            },
            "edge.cache.result_store.max_uploads: expected an integer",
        ),
    ],
)
def test_bad_config_names_the_key(
    tmp_path: Path, text: str, env: dict[str, str], message: str
) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path, env=env)
    assert message in str(err.value)
    assert "\n" not in str(err.value)
