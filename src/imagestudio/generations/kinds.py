"""Job kinds a domain above the engine adds to the queue (UI code), without the engine importing it.

A domain registers a `JobKind` for a generation type once at start-up (`register`); the job runner
hands a claimed generation of that type to it. The kind does the work and answers a `KindResult`;
the engine keeps everything a job shares: the claim, the lease, cancellation, the retry policy
(keyed on the language layer's and the providers' typed errors) and the fenced write of success,
in which `KindResult.write` records what the kind produced.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image
from sqlalchemy.orm import Session

from imagestudio.db import Database
from imagestudio.generations.queue import ClaimedGeneration
from imagestudio.language import LanguageRegistry
from imagestudio.providers.base import CancellationToken
from imagestudio.storage.base import Storage


@dataclass
class KindContext:
    claimed: ClaimedGeneration
    token: CancellationToken
    language: LanguageRegistry
    storage: Storage
    db: Database
    # Run a blocking call on the worker's database or storage pool.
    run_db: Callable[..., Awaitable[Any]]
    run_io: Callable[..., Awaitable[Any]]
    load_image: Callable[[str], Awaitable[Image.Image]]
    # Keys this attempt stored: the engine deletes them unless the job succeeds.
    written: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class KindResult:
    served_by: str
    model: str
    usage: dict
    # Runs inside the fenced transaction that marks the job succeeded.
    write: Callable[[Session], None]


class JobKind(Protocol):
    async def run(self, context: KindContext) -> KindResult: ...


_KINDS: dict[str, JobKind] = {}


def register(type: str, kind: JobKind) -> None:
    _KINDS[type] = kind


def registered(type: str) -> JobKind | None:
    return _KINDS.get(type)
