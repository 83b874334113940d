"""Settings from IMAGESTUDIO_* environment variables and an optional .env file."""

from __future__ import annotations

import copy
import ipaddress
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"


class _RememberedSource(PydanticBaseSettingsSource):
    """The environment's (or the .env file's) values, worked out once per distinct set of variables.
    Working them out is pydantic-settings' introspection of every field, tens of milliseconds a call;
    the answer depends only on the variables, so a process that loads settings again (a test suite
    builds thousands) pays it once."""

    _answers: dict[tuple[str, tuple[tuple[str, str | None], ...]], dict[str, Any]] = {}

    def __init__(self, source: EnvSettingsSource) -> None:
        super().__init__(source.settings_cls)
        self.source = source

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.source.get_field_value(field, field_name)

    def __call__(self) -> dict[str, Any]:
        key = (type(self.source).__name__, tuple(sorted(self.source.env_vars.items())))
        answer = self._answers.get(key)
        if answer is None:
            answer = self.source()
            if len(self._answers) > 64:
                self._answers.clear()
            self._answers[key] = answer
        return copy.deepcopy(answer)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IMAGESTUDIO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        remembered = [
            _RememberedSource(source) if isinstance(source, EnvSettingsSource) else source
            for source in (env_settings, dotenv_settings)
        ]
        return (init_settings, *remembered, file_secret_settings)

    data_dir: Path = Path("./data")
    # Empty means "derive from data_dir": a SQLite file and a storage folder inside it.
    database_url: str = ""
    storage_url: str = ""
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    secret_key: SecretStr | None = None

    # Workers started inside `imagestudio serve`; 0 leaves all work to `imagestudio worker` processes.
    workers: int = Field(default=1, ge=0, le=64)
    # Generations one user may have running at once, across all workers.
    max_running_per_user: int = Field(default=2, ge=1, le=100)
    lease_seconds: float = Field(default=30.0, gt=0)
    default_max_attempts: int = Field(default=3, ge=1, le=20)
    # PostgreSQL session limits, in seconds (0 turns one off). Unset, they follow lease_seconds so
    # that a worker cut off by the network loses its transaction and locks well within one lease:
    # idle in transaction a third of a lease, lock waits half, statements one lease, TCP
    # keepalive and user timeouts about a third. See db.SessionLimits.
    db_idle_in_transaction_seconds: float | None = Field(default=None, ge=0)
    db_lock_timeout_seconds: float | None = Field(default=None, ge=0)
    db_statement_timeout_seconds: float | None = Field(default=None, ge=0)
    db_tcp_timeout_seconds: float | None = Field(default=None, ge=1)
    # A storage temp file or unfinished multipart upload older than this was left by a crash (a
    # live write finishes within seconds); the workers' maintenance removes it.
    storage_temp_max_age_seconds: float = Field(default=300.0, gt=0)
    log_level: str = "info"
    # "json": one JSON object per log line, with request, user and generation ids where known.
    log_format: Literal["text", "json"] = "text"
    # Log every SQL statement with its duration (never its parameters).
    log_queries: bool = False
    # GET /metrics: this bearer token, or a client address in these networks.
    metrics_token: SecretStr | None = None
    metrics_addresses: str = "127.0.0.1,::1"

    # Accounts. "open": anyone may sign up; "admin": only admins create users (the first admin comes
    # from POST /api/v1/auth/setup or `imagestudio users create`).
    signup_mode: Literal["open", "admin"] = "admin"
    # An API key's usage_count and last_used_at are written at most this often per process (its
    # requests in between are counted in memory and written together); 0 writes on every request.
    api_key_usage_flush_seconds: float = Field(default=1.0, ge=0, le=3600)
    # A login ends after this long without a request, and in any case after session_max_seconds.
    session_idle_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    session_max_seconds: int = Field(default=30 * 24 * 3600, ge=60)
    # Failed logins allowed per account and per client address within one window.
    login_max_failures_per_account: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_window_seconds: int = Field(default=900, ge=1)
    # argon2id cost; hashes made with other parameters are upgraded at the next successful login.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    # Mail (invitations, password reset, email verification). Without an SMTP URL nothing is sent:
    # an invitation's link is shown to the administrator who made it instead.
    # smtp://user:pass@host:587?starttls=true, or smtps://user:pass@host:465.
    smtp_url: SecretStr | None = None
    mail_from: str = "Image Studio <imagestudio@localhost>"
    # The studio's name in mail, and the address its links start with (never taken from a request's
    # Host header, which a client chooses). Empty: http://host:port of this server.
    studio_name: str = "Image Studio"
    public_url: str = ""
    # "auto": open sign-up accounts must confirm their address before generating when SMTP is
    # configured; "required": always; "off": never.
    email_verification: Literal["auto", "required", "off"] = "auto"
    invitation_days: float = Field(default=7.0, gt=0)
    password_reset_minutes: float = Field(default=60.0, gt=0)
    email_verification_hours: float = Field(default=48.0, gt=0)
    # Password-reset requests allowed per address and per client within one window.
    password_reset_max_per_address: int = Field(default=3, ge=1)
    password_reset_max_per_client: int = Field(default=10, ge=1)
    password_reset_window_seconds: int = Field(default=3600, ge=1)
    # Delivery: attempts per message, the first retry delay (doubling each time, capped at an hour),
    # how often the sender looks for due mail, and the SMTP conversation's timeout.
    mail_max_attempts: int = Field(default=8, ge=1, le=50)
    mail_retry_seconds: float = Field(default=30.0, gt=0)
    mail_poll_seconds: float = Field(default=5.0, gt=0)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    # Defaults for users whose own limit is unset (None: unlimited).
    default_daily_image_quota: int | None = Field(default=None, ge=0)
    default_rate_per_minute: int | None = Field(default=None, ge=0)
    # Any other request body (JSON) is cut off with 413 once it passes this.
    max_json_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    # Uploads: bytes are counted while the body is read, pixels are checked before decoding.
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    # At most Pillow's own decompression-bomb threshold, so the limit we document is the one in force.
    max_upload_pixels: int = Field(default=40_000_000, ge=1, le=89_478_485)
    # Assets never change once stored, so browsers may keep them this long.
    asset_cache_seconds: int = Field(default=365 * 24 * 3600, ge=0)
    # Signed links to image bytes: "studio" serves them itself; "storage" hands out the object store's
    # presigned URLs where it has them (S3), so bytes bypass the studio.
    signed_links: Literal["studio", "storage"] = "studio"
    signed_link_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # The OpenAI-compatible API at /v1 waits this long for a result before answering 504 (the
    # generation keeps running); a client that disconnects cancels its generation only if asked.
    openai_api_timeout_seconds: float = Field(default=300.0, gt=0)
    openai_api_cancel_on_disconnect: bool = False
    # Cleanup (maintenance loop and `imagestudio cleanup`): unused uploads, objects no row names,
    # and, when set, outputs older than retention_days (outside projects).
    cleanup_interval_seconds: float = Field(default=3600.0, gt=0)
    upload_retention_hours: float = Field(default=24.0, gt=0)
    orphan_grace_seconds: float = Field(default=3600.0, ge=60)
    retention_days: int | None = Field(default=None, ge=1)
    # Comma-separated words or phrases refused in prompts (whole words, any case); empty: no filter.
    prompt_blocklist: str = ""
    # Live event streams: a comment this often keeps proxies from closing an idle stream; the events
    # table is re-read at least every sse_poll_seconds even without a notification; a stream ends
    # after sse_max_seconds and the client resumes it with Last-Event-ID.
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0)
    sse_poll_seconds: float = Field(default=5.0, gt=0)
    sse_max_seconds: float = Field(default=3600.0, gt=0)
    # Comma-separated addresses or networks of reverse proxies whose X-Forwarded-Proto and
    # X-Forwarded-For are believed.
    trusted_proxies: str = "127.0.0.1,::1"

    # Providers. Keys and credentials come only from here (environment or .env), never from the
    # database, and are never logged or returned.
    default_provider: str = "builtin"
    disabled_providers: str = ""
    # Where a generation goes when its provider is not configured or keeps failing transiently,
    # as JSON: {"openai": ["stability", "builtin"]}.
    provider_fallbacks: dict[str, list[str]] = Field(default_factory=dict)
    provider_timeout_seconds: float = Field(default=180.0, gt=0)
    # How often providers are asked which models they have now (they are also asked at start and
    # when an administrator presses "refresh"); 0 asks only at start and on request.
    provider_refresh_seconds: float = Field(default=21600.0, ge=0)
    # Comma-separated model ids per hosted provider: plain ids replace the discovered list, ids
    # written "+id" are added to it; each must belong to a model family the adapter knows.
    openai_models: str = ""
    # Prices that replace or extend the defaults, as JSON keyed by "kind/model" (see
    # providers/pricing.py): {"openai/gpt-image-1.5": {"per_million": {"output_tokens": "32"}}}.
    prices: dict[str, dict[str, Any]] = Field(default_factory=dict)
    stability_models: str = ""
    gemini_models: str = ""
    openai_api_key: SecretStr | None = None
    openai_base_url: str = "https://api.openai.com/v1"
    stability_api_key: SecretStr | None = None
    stability_base_url: str = "https://api.stability.ai"
    gemini_api_key: SecretStr | None = None
    gemini_base_url: str = "https://generativelanguage.googleapis.com"
    a1111_url: str | None = None
    # "user:password", as given to the webui's --api-auth.
    a1111_auth: SecretStr | None = None
    comfyui_url: str | None = None
    comfyui_token: SecretStr | None = None
    comfyui_workflows_dir: Path | None = None
    # Local diffusion models as "id=path-or-cached-hub-id" pairs, comma-separated.
    diffusers_models: str = ""
    # Folders whose pipeline subfolders (each with a model_index.json) are offered by their names.
    diffusers_model_dirs: str = ""
    diffusers_device: str | None = None
    diffusers_dtype: str | None = None

    @field_validator("smtp_url")
    @classmethod
    def _check_smtp_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parse_smtp_url(value.get_secret_value())  # refuse a malformed URL at start-up, not at the first mail
        return value

    @property
    def mail_configured(self) -> bool:
        return self.smtp_url is not None

    @property
    def smtp_server(self) -> SmtpServer | None:
        return parse_smtp_url(self.smtp_url.get_secret_value()) if self.smtp_url is not None else None

    @property
    def requires_email_verification(self) -> bool:
        if self.email_verification == "auto":
            return self.mail_configured
        return self.email_verification == "required"

    @property
    def resolved_public_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    # Language and vision models (captions, prompt enhancement, titles, replies). The language
    # provider is one of openai (any OpenAI-compatible chat completions server: OpenAI, Ollama,
    # vLLM, llama.cpp, LM Studio, OpenRouter), gemini, transformers or builtin; empty picks openai
    # when a URL is set, transformers when a local model folder is, and builtin otherwise.
    language_provider: Literal["", "openai", "gemini", "transformers", "builtin"] = ""
    language_url: str | None = None
    language_api_key: SecretStr | None = None
    language_model: str | None = None
    # The model that reads images; empty means the language model.
    vision_model: str | None = None
    language_timeout_seconds: float = Field(default=120.0, gt=0)
    # Local transformers models, as folders written by save_pretrained.
    language_caption_model_path: Path | None = None
    language_text_model_path: Path | None = None

    @property
    def resolved_language_provider(self) -> str:
        if self.language_provider:
            return self.language_provider
        if self.language_url:
            return "openai"
        if self.language_caption_model_path or self.language_text_model_path:
            return "transformers"
        return "builtin"

    @property
    def disabled_provider_names(self) -> set[str]:
        return set(_split(self.disabled_providers))

    @property
    def diffusers_model_folders(self) -> list[str]:
        return _split(self.diffusers_model_dirs)

    @property
    def diffusers_model_map(self) -> dict[str, str]:
        models: dict[str, str] = {}
        for entry in _split(self.diffusers_models):
            model_id, separator, location = entry.partition("=")
            if not separator or not model_id.strip() or not location.strip():
                raise ValueError(f"IMAGESTUDIO_DIFFUSERS_MODELS entry {entry!r} is not id=path")
            models[model_id.strip()] = location.strip()
        return models

    @field_validator("trusted_proxies", "metrics_addresses")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for entry in _split(value):
            ipaddress.ip_network(entry, strict=False)
        return value

    @property
    def metrics_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _split(self.metrics_addresses))

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return tuple(ipaddress.ip_network(entry, strict=False) for entry in _split(self.trusted_proxies))

    @field_validator("data_dir")
    @classmethod
    def _expand(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'imagestudio.db').resolve()}"

    @property
    def resolved_storage_url(self) -> str:
        if self.storage_url:
            return self.storage_url
        return (self.data_dir / "storage").resolve().as_uri()

    @property
    def is_sqlite(self) -> bool:
        return self.resolved_database_url.startswith("sqlite")

    @property
    def uses_data_dir(self) -> bool:
        """Whether the database or the storage lives in the data folder (the embedded default)."""
        return not self.database_url or not self.storage_url or self.is_sqlite

    def ensure_data_dir(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        return self.data_dir

    def get_secret_key(self) -> str:
        """The configured key, or one generated on first use and kept in the data folder."""
        if self.secret_key is not None:
            return self.secret_key.get_secret_value()
        path = self.ensure_data_dir() / SECRET_KEY_FILE
        try:
            return path.read_text().strip()
        except FileNotFoundError:
            key = secrets.token_urlsafe(48)
            # O_EXCL so two processes starting together agree on one key.
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_text().strip()
            with os.fdopen(fd, "w") as handle:
                handle.write(key)
            return key


def _split(value: str) -> list[str]:
    return [entry.strip() for entry in value.split(",") if entry.strip()]


def normalize_database_url(url: str) -> str:
    """Accept the usual postgres URL spellings and route them to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


@dataclass(frozen=True)
class SmtpServer:
    """Where mail goes: `smtp://user:pass@host:587?starttls=true` or `smtps://user:pass@host:465`."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    username: str | None
    password: str | None = field(default=None, repr=False)


def parse_smtp_url(url: str) -> SmtpServer:
    """The server an IMAGESTUDIO_SMTP_URL names. STARTTLS defaults to on for port 587 (submission)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("smtp", "smtps"):
        raise ValueError("IMAGESTUDIO_SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("IMAGESTUDIO_SMTP_URL names no host")
    options = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(options) - {"starttls"}
    if unknown:
        raise ValueError(f"IMAGESTUDIO_SMTP_URL has unknown options: {', '.join(sorted(unknown))}")
    implicit_tls = parts.scheme == "smtps"
    port = parts.port or (465 if implicit_tls else 25)
    starttls = port == 587
    if "starttls" in options:
        flag = options["starttls"][-1].lower()
        if flag not in ("true", "false", "1", "0", "yes", "no"):
            raise ValueError("IMAGESTUDIO_SMTP_URL starttls must be true or false")
        starttls = flag in ("true", "1", "yes")
    if implicit_tls and starttls:
        raise ValueError("smtps:// is already encrypted; starttls applies to smtp:// only")
    return SmtpServer(
        host=parts.hostname,
        port=port,
        implicit_tls=implicit_tls,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
