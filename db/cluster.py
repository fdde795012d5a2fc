"""Cluster-wide values kept in the global schema on database 0, shared by every process."""

from __future__ import annotations

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from db.shards import to_sqlalchemy_url

GLOBAL_SCHEMA = "aperture_global"
_SECRET_KEY = "secret_key"


def cluster_secret(database_url: str) -> str:
    """The secret that cursors are sealed with: made once, by whichever process asks
    first, so every API process (and every restart) agrees without configuration.
    gen_random_uuid() draws from PostgreSQL's strong random source; two give 244 bits."""
    engine = create_engine(to_sqlalchemy_url(database_url), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    f"INSERT INTO {GLOBAL_SCHEMA}.cluster_settings (key, value) "
                    "VALUES (:key, replace(gen_random_uuid()::text || "
                    "gen_random_uuid()::text, '-', '')) ON CONFLICT (key) DO NOTHING"
                ),
                {"key": _SECRET_KEY},
            )
            value = connection.execute(
                text(f"SELECT value FROM {GLOBAL_SCHEMA}.cluster_settings WHERE key = :key"),
                {"key": _SECRET_KEY},
            ).scalar_one()
    finally:
        engine.dispose()
    return str(value)
