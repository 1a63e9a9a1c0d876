"""Everything an origin app keeps, declared in one place."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from imgcdn.config import OriginConfig
from origin.blobstore import BlobStore
from origin.db import Database
from origin.inflight import InFlight
from origin.metrics import OriginMetrics
from origin.purge import Purger

CONFIG = web.AppKey("config", OriginConfig)
DATABASE = web.AppKey("database", Database)
BLOBS = web.AppKey("blobs", BlobStore)
PURGER = web.AppKey("purger", Purger)
METRICS = web.AppKey("metrics", OriginMetrics)
SIGNING_KEY = web.AppKey("signing_key", bytes)
HTTP = web.AppKey("http", aiohttp.ClientSession)
INFLIGHT = web.AppKey("inflight", InFlight)
