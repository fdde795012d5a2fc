"""GraphQL types for media: what a client needs to lay out and fetch a photo or video."""

from __future__ import annotations

import enum
from datetime import datetime

import strawberry

from db.accounts.records import UserRecord
from db.media.records import MediaRecord as MediaRow
from db.media.records import MediaVariant as VariantRow
from domain.errors import BadUserInput
from domain.media.delivery import MediaUrls
from domain.visibility import media_urls_signed
from graphql_api.context import Info
from graphql_api.loader import Loaded, then
from graphql_api.media.loaders import MediaLoaders
from graphql_api.node import Node
from graphql_api.relay import to_global_id

MAX_REQUESTED_WIDTH = 8192


@strawberry.enum(description="What an upload holds.")
class MediaKind(enum.Enum):
    IMAGE = "image"
    VIDEO = "video"


@strawberry.enum(description="Where an upload is on its way to being publishable.")
class MediaStatus(enum.Enum):
    PENDING = "pending"
    PROCESSING = "processing"
    READY = "ready"
    FAILED = "failed"


@strawberry.enum(description="Encodings of a variant: WEBP, or JPEG for old clients.")
class ImageFormat(enum.Enum):
    WEBP = "webp"
    JPEG = "jpeg"


@strawberry.type(description="Why processing refused an upload.")
class MediaError:
    code: str = strawberry.field(description="MEDIA_TYPE_MISMATCH, MEDIA_TOO_MANY_PIXELS, ...")
    message: str


ERROR_MESSAGES = {
    "MEDIA_TYPE_MISMATCH": "The file's bytes are not of the type declared.",
    "MEDIA_UNDECODABLE": "The file could not be decoded.",
    "MEDIA_TOO_MANY_PIXELS": "The image or video has too many pixels.",
    "MEDIA_TOO_LARGE": "The file is larger than allowed.",
    "MEDIA_SIZE_MISMATCH": "The file's size is not the byteSize declared for it.",
    "MEDIA_TOO_LONG": "The video is longer than 90 seconds.",
    "MEDIA_UNSUPPORTED_TYPE": "This type of file is not accepted.",
    "MEDIA_MISSING": "The upload was not found in storage.",
    "MEDIA_ABANDONED": "The upload was never processed.",
}


def _url(info: Info, key: str, *, signed: bool) -> str:
    state = info.context.state
    return state.of(MediaUrls).url(key, signed=signed, now=state.clock())


@strawberry.type(description="One rendition of an image, or of a video's poster frame.")
class MediaVariant:
    row: strawberry.Private[VariantRow]
    signed: strawberry.Private[bool]

    @strawberry.field
    def width(self) -> int:
        return self.row.width

    @strawberry.field
    def height(self) -> int:
        return self.row.height

    @strawberry.field
    def format(self) -> ImageFormat:
        return ImageFormat(self.row.format)

    @strawberry.field(description="Bytes of this rendition.")
    def byte_size(self) -> int:
        return self.row.bytes

    @strawberry.field(description="Where to fetch it; signed, and expiring, when private.")
    def url(self, info: Info) -> str:
        return _url(info, self.row.key, signed=self.signed)


def choose_variant(
    variants: list[VariantRow], *, width: int | None, image_format: str
) -> VariantRow | None:
    """The narrowest rendition at least ``width`` wide (the widest if none is), so a
    client gets what fills its screen and no more."""
    candidates = sorted(
        (variant for variant in variants if variant.format == image_format),
        key=lambda variant: variant.width,
    )
    if not candidates:
        return None
    if width is None:
        return candidates[-1]
    return next((variant for variant in candidates if variant.width >= width), candidates[-1])


@strawberry.type(description="A photo or video, with renditions sized for each screen.")
class Media(Node):
    row: strawberry.Private[MediaRow]
    # A private account's media: every URL is signed and expires.
    signed: strawberry.Private[bool]

    @strawberry.field
    def id(self) -> strawberry.ID:
        return to_global_id("Media", self.row.id)

    @strawberry.field
    def kind(self) -> MediaKind:
        return MediaKind(self.row.kind)

    @strawberry.field
    def status(self) -> MediaStatus:
        return MediaStatus(self.row.status)

    @strawberry.field(description="Pixels, after rotation by its EXIF orientation.")
    def width(self) -> int | None:
        return self.row.width

    @strawberry.field
    def height(self) -> int | None:
        return self.row.height

    @strawberry.field(description="Width over height: lay the frame out before it loads.")
    def aspect_ratio(self) -> float | None:
        if not self.row.width or not self.row.height:
            return None
        return round(self.row.width / self.row.height, 4)

    @strawberry.field(description="A ThumbHash (base64) to paint while the image loads.")
    def placeholder(self) -> str | None:
        return self.row.placeholder

    @strawberry.field(description="A video's length.")
    def duration_seconds(self) -> float | None:
        return None if self.row.duration_ms is None else self.row.duration_ms / 1000

    @strawberry.field(
        description="The rendition that fits a screen 'width' pixels wide (the narrowest "
        "at least that wide; the largest when width is omitted). A video's is its poster."
    )
    def url(
        self, info: Info, width: int | None = None, format: ImageFormat = ImageFormat.WEBP
    ) -> str | None:
        if width is not None and not 1 <= width <= MAX_REQUESTED_WIDTH:
            raise BadUserInput(f"width must be between 1 and {MAX_REQUESTED_WIDTH}", field="width")
        chosen = choose_variant(self.row.variants, width=width, image_format=format.value)
        return None if chosen is None else _url(info, chosen.key, signed=self.signed)

    @strawberry.field(description="Every rendition, narrowest first.")
    def variants(self, format: ImageFormat | None = None) -> list[MediaVariant]:
        rows = sorted(self.row.variants, key=lambda variant: (variant.format, variant.width))
        return [
            MediaVariant(row=row, signed=self.signed)
            for row in rows
            if format is None or row.format == format.value
        ]

    @strawberry.field(description="A video's file (MP4, QuickTime or WebM as uploaded).")
    def video_url(self, info: Info) -> str | None:
        if self.row.video_key is None:
            return None
        return _url(info, self.row.video_key, signed=self.signed)

    @strawberry.field(description="Why processing refused it, when status is FAILED.")
    def error(self) -> MediaError | None:
        if self.row.error_code is None:
            return None
        message = ERROR_MESSAGES.get(self.row.error_code, "The upload could not be used.")
        return MediaError(code=self.row.error_code, message=message)

    @strawberry.field
    def created_at(self) -> datetime:
        return self.row.created_at


def media_of(
    info: Info, media_ids: list[int], *, owner: UserRecord | None, in_message: bool = False
) -> Loaded[list[Media]]:
    """Published media by id, in order; anything not ready (or gone) is left out. Its URLs
    are signed as the policy says for ``owner`` (``media_urls_signed``)."""
    if not media_ids:
        return []
    signed = media_urls_signed(owner, in_message=in_message)
    return then(
        info.context.loaders.of(MediaLoaders).media.get_many(media_ids),
        lambda rows: [
            Media(row=row, signed=signed)
            for row in rows
            if row is not None and row.status == "ready"
        ],
    )


def first_media(found: list[Media]) -> Media | None:
    return found[0] if found else None
