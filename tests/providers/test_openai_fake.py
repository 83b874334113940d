"""The fake OpenAI refuses what OpenAI refuses: wrong types, values outside a parameter's set, numbers
out of range and prompts longer than the model takes, per model and per endpoint. Each rule has a
request that breaks only it, answered 400 in OpenAI's error shape with nothing generated; and what
OpenAI accepts (a prompt at the limit, `size: "auto"`) is served. The models are today's gpt-image
family: DALL·E and its parameters (`style`, `response_format`) and the variations endpoint are gone."""

from __future__ import annotations

import base64
import io
from typing import Any

import pytest
from PIL import Image
from starlette.testclient import TestClient

from tests.fakes.common import png_bytes
from tests.fakes.openai import PROMPT_MAX, FakeOpenAI


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


@pytest.fixture
def client(fake: FakeOpenAI) -> TestClient:
    return TestClient(fake.app, headers={"Authorization": f"Bearer {fake.api_key}"})


def _refused(response, param: str, code: str | None = None) -> dict:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


GENERATION_REFUSALS: list[tuple[str, dict[str, Any], str, str | None]] = [
    ("n as a string", {"n": "2"}, "n", "invalid_type"),
    ("n as a decimal", {"n": 2.5}, "n", "invalid_type"),
    ("n as a boolean", {"n": True}, "n", "invalid_type"),
    ("n above 10", {"n": 11}, "n", "integer_above_max_value"),
    ("n below 1", {"n": 0}, "n", "integer_below_min_value"),
    ("style, a parameter of retired models", {"style": "vivid"}, "style", "unknown_parameter"),
    (
        "response_format, a parameter of retired models",
        {"response_format": "b64_json"},
        "response_format",
        "unknown_parameter",
    ),
    ("an unknown output_format", {"output_format": "gif"}, "output_format", "invalid_value"),
    (
        "output_compression above 100",
        {"output_format": "jpeg", "output_compression": 500},
        "output_compression",
        "integer_above_max_value",
    ),
    (
        "output_compression below 0",
        {"output_format": "jpeg", "output_compression": -1},
        "output_compression",
        "integer_below_min_value",
    ),
    ("output_compression as a string", {"output_compression": "50"}, "output_compression", "invalid_type"),
    ("output_compression for png", {"output_compression": 50}, "output_compression", None),
    ("an unknown moderation", {"moderation": "strict"}, "moderation", "invalid_value"),
    ("an unknown background", {"background": "clear"}, "background", "invalid_value"),
    ("a transparent jpeg", {"background": "transparent", "output_format": "jpeg"}, "background", None),
    ("an unknown quality", {"quality": "hd"}, "quality", "invalid_value"),
    ("a size the models lack", {"size": "256x256"}, "size", None),
    ("stream as a string", {"stream": "true"}, "stream", "invalid_type"),
    ("user as a number", {"user": 5}, "user", "invalid_type"),
    ("prompt as a number", {"prompt": 5}, "prompt", "invalid_type"),
    ("a retired model", {"model": "dall-e-3"}, "model", "invalid_value"),
    ("an unknown model", {"model": "gpt-image-9"}, "model", "invalid_value"),
    ("an unknown parameter", {"seed": 1}, "seed", "unknown_parameter"),
]


@pytest.mark.parametrize(
    ("rule", "body", "param", "code"), GENERATION_REFUSALS, ids=[rule[0] for rule in GENERATION_REFUSALS]
)
def test_generations_refuse(
    client: TestClient, fake: FakeOpenAI, rule: str, body: dict, param: str, code: str | None
) -> None:
    _refused(client.post("/v1/images/generations", json={"prompt": "a lighthouse", **body}), param, code)
    assert fake.completed == 0


@pytest.mark.parametrize("model", sorted(PROMPT_MAX))
def test_prompts_longer_than_the_model_takes_are_refused_and_the_limit_itself_is_served(
    client: TestClient, fake: FakeOpenAI, model: str
) -> None:
    limit = PROMPT_MAX[model]
    error = _refused(
        client.post("/v1/images/generations", json={"model": model, "prompt": "a" * (limit + 1)}),
        "prompt",
        "string_above_max_length",
    )
    assert str(limit) in error["message"] and str(limit + 1) in error["message"]
    assert fake.completed == 0
    served = client.post("/v1/images/generations", json={"model": model, "prompt": "a" * limit, "size": "1024x1024"})
    assert served.status_code == 200, served.text
    assert fake.completed == 1


def test_size_auto_is_served_for_gpt_image_1(client: TestClient, fake: FakeOpenAI) -> None:
    response = client.post(
        "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "a lighthouse", "size": "auto", "n": 2}
    )
    assert response.status_code == 200, response.text
    images = [Image.open(io.BytesIO(base64.b64decode(item["b64_json"]))) for item in response.json()["data"]]
    assert [image.size for image in images] == [(1024, 1024)] * 2


def _edit(client: TestClient, **fields: str):
    image = png_bytes(Image.new("RGB", (64, 64), (10, 120, 200)))
    data = {"model": "gpt-image-1", "prompt": "make it blue", **fields}
    return client.post("/v1/images/edits", data=data, files={"image": ("image.png", image, "image/png")})


EDIT_REFUSALS = [
    ("n as a decimal", {"n": "2.5"}, "n", "invalid_type"),
    ("n above 10", {"n": "11"}, "n", "integer_above_max_value"),
    (
        "output_compression above 100",
        {"output_format": "webp", "output_compression": "500"},
        "output_compression",
        "integer_above_max_value",
    ),
    ("an unknown output_format", {"output_format": "gif"}, "output_format", "invalid_value"),
    ("an unknown background", {"background": "clear"}, "background", "invalid_value"),
    (
        "a prompt past gpt-image-1's limit",
        {"prompt": "a" * (PROMPT_MAX["gpt-image-1"] + 1)},
        "prompt",
        "string_above_max_length",
    ),
]


@pytest.mark.parametrize(("rule", "fields", "param", "code"), EDIT_REFUSALS, ids=[r[0] for r in EDIT_REFUSALS])
def test_edits_refuse(
    client: TestClient, fake: FakeOpenAI, rule: str, fields: dict, param: str, code: str | None
) -> None:
    _refused(_edit(client, **fields), param, code)
    assert fake.completed == 0


def test_an_edit_with_size_auto_keeps_the_source_size(client: TestClient) -> None:
    response = _edit(client, size="auto")
    assert response.status_code == 200, response.text
    image = Image.open(io.BytesIO(base64.b64decode(response.json()["data"][0]["b64_json"])))
    assert image.size == (64, 64)


def test_variations_are_gone_with_the_models_that_made_them(client: TestClient) -> None:
    image = png_bytes(Image.new("RGBA", (64, 64), (10, 120, 200, 255)))
    response = client.post("/v1/images/variations", data={"n": "1"}, files={"image": ("i.png", image, "image/png")})
    assert response.status_code == 404
