"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, through the real migrations.

PostgreSQL tests get a database of their own, created for this test run and dropped afterwards, so
several runs can share one server. Set IMAGESTUDIO_TEST_POSTGRES_URL to point elsewhere.
With CI=true a missing PostgreSQL fails the run instead of skipping.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text

from imagestudio import migrate, notify
from imagestudio.db import Database, make_database
from imagestudio.models import metadata
from imagestudio.notify import NotificationHub

ADMIN_URL = os.environ.get("IMAGESTUDIO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
CI_TRUE = ("1", "true", "yes")


def in_ci() -> bool:
    """The one reading of the CI variable for every conftest and test: CI=true (or 1, yes) means
    services are required and nothing may skip for want of one."""
    return os.environ.get("CI", "").strip().lower() in CI_TRUE


IN_CI = in_ci()
BOTH_DATABASES = ("sqlite", "postgresql")


def _databases() -> tuple[str, ...]:
    """Both databases, always in CI. `make mutants` narrows a run to SQLite with
    IMAGESTUDIO_TEST_DATABASES=sqlite: each mutant's tests then start no PostgreSQL database."""
    chosen = tuple(name.strip() for name in os.environ.get("IMAGESTUDIO_TEST_DATABASES", "").split(",") if name.strip())
    if not chosen or IN_CI:
        return BOTH_DATABASES
    unknown = set(chosen) - set(BOTH_DATABASES)
    if unknown:
        raise pytest.UsageError(f"IMAGESTUDIO_TEST_DATABASES names unknown databases: {sorted(unknown)}")
    return chosen


DATABASES = _databases()


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def _sqlalchemy(url: str) -> str:
    return "postgresql+psycopg://" + _libpq(url).removeprefix("postgresql://")


def require_service(available: bool, reason: str) -> None:
    """Skip outside CI; in CI a missing service is a failure."""
    if available:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: services are required)")
    pytest.skip(reason)


DIFFUSERS_EXTRA = ("torch", "diffusers", "transformers")


def skip_module_without(modules: tuple[str, ...], hint: str = "") -> None:
    """Skips the calling test module outside CI when an optional extra is not installed; in CI the
    extra is always installed (make setup-test), so its import then fails the run instead."""
    import importlib.util

    missing = [name for name in modules if importlib.util.find_spec(name) is None]
    if missing and not in_ci():
        pytest.skip(f"the extra is not installed (missing {', '.join(missing)}){hint}", allow_module_level=True)


class PostgresServer:
    """Creates and drops throwaway databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = _libpq(admin_url)
        self.created: list[str] = []
        self.error: str | None = None
        try:
            with psycopg.connect(self.admin_url, connect_timeout=3):
                pass
        except psycopg.Error as error:
            self.error = f"PostgreSQL not reachable at {self.admin_url}: {error.__class__.__name__}"

    def create_database(self) -> str:
        name = f"imagestudio_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        base = self.admin_url.rsplit("/", 1)[0]
        return _sqlalchemy(f"{base}/{name}")

    def create_migrated_database(self) -> str:
        """A new database the real migrations made, copied from a template they made once (CREATE
        DATABASE ... TEMPLATE takes a fraction of a second where migrating takes seconds)."""
        require_service(self.error is None, self.error or "")
        template = f"imagestudio_template_{_migrations_digest()}"
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (template,)).fetchone() is None:
                # Migrated under a name of its own, then renamed: another process never copies half of it.
                partial = f"{template}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
                conn.execute(f'CREATE DATABASE "{partial}"')
                migrate.upgrade(_sqlalchemy(f"{self.admin_url.rsplit('/', 1)[0]}/{partial}"))
                try:
                    conn.execute(f'ALTER DATABASE "{partial}" RENAME TO "{template}"')
                except psycopg.errors.DuplicateDatabase:
                    conn.execute(f'DROP DATABASE "{partial}"')
            name = f"imagestudio_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.created.append(name)
        return _sqlalchemy(f"{self.admin_url.rsplit('/', 1)[0]}/{name}")

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.created:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer(ADMIN_URL)
    yield server
    if server.error is None:
        server.drop_all()


@pytest.fixture
def fresh_database(tmp_path: Path, postgres_server: PostgresServer):
    """A factory of empty databases (no tables): fresh_database("sqlite") or fresh_database("postgresql")."""

    def make(kind: str) -> str:
        if kind == "sqlite":
            return f"sqlite:///{tmp_path / f'fresh-{uuid.uuid4().hex[:6]}.db'}"
        require_service(postgres_server.error is None, postgres_server.error or "")
        return postgres_server.create_database()

    return make


def make_migrated_database(kind: str, folder: Path, postgres_server: PostgresServer) -> str:
    """A new database of `kind` the real migrations made (copied from a migrated template)."""
    if kind == "sqlite":
        path = folder / f"migrated-{uuid.uuid4().hex[:6]}.db"
        shutil.copyfile(_migrated_sqlite_template(), path)
        return f"sqlite:///{path}"
    return postgres_server.create_migrated_database()


@pytest.fixture
def migrated_database(tmp_path: Path, postgres_server: PostgresServer):
    """A factory of new migrated databases: migrated_database("sqlite") or migrated_database("postgresql")."""
    return lambda kind: make_migrated_database(kind, tmp_path, postgres_server)


@pytest.fixture(scope="session", params=DATABASES)
def database_kind(request: pytest.FixtureRequest) -> str:
    return request.param


def _migrations_digest() -> str:
    """Names the templates below: they are reused while the migrations' text stays the same."""
    sources = Path(migrate.__file__).parent / "migrations"
    digest = hashlib.sha256()
    for source in sorted([*sources.glob("*.py"), *sources.glob("versions/*.py")]):
        digest.update(source.name.encode() + b"\0" + source.read_bytes())
    return digest.hexdigest()[:16]


def _migrated_sqlite_template() -> Path:
    """A SQLite file the real migrations made, shared by the test processes of a run and by later runs
    while the migrations stay the same: copying it costs a millisecond where migrating costs seconds,
    which every test process and every mutant of `make mutants` would pay."""
    folder = Path(tempfile.gettempdir()) / "imagestudio-test-templates"
    folder.mkdir(exist_ok=True)
    template = folder / f"sqlite-{_migrations_digest()}.db"
    if not template.exists():
        # Made under a name of its own, then renamed: a concurrent process never sees half a file.
        partial = folder / f"{template.stem}-{os.getpid()}-{uuid.uuid4().hex[:6]}.partial"
        migrate.upgrade(f"sqlite:///{partial}")
        os.replace(partial, template)
    return template


@pytest.fixture(scope="session")
def migrated_url(database_kind: str, tmp_path_factory: pytest.TempPathFactory, postgres_server: PostgresServer) -> str:
    """One migrated database per kind for the whole run; tests get it emptied (see `db`)."""
    return make_migrated_database(database_kind, tmp_path_factory.mktemp("sqlite"), postgres_server)


@pytest.fixture(scope="session")
def session_database(migrated_url: str) -> Iterator[Database]:
    database = make_database(migrated_url)
    yield database
    database.dispose()


def _empty_tables(database: Database) -> None:
    """Deletes every row, children first. On PostgreSQL plain DELETEs of a test's few rows take
    milliseconds where TRUNCATE of every table takes a quarter to over a second (it replaces each
    table's files), which every one of about 1,500 tests paid; sequences start again as TRUNCATE's
    RESTART IDENTITY did."""
    names = [table.name for table in reversed(metadata.sorted_tables)]
    with database.engine.begin() as conn:
        conn.execute(text("UPDATE sessions SET thumbnail_asset_id = NULL"))
        if database.dialect == "postgresql":
            conn.execute(text("; ".join(f"DELETE FROM {name}" for name in names)))
            for (sequence,) in conn.execute(text("SELECT schemaname || '.' || sequencename FROM pg_sequences")):
                conn.execute(text("SELECT setval(:sequence, 1, false)"), {"sequence": sequence})
        else:
            for name in names:
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def db(session_database: Database) -> Iterator[Database]:
    """The test database, empty at the start of each test."""
    _empty_tables(session_database)
    yield session_database


@pytest.fixture
def hub(db: Database) -> Iterator[NotificationHub]:
    """A notification hub attached to the test database for this test, as the bootstrap attaches
    the Container's."""
    hub = NotificationHub()
    detach = notify.attach(db, hub)
    yield hub
    detach()


def runs_everything(markexpr: str = "") -> bool:
    """The default run leaves out the tests marked slow; CI (and `make test-all`, or any `-m`
    expression, which then decides alone) runs them."""
    return IN_CI or os.environ.get("IMAGESTUDIO_TEST_ALL", "").strip().lower() in CI_TRUE or bool(markexpr)


def is_slow(item: pytest.Item) -> bool:
    """Marked slow, or a browser flow on PostgreSQL: the pages are the same on both databases and
    the API tests hold the database differences, so the default run drives the browser on SQLite."""
    if item.get_closest_marker("slow"):
        return True
    params = getattr(getattr(item, "callspec", None), "params", {})
    drives_a_browser = item.get_closest_marker("browser") is not None or "browser" in getattr(item, "fixturenames", ())
    return drives_a_browser and "postgresql" in params.values()


def pytest_report_header(config: pytest.Config) -> str:
    if config.option.markexpr:
        return f"imagestudio: the tests chosen by -m {config.option.markexpr!r}"
    if runs_everything():
        return "imagestudio: every test, slow ones included"
    return "imagestudio: the default run; the slow tests (and browser flows on PostgreSQL) run in CI and make test-all"


@pytest.hookimpl(tryfirst=True)  # before `-m` filters: PostgreSQL browser flows get their slow mark here
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked postgresql_only (sqlite_only) are not collected for SQLite (PostgreSQL): deselected,
    never skipped. Outside CI the slow ones are deselected too (see runs_everything)."""
    everything = runs_everything(config.option.markexpr)
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        kind = params.get("database_kind")
        other_kind = (item.get_closest_marker("postgresql_only") and kind == "sqlite") or (
            item.get_closest_marker("sqlite_only") and kind == "postgresql"
        )
        slow = is_slow(item)
        if other_kind or (slow and not everything):
            dropped.append(item)
            continue
        if slow:
            item.add_marker(pytest.mark.slow)
        kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
    if _mutant_under_test() is not None:
        _fastest_first(items)


def _mutant_under_test() -> str | None:
    """The mutant `make mutants` is running the tests against; None in an ordinary run."""
    name = os.environ.get("MUTANT_UNDER_TEST", "")
    return name if "__mutmut_" in name else None


def _fastest_first(items: list[pytest.Item]) -> None:
    """Under `make mutants` a mutant's tests run fastest first: the run stops at the first failure
    (`-x`), so a mutant that a quick unit test kills never waits for the slow ones. The durations are
    those mutmut measured on the unmutated code (mutmut-stats.json in the folder it runs the tests in)."""
    try:
        durations: dict[str, float] = json.loads(Path("mutmut-stats.json").read_text())["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return
    items.sort(key=lambda item: durations.get(item.nodeid, float("inf")))

