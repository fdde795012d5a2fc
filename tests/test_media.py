"""Media end to end on the embedded SeaweedFS: upload straight to storage, process in the
worker, publish, fetch through the CDN-style route; every bad input refused with nothing
stored; a private account's media only behind signatures that expire."""

from __future__ import annotations

import io
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from PIL import Image

from domain.media.pipeline import sweep_abandoned
from domain.media.processing import generate_demo_image, generate_demo_video
from domain.state import AppState
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, follow, sign_up
from tests.media_helpers import (
    FINALIZE,
    MEDIA,
    publish,
    request_upload,
    send_bytes,
    upload_media,
)
from workers.runner import drain_jobs

FEED_WITH_MEDIA = """
{ homeFeed(first: 10) { edges { node { id media {
    id width height aspectRatio placeholder url(width: 640) videoUrl
    variants { width format url }
} } } } }
"""


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}" if parts.query else parts.path


async def owner_keys(state: AppState, owner_global_id: str) -> list[str]:
    owner = from_global_id(owner_global_id)[1]
    store = state.runtime.object_store
    return await store.list_keys(prefix=f"m/{owner}/") + await store.list_keys(
        prefix=f"uploads/{owner}/"
    )


@pytest.fixture(scope="module")
def photo() -> bytes:
    return generate_demo_image(seed=1, width=1600, height=1200)


async def test_upload_process_publish_and_fetch(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    author, fan = await sign_up(gql, "m.author"), await sign_up(gql, "m.fan")
    await follow(gql, fan, author)
    media = await upload_media(gql, state, author, photo)
    assert media["status"] == "READY", media
    assert (media["width"], media["height"]) == (1600, 1200)
    assert media["aspectRatio"] == pytest.approx(4 / 3, abs=1e-3)
    assert media["placeholder"]
    widths = sorted({variant["width"] for variant in media["variants"]})
    assert widths == [320, 640, 1080]
    assert {variant["format"] for variant in media["variants"]} == {"WEBP", "JPEG"}
    # The raw upload is gone once its variants exist.
    keys = await owner_keys(state, author.id)
    assert keys
    assert all(key.startswith("m/") for key in keys)

    post = (await publish(gql, author, [media["id"]], "sunset")).ok()["createPost"]["post"]
    assert post["media"][0]["id"] == media["id"]
    await drain_jobs(state)
    feed = (await gql(FEED_WITH_MEDIA, token=fan.token)).ok()["homeFeed"]["edges"]
    shown = feed[0]["node"]["media"][0]
    assert "sig=" not in shown["url"], "a public account's media needs no signature"
    assert shown["url"].endswith("/640.webp")

    fetched = await http.get(path_of(shown["url"]))
    assert fetched.status_code == 200
    assert fetched.headers["content-type"] == "image/webp"
    assert "immutable" in fetched.headers["cache-control"]
    etag = fetched.headers["etag"]
    assert Image.open(io.BytesIO(fetched.content)).size == (640, 480)
    again = await http.get(path_of(shown["url"]), headers={"If-None-Match": etag})
    assert again.status_code == 304
    ranged = await http.get(path_of(shown["url"]), headers={"Range": "bytes=0-99"})
    assert ranged.status_code == 206
    assert ranged.content == fetched.content[:100]
    assert ranged.headers["content-range"].startswith(f"bytes 0-99/{len(fetched.content)}")
    jpeg = next(v for v in shown["variants"] if v["format"] == "JPEG" and v["width"] == 1080)
    assert Image.open(io.BytesIO((await http.get(path_of(jpeg["url"]))).content)).format == "JPEG"


async def test_exif_location_is_stripped(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState
) -> None:
    owner = await sign_up(gql, "m.gps")
    image = Image.new("RGB", (800, 600), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    gps = exif.get_ifd(0x8825)
    gps[2] = (52.0, 31.0, 12.0)  # GPSLatitude
    gps[1] = "N"
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    assert Image.open(io.BytesIO(buffer.getvalue())).getexif().get_ifd(0x8825)
    media = await upload_media(gql, state, owner, buffer.getvalue())
    assert media["status"] == "READY"
    for variant in media["variants"]:
        served = Image.open(io.BytesIO((await http.get(path_of(variant["url"]))).content))
        exif_out = served.getexif()
        assert not exif_out.get_ifd(0x8825), "no GPS data may survive"
        assert 0x010F not in exif_out


@pytest.mark.parametrize(
    ("content_type", "size", "code_field"),
    [
        ("image/gif", 1000, "contentType"),
        ("application/x-sh", 1000, "contentType"),
        ("image/jpeg", 0, "byteSize"),
        ("image/jpeg", 2**31 - 1, "byteSize"),
    ],
)
async def test_upload_requests_out_of_bounds_are_refused(
    gql: GraphQLClient, state: AppState, content_type: str, size: int, code_field: str
) -> None:
    owner = await sign_up(gql, f"m.bad{abs(hash((content_type, size))) % 10**6}")
    result = await gql(
        "mutation($t: String!, $s: Int!) { createUpload(input: {kind: IMAGE, contentType: $t,"
        " byteSize: $s}) { upload { url } } }",
        {"t": content_type, "s": size},
        token=owner.token,
    )
    assert result.codes == ["BAD_USER_INPUT"]
    assert result.errors[0]["extensions"]["field"] == code_field
    assert await owner_keys(state, owner.id) == []


async def test_storage_enforces_the_declared_size_and_type(
    gql: GraphQLClient, state: AppState, photo: bytes
) -> None:
    owner = await sign_up(gql, "m.sneaky")
    upload = await request_upload(
        gql, owner, kind="IMAGE", content_type="image/jpeg", size=len(photo) - 10
    )
    too_big = await send_bytes(upload, photo, content_type="image/jpeg")
    assert too_big.status_code == 400
    assert "EntityTooLarge" in too_big.text
    wrong_type = await send_bytes(upload, photo[: len(photo) - 10], content_type="image/png")
    assert wrong_type.status_code == 403
    # Nothing arrived, so there is nothing to finalize.
    finalized = await gql(FINALIZE, {"id": upload["media"]["id"]}, token=owner.token)
    assert finalized.codes == ["BAD_USER_INPUT"]
    assert await owner_keys(state, owner.id) == []


@pytest.mark.parametrize(
    ("label", "payload", "declared", "kind", "code"),
    [
        ("png_as_jpeg", "png", "image/jpeg", "IMAGE", "MEDIA_TYPE_MISMATCH"),
        ("junk", "junk", "image/jpeg", "IMAGE", "MEDIA_UNDECODABLE"),
        ("bomb", "bomb", "image/png", "IMAGE", "MEDIA_TOO_MANY_PIXELS"),
        ("video_as_image", "video", "image/jpeg", "IMAGE", "MEDIA_TYPE_MISMATCH"),
        ("truncated_video", "truncated", "video/mp4", "VIDEO", "MEDIA_UNDECODABLE"),
    ],
)
async def test_bad_bytes_fail_processing_and_store_nothing(
    gql: GraphQLClient,
    state: AppState,
    label: str,
    payload: str,
    declared: str,
    kind: str,
    code: str,
) -> None:
    owner = await sign_up(gql, f"m.{label}")
    if payload == "png":
        buffer = io.BytesIO()
        Image.new("RGB", (64, 64), (1, 2, 3)).save(buffer, "PNG")
        data = buffer.getvalue()
    elif payload == "junk":
        data = b"\xff\xd8\xff" + bytes(range(256)) * 20
    elif payload == "bomb":
        import pyvips

        data = pyvips.Image.black(8000, 7000).pngsave_buffer(compression=9)
    else:
        video = generate_demo_video(seed=2, seconds=1.0, width=160, height=120)
        data = video if payload == "video" else video[: len(video) // 3]
    media = await upload_media(gql, state, owner, data, declared_type=declared, kind=kind)
    assert media["status"] == "FAILED"
    assert media["error"]["code"] == code
    assert media["variants"] == []
    assert media["url"] is None
    assert await owner_keys(state, owner.id) == [], "nothing of a rejected upload is kept"
    refused = await publish(gql, owner, [media["id"]])
    assert refused.codes == ["MEDIA_NOT_READY"]


async def test_only_own_ready_unpublished_media_can_be_posted(
    gql: GraphQLClient, state: AppState, photo: bytes
) -> None:
    owner, other = await sign_up(gql, "m.owner"), await sign_up(gql, "m.other")
    pending = await request_upload(
        gql, owner, kind="IMAGE", content_type="image/jpeg", size=len(photo)
    )
    assert (await publish(gql, owner, [pending["media"]["id"]])).codes == ["MEDIA_NOT_READY"]
    ready = await upload_media(gql, state, owner, photo)
    assert (await publish(gql, other, [ready["id"]])).codes == ["MEDIA_NOT_READY"]
    assert (await publish(gql, owner, [ready["id"]])).ok()
    assert (await publish(gql, owner, [ready["id"]])).codes == ["MEDIA_NOT_READY"]
    eleven = await publish(gql, owner, [ready["id"]] * 11)
    assert eleven.codes == ["BAD_USER_INPUT"]
    caption_only = await publish(gql, owner, [], "words only")
    assert caption_only.ok()["createPost"]["post"]["media"] == []


async def test_carousel_keeps_its_order(gql: GraphQLClient, state: AppState) -> None:
    owner = await sign_up(gql, "m.carousel")
    ids = []
    for seed, size in ((3, (900, 900)), (4, (1080, 1350)), (5, (1200, 800))):
        media = await upload_media(
            gql, state, owner, generate_demo_image(seed=seed, width=size[0], height=size[1])
        )
        ids.append(media["id"])
    post = (await publish(gql, owner, ids)).ok()["createPost"]["post"]
    assert [item["id"] for item in post["media"]] == ids
    assert [(item["width"], item["height"]) for item in post["media"]] == [
        (900, 900),
        (1080, 1350),
        (1200, 800),
    ]
    assert post["isReel"] is False


async def test_private_media_needs_a_valid_unexpired_signature(
    gql: GraphQLClient, http: httpx.AsyncClient, state: AppState, photo: bytes
) -> None:
    private = await sign_up(gql, "m.private", private=True)
    follower, stranger = await sign_up(gql, "m.pfollower"), await sign_up(gql, "m.pstranger")
    await follow(gql, follower, private)
    (
        await gql(
            "mutation($id: ID!) { approveFollowRequest(userId: $id) { user { id } } }",
            {"id": follower.id},
            token=private.token,
        )
    )
    media = await upload_media(gql, state, private, photo)
    post = (await publish(gql, private, [media["id"]])).ok()["createPost"]["post"]
    signed_url = post["media"][0]["url"]
    assert "sig=" in signed_url
    assert "exp=" in signed_url
    assert (await http.get(path_of(signed_url))).status_code == 200

    unsigned = path_of(signed_url).split("?")[0]
    refused = await http.get(unsigned)
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    tampered = path_of(signed_url)[:-2] + ("AA" if not signed_url.endswith("AA") else "BB")
    assert (await http.get(tampered)).status_code == 403
    other_key = path_of(signed_url).replace("/640.webp", "/320.webp")
    assert (await http.get(other_key)).status_code == 403, "a signature covers one key"

    real_clock = state.clock
    state.clock = lambda: real_clock() + timedelta(hours=2)
    try:
        expired = await http.get(path_of(signed_url))
        assert expired.status_code == 403
        assert expired.json()["errors"][0]["extensions"]["reason"] == "URL_EXPIRED"
    finally:
        state.clock = real_clock

    node = "query($id: ID!) { node(id: $id) { ... on Post { media { url } } } }"
    assert (await gql(node, {"id": post["id"]}, token=stranger.token)).codes == ["NOT_FOUND"]
    shown = await gql(node, {"id": post["id"]}, token=follower.token)
    assert "sig=" in shown.ok()["node"]["media"][0]["url"]


async def test_blocked_users_get_no_media_url(
    gql: GraphQLClient, state: AppState, photo: bytes
) -> None:
    author, blocked = await sign_up(gql, "m.blocker"), await sign_up(gql, "m.blocked")
    media = await upload_media(gql, state, author, photo)
    post = (await publish(gql, author, [media["id"]])).ok()["createPost"]["post"]
    (
        await gql(
            "mutation($id: ID!) { block(userId: $id) { blockedUserId } }",
            {"id": blocked.id},
            token=author.token,
        )
    ).ok()
    node = "query($id: ID!) { node(id: $id) { ... on Post { media { url } } } }"
    assert (await gql(node, {"id": post["id"]}, token=blocked.token)).codes == ["NOT_FOUND"]
    owned = await gql(MEDIA, {"id": media["id"]}, token=blocked.token)
    assert owned.codes == ["NOT_FOUND"], "media by id is for its owner only"


async def test_junk_media_paths_are_not_served(http: httpx.AsyncClient) -> None:
    for path in (
        "/media/uploads/1/abc",
        "/media/m/../../etc/passwd",
        "/media/m/1/" + "a" * 32 + "/640.webp",
        "/media/" + "x" * 1000,
    ):
        answer = await http.get(path)
        assert answer.status_code in (403, 404), path
        assert answer.json()["errors"][0]["extensions"]["code"] in ("NOT_FOUND", "FORBIDDEN")


async def test_avatar(gql: GraphQLClient, state: AppState, photo: bytes) -> None:
    owner = await sign_up(gql, "m.avatar")
    media = await upload_media(gql, state, owner, photo)
    result = await gql(
        "mutation($id: ID) { setAvatar(mediaId: $id) { avatar { id url(width: 320) } } }",
        {"id": media["id"]},
        token=owner.token,
    )
    avatar = result.ok()["setAvatar"]["avatar"]
    assert avatar["id"] == media["id"]
    assert avatar["url"].endswith("/320.webp")
    cleared = await gql(
        "mutation { setAvatar(mediaId: null) { avatar { id } } }", token=owner.token
    )
    assert cleared.ok()["setAvatar"]["avatar"] is None


async def test_abandoned_uploads_are_swept(
    gql: GraphQLClient, state: AppState, photo: bytes
) -> None:
    owner = await sign_up(gql, "m.abandon")
    upload = await request_upload(
        gql, owner, kind="IMAGE", content_type="image/jpeg", size=len(photo)
    )
    assert (await send_bytes(upload, photo, content_type="image/jpeg")).status_code in (200, 204)
    assert await owner_keys(state, owner.id)
    assert await sweep_abandoned(state) == 0, "a fresh upload is left alone"
    real_clock = state.clock
    state.clock = lambda: real_clock() + timedelta(hours=2)
    try:
        assert await sweep_abandoned(state) == 1
    finally:
        state.clock = real_clock
    assert await owner_keys(state, owner.id) == []
    gone = await gql(MEDIA, {"id": upload["media"]["id"]}, token=owner.token)
    assert gone.codes == ["NOT_FOUND"]


async def test_video_gets_probed_and_a_poster(gql: GraphQLClient, state: AppState) -> None:
    owner = await sign_up(gql, "m.video")
    clip = generate_demo_video(seed=7, seconds=2.0, width=320, height=568)
    media = await upload_media(gql, state, owner, clip, content_type="video/mp4", kind="VIDEO")
    assert media["status"] == "READY", media
    assert media["kind"] == "VIDEO"
    assert media["durationSeconds"] == pytest.approx(2.0, abs=0.2)
    assert (media["width"], media["height"]) == (320, 568)
    assert media["videoUrl"].endswith(".mp4")
    assert media["url"], "the poster frame"
