"""Media rules, called on the domain directly (domain/media/): an upload declares an
accepted type and size, and quotas bound what one account holds; processing checks the
bytes against the declaration and keeps nothing of a refused upload; media is published
once, and its objects go when what published it goes, or when it was never published."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from db.accounts.records import UserRecord as User
from db.media.records import MediaKind, MediaRecord
from db.runtime import Runtime
from db.session import ShardSessions
from domain.errors import BadUserInput, MediaNotReady, NotFound
from domain.media import lifecycle, pipeline, uploads
from domain.media.lifecycle import QuotaExceeded
from domain.media.processing import generate_demo_image
from domain.posts import posts
from domain.state import AppState
from infra.servers import Servers
from infra.settings import Settings
from tests.domain.support import FrozenClock, new_user, ready_media

# Tight enough to reach with a few small uploads; a ready 90x160 photo is about 5 kB.
TIGHT = {
    "max_unfinished_uploads": 2,
    "max_unfinished_upload_bytes": 6000,
    "max_media_bytes_per_account": 10000,
}


@pytest.fixture
async def tight(settings: Settings, servers: Servers) -> AsyncIterator[AppState]:
    """The domain on the same servers, with the quotas of ``TIGHT``."""
    runtime = Runtime.connect(settings.model_copy(update=TIGHT), servers)
    tight_state = AppState(runtime)
    yield tight_state
    tight_state.shutdown()
    await runtime.close()


async def ask(
    state: AppState,
    sessions: ShardSessions,
    owner: User,
    *,
    size: int,
    content_type: str = "image/jpeg",
    kind: MediaKind = "image",
) -> uploads.UploadTicket:
    return await uploads.create_upload(
        state, sessions, owner.id, kind=kind, content_type=content_type, byte_size=size
    )


async def upload(
    state: AppState,
    sessions: ShardSessions,
    owner: User,
    data: bytes,
    *,
    declared_type: str = "image/jpeg",
    declared_size: int | None = None,
) -> MediaRecord:
    """Ask for an upload, store ``data`` under its key, finalize it and process it as the
    worker does; the media as it ends up."""
    ticket = await ask(
        state, sessions, owner, size=declared_size or len(data), content_type=declared_type
    )
    await state.runtime.object_store.put(
        key=ticket.target.fields["key"], body=data, content_type=declared_type
    )
    await uploads.finalize_upload(state, sessions, owner.id, ticket.media.id)
    await pipeline.process_upload(state, sessions, ticket.media.id)
    return await uploads.own_media(state, sessions, owner.id, ticket.media.id)


async def stored(state: AppState, keys: list[str]) -> list[bool]:
    return [await state.runtime.object_store.head(key) is not None for key in keys]


def object_keys(media: MediaRecord) -> list[str]:
    return [variant.key for variant in media.variants]


async def test_an_upload_declares_an_accepted_type_and_size(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "uploader")
    refused: list[tuple[MediaKind, str, int, str]] = [
        ("image", "image/gif", 100, "contentType"),
        ("image", "video/mp4", 100, "contentType"),
        ("video", "image/jpeg", 100, "contentType"),
        ("image", "image/jpeg", 0, "byteSize"),
        ("image", "image/jpeg", state.runtime.settings.max_image_bytes + 1, "byteSize"),
        ("video", "video/mp4", state.runtime.settings.max_video_bytes + 1, "byteSize"),
    ]
    for kind, content_type, size, field in refused:
        with pytest.raises(BadUserInput) as raised:
            await ask(state, sessions, owner, size=size, content_type=content_type, kind=kind)
        assert raised.value.extensions["field"] == field, (kind, content_type, size)
    # Types are matched whatever their case and spacing, and stored normalised.
    ticket = await ask(state, sessions, owner, size=1234, content_type=" Image/PNG ")
    assert ticket.media.content_type == "image/png"
    assert ticket.media.status == "pending"
    assert ticket.max_bytes == 1234
    # A video at the video limit is fine, though far past the image limit.
    big = await ask(
        state,
        sessions,
        owner,
        size=state.runtime.settings.max_video_bytes,
        content_type="video/mp4",
        kind="video",
    )
    assert big.media.kind == "video"


async def test_quotas_bound_unfinished_uploads_and_kept_bytes(
    tight: AppState, sessions: ShardSessions
) -> None:
    hoarder = await new_user(tight, sessions, "hoarder")
    photo = await ready_media(tight, sessions, hoarder, seed=1)
    first = await ask(tight, sessions, hoarder, size=2000)
    with pytest.raises(QuotaExceeded) as raised:
        await ask(tight, sessions, hoarder, size=4500)
    assert raised.value.extensions["quota"] == "unfinishedUploadBytes"
    second = await ask(tight, sessions, hoarder, size=2000)
    with pytest.raises(QuotaExceeded) as raised:
        await ask(tight, sessions, hoarder, size=10)
    assert raised.value.extensions["quota"] == "unfinishedUploads"
    # Someone else is not held by the hoarder's quota.
    other = await new_user(tight, sessions, "bystander")
    await ask(tight, sessions, other, size=2000)

    # Uploads that fail processing count no more: neither as unfinished nor as kept.
    for ticket in (first, second):
        await tight.runtime.object_store.put(
            key=ticket.target.fields["key"], body=b"\0" * 2000, content_type="image/jpeg"
        )
        await uploads.finalize_upload(tight, sessions, hoarder.id, ticket.media.id)
        await pipeline.process_upload(tight, sessions, ticket.media.id)
    # What is kept counts, whether or not it is published: the photo and this upload
    # would pass the limit.
    assert photo.status == "ready"
    with pytest.raises(QuotaExceeded) as raised:
        await ask(tight, sessions, hoarder, size=6000)
    assert raised.value.extensions["quota"] == "accountMediaBytes"
    await ask(tight, sessions, hoarder, size=4000)


async def test_processing_refuses_bytes_unlike_the_declaration_and_keeps_none(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "liar")
    photo = generate_demo_image(seed=2, width=90, height=160)
    cases = [
        (
            "MEDIA_TYPE_MISMATCH",
            await upload(state, sessions, owner, photo, declared_type="image/png"),
        ),
        (
            "MEDIA_SIZE_MISMATCH",
            await upload(state, sessions, owner, photo, declared_size=len(photo) + 1),
        ),
        ("MEDIA_UNDECODABLE", await upload(state, sessions, owner, b"\0" * 500)),
        # A JPEG's start with nothing after it.
        ("MEDIA_UNDECODABLE", await upload(state, sessions, owner, photo[:400])),
    ]
    for code, media in cases:
        assert (media.status, media.error_code) == ("failed", code)
        assert media.variants == []
    # Nothing of them is stored: no raw upload, no variant.
    store = state.runtime.object_store
    assert await store.list_keys(prefix=f"m/{owner.id}/") == []
    assert await store.list_keys(prefix=f"uploads/{owner.id}/") == []


async def test_finalizing_needs_the_bytes_and_the_owner(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "finisher")
    other = await new_user(state, sessions, "intruder")
    ticket = await ask(state, sessions, owner, size=100)
    with pytest.raises(BadUserInput):
        await uploads.finalize_upload(state, sessions, owner.id, ticket.media.id)
    await state.runtime.object_store.put(
        key=ticket.target.fields["key"], body=b"\xff" * 100, content_type="image/jpeg"
    )
    with pytest.raises(NotFound):
        await uploads.finalize_upload(state, sessions, other.id, ticket.media.id)
    with pytest.raises(NotFound):
        await uploads.own_media(state, sessions, other.id, ticket.media.id)
    assert (await uploads.finalize_upload(state, sessions, owner.id, ticket.media.id)).status == (
        "processing"
    )
    # Twice is harmless: still processing, not refused.
    again = await uploads.finalize_upload(state, sessions, owner.id, ticket.media.id)
    assert again.status == "processing"


async def test_a_processed_photo_has_its_variants_and_no_upload_left(
    state: AppState, sessions: ShardSessions
) -> None:
    owner = await new_user(state, sessions, "photographer")
    media = await ready_media(state, sessions, owner, seed=3)
    assert (media.width, media.height) == (90, 160)
    assert media.placeholder
    # Never upscaled: a photo narrower than every rendition has one size, in two formats.
    assert sorted((v.width, v.height, v.format) for v in media.variants) == [
        (90, 160, "jpeg"),
        (90, 160, "webp"),
    ]
    assert await stored(state, object_keys(media)) == [True, True]
    assert await state.runtime.object_store.list_keys(prefix=f"uploads/{owner.id}/") == []


async def test_media_is_published_once_and_goes_with_its_post(
    state: AppState, sessions: ShardSessions
) -> None:
    author = await new_user(state, sessions, "publisher")
    other = await new_user(state, sessions, "borrower")
    media = await ready_media(state, sessions, author, seed=4)
    post = await posts.create_post(state, sessions, author.id, caption="", media_ids=[media.id])
    with pytest.raises(MediaNotReady):
        await posts.create_post(state, sessions, author.id, caption="", media_ids=[media.id])
    with pytest.raises(MediaNotReady):
        await posts.create_post(state, sessions, other.id, caption="", media_ids=[media.id])
    (published,) = await uploads.load_media(state, sessions, [media.id])
    assert published is not None
    assert published.attached_to == post.id

    await posts.delete_post(state, sessions, author.id, post.id)
    assert await uploads.load_media(state, sessions, [media.id]) == [None]
    assert await stored(state, object_keys(media)) == [False, False]


async def test_media_never_published_is_swept_after_a_while(
    state: AppState, sessions: ShardSessions, clock: FrozenClock
) -> None:
    owner = await new_user(state, sessions, "dawdler")
    unused = await ready_media(state, sessions, owner, seed=5)
    used = await ready_media(state, sessions, owner, seed=6)
    await posts.create_post(state, sessions, owner.id, caption="", media_ids=[used.id])
    wait = timedelta(seconds=state.runtime.settings.unpublished_media_seconds)

    clock.now += wait - timedelta(minutes=1)
    await lifecycle.sweep_unpublished(state)
    assert await uploads.load_media(state, sessions, [unused.id]) != [None], "not yet"

    clock.now += timedelta(minutes=2)
    await lifecycle.sweep_unpublished(state)
    assert await uploads.load_media(state, sessions, [unused.id]) == [None]
    assert await stored(state, object_keys(unused)) == [False, False]
    assert await uploads.load_media(state, sessions, [used.id]) != [None]
    assert await stored(state, object_keys(used)) == [True, True]
