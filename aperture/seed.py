"""Demo networks: a real edge list, or a seeded graph with heavy-tailed follower counts."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher

from db import seed as seed_db
from db.media.storage import ObjectStore
from db.session import ShardSessions
from domain.media.delivery import variant_key
from domain.media.pipeline import IMMUTABLE, named_variants
from domain.media.processing import (
    Limits,
    ProcessedImage,
    generate_demo_image,
    generate_demo_video,
    process_image,
    process_video,
)
from domain.posts.text import parse_hashtags
from domain.stories.stories import STORY_LIFETIME

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


# Media: photos, carousels, reels, stories, likes and comments ---------------------------

COMMENT_TEXTS = [
    "love this",
    "so good",
    "where is this?",
    "wow",
    "great shot",
    "need to go there",
    "the colours!",
    "classic",
]
# Shares of seeded posts that become reels and carousels; of users who get live stories.
REEL_SHARE = 0.08
CAROUSEL_SHARE = 0.15
STORY_SHARE = 0.25
PALETTE_SHAPES = [(1080, 1080), (1080, 1350), (1080, 720), (1080, 1080), (1080, 810)]


@dataclass(frozen=True)
class MediaSeedReport:
    new_media: int
    new_stories: int
    new_likes: int
    new_comments: int
    new_views: int

    @property
    def added_nothing(self) -> bool:
        return not (self.new_media or self.new_stories or self.new_likes or self.new_comments)


@dataclass(frozen=True)
class _PaletteItem:
    kind: str  # "image" or "video"
    processed: ProcessedImage
    content_type: str
    width: int
    height: int
    duration_ms: int | None = None
    video: bytes | None = None
    content_sha256: str = ""


async def _palette(*, images: int, videos: int, seed: int) -> list[_PaletteItem]:
    """Distinct generated pictures and clips, processed once: every seeded post reuses
    them (as its own, content-addressed, copy under its owner's keys)."""
    limits = Limits()

    def image(index: int) -> _PaletteItem:
        width, height = PALETTE_SHAPES[index % len(PALETTE_SHAPES)]
        data = generate_demo_image(seed=seed * 1000 + index, width=width, height=height)
        done = process_image(data, declared_type="image/jpeg", limits=limits)
        return _PaletteItem(
            kind="image",
            processed=done,
            content_type="image/jpeg",
            width=done.width,
            height=done.height,
            content_sha256=done.content_sha256,
        )

    def video(index: int) -> _PaletteItem:
        data = generate_demo_video(seed=seed * 1000 + index, seconds=3.0, width=360, height=640)
        done = process_video(data, declared_type="video/mp4", limits=limits)
        return _PaletteItem(
            kind="video",
            processed=done.poster,
            content_type="video/mp4",
            width=done.width,
            height=done.height,
            duration_ms=round(done.duration_seconds * 1000),
            video=done.data,  # as an upload would be stored: without its tags
            content_sha256=done.content_sha256,
        )

    jobs = [asyncio.to_thread(image, index) for index in range(images)]
    jobs += [asyncio.to_thread(video, index) for index in range(videos)]
    return list(await asyncio.gather(*jobs))


class _MediaWriter:
    """Stores a palette item under an owner's keys once, and makes its media row."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store
        self.stored: set[tuple[int, str]] = set()
        self.pending: list[Awaitable[object]] = []

    def row(self, owner_id: int, item: _PaletteItem, *, attached_to: int) -> dict[str, object]:
        # Demo data stores each picture once per owner: its media share keys (media_id None).
        named = named_variants(
            owner_id=owner_id,
            media_id=None,
            content_sha256=item.content_sha256,
            variants=item.processed.variants,
        )
        for record, variant in named:
            self._put(owner_id, record.key, variant.data, variant.content_type)
        variants = [record for record, _ in named]
        video_key = None
        if item.video is not None:
            video_key = variant_key(
                owner_id=owner_id,
                media_id=None,
                content_sha256=item.content_sha256,
                name="video",
                extension="mp4",
            )
            self._put(owner_id, video_key, item.video, item.content_type)
        return {
            "owner_id": owner_id,
            "kind": item.kind,
            "status": "ready",
            "content_type": item.content_type,
            "declared_bytes": len(item.video or b"") or variants[0].bytes,
            "upload_key": f"seed/{item.content_sha256[:32]}",
            "content_sha256": item.content_sha256,
            "width": item.width,
            "height": item.height,
            "duration_ms": item.duration_ms,
            "placeholder": item.processed.placeholder,
            "variants": variants,
            "video_key": video_key,
            "attached_to": attached_to,
        }

    def _put(self, owner_id: int, key: str, data: bytes, content_type: str) -> None:
        if (owner_id, key) in self.stored:
            return
        self.stored.add((owner_id, key))
        self.pending.append(
            self.store.put(key=key, body=data, content_type=content_type, cache_control=IMMUTABLE)
        )

    async def flush(self, report: Progress) -> None:
        slots = asyncio.Semaphore(32)
        done = 0
        total = len(self.pending)

        async def one(upload: Awaitable[object]) -> None:
            nonlocal done
            async with slots:
                await upload
            done += 1
            if done % 200 == 0 or done == total:
                report("files", done, total)

        await asyncio.gather(*(one(upload) for upload in self.pending))
        self.pending = []


async def seed_media(
    sessions: ShardSessions,
    store: ObjectStore,
    graph: Graph,
    user_ids: list[int],
    *,
    seed: int = 7,
    now: datetime | None = None,
    progress: Progress | None = None,
    images: int = 24,
    videos: int = 3,
    story_authors: Collection[int] | None = None,
) -> MediaSeedReport:
    """Give seeded posts real processed photos (some carousels, some reels), give a share
    of users live stories, and add likes, comments and reel views from followers. Safe to
    run again: posts that carry media, users with live stories and posts with comments
    are left alone, and likes and views are idempotent. ``story_authors`` names exactly
    who gets stories, instead of a random share of everyone."""
    report = progress or (lambda stage, done, total: None)
    now = now or datetime.now(UTC)
    shard_map = sessions.shard_map
    followers: dict[int, list[int]] = {}
    for follower, followee in graph.edges:
        followers.setdefault(user_ids[followee], []).append(user_ids[follower])
    by_shard: dict[int, list[int]] = {}
    for user_id in user_ids:
        by_shard.setdefault(shard_map.shard_for_id(user_id), []).append(user_id)

    bare: dict[int, list[tuple[int, int]]] = {}
    storyless: dict[int, list[int]] = {}
    for shard, authors in by_shard.items():
        async with sessions.shard(shard) as session:
            bare[shard] = await seed_db.posts_without_media(session, authors)
            live = await seed_db.authors_with_live_stories(session, authors, now=now)
        storyless[shard] = [
            author
            for author in authors
            if author not in live
            and (
                author in story_authors
                if story_authors is not None
                else random.Random(seed * 7919 + author).random() < STORY_SHARE
            )
        ]
    if not any(bare.values()) and not any(storyless.values()):
        palette: list[_PaletteItem] = []
    else:
        report("palette", 0, 1)
        palette = await _palette(images=images, videos=videos, seed=seed)
        report("palette", 1, 1)
    pictures = [item for item in palette if item.kind == "image"]
    clips = [item for item in palette if item.kind == "video"]
    writer = _MediaWriter(store)
    new_media = new_stories = 0
    for shard, posts in bare.items():
        if not posts:
            continue
        rows: list[dict[str, object]] = []
        owners: list[int] = []
        for post_id, author_id in posts:
            pick = random.Random(seed * 104729 + post_id)
            roll = pick.random()
            if roll < REEL_SHARE and clips:
                items = [pick.choice(clips)]
            elif roll < REEL_SHARE + CAROUSEL_SHARE:
                items = pick.sample(pictures, k=pick.randint(2, 4))
            else:
                items = [pick.choice(pictures)]
            for item in items:
                rows.append(writer.row(author_id, item, attached_to=post_id))
                owners.append(post_id)
        async with sessions.shard(shard) as session:
            media_ids = await seed_db.insert_media(session, rows)
            carried: dict[int, list[int]] = {}
            for post_id, media_id in zip(owners, media_ids, strict=True):
                carried.setdefault(post_id, []).append(media_id)
            kinds = {media_id: row["kind"] for media_id, row in zip(media_ids, rows, strict=True)}
            await seed_db.set_post_media(
                session,
                [
                    {
                        "post_id": post_id,
                        "media_ids": ids,
                        "is_reel": len(ids) == 1 and kinds[ids[0]] == "video",
                    }
                    for post_id, ids in carried.items()
                ],
            )
        new_media += len(media_ids)
        report("media", new_media, new_media)
    for shard, authors in storyless.items():
        if not authors or not pictures:
            continue
        async with sessions.shard(shard) as session:
            for author_id in authors:
                pick = random.Random(seed * 15485863 + author_id)
                for _ in range(pick.randint(1, 3)):
                    posted = now - timedelta(hours=pick.uniform(0.1, 20))
                    (story_id,) = await seed_db.insert_stories(
                        session,
                        [
                            {
                                "author_id": author_id,
                                "media_id": 0,
                                "audience": "everyone",
                                "created_at": posted,
                                "expires_at": posted + STORY_LIFETIME,
                            }
                        ],
                    )
                    (media_id,) = await seed_db.insert_media(
                        session,
                        [writer.row(author_id, pick.choice(pictures), attached_to=story_id)],
                    )
                    await seed_db.attach_story_media(session, story_id=story_id, media_id=media_id)
                    new_stories += 1
                    new_media += 1
    await writer.flush(report)
    likes, comments, views = await _seed_engagement(
        sessions, followers, bare, seed=seed, report=report
    )
    return MediaSeedReport(
        new_media=new_media,
        new_stories=new_stories,
        new_likes=likes,
        new_comments=comments,
        new_views=views,
    )


async def _seed_engagement(
    sessions: ShardSessions,
    followers: dict[int, list[int]],
    posts_by_shard: dict[int, list[tuple[int, int]]],
    *,
    seed: int,
    report: Progress,
) -> tuple[int, int, int]:
    """Likes (heavy-tailed: most posts get a few, some many), comments and reel views
    from each author's followers, on the posts just given media."""
    likes = comments = views = 0
    # Explore's log, by the shard of the person who acted.
    explore_rows: dict[int, list[dict[str, object]]] = defaultdict(list)
    now = datetime.now(UTC)

    def logged(user_id: int, post_id: int, author_id: int, signal: str) -> None:
        explore_rows[sessions.shard_map.shard_for_id(user_id)].append(
            {
                "user_id": user_id,
                "item_id": post_id,
                "signal": signal,
                "author_id": author_id,
                "occurred_at": now,
            }
        )

    for shard, posts in posts_by_shard.items():
        if not posts:
            continue
        like_rows: list[dict[str, object]] = []
        comment_rows: list[dict[str, object]] = []
        view_rows: list[dict[str, object]] = []
        async with sessions.shard(shard) as session:
            commented = await seed_db.posts_with_comments(session, [p for p, _ in posts])
        for post_id, author_id in posts:
            fans = followers.get(author_id, [])
            if not fans:
                continue
            pick = random.Random(seed * 32452843 + post_id)
            share = min(1.0, pick.paretovariate(1.5) / 10)
            for fan in pick.sample(fans, k=max(0, min(len(fans), round(share * len(fans))))):
                like_rows.append({"post_id": post_id, "user_id": fan})
                logged(fan, post_id, author_id, "like")
            for fan in pick.sample(fans, k=min(len(fans), pick.randint(1, 8))):
                view_rows.append({"post_id": post_id, "viewer_id": fan})
                logged(fan, post_id, author_id, "reel_view")
            if post_id not in commented:
                for fan in pick.sample(fans, k=min(len(fans), pick.randint(0, 3))):
                    comment_rows.append(
                        {"post_id": post_id, "author_id": fan, "body": pick.choice(COMMENT_TEXTS)}
                    )
                    logged(fan, post_id, author_id, "comment")
        async with sessions.shard(shard) as session:
            for batch in _chunks(like_rows, 5000):
                likes += await seed_db.insert_post_likes(session, batch)
            for batch in _chunks(comment_rows, 5000):
                comments += await seed_db.insert_comments(session, batch)
            for batch in _chunks(view_rows, 5000):
                views += await seed_db.insert_post_views(session, batch)
        report("likes", likes, likes)
    for shard, rows in explore_rows.items():
        async with sessions.shard(shard) as session:
            for batch in _chunks(rows, 5000):
                await seed_db.insert_explore_interactions(session, batch)
    return likes, comments, views
