"""Settings from IMAGESTUDIO_* environment variables and an optional .env file."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SECRET_KEY_FILE = "secret_key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="IMAGESTUDIO_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

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
    log_level: str = "info"

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


def normalize_database_url(url: str) -> str:
    """Accept the usual postgres URL spellings and route them to the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
