"""Discovered models in the providers table: refresh (API), submit checks against them, per-model limits."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import anyio
import httpx
import pytest
from sqlalchemy import select

from imagestudio.config import Settings
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.models import Generation, ProviderRecord, User
from imagestudio.providers.a1111 import A1111Provider
from imagestudio.providers.builtin import BuiltinRenderer
from imagestudio.providers.refresh import ModelRefresher
from imagestudio.providers.registry import ProviderRegistry
from imagestudio.providers.stability import StabilityProvider
from imagestudio.storage import storage_from_url
from tests import factories
from tests.api.helpers import API, assert_problem, browser_client, error_fields, run_queue
from tests.fakes.a1111 import FakeA1111
from tests.fakes.common import Fault, client_for
from tests.fakes.openai import BASE_URL as OPENAI_URL
from tests.fakes.openai import FakeOpenAI, openai_provider

LISTED = ["gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2"]
SQUARE = {"width": 1024, "height": 1024}


@pytest.fixture
def fake() -> FakeOpenAI:
    return FakeOpenAI()


def _registry(fake: FakeOpenAI) -> ProviderRegistry:
    registry = ProviderRegistry()
    registry.register(BuiltinRenderer())
    registry.register(openai_provider(fake, client_for(fake.app, OPENAI_URL), timeout=5.0))
    # Submitting never calls Stability, so its client is never used.
    registry.register(StabilityProvider("sk-stability-test", client=httpx.AsyncClient()))
    return registry


@pytest.fixture
def container(db: Database, settings: Settings, tmp_path: Path, fake: FakeOpenAI) -> Container:
    registry = _registry(fake)
    registry.sync_to_database(db)
    return Container(settings=settings, db=db, storage=storage_from_url(str(tmp_path / "storage")), registry=registry)


def _providers(client) -> dict[str, dict]:
    response = client.get(f"{API}/providers")
    assert response.status_code == 200, response.text
    return {p["name"]: p for p in response.json()["items"]}


def _record(container: Container, name: str) -> ProviderRecord:
    with container.db.reading() as db:
        row = db.get(ProviderRecord, name)
        assert row is not None
        db.expunge(row)
        return row


def test_an_admin_refresh_lists_the_models_and_says_when(accounts, fake: FakeOpenAI) -> None:
    admin = accounts.make(admin=True).client
    before = _providers(admin)["openai"]
    assert [m["id"] for m in before["models"]] == ["gpt-image-1", "gpt-image-1-mini"]
    assert before["models_refreshed_at"] is None

    response = admin.post(f"{API}/providers/refresh")

    assert response.status_code == 200, response.text
    body = response.json()
    # Only providers that can list models (and are configured) are asked.
    assert body["outcomes"] == {"openai": None}
    assert ("GET", "/v1/models") in [(r.method, r.path) for r in fake.requests]
    listed = {p["name"]: p for p in body["providers"]}["openai"]
    assert [m["id"] for m in listed["models"]] == LISTED
    assert listed["models_refreshed_at"] is not None and listed["refresh_problem"] is None
    # Every reader sees the same rows.
    again = _providers(accounts.make().client)["openai"]
    assert [m["id"] for m in again["models"]] == LISTED
    assert again["models_refreshed_at"] == listed["models_refreshed_at"]
    newest = next(m for m in again["models"] if m["id"] == "gpt-image-2")
    assert newest["sizes"] == [[1024, 1024], [1536, 1024], [1024, 1536]]
    # The refresh is in the audit trail, with who asked and what each provider answered.
    (event,) = admin.get(f"{API}/admin/audit", params={"action": "providers.refreshed"}).json()["items"]
    assert event["details"] == {"outcomes": {"openai": None}} and event["actor_email"]


def test_only_an_admin_may_refresh(accounts, app, fake: FakeOpenAI) -> None:
    assert_problem(accounts.make().client.post(f"{API}/providers/refresh"), 403)
    assert_problem(browser_client(app).post(f"{API}/providers/refresh"), 401)
    assert fake.requests == []


def test_a_failed_refresh_is_recorded_and_keeps_the_last_listing(
    accounts, container: Container, fake: FakeOpenAI
) -> None:
    admin = accounts.make(admin=True).client
    assert admin.post(f"{API}/providers/refresh").status_code == 200
    first = _record(container, "openai")

    fake.fail_next(Fault.server_error(503))
    response = admin.post(f"{API}/providers/refresh")

    assert response.status_code == 200
    problem = response.json()["outcomes"]["openai"]
    assert problem and "503" in problem
    row = _record(container, "openai")
    assert [m["id"] for m in row.models] == LISTED
    assert row.models_refreshed_at == first.models_refreshed_at
    assert row.refresh_problem == problem


@pytest.mark.anyio
async def test_a_process_that_has_not_listed_keeps_what_another_listed(db: Database, fake: FakeOpenAI) -> None:
    lister = _registry(fake)
    await lister.refresh_and_sync(db)
    # Another process starts: it syncs its own (unlisted) table, which must not undo the listing.
    _registry(fake).sync_to_database(db)
    with db.reading() as session:
        row = session.get(ProviderRecord, "openai")
        assert row is not None
        assert [m["id"] for m in row.models] == LISTED
        assert row.models_refreshed_at is not None


def test_submit_checks_against_the_stored_listing(accounts, fake: FakeOpenAI, container: Container) -> None:
    user = accounts.make().client
    body = {"prompt": "a kite", "provider": "openai", "model": "gpt-image-2", **SQUARE}
    # Not listed yet: refused, naming the field, and nothing is queued.
    refused = user.post(f"{API}/generations", json=body)
    assert "gpt-image-2" in assert_problem(refused, 422, "invalid_generation_request")["detail"]
    assert error_fields(refused) == {"model"}
    # Another process (a worker) lists the models; this API process has not asked the service.
    asyncio.run(_registry(fake).refresh_and_sync(container.db))
    assert container.registry.capabilities("openai").model("gpt-image-2") is None

    created = user.post(f"{API}/generations", json=body)

    assert created.status_code == 201, created.text
    assert created.json()["model"] == "gpt-image-2"
    # A retired model stays refused.
    retired = user.post(f"{API}/generations", json={**body, "model": "dall-e-3"})
    assert_problem(retired, 422, "invalid_generation_request")
    assert error_fields(retired) == {"model"}
    with container.db.reading() as db:
        assert db.scalars(select(Generation.model)).all() == ["gpt-image-2"]


def test_a_provider_only_a_worker_registers_is_accepted(accounts, container: Container) -> None:
    # A GPU box registers a provider this API process does not have, and syncs it.
    gpu = BuiltinRenderer()
    gpu.name = "gpu-box"
    worker_registry = ProviderRegistry(default="gpu-box")
    worker_registry.register(gpu)
    worker_registry.sync_to_database(container.db)
    assert "gpu-box" not in container.registry
    user = accounts.make().client

    created = user.post(
        f"{API}/generations", json={"prompt": "a kite", "provider": "gpu-box", "width": 64, "height": 64}
    )

    assert created.status_code == 201, created.text
    assert created.json()["provider"] == "gpu-box"
    # Checked against the stored models all the same.
    refused = user.post(
        f"{API}/generations",
        json={"prompt": "a kite", "provider": "gpu-box", "model": "nope", "width": 64, "height": 64},
    )
    assert_problem(refused, 422, "invalid_generation_request")
    assert error_fields(refused) == {"model"}
    unknown = user.post(
        f"{API}/generations", json={"prompt": "a kite", "provider": "nobody", "width": 64, "height": 64}
    )
    assert_problem(unknown, 422, "invalid_generation_request")
    assert error_fields(unknown) == {"provider"}


@pytest.mark.parametrize(("guidance", "status"), [(20, 422), (0.5, 422), (10, 201), (1, 201)])
def test_stability_guidance_is_checked_against_the_model_at_submit(
    accounts, container: Container, guidance: float, status: int
) -> None:
    body = {
        "prompt": "a kite",
        "provider": "stability",
        "model": "sd3.5-large",
        "params": {"guidance": guidance},
        "aspect_ratio": "1:1",
    }
    response = accounts.make().client.post(f"{API}/generations", json=body)
    assert response.status_code == status, response.text
    if status == 422:
        assert "between 1 and 10" in assert_problem(response, 422, "invalid_generation_request")["detail"]
        assert error_fields(response) == {"params.guidance"}
        with container.db.reading() as db:
            assert db.scalars(select(Generation.id)).all() == []


@pytest.mark.anyio
async def test_the_refresher_lists_at_start_and_then_periodically(db: Database, fake: FakeOpenAI) -> None:
    registry = _registry(fake)
    refresher = ModelRefresher(registry, db, interval=0.01)
    refresher.start()
    try:
        with anyio.fail_after(20):
            await refresher.first_pass.wait()
            with db.reading() as session:
                row = session.get(ProviderRecord, "openai")
                assert row is not None and [m["id"] for m in row.models] == LISTED
            # The fake only records requests, so the test looks until a third listing arrives.
            while sum(r.path == "/v1/models" for r in fake.requests) < 3:  # noqa: ASYNC110
                await anyio.sleep(0.01)
    finally:
        await refresher.stop()


def test_a_finished_generation_reports_its_cost_currency_and_usage(accounts, container: Container) -> None:
    user = accounts.make().client
    paid = user.post(f"{API}/generations", json={"prompt": "a kite", "provider": "openai", **SQUARE})
    free = user.post(f"{API}/generations", json={"prompt": "a kite", "provider": "builtin", "width": 64, "height": 64})
    assert paid.status_code == 201 and free.status_code == 201
    run_queue(container)

    done = user.get(f"{API}/generations/{paid.json()['id']}").json()
    assert done["status"] == "succeeded"
    # gpt-image-1 at the default prices: 50 text tokens at $5/M and 272 output tokens at $40/M.
    assert done["cost"] == {"amount": "0.011130", "currency": "USD"} and done["own_key"] is False
    assert done["usage"]["output_tokens"] == 272 and done["usage"]["input_tokens"] == 50
    builtin = user.get(f"{API}/generations/{free.json()['id']}").json()
    assert builtin["status"] == "succeeded"
    # The built-in renderer is free, and says so.
    assert builtin["cost"] == {"amount": "0.000000", "currency": "USD"}


def test_a_servers_samplers_and_schedulers_are_checked_at_submit(accounts, container: Container) -> None:
    # A worker with an AUTOMATIC1111 server lists its checkpoints, samplers and schedulers.
    server = FakeA1111()
    webui = A1111Provider("http://webui.test:7860", client=client_for(server.app, "http://webui.test:7860"))
    worker_registry = ProviderRegistry(default="a1111")
    worker_registry.register(webui)
    assert anyio.run(worker_registry.refresh) == {"a1111": None}
    worker_registry.sync_to_database(container.db)
    user = accounts.make().client
    listed = _providers(user)["a1111"]["capabilities"]
    assert listed["samplers"][:2] == ["Euler a", "Euler"] and "karras" in listed["schedulers"]

    def ask(params: dict) -> httpx.Response:
        body = {"prompt": "a kite", "provider": "a1111", "model": "sd_xl_base_1.0", "width": 512, "height": 512}
        return user.post(f"{API}/generations", json={**body, "params": params})

    assert ask({"scheduler": "DPM++ 2M", "extra": {"scheduler": "karras"}}).status_code == 201
    refused = ask({"scheduler": "DPM++ 9M"})
    assert "unknown sampler" in assert_problem(refused, 422, "invalid_generation_request")["detail"]
    assert error_fields(refused) == {"params.scheduler"}
    refused = ask({"extra": {"scheduler": "polyexponential"}})
    assert_problem(refused, 422, "invalid_generation_request")
    assert error_fields(refused) == {"params.extra.scheduler"}
    refused = user.post(
        f"{API}/generations",
        json={"prompt": "a kite", "provider": "a1111", "model": "no-such-checkpoint", "width": 512, "height": 512},
    )
    assert error_fields(refused) == {"model"}
    with container.db.reading() as db:
        assert len(db.scalars(select(Generation.id)).all()) == 1


def _source(container: Container, owner_id: str, width: int, height: int) -> str:
    with container.db.writing() as db:
        owner = db.get(User, uuid.UUID(owner_id))
        assert owner is not None
        asset = factories.make_upload(db, owner, width=width, height=height)
        db.commit()
        return str(asset.id)


@pytest.mark.parametrize(
    ("model", "source", "expected"),
    [
        # Fast makes four times each side; conservative and creative about 4 megapixels in the source's shape.
        ("upscale-fast", (512, 256), (2048, 1024)),
        ("upscale-conservative", (512, 512), (2048, 2048)),
        ("upscale-conservative", (3000, 2000), (2508, 1672)),
        ("upscale-creative", (1024, 768), (2365, 1774)),
    ],
)
def test_a_stability_upscale_records_the_size_the_service_makes(
    accounts, container: Container, model: str, source: tuple[int, int], expected: tuple[int, int]
) -> None:
    account = accounts.make()
    body = {"type": "upscale", "prompt": "a harbour", "provider": "stability", "model": model}
    created = account.client.post(
        f"{API}/generations", json={**body, "source_asset_id": _source(container, account.id, *source)}
    )
    assert created.status_code == 201, created.text
    assert (created.json()["width"], created.json()["height"]) == expected


@pytest.mark.parametrize(
    ("model", "source", "field", "words"),
    [
        ("upscale-fast", (2000, 500), "source_asset_id", "sides of 32 to 1536"),
        ("upscale-fast", (24, 24), "source_asset_id", "sides of 32 to 1536"),
        ("upscale-creative", (1200, 1200), "source_asset_id", "4,096 to 1,048,576 pixels"),
        ("upscale-conservative", (4000, 3000), "source_asset_id", "4,096 to 9,437,184 pixels"),
        ("upscale-conservative", (900, 300), "source_asset_id", "no longer than 2.5 to 1"),
    ],
)
def test_a_stability_upscale_refuses_a_source_the_service_would(
    accounts, container: Container, model: str, source: tuple[int, int], field: str, words: str
) -> None:
    account = accounts.make()
    body = {"type": "upscale", "prompt": "a harbour", "provider": "stability", "model": model}
    refused = account.client.post(
        f"{API}/generations", json={**body, "source_asset_id": _source(container, account.id, *source)}
    )
    assert words in assert_problem(refused, 422, "invalid_generation_request")["detail"]
    assert error_fields(refused) == {field}
    with container.db.reading() as db:
        assert db.scalars(select(Generation.id)).all() == []


def test_a_fixed_size_upscale_refuses_a_factor(accounts, container: Container) -> None:
    account = accounts.make()
    body = {"type": "upscale", "prompt": "a harbour", "provider": "stability", "model": "upscale-conservative"}
    refused = account.client.post(
        f"{API}/generations",
        json={**body, "source_asset_id": _source(container, account.id, 512, 512), "params": {"upscale_factor": 4}},
    )
    assert "whatever the factor" in assert_problem(refused, 422, "invalid_generation_request")["detail"]
    assert error_fields(refused) == {"params.upscale_factor"}


@pytest.mark.parametrize(
    ("extra", "status", "field"),
    [
        ({"quality": "high", "background": "transparent", "output_format": "webp"}, 201, None),
        ({"quality": "ultra"}, 422, "params.extra.quality"),
        ({"output_format": "gif"}, 422, "params.extra.output_format"),
        ({"moderation": "off"}, 422, "params.extra.moderation"),
    ],
)
def test_openai_option_values_are_checked_at_submit(
    accounts, container: Container, extra: dict, status: int, field: str | None
) -> None:
    body = {"prompt": "a kite", "provider": "openai", "model": "gpt-image-1", "params": {"extra": extra}, **SQUARE}
    response = accounts.make().client.post(f"{API}/generations", json=body)
    assert response.status_code == status, response.text
    if field is not None:
        assert_problem(response, 422, "invalid_generation_request")
        assert error_fields(response) == {field}
