"""An avatar is one of the caller's own processed images that nothing else carries
(SECURITY.md: publishing media not ready, not one's own, or already attached is
MEDIA_NOT_READY)."""

from __future__ import annotations

from domain.media.processing import generate_demo_image
from domain.state import AppState
from graphql_api.relay import from_global_id
from tests.helpers import GraphQLClient, sign_up
from tests.media_helpers import publish, upload_media

SET_AVATAR = "mutation($m: ID) { setAvatar(mediaId: $m) { avatar { id } } }"
AVATAR = "{ viewer { avatar { id } } }"


async def test_media_already_on_a_post_is_not_an_avatar(
    gql: GraphQLClient, state: AppState
) -> None:
    ana = await sign_up(gql, "av.ana")
    photo = generate_demo_image(seed=11, width=400, height=300)
    on_post, spare = [(await upload_media(gql, state, ana, photo))["id"] for _ in range(2)]
    (await publish(gql, ana, [on_post])).ok()

    refused = await gql(SET_AVATAR, {"m": on_post}, token=ana.token)
    assert refused.codes == ["MEDIA_NOT_READY"]
    assert refused.errors[0]["extensions"]["mediaIds"] == [str(from_global_id(on_post)[1])]
    assert (await gql(AVATAR, token=ana.token)).ok()["viewer"]["avatar"] is None

    # Media that nothing carries still is one, and setting it again changes nothing.
    for _ in range(2):
        chosen = (await gql(SET_AVATAR, {"m": spare}, token=ana.token)).ok()
        assert chosen["setAvatar"]["avatar"] == {"id": spare}


SEND_MEDIA = (
    "mutation($u: ID!, $m: ID!) { sendMessage(input: {userId: $u, mediaId: $m}) "
    "{ message { id } } }"
)


async def test_an_avatar_is_not_also_sent_in_a_message(gql: GraphQLClient, state: AppState) -> None:
    """The media row read while it processed (cached) says nothing carries it; once it is
    the avatar, a message may not carry it too."""
    ana = await sign_up(gql, "av.sender")
    bo = await sign_up(gql, "av.friend")
    photo = generate_demo_image(seed=12, width=400, height=300)
    avatar = (await upload_media(gql, state, ana, photo))["id"]
    (await gql(SET_AVATAR, {"m": avatar}, token=ana.token)).ok()

    refused = await gql(SEND_MEDIA, {"u": bo.id, "m": avatar}, token=ana.token)
    assert refused.codes == ["MEDIA_NOT_READY"]
    assert (await gql(AVATAR, token=ana.token)).ok()["viewer"]["avatar"] == {"id": avatar}
