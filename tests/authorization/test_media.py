"""Media in the authorization audit: uploads, media objects and their URLs. The probe: a
private account's media over HTTP, unsigned, signed for another object, and expired."""

from __future__ import annotations

from datetime import timedelta

from tests.authorization.audit import (
    GUARDED,
    LOOKUPS,
    MUTATIONS,
    OWN,
    OWNER,
    PUBLIC,
    Audit,
    Classified,
    World,
    classify,
)

MEDIA_HTTP = "test_media_urls_over_http"


AUDIT: list[Classified] = [
    *classify(OWNER, LOOKUPS, "Query", "media"),
    # Mutations on someone else's objects refuse as if they did not exist; the rest act
    # on the viewer's own account and content.
    *classify(GUARDED, MUTATIONS, "Mutation", "setAvatar finalizeUpload"),
    *classify(OWNER, OWN, "Mutation", "createUpload"),
    # Payloads: their objects are the visible ones the mutation acted on.
    *classify(OWNER, OWN, "CreateUploadPayload", "upload"),
    *classify(OWNER, MUTATIONS, "MediaPayload", "media"),
    *classify(OWNER, OWN, "Upload", "media url method fields expiresAt maxBytes"),
    *classify(OWNER, OWN, "UploadField", "name value"),
    # Media: reached only through what publishes it; URLs of a private account's media
    # are signed and expire.
    *classify(
        PUBLIC,
        MEDIA_HTTP,
        "Media",
        "id kind status width height aspectRatio placeholder durationSeconds url variants "
        "videoUrl createdAt",
    ),
    *classify(OWNER, LOOKUPS, "Media", "error"),
    *classify(OWNER, LOOKUPS, "MediaError", "code message"),
    *classify(PUBLIC, MEDIA_HTTP, "MediaVariant", "width height format byteSize url"),
]


async def test_media_urls_over_http(world: World) -> None:
    """A private account's media answers only a valid, unexpired signature."""
    audit = Audit(world)
    for name, signed in world.media_paths.items():
        if (await world.http.get(signed)).status_code != 200:
            audit.leak("owner", f"media({name})", "the signed URL does not serve")
        unsigned = signed.split("?")[0]
        for path, url in (("unsigned", unsigned), ("foreign signature", _swap_query(world, name))):
            answer = await world.http.get(url)
            if (
                answer.status_code != 403
                or answer.json()["errors"][0]["extensions"]["code"] != "FORBIDDEN"
            ):
                audit.leak("anonymous", f"media({name}) {path}", f"{answer.status_code}")
    real_clock = world.state.clock
    ttl = world.state.runtime.settings.media_url_ttl_seconds
    world.state.clock = lambda: real_clock() + timedelta(seconds=3 * ttl)
    try:
        for name, signed in world.media_paths.items():
            answer = await world.http.get(signed)
            if answer.status_code != 403:
                audit.leak("anonymous", f"media({name}) expired", f"{answer.status_code}")
    finally:
        world.state.clock = real_clock
    audit.assert_none()


def _swap_query(world: World, name: str) -> str:
    """The URL of ``name`` with another object's signature."""
    others = [path for other, path in world.media_paths.items() if other != name]
    return world.media_paths[name].split("?")[0] + "?" + others[0].split("?")[1]
