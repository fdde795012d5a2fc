"""The home feed in the authorization audit, and the probe every list of posts shares:
the feeds (home, reels), Explore, posts by hashtag, similar posts and suggested accounts,
as every kind of unauthorized viewer."""

from __future__ import annotations

import json

from tests.authorization.audit import (
    BLOCKED_EITHER_WAY,
    FEEDS,
    GUARDED,
    PAGE_INFO,
    POST_LEAN,
    SIGNED_IN,
    UNAUTHORIZED,
    Audit,
    Classified,
    World,
    classify,
)

AUDIT: list[Classified] = [
    *classify(GUARDED, FEEDS, "Query", "homeFeed"),
]


FEEDS_DOCUMENT = (
    POST_LEAN
    + f"""
{{
  homeFeed(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
  reelsFeed(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
  explore(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
  suggestedAccounts(first: 10) {{ id username }}
  savedPosts(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)
HASHTAG_DOCUMENT = (
    POST_LEAN
    + f"""
query($tag: String!) {{
  postsByHashtag(tag: $tag, first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)
SIMILAR_DOCUMENT = (
    POST_LEAN
    + f"""
query($id: ID!) {{
  similarPosts(postId: $id, first: 10) {{ {PAGE_INFO} edges {{ cursor node {{ ...PL }} }} }}
}}
"""
)
PAL_POST = f"""
query($id: ID!) {{ node(id: $id) {{ ... on Post {{
  commentCount comments(first: 10) {{ {PAGE_INFO} nodes {{ id body }} }}
}} }} }}
"""


async def test_feeds_search_and_discovery(world: World) -> None:
    audit = Audit(world)
    for viewer in UNAUTHORIZED:
        signed_in = viewer in SIGNED_IN
        answer = await audit.ask(viewer, "feeds", FEEDS_DOCUMENT)
        if signed_in and answer.errors:
            audit.leak(viewer, "feeds", f"unexpected errors {answer.errors}")
        if signed_in and world.accounts["owner"].username in json.dumps(
            answer.data["suggestedAccounts"]
        ):
            audit.leak(viewer, "suggestedAccounts", "a private account is suggested")
        for tag in ("vaulttag", "VaultTag"):
            await audit.ask(viewer, f"postsByHashtag({tag})", HASHTAG_DOCUMENT, {"tag": tag})
        if signed_in:
            like = await audit.ghost(
                viewer, "similarPosts ", SIMILAR_DOCUMENT, {"id": world.ids["post"]}, key="id"
            )
            answer = await audit.ask(
                viewer, "similarPosts(hidden)", SIMILAR_DOCUMENT, {"id": world.ids["post"]}
            )
            audit.refused(viewer, "similarPosts(hidden)", answer, like=like)
            await audit.ask(
                viewer, "similarPosts(public)", SIMILAR_DOCUMENT, {"id": world.ids["pal_post"]}
            )
        pal = await audit.ask(viewer, "node(pal post)", PAL_POST, {"id": world.ids["pal_post"]})
        if viewer in BLOCKED_EITHER_WAY:
            post = pal.data["node"]
            shown = len(post["comments"]["nodes"])
            if post["commentCount"] != shown:
                audit.leak(
                    viewer,
                    "pal post commentCount",
                    f"counts {post['commentCount']} comments, {shown} visible",
                    kind="comment count",
                )
    audit.assert_none()
