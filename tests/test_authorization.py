"""Who sees what: owner, approved follower, non-follower, anonymous and blocked viewers
against every field that exposes a private account's data."""

from __future__ import annotations

import pytest

from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up

# field name -> query reading it on the private owner
PRIVATE_FIELDS = {
    "posts": '{ user(username: "vault") { posts { edges { node { id } } } } }',
    "followers": '{ user(username: "vault") { followers { edges { node { id } } } } }',
    "following": '{ user(username: "vault") { following { edges { node { id } } } } }',
}
POST_BY_ID = "query($id: ID!) { node(id: $id) { id } }"
COMMENTS = (
    "query($id: ID!) { node(id: $id) { ... on Post { comments { edges { node { id } } } } } }"
)


@pytest.fixture
async def cast(gql: GraphQLClient) -> dict[str, object]:
    owner = await sign_up(gql, "vault", private=True)
    follower = await sign_up(gql, "insider")
    outsider = await sign_up(gql, "outsider")
    blocked = await sign_up(gql, "blocked.one")
    buddy = await sign_up(gql, "buddy")
    assert await follow(gql, follower, owner) == "REQUESTED"
    await gql(
        "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { id } } }",
        {"id": follower.id},
        token=owner.token,
    )
    # The owner follows someone and has a follower, so the lists are not empty.
    await follow(gql, owner, buddy)
    # The blocked user was a follower before the block: the block must end that.
    await follow(gql, blocked, owner)
    await gql(
        "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { id } } }",
        {"id": blocked.id},
        token=owner.token,
    )
    await gql(
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": blocked.id},
        token=owner.token,
    )
    post_id = await create_post(gql, owner, "private thoughts")
    return {
        "owner": owner,
        "follower": follower,
        "outsider": outsider,
        "blocked": blocked,
        "anonymous": None,
        "post": post_id,
    }


EXPECTED = {
    # viewer: (private lists visible, post visible, profile visible)
    "owner": (True, True, True),
    "follower": (True, True, True),
    "outsider": (False, False, True),
    "anonymous": (False, False, True),
    "blocked": (False, False, False),
}


@pytest.mark.parametrize("viewer", list(EXPECTED))
@pytest.mark.parametrize("field", list(PRIVATE_FIELDS))
async def test_private_lists(
    gql: GraphQLClient, cast: dict[str, object], viewer: str, field: str
) -> None:
    account = cast[viewer]
    token = account.token if isinstance(account, Account) else None
    lists_visible, _, profile_visible = EXPECTED[viewer]
    result = await gql(PRIVATE_FIELDS[field], token=token)
    if not profile_visible:
        assert result.ok()["user"] is None
    elif lists_visible:
        edges = result.ok()["user"][field]["edges"]
        assert edges, f"{viewer} should see {field}"
    else:
        assert result.codes == ["FORBIDDEN"]
        assert result.data["user"][field] is None


@pytest.mark.parametrize("viewer", list(EXPECTED))
async def test_private_post_and_comments(
    gql: GraphQLClient, cast: dict[str, object], viewer: str
) -> None:
    account = cast[viewer]
    token = account.token if isinstance(account, Account) else None
    _, post_visible, _ = EXPECTED[viewer]
    for query in (POST_BY_ID, COMMENTS):
        result = await gql(query, {"id": cast["post"]}, token=token)
        if post_visible:
            assert result.ok()["node"] is not None
        else:
            assert result.codes == ["NOT_FOUND"]
    if isinstance(account, Account) and not post_visible:
        for mutation in (
            "mutation($id: ID!) { likePost(postId: $id) { post { id } } }",
            'mutation($id: ID!) { addComment(postId: $id, body: "hi") { comment { id } } }',
        ):
            denied = await gql(mutation, {"id": cast["post"]}, token=token)
            assert denied.codes == ["NOT_FOUND"]


async def test_public_profile_fields_of_a_private_account(
    gql: GraphQLClient, cast: dict[str, object]
) -> None:
    outsider = cast["outsider"]
    assert isinstance(outsider, Account)
    result = await gql(
        '{ user(username: "vault") { username isPrivate followerCount postCount followStatus } }',
        token=outsider.token,
    )
    assert result.ok()["user"] == {
        "username": "vault",
        "isPrivate": True,
        "followerCount": 1,
        "postCount": 1,
        "followStatus": "NONE",
    }


async def test_going_private_hides_existing_posts(gql: GraphQLClient) -> None:
    author, stranger = await sign_up(gql, "was.public"), await sign_up(gql, "passerby")
    post_id = await create_post(gql, author, "hello world")
    assert (await gql(POST_BY_ID, {"id": post_id}, token=stranger.token)).ok()["node"]
    await gql(
        "mutation { updateProfile(input: {isPrivate: true}) { user { id } } }", token=author.token
    )
    assert (await gql(POST_BY_ID, {"id": post_id}, token=stranger.token)).codes == ["NOT_FOUND"]
