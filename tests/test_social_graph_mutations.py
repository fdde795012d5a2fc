"""Follow, unfollow and block mutations at their edges: a reply never shows someone who
blocked the viewer, user ids on shards that do not exist are not found, and a pending
request to an account that has gone public becomes a follow."""

from __future__ import annotations

import base64

from db.ids import compose_id
from tests.helpers import GraphQLClient, follow, sign_up


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


async def test_pending_request_to_an_account_gone_public_becomes_a_follow(
    gql: GraphQLClient,
) -> None:
    owner, asker = await sign_up(gql, "rv.owner", private=True), await sign_up(gql, "rv.asker")
    assert await follow(gql, asker, owner) == "REQUESTED"
    await gql(
        "mutation { updateProfile(input: {isPrivate: false}) { user { id } } }", token=owner.token
    )
    assert await follow(gql, asker, owner) == "FOLLOWING"
