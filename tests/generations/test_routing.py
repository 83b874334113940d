"""Routing between providers: refusal of unservable providers at creation, fallback chains at run time,
and served_by recording which provider finally produced the images."""

from __future__ import annotations

import uuid

import pytest

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations.errors import InvalidGenerationRequest
from imagestudio.providers.base import ContentRejectedError, NotConfiguredError, RetriableError
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.registry import ProviderRegistry
from tests.generations.conftest import running_worker, submit, wait_final
from tests.generations.scripted import ScriptedProvider

pytestmark = pytest.mark.anyio


@pytest.fixture
def chained(scripted: ScriptedProvider) -> ProviderRegistry:
    registry = ProviderRegistry(fallbacks={"scripted": ["builtin"]})
    registry.register(scripted)
    registry.register(BuiltinRenderer())
    return registry


def test_an_unconfigured_provider_without_fallback_is_refused_at_creation(
    db: Database, user_id: uuid.UUID, registry: ProviderRegistry, scripted: ScriptedProvider, settings: Settings
) -> None:
    scripted.problem = "SCRIPTED key not set (IMAGESTUDIO_SCRIPTED_KEY)"
    with pytest.raises(InvalidGenerationRequest) as refused:
        submit(db, user_id, registry, settings, prompt="a fox")
    assert refused.value.field == "provider"
    assert "IMAGESTUDIO_SCRIPTED_KEY" in str(refused.value)


def test_an_unknown_provider_is_refused_with_the_known_ones(
    db: Database, user_id: uuid.UUID, registry: ProviderRegistry, settings: Settings
) -> None:
    with pytest.raises(InvalidGenerationRequest) as refused:
        submit(db, user_id, registry, settings, prompt="a fox", provider="nope")
    assert refused.value.field == "provider" and "builtin" in str(refused.value)


async def test_an_unconfigured_provider_hands_over_to_its_fallback(
    db: Database, user_id: uuid.UUID, chained: ProviderRegistry, scripted: ScriptedProvider, storage, settings
) -> None:
    scripted.problem = "not configured"
    generation_id = submit(db, user_id, chained, settings, prompt="a lighthouse at dusk")
    async with running_worker(db, storage, chained, settings):
        final = (await wait_final(db, [generation_id]))[generation_id]
    assert final.status == "succeeded", final.error_message
    assert (final.provider, final.served_by) == ("scripted", "builtin")
    assert scripted.requests == []


async def test_a_provider_that_turns_out_unconfigured_falls_back_at_run_time(
    db: Database, user_id: uuid.UUID, chained: ProviderRegistry, scripted: ScriptedProvider, storage, settings
) -> None:
    scripted.script = [NotConfiguredError("key revoked")]
    generation_id = submit(db, user_id, chained, settings, prompt="a fox", num_images=2)
    async with running_worker(db, storage, chained, settings):
        final = (await wait_final(db, [generation_id]))[generation_id]
    assert final.status == "succeeded", final.error_message
    assert final.served_by == "builtin"
    assert len(scripted.requests) == 1


async def test_transient_failures_retry_first_and_fall_back_once_attempts_are_spent(
    db: Database, user_id: uuid.UUID, chained: ProviderRegistry, scripted: ScriptedProvider, storage, settings
) -> None:
    scripted.script = [RetriableError("busy", retry_after=0.01) for _ in range(3)]
    generation_id = submit(db, user_id, chained, settings, prompt="a fox")
    async with running_worker(db, storage, chained, settings):
        final = (await wait_final(db, [generation_id]))[generation_id]
    assert final.status == "succeeded", final.error_message
    assert final.served_by == "builtin"
    assert final.attempt == final.max_attempts == 3
    assert len(scripted.requests) == 3


async def test_content_rejection_never_falls_back(
    db: Database, user_id: uuid.UUID, chained: ProviderRegistry, scripted: ScriptedProvider, storage, settings
) -> None:
    scripted.script = [ContentRejectedError("refused by the safety system")]
    generation_id = submit(db, user_id, chained, settings, prompt="a fox")
    async with running_worker(db, storage, chained, settings):
        final = (await wait_final(db, [generation_id]))[generation_id]
    assert (final.status, final.error_code, final.served_by) == ("failed", "content_rejected", None)


async def test_without_a_fallback_an_unconfigured_provider_fails_with_its_reason(
    db: Database, user_id: uuid.UUID, registry: ProviderRegistry, scripted: ScriptedProvider, storage, settings
) -> None:
    scripted.script = [NotConfiguredError("key revoked")]
    generation_id = submit(db, user_id, registry, settings, prompt="a fox")
    async with running_worker(db, storage, registry, settings):
        final = (await wait_final(db, [generation_id]))[generation_id]
    assert (final.status, final.error_code) == ("failed", "provider_not_configured")
    assert final.error_message == "key revoked"


def test_settings_register_every_provider_and_say_what_is_missing(tmp_path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        openai_api_key="sk-configured",
        disabled_providers="gemini",
        provider_fallbacks={"openai": ["stability", "builtin"]},
        default_provider="openai",
    )
    registry = ProviderRegistry.from_settings(settings)
    assert set(registry.names()) == {"builtin", "openai", "stability", "gemini", "a1111", "comfyui", "diffusers"}
    assert registry.problem("openai") is None
    assert "IMAGESTUDIO_STABILITY_API_KEY" in (registry.problem("stability") or "")
    assert "disabled" in (registry.problem("gemini") or "")
    assert registry.default_name == "openai"
    assert registry.chain("openai") == ["openai", "stability", "builtin"]
    assert registry.ready_chain("openai") == ["openai", "builtin"]


def test_fallbacks_come_from_the_environment_as_json(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("IMAGESTUDIO_PROVIDER_FALLBACKS", '{"stability": ["builtin"]}')
    monkeypatch.setenv("IMAGESTUDIO_DIFFUSERS_MODELS", "tiny=/nowhere/tiny")
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    assert settings.provider_fallbacks == {"stability": ["builtin"]}
    assert settings.diffusers_model_map == {"tiny": "/nowhere/tiny"}
    monkeypatch.setenv("IMAGESTUDIO_DIFFUSERS_MODELS", "just-a-path")
    with pytest.raises(ValueError, match="id=path"):
        _ = Settings(_env_file=None, data_dir=tmp_path).diffusers_model_map  # type: ignore[call-arg]
