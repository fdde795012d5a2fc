"""Demo networks: a real edge list, or a seeded graph with heavy-tailed follower counts."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher

from db import seed as seed_db
from db.session import ShardSessions
from domain.posts.text import parse_hashtags

DEMO_PASSWORD = "aperture-demo"
CAPTION_WORDS = ["sunset", "coffee", "city", "beach", "friends", "food", "travel", "art", "cats"]

Progress = Callable[[str, int, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class Graph:
    users: int
    edges: list[tuple[int, int]]  # (follower, followee), 0-based


def read_edge_list(path: Path, *, both_directions: bool = True) -> Graph:
    """An undirected ``u v`` edge list becomes follows both ways (as DeathStarBench does)."""
    raw: list[tuple[str, str]] = []
    for line in path.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 2 and not line.startswith(("#", "%")):
            raw.append((parts[0], parts[1]))
    names = {name: index for index, name in enumerate(dict.fromkeys(n for e in raw for n in e))}
    edges: set[tuple[int, int]] = set()
    for a, b in raw:
        if a == b:
            continue
        edges.add((names[a], names[b]))
        if both_directions:
            edges.add((names[b], names[a]))
    return Graph(users=len(names), edges=sorted(edges))


def generate_graph(users: int, *, seed: int, mean_following: int = 20, skew: float = 1.1) -> Graph:
    """Each user follows ~``mean_following`` accounts picked with Zipf-like popularity, so a
    few accounts gather a large share of all follows, as on a real network."""
    rng = random.Random(seed)
    popularity = list(range(users))
    rng.shuffle(popularity)
    weights = [1.0 / (rank + 1) ** skew for rank in range(users)]
    cumulative: list[float] = []
    total = 0.0
    for weight in weights:
        total += weight
        cumulative.append(total)
    edges: set[tuple[int, int]] = set()
    for follower in range(users):
        wanted = min(users - 1, max(1, int(rng.expovariate(1 / mean_following))))
        picks = rng.choices(popularity, cum_weights=cumulative, k=wanted)
        edges.update((follower, followee) for followee in picks if followee != follower)
    return Graph(users=users, edges=sorted(edges))


@dataclass(frozen=True)
class SeedReport:
    """What one run wrote. Every write is idempotent, so a second run of the same network
    reports nothing added."""

    user_ids: list[int]  # by node index
    new_users: int
    new_follows: int  # edges, each counted once though it is stored in two shards
    new_posts: int
    recounted_users: int  # users whose denormalised counts were wrong

    @property
    def added_nothing(self) -> bool:
        return not (self.new_users or self.new_follows or self.new_posts)


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def load_graph(
    sessions: ShardSessions,
    graph: Graph,
    *,
    prefix: str = "user",
    posts_per_user: int = 2,
    seed: int = 7,
    progress: Progress | None = None,
) -> list[int]:
    """Insert users, both edge directions and a few posts; returns user ids by node index."""
    report = await seed_graph(
        sessions,
        graph,
        prefix=prefix,
        posts_per_user=posts_per_user,
        seed=seed,
        progress=progress,
    )
    return report.user_ids


async def seed_graph(
    sessions: ShardSessions,
    graph: Graph,
    *,
    prefix: str = "user",
    posts_per_user: int = 2,
    seed: int = 7,
    progress: Progress | None = None,
) -> SeedReport:
    """``load_graph``, reporting what was new. Users ``PREFIX<node>`` that exist are reused,
    follows already there are skipped, and each user gets posts only up to
    ``posts_per_user`` live ones, so a repeated or resumed run duplicates nothing."""
    report = progress or (lambda stage, done, total: None)
    user_ids, new_users = await _load_users(sessions, graph.users, prefix=prefix, report=report)
    await _claim_emails(sessions, user_ids, prefix=prefix)
    new_follows = await _load_follows(sessions, graph, user_ids, report=report)
    new_posts = await _load_posts(
        sessions,
        user_ids,
        posts_per_user=posts_per_user,
        rng=random.Random(seed),
        report=report,
    )
    recounted = 0
    # Every shard: a follow written here changes a count of a user in another shard.
    for shard in sessions.shard_map.shards:
        async with sessions.shard(shard) as session:
            recounted += await seed_db.recount_users(session)
    report("counts", 1, 1)
    return SeedReport(
        user_ids=user_ids,
        new_users=new_users,
        new_follows=new_follows,
        new_posts=new_posts,
        recounted_users=recounted,
    )


async def _load_users(
    sessions: ShardSessions, users: int, *, prefix: str, report: Progress
) -> tuple[list[int], int]:
    shard_map = sessions.shard_map
    password_hash = PasswordHasher().hash(DEMO_PASSWORD)
    by_shard: dict[int, list[tuple[int, str]]] = {}
    for node in range(users):
        username = f"{prefix}{node}"
        by_shard.setdefault(shard_map.shard_for_username(username), []).append((node, username))
    user_ids: list[int] = [0] * users
    added = 0
    done = 0
    for shard, members in by_shard.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(members, 1000):
                ids, inserted = await seed_db.upsert_users(
                    session,
                    [
                        {
                            "username": username,
                            "username_lower": username.lower(),
                            "email": f"{username}@example.com",
                            "password_hash": password_hash,
                            "full_name": f"Demo {username}",
                        }
                        for _, username in batch
                    ],
                )
                for node, username in batch:
                    user_ids[node] = ids[username.lower()]
                added += inserted
                done += len(batch)
                report("users", done, users)
    return user_ids, added


async def _claim_emails(sessions: ShardSessions, user_ids: list[int], *, prefix: str) -> None:
    # Emails are unique through their own hash shard, as sign-up does it.
    shard_map = sessions.shard_map
    claims: dict[int, list[dict[str, object]]] = {}
    for node, user_id in enumerate(user_ids):
        email = f"{prefix}{node}@example.com".lower()
        claims.setdefault(shard_map.shard_for_email(email), []).append(
            {"kind": "email", "key": email, "owner_id": user_id}
        )
    for shard, rows in claims.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                await seed_db.claim_emails(session, batch)


async def _load_follows(
    sessions: ShardSessions, graph: Graph, user_ids: list[int], *, report: Progress
) -> int:
    shard_map = sessions.shard_map
    following: dict[int, list[dict[str, object]]] = {}
    followers: dict[int, list[dict[str, object]]] = {}
    for follower, followee in graph.edges:
        a, b = user_ids[follower], user_ids[followee]
        following.setdefault(shard_map.shard_for_id(a), []).append(
            {"follower_id": a, "followee_id": b}
        )
        followers.setdefault(shard_map.shard_for_id(b), []).append(
            {"followee_id": b, "follower_id": a}
        )
    total = len(graph.edges) * 2
    done = 0
    added = 0
    for shard, rows in following.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                added += await seed_db.insert_following(session, batch)
                done += len(batch)
                report("follows", done, total)
    for shard, rows in followers.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                await seed_db.insert_followers(session, batch)
                done += len(batch)
                report("follows", done, total)
    return added


async def _load_posts(
    sessions: ShardSessions,
    user_ids: list[int],
    *,
    posts_per_user: int,
    rng: random.Random,
    report: Progress,
) -> int:
    shard_map = sessions.shard_map
    # Captions come from the seed in node order whatever is already there, so a resumed
    # run writes the captions a full run would have.
    captions: dict[int, list[str]] = {}
    for user_id in user_ids:
        for _ in range(posts_per_user):
            words = rng.sample(CAPTION_WORDS, 3)
            captions.setdefault(user_id, []).append(f"{words[0]} and {words[1]} #{words[2]}")
    by_shard: dict[int, list[int]] = {}
    for user_id in captions:
        by_shard.setdefault(shard_map.shard_for_id(user_id), []).append(user_id)

    missing: dict[int, list[dict[str, object]]] = {}
    for shard, authors in by_shard.items():
        async with sessions.shard(shard) as session:
            for group in _chunks(authors, 5000):
                existing = await seed_db.live_post_counts(session, group)
                missing.setdefault(shard, []).extend(
                    {"author_id": author, "caption": caption}
                    for author in group
                    for caption in captions[author][existing.get(author, 0) :]
                )

    total = sum(len(rows) for rows in missing.values())
    done = 0
    tagged: dict[int, list[dict[str, object]]] = {}
    for shard, rows in missing.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                post_tags: list[dict[str, object]] = []
                for post_id, caption in await seed_db.insert_posts(session, batch):
                    for tag in parse_hashtags(caption):
                        post_tags.append({"post_id": post_id, "tag": tag})
                        tagged.setdefault(shard_map.shard_for_hashtag(tag), []).append(
                            {"tag": tag, "post_id": post_id}
                        )
                for tags in _chunks(post_tags, 5000):
                    await seed_db.tag_posts(session, tags)
                done += len(batch)
                report("posts", done, total)
    for shard, rows in tagged.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                await seed_db.index_hashtags(session, batch)
    return total
