"""The one visibility policy (domain/visibility.py), asked about mixed batches of ids.

One viewer, and around them every case the policy separates: a public account, a private
one they follow, a private one they do not, someone they blocked, someone who blocked
them, a deleted account, a deleted post, their own private post, comments hidden by their
author or by their post, and ids that name nothing. Every answer is checked per id, in
the order asked, for the viewer and for an anonymous viewer.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from db.accounts.caches import AccountCaches
from db.accounts.records import UserRecord as User
from db.ids import shard_of
from db.instrumentation import WorkCounter, count_work
from db.posts.caches import PostCaches
from db.session import ShardSessions
from domain.accounts import blocks, profiles
from domain.errors import Forbidden
from domain.posts import comments, posts
from domain.state import AppState
from domain.visibility import Visibility, direct
from tests.domain.support import (
    follow_approved,
    ids_of,
    new_post,
    new_user,
    unique_name,
    unknown_id,
)

# Shard 8000 exists in no test configuration: its ids route nowhere.
NO_SUCH_SHARD = 8000


@dataclass(frozen=True)
class World:
    viewer: User  # private
    public: User
    followed_public: User
    private_followed: User
    private_unfollowed: User
    blocked: User  # the viewer blocked them
    blocker: User  # they blocked the viewer
    deleted: User  # deleted their account after posting and commenting
    post: dict[str, int]
    comment: dict[str, int]
    unknown: int  # a well-formed id in a real shard that no row has
    nowhere: int  # an id whose shard bits name no shard


@pytest.fixture(scope="module")
async def world(state: AppState) -> World:
    sessions = ShardSessions(state.runtime.databases)
    viewer = await new_user(state, sessions, "viewer", private=True)
    public = await new_user(state, sessions, "public")
    followed_public = await new_user(state, sessions, "fpublic")
    private_followed = await new_user(state, sessions, "pfollowed", private=True)
    private_unfollowed = await new_user(state, sessions, "punfollowed", private=True)
    blocked = await new_user(state, sessions, "blocked")
    blocker = await new_user(state, sessions, "blocker")
    deleted = await new_user(state, sessions, "deleted")

    await follow_approved(state, sessions, viewer, followed_public)
    await follow_approved(state, sessions, viewer, private_followed)

    authors = {
        "own": viewer,
        "public": public,
        "followed_public": followed_public,
        "private_followed": private_followed,
        "private_unfollowed": private_unfollowed,
        "blocked": blocked,
        "blocker": blocker,
        "deleted_author": deleted,
        "deleted": public,
    }
    post = {
        name: (await new_post(state, sessions, author, name)).id for name, author in authors.items()
    }

    async def comment(author: User, post_name: str) -> int:
        row = await comments.add_comment(
            state, sessions, author.id, post[post_name], body=f"by {author.username}", reply_to=None
        )
        return row.id

    comment_ids = {
        "visible": await comment(followed_public, "public"),
        "by_blocked": await comment(blocked, "public"),
        "by_blocker": await comment(blocker, "public"),
        "by_deleted": await comment(deleted, "public"),
        "on_invisible": await comment(private_unfollowed, "private_unfollowed"),
        "on_deleted_post": await comment(public, "deleted"),
        "deleted": await comment(public, "public"),
        "own_on_own": await comment(viewer, "own"),
    }

    # Blocks, deletions last: everything above needed both sides to see each other.
    await blocks.block(state, sessions, viewer.id, blocked.id)
    await blocks.block(state, sessions, blocker.id, viewer.id)
    await comments.delete_comment(state, sessions, public.id, comment_ids["deleted"])
    await posts.delete_post(state, sessions, public.id, post["deleted"])
    await profiles.delete_account(state, sessions, deleted.id)

    return World(
        viewer=viewer,
        public=public,
        followed_public=followed_public,
        private_followed=private_followed,
        private_unfollowed=private_unfollowed,
        blocked=blocked,
        blocker=blocker,
        deleted=deleted,
        post=post,
        comment=comment_ids,
        unknown=unknown_id(shard_of(viewer.id)),
        nowhere=unknown_id(NO_SUCH_SHARD),
    )


def visibility_for(state: AppState, sessions: ShardSessions, world: World, who: str) -> Visibility:
    return direct(state, sessions, world.viewer.id if who == "viewer" else None)


USER_ORDER = [
    "viewer",
    "public",
    "followed_public",
    "private_followed",
    "private_unfollowed",
    "blocked",
    "blocker",
    "deleted",
]


def user_ids(world: World) -> list[int]:
    return [getattr(world, name).id for name in USER_ORDER] + [world.unknown, world.nowhere]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        (
            "viewer",
            ["viewer", "public", "followed_public", "private_followed", "private_unfollowed"]
            + [None] * 5,
        ),
        (
            "anonymous",
            [
                "viewer",
                "public",
                "followed_public",
                "private_followed",
                "private_unfollowed",
                "blocked",
                "blocker",
            ]
            + [None] * 3,
        ),
    ],
    ids=["viewer", "anonymous"],
)
async def test_users_batch(
    state: AppState,
    sessions: ShardSessions,
    world: World,
    who: str,
    expected: list[str | None],
) -> None:
    """Blocks in either direction hide a user from the viewer (not from the anonymous);
    a deleted user and unknown ids are hidden from everyone; order is the order asked."""
    visibility = visibility_for(state, sessions, world, who)
    answer = await visibility.users(user_ids(world))
    assert ids_of(answer) == [getattr(world, name).id if name else None for name in expected]
    # Asked in reverse, answered in reverse: positions, not a set.
    reverse = await visibility_for(state, sessions, world, who).users(user_ids(world)[::-1])
    assert ids_of(reverse) == ids_of(answer)[::-1]


POST_ORDER = [
    "own",
    "public",
    "followed_public",
    "private_followed",
    "private_unfollowed",
    "blocked",
    "blocker",
    "deleted_author",
    "deleted",
]


def post_ids(world: World) -> list[int]:
    # The public post twice: each position gets its own answer.
    return [world.post[name] for name in POST_ORDER] + [
        world.unknown,
        world.nowhere,
        world.post["public"],
    ]


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("viewer", {"own", "public", "followed_public", "private_followed"}),
        ("anonymous", {"public", "followed_public", "blocked", "blocker"}),
    ],
    ids=["viewer", "anonymous"],
)
async def test_posts_batch(
    state: AppState, sessions: ShardSessions, world: World, who: str, visible: set[str]
) -> None:
    """A post is visible when it is live and its author's content is: public, followed or
    the viewer's own, and the author neither deleted nor on either side of a block."""
    answer = await visibility_for(state, sessions, world, who).posts(post_ids(world))
    expected = [world.post[name] if name in visible else None for name in POST_ORDER]
    assert ids_of(answer) == [*expected, None, None, world.post["public"]]
    # Post-by-post agrees with the batch.
    single = visibility_for(state, sessions, world, who)
    assert ids_of([await single.post(i) for i in post_ids(world)]) == ids_of(answer)


COMMENT_ORDER = [
    "visible",
    "by_blocked",
    "by_blocker",
    "by_deleted",
    "on_invisible",
    "on_deleted_post",
    "deleted",
    "own_on_own",
]


@pytest.mark.parametrize(
    ("who", "visible"),
    [
        ("viewer", {"visible", "own_on_own"}),
        # The viewer's own post is private: their comment on it is hidden with it.
        ("anonymous", {"visible", "by_blocked", "by_blocker"}),
    ],
    ids=["viewer", "anonymous"],
)
async def test_comments_batch(
    state: AppState, sessions: ShardSessions, world: World, who: str, visible: set[str]
) -> None:
    """A comment needs a visible author and a visible post, and to be live itself."""
    ids = [world.comment[name] for name in COMMENT_ORDER] + [world.unknown, world.nowhere]
    answer = await visibility_for(state, sessions, world, who).comments(ids)
    expected = [world.comment[name] if name in visible else None for name in COMMENT_ORDER]
    assert ids_of(answer) == [*expected, None, None]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        # Not the public post: visible, but its author is not followed.
        ("viewer", ["own", "followed_public", "private_followed"]),
        ("anonymous", []),
    ],
    ids=["viewer", "anonymous"],
)
async def test_feed_posts_batch(
    state: AppState, sessions: ShardSessions, world: World, who: str, expected: list[str]
) -> None:
    """Feed entries keep only visible posts by the viewer or by accounts they follow,
    dropping the rest rather than leaving holes, in the order given."""
    answer = await visibility_for(state, sessions, world, who).feed_posts(post_ids(world))
    assert ids_of(answer) == [world.post[name] for name in expected]


@pytest.mark.parametrize(
    ("who", "expected"),
    [
        ("viewer", [True, True, True, True, False]),
        ("anonymous", [False, True, True, False, False]),
    ],
    ids=["viewer", "anonymous"],
)
async def test_content_visible_and_require_content_access(
    state: AppState, sessions: ShardSessions, world: World, who: str, expected: list[bool]
) -> None:
    """Content (posts, follower lists) of a private account is for its owner and its
    followers; ``require_content_access`` raises FORBIDDEN exactly where that is False."""
    owners = [
        world.viewer,
        world.public,
        world.followed_public,
        world.private_followed,
        world.private_unfollowed,
    ]
    visibility = visibility_for(state, sessions, world, who)
    assert await visibility.content_visible(owners) == expected
    for owner, allowed in zip(owners, expected, strict=True):
        if allowed:
            await visibility.require_content_access(owner)
        else:
            with pytest.raises(Forbidden) as raised:
                await visibility.require_content_access(owner)
            assert raised.value.extensions["code"] == "FORBIDDEN"


async def test_the_other_side_of_a_block_cannot_see_the_viewer(
    state: AppState, sessions: ShardSessions, world: World
) -> None:
    """A block hides the viewer from the people on its other side, too."""
    for other in (world.blocked, world.blocker):
        seen_by_other = direct(state, sessions, other.id)
        assert await seen_by_other.user(world.viewer.id) is None
        # They still see everyone else.
        assert (await seen_by_other.user(world.public.id)) is not None


_TABLE = re.compile(r'FROM\s+"?(shard_\d+)"?\."?(\w+)"?', re.IGNORECASE)


def shards_by_table(statements: Sequence[str]) -> dict[str, Counter[str]]:
    """Per table, how many statements read it on each shard."""
    found: dict[str, Counter[str]] = {}
    for statement in statements:
        match = _TABLE.search(statement)
        if match:
            found.setdefault(match.group(2), Counter())[match.group(1)] += 1
    return found


@dataclass(frozen=True)
class Spread:
    """Ten authors, one on every shard (up to ten shards), five posts each, and comments."""

    viewer: User
    authors: list[User]  # 0-6 public, 7-9 private; the viewer follows 7 and 8, blocked 6
    post_ids: list[int]  # 50: round n holds one post of each author, in author order
    author_of: dict[int, int]
    comment_ids: list[int]  # 21, by the public authors on public authors' posts
    comment_visible: list[bool]

    @property
    def visible_authors(self) -> set[int]:
        # Not the blocked author (6), nor the private one the viewer does not follow (9).
        return {author.id for author in self.authors[:6] + self.authors[7:9]}


@pytest.fixture(scope="module")
async def spread(state: AppState) -> Spread:
    sessions = ShardSessions(state.runtime.databases)
    shard_map = sessions.shard_map
    # Pick names until each shard has an author, then fill up to ten.
    names: list[str] = []
    covered: set[int] = set()
    while len(names) < 10:
        name = unique_name("spread")
        shard = shard_map.shard_for_username(name)
        if shard not in covered or len(covered) == shard_map.logical_shards:
            names.append(name)
            covered.add(shard)
    viewer = await new_user(state, sessions, "counter")
    authors = [
        await new_user(state, sessions, "spread", private=index >= 7, username=name)
        for index, name in enumerate(names)
    ]
    assert {shard_of(author.id) for author in authors} == covered
    assert len(covered) == min(10, shard_map.logical_shards)
    for author in authors[7:9]:
        await follow_approved(state, sessions, viewer, author)
    await blocks.block(state, sessions, viewer.id, authors[6].id)
    post_ids = [
        (await new_post(state, sessions, author, f"n{n}")).id
        for n in range(5)
        for author in authors
    ]
    author_of = {post_id: authors[index % 10].id for index, post_id in enumerate(post_ids)}

    public_ids = {author.id for author in authors[:7]}
    public_posts = [i for i in post_ids if author_of[i] in public_ids]
    comment_ids: list[int] = []
    comment_visible: list[bool] = []
    for k in range(21):
        commenter, post_id = authors[k % 7], public_posts[(k * 3) % len(public_posts)]
        row = await comments.add_comment(
            state, sessions, commenter.id, post_id, body="hi", reply_to=None
        )
        comment_ids.append(row.id)
        # Hidden: the blocked author's comments, and every comment on their posts.
        comment_visible.append(authors[6].id not in (commenter.id, author_of[post_id]))
    assert 0 < sum(comment_visible) < len(comment_ids)
    return Spread(viewer, authors, post_ids, author_of, comment_ids, comment_visible)


async def forget_everything(state: AppState, spread: Spread) -> None:
    """Nothing about these rows or the viewer's relations left in Redis."""
    await state.of(PostCaches).comment_cache.invalidate(*spread.comment_ids)
    await state.of(PostCaches).post_cache.invalidate(*spread.post_ids)
    await state.of(AccountCaches).user_cache.invalidate(*(author.id for author in spread.authors))
    await state.of(AccountCaches).block_sets.changed(spread.viewer.id)
    await state.of(AccountCaches).following_sets.changed(spread.viewer.id)


async def test_a_posts_batch_costs_one_statement_per_shard_per_kind(
    state: AppState, sessions: ShardSessions, spread: Spread
) -> None:
    """50 posts by 10 authors on every shard, caches cold: one statement per shard for the
    posts, one per shard for their authors, one for the viewer's blocks and one for whom
    they follow; ten posts cost the same; warm, no SQL at all."""
    ids = spread.post_ids

    async def cold_read(batch: list[int]) -> tuple[list[int | None], WorkCounter]:
        await forget_everything(state, spread)
        with count_work() as work:
            answer = await direct(state, sessions, spread.viewer.id).posts(batch)
        return ids_of(answer), work

    # One post per author: every shard, every kind of statement.
    _, small = await cold_read(ids[:10])
    answer, cold = await cold_read(ids)
    assert answer == [i if spread.author_of[i] in spread.visible_authors else None for i in ids]
    post_shards = {f"shard_{shard_of(i):04d}" for i in ids}
    per_table = shards_by_table(cold.statements)
    assert set(per_table) == {"posts", "users", "blocks", "following"}, cold.statements
    assert per_table["posts"] == dict.fromkeys(post_shards, 1)
    assert per_table["users"] == dict.fromkeys(post_shards, 1)  # authors live with posts
    assert sum(per_table["blocks"].values()) == 1
    # Some authors are private: whom the viewer follows is read, once.
    assert sum(per_table["following"].values()) == 1
    # Five times the posts, not one more statement or round trip.
    assert cold.sql_statements == small.sql_statements
    assert cold.redis_round_trips == small.redis_round_trips

    with count_work() as warm:
        again = await direct(state, sessions, spread.viewer.id).posts(ids)
    assert ids_of(again) == answer
    assert warm.sql_statements == 0, warm.statements
    assert warm.redis_round_trips < cold.redis_round_trips


async def cold_comments(
    state: AppState, sessions: ShardSessions, spread: Spread
) -> dict[str, Counter[str]]:
    await forget_everything(state, spread)
    with count_work() as work:
        seen = await direct(state, sessions, spread.viewer.id).comments(spread.comment_ids)
    assert ids_of(seen) == [
        c if ok else None for c, ok in zip(spread.comment_ids, spread.comment_visible, strict=True)
    ]
    return shards_by_table(work.statements)


async def test_a_comments_batch_costs_a_few_statements_per_shard(
    state: AppState, sessions: ShardSessions, spread: Spread
) -> None:
    """21 comments, cold: per shard at most one read of comments, one of posts and two of
    users; the block set at most twice.

    Two, not one: ``comments`` looks up commenters while ``posts`` looks up post authors,
    concurrently, and DirectFacts shares neither those reads nor (until its first load
    ends) the block set. Whether the second lookup finds the first one's cache fill
    depends on timing, so only the bound is fixed."""
    per_table = await cold_comments(state, sessions, spread)
    assert set(per_table) == {"comments", "posts", "users", "blocks"}
    assert max(per_table["comments"].values()) == 1
    assert max(per_table["posts"].values()) == 1
    assert max(per_table["users"].values()) <= 2
    assert sum(per_table["blocks"].values()) <= 2
