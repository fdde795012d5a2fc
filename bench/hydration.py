"""Hydration micro-benchmark (issue 9): the CPU to turn one cached row into an object,
and to read its fields.

Three ways, on the same cached JSON:

* **ORM constructor** (``Model(**columns)``, what ``RowCache.decode`` first did);
* **ORM instance dict** (orjson, then the values straight into a fresh instance's dict, as
  the ORM does when it loads a row: ``RowCache.decode`` until the records);
* **record** (``RowCache.decode`` as it is: one msgspec call into a frozen struct,
  ``db/<feature>/records.py``).

"read" reads every field of the object once (what a page's resolvers and rules do,
through instrumented attributes on an ORM instance, plain slots on a record). No server is
needed: the cache is never called over the network.

    python -m bench.hydration [--rows 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import timeit
from datetime import UTC, datetime
from typing import Any

import orjson
from redis.asyncio import Redis
from sqlalchemy import inspect as sa_inspect

from bench.harness import describe_machine
from db.accounts.models import User
from db.accounts.records import UserRecord
from db.base import Base
from db.cache import RowCache
from db.posts.models import Post
from db.posts.records import PostRecord


def _columns(cache: RowCache[Any, Any], raw: bytes) -> dict[str, Any]:
    data: dict[str, Any] = orjson.loads(raw)
    for column in ("created_at", "updated_at", "last_active_at", "deleted_at"):
        if data.get(column) is not None:
            data[column] = datetime.fromisoformat(data[column])
    return data


def _constructor_decode(cache: RowCache[Any, Any], raw: bytes) -> Base:
    row: Base = cache.model(**_columns(cache, raw))
    return row


def _instance_dict_decode(cache: RowCache[Any, Any], raw: bytes) -> Base:
    row: Base = sa_inspect(cache.model).class_manager.new_instance()
    row.__dict__.update(_columns(cache, raw))
    return row


def _read_all(row: object, fields: tuple[str, ...]) -> None:
    for name in fields:
        getattr(row, name)


def _best_microseconds(call: Any, *, rows: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=rows, repeat=repeat)) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    now = datetime.now(UTC)
    samples: list[tuple[str, RowCache[Any, Any], Base]] = [
        (
            "post",
            RowCache(Redis(), Post, PostRecord, prefix="post", ttl_seconds=60),
            Post(
                id=235820778765949832,
                author_id=235820778765940000,
                caption="sunset and coffee #art",
                created_at=now,
                updated_at=now,
                deleted_at=None,
                fanout_cursor=0,
                media_ids=[],
                is_reel=False,
            ),
        ),
        (
            "user",
            RowCache(Redis(), User, UserRecord, prefix="user", ttl_seconds=60),
            User(
                id=235820778765940000,
                username="user42",
                username_lower="user42",
                full_name="Demo user42",
                bio="",
                website="",
                avatar_media_id=None,
                is_private=False,
                follower_count=120,
                following_count=80,
                post_count=2,
                created_at=now,
                last_active_at=now,
                deleted_at=None,
            ),
        ),
    ]
    print("\n".join(describe_machine()))
    print(
        "| row | ORM constructor, µs | ORM instance dict, µs | record, µs "
        "| read, ORM, µs | read, record, µs |"
    )
    print("|---|--:|--:|--:|--:|--:|")
    for name, cache, row in samples:
        raw = cache.encode(row)
        fields = cache.record.__struct_fields__
        orm_row = _instance_dict_decode(cache, raw)
        record = cache.decode(raw)
        figures = [
            _best_microseconds(call, rows=options.rows, repeat=options.repeat)
            for call in (
                lambda cache=cache, raw=raw: _constructor_decode(cache, raw),
                lambda cache=cache, raw=raw: _instance_dict_decode(cache, raw),
                lambda cache=cache, raw=raw: cache.decode(raw),
                lambda row=orm_row, fields=fields: _read_all(row, fields),
                lambda row=record, fields=fields: _read_all(row, fields),
            )
        ]
        print(f"| {name} | " + " | ".join(f"{value:.2f}" for value in figures) + " |")


if __name__ == "__main__":
    main()
