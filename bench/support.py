"""What several benchmarks need from the studio beyond engine.py's databases: running the queue.

Importable as `support` (with bench/ on sys.path, as the scripts put it) or as `bench.support`. It
imports only the studio itself, never the tests. tests/api/helpers.py keeps its own run_queue:
`make mutants` copies only src/ and tests/ into its sandbox, so the tests cannot import bench/."""

from __future__ import annotations

import asyncio
from typing import Any

from imagestudio.container import Container
from imagestudio.generations.worker import Worker


def run_queue(container: Container, seconds: float = 300.0, **worker_options: Any) -> None:
    """Run every queued generation to its end with a real worker (two slots, as the tests run it), then
    stop it. Raises TimeoutError when the queue is not idle within `seconds`. `worker_options` go to
    the Worker (e.g. progress_interval=0 to write every progress step)."""

    async def run() -> None:
        worker = Worker(
            db=container.db,
            storage=container.storage,
            registry=container.registry,
            language=container.language,
            settings=container.settings,
            hub=container.hub,
            concurrency=2,
            poll_interval=0.05,
            **worker_options,
        )
        await worker.start()
        try:
            await asyncio.wait_for(worker.wait_idle(), seconds)
        finally:
            await worker.stop(grace=2.0)

    asyncio.run(run())
