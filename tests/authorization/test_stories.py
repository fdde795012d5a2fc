"""Stories in the authorization audit: stories, the tray, their views and close friends.
The probe: a follower left off the close-friends list, the tray, and who saw a story."""

from __future__ import annotations

from tests.authorization.audit import (
    GUARDED,
    MUTATIONS,
    OWN,
    OWNER,
    PAGE_INFO,
    PUBLIC,
    STORIES,
    STORY_FIELDS,
    UNAUTHORIZED,
    USERNAMES,
    Audit,
    Classified,
    World,
    classify,
    classify_connection,
)

AUDIT: list[Classified] = [
    *classify(OWNER, OWN, "Query", "closeFriends"),
    *classify(GUARDED, STORIES, "Query", "storiesTray"),
    # Mutations on someone else's objects refuse as if they did not exist; the rest act
    # on the viewer's own account and content.
    *classify(GUARDED, MUTATIONS, "Mutation", "markStorySeen deleteStory"),
    *classify(OWNER, OWN, "Mutation", "createStory setCloseFriends"),
    # Payloads: their objects are the visible ones the mutation acted on.
    *classify(OWNER, OWN, "CloseFriendsPayload", "closeFriends"),
    *classify(PUBLIC, MUTATIONS, "DeleteStoryPayload", "deletedStoryId"),
    *classify(GUARDED, MUTATIONS, "StoryPayload", "story"),
    # Stories: visible like posts, close-friends ones to the list only; views are the
    # author's.
    *classify(PUBLIC, STORIES, "Story", "id audience createdAt expiresAt"),
    *classify(GUARDED, STORIES, "Story", "author media"),
    *classify(OWNER, STORIES, "Story", "viewerHasSeen viewCount viewers"),
    *classify(GUARDED, STORIES, "StoryTrayItem", "user stories"),
    *classify(OWNER, STORIES, "StoryTrayItem", "hasUnseen unseenCount storyCount"),
    *classify_connection("StoryTrayItemConnection", STORIES),
]


STORY_VIEWS = f"""
query($id: ID!) {{ node(id: $id) {{ ... on Story {{
  id viewCount viewers(first: 5) {{ {PAGE_INFO} edges {{ cursor node {{ id username }} }} }}
}} }} }}
"""
TRAY = (
    STORY_FIELDS
    + f"""
{{ storiesTray(first: 10) {{ {PAGE_INFO} edges {{ cursor node {{
  user {{ id username }} hasUnseen unseenCount storyCount stories {{ ...S }}
}} }} }} }}
"""
)


async def test_stories_and_their_views(world: World) -> None:
    audit = Audit(world)
    owner = USERNAMES["owner"]
    # A follower left off the close-friends list sees the story for everyone, and
    # nothing of the other: not in the tray's counts, not in the profile.
    tray = await audit.ask("non_close", "storiesTray", TRAY)
    assert tray.data, tray.text
    items = [edge["node"] for edge in tray.data["storiesTray"]["edges"]]
    owners = [item for item in items if item["user"]["username"] == owner]
    if len(owners) != 1:
        audit.leak("non_close", "storiesTray", f"the owner's item: {items}")
    else:
        item = owners[0]
        if (item["storyCount"], item["unseenCount"], item["hasUnseen"]) != (1, 0, False):
            audit.leak("non_close", "storiesTray counts", f"{item}")
        if [story["id"] for story in item["stories"]] != [world.ids["story"]]:
            audit.leak("non_close", "storiesTray stories", f"{item['stories']}")
    profile = await audit.ask(
        "non_close",
        "user(owner).stories",
        STORY_FIELDS + "query($n: String!) { user(username: $n) { stories { ...S } } }",
        {"n": owner},
    )
    shown = [story["id"] for story in profile.data["user"]["stories"]]
    if shown != [world.ids["story"]]:
        audit.leak("non_close", "user(owner).stories", f"{shown}")
    # Views are the author's: a follower who may see the story learns neither who saw it
    # nor how many.
    for viewer in ("non_close", "insider"):
        views = await audit.ask(viewer, "story viewers", STORY_VIEWS, {"id": world.ids["story"]})
        if views.codes != ["FORBIDDEN"] or (views.data or {}).get("node") is not None:
            audit.leak(viewer, "Story.viewers", f"not FORBIDDEN: {views.text[:300]}")
        count = await audit.ask(
            viewer,
            "story viewCount",
            "query($id: ID!) { node(id: $id) { ... on Story { viewCount } } }",
            {"id": world.ids["story"]},
        )
        if count.errors or count.data["node"]["viewCount"] is not None:
            audit.leak(viewer, "Story.viewCount", f"told: {count.text[:300]}")
    for viewer in UNAUTHORIZED:
        await audit.ask(viewer, "storiesTray", TRAY)
    audit.assert_none()
