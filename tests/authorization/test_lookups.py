"""Lookups by id (``node``, ``nodes``, ``media``) of every hidden object, as every kind of
unauthorized viewer: each refused just as an id that names nothing is. With the
classification of the types every feature shares: ``Node`` and ``PageInfo``."""

from __future__ import annotations

from tests.authorization.audit import (
    BLOCKED_EITHER_WAY,
    FEEDS,
    GUARDED,
    LOOKUPS,
    PAGE_INFO,
    PUBLIC,
    STORY_FIELDS,
    UNAUTHORIZED,
    Audit,
    Classified,
    World,
    classify,
    viewers_of,
)

AUDIT: list[Classified] = [
    *classify(GUARDED, LOOKUPS, "Query", "node nodes"),
    *classify(GUARDED, LOOKUPS, "Node", "id"),
    *classify(PUBLIC, FEEDS, "PageInfo", "hasNextPage hasPreviousPage startCursor endCursor"),
]


MEDIA_FIELDS = """
fragment M on Media {
  id kind status width height aspectRatio placeholder durationSeconds createdAt
  url(width: 320) videoUrl error { code message } variants { width height format byteSize url }
}
"""
POST_FULL = (
    MEDIA_FIELDS
    + f"""
fragment P on Post {{
  id caption createdAt updatedAt hashtags author {{ id username }} mentions {{ id username }}
  likeCount commentCount viewerHasLiked viewerHasSaved isReel viewCount media {{ ...M }}
  comments(first: 5) {{
    {PAGE_INFO}
    edges {{ cursor node {{
      id body createdAt likeCount viewerHasLiked author {{ id username }} post {{ id }}
      replies(first: 3) {{ {PAGE_INFO} nodes {{ id body }} }}
    }} }}
  }}
}}
"""
)
NODE = (
    POST_FULL
    + STORY_FIELDS.replace("fragment S on Story", "fragment NS on Story").replace(
        "  media {", "  storyMedia: media {"
    )
    + """
query($id: ID!) { node(id: $id) {
  __typename id
  ... on Post { ...P }
  ... on Comment { body author { id } post { id } likeCount }
  ... on Story { ...NS }
  ... on Media { ...M }
  ... on User { username }
} }
"""
)
NODES = """
query($ids: [ID!]!) { nodes(ids: $ids) {
  __typename id
  ... on Post { caption media { url } }
  ... on Comment { body }
  ... on Story { storyMedia: media { url } }
  ... on Media { url }
} }
"""


HIDDEN_NODES = (
    "post",
    "late_post",
    "comment_owner",
    "comment_insider",
    "story",
    "close_story",
    "media",
    "story_media",
    "close_story_media",
)


async def test_lookups_by_id_reveal_nothing(world: World) -> None:
    audit = Audit(world)
    for key in HIDDEN_NODES:
        hidden = world.ids[key]
        for viewer in viewers_of(world, key):
            if viewer == "non_close" and key == "close_story_media":
                continue  # media by id is its owner's only: covered by the others
            like = await audit.ghost(viewer, f"node({key}) ", NODE, {"id": hidden}, key="id")
            answer = await audit.ask(viewer, f"node({key})", NODE, {"id": hidden})
            audit.refused(viewer, f"node({key})", answer, like=like)
    for viewer in UNAUTHORIZED:
        hidden_ids = [world.ids[key] for key in HIDDEN_NODES]
        answer = await audit.ask(viewer, "nodes(...)", NODES, {"ids": hidden_ids})
        if viewer != "logged_out" and (
            answer.errors or answer.data["nodes"] != [None] * len(hidden_ids)
        ):
            audit.leak(viewer, "nodes(...)", f"not all null: {answer.text[:300]}")
        for key in ("media", "story_media", "close_story_media"):
            query = "query($id: ID!) { media(id: $id) { id url variants { url } } }"
            like = await audit.ghost(
                viewer, f"media({key}) ", query, {"id": world.ids[key]}, key="id"
            )
            answer = await audit.ask(viewer, f"media({key})", query, {"id": world.ids[key]})
            audit.refused(viewer, f"media({key})", answer, like=like)
    for viewer in BLOCKED_EITHER_WAY:
        owner_id = world.accounts["owner"].id
        like = await audit.ghost(viewer, "node(owner) ", NODE, {"id": owner_id}, key="id")
        answer = await audit.ask(viewer, "node(owner)", NODE, {"id": owner_id})
        audit.refused(viewer, "node(owner)", answer, like=like)
        comment = world.ids["comment_on_pal"]
        like = await audit.ghost(viewer, "node(comment on pal) ", NODE, {"id": comment}, key="id")
        answer = await audit.ask(viewer, "node(comment on pal)", NODE, {"id": comment})
        audit.refused(viewer, "node(comment on pal)", answer, like=like)
    audit.assert_none()
