"""Signed links to asset bytes (valid, expired, tampered, another user's, revoked by a key change) and
`?include=b64_json`, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import time
from datetime import datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi.testclient import TestClient

from imagestudio.app import create_app
from imagestudio.assets import links
from tests.api.helpers import API, BASE_URL, assert_problem, image_bytes, upload


def _uploaded(client: TestClient) -> dict:
    response = upload(client, image_bytes(size=(48, 32)))
    assert response.status_code == 201, response.text
    return response.json()


def _anonymous(app) -> TestClient:
    return TestClient(app, base_url=BASE_URL)


def _link(client: TestClient, asset_id: str, **body: object) -> dict:
    response = client.post(f"{API}/assets/{asset_id}/links", json=body or None)
    assert response.status_code == 201, response.text
    return response.json()


def test_a_link_serves_the_bytes_without_a_cookie_or_key(app, accounts) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    link = _link(alice.client, asset["id"], expires_in=600)
    assert link["url"].startswith(BASE_URL + f"/api/v1/assets/{asset['id']}/signed?")
    remaining = datetime.fromisoformat(link["expires_at"]).timestamp() - time.time()
    assert 590 <= remaining <= 601
    response = _anonymous(app).get(link["url"])
    assert response.status_code == 200
    assert response.content == alice.client.get(f"{API}/assets/{asset['id']}/content").content
    assert response.headers["content-type"] == "image/png"


def test_default_lifetime_comes_from_the_settings(app, accounts, container) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    link = _link(alice.client, asset["id"])
    remaining = datetime.fromisoformat(link["expires_at"]).timestamp() - time.time()
    assert abs(remaining - container.settings.signed_link_seconds) <= 2


def test_expired_and_tampered_links_are_refused(app, accounts, container) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    anonymous = _anonymous(app)
    past = int(time.time()) - 1
    expired = links.link_path(container.settings, asset["id"], past)
    assert_problem(anonymous.get(expired), 410, "link_expired")
    good = _link(alice.client, asset["id"])["url"]
    query = parse_qs(urlsplit(good).query)
    later = int(query["expires"][0]) + 3600
    stretched = f"{API}/assets/{asset['id']}/signed?expires={later}&signature={query['signature'][0]}"
    assert_problem(anonymous.get(stretched), 403, "invalid_link")
    signature = query["signature"][0]
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    altered = f"{API}/assets/{asset['id']}/signed?expires={query['expires'][0]}&signature={flipped}"
    assert_problem(anonymous.get(altered), 403)


def test_a_link_cannot_be_moved_to_another_asset(app, accounts) -> None:
    alice, bob = accounts.make(), accounts.make()
    alices = _uploaded(alice.client)
    bobs = _uploaded(bob.client)
    query = urlsplit(_link(alice.client, alices["id"])["url"]).query
    assert_problem(_anonymous(app).get(f"{API}/assets/{bobs['id']}/signed?{query}"), 403, "invalid_link")


def test_nobody_signs_another_users_asset(accounts) -> None:
    alice, bob = accounts.make(), accounts.make()
    asset = _uploaded(alice.client)
    assert_problem(bob.client.post(f"{API}/assets/{asset['id']}/links"), 404)
    assert_problem(bob.client.get(f"{API}/assets/{asset['id']}?include=b64_json"), 404)


def test_changing_the_secret_key_revokes_every_link(app, accounts, container, make_settings) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    url = _link(alice.client, asset["id"])["url"]
    assert _anonymous(app).get(url).status_code == 200
    container.settings = make_settings(secret_key="a-new-secret", database_url=container.settings.database_url)
    rotated = create_app(container=container)
    assert_problem(_anonymous(rotated).get(url), 403, "invalid_link")


@pytest.mark.parametrize("lifetime", [0, 59, 7 * 24 * 3600 + 1, "ten", -5])
def test_lifetimes_out_of_range_are_refused(accounts, lifetime: object) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    problem = assert_problem(alice.client.post(f"{API}/assets/{asset['id']}/links", json={"expires_in": lifetime}), 422)
    assert problem["errors"][0]["field"] == "expires_in"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "expires=1",
        "signature=abc",
        "expires=x&signature=abc",
        "expires=1&signature=a%2Fb",
        "expires=-1&signature=b",
    ],
)
def test_malformed_link_queries_are_refused(app, accounts, query: str) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    response = _anonymous(app).get(f"{API}/assets/{asset['id']}/signed?{query}")
    assert response.status_code == 422, response.text


def test_include_b64_json_adds_the_image(accounts) -> None:
    alice = accounts.make()
    asset = _uploaded(alice.client)
    plain = alice.client.get(f"{API}/assets/{asset['id']}").json()
    assert plain["b64_json"] is None
    full = alice.client.get(f"{API}/assets/{asset['id']}?include=b64_json").json()
    content = alice.client.get(f"{API}/assets/{asset['id']}/content").content
    assert base64.b64decode(full["b64_json"]) == content
    assert_problem(alice.client.get(f"{API}/assets/{asset['id']}?include=everything"), 422)
