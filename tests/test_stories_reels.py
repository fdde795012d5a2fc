"""Stories (24 hours exactly, the tray, seen marks, viewers, close friends), reels
(reelsFeed, view counts rebuilt from rows) and saved posts."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from domain.media.processing import generate_demo_image, generate_demo_video
from domain.state import AppState
from domain.stories.stories import purge_expired
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from tests.media_helpers import publish, upload_media

TRAY = """
{ storiesTray(first: 20) { edges { node {
    user { username } hasUnseen unseenCount storyCount
    stories { id audience viewerHasSeen media { url(width: 320) } }
} } } }
"""

CREATE_STORY = """
mutation($m: ID!, $a: StoryAudience!) {
  createStory(input: {mediaId: $m, audience: $a}) { story { id expiresAt audience } }
}
"""


async def post_story(
    gql: GraphQLClient, state: AppState, author: Account, *, seed: int, audience: str = "EVERYONE"
) -> str:
    media = await upload_media(
        gql, state, author, generate_demo_image(seed=seed, width=720, height=1280)
    )
    result = await gql(CREATE_STORY, {"m": media["id"], "a": audience}, token=author.token)
    story_id: str = result.ok()["createStory"]["story"]["id"]
    return story_id


async def tray_of(gql: GraphQLClient, viewer: Account) -> list[dict[str, Any]]:
    edges = (await gql(TRAY, token=viewer.token)).ok()["storiesTray"]["edges"]
    return [edge["node"] for edge in edges]


@pytest.mark.slow
async def test_tray_lists_followed_accounts_unseen_first(
    gql: GraphQLClient, state: AppState
) -> None:
    viewer = await sign_up(gql, "s.viewer")
    ana, bo = await sign_up(gql, "s.ana"), await sign_up(gql, "s.bo")
    stranger = await sign_up(gql, "s.stranger")
    for account in (ana, bo):
        await follow(gql, viewer, account)
    ana_story = await post_story(gql, state, ana, seed=11)
    await post_story(gql, state, bo, seed=12)
    await post_story(gql, state, stranger, seed=13)
    tray = await tray_of(gql, viewer)
    assert {item["user"]["username"] for item in tray} == {"s.ana", "s.bo"}
    assert all(item["hasUnseen"] for item in tray)
    assert tray[0]["stories"][0]["media"]["url"].endswith("/320.webp")

    seen = await gql(
        "mutation($id: ID!) { markStorySeen(storyId: $id) { story { viewerHasSeen } } }",
        {"id": ana_story},
        token=viewer.token,
    )
    assert seen.ok()["markStorySeen"]["story"]["viewerHasSeen"] is True
    tray = await tray_of(gql, viewer)
    assert [item["user"]["username"] for item in tray] == ["s.bo", "s.ana"], "unseen first"
    assert tray[1]["hasUnseen"] is False
    assert [story["viewerHasSeen"] for item in tray for story in item["stories"]] == [
        False,
        True,
    ]

    # One request per page, and a constant number of round trips behind it: more followed
    # accounts with stories add commands to pipelines, not round trips.
    before = (await gql(TRAY, token=viewer.token)).work
    assert before.sql_statements == 0, "a warm tray reads no SQL"
    for index in range(3):
        more = await sign_up(gql, f"s.more{index}")
        await follow(gql, viewer, more)
        await post_story(gql, state, more, seed=30 + index)
    await tray_of(gql, viewer)
    after = await gql(TRAY, token=viewer.token)
    assert len(after.ok()["storiesTray"]["edges"]) == 5
    assert after.work.sql_statements == 0
    assert after.work.redis_round_trips == before.redis_round_trips


async def test_only_the_author_sees_who_viewed(gql: GraphQLClient, state: AppState) -> None:
    author, fan = await sign_up(gql, "s.author"), await sign_up(gql, "s.fan")
    await follow(gql, fan, author)
    story = await post_story(gql, state, author, seed=21)
    await gql(
        "mutation($id: ID!) { markStorySeen(storyId: $id) { story { id } } }",
        {"id": story},
        token=fan.token,
    )
    query = """query($id: ID!) { node(id: $id) { ... on Story {
        viewCount viewers(first: 10) { edges { node { username } } } } } }"""
    mine = (await gql(query, {"id": story}, token=author.token)).ok()["node"]
    assert mine["viewCount"] == 1
    assert [e["node"]["username"] for e in mine["viewers"]["edges"]] == ["s.fan"]
    theirs = await gql(query, {"id": story}, token=fan.token)
    assert theirs.codes == ["FORBIDDEN"]
    counted = await gql(
        "query($id: ID!) { node(id: $id) { ... on Story { viewCount } } }",
        {"id": story},
        token=fan.token,
    )
    assert counted.ok()["node"]["viewCount"] is None


async def test_story_vanishes_at_exactly_24_hours_and_is_purged_later(
    gql: GraphQLClient, state: AppState
) -> None:
    author, fan = await sign_up(gql, "s.brief"), await sign_up(gql, "s.watcher")
    await follow(gql, fan, author)
    real_clock = state.clock
    posted = real_clock()
    state.clock = lambda: posted
    try:
        story = await post_story(gql, state, author, seed=31)
        node = "query($id: ID!) { node(id: $id) { id } }"
        profile = '{ user(username: "s.brief") { stories { id } } }'
        state.clock = lambda: posted + timedelta(hours=24) - timedelta(milliseconds=5)
        assert (await gql(node, {"id": story}, token=fan.token)).ok()["node"]["id"] == story
        assert len(await tray_of(gql, fan)) == 1
        state.clock = lambda: posted + timedelta(hours=24, milliseconds=5)
        assert (await gql(node, {"id": story}, token=fan.token)).codes == ["NOT_FOUND"]
        assert await tray_of(gql, fan) == []
        assert (await gql(profile, token=fan.token)).ok()["user"]["stories"] == []
        assert await purge_expired(state) == 0, "kept a while after it vanished"
        state.clock = lambda: posted + timedelta(hours=49)
        assert await purge_expired(state) == 1
    finally:
        state.clock = real_clock


async def test_close_friends_stories(gql: GraphQLClient, state: AppState) -> None:
    author = await sign_up(gql, "s.inner")
    friend, follower = await sign_up(gql, "s.friend"), await sign_up(gql, "s.outer")
    for viewer in (friend, follower):
        await follow(gql, viewer, author)
    changed = await gql(
        "mutation($a: [ID!]) { setCloseFriends(add: $a) { closeFriends { username } } }",
        {"a": [friend.id]},
        token=author.token,
    )
    assert [u["username"] for u in changed.ok()["setCloseFriends"]["closeFriends"]] == ["s.friend"]
    story = await post_story(gql, state, author, seed=41, audience="CLOSE_FRIENDS")
    assert [item["user"]["username"] for item in await tray_of(gql, friend)] == ["s.inner"]
    assert await tray_of(gql, follower) == []
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert (await gql(node, {"id": story}, token=follower.token)).codes == ["NOT_FOUND"]
    assert (await gql(node, {"id": story}, token=friend.token)).ok()


async def test_private_and_blocked_authors_stories_stay_hidden(
    gql: GraphQLClient, state: AppState
) -> None:
    private = await sign_up(gql, "s.private", private=True)
    outsider = await sign_up(gql, "s.outsider")
    story = await post_story(gql, state, private, seed=51)
    node = "query($id: ID!) { node(id: $id) { id } }"
    assert (await gql(node, {"id": story}, token=outsider.token)).codes == ["NOT_FOUND"]
    public = await sign_up(gql, "s.public")
    await follow(gql, outsider, public)
    public_story = await post_story(gql, state, public, seed=52)
    assert (await gql(node, {"id": public_story}, token=outsider.token)).ok()
    await gql(
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": outsider.id},
        token=public.token,
    )
    assert (await gql(node, {"id": public_story}, token=outsider.token)).codes == ["NOT_FOUND"]
    assert await tray_of(gql, outsider) == []


async def make_reel(gql: GraphQLClient, state: AppState, author: Account, seed: int) -> str:
    clip = generate_demo_video(seed=seed, seconds=1.0, width=180, height=320)
    media = await upload_media(gql, state, author, clip, content_type="video/mp4", kind="VIDEO")
    post = (await publish(gql, author, [media["id"]], "reel")).ok()["createPost"]["post"]
    assert post["isReel"] is True
    post_id: str = post["id"]
    return post_id


REELS = "{ reelsFeed(first: 10) { edges { node { id viewCount author { username } } } } }"


@pytest.mark.slow
async def test_reels_feed_ranks_followed_and_unfollowed_reels(
    gql: GraphQLClient, state: AppState
) -> None:
    viewer = await sign_up(gql, "r.viewer")
    followed, other = await sign_up(gql, "r.followed"), await sign_up(gql, "r.other")
    private = await sign_up(gql, "r.private", private=True)
    await follow(gql, viewer, followed)
    followed_reel = await make_reel(gql, state, followed, seed=61)
    other_reel = await make_reel(gql, state, other, seed=62)
    await make_reel(gql, state, private, seed=63)
    await create_post(gql, other, "not a reel")
    own = await make_reel(gql, state, viewer, seed=64)
    ids = [
        e["node"]["id"] for e in (await gql(REELS, token=viewer.token)).ok()["reelsFeed"]["edges"]
    ]
    assert set(ids) == {followed_reel, other_reel}, "no private, own or non-reel posts"
    assert own not in ids

    # Engagement moves a reel up: likes on the unfollowed one outrank the follow boost.
    fans = [await sign_up(gql, f"r.fan{n}") for n in range(4)]
    for fan in fans:
        await gql(
            "mutation($id: ID!) { likePost(postId: $id) { post { id } } }",
            {"id": other_reel},
            token=fan.token,
        )
    ids = [
        e["node"]["id"] for e in (await gql(REELS, token=viewer.token)).ok()["reelsFeed"]["edges"]
    ]
    assert ids == [other_reel, followed_reel]

    paged = await gql(
        "{ reelsFeed(first: 1) { edges { node { id } } pageInfo { hasNextPage endCursor } } }",
        token=viewer.token,
    )
    page = paged.ok()["reelsFeed"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = await gql(
        "query($a: String) { reelsFeed(first: 5, after: $a) { edges { node { id } } } }",
        {"a": page["pageInfo"]["endCursor"]},
        token=viewer.token,
    )
    assert [e["node"]["id"] for e in rest.ok()["reelsFeed"]["edges"]] == [followed_reel]


async def test_reel_views_count_people_and_rebuild_from_rows(
    gql: GraphQLClient, state: AppState
) -> None:
    author, fan = await sign_up(gql, "r.author"), await sign_up(gql, "r.watcher")
    reel = await make_reel(gql, state, author, seed=71)
    view = "mutation($id: ID!) { recordReelView(postId: $id) { viewCount } }"
    assert (await gql(view, {"id": reel}, token=fan.token)).ok()["recordReelView"]["viewCount"] == 1
    assert (await gql(view, {"id": reel}, token=fan.token)).ok()["recordReelView"]["viewCount"] == 1
    assert (await gql(view, {"id": reel}, token=author.token)).ok()["recordReelView"][
        "viewCount"
    ] == 2
    await state.runtime.redis.flushdb()
    node = "query($id: ID!) { node(id: $id) { ... on Post { viewCount } } }"
    assert (await gql(node, {"id": reel}, token=fan.token)).ok()["node"]["viewCount"] == 2
    text_post = await create_post(gql, author, "words")
    refused = await gql(view, {"id": text_post}, token=fan.token)
    assert refused.codes == ["BAD_USER_INPUT"]


async def test_saved_posts_are_private_to_the_viewer(gql: GraphQLClient) -> None:
    author, saver = await sign_up(gql, "sv.author"), await sign_up(gql, "sv.saver")
    first, second = await create_post(gql, author, "one"), await create_post(gql, author, "two")
    for post_id in (first, second):
        result = await gql(
            "mutation($id: ID!) { savePost(postId: $id) { post { viewerHasSaved } } }",
            {"id": post_id},
            token=saver.token,
        )
        assert result.ok()["savePost"]["post"]["viewerHasSaved"] is True
    saved = "{ savedPosts(first: 1) { edges { node { id } } pageInfo { hasNextPage endCursor } } }"
    page = (await gql(saved, token=saver.token)).ok()["savedPosts"]
    assert [e["node"]["id"] for e in page["edges"]] == [second]
    rest = await gql(
        "query($a: String) { savedPosts(after: $a) { edges { node { id } } } }",
        {"a": page["pageInfo"]["endCursor"]},
        token=saver.token,
    )
    assert [e["node"]["id"] for e in rest.ok()["savedPosts"]["edges"]] == [first]
    theirs = (await gql("{ savedPosts { edges { node { id } } } }", token=author.token)).ok()
    assert theirs["savedPosts"]["edges"] == []
    node = "query($id: ID!) { node(id: $id) { ... on Post { viewerHasSaved } } }"
    assert (await gql(node, {"id": first}, token=author.token)).ok()["node"][
        "viewerHasSaved"
    ] is False
    await gql(
        "mutation($id: ID!) { unsavePost(postId: $id) { post { id } } }",
        {"id": first},
        token=saver.token,
    )
    assert (await gql(node, {"id": first}, token=saver.token)).ok()["node"][
        "viewerHasSaved"
    ] is False
    anonymous = await gql("{ savedPosts { edges { node { id } } } }")
    assert anonymous.codes == ["UNAUTHENTICATED"]
