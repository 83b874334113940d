"""`imagestudio generate` and the workers `imagestudio serve` starts with the app."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from imagestudio.app import create_app
from imagestudio.assets.images import encode_png, read_png_metadata
from imagestudio.cli.generate import CLI_USER_EMAIL
from imagestudio.cli.main import cli
from imagestudio.container import Container
from imagestudio.db import Database
from imagestudio.models import Generation, User
from tests.generations.conftest import load, submit


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name in ("IMAGESTUDIO_DATABASE_URL", "IMAGESTUDIO_STORAGE_URL"):
        monkeypatch.delenv(name, raising=False)
    return {"IMAGESTUDIO_DATA_DIR": str(tmp_path / "data")}


def run(env: dict[str, str], *args: str):
    return CliRunner().invoke(cli, ["generate", *args], env=env, catch_exceptions=False)


def cli_generations(data_dir: Path) -> list[Generation]:
    engine = create_engine(f"sqlite:///{data_dir / 'imagestudio.db'}")
    try:
        with Session(engine) as session:
            return list(
                session.scalars(
                    select(Generation).join(User, User.id == Generation.owner_id).where(User.email == CLI_USER_EMAIL)
                )
            )
    finally:
        engine.dispose()


def test_generate_writes_the_images_and_records_the_generation(env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(
        env, "a lighthouse at dusk", "--n", "2", "--seed", "7", "--size", "128x96", "--out", str(out), "--quiet"
    )
    assert result.exit_code == 0, result.output
    paths = [Path(line) for line in result.output.splitlines()]
    assert len(paths) == 2 and all(path.parent == out for path in paths)
    seeds = set()
    for path in paths:
        data = path.read_bytes()
        assert Image.open(io.BytesIO(data)).size == (128, 96)
        metadata = read_png_metadata(data)
        assert metadata["prompt"] == "a lighthouse at dusk"
        seeds.add(metadata["seed"])
    assert seeds == {"7", "8"}
    [generation] = cli_generations(tmp_path / "data")
    assert (generation.status, generation.num_images, generation.seed) == ("succeeded", 2, 7)


def test_generate_edits_an_input_image(env, tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    source.write_bytes(encode_png(Image.new("RGB", (160, 120), (20, 120, 220)), {}))
    out = tmp_path / "out"
    result = run(env, "make it stormy", "--init", str(source), "--strength", "0.6", "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    [path] = [Path(line) for line in result.output.splitlines()]
    assert Image.open(path).size == (160, 120)
    [generation] = cli_generations(tmp_path / "data")
    assert (generation.type, generation.strength) == ("img2img", 0.6)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--size", "12"], "expected WIDTHxHEIGHT"),
        (["x", "--size", "50x50"], "width: Input should be greater than or equal to 64"),
        (["x", "--size", "2056x64"], "width: width must be between 64 and 2048"),
        (["x", "--steps", "151"], "151 is not in the range 1<=x<=150"),
        (["x", "--type", "img2img"], "source_asset_id: img2img needs a source image"),
        (["x", "--provider", "nope"], "provider: unknown provider 'nope'"),
        (["x", "--aspect-ratio", "1:0"], "aspect_ratio"),
        (["x", "--n", "11"], "11 is not in the range 1<=x<=10"),
    ],
)
def test_bad_arguments_get_a_one_line_error(env, args: list[str], message: str) -> None:
    result = run(env, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_file_that_is_not_an_image_is_refused(env, tmp_path: Path) -> None:
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    result = run(env, "x", "--init", str(fake))
    assert result.exit_code != 0 and "not a recognised image" in result.output
    assert "Traceback" not in result.output


def test_generate_uses_a_configured_postgresql(env, tmp_path: Path, migrated_database) -> None:
    url = migrated_database("postgresql")
    env = {**env, "IMAGESTUDIO_DATABASE_URL": url}
    result = run(env, "a quiet harbour", "--out", str(tmp_path / "out"), "--quiet")
    assert result.exit_code == 0, result.output
    assert Path(result.output.strip()).exists()


def test_the_server_runs_generations_with_its_own_workers(
    db: Database, hub, registry, settings, storage, user_id
) -> None:
    settings.workers = 2
    container = Container(settings=settings, db=db, storage=storage, registry=registry, hub=hub)
    with TestClient(create_app(container=container)) as client:
        assert client.get("/healthz").status_code == 200
        generation_id = submit(db, user_id, registry, settings)
        deadline = time.monotonic() + 10
        while load(db, generation_id).status != "succeeded":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert client.app.state.engine.worker.concurrency == 2
    assert client.app.state.engine.worker is None  # stopped with the app


def test_workers_zero_leaves_the_queue_alone(db: Database, registry, settings, storage, user_id) -> None:
    settings.workers = 0
    container = Container(settings=settings, db=db, storage=storage, registry=registry)
    with TestClient(create_app(container=container)) as client:
        assert client.app.state.engine.worker is None  # no worker was started at all
        generation_id = submit(db, user_id, registry, settings)
        time.sleep(0.3)
        assert load(db, generation_id).status == "queued"
