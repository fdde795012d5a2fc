"""Comments and blocks: a comment by someone the viewer blocked can be neither liked
nor answered."""

from __future__ import annotations

from tests.helpers import GraphQLClient, create_post, sign_up


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
