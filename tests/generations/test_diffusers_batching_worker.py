"""A worker with several slots hands compatible local diffusion generations to the provider together,
so they share one pipeline call; each is still stored, recorded and reported as its own."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from imagestudio.config import Settings
from imagestudio.db import Database
from imagestudio.models import Asset
from imagestudio.providers.diffusers import DiffusersProvider
from imagestudio.providers.registry import ProviderRegistry
from tests import factories
from tests.conftest import DIFFUSERS_EXTRA, skip_module_without
from tests.generations.conftest import running_worker, submit, wait_final

skip_module_without(DIFFUSERS_EXTRA)

from tests.providers.diffusers_fixtures import build_tiny_sd_pipeline  # noqa: E402  (after the skip: it imports torch)

pytestmark = pytest.mark.anyio
SLOTS = 3


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_sd_pipeline(tmp_path_factory.mktemp("models") / "tiny-sd")


async def test_slots_full_of_compatible_generations_render_in_one_call(
    db: Database, settings: Settings, storage, tiny_model_dir: Path
) -> None:
    # A window far longer than the test: the batch runs only because all SLOTS generations reached it.
    provider = DiffusersProvider({"tiny": str(tiny_model_dir)}, batch_size=SLOTS, batch_wait_ms=600_000)
    registry = ProviderRegistry(default="diffusers")
    registry.register(provider)
    with db.writing() as session:
        owner = factories.make_user(session, max_running=SLOTS).id
    ids = [
        submit(
            db,
            owner,
            registry,
            settings,
            provider="diffusers",
            model="tiny",
            prompt=f"a house, take {n}",
            seed=100 * n,
            steps=2,
            guidance=1.0,
        )
        for n in range(SLOTS)
    ]
    async with running_worker(db, storage, registry, settings, concurrency=SLOTS):
        final = await wait_final(db, ids, seconds=300)

    for n, generation_id in enumerate(ids):
        generation = final[generation_id]
        assert generation.status == "succeeded", generation.error_message
        assert generation.usage["batch_images"] == SLOTS
        assert (generation.progress_step, generation.progress_total) == (2, 2)
        with db.reading() as session:
            [output] = session.scalars(select(Asset).where(Asset.generation_id == generation_id)).all()
            assert output.seed == 100 * n
            assert storage.get(output.storage_key)
