"""Builds every provider the studio knows from settings.

Every provider is registered whether or not it is configured, so /api/v1/providers can say what is
missing (a key, a URL, a model folder) instead of a generation failing at run time.
"""

from __future__ import annotations

import logging

import httpx

from imagestudio.config import Settings
from imagestudio.kit.outbound import tls_context
from imagestudio.providers.base import Provider
from imagestudio.providers.pricing import PriceTable

log = logging.getLogger(__name__)


def _secret(value: object) -> str | None:
    return value.get_secret_value() if value is not None else None  # type: ignore[attr-defined]


def http_client(settings: Settings) -> httpx.AsyncClient:
    # No connection is opened until first use, so building one per provider at start-up is cheap.
    return httpx.AsyncClient(
        verify=tls_context(),
        timeout=httpx.Timeout(settings.provider_timeout_seconds, connect=10.0),
        follow_redirects=False,
        headers={"User-Agent": "imagestudio"},
    )


def build_providers(settings: Settings) -> list[Provider]:
    from imagestudio.providers.a1111 import A1111Provider
    from imagestudio.providers.builtin import BuiltinRenderer
    from imagestudio.providers.comfyui import ComfyUIProvider
    from imagestudio.providers.diffusers import DiffusersProvider
    from imagestudio.providers.gemini import GeminiProvider
    from imagestudio.providers.openai import OpenAIProvider
    from imagestudio.providers.stability import StabilityProvider

    prices = PriceTable(settings.prices)
    providers: list[Provider] = [
        BuiltinRenderer(),
        OpenAIProvider(
            _secret(settings.openai_api_key),
            client=http_client(settings),
            base_url=settings.openai_base_url,
            models=settings.openai_models,
            prices=prices,
        ),
        StabilityProvider(
            _secret(settings.stability_api_key),
            client=http_client(settings),
            base_url=settings.stability_base_url,
            models=settings.stability_models,
            prices=prices,
        ),
        GeminiProvider(
            _secret(settings.gemini_api_key),
            client=http_client(settings),
            base_url=settings.gemini_base_url,
            models=settings.gemini_models,
            prices=prices,
        ),
        A1111Provider(settings.a1111_url, auth=_secret(settings.a1111_auth), client=http_client(settings)),
        DiffusersProvider(
            settings.diffusers_model_map,
            device=settings.diffusers_device,
            dtype=settings.diffusers_dtype,
            model_dirs=settings.diffusers_model_folders,
            batch_size=settings.diffusers_batch_size,
            batch_wait_ms=settings.diffusers_batch_wait_ms,
        ),
    ]
    try:
        providers.append(
            ComfyUIProvider(
                settings.comfyui_url,
                token=_secret(settings.comfyui_token),
                client=http_client(settings),
                workflows_dir=settings.comfyui_workflows_dir,
            )
        )
    except ValueError as error:
        # A broken user template folder must not stop the studio; the log says which file and slot.
        log.error("ComfyUI provider not available: %s", error)
    return providers
