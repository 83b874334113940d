"""`imagestudio serve`: the web server (API, pages and, by default, in-process workers)."""

from __future__ import annotations

import click

from imagestudio.config import load_settings


@click.command()
@click.option("--host", default=None, help="Address to listen on (IMAGESTUDIO_HOST, default 127.0.0.1).")
@click.option("--port", default=None, type=click.IntRange(1, 65535), help="Port (IMAGESTUDIO_PORT, default 8000).")
@click.option("--workers", default=None, type=click.IntRange(0, 64), help="In-process generation workers.")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Start the studio."""
    # Imported here so `imagestudio db ...` starts without loading the web stack.
    import uvicorn

    from imagestudio.app import create_app
    from imagestudio.bootstrap import build
    from imagestudio.schema import SchemaOutOfDate

    overrides = {k: v for k, v in {"host": host, "port": port, "workers": workers}.items() if v is not None}
    settings = load_settings(**overrides)
    try:
        container = build(settings)
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    app = create_app(container=container)
    click.echo(f"imagestudio listening on http://{settings.host}:{settings.port}")
    try:
        uvicorn.run(
            app,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
            # Our logging configuration (text or JSON, with request ids) formats uvicorn's lines too.
            log_config=None,
            proxy_headers=True,
            # One setting decides which proxies are believed, for uvicorn and for the API alike.
            forwarded_allow_ips=settings.trusted_proxies,
        )
    finally:
        container.close()
