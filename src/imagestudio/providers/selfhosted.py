"""Plumbing shared by the adapters for servers people run themselves (AUTOMATIC1111, ComfyUI).

Both speak JSON over plain HTTP, fail in the same ways (server down, busy GPU, bad request) and
carry images as PNG bytes, so `SelfHostedProvider` holds what they do alike: the settings, the
capabilities and model list, and every call with its mapping from HTTP trouble to typed errors. An
adapter adds its wire format. Nothing in this module ever formats a credential: messages name the
server by its URL with any user:password part removed.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

import httpx
from PIL import Image

from imagestudio.kit.outbound import tls_context
from imagestudio.models.enums import GenerationType
from imagestudio.providers.base import (
    ModelInfo,
    NotConfiguredError,
    PermanentError,
    ProgressCallback,
    ProviderCapabilities,
    RetriableError,
)
from imagestudio.providers.wire import (
    BAD_RESPONSE,
    error_for_status,
    is_retriable_status,
    retry_after_seconds,
)

logger = logging.getLogger(__name__)

# Model id meaning "whatever the server would use anyway" (its loaded checkpoint, the one in a
# workflow): nothing is overridden and no model is swapped.
DEFAULT_MODEL_ID = "default"
# Longest server-supplied detail quoted in an error message.
MAX_DETAIL_CHARS = 300


def normalise_base_url(base_url: str | None) -> str | None:
    """Strip whitespace and trailing slashes; an empty string means "not configured"."""
    if base_url is None:
        return None
    cleaned = base_url.strip().rstrip("/")
    return cleaned or None


def display_url(url: str) -> str:
    """The URL without any user:password@ part, safe for messages and logs."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))


def _short(text: str) -> str:
    text = " ".join(text.split())
    if len(text) > MAX_DETAIL_CHARS:
        return text[: MAX_DETAIL_CHARS - 1] + "…"
    return text


def response_detail(response: httpx.Response) -> str:
    """A one-line summary of an error body: the server's own words when it gave any."""
    try:
        body = response.json()
    except (ValueError, UnicodeDecodeError):
        return _short(response.text) if response.content else ""
    if isinstance(body, dict):
        # AUTOMATIC1111 answers {"error": type, "detail", "errors"} (or FastAPI's {"detail": [...]});
        # ComfyUI answers {"error": {"message", "details"}, "node_errors"}.
        for key in ("detail", "errors", "error", "message"):
            value = body.get(key)
            if isinstance(value, dict):
                message = value.get("message") or value.get("type") or ""
                details = value.get("details") or ""
                text = f"{message}: {details}" if message and details else str(message or details)
                if text:
                    return _short(text)
            elif isinstance(value, list) and value:
                return _short(
                    "; ".join(str(item.get("msg", item)) if isinstance(item, dict) else str(item) for item in value)
                )
            elif isinstance(value, str) and value:
                return _short(value)
    return _short(json.dumps(body))


def raise_for_status(response: httpx.Response, service: str, action: str) -> None:
    """Raise the typed error matching a non-2xx answer; return quietly on success."""
    if response.is_success:
        return
    status = response.status_code
    detail = response_detail(response)
    suffix = f": {detail}" if detail else ""
    if is_retriable_status(status):
        message = f"{service} could not {action} right now (HTTP {status}){suffix}"
    elif status in (401, 403):
        message = f"{service} refused the credentials while trying to {action} (HTTP {status})"
    else:
        message = f"{service} rejected the request to {action} (HTTP {status}){suffix}"
    raise error_for_status(status, message, retry_after=retry_after_seconds(response.headers))


@contextlib.contextmanager
def transport_errors(service: str, base_url: str, action: str) -> Iterator[None]:
    """Turn httpx's network failures into typed errors that name the server but no secret."""
    where = display_url(base_url)
    try:
        yield
    except httpx.TimeoutException as exc:
        raise RetriableError(f"{service} at {where} timed out while trying to {action}") from exc
    except httpx.UnsupportedProtocol as exc:
        raise NotConfiguredError(f"{service} URL {where} is not an http:// or https:// address") from exc
    except httpx.InvalidURL as exc:
        raise NotConfiguredError(f"{service} URL {where} is not a valid address") from exc
    except httpx.TransportError as exc:
        raise RetriableError(
            f"{service} at {where} could not be reached while trying to {action} ({type(exc).__name__})"
        ) from exc


def json_or_none(response: httpx.Response, service: str, action: str) -> object:
    """Decode a successful answer's JSON, treating anything else as a broken server."""
    try:
        return response.json()
    except (ValueError, UnicodeDecodeError) as exc:
        raise PermanentError(f"{service} sent a malformed (non-JSON) answer to {action}", code=BAD_RESPONSE) from exc


def malformed(service: str, what: str) -> PermanentError:
    return PermanentError(f"{service} sent a malformed answer: {what}", code=BAD_RESPONSE)


def fit_to(image: Image.Image, width: int, height: int, *, resample: Image.Resampling) -> Image.Image:
    """Resize to the requested output size when it differs (the engine resolved the size already)."""
    if image.size == (width, height):
        return image
    return image.resize((width, height), resample=resample)


@dataclass(frozen=True)
class SamplingChoices:
    """What a server lists for sampling: sampler names, noise schedules, upscalers."""

    samplers: tuple[str, ...] = ()
    schedulers: tuple[str, ...] = ()
    upscalers: tuple[str, ...] = ()


class ServerOptions(TypedDict, total=False):
    """Settings every self-hosted adapter takes (see SelfHostedProvider.__init__ for the defaults)."""

    client: httpx.AsyncClient | None
    name: str | None
    default_model: str | None  # a checkpoint name; DEFAULT_MODEL_ID keeps the server's own
    max_images: int
    variation_strength: float  # the img2img strength a variation uses when none is asked for
    poll_interval: float  # how often a running job is looked at
    request_timeout: float  # each short call
    generation_timeout: float  # a whole generation


class SelfHostedProvider:
    """Base for adapters that talk to one server the user runs, found by a base URL.

    A client passed in belongs to whoever made it; without one the adapter makes its own and
    closes it in `aclose()`. `credentials` are the httpx request arguments that carry the server's
    login (auth or headers); they are sent on every call and only ever reported as "set".
    """

    kind: str = "selfhosted"
    service: str = "server"
    # configuration_problem() says: "<service> has no base URL; set <url_setting> to <url_hint>".
    url_setting: str = ""
    url_hint: str = "a running server"
    credential_name: str = "auth"
    # How the model list names DEFAULT_MODEL_ID.
    default_model_label: str = "The server's own checkpoint"

    def __init__(
        self,
        base_url: str | None,
        *,
        client: httpx.AsyncClient | None = None,
        name: str | None = None,
        default_model: str | None = None,
        max_images: int = 8,
        variation_strength: float = 0.35,
        poll_interval: float = 0.5,
        request_timeout: float = 30.0,
        generation_timeout: float = 900.0,
        credentials: dict[str, Any] | None = None,
    ) -> None:
        self.name = name or self.kind
        self._base_url = normalise_base_url(base_url)
        self._client = client if client is not None else httpx.AsyncClient(verify=tls_context())
        self._owns_client = client is None
        self._credentials = credentials or {}
        self._default_model = default_model or DEFAULT_MODEL_ID
        self._max_images = max_images
        self._variation_strength = variation_strength
        self._poll_interval = poll_interval
        self._request_timeout = request_timeout
        self._generation_timeout = generation_timeout
        self._models = self._model_list(())
        self._choices = SamplingChoices()

    # ---- capabilities ----

    # The route that lists the server's checkpoints, read by refresh().
    models_path: str = ""

    async def refresh(self) -> tuple[ModelInfo, ...]:
        """Fetch the server's checkpoints (GET models_path) and its sampling choices, and cache them
        for capabilities()."""
        response = await self._call("GET", self.models_path, action="list models")
        offered = self._offered_models(json_or_none(response, self.service, "list models"))
        choices = await self._list_choices()
        self._models = self._model_list(offered)
        self._choices = choices
        return self._models

    async def _list_choices(self) -> SamplingChoices:
        """The samplers, noise schedules and upscalers the server offers (empty: not listed)."""
        return SamplingChoices()

    def _offered_models(self, body: object) -> list[tuple[str, str]]:
        """(id, label) of each checkpoint in the server's answer to models_path."""
        raise NotImplementedError

    def capabilities(self) -> ProviderCapabilities:
        return ProviderCapabilities(
            types=self._types(),
            models=self._models,
            default_model=self._default_model,
            max_images=self._max_images,
            min_size=64,
            max_size=2048,
            size_multiple=8,
            samplers=self._choices.samplers,
            schedulers=self._choices.schedulers,
            upscalers=self._choices.upscalers,
        )

    def _types(self) -> frozenset[GenerationType]:
        raise NotImplementedError

    def _model_label(self, model_id: str) -> str:
        """The label of a model the server did not describe itself."""
        return model_id

    def _model_list(self, offered: Sequence[tuple[str, str]]) -> tuple[ModelInfo, ...]:
        """The server's default first, then the (id, label) pairs it offers, then the configured default.

        A configured default the server no longer has stays selectable, so the error is the server's.
        """
        entries = [(DEFAULT_MODEL_ID, self.default_model_label), *offered]
        if self._default_model not in {model_id for model_id, _ in entries}:
            entries.append((self._default_model, self._model_label(self._default_model)))
        types = self._types()
        return tuple(
            ModelInfo(id=model_id, label=label, types=types, max_images=self._max_images) for model_id, label in entries
        )

    # ---- plumbing ----

    def __repr__(self) -> str:
        where = display_url(self._base_url) if self._base_url else None
        credential = "set" if self._credentials else None
        return f"{type(self).__name__}(name={self.name!r}, base_url={where!r}, {self.credential_name}={credential})"

    def configuration_problem(self) -> str | None:
        if self._base_url is None:
            return f"{self.service} has no base URL; set {self.url_setting} to {self.url_hint}"
        return None

    async def aclose(self) -> None:
        if self._owns_client:
            await self._client.aclose()

    def _require_base_url(self) -> str:
        if self._base_url is None:
            raise NotConfiguredError(self.configuration_problem() or f"{self.service} is not configured")
        return self._base_url

    async def _exchange(
        self, method: str, path: str, *, action: str, time_limit: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request to the server, network trouble turned into typed errors; any status returns."""
        base = self._require_base_url()
        limit = time_limit if time_limit is not None else self._request_timeout
        with transport_errors(self.service, base, action):
            return await self._client.request(
                method,
                base + path,
                timeout=httpx.Timeout(limit, connect=min(limit, 10.0)),
                **self._credentials,
                **kwargs,
            )

    async def _call(
        self, method: str, path: str, *, action: str, time_limit: float | None = None, **kwargs: Any
    ) -> httpx.Response:
        """One request that must succeed: a failed status becomes the matching typed error."""
        response = await self._exchange(method, path, action=action, time_limit=time_limit, **kwargs)
        raise_for_status(response, self.service, action)
        return response

    async def _best_effort(self, method: str, path: str, *, action: str, **kwargs: Any) -> None:
        """A call whose failure must not matter (stopping work, tidying up): logged, never raised."""
        try:
            await self._call(method, path, action=action, **kwargs)
        except Exception as exc:
            logger.warning("could not %s on %s: %s", action, self.service, getattr(exc, "message", type(exc).__name__))


class ProgressReporter:
    """Forwards a server's (step, total) to the engine, remembering the last, and closes at total."""

    def __init__(self, progress: ProgressCallback) -> None:
        self._progress = progress
        self.last: tuple[int, int] | None = None

    def report(self, step: int, total: int) -> None:
        self.last = (step, total)
        self._progress(step, total)

    def finish(self) -> None:
        """Report completion unless the server's own last report already said so."""
        total = self.last[1] if self.last else 1
        if self.last != (total, total):
            self._progress(total, total)
