"""Provider keys never leak: each key is a canary string, generations run through the engine against
the fake services with every kind of failure, and the canary appears in no log record, no database
row and no stored error."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import pytest
from PIL import Image
from sqlalchemy import text

from imagestudio.accounts import provider_keys
from imagestudio.db import Database
from imagestudio.language import LanguageRegistry
from imagestudio.models import GenerationType, User, metadata
from imagestudio.providers.base import GenerationRequest, Provider
from imagestudio.providers.registry import ProviderRegistry
from tests import factories
from tests.fakes.chat_gemini import FakeGeminiText, gemini_chat_model
from tests.fakes.chat_openai import FakeChatCompletions, chat_model
from tests.fakes.common import Fault, client_for, png_bytes
from tests.fakes.gemini import BASE_URL as GEMINI_URL
from tests.fakes.gemini import FakeGemini, gemini_provider
from tests.fakes.openai import BASE_URL as OPENAI_URL
from tests.fakes.openai import FakeOpenAI, openai_provider
from tests.fakes.stability import BASE_URL as STABILITY_URL
from tests.fakes.stability import FakeStability, stability_provider
from tests.generations.conftest import ask_caption, ask_reply, running_worker, submit, wait_final

pytestmark = pytest.mark.anyio

CANARY = "canary-6f1d2b7e-secret-do-not-leak"

# Each failure the fakes can play, then one success; a wrong key on top (the service answers 401,
# and some services echo the key they were given).
FAULTS = [
    Fault.rate_limit(retry_after=0.01),
    Fault.server_error(503, retry_after=0.01),
    Fault.malformed(),
    Fault.content_rejection(),
    Fault.quota(),
]

SERVICES: dict[str, tuple[type, str, Callable]] = {
    "openai": (FakeOpenAI, OPENAI_URL, openai_provider),
    "stability": (FakeStability, STABILITY_URL, stability_provider),
    "gemini": (FakeGemini, GEMINI_URL, gemini_provider),
}


def _everything_in_the_database(db: Database) -> str:
    dump = []
    with db.reading() as session:
        for table in metadata.sorted_tables:
            dump.extend(repr(tuple(row)) for row in session.execute(text(f"SELECT * FROM {table.name}")))
    return "\n".join(dump)


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_provider_keys_never_leak(
    service: str, db: Database, user_id: uuid.UUID, storage, settings, caplog: pytest.LogCaptureFixture
) -> None:
    fake_class, base_url, build = SERVICES[service]
    caplog.set_level(logging.DEBUG)
    ids = []
    fake = fake_class(api_key=CANARY)
    wrong_key_fake = fake_class(api_key="the-key-the-service-expects")
    async with client_for(fake.app, base_url) as client, client_for(wrong_key_fake.app, base_url) as wrong_client:
        provider = build(fake, client, timeout=2.0)
        registry = ProviderRegistry(default=service)
        registry.register(provider)
        settings.default_max_attempts = 2
        for fault in [*FAULTS, None]:
            if fault is not None:
                fake.fail_next(fault)
            ids.append(
                submit(
                    db, user_id, registry, settings, provider=service, prompt="a lighthouse", width=1024, height=1024
                )
            )
            async with running_worker(db, storage, registry, settings):
                await wait_final(db, ids[-1:])
        # The same canary presented to a service that does not know it.
        wrong = ProviderRegistry(default=service)
        wrong.register(build(wrong_key_fake, wrong_client, api_key=CANARY, timeout=2.0))
        ids.append(
            submit(db, user_id, wrong, settings, provider=service, prompt="a lighthouse", width=1024, height=1024)
        )
        async with running_worker(db, storage, wrong, settings):
            final = await wait_final(db, ids[-1:])
        registry.sync_to_database(db)

    statuses = {generation.status for generation in final.values()}
    assert statuses == {"failed"}
    # The key really was sent (so its absence everywhere else means something).
    assert any(CANARY in repr(request.headers) for request in fake.requests)
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert CANARY not in log_text
    assert CANARY not in caplog.text
    assert CANARY not in _everything_in_the_database(db)
    assert CANARY not in repr(provider) and CANARY not in str(vars(type(provider)))


# ---- users' own keys: stored sealed, opened by the worker for their owner's generations only ----

# Short enough that OpenAI's 401 echoes it whole.
OWN_CANARY = "sk-0wnk3y7"


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_users_own_keys_never_leak(
    service: str, db: Database, user_id: uuid.UUID, storage, settings, caplog: pytest.LogCaptureFixture
) -> None:
    fake_class, base_url, build = SERVICES[service]
    caplog.set_level(logging.DEBUG)
    settings.default_max_attempts = 2
    fake = fake_class(api_key="the-studio-key-0000000")
    fake.other_keys.add(OWN_CANARY)
    wrong_key_fake = fake_class(api_key="the-studio-key-0000000")
    with db.writing() as session:
        other_user = factories.make_user(session).id
        provider_keys.set_policy(session, service, allow_user_keys=True, studio_key_fallback=None)
        provider_keys.store_key(session, provider_keys.studio_sealer(settings), user_id, service, OWN_CANARY)
    ids = []
    async with client_for(fake.app, base_url) as client, client_for(wrong_key_fake.app, base_url) as wrong_client:
        provider = build(fake, client, timeout=2.0)
        for registry, fault, owner in [
            *((_alone(provider), fault, user_id) for fault in [*FAULTS, None]),
            (_alone(provider), None, other_user),
            # The canary presented to a service that does not know it.
            (_alone(build(wrong_key_fake, wrong_client, timeout=2.0)), None, user_id),
        ]:
            if fault is not None:
                fake.fail_next(fault)
            ids.append(submit(db, owner, registry, settings, provider=service, prompt="a lighthouse",
                              width=1024, height=1024))  # fmt: skip
            async with running_worker(db, storage, registry, settings):
                final = await wait_final(db, ids[-1:])
            if owner == other_user:
                # Another user's generation runs on the studio's key, never on this one.
                assert OWN_CANARY not in repr(fake.requests[-1].headers)
                assert final[ids[-1]].status == "succeeded" and not final[ids[-1]].own_key

    assert {generation.status for generation in final.values()} == {"failed"}
    assert any(OWN_CANARY in repr(request.headers) for request in fake.requests), "the key really was sent"
    assert any(OWN_CANARY in repr(request.headers) for request in wrong_key_fake.requests)
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert OWN_CANARY not in log_text
    assert OWN_CANARY not in caplog.text
    assert OWN_CANARY not in _everything_in_the_database(db)
    assert OWN_CANARY not in repr(provider) and OWN_CANARY not in str(vars(provider))
    request = GenerationRequest(type=GenerationType.text2img, prompt="a kite", model="m", api_key=OWN_CANARY)
    assert OWN_CANARY not in repr(request) and OWN_CANARY not in repr(provider_keys.studio_sealer(settings))


def _alone(provider: Provider) -> ProviderRegistry:
    registry = ProviderRegistry(default=provider.name)
    registry.register(provider)
    return registry


# ---- language models: IMAGESTUDIO_LANGUAGE_API_KEY (and the Gemini key when Gemini writes text) ----

LANGUAGE_SERVICES: dict[str, tuple[type, Callable]] = {
    "openai": (FakeChatCompletions, chat_model),
    "gemini": (FakeGeminiText, gemini_chat_model),
}


@pytest.mark.parametrize("service", sorted(LANGUAGE_SERVICES))
async def test_language_keys_never_leak(
    service: str, db: Database, user_id: uuid.UUID, storage, settings, caplog: pytest.LogCaptureFixture
) -> None:
    fake_class, build = LANGUAGE_SERVICES[service]
    caplog.set_level(logging.DEBUG)
    settings.default_max_attempts = 2
    with db.writing() as session:
        asset = factories.make_upload(session, session.get(User, user_id))
    storage.put(asset.storage_key, png_bytes(Image.new("RGB", (64, 64), (10, 20, 30))), "image/png")
    fake = fake_class(api_key=CANARY)
    wrong_key_fake = fake_class(api_key="the-key-the-service-expects")
    images = ProviderRegistry()
    ids = []
    async with client_for(fake.app, "http://fake") as client, client_for(wrong_key_fake.app, "http://fake") as wrong:
        model = build(fake, client, timeout=2.0)
        # Every fault, then a success; then the canary presented to a service that does not know it.
        runs = [(model, fault) for fault in [*FAULTS, None]]
        runs.append((build(wrong_key_fake, wrong, api_key=CANARY, timeout=2.0), None))
        for runner, fault in runs:
            if fault is not None:
                fake.fail_next(fault)
            language = LanguageRegistry([runner], default=service)
            ids.append(ask_caption(db, settings, language, asset.id, user_id).caption.generation_id)
            async with running_worker(db, storage, images, settings, language=language):
                final = await wait_final(db, ids[-1:])

    assert {generation.status for generation in final.values()} == {"failed"}
    assert any(CANARY in repr(request.headers) for request in fake.requests), "the key really was sent"
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert CANARY not in log_text
    assert CANARY not in caplog.text
    assert CANARY not in _everything_in_the_database(db)
    assert CANARY not in repr(model)


@pytest.mark.parametrize("service", sorted(LANGUAGE_SERVICES))
async def test_language_keys_never_leak_from_streamed_replies(
    service: str, db: Database, user_id: uuid.UUID, storage, settings, caplog: pytest.LogCaptureFixture
) -> None:
    """The same for reply jobs, whose answers stream: every fault, a success, then a wrong key."""
    fake_class, build = LANGUAGE_SERVICES[service]
    caplog.set_level(logging.DEBUG)
    settings.default_max_attempts = 2
    fake = fake_class(api_key=CANARY)
    wrong_key_fake = fake_class(api_key="the-key-the-service-expects")
    ids = []
    async with client_for(fake.app, "http://fake") as client, client_for(wrong_key_fake.app, "http://fake") as wrong:
        model = build(fake, client, timeout=2.0)
        runs = [(model, fault) for fault in [*FAULTS, None]]
        runs.append((build(wrong_key_fake, wrong, api_key=CANARY, timeout=2.0), None))
        for runner, fault in runs:
            if fault is not None:
                fake.fail_next(fault)
            language = LanguageRegistry([runner], default=service)
            ids.append(ask_reply(db, settings, language, user_id, "what went wrong?"))
            async with running_worker(db, storage, ProviderRegistry(), settings, language=language):
                final = await wait_final(db, ids[-1:])

    assert [generation.status for generation in final.values()] == ["failed"]
    assert fake.completed >= 1, "one reply was answered"
    assert any(CANARY in repr(request.headers) for request in fake.requests), "the key really was sent"
    log_text = "\n".join(f"{r.getMessage()} {r.exc_text or ''} {r.args!r}" for r in caplog.records)
    assert CANARY not in log_text
    assert CANARY not in caplog.text
    assert CANARY not in _everything_in_the_database(db)
