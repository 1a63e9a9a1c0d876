"""`imgcdn up --demo`: seed a demo user over the origin's HTTP API and list the URLs to open.

Only the public API of DESIGN.md section 7 is used (what any client would do): create the user,
reserve an upload, PUT the bytes to the signed URL, register the photo, set it active. Re-running
is fine: the user then exists (409) and the token kept in `./var/demo.json` from the first run is
reused; without it the URLs are still printed, since the hash comes from the email alone.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_EMAIL = "demo@imgcdn.example"
DEMO_PHOTOS = ("astronaut.jpg", "coffee.jpg")  # the first becomes the active photo
UNKNOWN_EMAIL = "nobody@imgcdn.example"  # never created: shows the d=identicon default
DEMO_IMAGE = "astronaut.jpg"  # one of the samples `imgcdn up` copies into the edge's source
CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png"}
REQUEST_TIMEOUT_S = 15.0
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via http_proxy


class DemoError(Exception):
    """Seeding failed; the message is one line naming the step."""


@dataclass(frozen=True)
class ApiResponse:
    status: int
    body: Any  # parsed JSON, or None


@dataclass(frozen=True)
class DemoResult:
    """What seeding did: `note` says so in one line for the user."""

    hash_md5: str
    hash_sha256: str
    note: str


def email_hashes(email: str) -> tuple[str, str]:
    """Gravatar's hashes (MD5, SHA-256) of the trimmed, lower-cased email."""
    data = email.strip().lower().encode("utf-8")
    return hashlib.md5(data, usedforsecurity=False).hexdigest(), hashlib.sha256(data).hexdigest()


def demo_urls(edge_url: str, email: str = DEMO_EMAIL) -> list[tuple[str, str]]:
    """(label, URL) pairs to open: the demo avatar at several sizes and formats, and defaults."""
    md5, sha256 = email_hashes(email)
    unknown, _ = email_hashes(UNKNOWN_EMAIL)
    base = edge_url.rstrip("/")
    urls = [(f"avatar s={s}", f"{base}/avatar/{md5}?s={s}") for s in (32, 80, 256)]
    urls += [(f"avatar s={s} webp", f"{base}/avatar/{md5}.webp?s={s}") for s in (32, 80, 256)]
    urls.append(("avatar by sha-256", f"{base}/avatar/{sha256}?s=80"))
    urls.append(("unknown hash, d=identicon", f"{base}/avatar/{unknown}?s=128&d=identicon"))
    urls.append(("any image, resized", f"{base}/img/{DEMO_IMAGE}?w=300"))
    return urls


def seed_demo(
    origin_url: str,
    state_path: Path,
    samples: Path,
    *,
    stopping: Callable[[], bool] = lambda: False,
) -> DemoResult:
    """Create the demo user with its photos (first active), or reuse it; raise DemoError."""
    api = origin_url.rstrip("/")
    md5, sha256 = email_hashes(DEMO_EMAIL)
    created = call("POST", f"{api}/v1/users", json_body={"email": DEMO_EMAIL})
    if created.status == 201:
        token = created.body["token"]
        state_path.parent.mkdir(parents=True, exist_ok=True)
        state = {"email": DEMO_EMAIL, "token": token, "hash_md5": md5, "hash_sha256": sha256}
        state_path.write_text(json.dumps(state, indent=2) + "\n", encoding="utf-8")
        state_path.chmod(0o600)
    elif created.status == 409:
        token = saved_token(state_path)
        if token is None or call("GET", f"{api}/v1/photos", token=token).status != 200:
            return DemoResult(md5, sha256, f"{DEMO_EMAIL} exists; its token is not in {state_path}")
    else:
        raise DemoError(f"POST /v1/users answered {created.status}: {error_text(created)}")
    listed = call("GET", f"{api}/v1/photos", token=token)
    ok = listed.status == 200 and isinstance(listed.body, dict)
    ids = [str(p["id"]) for p in reversed(listed.body["photos"])] if ok else []  # oldest first
    for name in DEMO_PHOTOS[len(ids) :]:
        if stopping():
            raise DemoError("stopped while seeding")
        ids.append(upload_photo(api, token, samples / name))
    active = call("PUT", f"{api}/v1/me/active-photo", token=token, json_body={"photo_id": ids[0]})
    if active.status != 200:
        raise DemoError(f"PUT /v1/me/active-photo answered {active.status}: {error_text(active)}")
    verb = "created" if created.status == 201 else "reused"
    return DemoResult(
        md5, sha256, f"{verb} {DEMO_EMAIL}: {len(ids)} photos, {DEMO_PHOTOS[0]} active"
    )


def upload_photo(api: str, token: str, path: Path) -> str:
    """Reserve, PUT the bytes to the signed URL, register; return the photo id."""
    data = path.read_bytes()
    content_type = CONTENT_TYPES[path.suffix.lower()]
    reserved = call(
        "POST",
        f"{api}/v1/uploads",
        token=token,
        json_body={"content_type": content_type, "size": len(data)},
    )
    if reserved.status != 201:
        raise DemoError(f"POST /v1/uploads answered {reserved.status}: {error_text(reserved)}")
    grant = reserved.body
    sent = call(grant["method"], grant["upload_url"], data=data, headers=grant["headers"])
    if not 200 <= sent.status < 300:
        raise DemoError(f"{grant['method']} upload_url answered {sent.status}: {error_text(sent)}")
    photo_id = grant["photo_id"]
    registered = call("POST", f"{api}/v1/photos", token=token, json_body={"photo_id": photo_id})
    if registered.status != 201:
        raise DemoError(f"POST /v1/photos answered {registered.status}: {error_text(registered)}")
    return str(photo_id)


def saved_token(state_path: Path) -> str | None:
    """The demo token saved by an earlier run, if the file is there and readable."""
    try:
        state = json.loads(state_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    token = state.get("token") if isinstance(state, dict) else None
    return token if isinstance(token, str) and state.get("email") == DEMO_EMAIL else None


def call(
    method: str,
    url: str,
    *,
    token: str | None = None,
    json_body: Any = None,
    data: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> ApiResponse:
    """One HTTP request; any status comes back as an ApiResponse, network failure as DemoError."""
    sent_headers = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode("utf-8")
        sent_headers["Content-Type"] = "application/json"
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=data, headers=sent_headers, method=method)
    try:
        with LOCAL.open(request, timeout=REQUEST_TIMEOUT_S) as response:
            return ApiResponse(response.status, parse_json(response.read()))
    except urllib.error.HTTPError as err:
        return ApiResponse(err.code, parse_json(err.read()))
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", err)
        raise DemoError(f"{method} {url.split('?')[0]} failed: {reason}") from None


def parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return None


def error_text(response: ApiResponse) -> str:
    """The origin's error message, or a placeholder."""
    body = response.body
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        return str(body["error"].get("message", "no message"))
    return "no error message"
