"""Hydration micro-benchmark (issue 9): the CPU to turn one cached row into an object.

Compares the ORM constructor (``Model(**columns)``, what ``RowCache.decode`` did before)
with ``RowCache.decode`` as it is (orjson, then the values straight into a fresh
instance's dict, as the ORM does when it loads a row). No server is needed: the cache is
never called over the network.

    python -m bench.hydration [--rows 20000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import json
import timeit
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis

from bench.machine import describe_machine
from db.accounts.models import User
from db.base import Base
from db.cache import RowCache
from db.posts.models import Post


def _constructor_decode(cache: RowCache[Any], raw: bytes) -> Base:
    data: dict[str, Any] = json.loads(raw)
    for column in cache._datetime_columns:
        if data.get(column) is not None:
            data[column] = datetime.fromisoformat(data[column])
    row: Base = cache.model(**data)
    return row


def _best_microseconds(call: Any, *, rows: int, repeat: int) -> float:
    return min(timeit.repeat(call, number=rows, repeat=repeat)) / rows * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    options = parser.parse_args()
    now = datetime.now(UTC)
    samples: list[tuple[str, RowCache[Any], Base]] = [
        (
            "post",
            RowCache(Redis(), Post, prefix="post", ttl_seconds=60),
            Post(
                id=235820778765949832,
                author_id=235820778765940000,
                caption="sunset and coffee #art",
                created_at=now,
                updated_at=now,
                deleted_at=None,
                fanout_cursor=0,
            ),
        ),
        (
            "user",
            RowCache(
                Redis(), User, prefix="user", ttl_seconds=60, exclude=("password_hash", "email")
            ),
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
    print("| row | ORM constructor, µs | RowCache.decode, µs | ratio |")
    print("|---|--:|--:|--:|")
    for name, cache, row in samples:
        raw = cache.encode(row)
        before = _best_microseconds(
            lambda cache=cache, raw=raw: _constructor_decode(cache, raw),
            rows=options.rows,
            repeat=options.repeat,
        )
        after = _best_microseconds(
            lambda cache=cache, raw=raw: cache.decode(raw),
            rows=options.rows,
            repeat=options.repeat,
        )
        print(f"| {name} | {before:.2f} | {after:.2f} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
