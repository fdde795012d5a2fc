"""Post rules, called on the domain directly: captions, who may change a post, likes and
comments only on posts the viewer can see, and one level of replies (domain/posts/)."""

from __future__ import annotations

import pytest

from db.accounts.records import UserRecord as User
from db.posts.caches import PostCaches
from db.posts.records import PostRecord as Post
from db.session import ShardSessions
from domain.accounts import blocks, profiles
from domain.errors import BadUserInput, Forbidden, NotFound
from domain.posts import comments, likes, posts
from domain.state import AppState
from domain.visibility import direct
from tests.domain.support import new_post, new_user, reload, unique_name


async def tagged(sessions: ShardSessions, tag: str) -> list[int]:
    return await posts.hashtag_post_ids(sessions, tag, before_id=None, limit=50)


async def caption_seen_by(
    state: AppState, sessions: ShardSessions, viewer: User, post: Post
) -> str | None:
    seen = await direct(state, sessions, viewer.id).post(post.id)
    return None if seen is None else seen.caption


async def like_count(state: AppState, sessions: ShardSessions, post: Post) -> int:
    (count,) = await likes.like_counts(state, sessions, [post.id])
    return count


async def recounted_likes(state: AppState, sessions: ShardSessions, post: Post) -> int:
    """The count PostgreSQL gives, with the hot counter dropped."""
    await state.runtime.redis.delete(state.of(PostCaches).post_likes.key(post.id))
    return await like_count(state, sessions, post)


async def comment_count(state: AppState, sessions: ShardSessions, post: Post) -> int:
    (count,) = await comments.comment_counts(state, sessions, [post.id])
    return count


async def comment(
    state: AppState, sessions: ShardSessions, author: User, post: Post, reply_to: int | None = None
) -> int:
    row = await comments.add_comment(
        state, sessions, author.id, post.id, body=f"from {author.username}", reply_to=reply_to
    )
    return row.id


# Captions ------------------------------------------------------------------------------


async def test_create_post_indexes_hashtags_and_known_mentions(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "poster")
    friend = await new_user(state, sessions, "Friend")
    tag = unique_name("sun").replace(".", "_")
    ghost = unique_name("ghost")  # nobody has this name
    caption = (
        f"Evening #{tag.upper()} and #{tag} again, #Été! with @{friend.username.upper()}, "
        f"@{friend.username}. and @{ghost} (mail me: me@{friend.username})"
    )
    post = await posts.create_post(state, sessions, author.id, caption=caption)
    assert post.caption == caption
    assert post.author_id == author.id

    # The tag in any case names one tag, normalised; the post is indexed once under it.
    assert (await tagged(sessions, tag)).count(post.id) == 1
    assert (await tagged(sessions, tag.upper())).count(post.id) == 1
    assert post.id in await tagged(sessions, "été")
    # The friend once, however often and in whatever case; the unknown name dropped; an
    # email address is no mention.
    assert await posts.mentioned_user_ids(sessions, [post.id]) == [[friend.id]]
    # The author's count and grid moved with it.
    assert (await reload(state, sessions, author)).post_count == 1
    grid = await posts.author_post_ids(
        state, sessions, direct(state, sessions, None), author, before_id=None, limit=10
    )
    assert grid == [post.id]


async def test_a_mention_finds_a_user_who_signed_up_after_being_missed(
    state: AppState, sessions: ShardSessions
) -> None:
    """An unknown name is remembered as unknown for a while; signing up under it must end
    that, or the new user could not be mentioned until the cache entry expired."""
    author = await new_user(state, sessions, "early")
    newcomer_name = unique_name("newcomer")
    before = await new_post(state, sessions, author, f"where is @{newcomer_name}")
    assert await posts.mentioned_user_ids(sessions, [before.id]) == [[]]
    newcomer = await new_user(state, sessions, "x", username=newcomer_name)
    after = await new_post(state, sessions, author, f"hello @{newcomer_name}")
    assert await posts.mentioned_user_ids(sessions, [before.id, after.id]) == [[], [newcomer.id]]


async def test_caption_limits(state: AppState, sessions: ShardSessions) -> None:
    author = await new_user(state, sessions, "verbose")
    with pytest.raises(BadUserInput) as raised:
        await posts.create_post(state, sessions, author.id, caption="x" * 2201)
    assert raised.value.extensions["field"] == "caption"
    # At the limit is fine.
    await posts.create_post(state, sessions, author.id, caption="x" * 2200)


# Edits and deletes ---------------------------------------------------------------------


async def test_only_the_author_can_edit_or_delete_a_post(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "author")
    other = await new_user(state, sessions, "meddler")
    old_tag, new_tag = unique_name("old").replace(".", "_"), unique_name("new").replace(".", "_")
    post = await new_post(state, sessions, author, f"first #{old_tag}")

    with pytest.raises(Forbidden):
        await posts.edit_caption(state, sessions, other.id, post.id, caption="defaced")
    with pytest.raises(Forbidden):
        await posts.delete_post(state, sessions, other.id, post.id)
    assert await caption_seen_by(state, sessions, other, post) == f"first #{old_tag}"

    edited = await posts.edit_caption(
        state, sessions, author.id, post.id, caption=f"second #{new_tag} @{other.username}"
    )
    assert edited.caption == f"second #{new_tag} @{other.username}"
    assert post.id not in await tagged(sessions, old_tag)
    assert post.id in await tagged(sessions, new_tag)
    assert await posts.mentioned_user_ids(sessions, [post.id]) == [[other.id]]
    assert await caption_seen_by(state, sessions, other, post) == edited.caption

    await posts.delete_post(state, sessions, author.id, post.id)
    assert await direct(state, sessions, author.id).post(post.id) is None
    assert post.id not in await tagged(sessions, new_tag)
    assert (await reload(state, sessions, author)).post_count == 0
    # Gone for its author too: no second delete, no edit.
    with pytest.raises(NotFound):
        await posts.delete_post(state, sessions, author.id, post.id)
    with pytest.raises(NotFound):
        await posts.edit_caption(state, sessions, author.id, post.id, caption="back")


async def test_a_post_you_cannot_see_cannot_be_edited_either(
    state: AppState, sessions: ShardSessions
) -> None:
    """An invisible post answers NOT_FOUND, not FORBIDDEN: nothing tells it exists."""
    author = await new_user(state, sessions, "secretive", private=True)
    stranger = await new_user(state, sessions, "stranger")
    post = await new_post(state, sessions, author, "hidden")
    with pytest.raises(NotFound):
        await posts.edit_caption(state, sessions, stranger.id, post.id, caption="x")
    with pytest.raises(NotFound):
        await posts.delete_post(state, sessions, stranger.id, post.id)


# Likes and comments need a visible post ------------------------------------------------


@pytest.mark.parametrize("why", ["private", "blocked", "blocker", "deleted post", "deleted author"])
async def test_no_likes_or_comments_on_a_post_you_cannot_see(
    state: AppState, sessions: ShardSessions, why: str
) -> None:
    author = await new_user(state, sessions, "hidden", private=why == "private")
    viewer = await new_user(state, sessions, "outsider")
    post = await new_post(state, sessions, author, "not for you")
    own_comment = await comment(state, sessions, author, post)
    if why == "blocked":
        await blocks.block(state, sessions, author.id, viewer.id)
    elif why == "blocker":
        await blocks.block(state, sessions, viewer.id, author.id)
    elif why == "deleted post":
        await posts.delete_post(state, sessions, author.id, post.id)
    elif why == "deleted author":
        await profiles.delete_account(state, sessions, author.id)
    assert await direct(state, sessions, viewer.id).post(post.id) is None

    with pytest.raises(NotFound):
        await likes.set_post_like(state, sessions, viewer.id, post.id, liked=True)
    with pytest.raises(NotFound):
        await comments.add_comment(state, sessions, viewer.id, post.id, body="hi", reply_to=None)
    with pytest.raises(NotFound):
        await comments.add_comment(
            state, sessions, viewer.id, post.id, body="hi", reply_to=own_comment
        )
    with pytest.raises(NotFound):
        await likes.set_comment_like(state, sessions, viewer.id, own_comment, liked=True)
    assert await recounted_likes(state, sessions, post) == 0
    assert await likes.comment_like_counts(state, sessions, [own_comment]) == [0]
    # Only the author's own comment: the refused ones left nothing behind.
    assert await comment_count(state, sessions, post) == 1
    assert await likes.viewer_liked_posts(state, sessions, viewer.id, [post.id]) == [False]


async def test_liking_twice_counts_once(state: AppState, sessions: ShardSessions) -> None:
    author = await new_user(state, sessions, "liked")
    fan = await new_user(state, sessions, "fan")
    other_fan = await new_user(state, sessions, "fan")
    post = await new_post(state, sessions, author, "like me")
    # Read first, so that the hot counter exists and every change must keep it right.
    assert await like_count(state, sessions, post) == 0

    await likes.set_post_like(state, sessions, fan.id, post.id, liked=True)
    await likes.set_post_like(state, sessions, fan.id, post.id, liked=True)
    assert await like_count(state, sessions, post) == 1
    assert await recounted_likes(state, sessions, post) == 1
    assert await likes.viewer_liked_posts(state, sessions, fan.id, [post.id]) == [True]
    assert await likes.viewer_liked_posts(state, sessions, other_fan.id, [post.id]) == [False]

    await likes.set_post_like(state, sessions, other_fan.id, post.id, liked=True)
    assert await like_count(state, sessions, post) == 2
    # Unliking twice takes one away, once.
    await likes.set_post_like(state, sessions, fan.id, post.id, liked=False)
    await likes.set_post_like(state, sessions, fan.id, post.id, liked=False)
    assert await like_count(state, sessions, post) == 1
    assert await recounted_likes(state, sessions, post) == 1
    assert await likes.viewer_liked_posts(state, sessions, fan.id, [post.id]) == [False]


async def test_liking_a_comment_twice_counts_once(state: AppState, sessions: ShardSessions) -> None:
    author = await new_user(state, sessions, "chatty")
    fan = await new_user(state, sessions, "fan")
    post = await new_post(state, sessions, author, "talk")
    comment_id = await comment(state, sessions, author, post)
    assert await likes.comment_like_counts(state, sessions, [comment_id]) == [0]
    for _ in range(2):
        await likes.set_comment_like(state, sessions, fan.id, comment_id, liked=True)
    assert await likes.comment_like_counts(state, sessions, [comment_id]) == [1]
    await state.runtime.redis.delete(state.of(PostCaches).comment_likes.key(comment_id))
    assert await likes.comment_like_counts(state, sessions, [comment_id]) == [1]
    assert await likes.viewer_liked_comments(state, sessions, fan.id, [comment_id]) == [True]


# Threads -------------------------------------------------------------------------------


async def test_a_reply_to_a_reply_joins_the_thread(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "threader")
    first, second = (
        await new_user(state, sessions, "replier"),
        await new_user(state, sessions, "replier"),
    )
    post = await new_post(state, sessions, author, "discuss")

    top = await comment(state, sessions, first, post)
    reply = await comment(state, sessions, second, post, reply_to=top)
    reply_to_reply = await comment(state, sessions, author, post, reply_to=reply)

    rows = await direct(state, sessions, author.id).comments([top, reply, reply_to_reply])
    assert [(row.post_id, row.parent_id) for row in rows if row is not None] == [
        (post.id, None),
        (post.id, top),
        (post.id, top),
    ]
    top_level = await comments.comment_page_ids(
        state, sessions, owner_id=post.id, replies=False, after_id=None, limit=10
    )
    thread = await comments.comment_page_ids(
        state, sessions, owner_id=top, replies=True, after_id=None, limit=10
    )
    assert top_level == [top]
    assert thread == [reply, reply_to_reply]
    assert await comment_count(state, sessions, post) == 3


async def test_a_reply_must_be_to_a_visible_comment_on_the_same_post(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "host")
    guest = await new_user(state, sessions, "guest")
    troll = await new_user(state, sessions, "troll")
    post, other_post = (
        await new_post(state, sessions, author, "a"),
        await new_post(state, sessions, author, "b"),
    )
    elsewhere = await comment(state, sessions, author, other_post)
    by_troll = await comment(state, sessions, troll, post)
    await blocks.block(state, sessions, guest.id, troll.id)

    with pytest.raises(NotFound):
        await comments.add_comment(
            state, sessions, guest.id, post.id, body="re", reply_to=elsewhere
        )
    with pytest.raises(NotFound):
        await comments.add_comment(state, sessions, guest.id, post.id, body="re", reply_to=by_troll)
    gone = await comment(state, sessions, author, post)
    await comments.delete_comment(state, sessions, author.id, gone)
    with pytest.raises(NotFound):
        await comments.add_comment(state, sessions, guest.id, post.id, body="re", reply_to=gone)
    with pytest.raises(BadUserInput) as raised:
        await comments.add_comment(state, sessions, guest.id, post.id, body="   ", reply_to=None)
    assert raised.value.extensions["field"] == "body"
    assert await comment_count(state, sessions, post) == 1


async def test_comment_deleted_by_its_author_or_the_post_author_only(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "postowner")
    commenter = await new_user(state, sessions, "commenter")
    bystander = await new_user(state, sessions, "bystander")
    post = await new_post(state, sessions, owner, "moderated")
    first = await comment(state, sessions, commenter, post)
    second = await comment(state, sessions, commenter, post)
    assert await comment_count(state, sessions, post) == 2

    with pytest.raises(Forbidden):
        await comments.delete_comment(state, sessions, bystander.id, first)

    deleted = await comments.delete_comment(state, sessions, owner.id, first)
    assert deleted.id == first
    await comments.delete_comment(state, sessions, commenter.id, second)

    for viewer in (owner, commenter, bystander):
        assert await direct(state, sessions, viewer.id).comments([first, second]) == [None, None]
    assert await comment_count(state, sessions, post) == 0
    assert (
        await comments.comment_page_ids(
            state, sessions, owner_id=post.id, replies=False, after_id=None, limit=10
        )
        == []
    )
    with pytest.raises(NotFound):
        await comments.delete_comment(state, sessions, owner.id, first)
    # Deleting twice did not count twice.
    assert await comment_count(state, sessions, post) == 0
