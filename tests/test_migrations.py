"""A new revision reaches every logical shard on every physical database; reruns are no-ops."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from db.cluster import GLOBAL_SCHEMA
from db.shards import ShardMap, shard_schema, to_sqlalchemy_url
from domain.features import shard_tables
from infra.servers import Servers
from migrations.runner import PROJECT_ROOT, migrate

PROBE_REVISION = '''"""Probe table added by the migration test.

Revision ID: {revision}
Revises: {down}
Create Date: 2026-11-21
"""

from alembic import op

revision = "{revision}"
down_revision = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE TABLE migration_probe (id bigint PRIMARY KEY DEFAULT next_id())")


def downgrade() -> None:
    op.execute("DROP TABLE migration_probe")
'''


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from migrations.runner import alembic_config

    head = ScriptDirectory.from_config(alembic_config("shards")).get_current_head()
    assert head is not None
    return head


@pytest.fixture
def scratch_shard_map(servers: Servers) -> Iterator[ShardMap]:
    """Two fresh databases on the same server, so the probe never touches the suite's data."""
    admin_dsn = servers.database_urls[0]
    names = [f"migtest_{uuid.uuid4().hex[:8]}_{n}" for n in range(2)]
    admin = create_engine(
        to_sqlalchemy_url(admin_dsn), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    base = admin_dsn.rsplit("?", 1)
    urls = []
    for name in names:
        head, _, _ = base[0].rpartition("/")
        urls.append(f"{head}/{name}" + (f"?{base[1]}" if len(base) > 1 else ""))
    yield ShardMap(logical_shards=6, database_urls=tuple(urls))
    with admin.connect() as connection:
        for name in names:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _shard_state(shard_map: ShardMap) -> dict[int, tuple[str, bool]]:
    state = {}
    for index, dsn in enumerate(shard_map.database_urls):
        engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool)
        with engine.connect() as connection:
            for shard in shard_map.shards_on(index):
                schema = shard_schema(shard)
                version = connection.scalar(
                    text(f"SELECT version_num FROM {schema}.alembic_version")
                )
                has_probe = connection.scalar(
                    text("SELECT to_regclass(:name) IS NOT NULL"),
                    {"name": f"{schema}.migration_probe"},
                )
                state[shard] = (str(version), bool(has_probe))
        engine.dispose()
    return state


def test_new_revision_reaches_every_shard(scratch_shard_map: ShardMap, tmp_path: Path) -> None:
    migrate(scratch_shard_map)
    head = _head_revision()
    assert set(_shard_state(scratch_shard_map).values()) == {(head, False)}

    scripts = tmp_path / "shards"
    shutil.copytree(PROJECT_ROOT / "migrations" / "shards", scripts)
    (scripts / "versions" / "s9999_probe.py").write_text(
        PROBE_REVISION.format(revision="s9999", down=head)
    )
    migrate(scratch_shard_map, shards_script_location=scripts)
    state = _shard_state(scratch_shard_map)
    assert sorted(state) == list(range(6))
    assert set(state.values()) == {("s9999", True)}

    # Idempotent: a second run changes nothing and does not fail.
    migrate(scratch_shard_map, shards_script_location=scripts)
    assert _shard_state(scratch_shard_map) == state

    # The probe table's ids come from its own shard's next_id().
    for index, dsn in enumerate(scratch_shard_map.database_urls):
        engine = create_engine(to_sqlalchemy_url(dsn), poolclass=NullPool)
        with engine.begin() as connection:
            for shard in scratch_shard_map.shards_on(index):
                new_id = connection.scalar(
                    text(
                        f"INSERT INTO {shard_schema(shard)}.migration_probe "
                        "DEFAULT VALUES RETURNING id"
                    )
                )
                assert (int(new_id) >> 10) & 0x1FFF == shard
            # The global lineage lives on database 0 only.
            has_global = connection.scalar(
                text("SELECT to_regclass(:n) IS NOT NULL"),
                {"n": f"{GLOBAL_SCHEMA}.cluster_settings"},
            )
            assert has_global == (index == 0)
        engine.dispose()


def test_changing_the_shard_count_is_refused(scratch_shard_map: ShardMap) -> None:
    from infra.settings import ConfigurationError

    migrate(scratch_shard_map)
    grown = ShardMap(logical_shards=8, database_urls=scratch_shard_map.database_urls)
    with pytest.raises(ConfigurationError, match="APERTURE_LOGICAL_SHARDS"):
        migrate(grown)


def test_every_migrated_table_is_owned_by_exactly_one_feature(shard_map: ShardMap) -> None:
    """The registry's tables are what migrations made: a table no feature declares would be
    left behind by cleanup and by the checklist; one declared twice has two owners."""
    engine = create_engine(to_sqlalchemy_url(shard_map.database_urls[0]), poolclass=NullPool)
    try:
        with engine.connect() as connection:
            migrated = set(
                connection.execute(
                    text(
                        "SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = :schema AND table_name <> 'alembic_version'"
                    ),
                    {"schema": shard_schema(0)},
                ).scalars()
            )
    finally:
        engine.dispose()
    owned = shard_tables()
    assert len(owned) == len(set(owned)), "a table is declared by two features"
    assert set(owned) == migrated
