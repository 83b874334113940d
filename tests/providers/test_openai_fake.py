"""The fake OpenAI refuses what OpenAI refuses: wrong types, values outside a parameter's set, numbers
out of range and prompts longer than the model takes, per model and per endpoint. Each rule has a
request that breaks only it, answered 400 in OpenAI's error shape with nothing generated; and what
OpenAI accepts (a prompt at the limit, `size: "auto"` for gpt-image-1) is served."""

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
    ("n as a string", {"model": "dall-e-2", "n": "2"}, "n", "invalid_type"),
    ("n as a decimal", {"model": "dall-e-2", "n": 2.5}, "n", "invalid_type"),
    ("n as a boolean", {"model": "dall-e-2", "n": True}, "n", "invalid_type"),
    ("n above 10", {"model": "dall-e-2", "n": 11}, "n", None),
    ("n below 1", {"model": "dall-e-2", "n": 0}, "n", None),
    ("n above 1 for dall-e-3", {"model": "dall-e-3", "n": 2}, "n", None),
    ("an unknown style", {"model": "dall-e-3", "style": "bogus"}, "style", "invalid_value"),
    ("style for dall-e-2", {"model": "dall-e-2", "style": "vivid"}, "style", None),
    ("an unknown response_format", {"model": "dall-e-2", "response_format": "base64"}, "response_format",
     "invalid_value"),
    ("response_format for gpt-image-1", {"model": "gpt-image-1", "response_format": "b64_json"}, "response_format",
     "unknown_parameter"),
    ("an unknown output_format", {"model": "gpt-image-1", "output_format": "gif"}, "output_format", "invalid_value"),
    ("output_format for dall-e-3", {"model": "dall-e-3", "output_format": "png"}, "output_format", None),
    ("output_compression above 100", {"model": "gpt-image-1", "output_format": "jpeg", "output_compression": 500},
     "output_compression", "integer_above_max_value"),
    ("output_compression below 0", {"model": "gpt-image-1", "output_format": "jpeg", "output_compression": -1},
     "output_compression", "integer_below_min_value"),
    ("output_compression as a string", {"model": "gpt-image-1", "output_compression": "50"}, "output_compression",
     "invalid_type"),
    ("an unknown moderation", {"model": "gpt-image-1", "moderation": "strict"}, "moderation", "invalid_value"),
    ("an unknown background", {"model": "gpt-image-1", "background": "clear"}, "background", "invalid_value"),
    ("a transparent jpeg", {"model": "gpt-image-1", "background": "transparent", "output_format": "jpeg"},
     "background", None),
    ("a quality the model lacks", {"model": "dall-e-3", "quality": "high"}, "quality", "invalid_value"),
    ("size auto for dall-e-3", {"model": "dall-e-3", "size": "auto"}, "size", None),
    ("a size the model lacks", {"model": "dall-e-2", "size": "1536x1024"}, "size", None),
    ("user as a number", {"model": "dall-e-2", "user": 5}, "user", "invalid_type"),
    ("prompt as a number", {"model": "dall-e-2", "prompt": 5}, "prompt", "invalid_type"),
    ("an unknown model", {"model": "dall-e-4"}, "model", "invalid_value"),
    ("an unknown parameter", {"model": "dall-e-2", "seed": 1}, "seed", "unknown_parameter"),
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
    size = {"gpt-image-1": "1024x1024", "dall-e-3": "1024x1024", "dall-e-2": "256x256"}[model]
    served = client.post("/v1/images/generations", json={"model": model, "prompt": "a" * limit, "size": size})
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
    ("n above 10", {"n": "11"}, "n", None),
    ("output_compression above 100", {"output_format": "webp", "output_compression": "500"}, "output_compression",
     "integer_above_max_value"),
    ("an unknown output_format", {"output_format": "gif"}, "output_format", "invalid_value"),
    ("an unknown background", {"background": "clear"}, "background", "invalid_value"),
    ("a prompt past gpt-image-1's limit", {"prompt": "a" * (PROMPT_MAX["gpt-image-1"] + 1)}, "prompt",
     "string_above_max_length"),
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


def _variation(client: TestClient, **fields: str):
    image = png_bytes(Image.new("RGBA", (64, 64), (10, 120, 200, 255)))
    return client.post(
        "/v1/images/variations", data={"size": "256x256", **fields}, files={"image": ("i.png", image, "image/png")}
    )


@pytest.mark.parametrize(
    ("fields", "param", "code"),
    [({"response_format": "base64"}, "response_format", "invalid_value"), ({"n": "two"}, "n", "invalid_type")],
)
def test_variations_refuse(client: TestClient, fake: FakeOpenAI, fields: dict, param: str, code: str) -> None:
    _refused(_variation(client, **fields), param, code)
    assert fake.completed == 0
    assert _variation(client).status_code == 200
