"""One set of limits for a generation request (models/limits.py), held by every shape of it.

- Every body the API schema accepts becomes an engine spec without error, and what the engine then
  accepts for the builtin provider, the builtin provider accepts too (hypothesis).
- Every value one step past a documented limit is refused with 422 naming the field, and nothing is
  created (on both databases).
- The limits table in docs/api.md is the one generated from REQUEST_LIMITS.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import func, select

from imagestudio.generations.schemas import GenerationCreate
from imagestudio.generations.spec import resolve_size
from imagestudio.generations.submit import Defaults, build_spec
from imagestudio.models import Generation, limits
from imagestudio.models.limits import REQUEST_LIMITS, Limit, limits_table
from imagestudio.providers.base import GenerationRequest, UnsupportedRequest, check_request, model_for_type
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.registry import ProviderRegistry
from tests.api.helpers import API, assert_problem, error_fields

DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"
# The field a limit row stands for when it speaks for several.
EXAMPLE_FIELD = {"prompt_options.* (the others)": "prompt_options.style"}
HEADER_LIMIT = "Idempotency-Key (header)"

RENDERER = BuiltinRenderer()
REGISTRY = ProviderRegistry()
REGISTRY.register(RENDERER)
SOURCE = Image.new("RGB", (96, 64), "teal")


def _text(limit_high: int) -> st.SearchStrategy[str]:
    # Printable text, up to and including the limit.
    return st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), max_size=limit_high)


def _sizes() -> st.SearchStrategy[dict]:
    side = st.integers(limits.SIDE_MIN, limits.SIDE_MAX)
    ratio = st.sampled_from(["1:1", "16:9", "9:16", "3:2", "2:3", "8:1"])
    return st.one_of(
        st.just({}),
        st.builds(lambda w, h: {"width": w, "height": h}, side, side),
        st.builds(lambda w, r: {"width": w, "aspect_ratio": r}, side, ratio),
        st.builds(lambda h, r: {"height": h, "aspect_ratio": r}, side, ratio),
        st.builds(lambda r: {"aspect_ratio": r}, ratio),
    )


def _params() -> st.SearchStrategy[dict]:
    optional = {
        "steps": st.integers(limits.STEPS_MIN, limits.STEPS_MAX),
        "guidance": st.floats(limits.GUIDANCE_MIN, limits.GUIDANCE_MAX),
        "strength": st.floats(limits.STRENGTH_MIN, limits.STRENGTH_MAX),
        "seed": st.integers(limits.SEED_MIN, limits.SEED_MAX),
        "scheduler": _text(limits.SCHEDULER_MAX_LENGTH),
    }
    return st.fixed_dictionaries({}, optional=optional)


def _bodies() -> st.SearchStrategy[dict]:
    fields = {
        "type": st.sampled_from(["text2img", "img2img", "variation"]),
        "prompt": _text(limits.PROMPT_MAX_LENGTH),
        "negative_prompt": _text(limits.NEGATIVE_PROMPT_MAX_LENGTH),
        "num_images": st.integers(limits.NUM_IMAGES_MIN, limits.NUM_IMAGES_MAX),
        "priority": st.integers(limits.PRIORITY_MIN, limits.PRIORITY_MAX),
        "params": _params(),
        "prompt_options": st.fixed_dictionaries(
            {},
            optional={
                "style": _text(limits.PROMPT_OPTION_MAX_LENGTH),
                "location": _text(limits.LOCATION_MAX_LENGTH),
            },
        ),
    }
    return st.builds(lambda body, size: {**body, **size}, st.fixed_dictionaries({}, optional=fields), _sizes())


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=_bodies())
def test_what_the_api_accepts_the_engine_and_the_builtin_provider_accept(body: dict) -> None:
    request = GenerationCreate.model_validate(body)
    # The engine's spec never refuses what the API schema let in (no ValidationError here).
    spec = build_spec(request, type=request.type, prompt=request.prompt, defaults=Defaults(), registry=REGISTRY)
    caps = RENDERER.capabilities()
    model = model_for_type(caps, spec.type)
    assert model is not None
    has_init = spec.type != "text2img"
    try:
        width, height, _ratio = resolve_size(spec, caps, model, SOURCE.size if has_init else None)
        check_request(
            caps,
            type=spec.type,
            model=model.id,
            num_images=spec.num_images,
            width=width,
            height=height,
            has_init=has_init,
            has_mask=False,
        )
    except UnsupportedRequest as refused:
        # Only the provider's own size bounds (narrower than the studio's) may refuse an accepted body.
        assert refused.field in ("width", "height"), refused.message
        assert {"width", "height"} & body.keys()
        return
    provider_request = GenerationRequest(
        type=spec.type,
        prompt=spec.prompt,
        model=model.id,
        num_images=spec.num_images,
        width=width,
        height=height,
        negative_prompt=spec.negative_prompt,
        steps=spec.steps,
        guidance=spec.guidance,
        strength=spec.strength,
        scheduler=spec.scheduler,
        seed=spec.seed,
        init_image=SOURCE if has_init else None,
    )
    job = RENDERER._prepare(provider_request)  # raises PermanentError for anything it would refuse
    if spec.seed is not None:
        assert job.seeds[0] == spec.seed


def _body_with(path: str, value: object) -> dict:
    body: dict = {"width": 64, "height": 64}
    *parents, name = path.split(".")
    node = body
    for parent in parents:
        node = node.setdefault(parent, {})
    node[name] = value
    return body


def _past(limit: Limit, value: int | float) -> object:
    """The request value `value` stands for: a count of characters or items where the limit counts them."""
    if limit.unit == "characters":
        return "x" * int(value)
    if limit.unit == "images" and limit.field == "reference_asset_ids":
        return [str(uuid.uuid4()) for _ in range(int(value))]
    if limit.unit == "entries":
        return {f"k{index}": index for index in range(int(value))}
    return value


def _one_step_past(limit: Limit) -> list[object]:
    step_up = limit.high + 1 if limit.integer else math.nextafter(limit.high, math.inf)
    values = [step_up]
    if limit.low > 0 or limit.unit not in ("characters", "images", "entries"):
        values.append(limit.low - 1 if limit.integer else math.nextafter(limit.low, -math.inf))
    return [_past(limit, value) for value in values]


BODY_LIMITS = [limit for limit in REQUEST_LIMITS if limit.field != HEADER_LIMIT]


def _generation_count(container) -> int:
    with container.db.reading() as db:
        return db.scalar(select(func.count()).select_from(Generation))


@pytest.mark.parametrize("limit", BODY_LIMITS, ids=[limit.field for limit in BODY_LIMITS])
def test_one_step_past_each_documented_limit_is_refused_naming_the_field(limit: Limit, accounts, container) -> None:
    client = accounts.make().client
    field = EXAMPLE_FIELD.get(limit.field, limit.field)
    for value in _one_step_past(limit):
        response = client.post(f"{API}/generations", json=_body_with(field, value))
        assert_problem(response, 422)
        assert field in error_fields(response), (field, response.json())
    assert _generation_count(container) == 0
    # At the limits themselves the schema accepts the value.
    for value in (limit.low, limit.high):
        GenerationCreate.model_validate(_body_with(field, _past(limit, value)))


def test_an_idempotency_key_past_its_limit_is_refused(accounts, container) -> None:
    client = accounts.make().client
    (limit,) = [limit for limit in REQUEST_LIMITS if limit.field == HEADER_LIMIT]
    too_long = {"Idempotency-Key": "k" * (int(limit.high) + 1)}
    response = client.post(f"{API}/generations", json={"width": 64, "height": 64}, headers=too_long)
    assert_problem(response, 422)
    assert "header.Idempotency-Key" in error_fields(response)
    longest = {"Idempotency-Key": "k" * int(limit.high)}
    assert client.post(f"{API}/generations", json={"width": 64, "height": 64}, headers=longest).status_code == 201
    assert _generation_count(container) == 1


@pytest.mark.parametrize(("given", "missing"), [({"width": 520}, "height"), ({"height": 520}, "width")])
def test_one_side_without_the_other_is_refused_naming_the_missing_one(given: dict, missing: str, accounts) -> None:
    client = accounts.make().client
    response = client.post(f"{API}/generations", json=given)
    assert_problem(response, 422, "invalid_generation_request")
    assert missing in error_fields(response)
    # With an aspect ratio the other side follows from the shape.
    shaped = client.post(f"{API}/generations", json={**given, "aspect_ratio": "1:1"})
    assert shaped.status_code == 201, shaped.text
    assert (shaped.json()["width"], shaped.json()["height"]) == (520, 520)


def test_the_limits_table_in_the_api_guide_is_the_one_place() -> None:
    assert limits_table() in DOCS.read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("name", "past", "at"),
    [
        ("steps", limits.STEPS_MAX + 1, limits.STEPS_MAX),
        ("guidance", math.nextafter(limits.GUIDANCE_MAX, math.inf), limits.GUIDANCE_MAX),
        ("seed", limits.SEED_MAX + 1, limits.SEED_MAX),
    ],
)
def test_saved_default_params_keep_the_request_limits(name: str, past: object, at: object, accounts) -> None:
    # A default the request limits refuse would make every later generation fail.
    client = accounts.make().client
    refused = client.patch(f"{API}/me/settings", json={"default_params": {name: past}})
    assert_problem(refused, 422)
    assert f"default_params.{name}" in error_fields(refused)
    assert client.patch(f"{API}/me/settings", json={"default_params": {name: at}}).status_code == 200
    created = client.post(f"{API}/generations", json={"width": 64, "height": 64})
    assert created.status_code == 201, created.text
    assert created.json()["params"][name] == at
