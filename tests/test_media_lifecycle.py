"""Media's life after processing: no two media share a stored object, and a media's
objects go when nothing publishes it any more (a post deleted, a story deleted or purged,
an avatar replaced, an account deleted, media never published); quotas per account; the
repair that finds objects no row names."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from domain.media.lifecycle import repair_orphaned_objects, sweep_unpublished
from domain.media.processing import generate_demo_image
from domain.state import AppState
from domain.stories.stories import purge_expired
from graphql_api.relay import from_global_id
from tests.helpers import Account, GraphQLClient, sign_up
from tests.media_helpers import request_upload, upload_media

CREATE_STORY = """
mutation($m: ID!) { createStory(input: {mediaId: $m, audience: EVERYONE}) { story { id } } }
"""
CREATE_POST = """
mutation($m: [ID!]!) { createPost(input: {caption: "kept", mediaIds: $m}) {
    post { id media { url(width: 640) variants { url } videoUrl } } } }
"""


@pytest.fixture(scope="module")
def photo() -> bytes:
    return generate_demo_image(seed=7, width=900, height=700)


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def fetch_statuses(http: httpx.AsyncClient, media: dict[str, Any]) -> set[int]:
    urls = [variant["url"] for variant in media["variants"]]
    return {(await http.get(path_of(url))).status_code for url in urls}


async def stored_keys(state: AppState, owner: Account) -> set[str]:
    owner_id = from_global_id(owner.id)[1]
    store = state.runtime.object_store
    return set(await store.list_keys(prefix=f"m/{owner_id}/")) | set(
        await store.list_keys(prefix=f"uploads/{owner_id}/")
    )


async def post_with(gql: GraphQLClient, author: Account, media_id: str) -> dict[str, Any]:
    post: dict[str, Any] = (await gql(CREATE_POST, {"m": [media_id]}, token=author.token)).ok()[
        "createPost"
    ]["post"]
    return post


async def test_same_bytes_twice_do_not_share_fate(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    """A story and a post of the same photo: purging the story leaves the post whole."""
    author = await sign_up(gql, "life.twice")
    for_post = await upload_media(gql, state, author, photo)
    for_story = await upload_media(gql, state, author, photo)
    story_keys = {variant["url"] for variant in for_story["variants"]}
    assert story_keys.isdisjoint(variant["url"] for variant in for_post["variants"])
    await post_with(gql, author, for_post["id"])
    (await gql(CREATE_STORY, {"m": for_story["id"]}, token=author.token)).ok()

    real_clock = state.clock
    later = (
        real_clock()
        + timedelta(hours=24)
        + timedelta(seconds=state.runtime.settings.story_purge_after_seconds + 60)
    )
    state.clock = lambda: later
    try:
        assert await purge_expired(state) == 1
    finally:
        state.clock = real_clock
    assert await fetch_statuses(http, for_story) == {404}, "the story's files are gone"
    assert await fetch_statuses(http, for_post) == {200}, "the post's files are not"
    media = "query($id: ID!) { media(id: $id) { status } }"
    still = (await gql(media, {"id": for_post["id"]}, token=author.token)).ok()["media"]
    assert still["status"] == "READY"


async def test_deleting_a_post_or_story_deletes_its_files(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    author = await sign_up(gql, "life.deleter")
    kept = await upload_media(gql, state, author, photo)
    doomed = await upload_media(gql, state, author, photo)
    story_media = await upload_media(gql, state, author, photo)
    await post_with(gql, author, kept["id"])
    post = await post_with(gql, author, doomed["id"])
    story = (await gql(CREATE_STORY, {"m": story_media["id"]}, token=author.token)).ok()
    assert await fetch_statuses(http, doomed) == {200}

    deleted = await gql(
        "mutation($id: ID!) { deletePost(id: $id) { deletedPostId } }",
        {"id": post["id"]},
        token=author.token,
    )
    assert not deleted.errors, deleted.errors
    # At once: the release runs right after the delete's commit, in the writer's process.
    assert await fetch_statuses(http, doomed) == {404}
    (
        await gql(
            "mutation($id: ID!) { deleteStory(id: $id) { deletedStoryId } }",
            {"id": story["createStory"]["story"]["id"]},
            token=author.token,
        )
    ).ok()
    assert await fetch_statuses(http, story_media) == {404}
    assert await fetch_statuses(http, kept) == {200}
    keys = await stored_keys(state, author)
    assert {path_of(v["url"]).removeprefix("/media/") for v in kept["variants"]} == keys


async def test_replacing_an_avatar_deletes_the_old_one(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    author = await sign_up(gql, "life.avatar")
    first = await upload_media(gql, state, author, photo)
    second = await upload_media(gql, state, author, photo)
    set_avatar = "mutation($m: ID) { setAvatar(mediaId: $m) { avatar { id } } }"
    (await gql(set_avatar, {"m": first["id"]}, token=author.token)).ok()
    (await gql(set_avatar, {"m": second["id"]}, token=author.token)).ok()
    assert await fetch_statuses(http, first) == {404}
    assert await fetch_statuses(http, second) == {200}
    # The avatar publishes its image: it cannot also go on a post.
    refused = await gql(CREATE_POST, {"m": [second["id"]]}, token=author.token)
    assert refused.codes == ["MEDIA_NOT_READY"]
    (await gql(set_avatar, {"m": None}, token=author.token)).ok()
    assert await fetch_statuses(http, second) == {404}
    assert await stored_keys(state, author) == set()


async def test_deleting_an_account_deletes_all_its_media(
    gql: GraphQLClient, state: AppState, photo: bytes
) -> None:
    from workers.runner import drain_jobs

    author = await sign_up(gql, "life.leaver")
    for _ in range(2):
        media = await upload_media(gql, state, author, photo)
        await post_with(gql, author, media["id"])
    await request_upload(gql, author, kind="IMAGE", content_type="image/jpeg", size=1000)
    assert await stored_keys(state, author)
    (await gql("mutation { deleteAccount { deletedUserId } }", token=author.token)).ok()
    await drain_jobs(state, ["media"])
    assert await stored_keys(state, author) == set()


async def test_media_never_published_is_deleted_after_a_while(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    author = await sign_up(gql, "life.drafts")
    draft = await upload_media(gql, state, author, photo)
    published = await upload_media(gql, state, author, photo)
    await post_with(gql, author, published["id"])
    assert await sweep_unpublished(state) == 0, "too early"
    real_clock = state.clock
    later = real_clock() + timedelta(seconds=state.runtime.settings.unpublished_media_seconds + 60)
    state.clock = lambda: later
    try:
        assert await sweep_unpublished(state) == 1
    finally:
        state.clock = real_clock
    assert await fetch_statuses(http, draft) == {404}
    assert await fetch_statuses(http, published) == {200}
    gone = await gql(
        "query($id: ID!) { media(id: $id) { id } }", {"id": draft["id"]}, token=author.token
    )
    assert gone.codes == ["NOT_FOUND"]


async def test_upload_quotas(
    gql: GraphQLClient,
    tuned_gql: Any,
) -> None:
    tuned, _ = await tuned_gql(
        max_unfinished_uploads=2,
        max_unfinished_upload_bytes=5000,
        max_media_bytes_per_account=8000,
    )
    hoarder = await sign_up(tuned, "life.hoarder")
    create = """mutation($s: Int!) { createUpload(input: {kind: IMAGE, contentType: "image/jpeg",
        byteSize: $s}) { upload { media { id } } } }"""
    assert not (await tuned(create, {"s": 2000}, token=hoarder.token)).errors
    too_big = await tuned(create, {"s": 3500}, token=hoarder.token)
    assert too_big.codes == ["QUOTA_EXCEEDED"]
    assert too_big.errors[0]["extensions"]["quota"] == "unfinishedUploadBytes"
    assert not (await tuned(create, {"s": 2000}, token=hoarder.token)).errors
    third = await tuned(create, {"s": 10}, token=hoarder.token)
    assert third.codes == ["QUOTA_EXCEEDED"]
    assert third.errors[0]["extensions"]["quota"] == "unfinishedUploads"
    # Someone else is not affected by the hoarder's quota.
    other = await sign_up(tuned, "life.other")
    assert not (await tuned(create, {"s": 2000}, token=other.token)).errors


async def test_repair_deletes_objects_no_row_names(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    author = await sign_up(gql, "life.repair")
    media = await upload_media(gql, state, author, photo)
    owner_id = from_global_id(author.id)[1]
    store = state.runtime.object_store
    stray = f"m/{owner_id}/{'ab' * 16}/640.webp"
    stray_upload = f"uploads/{owner_id}/left-behind"
    for key in (stray, stray_upload):
        await store.put(key=key, body=b"x", content_type="image/webp", cache_control="no-store")
    young = await repair_orphaned_objects(state, older_than=timedelta(hours=1))
    assert young.deleted == [], "objects younger than the grace are left alone"
    report = await repair_orphaned_objects(state, older_than=timedelta(seconds=-60))
    # Earlier tests' objects are orphans too: their rows were truncated, not released.
    mine = [key for key in report.deleted if f"/{owner_id}/" in key]
    assert sorted(mine) == sorted([stray, stray_upload])
    assert await fetch_statuses(http, media) == {200}
    assert stray not in await stored_keys(state, author)
