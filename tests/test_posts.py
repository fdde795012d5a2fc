"""Posts: create, edit, delete, hashtags, mentions, the keyset profile grid, comments, likes."""

from __future__ import annotations

import asyncio

from db.runtime import Runtime
from tests.helpers import GraphQLClient, create_post, follow, sign_up

GRID = (
    "query($u: String!, $first: Int, $after: String) { user(username: $u) { postCount "
    "posts(first: $first, after: $after) { edges { node { caption } cursor } "
    "pageInfo { hasNextPage endCursor } } } }"
)
POST = (
    "query($id: ID!) { node(id: $id) { ... on Post { caption hashtags likeCount commentCount "
    "viewerHasLiked author { username } mentions { username } } } }"
)


async def test_create_edit_delete(gql: GraphQLClient) -> None:
    author = await sign_up(gql, "author")
    await sign_up(gql, "friend.one")
    post_id = await create_post(gql, author, "Hello #World with @friend.one and @nobody #Sun")
    post = (await gql(POST, {"id": post_id}, token=author.token)).ok()["node"]
    assert post["hashtags"] == ["world", "sun"]
    assert post["mentions"] == [{"username": "friend.one"}]
    assert post["author"] == {"username": "author"}

    edited = await gql(
        'mutation($id: ID!) { editPost(id: $id, caption: "now #moon") { post { caption hashtags } } }',
        {"id": post_id},
        token=author.token,
    )
    assert edited.ok()["editPost"]["post"] == {"caption": "now #moon", "hashtags": ["moon"]}
    by_tag = '{ postsByHashtag(tag: "%s") { edges { node { id } } } }'
    assert (await gql(by_tag % "world")).ok()["postsByHashtag"]["edges"] == []
    assert (await gql(by_tag % "#Moon")).ok()["postsByHashtag"]["edges"] == [
        {"node": {"id": post_id}}
    ]

    (
        await gql(
            "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
            {"id": post_id},
            token=author.token,
        )
    ).ok()
    assert (await gql(POST, {"id": post_id}, token=author.token)).codes == ["NOT_FOUND"]
    assert (await gql(by_tag % "moon")).ok()["postsByHashtag"]["edges"] == []
    grid = (await gql(GRID, {"u": "author"}, token=author.token)).ok()["user"]
    assert grid["postCount"] == 0
    assert grid["posts"]["edges"] == []


async def test_only_the_author_edits_or_deletes(gql: GraphQLClient) -> None:
    author, stranger = await sign_up(gql, "owner.a"), await sign_up(gql, "stranger.a")
    post_id = await create_post(gql, author, "mine")
    for mutation in (
        'mutation($id: ID!) { editPost(id: $id, caption: "hijacked") { post { id } } }',
        "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
    ):
        result = await gql(mutation, {"id": post_id}, token=stranger.token)
        assert result.codes == ["FORBIDDEN"]
    assert (await gql(POST, {"id": post_id})).ok()["node"]["caption"] == "mine"


async def test_caption_limit_changes_nothing(gql: GraphQLClient) -> None:
    author = await sign_up(gql, "verbose")
    too_long = await gql(
        "mutation($c: String!) { createPost(input: {caption: $c}) { post { id } } }",
        {"c": "x" * 2201},
        token=author.token,
    )
    assert too_long.codes == ["BAD_USER_INPUT"]
    assert (await gql(GRID, {"u": "verbose"})).ok()["user"]["postCount"] == 0
    await create_post(gql, author, "y" * 2200)


async def test_profile_grid_keyset_pagination(gql: GraphQLClient) -> None:
    author = await sign_up(gql, "grid")
    for n in range(7):
        await create_post(gql, author, f"post {n}")
    captions: list[str] = []
    after = None
    pages = 0
    while True:
        page = (await gql(GRID, {"u": "grid", "first": 3, "after": after})).ok()["user"]["posts"]
        captions += [edge["node"]["caption"] for edge in page["edges"]]
        pages += 1
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert captions == [f"post {n}" for n in reversed(range(7))]
    assert pages == 3
    bad = await gql(GRID, {"u": "grid", "after": "garbage"})
    assert bad.codes == ["BAD_USER_INPUT"]


async def test_comments_and_replies(gql: GraphQLClient) -> None:
    author, fan = await sign_up(gql, "c.author"), await sign_up(gql, "c.fan")
    post_id = await create_post(gql, author, "discuss")
    add = (
        "mutation($p: ID!, $b: String!, $r: ID) { addComment(postId: $p, body: $b, replyTo: $r) "
        "{ comment { id body } } }"
    )
    first = (await gql(add, {"p": post_id, "b": "first!"}, token=fan.token)).ok()["addComment"][
        "comment"
    ]
    reply = (
        await gql(add, {"p": post_id, "b": "thanks", "r": first["id"]}, token=author.token)
    ).ok()
    reply_id = reply["addComment"]["comment"]["id"]
    nested = await gql(add, {"p": post_id, "b": "deeper", "r": reply_id}, token=fan.token)
    nested.ok()
    await gql(add, {"p": post_id, "b": "second"}, token=author.token)
    empty = await gql(add, {"p": post_id, "b": "   "}, token=fan.token)
    assert empty.codes == ["BAD_USER_INPUT"]

    thread = await gql(
        "query($id: ID!) { node(id: $id) { ... on Post { commentCount comments(first: 10) { edges "
        "{ node { body author { username } replies { edges { node { body } } } } } } } } }",
        {"id": post_id},
    )
    data = thread.ok()["node"]
    assert data["commentCount"] == 4
    assert [
        (e["node"]["body"], [r["node"]["body"] for r in e["node"]["replies"]["edges"]])
        for e in data["comments"]["edges"]
    ] == [("first!", ["thanks", "deeper"]), ("second", [])], (
        "one level: a reply to a reply joins the thread"
    )

    deleted = await gql(
        "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId } }",
        {"id": first["id"]},
        token=author.token,
    )
    deleted.ok()
    count = await gql(
        "query($id: ID!) { node(id: $id) { ... on Post { commentCount } } }", {"id": post_id}
    )
    assert count.ok()["node"]["commentCount"] == 3


async def test_likes_are_idempotent_and_counted(gql: GraphQLClient, runtime: Runtime) -> None:
    author = await sign_up(gql, "liked")
    fans = [await sign_up(gql, f"liker{n}") for n in range(3)]
    post_id = await create_post(gql, author, "like me")
    like = "mutation($id: ID!) { likePost(postId: $id) { post { likeCount viewerHasLiked } } }"
    for fan in fans:
        await gql(like, {"id": post_id}, token=fan.token)
    twice = await gql(like, {"id": post_id}, token=fans[0].token)
    assert twice.ok()["likePost"]["post"] == {"likeCount": 3, "viewerHasLiked": True}
    # Concurrent likes by one user still count once.
    await asyncio.gather(*(gql(like, {"id": post_id}, token=fans[1].token) for _ in range(5)))
    unlike = await gql(
        "mutation($id: ID!) { unlikePost(postId: $id) { post { likeCount viewerHasLiked } } }",
        {"id": post_id},
        token=fans[2].token,
    )
    assert unlike.ok()["unlikePost"]["post"] == {"likeCount": 2, "viewerHasLiked": False}
    as_author = (await gql(POST, {"id": post_id}, token=author.token)).ok()["node"]
    assert (as_author["likeCount"], as_author["viewerHasLiked"]) == (2, False)


async def test_comment_likes(gql: GraphQLClient) -> None:
    author = await sign_up(gql, "cl.author")
    post_id = await create_post(gql, author, "p")
    comment = await gql(
        'mutation($p: ID!) { addComment(postId: $p, body: "c") { comment { id } } }',
        {"p": post_id},
        token=author.token,
    )
    comment_id = comment.ok()["addComment"]["comment"]["id"]
    like = "mutation($id: ID!) { likeComment(commentId: $id) { comment { likeCount viewerHasLiked } } }"
    await gql(like, {"id": comment_id}, token=author.token)
    again = await gql(like, {"id": comment_id}, token=author.token)
    assert again.ok()["likeComment"]["comment"] == {"likeCount": 1, "viewerHasLiked": True}


async def test_posts_by_hashtag_newest_first(gql: GraphQLClient) -> None:
    ann, bob = await sign_up(gql, "tag.ann"), await sign_up(gql, "tag.bob")
    ids = [
        await create_post(gql, ann, "one #travel"),
        await create_post(gql, bob, "two #Travel #food"),
        await create_post(gql, ann, "three #travel"),
    ]
    page = await gql(
        '{ postsByHashtag(tag: "travel", first: 2) { edges { node { id } } pageInfo { hasNextPage endCursor } } }'
    )
    data = page.ok()["postsByHashtag"]
    assert [e["node"]["id"] for e in data["edges"]] == [ids[2], ids[1]]
    rest = await gql(
        'query($a: String!) { postsByHashtag(tag: "travel", after: $a) { edges { node { id } } } }',
        {"a": data["pageInfo"]["endCursor"]},
    )
    assert [e["node"]["id"] for e in rest.ok()["postsByHashtag"]["edges"]] == [ids[0]]


async def test_username_prefix_search(gql: GraphQLClient) -> None:
    for name in ["zed.alpha", "Zed.beta", "zedd", "zoe"]:
        await sign_up(gql, name)
    result = await gql('{ searchUsers(prefix: "ZED", first: 10) { nodes { username } } }')
    assert [u["username"] for u in result.ok()["searchUsers"]["nodes"]] == [
        "zed.alpha",
        "Zed.beta",
        "zedd",
    ]
    page = '{ searchUsers(prefix: "z", first: 2, after: %s) { nodes { username } pageInfo { hasNextPage endCursor } } }'
    first = (await gql(page % "null")).ok()["searchUsers"]
    assert [u["username"] for u in first["nodes"]] == ["zed.alpha", "Zed.beta"]
    assert first["pageInfo"]["hasNextPage"]
    rest = (await gql(page % f'"{first["pageInfo"]["endCursor"]}"')).ok()["searchUsers"]
    assert [u["username"] for u in rest["nodes"]] == ["zedd", "zoe"]
    assert not rest["pageInfo"]["hasNextPage"]
    literal = await gql('{ searchUsers(prefix: "zed_") { nodes { username } } }')
    assert literal.ok()["searchUsers"]["nodes"] == [], "'_' is a literal, not a wildcard"


async def test_deleted_post_leaves_every_read_path(gql: GraphQLClient) -> None:
    author, fan = await sign_up(gql, "del.author"), await sign_up(gql, "del.fan")
    await follow(gql, fan, author)
    post_id = await create_post(gql, author, "ephemeral #gone")
    (
        await gql(
            "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
            {"id": post_id},
            token=author.token,
        )
    ).ok()
    like = await gql(
        "mutation($id: ID!) { likePost(postId: $id) { post { id } } }",
        {"id": post_id},
        token=fan.token,
    )
    assert like.codes == ["NOT_FOUND"]
    nodes = await gql(
        "query($ids: [ID!]!) { nodes(ids: $ids) { id } }", {"ids": [post_id]}, token=fan.token
    )
    assert nodes.ok()["nodes"] == [None]


async def test_page_fields_agree_across_edges_nodes_and_fragments(gql: GraphQLClient) -> None:
    author, fan = await sign_up(gql, "frag.author"), await sign_up(gql, "frag.fan")
    post_id = await create_post(gql, author, "fragments")
    await gql(
        "mutation($id: ID!) { likePost(postId: $id) { post { id } } }",
        {"id": post_id},
        token=fan.token,
    )
    fields = "id likeCount commentCount viewerHasLiked author { username }"
    edges = await gql(
        f'{{ user(username: "frag.author") {{ posts {{ edges {{ node {{ {fields} }} }} }} }} }}',
        token=fan.token,
    )
    nodes = await gql(
        f'{{ user(username: "frag.author") {{ posts {{ nodes {{ ...P }} }} }} }} fragment P on Post {{ {fields} }}',
        token=fan.token,
    )
    inline = await gql(
        f'{{ user(username: "frag.author") {{ posts {{ edges {{ node {{ ... on Post {{ {fields} }} }} }} }} }} }}',
        token=fan.token,
    )
    expected = {
        "id": post_id,
        "likeCount": 1,
        "commentCount": 0,
        "viewerHasLiked": True,
        "author": {"username": "frag.author"},
    }
    assert [e["node"] for e in edges.ok()["user"]["posts"]["edges"]] == [expected]
    assert nodes.ok()["user"]["posts"]["nodes"] == [expected]
    assert [e["node"] for e in inline.ok()["user"]["posts"]["edges"]] == [expected]
