"""Mutations on hidden objects, of every feature, as every kind of unauthorized viewer:
each refused just as for an id that names nothing, and nothing written."""

from __future__ import annotations

from tests.authorization.audit import (
    ALLOWED_REFUSALS,
    BLOCKED_EITHER_WAY,
    Audit,
    World,
    viewers_of,
)

MUTATIONS_ON_POSTS = {
    "likePost": "mutation($id: ID!) { likePost(postId: $id) { post { id caption likeCount } } }",
    "unlikePost": "mutation($id: ID!) { unlikePost(postId: $id) { post { id likeCount } } }",
    "savePost": "mutation($id: ID!) { savePost(postId: $id) { post { id caption } } }",
    "unsavePost": "mutation($id: ID!) { unsavePost(postId: $id) { post { id caption } } }",
    "addComment": 'mutation($id: ID!) { addComment(postId: $id, body: "hi") '
    "{ comment { id post { caption } } } }",
    "editPost": 'mutation($id: ID!) { editPost(id: $id, caption: "mine now") { post { id } } }',
    "deletePost": "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
    "recordReelView": "mutation($id: ID!) { recordReelView(postId: $id) "
    "{ viewCount post { id caption } } }",
    "sendMessage(post)": "mutation($id: ID!) { sendMessage(input: "
    '{userId: "%s", postId: $id}) { message { post { caption } } } }',
}
MUTATIONS_ON_COMMENTS = {
    "likeComment": "mutation($id: ID!) { likeComment(commentId: $id) { comment { id body } } }",
    "unlikeComment": "mutation($id: ID!) { unlikeComment(commentId: $id) { comment { id body } } }",
    "deleteComment": "mutation($id: ID!) { deleteComment(id: $id) { deletedCommentId } }",
}
MUTATIONS_ON_STORIES = {
    "markStorySeen": "mutation($id: ID!) { markStorySeen(storyId: $id) "
    "{ story { id media { url } } } }",
    "replyToStory": 'mutation($id: ID!) { replyToStory(storyId: $id, text: "wow") '
    "{ message { story { id } } } }",
    "deleteStory": "mutation($id: ID!) { deleteStory(id: $id) { deletedStoryId } }",
}
MUTATIONS_ON_MEDIA = {
    "setAvatar": "mutation($id: ID!) { setAvatar(mediaId: $id) { avatar { url } } }",
    "finalizeUpload": "mutation($id: ID!) { finalizeUpload(mediaId: $id) { media { id url } } }",
    "createStory": "mutation($id: ID!) { createStory(input: {mediaId: $id}) "
    "{ story { media { url } } } }",
}
MUTATIONS_ON_THE_OWNER = {
    "follow": "mutation($id: ID!) { follow(userId: $id) { status user { id username } } }",
    "unfollow": "mutation($id: ID!) { unfollow(userId: $id) { status user { id } } }",
    "approveFollowRequest": "mutation($id: ID!) { approveFollowRequest(userId: $id) "
    "{ user { id } } }",
    "denyFollowRequest": "mutation($id: ID!) { denyFollowRequest(userId: $id) { user { id } } }",
    "removeFollower": "mutation($id: ID!) { removeFollower(userId: $id) { user { id } } }",
    "unblock": "mutation($id: ID!) { unblock(userId: $id) { user { id } } }",
}


async def test_mutations_on_hidden_objects_refuse_and_return_nothing(world: World) -> None:
    audit = Audit(world)
    pal_id = world.accounts["pal"].id
    # Someone else's media is never "yours to publish": the same MEDIA_NOT_READY as media
    # that does not exist (SECURITY.md).
    media_codes = ALLOWED_REFUSALS | {"MEDIA_NOT_READY"}
    targets: list[tuple[dict[str, str], tuple[str, ...], set[str]]] = [
        (MUTATIONS_ON_POSTS, ("post", "late_post"), ALLOWED_REFUSALS),
        (MUTATIONS_ON_COMMENTS, ("comment_owner", "comment_insider"), ALLOWED_REFUSALS),
        (MUTATIONS_ON_STORIES, ("story", "close_story"), ALLOWED_REFUSALS),
        (MUTATIONS_ON_MEDIA, ("media", "story_media"), media_codes),
    ]
    for mutations, keys, codes in targets:
        for key in keys:
            hidden = world.ids[key]
            for viewer in viewers_of(world, key):
                for name, document in mutations.items():
                    if "%s" in document:
                        document = document % pal_id
                    path = f"{name}({key})"
                    # Each mutation runs against a ghost first, so a refusal that differs
                    # for a real, hidden object shows.
                    like = await audit.ghost(viewer, f"{path} ", document, {"id": hidden}, key="id")
                    answer = await audit.ask(viewer, path, document, {"id": hidden})
                    audit.refused(viewer, path, answer, like=like, codes=codes)
    owner_id = world.accounts["owner"].id
    for viewer in BLOCKED_EITHER_WAY:
        for name, document in MUTATIONS_ON_THE_OWNER.items():
            if name == "unblock" and viewer == "blocker":
                continue  # their own block: theirs to lift (and the world needs it)
            like = await audit.ghost(viewer, f"{name} ", document, {"id": owner_id}, key="id")
            answer = await audit.ask(viewer, f"{name}(owner)", document, {"id": owner_id})
            audit.refused(viewer, f"{name}(owner)", answer, like=like)
    # Nothing a refusal touched was written: the post's likes and saves are as they were.
    owner = world.accounts["owner"]
    post = (
        await world.gql(
            "query($id: ID!) { node(id: $id) { ... on Post { likeCount caption "
            "comments(first: 20) { nodes { body } } } } }",
            {"id": world.ids["post"]},
            token=owner.token,
        )
    ).ok()["node"]
    bodies = [node["body"] for node in post["comments"]["nodes"]]
    if "hi" in bodies or post["caption"].startswith("mine"):
        audit.leak("owner", "refused mutations", f"a refused write was stored: {post}")
    # A message refused for the post it shares left no thread with its addressee.
    pal_inbox = (
        await world.gql("{ inbox(first: 10) { nodes { id } } }", token=world.token("pal"))
    ).ok()["inbox"]["nodes"]
    if pal_inbox:
        audit.leak("pal", "sendMessage(post)", f"refused messages left threads: {pal_inbox}")
    audit.assert_none()
