"""Media queries and mutations: uploads, their status, avatars."""

from __future__ import annotations

from datetime import datetime

import strawberry

from domain.accounts import profiles
from domain.errors import NotFound
from domain.media import uploads
from domain.visibility import media_urls_signed
from graphql_api.accounts.loaders import AccountLoaders
from graphql_api.accounts.types import User
from graphql_api.context import Info, SignedIn
from graphql_api.ids import media_id_from
from graphql_api.media.types import Media, MediaKind
from graphql_api.node import register_node_type


async def _own_media(info: Info, media_id: int) -> Media | None:
    ctx = info.context
    if ctx.viewer_id is None:
        return None
    try:
        row = await uploads.own_media(ctx.state, ctx.sessions, ctx.viewer_id, media_id)
    except NotFound:
        return None
    owner = await ctx.loaders.of(AccountLoaders).user.load(row.owner_id)
    return Media(row=row, signed=media_urls_signed(owner))


# Media has no page of its own for others: they reach it through a post, story or avatar.
register_node_type("Media", _own_media)


@strawberry.input(description="What the client is about to upload.")
class CreateUploadInput:
    kind: MediaKind
    content_type: str = strawberry.field(
        description="image/jpeg, image/png, image/webp, video/mp4, video/quicktime or video/webm."
    )
    byte_size: int = strawberry.field(description="The file's exact size in bytes.")


@strawberry.type(description="A form field to send, as is, with the file.")
class UploadField:
    name: str
    value: str


@strawberry.type(
    description="Where to send the file: a multipart/form-data POST to url with every field "
    "of fields, then the file last, as the field 'file'. The URL enforces the content type "
    "and size, and expires."
)
class Upload:
    media: Media
    url: str
    method: str
    fields: list[UploadField]
    expires_at: datetime
    max_bytes: int


@strawberry.type
class CreateUploadPayload:
    upload: Upload


@strawberry.type
class MediaPayload:
    media: Media


@strawberry.type
class MediaQueries:
    @strawberry.field(
        description="One of the viewer's own uploads, to follow its processing.",
        permission_classes=[SignedIn],
    )
    async def media(self, info: Info, id: strawberry.ID) -> Media:
        media = await _own_media(info, media_id_from(id, field="id"))
        if media is None:
            raise NotFound("No such media")
        return media


@strawberry.type
class MediaMutations:
    @strawberry.mutation(
        description="Start an upload: send the file where the answer says, then call "
        "finalizeUpload.",
        permission_classes=[SignedIn],
    )
    async def create_upload(self, info: Info, input: CreateUploadInput) -> CreateUploadPayload:
        ctx = info.context
        ticket = await uploads.create_upload(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            kind=input.kind.value,
            content_type=input.content_type,
            byte_size=input.byte_size,
        )
        owner = await ctx.loaders.of(AccountLoaders).user.load(ctx.signed_in_id)
        return CreateUploadPayload(
            upload=Upload(
                media=Media(row=ticket.media, signed=media_urls_signed(owner)),
                url=ticket.target.url,
                method="POST",
                fields=[
                    UploadField(name=name, value=value)
                    for name, value in ticket.target.fields.items()
                ],
                expires_at=ticket.expires_at,
                max_bytes=ticket.max_bytes,
            )
        )

    @strawberry.mutation(
        description="The file is uploaded: process it. Poll media(id) until READY (or "
        "FAILED, with the reason).",
        permission_classes=[SignedIn],
    )
    async def finalize_upload(self, info: Info, media_id: strawberry.ID) -> MediaPayload:
        ctx = info.context
        row = await uploads.finalize_upload(
            ctx.state, ctx.sessions, ctx.signed_in_id, media_id_from(media_id)
        )
        owner = await ctx.loaders.of(AccountLoaders).user.load(ctx.signed_in_id)
        return MediaPayload(media=Media(row=row, signed=media_urls_signed(owner)))

    @strawberry.mutation(
        description="Make one of your processed images your avatar; null removes it.",
        permission_classes=[SignedIn],
    )
    async def set_avatar(self, info: Info, media_id: strawberry.ID | None) -> User:
        ctx = info.context
        row = await profiles.set_avatar(
            ctx.state,
            ctx.sessions,
            ctx.signed_in_id,
            media_id=None if media_id is None else media_id_from(media_id),
        )
        return User(row=row)
