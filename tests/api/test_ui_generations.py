"""UI generations: chat turns in mode "ui" write one HTML document as a durable job; the code is
read, listed, iterated, cancelled, retried and deleted through /api/v1/ui-generations, and its
preview is served only through a signed link under a sandboxing Content-Security-Policy.

Every test runs on SQLite and PostgreSQL (the `db` fixture), with the built-in composer or the
OpenAI-compatible fake speaking the real chat completions wire format.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import time
import uuid

from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select

from imagestudio.language import LanguageRegistry
from imagestudio.models import Generation, GenerationEvent, Message, UiGeneration
from imagestudio.uicode import service as ui_service
from imagestudio.uicode.preview import preview_link
from tests.api.helpers import API, assert_problem, error_fields, image_bytes, run_queue, upload
from tests.fakes.chat_openai import FakeChatCompletions, chat_model

REQUIRED_POLICY = (
    "sandbox allow-scripts",
    "default-src 'none'",
    "style-src 'unsafe-inline'",
    "script-src 'unsafe-inline'",
    "img-src data:",
)
MODEL_DOCUMENT = """Here is your component:

```html
<!doctype html>
<html lang="en">
<head>
<title>Mockup card</title>
<link rel="stylesheet" href="https://cdn.example.com/tailwind.css">
<style>@import url("https://fonts.example.com/inter.css"); body { background: url(https://x.example/bg.png); }</style>
</head>
<body>
<img src="https://images.example.com/hero.jpg" alt="hero">
<img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">
<a href="https://example.com/signup">Sign up</a>
<script src="https://cdn.example.com/app.js"></script>
<main class="card"><h1>Mockup card</h1><button>Buy now</button></main>
</body>
</html>
```
I hope this helps."""
REVISED_DOCUMENT = """```html
<!doctype html>
<html lang="en"><head><title>Mockup card, dark</title><style>body { background: #000; color: #fff; }</style></head>
<body><main class="card"><h1>Mockup card</h1><button>Buy now</button></main></body></html>
```"""


def _session(client: TestClient) -> str:
    response = client.post(f"{API}/sessions", json={})
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _ui_turn(client: TestClient, session_id: str, content: str, **fields) -> dict:
    response = client.post(f"{API}/sessions/{session_id}/messages", json={"content": content, "mode": "ui", **fields})
    assert response.status_code == 201, response.text
    return response.json()


def _counts(container) -> tuple[int, int, int]:
    with container.db.reading() as db:
        return (
            db.scalar(select(func.count()).select_from(UiGeneration)),
            db.scalar(select(func.count()).select_from(Generation)),
            db.scalar(select(func.count()).select_from(Message)),
        )


def test_describe_code_iterate_and_preview_with_the_builtin_composer(accounts, container, client) -> None:
    owner = accounts.make()
    session_id = _session(owner.client)
    turn = _ui_turn(owner.client, session_id, 'A login form for "Northwind"')
    assert turn["assistant_message"]["type"] == "code" and turn["generation"]["type"] == "ui"
    first = turn["ui_generation"]
    assert turn["ui_generation_id"] == first["id"]
    assert (first["status"], first["provider"], first["model"], first["code"]) == (
        "queued",
        "builtin",
        "ui-composer",
        None,
    )
    assert first["parent_id"] is None and first["preview_url"] is None

    run_queue(container)
    done = owner.client.get(f"{API}/ui-generations/{first['id']}").json()
    assert done["status"] == "succeeded" and done["by_ai"] is False
    code = done["code"]
    assert code.startswith("<!doctype html>") and "Sign in to Northwind" in code and "<form" in code
    assert "not an AI model" in code
    assert done["code_bytes"] == len(code.encode())
    assert done["code_sha256"] == hashlib.sha256(code.encode()).hexdigest()
    assert done["title"] == "Northwind: sign-in form"
    assert "--bg: #f8fafc" in code and "--button-size: 15px" in code

    # The assistant's message says what was made, by which model.
    messages = owner.client.get(f"{API}/sessions/{session_id}/messages").json()["items"]
    answer = next(m for m in messages if m["id"] == turn["assistant_message"]["id"])
    assert (answer["type"], answer["status"], answer["content"], answer["model"]) == (
        "code",
        "succeeded",
        "Northwind: sign-in form",
        "ui-composer",
    )

    # Iterating revises the latest version: the same form, dark, with larger buttons.
    second = _ui_turn(owner.client, session_id, "dark theme, and make the buttons larger")["ui_generation"]
    assert second["parent_id"] == first["id"]
    run_queue(container)
    revised = owner.client.get(f"{API}/ui-generations/{second['id']}").json()
    assert revised["status"] == "succeeded"
    assert "Sign in to Northwind" in revised["code"] and "--bg: #0f172a" in revised["code"]
    assert "--button-size: 18px" in revised["code"] and revised["code_sha256"] != done["code_sha256"]

    # Any earlier version can be revised instead (a branch): the first one, in green.
    branch = _ui_turn(owner.client, session_id, "green accent", parent_ui_generation_id=first["id"])
    assert branch["ui_generation"]["parent_id"] == first["id"]
    run_queue(container)
    branched = owner.client.get(f"{API}/ui-generations/{branch['ui_generation_id']}").json()
    assert "--accent: #16a34a" in branched["code"] and "--bg: #f8fafc" in branched["code"]

    listed = owner.client.get(f"{API}/sessions/{session_id}/ui-generations").json()
    assert [item["id"] for item in listed["items"]] == [branched["id"], revised["id"], done["id"]]
    assert listed["next_cursor"] is None and all(item["code"] is None for item in listed["items"])

    # The preview: a signed link, no cookie, the document under the sandboxing policy.
    preview = client.get(revised["preview_url"])
    assert preview.status_code == 200, preview.text
    assert preview.text == revised["code"]
    assert preview.headers["content-type"] == "text/html; charset=utf-8"
    assert preview.headers["x-content-type-options"] == "nosniff"
    policy = preview.headers["content-security-policy"]
    assert all(part in policy for part in REQUIRED_POLICY), policy
    assert "allow-same-origin" not in policy
    assert "set-cookie" not in preview.headers


def test_the_jobs_events_are_on_the_sessions_stream(accounts, container) -> None:
    owner = accounts.make()
    session_id = _session(owner.client)
    turn = _ui_turn(owner.client, session_id, "a pricing table")
    run_queue(container)
    stream = owner.client.get(f"{API}/sessions/{session_id}/events")
    assert stream.status_code == 200
    ids = set(re.findall(r'"generation_id": ?"([0-9a-f-]+)"', stream.text))
    kinds = re.findall(r"^event: (\w+)$", stream.text, re.MULTILINE)
    assert turn["generation_id"] in ids, stream.text
    assert {"queued", "started", "succeeded"} <= set(kinds)
    with container.db.reading() as db:
        queued = db.scalars(
            select(GenerationEvent).where(
                GenerationEvent.generation_id == uuid.UUID(turn["generation_id"]), GenerationEvent.type == "queued"
            )
        ).one()
    assert queued.payload["ui_generation_id"] == turn["ui_generation_id"]


def test_a_language_model_writes_from_an_image_and_revises_its_code(accounts, container, client) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    session_id = _session(owner.client)
    mockup = upload(owner.client, image_bytes((96, 64), (20, 140, 220))).json()["id"]
    fake.reply_next(MODEL_DOCUMENT)
    turn = _ui_turn(owner.client, session_id, "turn this mockup into HTML", attachment_ids=[mockup])
    assert turn["ui_generation"]["source_asset_id"] == mockup
    run_queue(container)

    # The wire: a system instruction, then the words and the image as an image_url data URL part.
    sent = fake.requests[-1].json
    assert sent["model"] == "gpt-4o-mini" and sent["max_tokens"] == 8192
    system, user = sent["messages"]
    assert system["role"] == "system" and "self-contained HTML document" in system["content"]
    text, picture = user["content"]
    assert text["type"] == "text" and "turn this mockup into HTML" in text["text"]
    assert picture["image_url"]["url"].startswith("data:image/png;base64,")
    shown = Image.open(io.BytesIO(base64.b64decode(picture["image_url"]["url"].split(",", 1)[1])))
    assert shown.size == (96, 64)

    done = owner.client.get(f"{API}/ui-generations/{turn['ui_generation_id']}").json()
    assert done["status"] == "succeeded", done
    assert (done["provider"], done["model"], done["by_ai"], done["title"]) == (
        "openai",
        "gpt-4o-mini",
        True,
        "Mockup card",
    )
    assert done["prompt_tokens"] > 85 and done["completion_tokens"] == len(MODEL_DOCUMENT.split())
    code = done["code"]
    assert "I hope this helps" not in code and code.startswith("<!doctype html>")
    assert "example.com" not in code and "data:image/png;base64,iVBORw0KGgo=" in code
    assert done["removed_references"] == 6
    assert "<h1>Mockup card</h1>" in code

    fake.reply_next(REVISED_DOCUMENT)
    revision = _ui_turn(owner.client, session_id, "dark theme")
    assert revision["ui_generation"]["parent_id"] == done["id"]
    run_queue(container)
    revise_text = fake.requests[-1].json["messages"][1]["content"]
    assert isinstance(revise_text, str) and code in revise_text and "Revise it: dark theme" in revise_text
    revised = owner.client.get(f"{API}/ui-generations/{revision['ui_generation_id']}").json()
    assert revised["status"] == "succeeded" and "background: #000" in revised["code"]
    assert client.get(revised["preview_url"]).text == revised["code"]


def test_an_answer_without_html_fails_and_can_be_retried(accounts, container) -> None:
    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    owner = accounts.make()
    session_id = _session(owner.client)
    fake.reply_next("Sorry, I only talk about the weather.")
    turn = _ui_turn(owner.client, session_id, "a dashboard")
    run_queue(container)
    failed = owner.client.get(f"{API}/ui-generations/{turn['ui_generation_id']}").json()
    assert failed["status"] == "failed" and failed["error"]["code"] == "invalid_ui_code"
    assert failed["code"] is None and failed["preview_url"] is None

    fake.reply_next(REVISED_DOCUMENT)
    retried = owner.client.post(f"{API}/ui-generations/{failed['id']}/retry")
    assert retried.status_code == 201, retried.text
    again = retried.json()
    assert again["retried_from_generation_id"] == failed["generation_id"] and again["prompt"] == "a dashboard"
    run_queue(container)
    assert owner.client.get(f"{API}/ui-generations/{again['id']}").json()["status"] == "succeeded"
    # The chat's answer follows the retry.
    answer = owner.client.get(f"{API}/sessions/{session_id}/messages").json()["items"][0]
    assert answer["generation_id"] == again["generation_id"] and answer["status"] == "succeeded"
    assert_problem(owner.client.post(f"{API}/ui-generations/{again['id']}/retry"), 409, "invalid_generation_state")


def test_cancel_and_delete(accounts, container, client) -> None:
    owner = accounts.make()
    session_id = _session(owner.client)
    queued = _ui_turn(owner.client, session_id, "a todo list")["ui_generation"]
    assert_problem(owner.client.delete(f"{API}/ui-generations/{queued['id']}"), 409, "invalid_generation_state")
    canceled = owner.client.post(f"{API}/ui-generations/{queued['id']}/cancel")
    assert canceled.status_code == 200 and canceled.json()["status"] == "canceled"

    kept = _ui_turn(owner.client, session_id, "a contact form")["ui_generation"]
    run_queue(container)
    done = owner.client.get(f"{API}/ui-generations/{kept['id']}").json()
    key = container.storage.list(f"code/{done['generation_id']}/")
    assert list(key)
    assert owner.client.delete(f"{API}/ui-generations/{queued['id']}").status_code == 204
    assert owner.client.delete(f"{API}/ui-generations/{done['id']}").status_code == 204
    assert list(container.storage.list(f"code/{done['generation_id']}/")) == []
    assert_problem(owner.client.get(f"{API}/ui-generations/{done['id']}"), 404, "not_found")
    assert_problem(client.get(done["preview_url"]), 404, "not_found")
    assert owner.client.get(f"{API}/sessions/{session_id}/ui-generations").json()["items"] == []
    # The assistant's answers went with them; the questions stay.
    messages = owner.client.get(f"{API}/sessions/{session_id}/messages").json()["items"]
    assert [(m["role"], m["content"]) for m in messages] == [("user", "a contact form"), ("user", "a todo list")]
    assert owner.client.get(f"{API}/sessions/{session_id}").json()["message_count"] == 2


def test_preview_links_are_the_only_way_in(accounts, container, client, settings) -> None:
    owner = accounts.make()
    session_id = _session(owner.client)
    made = _ui_turn(owner.client, session_id, "a landing page")["ui_generation"]
    other = _ui_turn(owner.client, session_id, "a card", parent_ui_generation_id=made["id"])["ui_generation"]
    run_queue(container)
    url = owner.client.get(f"{API}/ui-generations/{made['id']}").json()["preview_url"]
    path, _, query = url.partition("?")
    # The owner's cookie is not what lets a preview in: without the signature, even the owner is refused.
    assert owner.client.get(path).status_code == 422
    signature = re.search(r"signature=([\w-]+)", query).group(1)
    tampered = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    assert_problem(client.get(url.replace(signature, tampered)), 403, "invalid_link")
    # A signature is for one UI generation only.
    assert_problem(client.get(url.replace(made["id"], other["id"])), 403, "invalid_link")
    expired = preview_link(settings, uuid.UUID(made["id"]), lifetime_seconds=-10)
    assert_problem(client.get(expired.url), 410, "link_expired")
    assert int(time.time()) < int(re.search(r"expires=(\d+)", query).group(1))
    assert client.get(url).status_code == 200


def test_other_users_see_nothing_and_bad_turns_change_nothing(accounts, container) -> None:
    owner, intruder = accounts.make(), accounts.make()
    session_id = _session(owner.client)
    made = _ui_turn(owner.client, session_id, "a pricing table")["ui_generation"]
    for method, path in [
        ("GET", f"{API}/ui-generations/{made['id']}"),
        ("POST", f"{API}/ui-generations/{made['id']}/cancel"),
        ("POST", f"{API}/ui-generations/{made['id']}/retry"),
        ("DELETE", f"{API}/ui-generations/{made['id']}"),
        ("GET", f"{API}/sessions/{session_id}/ui-generations"),
    ]:
        assert_problem(intruder.client.request(method, path), 404, "not_found")

    other_session = _session(owner.client)
    intruders_image = upload(intruder.client).json()["id"]
    before = _counts(container)
    bad_turns = [
        ({"parent_ui_generation_id": made["id"]}, other_session, "parent_ui_generation_id"),
        ({"parent_ui_generation_id": str(uuid.uuid4())}, session_id, "parent_ui_generation_id"),
        ({"attachment_ids": [intruders_image]}, session_id, "attachment_ids"),
        ({"source_asset_id": intruders_image}, session_id, "source_asset_id"),
        ({"mask_asset_id": intruders_image}, session_id, "mask_asset_id"),
        ({"width": 512}, session_id, "width"),
        ({"num_images": 2}, session_id, "mode"),
        ({"provider": "nonesuch"}, session_id, "provider"),
        ({"provider": "builtin", "model": "gpt-5"}, session_id, "model"),
        ({"content": "   "}, session_id, "content"),
    ]
    for fields, target, field in bad_turns:
        body = {"content": "a card", "mode": "ui", **fields}
        response = owner.client.post(f"{API}/sessions/{target}/messages", json=body)
        assert response.status_code == 422, (fields, response.text)
        assert field in error_fields(response), (fields, response.json())
    # Only a ui turn names a UI generation to revise.
    iterate = owner.client.post(
        f"{API}/sessions/{session_id}/messages", json={"content": "x", "parent_ui_generation_id": made["id"]}
    )
    assert "parent_ui_generation_id" in error_fields(iterate)
    oversized = owner.client.post(f"{API}/sessions/{session_id}/messages", json={"content": "x" * 5000, "mode": "ui"})
    assert oversized.status_code == 422
    assert_problem(
        owner.client.post(f"{API}/sessions/{uuid.uuid4()}/messages", json={"content": "a", "mode": "ui"}), 404
    )
    assert _counts(container) == before


def test_a_projects_ui_generations_are_listed_for_its_pages(accounts, container) -> None:
    owner = accounts.make()
    project = owner.client.post(f"{API}/projects", json={"name": "site"}).json()["id"]
    inside = owner.client.post(f"{API}/sessions", json={"project_id": project}).json()["id"]
    outside = _session(owner.client)
    kept = _ui_turn(owner.client, inside, "a landing page")["ui_generation"]
    _ui_turn(owner.client, outside, "a card")
    run_queue(container)
    queued = _ui_turn(owner.client, inside, "dark theme")["ui_generation"]
    with container.db.reading() as db:
        shown = ui_service.project_ui_generations(db, uuid.UUID(project))
        everything = ui_service.project_ui_generations(db, uuid.UUID(project), succeeded_only=False)
    assert [str(view.row.id) for view in shown] == [kept["id"]]
    assert [str(view.row.id) for view in everything] == [kept["id"], queued["id"]]


def test_the_sessions_context_is_read_for_every_ui_turn(accounts, container) -> None:
    owner = accounts.make()
    context = "Our brand colour is green and every page is dark."
    session_id = owner.client.post(f"{API}/sessions", json={"context": context}).json()["id"]
    turn = _ui_turn(owner.client, session_id, "a signup form")
    run_queue(container)
    code = owner.client.get(f"{API}/ui-generations/{turn['ui_generation_id']}").json()["code"]
    assert "--accent: #16a34a" in code and "--bg: #0f172a" in code

    fake = FakeChatCompletions()
    container.language = LanguageRegistry([chat_model(fake)], default="openai")
    fake.reply_next(REVISED_DOCUMENT)
    _ui_turn(owner.client, session_id, "a pricing table")
    run_queue(container)
    system = fake.requests[-1].json["messages"][0]["content"]
    assert system.endswith(f"(follow them unless the request says otherwise): {context}")
