"""Plumbing shared by the hosted adapters (OpenAI, Stability AI, Gemini).

Every request goes through `HostedProvider._send`, which checks the cancellation token first,
races the request against the token and a total deadline, and turns transport failures into the
typed errors of `base.py`. The API key lives only in request headers built per call: never on the
shared client, never in a message, a log record or a repr.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import anyio
import httpx

from imagestudio.kit.answers import REDACTED, redact, short_text  # noqa: F401  (re-exported)
from imagestudio.providers.base import (
    CancellationToken,
    GeneratedImage,
    GenerationCanceled,
    GenerationRequest,
    GenerationResult,
    ModelInfo,
    NotConfiguredError,
    PermanentError,
    ProgressCallback,
    ProviderCapabilities,
    ProviderError,
    RetriableError,
    collect_each,
)
from imagestudio.providers.catalog import ModelFamily, model_of_family, offered_models
from imagestudio.providers.pricing import PriceTable
from imagestudio.providers.wire import BAD_RESPONSE, TIMED_OUT, UNSUPPORTED, ensure_servable, json_or_none

logger = logging.getLogger(__name__)

# How often a running request looks at the cancellation token (a threading.Event, so it is polled).
CANCEL_CHECK_INTERVAL = 0.05



class HostedProvider:
    """Base for adapters that call a hosted API with a key and an injected `httpx.AsyncClient`.

    The client belongs to whoever injected it (one per process, built at bootstrap), so `aclose()`
    leaves it open.
    """

    name: str = "hosted"
    kind: str = "hosted"
    # Shown by configuration_problem(): "<service_label> key not set (<key_env_var>)".
    service_label: str = "API"
    key_env_var: str = "IMAGESTUDIO_API_KEY"
    default_base_url: str = ""
    default_timeout: float = 120.0
    # What the service offers; its models are the ones offered until the service lists its own.
    capability_table: ProviderCapabilities
    # What each family of models can do (see catalog.py); listed ids of no family are not offered.
    model_families: tuple[ModelFamily, ...] = ()
    # The route (under the base URL) listing the service's models; "" when the service has none.
    models_path: str = ""
    # The setting that adds or restricts model ids, named in warnings.
    models_setting: str = "IMAGESTUDIO_MODELS"
    # Bills per call with a key a user may bring instead of the studio's (accounts/provider_keys.py).
    accepts_user_keys: bool = True

    def __init__(
        self,
        api_key: str | None,
        *,
        client: httpx.AsyncClient,
        base_url: str | None = None,
        timeout: float | None = None,
        name: str | None = None,
        models: str | None = None,
        prices: PriceTable | None = None,
    ) -> None:
        key = (api_key or "").strip()
        self._api_key: str | None = key or None
        self._client = client
        self._base_url = (base_url or self.default_base_url).rstrip("/")
        self._timeout = timeout if timeout is not None else self.default_timeout
        if name:
            self.name = name
        self._model_setting = models
        self._prices = prices or PriceTable()
        self._models = self._catalog((m.id, m.label) for m in self.capability_table.models)

    def __repr__(self) -> str:
        configured = self._api_key is not None
        return f"{type(self).__name__}(name={self.name!r}, base_url={self._base_url!r}, configured={configured})"

    # ---- Provider protocol pieces shared by every hosted adapter ----

    def capabilities(self) -> ProviderCapabilities:
        ids = {m.id for m in self._models}
        default = self.capability_table.default_model
        if default not in ids and self._models:
            default = self._models[0].id
        return dataclasses.replace(self.capability_table, models=self._models, default_model=default)

    @property
    def lists_models(self) -> bool:
        """Whether the service can say which models it has (the registry skips those that cannot)."""
        return bool(self.models_path)

    async def refresh(self) -> tuple[ModelInfo, ...]:
        """Ask the service which models it has now (GET models_path) and offer those of known families."""
        if not self.models_path:
            return self._models
        key = self._require_key()
        discovered = await self._list_models(key, CancellationToken())
        self._models = self._catalog(discovered)
        return self._models

    async def _list_models(self, key: str, cancel: CancellationToken) -> list[tuple[str, str | None]]:
        """(id, label) of every model the service lists; each adapter reads its own answer."""
        raise NotImplementedError

    def _catalog(self, discovered: Any) -> tuple[ModelInfo, ...]:
        labels = {m.id: m.label for m in self.capability_table.models}
        return offered_models(
            self.model_families,
            discovered,
            setting=self._model_setting,
            labels=labels,
            setting_name=self.models_setting,
        )

    def _serving_capabilities(self, model_id: str | None) -> ProviderCapabilities:
        """The capabilities a request is checked against when it runs.

        A model of a known family that this process has not discovered yet (another process
        refreshed the list and the API accepted it) is served with its family's capabilities.
        """
        caps = self.capabilities()
        if model_id and caps.model(model_id) is None:
            info = model_of_family(self.model_families, model_id)
            if info is not None:
                return dataclasses.replace(caps, models=(*caps.models, info))
        return caps

    def configuration_problem(self) -> str | None:
        if self._api_key is None:
            return f"{self.service_label} key not set ({self.key_env_var})"
        return None

    async def aclose(self) -> None:
        """Nothing to release: the injected client is closed by its owner."""

    # ---- helpers for subclasses ----

    def _priced(self, result: GenerationResult) -> GenerationResult:
        """The result with its cost from the price table and the usage it reports (None: no price)."""
        result.cost = self._prices.cost(self.kind, result.model, result.usage, len(result.images))
        return result

    def _require_key(self) -> str:
        if self._api_key is None:
            raise NotConfiguredError(self.configuration_problem() or "not configured")
        return self._api_key

    def _redact(self, text: str) -> str:
        return redact(text, self._api_key)

    def _begin(self, request: GenerationRequest) -> tuple[str, str]:
        """The key (the request's own, else the studio's) and model, after re-running the pre-queue check."""
        key = request.api_key or self._require_key()
        caps = self._serving_capabilities(request.model)
        ensure_servable(caps, request, code=UNSUPPORTED)
        return key, request.model or caps.default_model

    async def _send(
        self,
        method: str,
        url: str,
        *,
        cancel: CancellationToken,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One HTTP exchange, abandoned as soon as the token is set or the deadline passes."""
        cancel.raise_if_cancelled()
        deadline = deadline if deadline is not None else self._timeout
        outcome: dict[str, Any] = {}
        started = time.monotonic()

        async def exchange() -> None:
            try:
                with anyio.fail_after(deadline):
                    outcome["response"] = await self._client.request(method, url, timeout=deadline, **kwargs)
            except (TimeoutError, httpx.TimeoutException):
                outcome["error"] = RetriableError(
                    f"{self.service_label} did not answer within {deadline:g}s", code=TIMED_OUT
                )
            except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
                outcome["error"] = PermanentError(
                    self._redact(f"{self.service_label} URL is unusable: {exc}"), code=BAD_RESPONSE
                )
            except httpx.TransportError as exc:
                outcome["error"] = RetriableError(
                    self._redact(f"{self.service_label} unreachable ({type(exc).__name__}: {exc})")
                )
            except Exception as exc:  # surfaced unwrapped below instead of inside an ExceptionGroup
                outcome["unexpected"] = exc
            finally:
                group.cancel_scope.cancel()

        async def watch_cancel() -> None:
            # The token is a threading.Event set from another thread, so it can only be polled.
            while not cancel.cancelled:  # noqa: ASYNC110
                await anyio.sleep(CANCEL_CHECK_INTERVAL)
            group.cancel_scope.cancel()

        async with anyio.create_task_group() as group:
            group.start_soon(exchange)
            group.start_soon(watch_cancel)

        elapsed = time.monotonic() - started
        if "response" in outcome:
            response: httpx.Response = outcome["response"]
            logger.debug(
                "%s %s %s -> %s in %.2fs",
                self.name,
                method,
                httpx.URL(url).path,
                response.status_code,
                elapsed,
            )
            return response
        if "unexpected" in outcome:
            raise outcome["unexpected"]
        if "error" in outcome:
            error: ProviderError = outcome["error"]
            logger.info("%s %s %s failed: %s", self.name, method, httpx.URL(url).path, error.message)
            raise error
        logger.info("%s %s %s abandoned: canceled after %.2fs", self.name, method, httpx.URL(url).path, elapsed)
        raise GenerationCanceled()

    async def _sleep(self, seconds: float, cancel: CancellationToken) -> None:
        """Wait between polls, waking early (and raising) when the token is set."""
        end = time.monotonic() + seconds
        while True:
            cancel.raise_if_cancelled()
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            await anyio.sleep(min(CANCEL_CHECK_INTERVAL, remaining))



# What one call for one image of a batch answers: the image and the usage the service reported for it.
ImageCall = Callable[[int], Awaitable[tuple[GeneratedImage, dict[str, Any]]]]


class HostedImageByImage(HostedProvider):
    """A service that makes one image per call (an ImageByImageProvider): each image of a batch is handed
    over, priced, as its call answers, so a retried generation asks again only for the ones missing."""

    async def generate(
        self, request: GenerationRequest, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        return await collect_each(self, request, progress, cancel)

    async def generate_each(
        self,
        request: GenerationRequest,
        indices: Sequence[int],
        progress: ProgressCallback,
        cancel: CancellationToken,
    ) -> AsyncIterator[tuple[int, GenerationResult]]:
        key, model = self._begin(request)
        if self._in_one_call(request):
            if list(indices) == [0]:
                yield 0, await self._one_call(request, model, key, progress, cancel)
            return
        call = self._image_call(request, model, key, cancel)
        total = request.num_images
        done = total - len(indices)
        progress(done, total)
        for index in indices:
            image, usage = await call(index)
            done += 1
            progress(done, total)
            yield index, self._priced(GenerationResult(images=[image], model=model, usage=usage))

    def _image_call(self, request: GenerationRequest, model: str, key: str, cancel: CancellationToken) -> ImageCall:
        """The call that makes image `index` of this request's batch."""
        raise NotImplementedError

    def _in_one_call(self, request: GenerationRequest) -> bool:
        """Whether this request is one call for its only image, which reports its own progress and price."""
        return False

    async def _one_call(
        self, request: GenerationRequest, model: str, key: str, progress: ProgressCallback, cancel: CancellationToken
    ) -> GenerationResult:
        raise NotImplementedError


# ---- response bodies ----


def error_object(response: httpx.Response) -> tuple[dict[str, Any], str]:
    """The `{"error": {...}}` object OpenAI and Google answer failures with, and its message.

    Without one (a proxy's HTML page, an empty body) the object is empty and the message is the
    body's text or the status phrase.
    """
    body = json_or_none(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        error = {}
    message = error.get("message") or short_text(response) or response.reason_phrase
    return error, str(message)


# ---- sizes ----


def nearest_aspect_ratio(width: int, height: int, allowed: Sequence[str]) -> str:
    """The allowed "W:H" ratio closest to width/height, compared on a log scale (so 2:1 and 1:2 tie)."""
    wanted = math.log(width / height)

    def distance(ratio: str) -> float:
        w, h = ratio.split(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(allowed, key=distance)
