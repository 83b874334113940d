"""The providers this process can use, built once at startup, and their mirror in the providers table.

The table is what API processes show (GET /api/v1/providers) and what they check requests against;
the registry is what a process can actually run. Scale-out processes may register different
providers (a GPU box registers local diffusion, an API box may not), so syncing only upserts the
providers this process knows, and a request for a provider only a worker registers is accepted
from its row. Models come from the providers themselves where they can list them (`refresh()`),
at start, on an administrator's request and periodically; the row says when.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

import anyio
from sqlalchemy import case, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.models import ProviderRecord
from imagestudio.models.types import utcnow
from imagestudio.providers.base import Provider, ProviderCapabilities, ProviderError

log = logging.getLogger(__name__)

BUILTIN_PROVIDER = "builtin"


class UnknownProvider(LookupError):
    def __init__(self, name: str, known: list[str]) -> None:
        super().__init__(f"unknown provider {name!r}; available: {', '.join(known) or 'none'}")
        self.name = name


class ProviderUnavailable(LookupError):
    """No member of a provider's chain can take work now; the message says why."""


@dataclass(frozen=True)
class StoredProvider:
    """A row of the providers table, as an API process checks requests against it."""

    name: str
    ready: bool
    problem: str | None
    capabilities: ProviderCapabilities | None


def stored_providers(db: Session) -> dict[str, StoredProvider]:
    """Every provider any process registered, by name (read in the caller's transaction)."""
    stored: dict[str, StoredProvider] = {}
    for row in db.scalars(select(ProviderRecord)):
        capabilities = _read_capabilities(row)
        problem = None if row.enabled else f"provider {row.name!r} is disabled"
        problem = problem or row.configuration_problem
        stored[row.name] = StoredProvider(row.name, row.enabled and row.configured, problem, capabilities)
    return stored


# Capabilities read from a providers row, by the row's name and the time it last changed: every
# submission checks its request against them, and reading them is most of the cost of doing so.
_CAPABILITIES_READ: dict[tuple[str, datetime, datetime | None], ProviderCapabilities | None] = {}
_CAPABILITIES_KEPT = 256


def _read_capabilities(row: ProviderRecord) -> ProviderCapabilities | None:
    version = (row.name, row.updated_at, row.models_refreshed_at)
    if version in _CAPABILITIES_READ:
        return _CAPABILITIES_READ[version]
    try:
        capabilities = ProviderCapabilities.from_stored(row.capabilities or {}, row.models or [])
    except (KeyError, TypeError, ValueError):
        log.warning("the providers row of %s holds capabilities this version cannot read", row.name)
        capabilities = None
    if len(_CAPABILITIES_READ) >= _CAPABILITIES_KEPT:
        _CAPABILITIES_READ.clear()
    _CAPABILITIES_READ[version] = capabilities
    return capabilities


class ProviderRegistry:
    """Providers by name. Not thread-safe to mutate: register everything before serving."""

    def __init__(self, *, default: str = BUILTIN_PROVIDER, fallbacks: dict[str, list[str]] | None = None) -> None:
        self._providers: dict[str, Provider] = {}
        self._disabled: set[str] = set()
        self._default = default
        self._fallbacks = {name: list(chain) for name, chain in (fallbacks or {}).items()}
        # Per provider: when refresh() last worked, and why the last one failed.
        self._refreshed_at: dict[str, datetime] = {}
        self._refresh_problems: dict[str, str] = {}

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

    def submit_target(
        self, name: str, stored: dict[str, StoredProvider], also_ready: Collection[str] = ()
    ) -> tuple[str, ProviderCapabilities]:
        """The provider that takes a request for `name` first, and the capabilities to check it against.

        A provider this process registers is ready by its own account; one only other processes
        register (a GPU worker's) is ready by its row. Either way the row's models, which the last
        refresh by any process wrote, are the ones a request is checked against. Providers in
        `also_ready` count as ready here whatever they lack (the requester brings their own key).
        """
        if name not in self._providers and name not in stored:
            raise UnknownProvider(name, sorted({*self._providers, *stored}))
        for member in self.chain(name):
            record = stored.get(member)
            if member in self._providers:
                if self.problem(member) is None or member in also_ready:
                    caps = record.capabilities if record and record.capabilities else self.capabilities(member)
                    return member, caps
            elif record is not None and record.ready and record.capabilities is not None:
                return member, record.capabilities
        local_problem = self.problem(name) if name in self._providers else None
        stored_problem = stored[name].problem if name in stored else None
        raise ProviderUnavailable(local_problem or stored_problem or f"provider {name!r} is not available")

    async def refresh(self, names: list[str] | None = None) -> dict[str, str | None]:
        """Ask each configured provider that can list its models for them; name -> problem (None: done).

        Providers that cannot list models (or are not configured) are skipped and absent from the
        answer. One provider failing never stops the others.
        """
        outcomes: dict[str, str | None] = {}
        for provider in self._providers.values():
            refresh = getattr(provider, "refresh", None)
            if refresh is None or not getattr(provider, "lists_models", True):
                continue
            if names is not None and provider.name not in names:
                continue
            # A provider that is not configured cannot be asked, unless its models are on this disk.
            if _configuration_problem(provider) is not None and not getattr(provider, "lists_models_locally", False):
                continue
            try:
                await refresh()
            except Exception as error:
                message = error.message if isinstance(error, ProviderError) else f"{type(error).__name__}: {error}"
                log.warning("provider %s could not list its models: %s", provider.name, message)
                self._refresh_problems[provider.name] = message
                outcomes[provider.name] = message
                continue
            self._refreshed_at[provider.name] = utcnow()
            self._refresh_problems.pop(provider.name, None)
            outcomes[provider.name] = None
        return outcomes

    async def refresh_and_sync(self, db: Database, names: list[str] | None = None) -> dict[str, str | None]:
        outcomes = await self.refresh(names)
        await anyio.to_thread.run_sync(self.sync_to_database, db)
        return outcomes

    def sync_to_database(self, db: Database) -> None:
        """Upsert one row per registered provider: kind, state, capabilities and models (never secrets)."""
        rows = [self._record(provider) for provider in self._providers.values()]
        if not rows:
            return
        dialect_insert = postgresql.insert if db.dialect == "postgresql" else sqlite.insert
        statement = dialect_insert(ProviderRecord)
        new = statement.excluded
        # A process that has not listed a provider's models itself keeps what another process listed.
        keeps_listing = new.models_refreshed_at.is_(None) & ProviderRecord.models_refreshed_at.isnot(None)
        statement = statement.on_conflict_do_update(
            index_elements=[ProviderRecord.name],
            set_={column: new[column] for column in ("kind", "enabled", "configured", "configuration_problem")}
            | {
                "capabilities": case((keeps_listing, ProviderRecord.capabilities), else_=new.capabilities),
                "models": case((keeps_listing, ProviderRecord.models), else_=new.models),
                "models_refreshed_at": func.coalesce(new.models_refreshed_at, ProviderRecord.models_refreshed_at),
                "refresh_problem": case(
                    (new.models_refreshed_at.is_(None) & new.refresh_problem.is_(None), ProviderRecord.refresh_problem),
                    else_=new.refresh_problem,
                ),
                "updated_at": new.updated_at,
            },
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
            "models_refreshed_at": self._refreshed_at.get(provider.name),
            "refresh_problem": self._refresh_problems.get(provider.name),
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
