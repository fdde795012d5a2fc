"""Uploads that must not get through as they are (issue 25): a video's location and tags,
a truncated photo, a size other than the one declared; and uploads that must not be lost
to a decoder that died of something else than their bytes."""

from __future__ import annotations

import asyncio
import hashlib
import io
import logging
import os
import signal
from fractions import Fraction
from urllib.parse import urlsplit

import av
import httpx
import pytest

from db.media import repository as media_repo
from db.session import ShardSessions
from domain.media.decoders import DecoderPool, decoder_pool
from domain.media.delivery import variant_key
from domain.media.pipeline import process_upload
from domain.media.processing import generate_demo_image, generate_demo_video
from domain.state import AppState
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, sign_up
from tests.media_helpers import finalize_and_process, request_upload, send_bytes, upload_media

GPS = "+52.5200+013.4050+034.000/"
TITLE = "Title: the house at Elm Street 5"
COMMENT = "Comment: recorded at home"
STREAM_TAG = "Handler: Grandma's phone"


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def stored_keys(state: AppState, owner_global_id: str) -> list[str]:
    owner = from_global_id(owner_global_id)[1]
    store = state.runtime.object_store
    return await store.list_keys(prefix=f"m/{owner}/") + await store.list_keys(
        prefix=f"uploads/{owner}/"
    )


def video_with_location(*, muxer: str, movflags: str | None) -> bytes:
    """A one-second clip with sound, as a phone writes it: the place it was shot (a
    QuickTime ``©xyz`` atom, or an ``mdta`` key with ``use_metadata_tags``), a title, a
    comment, and a tag on its video stream."""
    clip = generate_demo_video(seed=11, seconds=1.0, width=160, height=120)
    output = io.BytesIO()
    options = {"movflags": movflags} if movflags else {}
    with (
        av.open(io.BytesIO(clip), mode="r") as source,
        av.open(output, mode="w", format=muxer, options=options) as tagged,
    ):
        tagged.metadata["location"] = GPS
        tagged.metadata["com.apple.quicktime.location.ISO6709"] = GPS
        tagged.metadata["title"] = TITLE
        tagged.metadata["comment"] = COMMENT
        video = tagged.add_stream_from_template(source.streams.video[0])
        video.metadata["handler_name"] = STREAM_TAG
        audio = tagged.add_stream("aac", rate=48000, layout="mono")
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = video
                tagged.mux(packet)
        for start in range(0, 48000, 1024):
            frame = av.AudioFrame(format="fltp", layout="mono", samples=1024)
            frame.planes[0].update(bytes(frame.planes[0].buffer_size))
            frame.sample_rate, frame.pts, frame.time_base = 48000, start, Fraction(1, 48000)
            tagged.mux(audio.encode(frame))
        tagged.mux(audio.encode(None))
    data = output.getvalue()
    for written in (GPS[:17], TITLE, COMMENT, STREAM_TAG):
        assert written.encode() in data, written
    return data


def probe(data: bytes) -> tuple[float, int, list[str]]:
    """Duration in seconds, frames of video that decode, and the streams' types."""
    with av.open(io.BytesIO(data), mode="r") as container:
        assert container.duration is not None
        frames = sum(1 for _ in container.decode(video=0))
        kinds: list[str] = [stream.type for stream in container.streams]
        return container.duration / av.time_base, frames, kinds


@pytest.mark.parametrize(
    ("muxer", "movflags", "content_type"),
    [("mov", None, "video/quicktime"), ("mp4", "use_metadata_tags", "video/mp4")],
)
async def test_a_video_is_served_without_its_location_and_tags(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    state: AppState,
    muxer: str,
    movflags: str | None,
    content_type: str,
) -> None:
    owner = await sign_up(gql, f"h.video.{muxer}")
    uploaded = video_with_location(muxer=muxer, movflags=movflags)
    media = await upload_media(gql, state, owner, uploaded, content_type=content_type, kind="VIDEO")
    assert media["status"] == "READY", media
    served = await http.get(path_of(media["videoUrl"]))
    assert served.status_code == 200
    assert served.headers["content-type"] == content_type
    for secret in (GPS[:17], "52.5200", TITLE, COMMENT, STREAM_TAG):
        assert secret.encode() not in served.content, secret
    assert b"\xa9xyz" not in served.content
    assert probe(served.content) == probe(uploaded), "the same streams, the same length"
    # The key is that of the bytes served, not of what was uploaded.
    media_id = from_global_id(media["id"])[1]
    expected = variant_key(
        owner_id=from_global_id(owner.id)[1],
        media_id=media_id,
        content_sha256=hashlib.sha256(served.content).hexdigest(),
        name="video",
        extension=muxer,
    )
    assert urlsplit(media["videoUrl"]).path.endswith("/" + expected)
    keys = await stored_keys(state, owner.id)
    assert not [key for key in keys if key.startswith("uploads/")], "the upload is gone"


@pytest.mark.parametrize("content_type", ["image/jpeg", "image/png"])
async def test_a_truncated_photo_is_refused(
    gql: GraphQLClient, state: AppState, content_type: str
) -> None:
    owner = await sign_up(gql, f"h.half.{content_type[6:]}")
    photo = generate_demo_image(seed=5, width=1200, height=900)
    if content_type == "image/png":
        import pyvips

        photo = pyvips.Image.new_from_buffer(photo, "").pngsave_buffer()
    media = await upload_media(
        gql, state, owner, photo[: len(photo) // 2], content_type=content_type
    )
    assert media["status"] == "FAILED", "not READY with its lower half grey"
    assert media["error"]["code"] == "MEDIA_UNDECODABLE"
    assert await stored_keys(state, owner.id) == []


@pytest.mark.parametrize("difference", [-1000, 1000])
async def test_an_upload_of_another_size_than_declared_is_refused(
    gql: GraphQLClient, state: AppState, difference: int
) -> None:
    owner = await sign_up(gql, "h.smaller" if difference < 0 else "h.larger")
    photo = generate_demo_image(seed=6, width=800, height=600)
    declared = len(photo) - difference
    upload = await request_upload(
        gql, owner, kind="IMAGE", content_type="image/jpeg", size=declared
    )
    if difference < 0:
        # Fewer bytes than declared pass the presigned POST's content-length-range.
        sent = await send_bytes(upload, photo, content_type="image/jpeg")
        assert sent.status_code in (200, 201, 204), sent.text
    else:
        # More get through a store that does not enforce the policy's range.
        key = next(field["value"] for field in upload["fields"] if field["name"] == "key")
        await state.runtime.object_store.put(key=key, body=photo, content_type="image/jpeg")
    media = await finalize_and_process(gql, state, owner, upload["media"]["id"])
    assert media["status"] == "FAILED"
    assert media["error"] == {
        "code": "MEDIA_SIZE_MISMATCH",
        "message": "The file's size is not the byteSize declared for it.",
    }
    assert await stored_keys(state, owner.id) == []


async def kill_decoders_at_work(pool: DecoderPool, *, most: int | None = None) -> int:
    """SIGKILL each decoder process that is in the middle of a call (as the kernel's OOM
    killer would), ``most`` of them or until cancelled; returns how many."""
    killed: set[int] = set()
    try:
        while most is None or len(killed) < most:
            for pid in set(pool.busy_pids()) - killed:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
                if len(killed) == most:
                    break
            await asyncio.sleep(0.001)
    except asyncio.CancelledError:
        pass
    return len(killed)


async def test_a_photo_whose_decoder_is_killed_once_gets_another(
    gql: GraphQLClient, state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await sign_up(gql, "h.killed.once")
    pool = decoder_pool(state.runtime.settings.media_decoder_processes)
    photo = generate_demo_image(seed=7, width=4000, height=3000)
    killer = asyncio.ensure_future(kill_decoders_at_work(pool, most=1))
    with caplog.at_level(logging.INFO, logger="domain.media"):
        media = await upload_media(gql, state, owner, photo)
    assert await killer == 1
    assert "killed by signal 9 during a call" in caplog.text, "it died at work"
    assert media["status"] == "READY", media
    assert sorted({variant["width"] for variant in media["variants"]}) == [320, 640, 1080]
    keys = await stored_keys(state, owner.id)
    assert keys
    assert all(key.startswith("m/") for key in keys)


async def test_a_photo_that_kills_every_decoder_fails(
    gql: GraphQLClient, state: AppState, caplog: pytest.LogCaptureFixture
) -> None:
    owner = await sign_up(gql, "h.killed.always")
    pool = decoder_pool(state.runtime.settings.media_decoder_processes)
    photo = generate_demo_image(seed=8, width=4000, height=3000)
    killer = asyncio.ensure_future(kill_decoders_at_work(pool))
    with caplog.at_level(logging.INFO, logger="domain.media"):
        media = await upload_media(gql, state, owner, photo)
    killer.cancel()
    assert await killer == 2, "tried twice, no more"
    assert media["status"] == "FAILED"
    assert media["error"]["code"] == "MEDIA_UNDECODABLE"
    assert "its second decoder killed by signal 9 too" in caplog.text
    assert await stored_keys(state, owner.id) == [], "nothing of it is kept"
    # And the pool carries on with new decoders.
    after = await upload_media(
        gql, state, owner, generate_demo_image(seed=9, width=640, height=480)
    )
    assert after["status"] == "READY"


async def test_a_retried_job_deletes_the_upload_a_dead_worker_left(
    gql: GraphQLClient, state: AppState, sessions: ShardSessions
) -> None:
    # A worker that dies between marking the media ready and deleting its raw upload
    # leaves the upload (with its EXIF) in storage; the job's retry finds the row ready.
    owner = await sign_up(gql, "h.dead.worker")
    photo = generate_demo_image(seed=10, width=800, height=600)
    media = await upload_media(gql, state, owner, photo)
    assert media["status"] == "READY"
    media_id = from_global_id(media["id"])[1]
    async with sessions.for_id(media_id) as session:
        (row,) = await media_repo.get_media(session, [media_id])
    store = state.runtime.object_store
    await store.put(key=row.upload_key, body=photo, content_type="image/jpeg")
    await process_upload(state, sessions, media_id)
    assert await store.head(row.upload_key) is None
