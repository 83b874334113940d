"""A worker cut off from the network (not killed) must be as harmless as a dead one.

Each scenario starts a worker inside a network namespace, lets it claim a generation, and cuts it
off at a chosen moment: (a) mid-render, (b) during its uploads, (c) inside a database transaction,
(d) while it holds what orders one user's events. While it is cut off, a healthy worker must take the
generation over once the lease runs out and keep other jobs moving; after the link heals, the cut-off
worker must recover and run new work. Then, over everything stored: each generation finished exactly
once, every object a success points at is the winner's and was never rewritten (S3 object versions),
no duplicate rows, and every event stream is gapless.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable

import pytest
from sqlalchemy import select

from imagestudio.models import FINAL_STATUSES, Asset, Generation, GenerationEvent, RunStatus
from tests import factories
from tests.generations.conftest import submit
from tests.partition.conftest import Cluster, WorkerProcess, wait_until

# The namespaces use fixed /30 subnets per test, so these tests share one test process.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("network-namespaces")]

# Long enough to render that a cut lands while it renders (2-3 s here), several outputs to upload.
TARGET = {"provider": "builtin", "width": 1024, "height": 1024, "num_images": 6, "steps": 150}
SMALL = {"provider": "builtin", "width": 128, "height": 128, "num_images": 2, "steps": 8}
# Bounds on waiting, never on how fast anything must be.
TAKEOVER_SECONDS = 90.0


def _user(cluster: Cluster) -> uuid.UUID:
    with cluster.db.writing() as session:
        return factories.make_user(session).id


def _generation(cluster: Cluster, generation_id: uuid.UUID) -> Generation:
    with cluster.db.reading() as session:
        generation = session.get(Generation, generation_id)
        assert generation is not None
        return generation


def _events(cluster: Cluster, generation_id: uuid.UUID) -> list[GenerationEvent]:
    with cluster.db.reading() as session:
        return list(
            session.scalars(
                select(GenerationEvent)
                .where(GenerationEvent.generation_id == generation_id)
                .order_by(GenerationEvent.sequence)
            )
        )


def _succeeded(cluster: Cluster, generation_id: uuid.UUID) -> bool:
    return _generation(cluster, generation_id).status == RunStatus.succeeded


def _claimed_by(cluster: Cluster, generation_id: uuid.UUID, worker: WorkerProcess) -> bool:
    return any(
        event.type == "started" and event.payload.get("worker") == worker.worker_id
        for event in _events(cluster, generation_id)
    )


def _rendering(cluster: Cluster, generation_id: uuid.UUID) -> bool:
    return any(event.type == "progress" and event.attempt == 1 for event in _events(cluster, generation_id))


def _cut_mid_render(cluster: Cluster, target: uuid.UUID) -> None:
    wait_until(lambda: _rendering(cluster, target), TAKEOVER_SECONDS, "the cut-off worker reports progress")
    cluster.namespace.cut()


def _cut_on(proxy_name: str, pattern: bytes, *, after_claim: bool = False) -> Callable[[Cluster, uuid.UUID], None]:
    """A cut that lands the moment `pattern` reaches the server: the proxy holds everything after it,
    then the link goes down too."""

    def cut(cluster: Cluster, target: uuid.UUID) -> None:
        proxy = cluster.pg_proxy if proxy_name == "postgresql" else cluster.s3_proxy
        if after_claim:
            wait_until(lambda: _events(cluster, target)[-1].type != "queued", TAKEOVER_SECONDS, "claimed")
            proxy.freeze_on(pattern)
        assert proxy.triggered.wait(TAKEOVER_SECONDS), f"{pattern!r} never went through the {proxy_name} proxy"
        cluster.namespace.cut()

    return cut


def _arm(proxy_name: str, pattern: bytes) -> Callable[[Cluster], None]:
    def arm(cluster: Cluster) -> None:
        (cluster.pg_proxy if proxy_name == "postgresql" else cluster.s3_proxy).freeze_on(pattern)

    return arm


# Kept long in the event-order scenario, so other users' jobs are seen to finish while the cut-off
# worker's transaction still holds what orders its user's events (a cluster-wide lock would stop them).
STUCK_SECONDS = 25.0

# name: (settings of the cut-off worker, arm before submitting, cut)
SCENARIOS: dict[str, tuple[dict[str, str], Callable[[Cluster], None] | None, Callable[[Cluster, uuid.UUID], None]]] = {
    "mid_render": ({}, None, _cut_mid_render),
    # The first output upload reaches S3; the rest of the uploads stay in flight.
    "during_uploads": ({}, _arm("s3", b"PUT /"), _cut_on("s3", b"PUT /")),
    # A progress write's fenced UPDATE has run (the row is locked), its answer and the commit are held;
    # with the studio's session limits PostgreSQL ends that transaction well within the lease.
    "inside_transaction": ({}, _arm("postgresql", b"progress_step=$"), _cut_on("postgresql", b"progress_step=$")),
    # The user's event counter is locked by an event write whose commit never comes.
    "holding_event_order": (
        {"db_idle_in_transaction_seconds": str(STUCK_SECONDS)},
        None,
        _cut_on("postgresql", b"INSERT INTO event_counters", after_claim=True),
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_cut_off_worker_changes_nothing_and_recovers(cluster: Cluster, scenario: str) -> None:
    settings, arm, cut = SCENARIOS[scenario]
    alice, bob = _user(cluster), _user(cluster)
    cluster.healthy.pause()
    worker = cluster.start_partitioned(**settings)
    if arm is not None:
        arm(cluster)
    target = submit(cluster.db, alice, cluster.registry, cluster.settings, **TARGET)
    try:
        wait_until(lambda: _claimed_by(cluster, target, worker), TAKEOVER_SECONDS, "the worker claims the target")
        cut(cluster, target)
        # Cut off. The healthy worker runs, and other users' and this user's other jobs keep moving.
        cluster.healthy.resume()
        others = [submit(cluster.db, bob, cluster.registry, cluster.settings, **SMALL) for _ in range(2)]
        wait_until(
            lambda: all(_succeeded(cluster, generation_id) for generation_id in others),
            TAKEOVER_SECONDS,
            "another user's jobs finish during the cut",
        )
        if scenario == "holding_event_order":
            stuck = cluster.stuck_transactions()
            assert stuck >= 1, f"the cut-off transaction should still hold its locks ({stuck} found)"
            # That user's event writes wait for PostgreSQL to end the stuck session (STUCK_SECONDS).
            wait_until(lambda: cluster.stuck_transactions() == 0, TAKEOVER_SECONDS, "the stuck session ends")
        same_user = submit(cluster.db, alice, cluster.registry, cluster.settings, **SMALL)
        wait_until(lambda: _succeeded(cluster, same_user), TAKEOVER_SECONDS, "the user's other job finishes")
        wait_until(lambda: _succeeded(cluster, target), TAKEOVER_SECONDS, "the healthy worker takes the target over")
        assert worker.process.poll() is None, "the cut-off worker died instead of waiting"
    finally:
        cluster.heal()
    _check_takeover(cluster, target, worker)

    # Healed: the cut-off worker comes back and does new work.
    cluster.healthy.pause()
    try:
        later = submit(cluster.db, alice, cluster.registry, cluster.settings, **SMALL)
        wait_until(lambda: _succeeded(cluster, later), TAKEOVER_SECONDS, "the healed worker runs new work")
        assert _claimed_by(cluster, later, worker)
    finally:
        cluster.healthy.resume()
    assert worker.stop() == 0, worker.log()[-3000:]
    if scenario == "during_uploads":
        # The held upload did land once the link healed, under the lost attempt's own key (and
        # _check_everything shows nothing unreferenced is left).
        late = cluster.s3.list_object_versions(Bucket=cluster.bucket, Prefix=f"outputs/{target}/a1/")
        assert late.get("Versions"), "the cut-off worker's upload never reached S3"
    _check_everything(cluster)


def _check_takeover(cluster: Cluster, target: uuid.UUID, worker: WorkerProcess) -> None:
    """The target succeeded once, by the second attempt; the first wrote nothing after losing its lease."""
    generation = _generation(cluster, target)
    assert generation.status == RunStatus.succeeded and generation.attempt == 2
    events = _events(cluster, target)
    assert [event.type for event in events].count("succeeded") == 1
    lost = [index for index, event in enumerate(events) if event.type == "retrying"]
    assert lost and events[lost[0]].payload["error"]["code"] == "worker_lost"
    assert all(event.attempt != 1 for event in events[lost[0] + 1 :]), "the lost attempt wrote after losing"
    assert not any(event.type == "output_stored" and event.attempt == 1 for event in events)
    started = [event for event in events if event.type == "started"]
    assert started[0].payload["worker"] == worker.worker_id
    assert started[-1].payload["worker"] == cluster.healthy.worker_id


def _check_everything(cluster: Cluster) -> None:
    with cluster.db.reading() as session:
        generations = list(session.scalars(select(Generation)))
        assets = list(session.scalars(select(Asset).where(Asset.kind == "output")))
        events = list(session.scalars(select(GenerationEvent)))
    assert all(generation.status in FINAL_STATUSES for generation in generations)
    by_generation: dict[uuid.UUID, list[Asset]] = defaultdict(list)
    for asset in assets:
        by_generation[asset.generation_id].append(asset)
    for generation in generations:
        indexes = sorted(asset.batch_index for asset in by_generation[generation.id])
        expected = list(range(generation.num_images)) if generation.status == RunStatus.succeeded else []
        assert indexes == expected, f"generation {generation.id}: outputs {indexes}"

    # Every object a success points at: one version only (never rewritten), and the bytes recorded.
    referenced = set()
    for asset in assets:
        for key in (asset.storage_key, asset.thumbnail_key):
            if key is None:
                continue  # a thumbnail is made by its first request, not by the worker
            referenced.add(key)
            versions = cluster.s3.list_object_versions(Bucket=cluster.bucket, Prefix=key).get("Versions", [])
            assert [version["Key"] for version in versions] == [key], f"{key} was written {len(versions)} times"
        body = cluster.s3.get_object(Bucket=cluster.bucket, Key=asset.storage_key)["Body"].read()
        assert (len(body), hashlib.sha256(body).hexdigest()) == (asset.bytes, asset.sha256)
    # Nothing is left that no row points at (a late writer's objects were removed).
    current = {
        item["Key"]
        for page in cluster.s3.get_paginator("list_objects_v2").paginate(Bucket=cluster.bucket)
        for item in page.get("Contents", [])
    }
    assert current == referenced, f"unreferenced objects: {sorted(current - referenced)[:5]}"

    # Events: each generation's sequences and each owner's positions run 1..n, no gaps, no repeats.
    sequences: dict[uuid.UUID, list[int]] = defaultdict(list)
    positions: dict[uuid.UUID, list[int]] = defaultdict(list)
    for event in events:
        sequences[event.generation_id].append(event.sequence)
        positions[event.owner_id].append(event.position)
    for values in [*sequences.values(), *positions.values()]:
        assert sorted(values) == list(range(1, len(values) + 1)), sorted(values)
    finals = Counter(event.generation_id for event in events if event.type in ("succeeded", "failed", "canceled"))
    assert all(count == 1 for count in finals.values())
