"""The OpenAI-compatible Images API at /v1, driven by the official `openai` package against a real
server (uvicorn in a thread with its in-process worker and the built-in renderer), on SQLite and
PostgreSQL."""

from __future__ import annotations

import base64
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from PIL import Image
from sqlalchemy import func, select

from imagestudio.accounts import service as accounts
from imagestudio.accounts.service import Principal, expand_scopes
from imagestudio.db import Database
from imagestudio.models import ChatSession, Generation
from imagestudio.openai_api.service import API_SESSION_TITLE
from tests.web.live import LiveServer, studio_settings

PASSWORD = "correct horse battery staple"


def png(width: int = 64, height: int = 64, color: tuple[int, int, int, int] = (200, 40, 40, 255)) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def decode(b64_json: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64_json)))


class Studio:
    def __init__(self, server: LiveServer) -> None:
        self.server = server
        self.base_url = server.base_url

    def user_key(self, scopes: tuple[str, ...] = ("read", "generate"), *, email: str | None = None) -> str:
        email = email or f"sdk-{uuid.uuid4().hex[:8]}@example.test"
        with self.server.container.db.writing() as db:
            user = accounts.create_user(
                db, self.server.settings, email=email, password=PASSWORD, display_name="", is_admin=False
            )
            principal = Principal(user=user, via="session", scopes=expand_scopes(["generate"]))
            _row, key = accounts.create_api_key(
                db, principal, name="sdk", scopes=list(scopes), expires_at=None, rate_limit_per_minute=None
            )
        return key

    def client(self, key: str | None = None, **options: object) -> openai.OpenAI:
        return openai.OpenAI(
            api_key=key or self.user_key(), base_url=f"{self.base_url}/v1", max_retries=0, timeout=60, **options
        )


@pytest.fixture
def studio(db: Database, tmp_path: Path) -> Iterator[Studio]:
    url = db.engine.url.render_as_string(hide_password=False)
    settings = studio_settings(url, tmp_path / "data", workers=1, signup_mode="open")
    server = LiveServer(settings).start()
    try:
        yield Studio(server)
    finally:
        server.stop()


def test_generate_two_images_as_base64(studio: Studio, db: Database) -> None:
    client = studio.client()
    result = client.images.generate(model="builtin", prompt="a lighthouse at dusk", n=2, size="96x64")
    assert len(result.data) == 2
    images = [decode(item.b64_json) for item in result.data]
    assert all(image.size == (96, 64) for image in images)
    assert images[0].tobytes() != images[1].tobytes()
    assert result.size == "96x64" and result.output_format == "png"
    assert abs(result.created - time.time()) < 600
    # A durable generation like any other, in the session named after the API.
    with db.reading() as session:
        generation = session.scalars(select(Generation)).one()
        assert (generation.status, generation.num_images, generation.prompt) == ("succeeded", 2, "a lighthouse at dusk")
        chat = session.get(ChatSession, generation.session_id)
        assert chat is not None and chat.title == API_SESSION_TITLE


def test_generate_as_urls_that_need_no_key(studio: Studio) -> None:
    client = studio.client()
    result = client.images.generate(model="builtin", prompt="a red door", n=2, size="64x64", response_format="url")
    assert [item.b64_json for item in result.data] == [None, None]
    for item in result.data:
        assert item.url is not None and item.url.startswith(studio.base_url + "/api/v1/assets/")
        fetched = httpx.get(item.url)  # no cookie, no key
        assert fetched.status_code == 200 and fetched.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(fetched.content)).size == (64, 64)


def test_output_format_and_compression_convert_the_image(studio: Studio) -> None:
    client = studio.client()
    jpeg = client.images.generate(
        model="builtin", prompt="fog", size="64x64", output_format="jpeg", output_compression=40
    )
    assert jpeg.output_format == "jpeg"
    assert decode(jpeg.data[0].b64_json).format == "JPEG"
    webp = client.images.generate(model="builtin", prompt="fog", size="64x64", output_format="webp")
    assert decode(webp.data[0].b64_json).format == "WEBP"


def test_models_list_ids_and_aliases(studio: Studio) -> None:
    client = studio.client()
    ids = [model.id for model in client.models.list()]
    assert "builtin" in ids
    assert any(model_id.startswith("builtin/") for model_id in ids)
    first = next(model_id for model_id in ids if model_id.startswith("builtin/"))
    model = client.models.retrieve(first)
    assert (model.id, model.owned_by, model.object) == (first, "builtin", "model")
    # A provider/model id generates with that model.
    result = client.images.generate(model=first, prompt="a kite", size="64x64")
    assert len(result.data) == 1
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve("nobody/nothing")
    assert caught.value.body["code"] == "model_not_found"


def test_edit_with_a_mask_is_an_inpaint(studio: Studio, db: Database) -> None:
    client = studio.client()
    mask = png(64, 64, (0, 0, 0, 0))
    result = client.images.edit(
        model="builtin", image=("photo.png", png(), "image/png"), mask=("mask.png", mask, "image/png"), prompt="a hat"
    )
    assert decode(result.data[0].b64_json).size == (64, 64)
    plain = client.images.edit(model="builtin", image=[("a.png", png(), "image/png")], prompt="brighter", n=2)
    assert len(plain.data) == 2
    with db.reading() as session:
        types = sorted(session.scalars(select(Generation.type)).all())
    assert types == ["img2img", "inpaint"]


def test_variation(studio: Studio, db: Database) -> None:
    client = studio.client()
    result = client.images.create_variation(model="builtin", image=("photo.png", png(80, 48), "image/png"), n=2)
    assert len(result.data) == 2
    with db.reading() as session:
        assert session.scalars(select(Generation.type)).one() == "variation"


def test_stream_ends_with_completed_images(studio: Studio) -> None:
    client = studio.client()
    events = list(client.images.generate(model="builtin", prompt="waves", size="64x64", stream=True, n=1))
    completed = [event for event in events if event.type == "image_generation.completed"]
    assert len(completed) == 1
    assert decode(completed[0].b64_json).size == (64, 64)


def test_idempotency_key_replays_the_same_generation(studio: Studio, db: Database) -> None:
    client = studio.client()
    headers = {"Idempotency-Key": "sdk-retry-1"}
    first = client.images.generate(model="builtin", prompt="a cat", size="64x64", extra_headers=headers)
    second = client.images.generate(model="builtin", prompt="a cat", size="64x64", extra_headers=headers)
    assert first.data[0].b64_json == second.data[0].b64_json
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 1


# ---- errors: OpenAI's shape and status codes, the SDK's exception types ----------------------------


def test_bad_key_is_an_authentication_error(studio: Studio) -> None:
    client = studio.client("isk_not-a-real-key")
    with pytest.raises(openai.AuthenticationError) as caught:
        client.images.generate(prompt="x")
    assert caught.value.status_code == 401
    assert set(caught.value.body) == {"message", "type", "param", "code"}


def test_read_only_key_is_a_permission_error(studio: Studio, db: Database) -> None:
    client = studio.client(studio.user_key(("read",)))
    with pytest.raises(openai.PermissionDeniedError):
        client.images.generate(prompt="x")
    assert [model.id for model in client.models.list()]  # reading is allowed
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 0


@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ({"n": 11}, "n"),
        ({"size": "huge"}, "size"),
        ({"size": "99999x64"}, "size"),
        ({"quality": "ultra"}, "quality"),
        ({"output_format": "gif"}, "output_format"),
        ({"output_compression": 500}, "output_compression"),
        ({"response_format": "base64"}, "response_format"),
        ({"background": "glass"}, "background"),
    ],
)
def test_bad_fields_are_bad_requests_naming_the_param(studio: Studio, db: Database, fields: dict, param: str) -> None:
    client = studio.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.images.generate(model="builtin", prompt="x", **fields)
    assert caught.value.body["param"] == param
    with db.reading() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 0


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"prompt": "x", "n": "2"}, "n", "invalid_value"),
        ({"prompt": "x", "n": 2.5}, "n", "invalid_value"),
        ({"prompt": "x", "colour": "red"}, "colour", "unknown_parameter"),
        ({"n": 1}, "prompt", "missing_required_parameter"),
        ({"prompt": ""}, "prompt", "invalid_value"),
        ({"prompt": "x" * 4001}, "prompt", "invalid_value"),
        ({"prompt": "nul \u0000 byte"}, "prompt", "validation_failed"),
    ],
)
def test_raw_bad_bodies(studio: Studio, body: dict, param: str, code: str) -> None:
    response = httpx.post(
        f"{studio.base_url}/v1/images/generations", json=body, headers={"Authorization": f"Bearer {studio.user_key()}"}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["param"], error["code"], error["type"]) == (param, code, "invalid_request_error")


def test_malformed_json_and_unknown_paths(studio: Studio) -> None:
    headers = {"Authorization": f"Bearer {studio.user_key()}", "Content-Type": "application/json"}
    response = httpx.post(f"{studio.base_url}/v1/images/generations", content=b"{not json", headers=headers)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json"
    response = httpx.get(f"{studio.base_url}/v1/nothing-here", headers=headers)
    assert response.status_code == 404 and "error" in response.json()
    # The native API keeps its problem documents.
    native = httpx.get(f"{studio.base_url}/api/v1/nothing-here", headers=headers)
    assert native.headers["content-type"].startswith("application/problem+json")


def test_unknown_model_is_not_found(studio: Studio) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        studio.client().images.generate(model="dall-e-9", prompt="x")
    assert (caught.value.body["code"], caught.value.body["param"]) == ("model_not_found", "model")


def test_quota_is_a_rate_limit_error_with_retry_after(db: Database, tmp_path: Path) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    settings = studio_settings(url, tmp_path / "data", workers=1, default_daily_image_quota=1)
    server = LiveServer(settings).start()
    try:
        client = Studio(server).client()
        client.images.generate(model="builtin", prompt="one", size="64x64")
        with pytest.raises(openai.RateLimitError) as caught:
            client.images.generate(model="builtin", prompt="two", size="64x64")
        assert caught.value.response.headers.get("retry-after")
    finally:
        server.stop()


def test_timeout_answers_504_and_the_generation_keeps_going(db: Database, tmp_path: Path) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    # No worker: nothing can finish, so the wait must end at the timeout.
    settings = studio_settings(url, tmp_path / "data", workers=0, openai_api_timeout_seconds=0.5)
    server = LiveServer(settings).start()
    try:
        with pytest.raises(openai.InternalServerError) as caught:
            Studio(server).client().images.generate(model="builtin", prompt="slow", size="64x64")
        assert caught.value.status_code == 504
        with db.reading() as session:
            assert session.scalars(select(Generation.status)).one() == "queued"
    finally:
        server.stop()


def test_a_users_generations_stay_theirs(studio: Studio, db: Database) -> None:
    first, second = studio.client(), studio.client()
    first.images.generate(model="builtin", prompt="mine", size="64x64")
    second.images.generate(model="builtin", prompt="theirs", size="64x64")
    with db.reading() as session:
        sessions = session.scalars(select(ChatSession).where(ChatSession.title == API_SESSION_TITLE)).all()
        owners = {chat.owner_id for chat in sessions}
    assert len(sessions) == 2 and len(owners) == 2


def _abandoned_request(server: LiveServer, key: str) -> None:
    """A generation request whose client gives up after a moment (a disconnect the server sees)."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{server.base_url}/v1/images/generations",
            json={"model": "builtin", "prompt": "abandoned", "size": "64x64"},
            headers={"Authorization": f"Bearer {key}"},
            timeout=httpx.Timeout(10, read=1.0),
        )


def _status_when_settled(db: Database, wanted: str, seconds: float = 20.0) -> str | None:
    deadline = time.monotonic() + seconds
    status = None
    while time.monotonic() < deadline:
        with db.reading() as session:
            status = session.scalars(select(Generation.status)).one_or_none()
        if status == wanted:
            return status
        time.sleep(0.1)
    return status


@pytest.mark.parametrize("cancel_on_disconnect", [True, False])
def test_a_client_that_disconnects_cancels_only_when_configured(
    db: Database, tmp_path: Path, cancel_on_disconnect: bool
) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    # No worker: the generation stays queued until something cancels it.
    settings = studio_settings(url, tmp_path / "data", workers=0, openai_api_cancel_on_disconnect=cancel_on_disconnect)
    server = LiveServer(settings).start()
    try:
        _abandoned_request(server, Studio(server).user_key())
        if cancel_on_disconnect:
            assert _status_when_settled(db, "canceled") == "canceled"
        else:
            # Give the server time to notice the disconnect; the generation must still be waiting.
            assert _status_when_settled(db, "canceled", seconds=3.0) == "queued"
    finally:
        server.stop()


def test_stream_sends_real_partial_images_before_the_final_one(studio: Studio) -> None:
    client = studio.client()
    events = list(
        client.images.generate(
            model="builtin",
            prompt="a harbour at night",
            size="96x64",
            stream=True,
            partial_images=2,
            extra_body={"quality": "low"},
        )
    )
    kinds = [event.type for event in events]
    assert kinds == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    partials = [decode(event.b64_json) for event in events[:2]]
    final = decode(events[2].b64_json)
    assert [event.partial_image_index for event in events[:2]] == [0, 1]
    assert all(image.size == (96, 64) for image in [*partials, final])
    # Real intermediate renders: each differs from the next and from the finished picture.
    assert partials[0].tobytes() != partials[1].tobytes() != final.convert(partials[1].mode).tobytes()


def test_without_partial_images_the_stream_has_only_the_result(studio: Studio, db: Database) -> None:
    events = list(studio.client().images.generate(model="builtin", prompt="calm", size="64x64", stream=True))
    assert [event.type for event in events] == ["image_generation.completed"]
    with db.reading() as session:
        assert session.scalars(select(Generation.params)).one().get("partial_images") is None
