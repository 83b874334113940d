"""`imagestudio worker`: a process that only runs generations (scale-out, GPU boxes).

SIGTERM or SIGINT stops it gracefully: no new claims, in-flight generations get --grace seconds to
finish, and whatever is still running is handed back to the queue without spending an attempt.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import click

from imagestudio.config import load_settings


@click.command()
@click.option(
    "--concurrency",
    type=click.IntRange(1, 64),
    default=None,
    help="Generations run at once (default: IMAGESTUDIO_WORKERS, at least 1).",
)
@click.option(
    "--grace", type=click.FloatRange(0, 3600), default=20.0, show_default=True, help="Seconds to finish work on stop."
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    help="Serve this worker's Prometheus metrics (pickup, durations, failures, heartbeats) on this port.",
)
@click.option(
    "--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics port listens on."
)
@click.option("--poll-interval", type=click.FloatRange(0.001, 60), default=1.0, hidden=True)
@click.option("--backoff-base", type=click.FloatRange(0.01, 600), default=None, hidden=True)
def worker(
    concurrency: int | None,
    grace: float,
    metrics_port: int | None,
    metrics_host: str,
    poll_interval: float,
    backoff_base: float | None,
) -> None:
    """Run generations from the queue until stopped."""
    from imagestudio.bootstrap import ConfigurationError, build
    from imagestudio.schema import SchemaOutOfDate

    settings = load_settings()
    try:
        container = build(settings)
    except (SchemaOutOfDate, ConfigurationError) as error:
        raise click.ClickException(str(error)) from None
    if metrics_port is not None:
        from prometheus_client import start_http_server

        from imagestudio.kit.metrics import REGISTRY

        start_http_server(metrics_port, addr=metrics_host, registry=REGISTRY)
    options: dict = {"poll_interval": poll_interval}
    if backoff_base is not None:
        options["backoff_base"] = backoff_base
    try:
        asyncio.run(_run(container, concurrency or max(1, settings.workers), grace, options))
    finally:
        container.close()


async def _run(container, concurrency: int, grace: float, options: dict) -> None:
    from imagestudio.generations.runner import EngineRunner
    from imagestudio.providers.refresh import ModelRefresher
    from imagestudio.uicode.jobs import install as install_ui_jobs

    install_ui_jobs()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = EngineRunner(container, concurrency=concurrency, **options)
    await runner.start()
    refresher = ModelRefresher(container.registry, container.db, interval=container.settings.provider_refresh_seconds)
    refresher.start()
    assert runner.worker is not None
    click.echo(f"imagestudio worker {runner.worker.worker_id} ready (concurrency {concurrency})")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        click.echo("stopping: finishing in-flight generations")
        await refresher.stop()
        await runner.stop(grace)
        await container.registry.aclose()
