"""The prompt a generation sends: rewritten by the language model when asked (decided once, by the
worker), the template when the model fails, and recorded in the database and the PNG."""

from __future__ import annotations

import uuid

import pytest
from PIL import Image
from sqlalchemy import update

from imagestudio.assets.images import encode_png, read_png_metadata
from imagestudio.db import Database
from imagestudio.language import LanguageRegistry
from imagestudio.models import Asset, Generation, User
from tests import factories
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault
from tests.generations.conftest import running_worker, submit, wait_final

pytestmark = pytest.mark.anyio

OPTIONS = {"shot_type": "wide shot", "lighting": "golden hour"}


@pytest.fixture
def fake() -> FakeChatCompletions:
    return FakeChatCompletions()


@pytest.fixture
def language(fake: FakeChatCompletions) -> LanguageRegistry:
    return LanguageRegistry([chat_model(fake, model="llama3.2:1b", vision_model="llava:7b")], default="openai")


def _asking_for_enhancement(db: Database, generation_id: uuid.UUID) -> None:
    """What a request with enhance_prompt makes: the decision left to the worker."""
    with db.writing() as session:
        session.execute(
            update(Generation)
            .where(Generation.id == generation_id)
            .values(enhance_prompt=True, prompt_method=None, enhanced_prompt=None)
        )


async def test_the_language_model_writes_the_prompt_the_provider_gets(
    db: Database, registry, settings, storage, scripted, user_id, language, fake
) -> None:
    fake.reply_next("A sweeping wide shot of a lighthouse in warm golden light")
    generation_id = submit(db, user_id, registry, settings, prompt="a lighthouse", prompt_options=OPTIONS)
    _asking_for_enhancement(db, generation_id)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert generation.status == "succeeded"
    assert [request.prompt for request in scripted.requests] == [
        "A sweeping wide shot of a lighthouse in warm golden light"
    ]
    assert (generation.prompt, generation.enhanced_prompt, generation.prompt_method) == (
        "a lighthouse",
        "A sweeping wide shot of a lighthouse in warm golden light",
        "language_model",
    )
    assert generation.prompt_plan["provider"] == "openai" and generation.prompt_plan["model"] == "llama3.2:1b"
    assert generation.prompt_plan["failure"] is None and generation.prompt_plan["completion_tokens"] == 11
    assert "shot type: wide shot; lighting: golden hour" in fake.last.json["messages"][1]["content"]
    with db.reading() as session:
        [asset] = session.query(Asset).filter(Asset.generation_id == generation_id).all()
    metadata = read_png_metadata(storage.get(asset.storage_key))
    assert metadata["prompt"] == "A sweeping wide shot of a lighthouse in warm golden light"
    assert metadata["original_prompt"] == "a lighthouse"
    assert metadata["prompt_method"] == "language_model"


async def test_a_failing_model_leaves_the_template_and_the_image_still_comes(
    db: Database, registry, settings, storage, scripted, user_id, language, fake
) -> None:
    fake.fail_next(Fault.server_error(500))
    generation_id = submit(db, user_id, registry, settings, prompt="a lighthouse", prompt_options=OPTIONS)
    _asking_for_enhancement(db, generation_id)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert (generation.status, generation.attempt) == ("succeeded", 1)
    assert generation.prompt_method == "template"
    assert generation.enhanced_prompt == "a lighthouse, wide shot, golden hour lighting"
    assert generation.prompt_plan["failure"]["code"] == "provider_unavailable"
    assert [request.prompt for request in scripted.requests] == ["a lighthouse, wide shot, golden hour lighting"]


async def test_a_retry_reuses_the_decision_instead_of_asking_again(
    db: Database, registry, settings, storage, scripted, user_id, language, fake
) -> None:
    from imagestudio.providers.base import RetriableError

    scripted.script = [RetriableError("busy", retry_after=0.01), None]
    fake.reply_next("a lighthouse, rewritten once")
    generation_id = submit(db, user_id, registry, settings, prompt="a lighthouse")
    _asking_for_enhancement(db, generation_id)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    assert (final[generation_id].status, final[generation_id].attempt) == ("succeeded", 2)
    assert len(fake.requests) == 1
    assert [request.prompt for request in scripted.requests] == ["a lighthouse, rewritten once"] * 2


async def test_iterating_describes_the_source_image_first(
    db: Database, registry, settings, storage, scripted, user_id, language, fake
) -> None:
    storage.put("uploads/source.png", encode_png(Image.new("RGB", (96, 80), (200, 30, 30)), {}), "image/png")
    with db.writing() as session:
        owner = session.get(User, user_id)
        source = factories.make_upload(session, owner, storage_key="uploads/source.png", width=96, height=80).id
    generation_id = submit(
        db,
        user_id,
        registry,
        settings,
        type="img2img",
        prompt="make it night",
        source_asset_id=source,
        width=None,
        height=None,
    )
    _asking_for_enhancement(db, generation_id)
    fake.reply_next("a red square", "a red square at night under stars")
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [generation_id])
    assert final[generation_id].enhanced_prompt == "a red square at night under stars"
    describe, enhance = fake.requests
    assert describe.json["model"] == "llava:7b" and fake.images_seen[0].size == (96, 80)
    assert "The image being changed shows: a red square" in enhance.json["messages"][1]["content"]


async def test_without_enhancement_the_model_is_never_asked(
    db: Database, registry, settings, storage, scripted, user_id, language, fake
) -> None:
    plain = submit(db, user_id, registry, settings, prompt="a lighthouse")
    templated = submit(db, user_id, registry, settings, prompt="a lighthouse", prompt_options=OPTIONS)
    async with running_worker(db, storage, registry, settings, language=language):
        final = await wait_final(db, [plain, templated])
    assert (final[plain].prompt_method, final[plain].enhanced_prompt) == ("none", None)
    assert (final[templated].prompt_method, final[templated].enhanced_prompt) == (
        "template",
        "a lighthouse, wide shot, golden hour lighting",
    )
    assert fake.requests == []
