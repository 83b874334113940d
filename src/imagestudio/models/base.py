"""Declarative base with a naming convention so every constraint has a stable, predictable name."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, Integer, MetaData, String, Uuid
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from imagestudio.models.types import UTCDateTime, new_id, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), uuid.UUID: Uuid()}


def id_column() -> Mapped[uuid.UUID]:
    return mapped_column(Uuid(), primary_key=True, default=new_id)


def created_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow)


def updated_column() -> Mapped[datetime]:
    return mapped_column(UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow)


class StoredImage:
    """The columns of an image file in storage: its type, its size in bytes and pixels, its checksum and
    the seed that made it (if one did). `stored_image_checks()` holds their constraints."""

    mime_type: Mapped[str] = mapped_column(String(64), nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    width: Mapped[int] = mapped_column(Integer, nullable=False)
    height: Mapped[int] = mapped_column(Integer, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    seed: Mapped[int | None] = mapped_column(BigInteger)


def stored_image_checks() -> tuple[CheckConstraint, ...]:
    return (
        CheckConstraint("bytes >= 0", name="bytes"),
        CheckConstraint("width > 0 AND height > 0", name="size_positive"),
        CheckConstraint("seed IS NULL OR seed >= 0", name="seed"),
    )
