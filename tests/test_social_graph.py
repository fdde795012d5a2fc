"""Follows, follow requests for private accounts, blocks, and both graph directions."""

from __future__ import annotations

from sqlalchemy import func, select

from db.accounts.models import Follower, Following
from db.ids import shard_of
from db.runtime import Runtime
from db.session import ShardSessions
from graphql_api.relay import from_global_id
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up

COUNTS = "query($u: String!) { user(username: $u) { followerCount followingCount followStatus } }"
FOLLOWERS = (
    "query($u: String!, $first: Int, $after: String) { user(username: $u) { "
    "followers(first: $first, after: $after) { edges { node { username } } "
    "pageInfo { hasNextPage endCursor } } } }"
)


async def _counts(gql: GraphQLClient, viewer: Account, username: str) -> dict[str, object]:
    data: dict[str, object] = (await gql(COUNTS, {"u": username}, token=viewer.token)).ok()["user"]
    return data


async def test_follow_and_unfollow(gql: GraphQLClient) -> None:
    ann, bob = await sign_up(gql, "ann"), await sign_up(gql, "bob")
    assert await follow(gql, ann, bob) == "FOLLOWING"
    assert await follow(gql, ann, bob) == "FOLLOWING", "following twice is idempotent"
    assert await _counts(gql, ann, "bob") == {
        "followerCount": 1,
        "followingCount": 0,
        "followStatus": "FOLLOWING",
    }
    assert (await _counts(gql, ann, "ann"))["followingCount"] == 1
    result = await gql(
        "mutation($id: ID!) { unfollow(userId: $id) { status user { followerCount } } }",
        {"id": bob.id},
        token=ann.token,
    )
    assert result.ok()["unfollow"] == {"status": "NONE", "user": {"followerCount": 0}}
    assert (await _counts(gql, ann, "ann"))["followingCount"] == 0


async def test_both_directions_are_single_shard_rows(gql: GraphQLClient, runtime: Runtime) -> None:
    ann, bob = await sign_up(gql, "dir.ann"), await sign_up(gql, "dir.bob")
    await follow(gql, ann, bob)
    ann_id, bob_id = from_global_id(ann.id)[1], from_global_id(bob.id)[1]
    sessions = ShardSessions(runtime.databases)
    async with sessions.shard(shard_of(ann_id)) as session:
        following = await session.scalar(
            select(func.count())
            .select_from(Following)
            .where(Following.follower_id == ann_id, Following.followee_id == bob_id)
        )
    async with sessions.shard(shard_of(bob_id)) as session:
        followers = await session.scalar(
            select(func.count())
            .select_from(Follower)
            .where(Follower.followee_id == bob_id, Follower.follower_id == ann_id)
        )
    assert (following, followers) == (1, 1)


async def test_followers_connection_pages_with_cursors(gql: GraphQLClient) -> None:
    star = await sign_up(gql, "star")
    fans = [await sign_up(gql, f"fan{n}") for n in range(5)]
    for fan in fans:
        await follow(gql, fan, star)
    seen: list[str] = []
    after = None
    while True:
        page = (await gql(FOLLOWERS, {"u": "star", "first": 2, "after": after})).ok()
        connection = page["user"]["followers"]
        seen += [edge["node"]["username"] for edge in connection["edges"]]
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
    assert seen == [f"fan{n}" for n in reversed(range(5))], "newest follower first"


async def test_first_is_capped_at_100(gql: GraphQLClient) -> None:
    await sign_up(gql, "capped")
    result = await gql(FOLLOWERS, {"u": "capped", "first": 101})
    assert result.codes == ["BAD_USER_INPUT"]
    assert (await gql(FOLLOWERS, {"u": "capped", "first": 100})).errors == []


async def test_private_account_requests_approve_and_deny(gql: GraphQLClient) -> None:
    owner = await sign_up(gql, "private.owner", private=True)
    asker, other = await sign_up(gql, "asker"), await sign_up(gql, "other.asker")
    assert await follow(gql, asker, owner) == "REQUESTED"
    assert await follow(gql, other, owner) == "REQUESTED"
    assert (await _counts(gql, asker, "private.owner"))["followStatus"] == "REQUESTED"
    assert (await _counts(gql, owner, "private.owner"))["followerCount"] == 0

    requests = await gql("{ followRequests { edges { node { username } } } }", token=owner.token)
    assert [e["node"]["username"] for e in requests.ok()["followRequests"]["edges"]] == [
        "other.asker",
        "asker",
    ]
    (
        await gql(
            "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { username } } }",
            {"id": asker.id},
            token=owner.token,
        )
    ).ok()
    (
        await gql(
            "mutation($id: ID!) { denyFollowRequest(userId: $id) { user { username } } }",
            {"id": other.id},
            token=owner.token,
        )
    ).ok()
    assert (await _counts(gql, asker, "private.owner"))["followStatus"] == "FOLLOWING"
    assert (await _counts(gql, other, "private.owner"))["followStatus"] == "NONE"
    assert (await _counts(gql, owner, "private.owner"))["followerCount"] == 1
    # Only the owner can answer, and only pending requests.
    again = await gql(
        "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { username } } }",
        {"id": other.id},
        token=owner.token,
    )
    assert again.codes == ["NOT_FOUND"]


async def test_block_hides_both_ways_and_ends_follows(gql: GraphQLClient) -> None:
    ann, bob = await sign_up(gql, "blk.ann"), await sign_up(gql, "blk.bob")
    await follow(gql, ann, bob)
    await follow(gql, bob, ann)
    post = await create_post(gql, bob, "bob's post")
    (
        await gql(
            "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
            {"id": bob.id},
            token=ann.token,
        )
    ).ok()
    for viewer, other in ((ann, "blk.bob"), (bob, "blk.ann")):
        assert (await gql(f'{{ user(username: "{other}") {{ id }} }}', token=viewer.token)).ok()[
            "user"
        ] is None
        search = await gql(
            '{ searchUsers(prefix: "blk.") { nodes { username } } }', token=viewer.token
        )
        assert [u["username"] for u in search.ok()["searchUsers"]["nodes"]] == [viewer.username]
    hidden = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": post}, token=ann.token)
    assert hidden.codes == ["NOT_FOUND"]
    refollow = await gql(
        "mutation($id: ID!) { follow(userId: $id) { status } }", {"id": bob.id}, token=ann.token
    )
    assert refollow.codes == ["NOT_FOUND"]
    third = await sign_up(gql, "blk.third")
    counts = await _counts(gql, third, "blk.ann")
    assert counts["followerCount"] == 0
    assert counts["followingCount"] == 0
    (
        await gql(
            "mutation($id: ID!) { unblock(userId: $id) { user { username } } }",
            {"id": bob.id},
            token=ann.token,
        )
    ).ok()
    visible = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": post}, token=ann.token)
    assert visible.ok()["node"] == {"id": post}


async def test_following_yourself_is_bad_input(gql: GraphQLClient) -> None:
    me = await sign_up(gql, "narcissus")
    result = await gql(
        "mutation($id: ID!) { follow(userId: $id) { status } }", {"id": me.id}, token=me.token
    )
    assert result.codes == ["BAD_USER_INPUT"]


async def test_mutations_need_a_viewer(gql: GraphQLClient) -> None:
    bob = await sign_up(gql, "anon.target")
    result = await gql("mutation($id: ID!) { follow(userId: $id) { status } }", {"id": bob.id})
    assert result.codes == ["UNAUTHENTICATED"]
