"""Demo networks: a real edge list, or a seeded graph with heavy-tailed follower counts."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import Update, func, select, update
from sqlalchemy.dialects.postgresql import insert

from db.accounts.models import Follower, Following, UniqueKey, User
from db.posts.models import HashtagPost, Post, PostHashtag
from db.session import ShardSessions
from domain.posts.text import parse_hashtags

DEMO_PASSWORD = "aperture-demo"
CAPTION_WORDS = ["sunset", "coffee", "city", "beach", "friends", "food", "travel", "art", "cats"]

Progress = Callable[[str, int, int], None]


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


def _chunks(items: list[dict[str, object]], size: int) -> Iterable[list[dict[str, object]]]:
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
    shard_map = sessions.shard_map
    rng = random.Random(seed)
    password_hash = PasswordHasher().hash(DEMO_PASSWORD)
    report = progress or (lambda stage, done, total: None)

    by_shard: dict[int, list[tuple[int, str]]] = {}
    for node in range(graph.users):
        username = f"{prefix}{node}"
        by_shard.setdefault(shard_map.shard_for_username(username), []).append((node, username))
    user_ids: list[int] = [0] * graph.users
    done = 0
    for shard, members in by_shard.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(
                [
                    {
                        "username": username,
                        "username_lower": username.lower(),
                        "email": f"{username}@example.com",
                        "password_hash": password_hash,
                        "full_name": f"Demo {username}",
                    }
                    for _, username in members
                ],
                1000,
            ):
                inserted = await session.execute(
                    insert(User)
                    .values(batch)
                    .on_conflict_do_update(
                        index_elements=[User.username_lower], set_={"deleted_at": None}
                    )
                    .returning(User.username_lower, User.id)
                )
                ids = {username: user_id for username, user_id in inserted}
                for node, username in members:
                    if username.lower() in ids:
                        user_ids[node] = ids[username.lower()]
                done += len(batch)
                report("users", done, graph.users)

    # Emails are unique through their own hash shard, as sign-up does it.
    email_claims: dict[int, list[dict[str, object]]] = {}
    for node, user_id in enumerate(user_ids):
        email = f"{prefix}{node}@example.com".lower()
        email_claims.setdefault(shard_map.shard_for_email(email), []).append(
            {"kind": "email", "key": email, "owner_id": user_id}
        )
    for shard, rows in email_claims.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                await session.execute(insert(UniqueKey).on_conflict_do_nothing(), batch)

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
    total_edges = len(graph.edges) * 2
    done = 0
    for model, grouped in ((Following, following), (Follower, followers)):
        for shard, rows in grouped.items():
            async with sessions.shard(shard) as session:
                for batch in _chunks(rows, 5000):
                    await session.execute(insert(model).on_conflict_do_nothing(), batch)
                    done += len(batch)
                    report("follows", done, total_edges)

    posts: dict[int, list[dict[str, object]]] = {}
    for user_id in user_ids:
        for _ in range(posts_per_user):
            words = rng.sample(CAPTION_WORDS, 3)
            caption = f"{words[0]} and {words[1]} #{words[2]}"
            posts.setdefault(shard_map.shard_for_id(user_id), []).append(
                {"author_id": user_id, "caption": caption}
            )
    done = 0
    total_posts = graph.users * posts_per_user
    tagged: dict[int, list[dict[str, object]]] = {}
    for shard, rows in posts.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                created = await session.execute(
                    insert(Post).values(batch).returning(Post.id, Post.caption)
                )
                post_tags: list[dict[str, object]] = []
                for post_id, caption in created:
                    for tag in parse_hashtags(caption):
                        post_tags.append({"post_id": post_id, "tag": tag})
                        tagged.setdefault(shard_map.shard_for_hashtag(tag), []).append(
                            {"tag": tag, "post_id": post_id}
                        )
                if post_tags:
                    await session.execute(insert(PostHashtag), post_tags)
                done += len(batch)
                report("posts", done, total_posts)
    for shard, rows in tagged.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                await session.execute(insert(HashtagPost).on_conflict_do_nothing(), batch)

    # Denormalised counts, recomputed from the rows just written.
    for shard in shard_map.shards:
        async with sessions.shard(shard) as session:
            await session.execute(recount_statement())
    report("counts", 1, 1)
    return user_ids


def recount_statement() -> Update:
    def count_of(column: Any, *conditions: Any) -> Any:
        return select(func.count()).where(*conditions).scalar_subquery()

    return update(User).values(
        following_count=count_of(Following.follower_id, Following.follower_id == User.id),
        follower_count=count_of(Follower.followee_id, Follower.followee_id == User.id),
        post_count=count_of(Post.id, Post.author_id == User.id, Post.deleted_at.is_(None)),
    )
