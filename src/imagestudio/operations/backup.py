"""Backup and restore: one archive holding the database and every stored object, with checksums.

The database goes in as a logical export (one JSON Lines file per table) read inside a single
snapshot transaction — a deferred read transaction under WAL on SQLite, REPEATABLE READ on
PostgreSQL — so a backup taken while generations run is consistent, and the same archive restores
into either database: a studio moves from SQLite to PostgreSQL by backing up and restoring.

Archive layout (a zip file):
    manifest.json          format, versions, schema revision, per-file checksums and row counts
    tables/<table>.jsonl   one JSON object per row
    objects/<key>          each stored object under its storage key

Restore verifies every checksum before it writes anything, loads the rows at the backup's schema
revision (migrating an empty database to it first), then migrates to the newest schema.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import uuid
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Connection, DateTime, Engine, Numeric, Table, Uuid, func, inspect, select, text, update

from imagestudio import __version__, migrate
from imagestudio.models import metadata
from imagestudio.models.types import UTCDateTime, utcnow
from imagestudio.storage.base import ObjectNotFound, Storage
from imagestudio.storage.local import TEMP_PREFIX

FORMAT = "imagestudio-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """The archive cannot be restored as asked (a bad checksum, a non-empty target, a bad format)."""


@dataclass
class Manifest:
    created_at: str
    studio_version: str
    schema_revision: str | None
    database: str
    tables: dict[str, dict[str, Any]] = field(default_factory=dict)
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)
    missing_objects: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        body = {"format": FORMAT, "format_version": FORMAT_VERSION, **self.__dict__}
        return json.dumps(body, indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        body = json.loads(raw)
        if body.get("format") != FORMAT or body.get("format_version") != FORMAT_VERSION:
            raise BackupError("not an imagestudio backup archive (or one of a newer format)")
        body.pop("format")
        body.pop("format_version")
        return cls(**body)


# ---- values -------------------------------------------------------------------------------------


def _to_json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | memoryview):
        return {"$base64": base64.b64encode(bytes(value)).decode()}
    return value


def _from_json(table: Table, name: str, value: Any) -> Any:
    if value is None or name not in table.c:
        return value
    column_type = table.c[name].type
    if isinstance(value, dict) and set(value) == {"$base64"}:
        return base64.b64decode(value["$base64"])
    if isinstance(column_type, Uuid):
        return uuid.UUID(value)
    if isinstance(column_type, UTCDateTime | DateTime):
        return datetime.fromisoformat(value)
    if isinstance(column_type, Numeric) and isinstance(value, str):
        return Decimal(value)
    return value


def _tables() -> list[Table]:
    return list(metadata.sorted_tables)


def _deferred_columns(table: Table) -> list[str]:
    """Foreign keys that close a cycle (use_alter): loaded after every table, by UPDATE."""
    return [fk.parent.name for fk in table.foreign_keys if fk.use_alter]


# ---- backup -------------------------------------------------------------------------------------


def _hashing_writer(archive: zipfile.ZipFile, name: str, compress: bool) -> tuple[IO[bytes], Any]:
    info = zipfile.ZipInfo(name, date_time=utcnow().timetuple()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    return archive.open(info, "w", force_zip64=True), hashlib.sha256()


def _snapshot(engine: Engine) -> Connection:
    connection = engine.connect()
    if engine.dialect.name == "postgresql":
        connection = connection.execution_options(isolation_level="REPEATABLE READ")
    connection.begin()
    return connection


def _write_tables(connection: Connection, archive: zipfile.ZipFile, manifest: Manifest) -> set[str]:
    """Every table's rows, from the one snapshot; answers the storage keys the rows refer to."""
    referenced: set[str] = set()
    for table in _tables():
        stream, digest = _hashing_writer(archive, f"tables/{table.name}.jsonl", compress=True)
        rows = 0
        with stream:
            for row in connection.execute(select(table)).mappings():
                line = (json.dumps({k: _to_json(v) for k, v in row.items()}, sort_keys=True) + "\n").encode()
                stream.write(line)
                digest.update(line)
                rows += 1
                if table.name == "assets":
                    referenced.update(key for key in (row["storage_key"], row["thumbnail_key"]) if key)
        manifest.tables[table.name] = {"rows": rows, "sha256": digest.hexdigest()}
    return referenced


def _write_objects(storage: Storage, archive: zipfile.ZipFile, manifest: Manifest, referenced: set[str]) -> None:
    keys = {key for key in storage.list() if TEMP_PREFIX not in key}
    for key in sorted(keys | referenced):
        stream, digest = _hashing_writer(archive, f"objects/{key}", compress=False)
        size = 0
        try:
            with stream:
                for chunk in storage.open(key, _CHUNK):
                    stream.write(chunk)
                    digest.update(chunk)
                    size += len(chunk)
        except ObjectNotFound:
            # Deleted between the snapshot and now (its row is gone too), or lost before the backup.
            manifest.missing_objects.append(key)
            continue
        manifest.objects[key] = {"sha256": digest.hexdigest(), "bytes": size}


def write_backup(
    engine: Engine, storage: Storage, destination: Path, progress: Callable[[str], None] = lambda _: None
) -> Manifest:
    """Write a consistent archive of the database and the storage to `destination`."""
    manifest = Manifest(
        created_at=utcnow().isoformat(),
        studio_version=__version__,
        schema_revision=migrate.current_revision(engine),
        database=engine.dialect.name,
    )
    temporary = destination.with_name(destination.name + ".partial")
    with zipfile.ZipFile(temporary, "w", allowZip64=True) as archive:
        connection = _snapshot(engine)
        try:
            referenced = _write_tables(connection, archive, manifest)
        finally:
            connection.rollback()
            connection.close()
        progress(f"{sum(t['rows'] for t in manifest.tables.values())} rows from {len(manifest.tables)} tables")
        _write_objects(storage, archive, manifest, referenced)
        progress(f"{len(manifest.objects)} objects, {len(manifest.missing_objects)} missing")
        archive.writestr(MANIFEST, manifest.to_json())
    temporary.replace(destination)
    return manifest


# ---- restore ------------------------------------------------------------------------------------


def read_manifest(archive: zipfile.ZipFile) -> Manifest:
    try:
        return Manifest.from_json(archive.read(MANIFEST))
    except KeyError:
        raise BackupError("the archive has no manifest.json") from None


def _sha256(archive: zipfile.ZipFile, name: str) -> str:
    digest = hashlib.sha256()
    with archive.open(name) as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(archive: zipfile.ZipFile, manifest: Manifest) -> None:
    """Every table file and object matches its checksum; raises BackupError naming the first that does not."""
    expected = {f"tables/{name}.jsonl": entry["sha256"] for name, entry in manifest.tables.items()}
    expected.update({f"objects/{key}": entry["sha256"] for key, entry in manifest.objects.items()})
    present = set(archive.namelist())
    for name, checksum in expected.items():
        if name not in present:
            raise BackupError(f"{name} is listed in the manifest but missing from the archive")
        if _sha256(archive, name) != checksum:
            raise BackupError(f"{name} does not match its checksum: the archive is damaged")


def is_empty(engine: Engine) -> bool:
    """No table of ours holds a row (a database without our tables is empty too)."""
    existing = set(inspect(engine).get_table_names())
    with engine.connect() as connection:
        for table in _tables():
            if table.name in existing and connection.scalar(select(func.count()).select_from(table)):
                return False
    return True


def _rows(archive: zipfile.ZipFile, table: Table) -> Iterator[dict[str, Any]]:
    with archive.open(f"tables/{table.name}.jsonl") as stream:
        for line in stream:
            raw = json.loads(line)
            yield {name: _from_json(table, name, value) for name, value in raw.items()}


def _load_tables(connection: Connection, archive: zipfile.ZipFile, manifest: Manifest) -> None:
    deferred: list[tuple[Table, dict[str, Any]]] = []
    for table in _tables():
        if table.name not in manifest.tables:
            continue
        late = _deferred_columns(table)
        batch: list[dict[str, Any]] = []
        for row in _rows(archive, table):
            row = {name: value for name, value in row.items() if name in table.c}
            if late and any(row.get(name) is not None for name in late):
                deferred.append((table, row))
                row = {**row, **{name: None for name in late}}
            batch.append(row)
            if len(batch) >= 500:
                connection.execute(table.insert(), batch)
                batch = []
        if batch:
            connection.execute(table.insert(), batch)
    for table, row in deferred:
        keys = [column for column in table.primary_key.columns]
        condition = [column == row[column.name] for column in keys]
        values = {name: row[name] for name in _deferred_columns(table)}
        connection.execute(update(table).where(*condition).values(**values))


def _reset_sequences(connection: Connection) -> None:
    """PostgreSQL hands out identity values from sequences that a bulk load with ids does not move."""
    if connection.dialect.name != "postgresql":
        return
    for table in _tables():
        for column in table.primary_key.columns:
            if column.autoincrement is True:
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', '{column.name}'), "
                        f"COALESCE((SELECT MAX({column.name}) FROM {table.name}), 0) + 1, false)"
                    )
                )


def _clear(engine: Engine) -> None:
    migrate.downgrade(engine.url.render_as_string(hide_password=False), "base")


def _content_type(key: str) -> str:
    return mimetypes.guess_type(key)[0] or "application/octet-stream"


def restore_backup(
    source: Path,
    engine: Engine,
    storage: Storage,
    *,
    replace: bool = False,
    progress: Callable[[str], None] = lambda _: None,
) -> Manifest:
    """Restore `source` into the database behind `engine` and into `storage`.

    Refuses a database that holds data unless `replace` (which removes everything in it first)."""
    url = engine.url.render_as_string(hide_password=False)
    with zipfile.ZipFile(source) as archive:
        manifest = read_manifest(archive)
        verify(archive, manifest)
        progress(f"verified {len(manifest.tables)} tables and {len(manifest.objects)} objects")
        if not is_empty(engine) and not replace:
            raise BackupError("the database already holds data; restore into an empty one or pass --replace")
        # Start from no tables at all, so the rows load at exactly the backup's schema revision.
        _clear(engine)
        migrate.upgrade(url, manifest.schema_revision or "head")
        with engine.begin() as connection:
            _load_tables(connection, archive, manifest)
            _reset_sequences(connection)
        migrate.upgrade(url, "head")
        rows = sum(entry["rows"] for entry in manifest.tables.values())
        progress(f"loaded {rows} rows")
        for key in manifest.objects:
            storage.put(key, archive.read(f"objects/{key}"), _content_type(key))
        progress(f"restored {len(manifest.objects)} objects")
    return manifest
