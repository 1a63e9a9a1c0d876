"""Every refusal of the JSON API: its status, its code and a message naming the field."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.origin.api import Api, auth, error_of
from tests.origin.conftest import MakeConfig, StartOrigin


@pytest.fixture
async def api(make_config: MakeConfig, start_origin: StartOrigin) -> Api:
    return await start_origin(make_config(max_upload_bytes=300_000))


async def post_raw(api: Api, path: str, data: bytes, token: str | None = None):
    headers = {"Content-Type": "application/json", **(auth(token) if token else {})}
    return await api.client.post(path, data=data, headers=headers)


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "body: not valid JSON"),
        (b"\xff\xfe", 400, "body: not valid JSON"),
        (b"", 400, "body: a JSON object is required"),
        (b"[1, 2]", 400, "body: expected a JSON object"),
        (b"{}", 400, "email: required"),
        (b'{"email": 42}', 400, "email: expected a non-empty string"),
        (b'{"email": "   "}', 400, "email: expected a non-empty string"),
        (b'{"email": "no-at-sign"}', 400, "email: not a valid email address"),
        (b'{"email": "a@b"}', 400, "email: not a valid email address"),
        (b'{"email": "a b@example.com"}', 400, "email: not a valid email address"),
        (b'{"email": "a@@example.com"}', 400, "email: not a valid email address"),
    ],
)
async def test_bad_user_bodies(api: Api, body: bytes, status: int, words: str) -> None:
    response = await post_raw(api, "/v1/users", body)
    assert response.status == status
    assert (await error_of(response))["message"] == words


async def test_body_over_one_mebibyte_is_413(api: Api) -> None:
    body = b'{"email": "' + b"a" * 1_100_000 + b'@example.com"}'
    response = await post_raw(api, "/v1/users", body)
    assert response.status == 413
    assert "body" in (await error_of(response))["message"]


async def test_duplicate_email_is_409_whatever_its_case(api: Api) -> None:
    await api.create_user("dup@example.com")
    response = await api.client.post("/v1/users", json={"email": "  DUP@Example.com"})
    assert response.status == 409
    error = await error_of(response)
    assert error["code"] == "conflict" and error["message"].startswith("email:")


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer not-a-real-token", "token abc"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/photos"),
        ("GET", "/v1/me"),
        ("POST", "/v1/uploads"),
        ("POST", "/v1/photos"),
        ("PUT", "/v1/me/active-photo"),
        ("DELETE", "/v1/photos/abc"),
    ],
)
async def test_missing_or_bad_token_is_401(
    api: Api, header: str | None, method: str, path: str
) -> None:
    headers = {"Authorization": header} if header is not None else {}
    response = await api.client.request(method, path, json={}, headers=headers)
    assert response.status == 401
    error = await error_of(response)
    assert error["code"] == "unauthorized" and error["message"].startswith("Authorization:")


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"size": 1000}, 400, "content_type: required"),
        ({"content_type": "image/jpeg"}, 400, "size: required"),
        ({"content_type": "image/jpeg", "size": "1000"}, 400, "size: expected an integer"),
        ({"content_type": "image/jpeg", "size": True}, 400, "size: expected an integer"),
        ({"content_type": "image/jpeg", "size": 0}, 400, "size: must be at least 1 byte"),
        ({"content_type": "image/jpeg", "size": 300_001}, 413, "size: more than max_upload_bytes"),
        ({"content_type": "text/plain", "size": 1000}, 415, "content_type: must be one of"),
        ({"content_type": "image/svg+xml", "size": 1000}, 415, "content_type: must be one of"),
        ({"content_type": "application/pdf", "size": 10}, 415, "content_type: must be one of"),
    ],
)
async def test_reservation_refusals(api: Api, body: dict, status: int, words: str) -> None:
    token = (await api.create_user())["token"]
    response = await api.client.post("/v1/uploads", json=body, headers=auth(token))
    assert response.status == status
    assert (await error_of(response))["message"].startswith(words)


async def test_other_users_photos_are_404(api: Api, sample_bytes: Callable[[str], bytes]) -> None:
    alice, bob = (await api.create_user())["token"], (await api.create_user())["token"]
    photo = await api.add_photo(alice, sample_bytes("static10k.jpg"))
    pending = await api.reserve_ok(alice, "image/jpeg", 100)

    refusals = [
        await api.set_active(bob, photo["id"]),
        await api.client.delete(f"/v1/photos/{photo['id']}", headers=auth(bob)),
        await api.register(bob, pending["photo_id"]),
        await api.register(bob, photo["id"]),
    ]
    for response in refusals:
        assert response.status == 404
        assert (await error_of(response))["message"].startswith("photo_id:")
    assert [p["id"] for p in await api.photos(alice)] == [photo["id"]]
    assert await api.photos(bob) == []


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({}, 400, "photo_id: required"),
        ({"photo_id": 7}, 400, "photo_id: expected a non-empty string"),
        ({"photo_id": "nope"}, 404, "photo_id: no upload with this id"),
    ],
)
async def test_registration_body_refusals(api: Api, body: dict, status: int, words: str) -> None:
    token = (await api.create_user())["token"]
    response = await api.client.post("/v1/photos", json=body, headers=auth(token))
    assert response.status == status
    assert (await error_of(response))["message"] == words


async def test_bad_rating_is_400_and_registers_nothing(
    api: Api, sample_bytes: Callable[[str], bytes]
) -> None:
    token = (await api.create_user())["token"]
    data = sample_bytes("static10k.jpg")
    upload = await api.reserve_ok(token, "image/jpeg", len(data))
    assert (await api.send(upload, data)).status == 200
    response = await api.register(token, upload["photo_id"], rating="nc-17")
    assert response.status == 400
    assert (await error_of(response))["message"].startswith("rating:")
    assert await api.photos(token) == []
    assert (await api.register(token, upload["photo_id"], rating="X")).status == 201


async def test_registering_before_upload_or_twice_is_409(
    api: Api, sample_bytes: Callable[[str], bytes]
) -> None:
    token = (await api.create_user())["token"]
    data = sample_bytes("static10k.jpg")
    upload = await api.reserve_ok(token, "image/jpeg", len(data))
    early = await api.register(token, upload["photo_id"])
    assert early.status == 409
    assert "nothing has been uploaded" in (await error_of(early))["message"]
    assert (await api.send(upload, data)).status == 200
    assert (await api.register(token, upload["photo_id"])).status == 201
    twice = await api.register(token, upload["photo_id"])
    assert twice.status == 409
    assert (await error_of(twice))["message"] == "photo_id: already registered"


@pytest.mark.parametrize(
    "path",
    [
        "/v1/avatars/xyz",
        "/v1/avatars/" + "a" * 31,
        "/v1/avatars/" + "a" * 33,
        "/v1/avatars/" + "g" * 32,
        "/v1/avatars/" + "a" * 32,  # well-formed, nobody's
        "/v1/avatars/" + "B" * 64,
        "/photos/" + "a" * 32,
        "/photos/not-a-hash",
        "/v1/photos/unknown/raw",
    ],
)
async def test_unknown_lookups_are_404(api: Api, path: str) -> None:
    response = await api.client.get(path)
    assert response.status == 404
    assert (await error_of(response))["code"] == "not_found"


async def test_active_photo_refusals(api: Api) -> None:
    token = (await api.create_user())["token"]
    missing = await api.client.put("/v1/me/active-photo", json={}, headers=auth(token))
    assert missing.status == 400
    assert (await error_of(missing))["message"].startswith("photo_id: required")
    unknown = await api.set_active(token, "0" * 24)
    assert unknown.status == 404
    cleared = await api.set_active(token, None)
    assert cleared.status == 200 and await cleared.json() == {"active_photo_id": None}


async def test_unknown_route_and_method_answer_json(api: Api) -> None:
    route = await api.client.get("/v2/nothing")
    assert route.status == 404
    assert (await error_of(route))["message"] == "path: no such route"
    method = await api.client.patch("/v1/users", json={})
    assert method.status == 405
    assert (await error_of(method))["code"] == "method_not_allowed"
    assert "POST" in method.headers["Allow"]
