"""The world every probe of the authorization audit reads (``audit.py`` says what it
holds), built once for the package on each worker."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import httpx
import pytest

from db.explore.store import MODEL_PREFIX
from db.runtime import Runtime
from db.shards import ShardMap
from domain.media.processing import generate_demo_image
from domain.state import AppState
from graphql_api.app import create_app
from infra.servers import Servers
from infra.settings import Settings
from tests.authorization.audit import (
    BLOCKED_EITHER_WAY,
    NOTIFICATIONS_DOCUMENT,
    SIGNED_IN,
    STORY_FIELDS,
    USERNAMES,
    World,
    call,
    send_message,
)
from tests.conftest import empty_every_table
from tests.helpers import Account, GraphQLClient, create_post, follow, sign_up
from tests.media_helpers import publish, upload_media


def key_directory(url: str) -> str:
    """The media key's directory (``m/<owner>/<name>/``) in a media URL: what names the
    object in storage."""
    path = urlsplit(url).path
    match = re.search(r"/m/\d+/[^/]+/", path)
    assert match, url
    return match.group(0)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


CREATE_STORY = """
mutation($m: ID!, $a: StoryAudience!) {
  createStory(input: {mediaId: $m, audience: $a}) { story { id } }
}
"""


async def _approve(gql: GraphQLClient, owner: Account, follower: Account) -> None:
    assert await follow(gql, follower, owner) == "REQUESTED"
    await call(
        gql,
        owner,
        "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { id } } }",
        {"id": follower.id},
    )


async def _story(
    gql: GraphQLClient, state: AppState, owner: Account, *, seed: int, audience: str
) -> str:
    media = await upload_media(
        gql, state, owner, generate_demo_image(seed=seed, width=320, height=480)
    )
    created = await call(gql, owner, CREATE_STORY, {"m": media["id"], "a": audience})
    story_id: str = created["createStory"]["story"]["id"]
    return story_id


async def build_world(http: httpx.AsyncClient, state: AppState) -> World:
    gql = GraphQLClient(http)
    accounts = {
        role: await sign_up(gql, username, private=role == "owner")
        for role, username in USERNAMES.items()
    }
    world = World(http=http, gql=gql, state=state, accounts=accounts, ids={})
    owner, insider, pal = accounts["owner"], accounts["insider"], accounts["pal"]
    ids = world.ids

    # While everyone who will lose access still has it.
    for role in ("insider", "non_close", "blocked", "blocker", "removed", "logged_out"):
        await _approve(gql, owner, accounts[role])
    assert await follow(gql, accounts["pending"], owner) == "REQUESTED"
    await follow(gql, owner, pal)
    await call(
        gql,
        owner,
        "mutation($id: ID!) { setCloseFriends(add: [$id]) { closeFriends { id } } }",
        {"id": insider.id},
    )

    photo = await upload_media(
        gql, state, owner, generate_demo_image(seed=71, width=400, height=300)
    )
    caption = world.plant("vault-secret-caption-one #vaulttag")
    post = (await publish(gql, owner, [photo["id"]], caption)).ok()["createPost"]["post"]
    ids["post"], ids["media"] = post["id"], photo["id"]
    world.media_paths["post"] = path_of(post["media"][0]["url"])
    ids["comment_owner"] = (
        await call(
            gql,
            owner,
            "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) "
            "{ comment { id } } }",
            {"p": ids["post"], "b": world.plant("vault-secret-owner-comment")},
        )
    )["addComment"]["comment"]["id"]
    ids["comment_insider"] = (
        await call(
            gql,
            insider,
            "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) "
            "{ comment { id } } }",
            {"p": ids["post"], "b": world.plant("vault-secret-insider-comment")},
        )
    )["addComment"]["comment"]["id"]
    # Followers who will lose access liked and saved it while they could.
    for role in ("insider", "blocked", "blocker", "removed", "logged_out"):
        for verb in ("likePost", "savePost"):
            await call(
                gql,
                accounts[role],
                f"mutation($p: ID!) {{ {verb}(postId: $p) {{ post {{ id }} }} }}",
                {"p": ids["post"]},
            )

    # The owner's comment on a public post: hidden only across a block.
    ids["pal_post"] = await create_post(gql, pal, "a public post #opentag")
    ids["comment_on_pal"] = (
        await call(
            gql,
            owner,
            "mutation($p: ID!, $b: String!) { addComment(postId: $p, body: $b) "
            "{ comment { id } } }",
            {"p": ids["pal_post"], "b": world.plant("vault-comment-on-pal", BLOCKED_EITHER_WAY)},
        )
    )["addComment"]["comment"]["id"]

    ids["story"] = await _story(gql, state, owner, seed=72, audience="EVERYONE")
    ids["close_story"] = await _story(gql, state, owner, seed=73, audience="CLOSE_FRIENDS")
    for viewer, story in (("insider", "story"), ("insider", "close_story"), ("non_close", "story")):
        await call(
            gql,
            accounts[viewer],
            "mutation($s: ID!) { markStorySeen(storyId: $s) { story { id } } }",
            {"s": ids[story]},
        )
    stories = await call(
        gql,
        owner,
        STORY_FIELDS
        + "query($a: ID!, $b: ID!) { a: node(id: $a) { ...S } b: node(id: $b) { ...S } }",
        {"a": ids["story"], "b": ids["close_story"]},
    )
    world.media_paths["story"] = path_of(stories["a"]["media"]["url"])
    world.media_paths["close_story"] = path_of(stories["b"]["media"]["url"])
    ids["story_media"] = stories["a"]["media"]["id"]
    ids["close_story_media"] = stories["b"]["media"]["id"]

    group = await call(
        gql,
        owner,
        'mutation($ids: [ID!]!) { startThread(input: {userIds: $ids, title: "crew"}) '
        "{ thread { id } } }",
        {"ids": [accounts[r].id for r in ("insider", "blocked", "blocker", "former")]},
    )
    ids["group"] = group["startThread"]["thread"]["id"]
    world.plant("vault-secret-group-early")
    await send_message(gql, owner, ids["group"], "vault-secret-group-early")
    ids["insider_seq"] = str(
        await send_message(gql, insider, ids["group"], "hello from the insider")
    )
    await call(
        gql,
        insider,
        'mutation($t: ID!) { reactToMessage(threadId: $t, seq: 1, emoji: "🔥") '
        "{ message { seq } } }",
        {"t": ids["group"]},
    )
    direct_thread = await call(
        gql,
        owner,
        "mutation($u: ID!) { startThread(input: {userIds: [$u]}) { thread { id } } }",
        {"u": insider.id},
    )
    ids["direct"] = world.plant(direct_thread["startThread"]["thread"]["id"])
    await send_message(gql, owner, ids["direct"], world.plant("vault-secret-direct"))
    await call(gql, accounts["logged_out"], "mutation { logOut { ok } }")

    # Access lost.
    await call(
        gql,
        owner,
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": accounts["blocked"].id},
    )
    await call(
        gql,
        accounts["blocker"],
        "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
        {"id": owner.id},
    )
    await call(
        gql,
        owner,
        "mutation($id: ID!) { removeFollower(userId: $id) { user { id } } }",
        {"id": accounts["removed"].id},
    )
    await call(
        gql,
        owner,
        "mutation($t: ID!, $u: ID!) { removeThreadMember(threadId: $t, userId: $u) }",
        {"t": ids["group"], "u": accounts["former"].id},
    )
    # Someone the blocked members still share the group with writes again: theirs to read.
    await send_message(gql, insider, ids["group"], "insider again")
    for viewer in SIGNED_IN:
        world.notifications_before[viewer] = (
            await gql(NOTIFICATIONS_DOCUMENT, token=world.token(viewer))
        ).ok()

    # The owner goes on, naming everyone who lost access.
    mentions = " ".join(f"@{USERNAMES[role]}" for role in SIGNED_IN)
    ids["late_post"] = await create_post(
        gql, owner, world.plant(f"vault-secret-late #vaulttag {mentions}")
    )
    await send_message(gql, owner, ids["group"], world.plant("vault-secret-group-late"))
    # The owner's user id is theirs to know, except across a block.
    world.plant(owner.id, BLOCKED_EITHER_WAY)
    for key in ("post", "media", "comment_owner", "comment_insider", "late_post"):
        world.plant(ids[key])
    for key in ("story", "close_story", "story_media", "close_story_media"):
        world.plant(ids[key])
    world.plant(ids["comment_on_pal"], BLOCKED_EITHER_WAY)
    for name in ("post", "story", "close_story"):
        world.plant(key_directory(world.media_paths[name]))
    # Who the owner's followers and story viewers are is not the outsiders' to know.
    world.plant(insider.id, {"anonymous", "stranger", "pending", "removed", "logged_out"})
    return world


@pytest.fixture(scope="package")
async def world(settings: Settings, servers: Servers, shard_map: ShardMap) -> AsyncIterator[World]:
    """Built once for the package, on a runtime of its own: the function-scoped ``runtime``
    fixture would truncate the tables between tests. One world for every module (not one
    each) keeps the audit's cost that of a single build per worker; so the probes share it
    in whatever order they run, and one that writes (live events) adds only what every
    probe must hide anyway."""
    empty_every_table(shard_map)
    runtime = Runtime.connect(settings, servers)
    await runtime.redis.flushdb()
    await runtime.object_store.delete(await runtime.object_store.list_keys(prefix=MODEL_PREFIX))
    app = create_app(runtime, close_runtime=False)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://aperture.test"
    ) as http:
        state: AppState = app.state.aperture
        yield await build_world(http, state)
    await runtime.close()
