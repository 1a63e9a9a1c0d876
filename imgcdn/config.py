"""Typed configuration for both services, loaded from `config.yaml` and `IMGCDN_*` variables.

Every key of DESIGN.md section 10 is a field here with its default. Loading validates each
value against its type hint and stops with one line naming the bad key
(`edge.cache.memory_bytes: expected an integer, got 'lots'`).
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import yaml


class ConfigError(ValueError):
    """A bad config file, key or value; the message names the key."""


@dataclass(frozen=True)
class SourceConfig:
    """Where `/img` and `/raw` read originals: a directory, an HTTP base URL or an S3 bucket."""

    type: Literal["dir", "http", "s3"] = "dir"
    path: str = "./var/images"  # type: dir
    url: str | None = None  # type: http
    bucket: str | None = None  # type: s3
    prefix: str = ""  # type: s3, prepended to every key
    endpoint_url: str | None = None  # type: s3, for non-AWS endpoints (MinIO, moto)
    region: str | None = None  # type: s3
    timeout_s: float = 10.0  # per fetch from an http/s3 source


@dataclass(frozen=True)
class ResultStoreConfig:
    """The shared result store: rendered variants in an S3 bucket that every edge host reads
    after its own memory and disk, and writes in the background (edge/result_store.py)."""

    type: Literal["s3"] = "s3"
    bucket: str | None = None
    prefix: str = ""  # prepended to every key, e.g. "variants/"
    endpoint_url: str | None = None  # for non-AWS endpoints (MinIO, moto)
    region: str | None = None
    timeout_s: float = 1.0  # per read: a slow store costs a miss, not the request
    upload_timeout_s: float = 10.0  # per background upload
    max_uploads: int = 32  # uploads in flight; one more is dropped (and counted), never queued


@dataclass(frozen=True)
class CacheConfig:
    memory_bytes: int = 268_435_456
    originals_bytes: int = 67_108_864  # recently fetched originals kept in memory; 0 = off
    disk_path: str = "./var/edge-cache"
    disk_bytes: int = 10_737_418_240
    max_age_s: int = 86_400
    stale_if_error_s: int = 86_400
    lookup_ttl_s: float = 60.0
    negative_ttl_s: float = 10.0
    avatar_max_age_s: int = 300
    result_store: ResultStoreConfig | None = None  # None = no shared tier


@dataclass(frozen=True)
class TransformsConfig:
    processes: int = 0  # 0 = one per CPU
    max_queue: int = 64
    timeout_s: float = 10.0
    max_src_bytes: int = 20_971_520
    max_src_pixels: int = 50_000_000
    max_dimension: int = 4096
    max_frames: int = 100
    auto_formats: tuple[str, ...] = ("avif", "webp")
    jpeg_progressive: bool = False  # baseline JPEG is cheaper to encode; see README
    avatar_from_larger: bool = True  # small avatar sizes from a master / 2x variant; see README
    held_source_bytes: int = 8_388_608  # per transform process: sources kept for their next task
    decoded_source_bytes: int = 25_165_824  # per transform process: pixels of re-rendered sources
    nice: int = 10  # transform processes run this far below the serving loop's CPU priority


@dataclass(frozen=True)
class SecurityConfig:
    signing_key: str | None = None  # set -> /img URLs must be signed
    purge_token: str | None = None  # set -> POST /_purge accepts it


@dataclass(frozen=True)
class EdgeConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1  # serving processes sharing the port (SO_REUSEPORT)
    origin_url: str = "http://127.0.0.1:8081"
    origin_timeout_s: float = 5.0  # per lookup or fetch from the origin
    keepalive_timeout_s: float = 10.0  # idle and slow-header connections are closed after it
    shutdown_grace_s: float = 10.0
    source: SourceConfig = field(default_factory=SourceConfig)
    cache: CacheConfig = field(default_factory=CacheConfig)
    transforms: TransformsConfig = field(default_factory=TransformsConfig)
    security: SecurityConfig = field(default_factory=SecurityConfig)


@dataclass(frozen=True)
class StorageConfig:
    """Where the origin keeps uploaded blobs: a local directory or an S3 bucket."""

    type: Literal["local", "s3"] = "local"
    path: str = "./var/blobs"  # type: local
    bucket: str | None = None  # type: s3
    prefix: str = ""  # type: s3
    endpoint_url: str | None = None  # type: s3
    region: str | None = None  # type: s3


@dataclass(frozen=True)
class OriginConfig:
    host: str = "127.0.0.1"
    port: int = 8081
    public_url: str = "http://127.0.0.1:8081"  # base of the upload URLs it signs (local store)
    database_url: str = "sqlite:///./var/origin.db"
    storage: StorageConfig = field(default_factory=StorageConfig)
    max_upload_bytes: int = 10_485_760
    upload_url_ttl_s: int = 600
    upload_signing_key: str | None = None  # HMAC key for local upload URLs; None -> random
    upload_timeout_s: float = 30.0  # local store: a body must arrive within this + 1 s per 64 KiB
    edges: tuple[str, ...] = ("http://127.0.0.1:8080",)  # purge notifications go here
    purge_token: str | None = None  # sent to the edges
    keepalive_timeout_s: float = 10.0
    shutdown_grace_s: float = 10.0


@dataclass(frozen=True)
class Config:
    edge: EdgeConfig = field(default_factory=EdgeConfig)
    origin: OriginConfig = field(default_factory=OriginConfig)


ENV_PREFIX = "IMGCDN_"


def load_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> Config:
    """Load `path` (missing file = all defaults), overlay `IMGCDN_<SECTION>__<KEY>` variables."""
    raw: dict[str, Any] = {}
    if path is not None and Path(path).exists():
        try:
            loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML ({err.__class__.__name__})") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        raw = loaded or {}
    overlay_env(raw, os.environ if env is None else env)
    return validate(build(Config, raw, ""))


def overlay_env(raw: dict[str, Any], env: Mapping[str, str]) -> None:
    """Apply `IMGCDN_EDGE__CACHE__MEMORY_BYTES=1000`-style variables onto `raw`, in place."""
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        node = raw
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"{'.'.join(parts)}: {name} sets a key under a non-mapping")
            node = child
        try:
            node[parts[-1]] = yaml.safe_load(value) if value != "" else ""
        except yaml.YAMLError:
            node[parts[-1]] = value


def build(cls: type[Any], raw: Any, where: str) -> Any:
    """Build dataclass `cls` from a mapping, checking every key and value against its hints."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{join(where, str(key))}: unknown key")
    values = {key: coerce(hints[key], value, join(where, key)) for key, value in raw.items()}
    return cls(**values)


def join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def coerce(hint: Any, value: Any, where: str) -> Any:
    """Check `value` against the type `hint`; return it in the dataclass's own types."""
    origin = typing.get_origin(hint)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return build(hint, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return coerce(option, value, where)
            except ConfigError as err:
                errors.append(err)
        raise errors[0]
    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise ConfigError(
                f"{where}: must be one of {', '.join(map(str, allowed))}, got {value!r}"
            )
        return value
    if origin is tuple:
        (item,) = typing.get_args(hint)[:1]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported setting")  # pragma: no cover - a bug in the schema


def validate(config: Config) -> Config:
    """Range checks that types alone cannot express; raise ConfigError naming the key."""
    edge, origin = config.edge, config.origin
    checks: list[tuple[bool, str]] = [
        (0 < edge.port < 65536, "edge.port: must be 1..65535"),
        (0 < origin.port < 65536, "origin.port: must be 1..65535"),
        (edge.workers >= 1, "edge.workers: must be at least 1"),
        (edge.transforms.processes >= 0, "edge.transforms.processes: must be 0 (per CPU) or more"),
        (edge.transforms.max_queue >= 1, "edge.transforms.max_queue: must be at least 1"),
        (edge.transforms.timeout_s > 0, "edge.transforms.timeout_s: must be positive"),
        (edge.transforms.max_dimension >= 16, "edge.transforms.max_dimension: must be at least 16"),
        (edge.transforms.max_frames >= 1, "edge.transforms.max_frames: must be at least 1"),
        (edge.transforms.max_src_bytes > 0, "edge.transforms.max_src_bytes: must be positive"),
        (edge.transforms.max_src_pixels > 0, "edge.transforms.max_src_pixels: must be positive"),
        (
            edge.transforms.held_source_bytes >= 0,
            "edge.transforms.held_source_bytes: must be 0 or more",
        ),
        (
            edge.transforms.decoded_source_bytes >= 0,
            "edge.transforms.decoded_source_bytes: must be 0 or more",
        ),
        (0 <= edge.transforms.nice <= 19, "edge.transforms.nice: must be 0..19"),
        (
            all(f in ("avif", "webp", "jpeg", "png") for f in edge.transforms.auto_formats),
            "edge.transforms.auto_formats: each must be avif, webp, jpeg or png",
        ),
        (edge.cache.memory_bytes >= 0, "edge.cache.memory_bytes: must be 0 or more"),
        (edge.cache.originals_bytes >= 0, "edge.cache.originals_bytes: must be 0 or more"),
        (edge.cache.disk_bytes >= 0, "edge.cache.disk_bytes: must be 0 or more"),
        (edge.cache.lookup_ttl_s > 0, "edge.cache.lookup_ttl_s: must be positive"),
        (edge.source.type != "http" or bool(edge.source.url), "edge.source.url: required for http"),
        (
            edge.source.type != "s3" or bool(edge.source.bucket),
            "edge.source.bucket: required for s3",
        ),
        (
            edge.source.type != "s3" or endpoint_ok(edge.source.endpoint_url),
            f"edge.source.endpoint_url: {ENDPOINT_FORM}",
        ),
        *result_store_checks(edge.cache.result_store),
        (
            origin.storage.type != "s3" or bool(origin.storage.bucket),
            "origin.storage.bucket: required for s3",
        ),
        (origin.max_upload_bytes > 0, "origin.max_upload_bytes: must be positive"),
        (origin.upload_url_ttl_s > 0, "origin.upload_url_ttl_s: must be positive"),
        (origin.upload_timeout_s > 0, "origin.upload_timeout_s: must be positive"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return config


def result_store_checks(store: ResultStoreConfig | None) -> list[tuple[bool, str]]:
    """Range checks of `edge.cache.result_store` (none when it is off)."""
    if store is None:
        return []
    where = "edge.cache.result_store"
    return [
        (bool(store.bucket), f"{where}.bucket: required for s3"),
        (store.timeout_s > 0, f"{where}.timeout_s: must be positive"),
        (store.upload_timeout_s > 0, f"{where}.upload_timeout_s: must be positive"),
        (store.max_uploads >= 1, f"{where}.max_uploads: must be at least 1"),
        (endpoint_ok(store.endpoint_url), f"{where}.endpoint_url: {ENDPOINT_FORM}"),
    ]


ENDPOINT_FORM = "expected http(s)://host[:port][/path]"


def endpoint_ok(url: str | None) -> bool:
    """An S3 endpoint URL edge/s3.py can address objects under (None: AWS itself)."""
    if url is None:
        return True
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query
