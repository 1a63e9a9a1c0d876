"""Signed `/img` URLs (DESIGN.md section 5). Pure: no aiohttp.

sig = base64url, without `=` padding, of HMAC-SHA256(key as UTF-8, message), where message is
the request path exactly as sent (percent-encoding kept), then, when any parameter other than
`sig` is present, `?` and those parameters as `k=v` pairs (percent-decoded, `+` kept as `+`),
sorted by key then value and joined by `&`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import unquote, urlsplit, urlunsplit

from transforms.errors import BadSignature

SIG = "sig"


def split_query(query: str) -> list[tuple[str, str]]:
    """Raw query string -> percent-decoded (key, value) pairs, in order; `k` alone is `k=`."""
    pairs = []
    for part in query.split("&"):
        if not part:
            continue
        key, _, value = part.partition("=")
        pairs.append((unquote(key, errors="strict"), unquote(value, errors="strict")))
    return pairs


def signing_message(path: str, params: list[tuple[str, str]]) -> str:
    """The signed text: `path` as sent, then `?k=v&...` of every non-`sig` parameter, sorted."""
    rest = sorted((k, v) for k, v in params if k != SIG)
    if not rest:
        return path
    return path + "?" + "&".join(f"{k}={v}" for k, v in rest)


def compute_sig(message: str, key: str) -> str:
    digest = hmac.new(key.encode("utf-8"), message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def sign_path(path_and_query: str, key: str) -> str:
    """The `sig` for a request target such as `/img/cat.jpg?w=100` (any `sig` in it is ignored)."""
    path, _, query = path_and_query.partition("?")
    return compute_sig(signing_message(path, split_query(query)), key)


def sign_url(url: str, key: str) -> str:
    """`url` (absolute or a bare path) with its `sig` appended; an existing `sig` is replaced."""
    parts = urlsplit(url)
    kept = [p for p in parts.query.split("&") if p and p.partition("=")[0] != SIG]
    target = parts.path + ("?" + "&".join(kept) if kept else "")
    sig = sign_path(target, key)
    query = "&".join([*kept, f"{SIG}={sig}"])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def verify(path_and_query: str, key: str) -> None:
    """Raise BadSignature unless the target carries exactly one `sig` matching its path + params."""
    path, _, query = path_and_query.partition("?")
    try:
        params = split_query(query)
    except UnicodeDecodeError:
        raise BadSignature("sig: the query is not valid UTF-8") from None
    sigs = [v for k, v in params if k == SIG]
    if not sigs:
        raise BadSignature("sig: missing (this edge only serves signed /img URLs)")
    if len(sigs) > 1:
        raise BadSignature("sig: given more than once")
    expected = compute_sig(signing_message(path, params), key)
    if not hmac.compare_digest(sigs[0].encode("utf-8"), expected.encode("ascii")):
        raise BadSignature("sig: does not match this URL")
