"""Declarative base for shard tables. Models carry no schema: each shard's engine maps
``None`` to the shard's schema, and migrations create the same tables in every shard."""

from __future__ import annotations

import importlib

from sqlalchemy import BigInteger, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def snowflake_pk() -> Mapped[int]:
    """An id made by the shard's ``next_id()``, so its bits name the shard it lives in."""
    return mapped_column(BigInteger, primary_key=True, server_default=text("next_id()"))


def tables_of(package: str) -> tuple[str, ...]:
    """The tables of the models in ``<package>.models`` (``db/<feature>/models.py``): a
    feature declares its tables by this, without handling ORM models above ``db/``."""
    module = importlib.import_module(f"{package}.models")
    return tuple(
        sorted(
            str(mapper.persist_selectable.name)  # type: ignore[attr-defined]
            for mapper in Base.registry.mappers
            if mapper.class_.__module__ == module.__name__
        )
    )
