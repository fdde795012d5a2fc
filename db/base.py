"""Declarative base for shard tables. Models carry no schema: each shard's engine maps
``None`` to the shard's schema, and migrations create the same tables in every shard."""

from __future__ import annotations

from sqlalchemy import BigInteger, text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


def snowflake_pk() -> Mapped[int]:
    """An id made by the shard's ``next_id()``, so its bits name the shard it lives in."""
    return mapped_column(BigInteger, primary_key=True, server_default=text("next_id()"))
