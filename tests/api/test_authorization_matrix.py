"""The authorization matrix: every route of the app, who may call it, and what others get.

Every route must have a row in MATRIX, keyed "METHOD /path" exactly as routed; a route without
a row fails `test_every_route_is_in_the_matrix`, so new routes are added here with their rules.

Row kinds:
- Public(why): anyone may call it; it must not answer 401/403 to an anonymous caller.
- SignedIn(body, ok, hides): needs a signed-in user and touches only their own things. Anonymous
  gets 401; the user gets `ok`. With `hides`, the first user's object is made first and a second
  user's answer must not mention it (lists never leak other users' objects).
- Owned(make, body, ok, check, intruder_key): acts on one object of its owner; `make(owner)`
  builds it and answers the path parameters. Anonymous gets 401; a second user gets 404 with
  a login and with an API key (`intruder_key` when a key is refused earlier, e.g. 403), and the
  owner's view (`check`, a GET route of the matrix) is unchanged afterwards; then the owner gets `ok`.
- AdminOnly(make, body, ok): anonymous 401, a regular user 403, an admin `ok`. `make(user)`
  answers path parameters naming a regular user's object.
- SharedLink(make): a published project's link is the credential. `make(owner)` publishes a project
  and answers its id and token (and what else the path names). Anyone, signed in or not, gets 200
  and nothing of the owner's account; an unknown token 404; once the owner revokes the link, 404.

`body` is a JSON body, a Multipart form, or a function of the acting Account; `make` may create
objects through the API (owner.client) or the database (owner.app.state.container.db). Event
streams end after sse_max_seconds (short in tests), so their rows read them to the end.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from imagestudio.accounts import by_email, provider_keys
from imagestudio.accounts.service import create_user
from imagestudio.models.types import utcnow
from tests.api.helpers import (
    API,
    PASSWORD,
    Account,
    Accounts,
    assert_problem,
    browser_client,
    image_bytes,
    routes_of,
    run_queue,
    unique_email,
    upload,
)


@dataclass(frozen=True)
class Multipart:
    files: dict
    data: dict


Params = dict[str, str]
Maker = Callable[[Account], Params]
Body = dict | Multipart | Callable[[Account], dict] | None


@dataclass(frozen=True)
class Public:
    why: str
    # For mounts: a URL under the mount to fetch instead of the mount's own path.
    sample: str | None = None


@dataclass(frozen=True)
class Page:
    """A server-rendered page: anonymous visitors are sent to sign in (303); with `admin`, regular
    users get 403; with `make`, the page of another user's object must not reveal it (its data comes
    from the API, whose routes have rows of their own)."""

    admin: bool = False
    make: Maker | None = None


@dataclass(frozen=True)
class SignedIn:
    body: Body = None
    ok: int = 200
    hides: Maker | None = None
    # For routes with path parameters that name no object of anyone's (e.g. a provider).
    params: Maker | None = None


@dataclass(frozen=True)
class Owned:
    make: Maker
    body: Body = None
    ok: int = 200
    check: str | None = None
    intruder_key: int = 404


@dataclass(frozen=True)
class AdminOnly:
    make: Maker | None = None
    body: Body = None
    ok: int = 200


@dataclass(frozen=True)
class OpenAICompatible:
    """A route of the OpenAI-compatible API: API keys (or a login) only, errors in OpenAI's shape.
    `body` is refused for what it is (400), which proves the caller got past authentication
    without waiting on a generation."""

    body: Body = None
    ok: int = 200
    # For routes with path parameters: the concrete path to call.
    sample: str | None = None


@dataclass(frozen=True)
class Guarded:
    """Not for accounts at all: guarded by its own credential (e.g. the metrics token). Anonymous
    and signed-in callers alike get `refused`; `why` names the test that covers the credential."""

    why: str
    refused: int = 401


@dataclass(frozen=True)
class SharedLink:
    make: Maker


Row = Public | Page | SignedIn | Owned | AdminOnly | OpenAICompatible | Guarded | SharedLink


# --- object makers ------------------------------------------------------------------------------


def a_project(owner: Account) -> Params:
    response = owner.client.post(f"{API}/projects", json={"name": "secret plans"})
    assert response.status_code == 201, response.text
    return {"project_id": response.json()["id"]}


def a_published_project(owner: Account) -> Params:
    response = owner.client.post(f"{API}/projects", json={"name": "shared plans", "is_public": True})
    assert response.status_code == 201, response.text
    return {"project_id": response.json()["id"], "token": response.json()["public_url"].rsplit("/", 1)[1]}


def a_published_image(owner: Account) -> Params:
    params = a_published_project(owner)
    session = owner.client.post(f"{API}/sessions", json={"project_id": params["project_id"]}).json()
    turn = owner.client.post(
        f"{API}/sessions/{session['id']}/messages",
        json={"content": "a kite", "mode": "fresh", "width": 64, "height": 64},
    )
    assert turn.status_code == 201, turn.text
    run_queue(owner.app.state.container)
    generation = owner.client.get(f"{API}/generations/{turn.json()['generation_id']}").json()
    return {**params, "asset_id": generation["outputs"][0]["id"]}


def _private_name(owner: Account, params: Params) -> str:
    """What only the owner may see of the object a page names: a session's title, a project's name."""
    if "session_id" in params:
        return owner.client.get(f"{API}/sessions/{params['session_id']}").json()["title"]
    return owner.client.get(f"{API}/projects/{params['project_id']}").json()["name"]


def an_api_key(owner: Account) -> Params:
    owner.api_key(scopes=["read"])
    return {"key_id": owner.client.get(f"{API}/api-keys").json()["items"][0]["id"]}


def the_user(user: Account) -> Params:
    return {"user_id": user.id}


def an_invitation(user: Account) -> Params:
    """An invitation made by an administrator (the matrix's `user` is a regular one, so one is made)."""
    with user.app.state.container.db.writing() as db:
        settings = user.app.state.container.settings
        admin = create_user(db, settings, email=unique_email("inviter"), password=PASSWORD, is_admin=True)
        sent = by_email.invite(db, settings, admin, email=unique_email("guest"), now=utcnow())
    return {"invitation_id": str(sent.token.id)}


def a_session(owner: Account) -> Params:
    response = owner.client.post(f"{API}/sessions", json={"title": "secret session"})
    assert response.status_code == 201, response.text
    return {"session_id": response.json()["id"]}


def a_generation(owner: Account) -> Params:
    response = owner.client.post(
        f"{API}/generations", json={"prompt": "a secret lighthouse", "width": 64, "height": 64}
    )
    assert response.status_code == 201, response.text
    return {"generation_id": response.json()["id"]}


def a_canceled_generation(owner: Account) -> Params:
    params = a_generation(owner)
    response = owner.client.post(f"{API}/generations/{params['generation_id']}/cancel")
    assert response.json()["status"] == "canceled", response.text
    return params


def a_generation_with_a_preview(owner: Account) -> Params:
    """A generation that ran (the built-in renderer, through a real worker) and kept an intermediate picture."""
    response = owner.client.post(
        f"{API}/generations",
        json={
            "prompt": "a secret harbour",
            "width": 64,
            "height": 64,
            "params": {"steps": 4, "extra": {"partial_images": 1}},
        },
    )
    assert response.status_code == 201, response.text
    run_queue(owner.app.state.container)
    return {"generation_id": response.json()["id"], "number": "0"}


def a_published_ui_generation(owner: Account) -> Params:
    params = a_published_project(owner)
    session = owner.client.post(f"{API}/sessions", json={"project_id": params["project_id"]}).json()
    turn = owner.client.post(f"{API}/sessions/{session['id']}/messages", json={"content": "a login form", "mode": "ui"})
    assert turn.status_code == 201, turn.text
    run_queue(owner.app.state.container)
    return {**params, "ui_id": turn.json()["ui_generation_id"]}


def a_prompt(owner: Account) -> Params:
    a_generation(owner)
    return {"prompt": "a secret lighthouse"}


def a_ui_generation(owner: Account) -> Params:
    session_id = a_session(owner)["session_id"]
    response = owner.client.post(
        f"{API}/sessions/{session_id}/messages", json={"content": "a secret login form", "mode": "ui"}
    )
    assert response.status_code == 201, response.text
    return {"ui_id": response.json()["ui_generation_id"]}


def a_canceled_ui_generation(owner: Account) -> Params:
    params = a_ui_generation(owner)
    response = owner.client.post(f"{API}/ui-generations/{params['ui_id']}/cancel")
    assert response.json()["status"] == "canceled", response.text
    return params


def an_output(owner: Account) -> Params:
    """An image the owner generated, in a session of their own."""
    session_id = a_session(owner)["session_id"]
    turn = {"content": "a secret harbour", "mode": "fresh", "width": 64, "height": 64}
    response = owner.client.post(f"{API}/sessions/{session_id}/messages", json=turn)
    assert response.status_code == 201, response.text
    run_queue(owner.app.state.container)
    generation = owner.client.get(f"{API}/generations/{response.json()['generation_id']}").json()
    return {"asset_id": generation["outputs"][0]["id"]}


def the_newest_session(actor: Account) -> Params:
    """The actor's most recently active session (the one an_output made), else a new one."""
    items = actor.client.get(f"{API}/sessions", params={"limit": 1}).json()["items"]
    return {"session_id": items[0]["id"]} if items else a_session(actor)


def an_upload(owner: Account) -> Params:
    response = upload(owner.client)
    assert response.status_code == 201, response.text
    return {"asset_id": response.json()["id"]}


def users_may_bring_openai_keys(user: Account) -> Params:
    with user.app.state.container.db.writing() as db:
        provider_keys.set_policy(db, "openai", allow_user_keys=True, studio_key_fallback=None)
    return {"provider": "openai"}


def an_own_key(owner: Account) -> Params:
    params = users_may_bring_openai_keys(owner)
    response = owner.client.put(f"{API}/me/provider-keys/openai", json={"api_key": "sk-secret-own-key-Zq9W"})
    assert response.status_code == 200, response.text
    return params


def an_own_key_hint(owner: Account) -> Params:
    an_own_key(owner)
    return {"hint": "Zq9W"}


# --- the matrix -------------------------------------------------------------------------------

MATRIX: dict[str, Row] = {
    # Service and documentation
    "GET /healthz": Public("liveness probe"),
    "GET /setup": Public("first-run page; sends visitors on once an account exists"),
    "GET /login": Public("sign-in page"),
    "GET /signup": Public("sign-up page, when sign-up is open"),
    "MOUNT /static": Public("scripts, styles and icons of the pages", sample="/static/js/api.js"),
    "GET /": Page(),
    "GET /settings": Page(),
    "GET /gallery": Page(),
    "GET /admin": Page(admin=True),
    "GET /sessions/{session_id}": Page(make=lambda owner: a_session(owner)),
    "GET /projects": Page(),
    "GET /projects/{project_id}": Page(make=lambda owner: a_project(owner)),
    # A published project, read-only, for anyone holding its link
    "GET /p/{token}": SharedLink(a_published_project),
    "GET /api/v1/public/projects/{token}": SharedLink(a_published_project),
    "GET /api/v1/public/projects/{token}/assets/{asset_id}/content": SharedLink(a_published_image),
    "GET /api/v1/public/projects/{token}/assets/{asset_id}/thumbnail": SharedLink(a_published_image),
    "GET /api/v1/public/projects/{token}/ui-generations/{ui_id}/preview": SharedLink(a_published_ui_generation),
    "GET /readyz": Public("readiness probe"),
    "GET /api/v1/openapi.json": Public("API description"),
    "GET /api/docs": Public("API documentation page"),
    "GET /api/docs/oauth2-redirect": Public("part of the documentation page"),
    "MOUNT /api/docs/assets": Public(
        "Swagger UI's script and styles for the documentation page", sample="/api/docs/assets/swagger-ui.css"
    ),
    # Auth
    "GET /api/v1/auth/setup": Public("tells the sign-in page what to offer"),
    "POST /api/v1/auth/setup": Public("creates the first admin; closed once any user exists"),
    "POST /api/v1/auth/signup": Public("open or closed by configuration"),
    "POST /api/v1/auth/login": Public("signs in"),
    "POST /api/v1/auth/logout": Public("ends the caller's own login, if any"),
    # The signed-in user
    "GET /api/v1/me": SignedIn(),
    "PATCH /api/v1/me": SignedIn(body={"display_name": "Renamed"}),
    "POST /api/v1/me/password": SignedIn(
        body={"current_password": PASSWORD, "new_password": "another password"}, ok=204
    ),
    "GET /api/v1/me/settings": SignedIn(),
    "PATCH /api/v1/me/settings": SignedIn(body={"theme": "dark"}),
    # This app sends no mail, so the signed-in user is answered 409 (mail_unavailable, already_verified).
    "POST /api/v1/me/email": SignedIn(body={"email": "moving@example.test", "password": PASSWORD}, ok=409),
    "POST /api/v1/me/email-verification": SignedIn(ok=409),
    # API keys
    "GET /api/v1/api-keys": SignedIn(hides=an_api_key),
    "POST /api/v1/api-keys": SignedIn(body={"name": "k", "scopes": ["read"]}, ok=201),
    "DELETE /api/v1/api-keys/{key_id}": Owned(
        an_api_key,
        ok=204,
        check="GET /api/v1/api-keys",
        intruder_key=403,  # keys never manage keys
    ),
    # Projects
    "GET /api/v1/projects": SignedIn(hides=a_project),
    "POST /api/v1/projects": SignedIn(body={"name": "mine"}, ok=201),
    "GET /api/v1/projects/{project_id}": Owned(a_project, check="GET /api/v1/projects/{project_id}"),
    "PATCH /api/v1/projects/{project_id}": Owned(
        a_project, body={"name": "taken over"}, check="GET /api/v1/projects/{project_id}"
    ),
    "DELETE /api/v1/projects/{project_id}": Owned(a_project, ok=204, check="GET /api/v1/projects/{project_id}"),
    # Administration
    "GET /api/v1/admin/users": AdminOnly(),
    "POST /api/v1/admin/users": AdminOnly(body={"email": "made@example.test", "password": PASSWORD}, ok=201),
    "PATCH /api/v1/admin/users/{user_id}": AdminOnly(the_user, body={"max_running": 3}),
    "GET /api/v1/admin/audit": AdminOnly(),
    "GET /api/v1/admin/users/{user_id}/usage": AdminOnly(the_user),
    "POST /api/v1/admin/users/{user_id}/password-reset": AdminOnly(the_user, ok=201),
    "GET /api/v1/admin/invitations": AdminOnly(),
    "POST /api/v1/admin/invitations": AdminOnly(body={"email": "invited@example.test"}, ok=201),
    "DELETE /api/v1/admin/invitations/{invitation_id}": AdminOnly(an_invitation, ok=204),
    # Links mailed to people: the token is the credential
    "POST /api/v1/auth/invitations/accept": Public("the invitation link is the credential"),
    "POST /api/v1/auth/password-reset": Public("anyone may ask; the answer never says whether an account exists"),
    "POST /api/v1/auth/password-reset/confirm": Public("the reset link is the credential"),
    "POST /api/v1/auth/verify-email": Public("the confirmation link is the credential"),
    "GET /accept-invitation": Public("page of the invitation link"),
    "GET /reset-password": Public("page of the reset link, and the form that asks for one"),
    "GET /verify-email": Public("page of the confirmation link"),
    # Sessions and the chat
    "GET /api/v1/sessions": SignedIn(hides=a_session),
    "POST /api/v1/sessions": SignedIn(body={}, ok=201),
    "GET /api/v1/sessions/{session_id}": Owned(a_session, check="GET /api/v1/sessions/{session_id}"),
    "PATCH /api/v1/sessions/{session_id}": Owned(
        a_session, body={"title": "taken over"}, check="GET /api/v1/sessions/{session_id}"
    ),
    "DELETE /api/v1/sessions/{session_id}": Owned(a_session, ok=204, check="GET /api/v1/sessions/{session_id}"),
    "GET /api/v1/sessions/{session_id}/messages": Owned(a_session, check="GET /api/v1/sessions/{session_id}"),
    "GET /api/v1/sessions/{session_id}/steps": Owned(a_session),
    "POST /api/v1/sessions/{session_id}/messages": Owned(
        a_session, body={"content": "a cat", "mode": "fresh"}, ok=201, check="GET /api/v1/sessions/{session_id}"
    ),
    # Generations and prompts
    "GET /api/v1/generations": SignedIn(hides=a_generation),
    "POST /api/v1/generations": SignedIn(body={"prompt": "a cat", "width": 64, "height": 64}, ok=201),
    "GET /api/v1/generations/{generation_id}": Owned(a_generation, check="GET /api/v1/generations/{generation_id}"),
    "GET /api/v1/generations/{generation_id}/previews/{number}": Owned(
        a_generation_with_a_preview, check="GET /api/v1/generations/{generation_id}"
    ),
    "POST /api/v1/generations/{generation_id}/cancel": Owned(
        a_generation, check="GET /api/v1/generations/{generation_id}"
    ),
    "POST /api/v1/generations/{generation_id}/retry": Owned(
        a_canceled_generation, ok=201, check="GET /api/v1/generations/{generation_id}"
    ),
    "DELETE /api/v1/generations/{generation_id}": Owned(
        a_canceled_generation, ok=204, check="GET /api/v1/generations/{generation_id}"
    ),
    # UI code
    "GET /api/v1/ui-generations/{ui_id}": Owned(a_ui_generation, check="GET /api/v1/ui-generations/{ui_id}"),
    "GET /api/v1/sessions/{session_id}/ui-generations": Owned(a_session),
    "POST /api/v1/ui-generations/{ui_id}/cancel": Owned(a_ui_generation, check="GET /api/v1/ui-generations/{ui_id}"),
    "POST /api/v1/ui-generations/{ui_id}/retry": Owned(
        a_canceled_ui_generation, ok=201, check="GET /api/v1/ui-generations/{ui_id}"
    ),
    "DELETE /api/v1/ui-generations/{ui_id}": Owned(
        a_canceled_ui_generation, ok=204, check="GET /api/v1/ui-generations/{ui_id}"
    ),
    "GET /api/v1/ui-generations/{ui_id}/preview": Public(
        "a signed preview link is its own authorization; no cookie is read "
        "(tests/api/test_ui_generations.py: 403/410 without a valid one)",
        sample=f"{API}/ui-generations/0190f0f0-0000-7000-8000-000000000000/preview",
    ),
    "GET /api/v1/prompts": SignedIn(hides=a_prompt),
    "GET /api/v1/providers": SignedIn(),
    "POST /api/v1/providers/refresh": AdminOnly(),
    # Live events
    "GET /api/v1/events": SignedIn(hides=a_generation),
    "GET /api/v1/sessions/{session_id}/events": Owned(a_session),
    "GET /api/v1/generations/{generation_id}/events": Owned(a_canceled_generation),
    # Assets
    "POST /api/v1/assets": SignedIn(
        body=Multipart({"file": ("a.png", image_bytes(), "image/png")}, {"purpose": "init"}), ok=201
    ),
    "GET /api/v1/assets/{asset_id}": Owned(an_upload, check="GET /api/v1/assets/{asset_id}"),
    "GET /api/v1/assets/{asset_id}/content": Owned(an_upload, check="GET /api/v1/assets/{asset_id}"),
    "GET /api/v1/assets/{asset_id}/thumbnail": Owned(an_upload, check="GET /api/v1/assets/{asset_id}"),
    "POST /api/v1/assets/{asset_id}/captions": Owned(
        an_upload, body={"style": "short"}, ok=202, check="GET /api/v1/assets/{asset_id}/captions"
    ),
    "GET /api/v1/assets/{asset_id}/captions": Owned(an_upload, check="GET /api/v1/assets/{asset_id}/captions"),
    "GET /api/v1/me/usage": SignedIn(),
    # Each person's own provider keys, and the policy on them
    "GET /api/v1/me/provider-keys": SignedIn(hides=an_own_key_hint),
    "PUT /api/v1/me/provider-keys/{provider}": SignedIn(
        params=users_may_bring_openai_keys, body={"api_key": "sk-my-own-key-0001"}
    ),
    "DELETE /api/v1/me/provider-keys/{provider}": Owned(
        an_own_key,
        ok=204,
        check="GET /api/v1/me/provider-keys",
        intruder_key=403,  # keys never manage credentials
    ),
    "GET /api/v1/admin/provider-keys": AdminOnly(),
    "PATCH /api/v1/admin/provider-keys/{provider}": AdminOnly(
        lambda user: {"provider": "openai"}, body={"allow_user_keys": True}
    ),
    # Spend and budgets
    "GET /api/v1/admin/spend": AdminOnly(),
    "GET /api/v1/admin/budget": AdminOnly(),
    "PUT /api/v1/admin/budget": AdminOnly(body={"monthly_budget": "10"}),
    "GET /api/v1/assets": SignedIn(hides=an_output),
    # Without ids the signed-in caller gets 422; another user's ids: tests/api/test_curate.py.
    "GET /api/v1/assets/archive": SignedIn(ok=422),
    "PATCH /api/v1/assets/{asset_id}": Owned(an_output, body={"starred": True}, check="GET /api/v1/assets/{asset_id}"),
    "DELETE /api/v1/assets/{asset_id}": Owned(an_output, ok=204, check="GET /api/v1/assets/{asset_id}"),
    "POST /api/v1/assets/{asset_id}/links": Owned(an_upload, ok=201, check="GET /api/v1/assets/{asset_id}"),
    "GET /api/v1/assets/{asset_id}/signed": Public(
        "a signed link is its own authorization (tests/api/test_asset_links.py: 403/410 without a valid one)",
        sample=f"{API}/assets/0190f0f0-0000-7000-8000-000000000000/signed",
    ),
    # The OpenAI-compatible API
    "GET /v1/models": OpenAICompatible(),
    "GET /v1/models/{model_id:path}": OpenAICompatible(ok=404, sample="GET /v1/models/nobody/nothing"),
    "POST /v1/images/generations": OpenAICompatible(body={"prompt": "a cat", "n": 99}, ok=400),
    "POST /v1/images/edits": OpenAICompatible(
        body=Multipart({"image": ("a.png", image_bytes(), "image/png")}, {"prompt": "a hat", "n": "99"}), ok=400
    ),
    "POST /v1/images/variations": OpenAICompatible(
        body=Multipart({"image": ("a.png", image_bytes(), "image/png")}, {"n": "99"}), ok=400
    ),
    # Exports
    "GET /api/v1/sessions/{session_id}/export": Owned(a_session, check="GET /api/v1/sessions/{session_id}"),
    "GET /api/v1/projects/{project_id}/export": Owned(a_project, check="GET /api/v1/projects/{project_id}"),
    "GET /api/v1/me/export": SignedIn(hides=a_session),
    "GET /metrics": Guarded("the metrics token or an allowed address: tests/api/test_observability.py"),
}


# --- the tests ----------------------------------------------------------------------------------


def test_every_route_is_in_the_matrix(app) -> None:
    routed = set(routes_of(app))
    missing = sorted(routed - set(MATRIX))
    stale = sorted(set(MATRIX) - routed)
    assert not missing, f"routes without a row in MATRIX (add one): {missing}"
    assert not stale, f"MATRIX rows for routes that no longer exist: {stale}"


def _call(client: TestClient, key: str, params: Params, body: Body, actor: Account | None) -> httpx.Response:
    method, path = key.split(" ", 1)
    url = path.format(**params)
    if callable(body):
        assert actor is not None
        body = body(actor)
    if body is None:
        return client.request(method, url)
    if isinstance(body, Multipart):
        return client.request(method, url, files=body.files, data=body.data)
    return client.request(method, url, json=body)


def _owner_view(owner: Account, check: str | None, params: Params) -> Any:
    if check is None:
        return None
    response = _call(owner.client, check, params, None, owner)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.parametrize("key", sorted(MATRIX))
def test_route_access(app, accounts: Accounts, key: str) -> None:
    row = MATRIX[key]
    anonymous = browser_client(app)

    if isinstance(row, Public):
        response = anonymous.get(row.sample) if row.sample else _call(anonymous, key, {}, None, None)
        assert response.status_code not in (401, 403) and response.status_code < 500, response.text
        return

    if isinstance(row, Guarded):
        assert_problem(_call(anonymous, key, {}, None, None), row.refused)
        user = accounts.make(admin=True)
        assert_problem(_call(user.client, key, {}, None, user), row.refused)
        return

    if isinstance(row, Page):
        owner, intruder = accounts.make(), accounts.make()
        params = row.make(owner) if row.make else {}
        url = key.split(" ", 1)[1].format(**params)
        response = anonymous.get(url, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/login"), response.text
        if row.admin:
            assert intruder.client.get(url).status_code == 403
            owner = accounts.make(admin=True)
        if row.make is not None:
            title = _private_name(owner, params)
            page = intruder.client.get(url)
            assert page.status_code in (200, 404) and title not in page.text
        response = owner.client.get(url)
        assert response.status_code == 200 and "text/html" in response.headers["content-type"], response.text
        return

    if isinstance(row, SharedLink):
        owner = accounts.make()
        params = row.make(owner)
        url = key.split(" ", 1)[1].format(**params)
        for visitor in (anonymous, accounts.make().client, accounts.make().bearer(scopes=["read"])):
            response = visitor.get(url)
            assert response.status_code == 200, response.text
            assert owner.email not in response.text and owner.id not in response.text
        unknown = key.split(" ", 1)[1].format(**{**params, "token": secrets.token_urlsafe(32)})
        assert anonymous.get(unknown).status_code == 404
        revoked = owner.client.patch(f"{API}/projects/{params['project_id']}", json={"is_public": False})
        assert revoked.status_code == 200, revoked.text
        assert anonymous.get(url).status_code == 404
        return

    if isinstance(row, SignedIn):
        owner, intruder = accounts.make(), accounts.make()
        path = row.params(owner) if row.params else {}
        assert_problem(_call(anonymous, key, path, row.body, owner), 401, "not_authenticated")
        if row.hides is not None:
            params = row.hides(owner)
            response = _call(intruder.client, key, path, row.body, intruder)
            assert response.status_code == row.ok, response.text
            for value in params.values():
                assert value not in response.text, f"{key} shows another user's object {value}"
        response = _call(owner.client, key, path, row.body, owner)
        assert response.status_code == row.ok, response.text
        return

    if isinstance(row, Owned):
        owner, intruder = accounts.make(), accounts.make()
        params = row.make(owner)
        before = _owner_view(owner, row.check, params)
        assert_problem(_call(anonymous, key, params, row.body, owner), 401, "not_authenticated")
        assert_problem(_call(intruder.client, key, params, row.body, intruder), 404, "not_found")
        by_key = _call(intruder.bearer(scopes=["read", "generate"]), key, params, row.body, intruder)
        assert_problem(by_key, row.intruder_key)
        assert _owner_view(owner, row.check, params) == before, f"{key}: another user changed the owner's object"
        response = _call(owner.client, key, params, row.body, owner)
        assert response.status_code == row.ok, response.text
        return

    if isinstance(row, OpenAICompatible):
        owner = accounts.make()
        key = row.sample or key
        response = _call(anonymous, key, {}, row.body, owner)
        assert response.status_code == 401 and set(response.json()["error"]) == {"message", "type", "param", "code"}
        if key.startswith("POST"):
            read_only = _call(owner.bearer(scopes=["read"]), key, {}, row.body, owner)
            assert read_only.status_code == 403 and "error" in read_only.json(), read_only.text
        response = _call(owner.bearer(), key, {}, row.body, owner)
        assert response.status_code == row.ok, response.text
        assert row.ok == 200 or "error" in response.json(), response.text
        return

    assert isinstance(row, AdminOnly)
    user, admin = accounts.make(), accounts.make(admin=True)
    params = row.make(user) if row.make else {}
    assert_problem(_call(anonymous, key, params, row.body, user), 401, "not_authenticated")
    assert_problem(_call(user.client, key, params, row.body, user), 403, "admin_required")
    assert_problem(_call(user.bearer(), key, params, row.body, user), 403, "admin_required")
    response = _call(admin.client, key, params, row.body, admin)
    assert response.status_code == row.ok, response.text


# --- ids named in request bodies ----------------------------------------------------------------
#
# Every id a request body names must be the caller's own. A row makes an object of the owner's
# (`make`, answering its id) and a body naming it (`body(actor, object_id)`; the actor's own other
# objects, e.g. a source for a mask, come from the actor). On `path`, the route's path parameters
# are the actor's own objects. A second user naming the owner's object must get the same answer as
# for an id that exists nowhere (4xx, no oracle) and change nothing; the owner naming it succeeds.
# `test_every_body_id_is_in_the_matrix` fails when a request body gains an id field without a row.

BodyMaker = Callable[[Account, str], dict | Multipart]


@dataclass(frozen=True)
class BodyId:
    make: Callable[[Account], str]
    body: BodyMaker
    path: Maker | None = None
    ok: int = 201


def an_asset(purpose: str) -> Callable[[Account], str]:
    def make(owner: Account) -> str:
        color = {"init": (20, 120, 200), "mask": (255, 255, 255), "reference": (90, 200, 40)}[purpose]
        response = upload(owner.client, image_bytes((64, 64), color), purpose=purpose)
        assert response.status_code in (200, 201), response.text  # 200: the same image, uploaded before
        return response.json()["id"]

    return make


def a_session_with_ui(actor: Account) -> Params:
    """The actor's session that holds UI code, if any (the one a revision must be asked in), else a new one."""
    for session in actor.client.get(f"{API}/sessions").json()["items"]:
        if actor.client.get(f"{API}/sessions/{session['id']}/ui-generations").json()["items"]:
            return {"session_id": session["id"]}
    return a_session(actor)


def _id_of(maker: Maker, name: str) -> Callable[[Account], str]:
    return lambda owner: maker(owner)[name]


SMALL_PROMPT = {"prompt": "a lighthouse", "width": 64, "height": 64}

BODY_IDS: dict[tuple[str, str], BodyId] = {
    ("POST /api/v1/generations", "session_id"): BodyId(
        _id_of(a_session, "session_id"), lambda actor, value: {**SMALL_PROMPT, "session_id": value}
    ),
    ("POST /api/v1/generations", "parent_generation_id"): BodyId(
        _id_of(a_generation, "generation_id"), lambda actor, value: {**SMALL_PROMPT, "parent_generation_id": value}
    ),
    ("POST /api/v1/generations", "source_asset_id"): BodyId(
        an_asset("init"), lambda actor, value: {**SMALL_PROMPT, "type": "img2img", "source_asset_id": value}
    ),
    ("POST /api/v1/generations", "mask_asset_id"): BodyId(
        an_asset("mask"),
        lambda actor, value: {
            **SMALL_PROMPT,
            "type": "inpaint",
            "source_asset_id": an_asset("init")(actor),
            "mask_asset_id": value,
        },
    ),
    ("POST /api/v1/generations", "reference_asset_ids"): BodyId(
        an_asset("reference"), lambda actor, value: {**SMALL_PROMPT, "reference_asset_ids": [value]}
    ),
    ("POST /api/v1/sessions", "project_id"): BodyId(
        _id_of(a_project, "project_id"), lambda actor, value: {"project_id": value}
    ),
    ("PATCH /api/v1/sessions/{session_id}", "project_id"): BodyId(
        _id_of(a_project, "project_id"), lambda actor, value: {"project_id": value}, path=a_session, ok=200
    ),
    ("PATCH /api/v1/sessions/{session_id}", "thumbnail_asset_id"): BodyId(
        _id_of(an_output, "asset_id"),
        lambda actor, value: {"thumbnail_asset_id": value},
        path=the_newest_session,
        ok=200,
    ),
    ("POST /api/v1/sessions/{session_id}/messages", "source_asset_id"): BodyId(
        an_asset("init"), lambda actor, value: {"content": "make it blue", "source_asset_id": value}, path=a_session
    ),
    ("POST /api/v1/sessions/{session_id}/messages", "mask_asset_id"): BodyId(
        an_asset("mask"),
        lambda actor, value: {"content": "a boat", "source_asset_id": an_asset("init")(actor), "mask_asset_id": value},
        path=a_session,
    ),
    ("POST /api/v1/sessions/{session_id}/messages", "attachment_ids"): BodyId(
        an_asset("reference"), lambda actor, value: {"content": "like this", "attachment_ids": [value]}, path=a_session
    ),
    ("POST /api/v1/sessions/{session_id}/messages", "parent_ui_generation_id"): BodyId(
        _id_of(a_ui_generation, "ui_id"),
        lambda actor, value: {"content": "dark theme", "mode": "ui", "parent_ui_generation_id": value},
        path=a_session_with_ui,
    ),
    ("POST /api/v1/assets", "session_id"): BodyId(
        _id_of(a_session, "session_id"),
        lambda actor, value: Multipart(
            {"file": ("b.png", image_bytes((40, 40), (7, 7, 7)), "image/png")}, {"purpose": "init", "session_id": value}
        ),
    ),
}


def _resolve(spec: dict, schemas: dict) -> dict:
    while "$ref" in spec:
        spec = schemas[spec["$ref"].rsplit("/", 1)[1]]
    return spec


def _id_fields(spec: dict, schemas: dict, prefix: str = "") -> set[str]:
    """Property names ending in _id or _ids in a request schema, nested objects included (dotted)."""
    spec = _resolve(spec, schemas)
    found: set[str] = set()
    for alternative in spec.get("anyOf", []) + spec.get("allOf", []):
        found |= _id_fields(alternative, schemas, prefix)
    for name, value in spec.get("properties", {}).items():
        if name.endswith(("_id", "_ids")):
            found.add(prefix + name)
        found |= _id_fields(value, schemas, f"{prefix}{name}.")
    return found


def test_every_body_id_is_in_the_matrix(app) -> None:
    document = app.openapi()
    schemas = document.get("components", {}).get("schemas", {})
    named: set[tuple[str, str]] = set()
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for media in operation.get("requestBody", {}).get("content", {}).values():
                for name in _id_fields(media.get("schema", {}), schemas):
                    named.add((f"{method.upper()} {path}", name))
    missing = sorted(named - set(BODY_IDS))
    stale = sorted(set(BODY_IDS) - named)
    assert not missing, f"request bodies naming ids without a row in BODY_IDS (add one): {missing}"
    assert not stale, f"BODY_IDS rows for fields no request body has: {stale}"


def _database_state(app) -> dict[str, Any]:
    """What a refused request must leave as it was: every row of the tables a body id could touch."""
    from sqlalchemy import select

    from imagestudio.models import Asset, ChatSession, Generation, GenerationInput, Message

    with app.state.container.db.reading() as db:
        return {
            "generations": sorted(str(g) for g in db.scalars(select(Generation.id))),
            "inputs": sorted(str(i) for i in db.scalars(select(GenerationInput.asset_id))),
            "messages": sorted(str(m) for m in db.scalars(select(Message.id))),
            "assets": sorted(str(a) for a in db.scalars(select(Asset.id))),
            "sessions": sorted((str(s.id), str(s.project_id)) for s in db.scalars(select(ChatSession))),
        }


def _send(client: TestClient, key: str, params: Params, body: dict | Multipart) -> httpx.Response:
    return _call(client, key, params, body, None)


@pytest.mark.parametrize(("key", "field"), sorted(BODY_IDS))
def test_body_ids_must_be_the_callers_own(app, accounts: Accounts, key: str, field: str) -> None:
    row = BODY_IDS[(key, field)]
    owner, intruder = accounts.make(), accounts.make()
    object_id = row.make(owner)
    # The intruder's body is built (its own objects made) before the state is taken.
    intruder_params = row.path(intruder) if row.path else {}
    foreign_body = row.body(intruder, object_id)
    nowhere_body = row.body(intruder, str(uuid.uuid4()))
    before = _database_state(app)
    foreign = _send(intruder.client, key, intruder_params, foreign_body)
    assert 400 <= foreign.status_code < 500, f"{key} {field}: another user's object was accepted: {foreign.text}"
    nowhere = _send(intruder.client, key, intruder_params, nowhere_body)
    assert_problem(foreign, nowhere.status_code, nowhere.json()["code"])
    assert _fields(foreign) == _fields(nowhere)
    assert _database_state(app) == before, f"{key} {field}: a refused request changed something"
    # The owner naming their own object is served: the refusal above was about whose it is.
    owner_params = row.path(owner) if row.path else {}
    response = _send(owner.client, key, owner_params, row.body(owner, object_id))
    assert response.status_code == row.ok, response.text


def _fields(response: httpx.Response) -> set[str]:
    return {item.get("field") for item in response.json().get("errors", [])}
