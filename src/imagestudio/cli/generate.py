"""`imagestudio generate PROMPT`: make images from the command line, through the real engine.

The generation is recorded like any other (owned by a local command-line user), run by a worker
inside this process, and its outputs are copied to --out.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from pathlib import Path

import click

from imagestudio.config import load_settings
from imagestudio.models import limits

CLI_USER_EMAIL = "cli@imagestudio.local"
TYPES = ("text2img", "img2img", "inpaint", "upscale", "variation")


def _parse_size(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    match = re.fullmatch(r"\s*(\d{1,5})\s*[xX]\s*(\d{1,5})\s*", value)
    if not match or int(match[1]) == 0 or int(match[2]) == 0:
        raise click.BadParameter("expected WIDTHxHEIGHT, for example 768x512")
    return int(match[1]), int(match[2])


@click.command()
@click.argument("prompt")
@click.option(
    "--n",
    "num_images",
    type=click.IntRange(limits.NUM_IMAGES_MIN, limits.NUM_IMAGES_MAX),
    default=1,
    show_default=True,
    help="Images to make.",
)
@click.option("--seed", type=click.IntRange(limits.SEED_MIN, limits.SEED_MAX), help="Seed for reproducible results.")
@click.option("--size", callback=_parse_size, help="WIDTHxHEIGHT, for example 768x512.")
@click.option("--aspect-ratio", help="Shape instead of a size, for example 16:9.")
@click.option(
    "--type", "kind", type=click.Choice(TYPES), help="Default: text2img, img2img with --init, inpaint with --mask."
)
@click.option("--init", "init_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Source image.")
@click.option("--mask", "mask_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), help="Inpaint mask.")
@click.option(
    "--strength",
    type=click.FloatRange(limits.STRENGTH_MIN, limits.STRENGTH_MAX),
    help="How far img2img may move from the source.",
)
@click.option("--steps", type=click.IntRange(limits.STEPS_MIN, limits.STEPS_MAX))
@click.option("--guidance", type=click.FloatRange(limits.GUIDANCE_MIN, limits.GUIDANCE_MAX))
@click.option("--negative", "negative_prompt", help="What to keep out of the image.")
@click.option("--upscale-factor", type=click.Choice([str(factor) for factor in limits.UPSCALE_FACTORS]))
@click.option("--provider", help="Provider name (default: the built-in renderer).")
@click.option("--model", help="Model id (default: the provider's default).")
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=Path("."), show_default=True
)
@click.option("--quiet", is_flag=True, help="No progress bar; print only the file paths.")
def generate(
    prompt: str,
    num_images: int,
    seed: int | None,
    size: tuple[int, int] | None,
    aspect_ratio: str | None,
    kind: str | None,
    init_path: Path | None,
    mask_path: Path | None,
    strength: float | None,
    steps: int | None,
    guidance: float | None,
    negative_prompt: str | None,
    upscale_factor: str | None,
    provider: str | None,
    model: str | None,
    out_dir: Path,
    quiet: bool,
) -> None:
    """Generate images for PROMPT and write them to --out."""
    from pydantic import ValidationError

    from imagestudio.bootstrap import build
    from imagestudio.generations.errors import GenerationError, InvalidGenerationRequest
    from imagestudio.generations.service import create_generation
    from imagestudio.generations.spec import GenerationSpec
    from imagestudio.schema import SchemaOutOfDate

    if kind is None:
        kind = "inpaint" if mask_path else "img2img" if init_path else "text2img"
    try:
        spec = GenerationSpec(
            type=kind,
            prompt=prompt,
            negative_prompt=negative_prompt,
            provider=provider,
            model=model,
            num_images=num_images,
            width=size[0] if size else None,
            height=size[1] if size else None,
            aspect_ratio=aspect_ratio,
            steps=steps,
            guidance=guidance,
            strength=strength,
            seed=seed,
            upscale_factor=int(upscale_factor) if upscale_factor else None,
        )
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "request"
        raise click.ClickException(f"{where}: {first['msg']}") from None
    # The engine's progress logging would fight the progress bar.
    logging.getLogger().setLevel(logging.WARNING)

    settings = load_settings()
    try:
        container = build(settings)
    except SchemaOutOfDate as error:
        raise click.ClickException(str(error)) from None
    try:
        with container.db.writing() as db:
            owner_id = _cli_user(db)
            if init_path:
                spec.source_asset_id = _upload(db, container, owner_id, init_path, "init")
            if mask_path:
                spec.mask_asset_id = _upload(db, container, owner_id, mask_path, "mask")
            generation = create_generation(
                db, owner_id=owner_id, spec=spec, registry=container.registry, settings=settings
            )
            generation_id = generation.id
        paths = asyncio.run(_run(container, generation_id, out_dir, prompt, show_progress=not quiet))
    except InvalidGenerationRequest as error:
        raise click.ClickException(f"{error.field}: {error.message}") from None
    except GenerationError as error:
        raise click.ClickException(error.message) from None
    finally:
        container.close()
    for path in paths:
        click.echo(str(path))


def _cli_user(db) -> uuid.UUID:
    from sqlalchemy import select

    from imagestudio.models import User

    user_id = db.scalar(select(User.id).where(User.email == CLI_USER_EMAIL))
    if user_id is None:
        user = User(email=CLI_USER_EMAIL, display_name="Command line")
        db.add(user)
        db.flush()
        user_id = user.id
    return user_id


def _upload(db, container, owner_id: uuid.UUID, path: Path, purpose: str) -> uuid.UUID:
    """Store a local image as an upload, through the same checks as the API's."""
    from imagestudio.assets.service import Upload, store_upload
    from imagestudio.kit.errors import ApiError
    from imagestudio.models import InputPurpose

    upload = Upload(data=path.read_bytes(), filename=path.name, purpose=InputPurpose(purpose), session_id=None)
    try:
        asset, _new = store_upload(db, container.storage, container.settings, owner_id, upload)
    except ApiError as error:
        raise click.BadParameter(f"{path}: {error.detail}", param_hint=f"--{purpose}") from None
    return asset.id


async def _run(container, generation_id: uuid.UUID, out_dir: Path, prompt: str, *, show_progress: bool) -> list[Path]:
    from imagestudio.generations.runner import EngineRunner

    runner = EngineRunner(container, concurrency=1, send_mail=False, poll_interval=0.25)
    await runner.start()
    try:
        status = await _follow(container, generation_id, show_progress)
    except asyncio.CancelledError:
        # Ctrl-C: cancel the generation rather than leave it queued.
        await asyncio.to_thread(_cancel, container, generation_id)
        raise
    finally:
        await runner.stop(grace=5.0)
    if status.status != "succeeded":
        detail = f" ({status.error_code}): {status.error_message}" if status.error_code else ""
        raise click.ClickException(f"generation {status.status}{detail}")
    return await asyncio.to_thread(_write_outputs, container, generation_id, out_dir, prompt)


async def _follow(container, generation_id: uuid.UUID, show_progress: bool):
    from imagestudio.generations.events import events_after
    from imagestudio.models import FINAL_STATUSES

    final = {str(status) for status in FINAL_STATUSES}
    cursor = 0
    with click.progressbar(length=100, label="generating", file=None if show_progress else _Null()) as bar:
        async with container.hub.subscribe_events(generation_id=generation_id) as notices:
            done = 0
            while True:
                events = await asyncio.to_thread(
                    events_after, container.db, generation_id=generation_id, after_id=cursor
                )
                for event in events:
                    cursor = event.id
                    if event.type == "progress" and event.payload.get("total"):
                        percent = int(100 * event.payload["step"] / event.payload["total"])
                        bar.update(max(0, percent - done))
                        done = max(done, percent)
                    if event.type in final:
                        bar.update(100 - done)
                        return await asyncio.to_thread(_status, container, generation_id)
                # Notices wake us at once in this process; the timeout covers workers elsewhere.
                await notices.get(0.25)


class _Null:
    def write(self, _text: str) -> None:
        pass

    def flush(self) -> None:
        pass


def _status(container, generation_id: uuid.UUID):
    from imagestudio.models import Generation

    with container.db.reading() as db:
        return db.get(Generation, generation_id)


def _cancel(container, generation_id: uuid.UUID) -> None:
    from imagestudio.generations.service import request_cancel

    with container.db.writing() as db:
        owner = _cli_user(db)
        request_cancel(db, generation_id=generation_id, owner_id=owner)


def _write_outputs(container, generation_id: uuid.UUID, out_dir: Path, prompt: str) -> list[Path]:
    from sqlalchemy import select

    from imagestudio.models import Asset

    with container.db.reading() as db:
        outputs = db.scalars(
            select(Asset).where(Asset.generation_id == generation_id).order_by(Asset.batch_index)
        ).all()
    out_dir.mkdir(parents=True, exist_ok=True)
    slug = "-".join(re.findall(r"[a-z0-9]+", prompt.lower()))[:48].strip("-") or "image"
    paths = []
    for asset in outputs:
        path = out_dir / f"{slug}-{str(generation_id)[-8:]}-{asset.batch_index}.png"
        path.write_bytes(container.storage.get(asset.storage_key))
        paths.append(path)
    return paths
