"""A failed image does not re-buy the batch: providers that make one image per call (Stability AI,
Gemini) hand each image over as it arrives, the engine stores and records it under the lease, and
a retry makes only the images still missing. Run against the fake services, on both databases."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import Counter
from decimal import Decimal

import pytest
from PIL import Image
from sqlalchemy import select, update

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.generations import fenced, queue
from imagestudio.models import Asset, BatchImage, ChatSession, Generation, GenerationEvent, RunStatus, User
from imagestudio.models.types import utcnow
from imagestudio.providers.base import (
    GeneratedImage,
    GenerationResult,
    GenerationType,
    ModelInfo,
    ProviderCapabilities,
    collect_each,
)
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.storage.local import LocalStorage
from tests import factories
from tests.fakes.common import Fault
from tests.fakes.gemini import FakeGemini, gemini_provider
from tests.fakes.stability import FakeStability, stability_provider
from tests.generations.conftest import expire_lease, load, running_worker, submit, wait_final, wait_for
from tests.generations.test_queue import _output, claim

pytestmark = pytest.mark.anyio

STABILITY_PATH = "/v2beta/stable-image/generate/core"
GEMINI_MODEL = "gemini-3.1-flash-image"
SEED = 4200


@pytest.fixture
def stability() -> FakeStability:
    return FakeStability()


@pytest.fixture
def gemini() -> FakeGemini:
    return FakeGemini()


@pytest.fixture
def hosted(stability: FakeStability, gemini: FakeGemini) -> ProviderRegistry:
    registry = ProviderRegistry(default="stability")
    registry.register(stability_provider(stability))
    registry.register(gemini_provider(gemini))
    return registry


def _session_of(db: Database, user_id: uuid.UUID) -> uuid.UUID:
    with db.writing() as session:
        owner = session.get(User, user_id)
        assert owner is not None
        return factories.make_session(session, owner).id


def _outputs(db: Database, generation_id: uuid.UUID) -> list[Asset]:
    with db.reading() as session:
        return list(
            session.scalars(select(Asset).where(Asset.generation_id == generation_id).order_by(Asset.batch_index))
        )


def _kept(db: Database, generation_id: uuid.UUID) -> list[BatchImage]:
    with db.reading() as session:
        return list(session.scalars(select(BatchImage).where(BatchImage.generation_id == generation_id)))


def _image_calls(fake: FakeStability) -> Counter[int]:
    """Stability calls per batch index (image i is asked for with seed SEED + i)."""
    return Counter(int(r.field("seed") or 0) - SEED for r in fake.requests if r.path == STABILITY_PATH)


@pytest.mark.parametrize("fault", [Fault.rate_limit(retry_after=0.05), Fault.server_error(503)], ids=["429", "503"])
async def test_stability_retry_makes_only_the_missing_images(
    db: Database, hosted: ProviderRegistry, stability: FakeStability, settings: Settings, storage: LocalStorage,
    user_id: uuid.UUID, fault: Fault,
) -> None:  # fmt: skip
    session_id = _session_of(db, user_id)
    # Images 0 and 1 arrive, image 2 fails; the retry must ask for 2 and 3 only.
    stability.fail_request(3, fault)
    generation_id = submit(
        db, user_id, hosted, settings, provider="stability", model="stable-image-core", num_images=4, seed=SEED,
        width=1024, height=1024, session_id=session_id, prompt="a lighthouse at dusk",
    )  # fmt: skip
    async with running_worker(db, storage, hosted, settings):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert generation.status == RunStatus.succeeded, generation.error_message
    assert generation.attempt == 2

    calls = _image_calls(stability)
    assert sorted(calls) == [0, 1, 2, 3]
    # Image 2 was asked for twice (the refused call and the retry); every other image once.
    assert calls == Counter({0: 1, 1: 1, 2: 2, 3: 1})
    assert stability.completed == 4

    outputs = _outputs(db, generation_id)
    assert [asset.batch_index for asset in outputs] == [0, 1, 2, 3]
    # The first two were kept from attempt 1; the retry stored only the rest.
    assert ["/a1/" in asset.storage_key for asset in outputs] == [True, True, False, False]
    assert ["/a2/" in asset.storage_key for asset in outputs] == [False, False, True, True]
    assert [asset.seed for asset in outputs] == [SEED + index for index in range(4)]
    for asset in outputs:
        assert storage.get(asset.storage_key) and asset.thumbnail_key is None
    # Counters exact: four requests paid for, four images in the session, nothing kept aside.
    assert generation.usage == {"requests": 4}
    with db.reading() as session:
        chat = session.get(ChatSession, session_id)
        assert chat is not None and chat.image_count == 4
        stored_events = session.scalars(
            select(GenerationEvent).where(
                GenerationEvent.generation_id == generation_id, GenerationEvent.type == "output_stored"
            )
        ).all()
    assert sorted(event.payload["batch_index"] for event in stored_events) == [0, 1, 2, 3]
    assert _kept(db, generation_id) == []

    # The sweeper keeps every object the outputs point at.
    queue.sweep(db, storage)
    for asset in _outputs(db, generation_id):
        assert storage.get(asset.storage_key)


async def test_gemini_retry_makes_only_the_missing_images(
    db: Database, hosted: ProviderRegistry, gemini: FakeGemini, settings: Settings, storage: LocalStorage,
    user_id: uuid.UUID,
) -> None:  # fmt: skip
    gemini.fail_request(2, Fault.server_error(503))
    generation_id = submit(
        db, user_id, hosted, settings, provider="gemini", model=GEMINI_MODEL, num_images=3,
        width=1024, height=1024, prompt="a paper crane",
    )  # fmt: skip
    async with running_worker(db, storage, hosted, settings):
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert generation.status == RunStatus.succeeded, generation.error_message

    calls = [r for r in gemini.requests if r.path.endswith(":generateContent")]
    assert len(calls) == 4  # three images and the one refused call
    assert gemini.completed == 3
    outputs = _outputs(db, generation_id)
    assert [asset.batch_index for asset in outputs] == [0, 1, 2]
    assert ["/a1/" in asset.storage_key for asset in outputs] == [True, False, False]
    # Token counts are the sum over the three calls that made an image, no more.
    per_call = generation.usage["totalTokenCount"] // 3
    assert generation.usage["totalTokenCount"] == 3 * per_call > 0
    assert generation.usage["candidatesTokenCount"] == 3 * (generation.usage["candidatesTokenCount"] // 3)


async def test_a_batch_that_finally_fails_leaves_nothing_behind(
    db: Database, hosted: ProviderRegistry, stability: FakeStability, settings: Settings, storage: LocalStorage,
    user_id: uuid.UUID,
) -> None:  # fmt: skip
    # Image 0 arrives, then every later call fails until the attempts are spent.
    stability.fail_request(2, Fault.server_error(500))
    stability.fail_next(*[Fault.server_error(500) for _ in range(settings.default_max_attempts)])
    generation_id = submit(
        db, user_id, hosted, settings, provider="stability", model="stable-image-core", num_images=3, seed=SEED,
        width=1024, height=1024, prompt="a storm",
    )  # fmt: skip
    # Maintenance only at start, so the sweep below is the one that removes what was kept.
    async with running_worker(db, storage, hosted, settings, reap_interval=600.0):
        final = await wait_final(db, [generation_id])
    assert final[generation_id].status == RunStatus.failed
    # Image 0 was made once and never again, however many attempts followed.
    assert _image_calls(stability)[0] == 1
    kept = _kept(db, generation_id)
    assert [image.batch_index for image in kept] == [0]
    kept_key = kept[0].storage_key
    assert storage.get(kept_key)

    assert queue.sweep(db, storage) == 1
    assert _kept(db, generation_id) == []
    assert _outputs(db, generation_id) == []
    assert list(storage.list(f"outputs/{generation_id}/")) == []
    with db.reading() as session:
        assert session.get(Generation, generation_id).cleanup_pending is False  # type: ignore[union-attr]


def _kept_image(claimed: queue.ClaimedGeneration, index: int) -> fenced.KeptImage:
    return fenced.KeptImage(
        output=_output(claimed, index),
        attempt=claimed.attempt,
        provider="scripted",
        model="scripted-1",
        usage={"requests": 1},
        cost=Decimal("0.04"),
        revised_prompt=None,
    )


def test_only_the_lease_holder_keeps_images(db: Database, registry, settings, user_id: uuid.UUID) -> None:
    generation_id = submit(db, user_id, registry, settings, num_images=3)
    [claimed] = claim(db, worker="holder")
    assert fenced.keep_batch_image(db, claimed, _kept_image(claimed, 0)) is False
    [kept] = fenced.batch_images(db, generation_id)
    assert (kept.output.batch_index, kept.attempt, kept.usage, kept.cost) == (0, 1, {"requests": 1}, Decimal("0.04"))

    # Once the lease ran out, nothing is kept or dropped, and the caller learns it.
    expire_lease(db, generation_id)
    assert fenced.keep_batch_image(db, claimed, _kept_image(claimed, 1)) is None
    assert fenced.drop_batch_images(db, claimed, [0]) is False
    assert [image.output.batch_index for image in fenced.batch_images(db, generation_id)] == [0]

    # The next attempt's holder may drop what it will not use.
    queue.reap(db, backoff_base=0.0)
    with db.writing() as session:
        session.execute(update(Generation).where(Generation.id == generation_id).values(run_after=utcnow()))
    [again] = claim(db, worker="next")
    assert again.attempt == 2
    assert fenced.drop_batch_images(db, again, [0]) is True
    assert fenced.batch_images(db, generation_id) == []


def test_success_turns_kept_images_into_outputs(db: Database, registry, settings, user_id: uuid.UUID) -> None:
    generation_id = submit(db, user_id, registry, settings, num_images=2)
    [claimed] = claim(db, worker="holder")
    for index in (0, 1):
        assert fenced.keep_batch_image(db, claimed, _kept_image(claimed, index)) is False
    outputs = [image.output for image in fenced.batch_images(db, generation_id)]
    outcome = fenced.finish_succeeded(
        db, claimed, outputs, served_by="scripted", model="scripted-1", revised_prompt=None, cost=None,
        usage={}, final_progress=None,
    )  # fmt: skip
    assert outcome == fenced.Outcome.done
    assert fenced.batch_images(db, generation_id) == []
    assert [asset.batch_index for asset in _outputs(db, generation_id)] == [0, 1]


class OneByOne:
    """A provider that makes one image per call and holds image 1 until the test opens its gate."""

    name = "one-by-one"
    kind = "test"

    def __init__(self) -> None:
        self.calls: Counter[int] = Counter()
        self.gate = threading.Event()

    def capabilities(self) -> ProviderCapabilities:
        types = frozenset({GenerationType.text2img})
        return ProviderCapabilities(
            types=types, models=(ModelInfo("one-1", "One", types),), default_model="one-1", min_size=8,
            max_size=256, size_multiple=1,
        )  # fmt: skip

    def configuration_problem(self) -> str | None:
        return None

    async def aclose(self) -> None:
        return None

    async def generate(self, request, progress, cancel) -> GenerationResult:  # type: ignore[no-untyped-def]
        return await collect_each(self, request, progress, cancel)

    async def generate_each(self, request, indices, progress, cancel):  # type: ignore[no-untyped-def]
        for index in indices:
            if index == 1:
                await asyncio.to_thread(self.gate.wait, GATE_BOUND_SECONDS)
            self.calls[index] += 1
            image = Image.new("RGB", (request.width, request.height), (60 * index, 90, 200))
            yield index, GenerationResult(images=[GeneratedImage(image)], model=request.model, usage={"requests": 1})


GATE_BOUND_SECONDS = 30.0


async def test_a_worker_that_loses_its_lease_leaves_the_kept_images_to_the_next_attempt(
    db: Database, settings: Settings, storage: LocalStorage, user_id: uuid.UUID
) -> None:
    provider = OneByOne()
    registry = ProviderRegistry(default=provider.name)
    registry.register(provider)
    generation_id = submit(db, user_id, registry, settings, provider=provider.name, num_images=2)

    def attempt_of() -> tuple[int, str]:
        generation = load(db, generation_id)
        return generation.attempt, generation.status

    async with running_worker(db, storage, registry, settings):
        # Image 0 is kept by attempt 1; then its lease runs out while image 1 is being made.
        await wait_for(lambda: _kept(db, generation_id))
        expire_lease(db, generation_id)
        await wait_for(lambda: attempt_of()[0] == 2 or attempt_of()[1] == "queued")
        provider.gate.set()
        final = await wait_final(db, [generation_id])
    generation = final[generation_id]
    assert generation.status == RunStatus.succeeded, generation.error_message
    assert generation.attempt == 2
    # Image 0 was never made again; image 1 was made by both attempts, and kept only by the second.
    assert provider.calls == Counter({0: 1, 1: 2})
    outputs = _outputs(db, generation_id)
    assert ["/a1/" in asset.storage_key for asset in outputs] == [True, False]
    for asset in outputs:
        assert storage.get(asset.storage_key) and asset.thumbnail_key is None
