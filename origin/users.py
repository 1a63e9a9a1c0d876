"""Users: sign-up and bearer-token authentication."""

from __future__ import annotations

import time

from aiohttp import web

from origin.errors import Unauthorized
from origin.identity import hash_token, identify_email, new_id, new_token
from origin.keys import DATABASE
from origin.models import User, user_json
from origin.payload import read_json, require_str


async def authenticate(request: web.Request) -> User:
    """The user whose `Authorization: Bearer <token>` this is; 401 otherwise."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization: a bearer token is required")
    user = await request.app[DATABASE].user_by_token(hash_token(token.strip()))
    if user is None:
        raise Unauthorized("Authorization: unknown token")
    return user


async def create_user(request: web.Request) -> web.Response:
    """POST /v1/users {"email"} -> 201 with the hashes and a token shown only here."""
    body = await read_json(request)
    identity = identify_email(require_str(body, "email", max_len=320))
    token = new_token()
    user = User(
        id=new_id(),
        email=identity.email,
        hash_md5=identity.hash_md5,
        hash_sha256=identity.hash_sha256,
        active_photo_id=None,
        created_at=time.time(),
    )
    await request.app[DATABASE].create_user(user, hash_token(token))
    payload = {key: user_json(user)[key] for key in ("id", "email", "hash_md5", "hash_sha256")}
    return web.json_response({**payload, "token": token}, status=201)


async def show_me(request: web.Request) -> web.Response:
    """GET /v1/me -> the caller's user (no token)."""
    return web.json_response(user_json(await authenticate(request)))
