"""What a page says about the rest agrees with what the viewer may see: ``commentCount``
leaves out the comments of anyone on either side of a block with the viewer, and
``hasNextPage`` is false when only hidden items remain past a page."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from db.runtime import Runtime
from domain.state import AppState
from graphql_api.relay import DEFAULT_PAGE_SIZE, MAX_LOOK_AHEAD_READS, has_visible_next
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from workers.runner import drain_jobs

POST = "query($id: ID!) { node(id: $id) { ... on Post { commentCount } } }"
FEED = """
query($first: Int) {
  homeFeed(first: $first) {
    nodes { id commentCount }
    pageInfo { hasNextPage }
  }
}
"""
GRID = """
query($u: String!) { user(username: $u) { posts(first: 5) { nodes { id commentCount } } } }
"""
ADD_COMMENT = """
mutation($p: ID!, $b: String!, $r: ID) {
  addComment(postId: $p, body: $b, replyTo: $r) { comment { id } }
}
"""
DELETE_COMMENT = "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId } }"
BLOCK = "mutation($id: ID!) { block(userId: $id) { blockedUserId } }"


async def comment(
    gql: GraphQLClient, author: Account, post_id: str, body: str, *, reply_to: str | None = None
) -> str:
    result = await gql(ADD_COMMENT, {"p": post_id, "b": body, "r": reply_to}, token=author.token)
    comment_id: str = result.ok()["addComment"]["comment"]["id"]
    return comment_id


async def block(gql: GraphQLClient, blocker: Account, blocked: Account) -> None:
    (await gql(BLOCK, {"id": blocked.id}, token=blocker.token)).ok()


async def comment_count(gql: GraphQLClient, viewer: Account, post_id: str) -> int:
    count: int = (await gql(POST, {"id": post_id}, token=viewer.token)).ok()["node"]["commentCount"]
    return count


async def counts_on_every_surface(
    gql: GraphQLClient, viewer: Account, author: Account, post_id: str
) -> set[int]:
    """The post's commentCount on its own page, the home feed and the author's grid, each
    read twice: cold (batch reads) and warm (the page's planned read)."""
    found: set[int] = set()
    for _ in range(2):
        found.add(await comment_count(gql, viewer, post_id))
        feed = (await gql(FEED, {"first": 5}, token=viewer.token)).ok()["homeFeed"]["nodes"]
        found |= {node["commentCount"] for node in feed if node["id"] == post_id}
        grid = (await gql(GRID, {"u": author.username}, token=viewer.token)).ok()
        found |= {
            node["commentCount"] for node in grid["user"]["posts"]["nodes"] if node["id"] == post_id
        }
    return found


async def test_comment_count_leaves_out_comments_of_blocked_accounts(
    gql: GraphQLClient, state: AppState, runtime: Runtime
) -> None:
    author, viewer, friend, troll = [
        await sign_up(gql, name) for name in ("vc.author", "vc.viewer", "vc.friend", "vc.troll")
    ]
    await follow(gql, viewer, author)
    post_id = await create_post(gql, author, "a post with comments")
    await drain_jobs(state)
    friendly = await comment(gql, friend, post_id, "nice")
    await comment(gql, troll, post_id, "boo")
    # A reply counts too (commentCount: all comments, replies included).
    await comment(gql, troll, post_id, "boo again", reply_to=friendly)
    assert await comment_count(gql, viewer, post_id) == 3

    await block(gql, viewer, troll)
    assert await counts_on_every_surface(gql, viewer, author, post_id) == {1}
    # Everyone else still counts every comment.
    assert await counts_on_every_surface(gql, author, author, post_id) == {3}

    # Comments added and deleted after the counts are cached move them for each viewer.
    extra = await comment(gql, troll, post_id, "and more")
    await comment(gql, friend, post_id, "thanks")
    assert await counts_on_every_surface(gql, viewer, author, post_id) == {2}
    assert await counts_on_every_surface(gql, author, author, post_id) == {5}
    (await gql(DELETE_COMMENT, {"id": extra}, token=troll.token)).ok()
    assert await counts_on_every_surface(gql, viewer, author, post_id) == {2}

    # Rebuilt from PostgreSQL after a flush, not reset.
    await runtime.redis.flushdb()
    assert await counts_on_every_surface(gql, viewer, author, post_id) == {2}
    assert await counts_on_every_surface(gql, author, author, post_id) == {4}


async def test_a_block_either_way_hides_the_comments_from_the_count(
    gql: GraphQLClient, state: AppState
) -> None:
    author, viewer, troll = [await sign_up(gql, f"vc2.{n}") for n in ("author", "viewer", "troll")]
    post_id = await create_post(gql, author, "post")
    await comment(gql, troll, post_id, "one")
    await comment(gql, viewer, post_id, "two")
    assert await comment_count(gql, viewer, post_id) == 2
    await block(gql, troll, viewer)  # the troll blocked the viewer: hidden both ways
    assert await comment_count(gql, viewer, post_id) == 1
    assert await comment_count(gql, troll, post_id) == 1
    assert await comment_count(gql, author, post_id) == 2


async def test_a_viewer_with_blocks_pays_no_sql_and_no_extra_round_trip_on_a_warm_feed(
    gql: GraphQLClient, state: AppState
) -> None:
    author, viewer, troll = [await sign_up(gql, f"vc3.{n}") for n in ("author", "viewer", "troll")]
    await follow(gql, viewer, author)
    post_ids = [await create_post(gql, author, f"post {n}") for n in range(3)]
    await drain_jobs(state)
    for post_id in post_ids:
        await comment(gql, troll, post_id, "boo")
        await comment(gql, author, post_id, "hi")
    await block(gql, viewer, troll)
    first = await gql(FEED, {"first": 3}, token=viewer.token)
    warm = await gql(FEED, {"first": 3}, token=viewer.token)
    assert warm.ok() == first.ok()
    assert [node["commentCount"] for node in warm.ok()["homeFeed"]["nodes"]] == [1, 1, 1]
    assert warm.work.sql_statements == 0, warm.work.statements
    # As for a viewer without blocks (tests/test_compiled_execution.py): the session, the
    # feed chunk, the rows with counters, the authors with follows (and here the hidden
    # commenters' counts).
    assert warm.work.redis_round_trips <= 4, warm.work


# hasNextPage ---------------------------------------------------------------------------

HASHTAG = """
query($first: Int, $after: String) {
  postsByHashtag(tag: "vcnext", first: $first, after: $after) {
    nodes { caption }
    pageInfo { hasNextPage endCursor }
  }
}
"""
COMMENTS = """
query($id: ID!, $first: Int) {
  node(id: $id) { ... on Post {
    comments(first: $first) { nodes { body } pageInfo { hasNextPage } }
  } }
}
"""
REPLIES = """
query($id: ID!, $first: Int) {
  node(id: $id) { ... on Comment {
    replies(first: $first) { nodes { body } pageInfo { hasNextPage } }
  } }
}
"""
SAVED = """
query($first: Int) {
  savedPosts(first: $first) { nodes { caption } pageInfo { hasNextPage } }
}
"""


def page_of(result: Any, *path: str) -> tuple[list[str], bool]:
    connection = result.ok()
    for key in path:
        connection = connection[key]
    texts = [next(iter(node.values())) for node in connection["nodes"]]
    return texts, connection["pageInfo"]["hasNextPage"]


async def test_hashtag_page_has_no_next_page_when_only_hidden_posts_remain(
    gql: GraphQLClient,
) -> None:
    viewer, friend, troll = [await sign_up(gql, f"vn1.{n}") for n in ("viewer", "friend", "troll")]
    for n in range(3):
        await create_post(gql, troll, f"hidden {n} #vcnext")
    await create_post(gql, friend, "older #vcnext")
    await create_post(gql, friend, "newer #vcnext")
    await block(gql, viewer, troll)

    result = await gql(HASHTAG, {"first": 2}, token=viewer.token)
    assert page_of(result, "postsByHashtag") == (["newer #vcnext", "older #vcnext"], False)
    # Paging on from a visible next post.
    one = await gql(HASHTAG, {"first": 1}, token=viewer.token)
    assert page_of(one, "postsByHashtag") == (["newer #vcnext"], True)
    second = await gql(
        HASHTAG,
        {"first": 1, "after": one.ok()["postsByHashtag"]["pageInfo"]["endCursor"]},
        token=viewer.token,
    )
    assert page_of(second, "postsByHashtag") == (["older #vcnext"], False)
    # A visible post past the hidden ones still counts as a next page.
    await create_post(gql, troll, "hidden newest #vcnext")
    others = await gql(HASHTAG, {"first": 1}, token=troll.token)
    assert page_of(others, "postsByHashtag") == (["hidden newest #vcnext"], True)


async def test_a_page_of_hidden_items_alone_says_nothing(gql: GraphQLClient) -> None:
    viewer, troll = [await sign_up(gql, f"vn5.{n}") for n in ("viewer", "troll")]
    post_id = await create_post(gql, viewer, "mine")
    for n in range(3):
        await create_post(gql, troll, f"hidden {n} #vconly")
        await comment(gql, troll, post_id, f"hidden {n}")
    await block(gql, viewer, troll)
    nothing = {"hasNextPage": False, "startCursor": None, "endCursor": None}
    info = "pageInfo { hasNextPage startCursor endCursor }"
    tagged = await gql(
        f'{{ postsByHashtag(tag: "vconly", first: 2) {{ nodes {{ id }} {info} }} }}',
        token=viewer.token,
    )
    assert tagged.ok()["postsByHashtag"] == {"nodes": [], "pageInfo": nothing}
    thread = await gql(
        f"query($id: ID!) {{ node(id: $id) {{ ... on Post {{ comments(first: 2) {{ nodes {{ id }} "
        f"{info} }} }} }} }}",
        {"id": post_id},
        token=viewer.token,
    )
    assert thread.ok()["node"]["comments"] == {"nodes": [], "pageInfo": nothing}


async def test_comment_threads_have_no_next_page_when_only_hidden_comments_remain(
    gql: GraphQLClient,
) -> None:
    author, viewer, troll = [await sign_up(gql, f"vn2.{n}") for n in ("author", "viewer", "troll")]
    post_id = await create_post(gql, author, "thread")
    first = await comment(gql, author, post_id, "first")
    await comment(gql, author, post_id, "second")
    for n in range(3):
        await comment(gql, troll, post_id, f"troll {n}")
    await comment(gql, author, post_id, "reply", reply_to=first)
    for n in range(3):
        await comment(gql, troll, post_id, f"troll reply {n}", reply_to=first)
    await block(gql, viewer, troll)

    page = await gql(COMMENTS, {"id": post_id, "first": 2}, token=viewer.token)
    assert page_of(page, "node", "comments") == (["first", "second"], False)
    # A deep page (read from PostgreSQL, past the cached first comments) says the same.
    deep = await gql(COMMENTS, {"id": post_id, "first": 40}, token=viewer.token)
    assert page_of(deep, "node", "comments") == (["first", "second"], False)
    replies = await gql(REPLIES, {"id": first, "first": 1}, token=viewer.token)
    assert page_of(replies, "node", "replies") == (["reply"], False)
    # The author sees every comment, so there is more.
    assert page_of(
        await gql(COMMENTS, {"id": post_id, "first": 2}, token=author.token), "node", "comments"
    ) == (["first", "second"], True)


async def test_saved_posts_have_no_next_page_when_only_hidden_posts_remain(
    gql: GraphQLClient,
) -> None:
    viewer, friend, troll = [await sign_up(gql, f"vn3.{n}") for n in ("viewer", "friend", "troll")]
    hidden = [await create_post(gql, troll, f"hidden {n}") for n in range(2)]
    shown = [await create_post(gql, friend, f"shown {n}") for n in range(2)]
    for post_id in hidden + shown:
        save = "mutation($p: ID!) { savePost(postId: $p) { post { id } } }"
        (await gql(save, {"p": post_id}, token=viewer.token)).ok()
    await block(gql, viewer, troll)
    result = await gql(SAVED, {"first": 2}, token=viewer.token)
    assert page_of(result, "savedPosts") == (["shown 1", "shown 0"], False)


async def test_home_feed_has_no_next_page_when_only_hidden_posts_remain(
    gql: GraphQLClient, state: AppState, tuned_gql: Any
) -> None:
    viewer, friend, gone = [await sign_up(gql, f"vn4.{n}") for n in ("viewer", "friend", "gone")]
    await follow(gql, viewer, friend)
    await follow(gql, viewer, gone)
    await create_post(gql, friend, "oldest")
    for n in range(6):
        await create_post(gql, gone, f"gone {n}")
    await create_post(gql, friend, "newest")
    await drain_jobs(state)
    (await gql("mutation { deleteAccount { deletedUserId } }", token=gone.token)).ok()
    await drain_jobs(state)

    precomputed = await gql(FEED_CAPTIONS, {"first": 1}, token=viewer.token)
    assert page_of(precomputed, "homeFeed") == (["newest"], True)
    assert page_of(await gql(FEED_CAPTIONS, {"first": 2}, token=viewer.token), "homeFeed") == (
        ["newest", "oldest"],
        False,
    )
    # Fan-out on read (the baseline, and the path while Redis is down) says the same.
    baseline, _ = await tuned_gql(feed_read_strategy="fanout_on_read")
    assert page_of(await baseline(FEED_CAPTIONS, {"first": 1}, token=viewer.token), "homeFeed") == (
        ["newest"],
        True,
    )
    assert page_of(await baseline(FEED_CAPTIONS, {"first": 2}, token=viewer.token), "homeFeed") == (
        ["newest", "oldest"],
        False,
    )


FEED_CAPTIONS = """
query($first: Int) { homeFeed(first: $first) { nodes { caption } pageInfo { hasNextPage } } }
"""


async def test_look_ahead_past_hidden_items_is_bounded() -> None:
    """Past ``MAX_LOOK_AHEAD_READS`` reads of hidden items the answer is true (Relay
    allows an empty next page then); a list that ends among hidden items answers false."""
    reads: list[int] = []

    def listing(length: int, *, visible_from: int) -> tuple[Any, Any]:
        async def read_after(last: int, count: int) -> list[int]:
            reads.append(count)
            return list(range(last + 1, min(last + 1 + count, length)))

        async def visible(items: Sequence[int]) -> list[bool]:
            return [item >= visible_from for item in items]

        return read_after, visible

    read_after, visible = listing(1000, visible_from=900)
    assert await has_visible_next([0], visible=visible, read_after=read_after, limit=5)
    assert reads == [DEFAULT_PAGE_SIZE] * MAX_LOOK_AHEAD_READS
    reads.clear()
    read_after, visible = listing(50, visible_from=40)
    assert await has_visible_next([0], visible=visible, read_after=read_after, limit=5)
    assert len(reads) == 2
    reads.clear()
    read_after, visible = listing(30, visible_from=900)
    assert not await has_visible_next([0], visible=visible, read_after=read_after, limit=5)
    assert len(reads) == 2
    assert not await has_visible_next([], visible=visible, read_after=read_after, limit=5)
