"""Edge cases found in review: replies to mutations respect blocks, ids on missing shards,
feeds whose read entries are all hidden, a full profile page, requests to accounts that
went public, and comments by blocked users."""

from __future__ import annotations

import base64

from aperture.seed import Graph, load_graph
from db.feed.caches import FeedCaches
from db.ids import compose_id
from db.runtime import Runtime
from db.session import ShardSessions
from domain.state import AppState
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, create_post, follow, sign_up
from workers.runner import drain_jobs


async def test_mutation_replies_do_not_show_a_user_who_blocked_you(gql: GraphQLClient) -> None:
    viewer, blocker = await sign_up(gql, "rv.viewer"), await sign_up(gql, "rv.blocker")
    await follow(gql, viewer, blocker)
    await gql(
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": viewer.id},
        token=blocker.token,
    )
    result = await gql(
        "mutation($id: ID!) { unfollow(userId: $id) { status user { username followers { edges { node { id } } } } } }",
        {"id": blocker.id},
        token=viewer.token,
    )
    assert result.codes == ["NOT_FOUND"]
    assert result.data is None


async def test_user_id_on_a_missing_shard_is_not_found_in_mutations(gql: GraphQLClient) -> None:
    viewer = await sign_up(gql, "rv.shard")
    ghost = base64.b64encode(
        f"User:{compose_id(milliseconds_since_epoch=9, shard=4000, sequence=1)}".encode()
    ).decode()
    for mutation in ("unfollow", "unblock", "removeFollower", "follow", "block"):
        field = "status" if mutation in ("unfollow", "follow") else "__typename"
        result = await gql(
            f"mutation($id: ID!) {{ {mutation}(userId: $id) {{ {field} }} }}",
            {"id": ghost},
            token=viewer.token,
        )
        assert result.codes == ["NOT_FOUND"], (mutation, result.errors)


async def test_a_feed_page_of_hidden_entries_still_moves_on(
    gql: GraphQLClient, state: AppState
) -> None:
    viewer, friend, stranger = (
        await sign_up(gql, "hid.viewer"),
        await sign_up(gql, "hid.friend"),
        await sign_up(gql, "hid.stranger"),
    )
    await follow(gql, viewer, friend)
    real = await create_post(gql, friend, "the one to find")
    await drain_jobs(state)
    assert len(await state.of(FeedCaches).feeds.all_entries(from_global_id(viewer.id)[1])) == 1
    # Entries the viewer may not see (an author they do not follow), newer than the real one.
    hidden = [from_global_id(await create_post(gql, stranger, f"h{n}"))[1] for n in range(14)]
    await state.of(FeedCaches).feeds.push([from_global_id(viewer.id)[1]], hidden)
    query = (
        "query($after: String) { homeFeed(first: 1, after: $after) { "
        "edges { node { id } } pageInfo { hasNextPage endCursor } } }"
    )
    seen: list[str] = []
    after = None
    for _ in range(10):
        page = (await gql(query, {"after": after}, token=viewer.token)).ok()["homeFeed"]
        seen += [edge["node"]["id"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            break
        assert page["pageInfo"]["endCursor"] is not None
        after = page["pageInfo"]["endCursor"]
    assert seen == [real]


async def test_a_full_first_profile_page_knows_there_is_more(
    runtime: Runtime, gql: GraphQLClient
) -> None:
    await load_graph(
        ShardSessions(runtime.databases),
        Graph(users=1, edges=[]),
        prefix="prolific",
        posts_per_user=101,
    )
    page = await gql(
        '{ user(username: "prolific0") { posts(first: 100) { edges { cursor } pageInfo { hasNextPage } } } }'
    )
    posts = page.ok()["user"]["posts"]
    assert len(posts["edges"]) == 100
    assert posts["pageInfo"]["hasNextPage"] is True


async def test_pending_request_to_an_account_gone_public_becomes_a_follow(
    gql: GraphQLClient,
) -> None:
    owner, asker = await sign_up(gql, "rv.owner", private=True), await sign_up(gql, "rv.asker")
    assert await follow(gql, asker, owner) == "REQUESTED"
    await gql(
        "mutation { updateProfile(input: {isPrivate: false}) { user { id } } }", token=owner.token
    )
    assert await follow(gql, asker, owner) == "FOLLOWING"


async def test_comments_of_blocked_users_cannot_be_liked_or_answered(gql: GraphQLClient) -> None:
    author, viewer, troll = (
        await sign_up(gql, "cb.author"),
        await sign_up(gql, "cb.viewer"),
        await sign_up(gql, "cb.troll"),
    )
    post = await create_post(gql, author, "public post")
    comment = await gql(
        'mutation($p: ID!) { addComment(postId: $p, body: "troll") { comment { id } } }',
        {"p": post},
        token=troll.token,
    )
    comment_id = comment.ok()["addComment"]["comment"]["id"]
    await gql(
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": troll.id},
        token=viewer.token,
    )
    like = await gql(
        "mutation($id: ID!) { likeComment(commentId: $id) { comment { id } } }",
        {"id": comment_id},
        token=viewer.token,
    )
    assert like.codes == ["NOT_FOUND"]
    reply = await gql(
        'mutation($p: ID!, $r: ID!) { addComment(postId: $p, body: "no", replyTo: $r) { comment { id } } }',
        {"p": post, "r": comment_id},
        token=viewer.token,
    )
    assert reply.codes == ["NOT_FOUND"]
