"""Every piece of shared state of an edge app, under typed `web.AppKey`s (no globals)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from edge.avatar_variants import AvatarVariants
from edge.broadcast import PurgeBroadcast
from edge.cache import TieredCache
from edge.lookup import AvatarLookups
from edge.memo import Interner, Memo
from edge.metrics import Metrics
from edge.origin_client import OriginClient
from edge.originals import Originals
from edge.sources import Source
from edge.variants import VariantService
from imgcdn.config import EdgeConfig
from transforms.pool import TransformPool
from transforms.spec import Limits


@dataclass(frozen=True)
class PurgeHook:
    """What `POST /_purge` does with one field's values ("paths"; avatars add "hashes")."""

    drop: Callable[[list[str]], Awaitable[int]]  # shared tiers + this process; returns the count
    drop_local: Callable[[list[str]], None]  # this process's copies only (another one purged)


# A readiness check: None when fine, else a one-line reason.
ReadinessCheck = Callable[[], Awaitable[str | None]]

CONFIG = web.AppKey("config", EdgeConfig)
METRICS = web.AppKey("metrics", Metrics)
POOL = web.AppKey("pool", TransformPool)
TIERS = web.AppKey("tiers", TieredCache)
ORIGINALS = web.AppKey("originals", Originals)  # recently fetched originals (memory)
SOURCE = web.AppKey("source", Source)
VARIANTS = web.AppKey("variants", VariantService)
PURGE_HOOKS = web.AppKey("purge_hooks", dict[str, PurgeHook])
READINESS_CHECKS = web.AppKey("readiness_checks", list[ReadinessCheck])
LIMITS = web.AppKey("limits", Limits)
REPORTS_SHARED = web.AppKey("reports_shared", bool)  # this process reports shared gauges (disk)
BROADCAST = web.AppKey("broadcast", PurgeBroadcast)
ORIGIN = web.AppKey("origin", OriginClient)  # avatars: the origin API client
LOOKUPS = web.AppKey("lookups", AvatarLookups)  # avatars: hash -> photo
AVATARS = web.AppKey("avatars", AvatarVariants)  # avatars: cached variants
IMG_ROUTES = web.AppKey("img_routes", Memo)  # (raw path, Accept) -> img.ImgRoute
AVATAR_ROUTES = web.AppKey("avatar_routes", Memo)  # (raw path, Accept) -> avatars.AvatarRoute
ROUTE_PARTS = web.AppKey("route_parts", Interner)  # specs and queries the routes share
