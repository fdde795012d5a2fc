"""Runs Alembic once per logical shard schema on every physical database.

Follows Alembic's "schema-level multi tenancy" recipe: models carry no schema, and each
shard is migrated with ``search_path`` set to its schema and its own version table, so a
revision is ordinary Alembic code that reaches every shard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.pool import NullPool

from db.cluster import GLOBAL_SCHEMA
from db.runtime import resolve_shard_map
from db.shards import ShardMap, shard_schema, to_sqlalchemy_url
from infra.settings import ConfigurationError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Serialises concurrent `migrate` runs (serve and worker starting together).
MIGRATION_LOCK_KEY = 0x41504552  # "APER"


def alembic_config(lineage: str, *, script_location: Path | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"), ini_section=lineage)
    location = script_location or PROJECT_ROOT / "migrations" / lineage
    config.set_main_option("script_location", str(location))
    return config


@contextmanager
def _locked_connection(dsn: str) -> Iterator[Connection]:
    engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            connection.commit()
            try:
                yield connection
            finally:
                connection.rollback()
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                connection.commit()
    finally:
        engine.dispose()


def _shard_map_from(config: Config) -> ShardMap:
    shard_map = config.attributes.get("shard_map")
    if shard_map is None:
        # Plain `alembic` on the command line: resolve servers the way `aperture` does.
        shard_map = resolve_shard_map()
        config.attributes["shard_map"] = shard_map
    assert isinstance(shard_map, ShardMap)
    return shard_map


def _migrate_schema(context: EnvironmentContext, connection: Connection, schema: str) -> None:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET search_path TO "{schema}"'))
    # SQLAlchemy 2 autobegins; the search_path must be committed before Alembic's own
    # transaction starts or the version table lands in the wrong schema.
    connection.commit()
    context.configure(
        connection=connection,
        target_metadata=None,
        version_table_schema=schema,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.execute(text("RESET search_path"))
    connection.commit()


def run_shard_lineage(context: EnvironmentContext) -> None:
    config = context.config
    shard_map = _shard_map_from(config)
    only_shards: set[int] | None = config.attributes.get("only_shards")
    for database, dsn in enumerate(shard_map.database_urls):
        with _locked_connection(dsn) as connection:
            for shard in shard_map.shards_on(database):
                if only_shards is not None and shard not in only_shards:
                    continue
                config.attributes["shard"] = shard
                _migrate_schema(context, connection, shard_schema(shard))


def run_global_lineage(context: EnvironmentContext) -> None:
    shard_map = _shard_map_from(context.config)
    with _locked_connection(shard_map.database_urls[0]) as connection:
        _migrate_schema(context, connection, GLOBAL_SCHEMA)


def current_shard() -> int:
    """The logical shard a shard revision is running on (for DDL that embeds it)."""
    shard: Any = context.config.attributes["shard"]
    return int(shard)


def migrate(
    shard_map: ShardMap,
    *,
    shards_script_location: Path | None = None,
    revision: str = "heads",
) -> None:
    """Bring the global schema and every shard to ``revision``. Safe to run repeatedly."""
    global_config = alembic_config("global")
    global_config.attributes["shard_map"] = shard_map
    command.upgrade(global_config, "heads")
    # Before touching any shard: a config with another shard count must not create schemas.
    check_cluster_shape(shard_map)
    shards_config = alembic_config("shards", script_location=shards_script_location)
    shards_config.attributes["shard_map"] = shard_map
    command.upgrade(shards_config, revision)


def check_cluster_shape(shard_map: ShardMap) -> None:
    """Refuse a config whose shard count differs from the one the data was written with.

    Ids and hashed keys route by logical shard, so changing the count silently would
    send reads for existing rows to the wrong schema.
    """
    engine = create_engine(to_sqlalchemy_url(shard_map.database_urls[0]), poolclass=NullPool)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    f"INSERT INTO {GLOBAL_SCHEMA}.cluster_settings (key, value) "
                    "VALUES ('logical_shards', :shards), ('physical_databases', :dbs) "
                    "ON CONFLICT (key) DO NOTHING"
                ),
                {"shards": str(shard_map.logical_shards), "dbs": str(len(shard_map.database_urls))},
            )
            rows: dict[str, str] = dict(
                connection.execute(
                    text(f"SELECT key, value FROM {GLOBAL_SCHEMA}.cluster_settings")
                ).all()
            )
    finally:
        engine.dispose()
    if int(rows["logical_shards"]) != shard_map.logical_shards:
        raise ConfigurationError(
            "APERTURE_LOGICAL_SHARDS",
            f"the data was created with {rows['logical_shards']} logical shards, "
            f"not {shard_map.logical_shards}; logical shards cannot be added or removed in place",
        )
    if int(rows["physical_databases"]) != len(shard_map.database_urls):
        raise ConfigurationError(
            "APERTURE_DATABASE_URLS",
            f"the data was created on {rows['physical_databases']} physical databases, "
            f"not {len(shard_map.database_urls)}; moving shards needs a data migration",
        )
