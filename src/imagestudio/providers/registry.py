"""The providers this process can use, built once at startup, and their mirror in the providers table.

The table is what API processes show (GET /api/v1/providers); the registry is what a process can
actually run. Scale-out processes may register different providers (a GPU box registers local
diffusion, an API box may not), so syncing only upserts the providers this process knows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from sqlalchemy.dialects import postgresql, sqlite

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.models import ProviderRecord
from imagestudio.models.types import utcnow
from imagestudio.providers.base import Provider, ProviderCapabilities

log = logging.getLogger(__name__)

BUILTIN_PROVIDER = "builtin"


class UnknownProvider(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown provider {name!r}; available: {', '.join(known) or 'none'}")
        self.name = name


class ProviderRegistry:
    """Providers by name. Not thread-safe to mutate: register everything before serving."""

    def __init__(self, *, default: str = BUILTIN_PROVIDER, fallbacks: dict[str, list[str]] | None = None) -> None:
        self._providers: dict[str, Provider] = {}
        self._disabled: set[str] = set()
        self._default = default
        self._fallbacks = {name: list(chain) for name, chain in (fallbacks or {}).items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRegistry:
        """Every provider the studio knows, configured or not, with the configured default and disabled ones."""
        from imagestudio.providers.setup import build_providers

        registry = cls(default=settings.default_provider, fallbacks=settings.provider_fallbacks)
        disabled = settings.disabled_provider_names
        for provider in build_providers(settings):
            registry.register(provider, enabled=provider.name not in disabled)
        return registry

    def register(self, provider: Provider, *, enabled: bool = True) -> None:
        if not isinstance(provider, Provider):
            raise TypeError(f"{provider!r} does not implement the provider protocol")
        if provider.name in self._providers:
            raise ValueError(f"a provider named {provider.name!r} is already registered")
        self._providers[provider.name] = provider
        if not enabled:
            self._disabled.add(provider.name)

    def get(self, name: str) -> Provider:
        try:
            return self._providers[name]
        except KeyError:
            raise UnknownProvider(name, self.names()) from None

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers.values())

    def all(self) -> list[Provider]:
        return list(self._providers.values())

    def names(self) -> list[str]:
        return list(self._providers)

    def is_enabled(self, name: str) -> bool:
        return name in self._providers and name not in self._disabled

    @property
    def default_name(self) -> str:
        """The configured default when registered and enabled, else the first enabled provider."""
        if self.is_enabled(self._default):
            return self._default
        for name in self._providers:
            if self.is_enabled(name):
                return name
        raise UnknownProvider(self._default, self.names())

    def problem(self, name: str) -> str | None:
        """Why a provider cannot take work now (None when it can)."""
        if name not in self._providers:
            return f"provider {name!r} is not available"
        if name in self._disabled:
            return f"provider {name!r} is disabled"
        return _configuration_problem(self._providers[name])

    def chain(self, name: str) -> list[str]:
        """The provider itself, then its configured fallbacks, in order, each once."""
        names = [name]
        for fallback in self._fallbacks.get(name, []):
            if fallback not in names:
                names.append(fallback)
        return names

    def ready_chain(self, name: str) -> list[str]:
        """The members of name's chain that can take work now."""
        return [member for member in self.chain(name) if self.problem(member) is None]

    def capabilities(self, name: str) -> ProviderCapabilities:
        return self.get(name).capabilities()

    def sync_to_database(self, db: Database) -> None:
        """Upsert one row per registered provider: kind, state, capabilities and models (never secrets)."""
        rows = [self._record(provider) for provider in self._providers.values()]
        if not rows:
            return
        dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        statement = dialect_insert(ProviderRecord)
        statement = statement.on_conflict_do_update(
            index_elements=[ProviderRecord.name],
            set_={
                column: statement.excluded[column]
                for column in ("kind", "enabled", "configured", "configuration_problem", "capabilities", "models")
            }
            | {"updated_at": statement.excluded.updated_at},
        )
        with db.writing() as session:
            session.execute(statement, rows)

    def _record(self, provider: Provider) -> dict:
        problem = _configuration_problem(provider)
        try:
            caps = provider.capabilities()
            capabilities, models = caps.as_dict(), caps.models_as_list()
        except Exception as error:
            log.exception("provider %s failed to report its capabilities", provider.name)
            capabilities, models = {}, []
            problem = problem or f"capabilities unavailable: {error}"
        return {
            "name": provider.name,
            "kind": provider.kind,
            "enabled": provider.name not in self._disabled,
            "configured": problem is None,
            "configuration_problem": problem,
            "capabilities": capabilities,
            "models": models,
            "updated_at": utcnow(),
        }

    async def aclose(self) -> None:
        for provider in self._providers.values():
            try:
                await provider.aclose()
            except Exception:
                log.exception("provider %s failed to close", provider.name)


def _configuration_problem(provider: Provider) -> str | None:
    try:
        return provider.configuration_problem()
    except Exception as error:  # a broken adapter must not take the registry down
        log.exception("provider %s failed to report its configuration", provider.name)
        return f"provider {provider.name!r} could not check its configuration: {error}"
