"""Posts in the authorization audit: posts, comments, likes, saves and hashtags. Their
probes are shared: lookups by id (``test_lookups.py``), the feeds and search
(``test_feed.py``), mutations on hidden objects (``test_mutations.py``) and the viewer's
own lists (``test_own_lists.py``)."""

from __future__ import annotations

from tests.authorization.audit import (
    FEEDS,
    GUARDED,
    LOOKUPS,
    MUTATIONS,
    OWN,
    OWNER,
    PUBLIC,
    Classified,
    classify,
    classify_connection,
)

AUDIT: list[Classified] = [
    *classify(OWNER, OWN, "Query", "savedPosts"),
    *classify(GUARDED, FEEDS, "Query", "postsByHashtag"),
    # Mutations on someone else's objects refuse as if they did not exist; the rest act
    # on the viewer's own account and content.
    *classify(
        GUARDED,
        MUTATIONS,
        "Mutation",
        "editPost deletePost addComment deleteComment likePost unlikePost likeComment "
        "unlikeComment savePost unsavePost",
    ),
    *classify(OWNER, OWN, "Mutation", "createPost"),
    # Payloads: their objects are the visible ones the mutation acted on.
    *classify(GUARDED, MUTATIONS, "CommentPayload", "comment"),
    *classify(PUBLIC, MUTATIONS, "DeleteCommentPayload", "deletedCommentId"),
    *classify(PUBLIC, MUTATIONS, "DeletePostPayload", "deletedPostId"),
    *classify(GUARDED, MUTATIONS, "PostPayload", "post"),
    # Posts and comments: visible with their author's content.
    *classify(
        PUBLIC,
        LOOKUPS,
        "Post",
        "id caption createdAt updatedAt hashtags likeCount commentCount isReel viewCount",
    ),
    *classify(GUARDED, LOOKUPS, "Post", "author mentions media comments"),
    *classify(OWNER, LOOKUPS, "Post", "viewerHasLiked viewerHasSaved"),
    *classify_connection("PostConnection", FEEDS),
    *classify(PUBLIC, LOOKUPS, "Comment", "id body createdAt likeCount"),
    *classify(GUARDED, LOOKUPS, "Comment", "author post replies"),
    *classify(OWNER, LOOKUPS, "Comment", "viewerHasLiked"),
    *classify_connection("CommentConnection", LOOKUPS),
]
