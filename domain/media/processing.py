"""Decoding uploads for real and rendering what clients fetch: CPU-bound functions that a
worker runs in a thread (libvips and FFmpeg release the GIL while they work).

Images go through libvips (pyvips, with libvips bundled by ``pyvips-binary``): it
shrinks a JPEG while decoding it (a 12-megapixel photo is decoded at a half or a quarter
of its size when that is enough for 1080 px), and streams rather than holding whole
frames, so memory stays small. ``bench/media_pipeline.py`` measures it against Pillow.

Everything a client declares is checked against the bytes: the type (by magic number
and by the decoder that accepts them), the pixel count before any pixel is decoded (a
decompression bomb is refused from its header), the size, and a video's duration. A
rejection is a ``MediaRejected`` with a stable code, and nothing of the upload is kept.

Outputs carry no metadata at all (no EXIF, so no GPS position; no XMP, no IPTC): each
image is rotated upright by its EXIF orientation and converted to sRGB first. A video's
packets are copied, not transcoded, into a fresh container of its type with none of the
upload's tags (a phone's QuickTime ``©xyz`` location among them), chapters or extra
streams.
"""

from __future__ import annotations

import base64
import hashlib
import io
import random
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Literal

import fast_thumbhash
import pyvips

if TYPE_CHECKING:
    import av

ImageFormat = Literal["webp", "jpeg"]

# libvips keeps recent operations' results to reuse them; processing never runs the same
# operation on the same pixels twice, so its cache would only hold memory.
pyvips.cache_set_max(0)

IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
# Widths of the renditions: a phone's full width, a feed cell, a grid thumbnail.
VARIANT_WIDTHS = (1080, 640, 320)
JPEG_QUALITY = 80
WEBP_QUALITY = 80
# libvips' WebP effort runs 0 (fastest) to 6 (smallest); 2 is close to 4's size at about
# half its time (bench/media_pipeline.py).
WEBP_EFFORT = 2
PLACEHOLDER_SIZE = 100  # ThumbHash encodes at most 100x100

# Whichever loader libvips picks for the bytes must be the declared type's.
_LOADERS = {
    "image/jpeg": ("jpegload_buffer",),
    "image/png": ("pngload_buffer",),
    "image/webp": ("webpload_buffer",),
}
# The demuxers FFmpeg may pick: MP4 and QuickTime share one.
_DEMUXERS = {
    "video/mp4": ("mov", "mp4"),
    "video/quicktime": ("mov", "mp4"),
    "video/webm": ("matroska", "webm"),
}
# The muxer that writes the stored copy of each type.
_MUXERS = {"video/mp4": "mp4", "video/quicktime": "mov", "video/webm": "webm"}


@dataclass(frozen=True)
class Limits:
    max_bytes_image: int = 30 * 1024 * 1024
    max_bytes_video: int = 200 * 1024 * 1024
    # 50 MP: any phone photo, and a bomb's 20000x20000 header is refused.
    max_pixels: int = 50_000_000
    max_dimension: int = 12_000
    max_video_seconds: float = 90.0
    max_video_pixels: int = 4096 * 2304


class MediaRejected(Exception):
    """The upload cannot be used; ``code`` says why, for clients to act on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code

    def __reduce__(self) -> tuple[type[MediaRejected], tuple[str, str]]:
        # Raised in a decoder process (domain.media.decoders) and pickled back to the job.
        return (MediaRejected, (self.code, str(self)))


@dataclass(frozen=True)
class Variant:
    width: int
    height: int
    format: ImageFormat
    content_type: str
    data: bytes


@dataclass(frozen=True)
class ProcessedImage:
    width: int  # of the upright original
    height: int
    variants: list[Variant]
    placeholder: str  # ThumbHash, base64
    content_sha256: str


@dataclass(frozen=True)
class ProcessedVideo:
    duration_seconds: float
    width: int
    height: int
    video_codec: str
    container: str
    poster: ProcessedImage
    data: bytes  # what is stored and served: the upload's streams, without its metadata
    content_sha256: str  # of ``data``


def sniff(data: bytes) -> str | None:
    """The media type the bytes' magic number names, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:8] == b"ftyp":
        return "video/quicktime" if data[8:12] == b"qt  " else "video/mp4"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video/webm"
    return None


def _check_declared(data: bytes, declared_type: str, accepted: tuple[str, ...]) -> None:
    if declared_type not in accepted:
        raise MediaRejected("MEDIA_UNSUPPORTED_TYPE", f"{declared_type} is not accepted here")
    found = sniff(data)
    same_family = {found, declared_type} <= {"video/mp4", "video/quicktime"}
    if found is None:
        raise MediaRejected("MEDIA_UNDECODABLE", "The bytes are not an image or video we read")
    if found != declared_type and not same_family:
        raise MediaRejected(
            "MEDIA_TYPE_MISMATCH", f"Declared {declared_type}, but the bytes are {found}"
        )


# Images ---------------------------------------------------------------------------------


def _upright_size(header: pyvips.Image) -> tuple[int, int]:
    orientation = header.get("orientation") if header.get_typeof("orientation") else 1
    # Orientations 5-8 turn the picture a quarter: width and height swap.
    if orientation in (5, 6, 7, 8):
        return header.height, header.width
    return header.width, header.height


def _check_pixels(width: int, height: int, limits: Limits) -> None:
    if width * height > limits.max_pixels or max(width, height) > limits.max_dimension:
        raise MediaRejected(
            "MEDIA_TOO_MANY_PIXELS",
            f"{width}x{height} is more than {limits.max_pixels} pixels or "
            f"{limits.max_dimension} on a side",
        )


def process_image(data: bytes, *, declared_type: str, limits: Limits) -> ProcessedImage:
    if len(data) > limits.max_bytes_image:
        raise MediaRejected("MEDIA_TOO_LARGE", f"Images are at most {limits.max_bytes_image} bytes")
    _check_declared(data, declared_type, IMAGE_TYPES)
    try:
        # Only the header is read here: nothing is decoded until pixels are asked for.
        header = pyvips.Image.new_from_buffer(data, "", access="sequential")
    except pyvips.Error:
        raise MediaRejected("MEDIA_UNDECODABLE", "The image could not be decoded") from None
    if header.get("vips-loader") not in _LOADERS[declared_type]:
        raise MediaRejected("MEDIA_TYPE_MISMATCH", f"The bytes are not {declared_type}")
    width, height = _upright_size(header)
    _check_pixels(width, height, limits)
    try:
        largest = pyvips.Image.thumbnail_buffer(
            data,
            min(VARIANT_WIDTHS[0], width),
            height=10 * VARIANT_WIDTHS[0],
            size="down",
            # To the loader: thumbnail's own fail_on does not reach it, and a truncated
            # JPEG or PNG would otherwise come out with its missing rows grey.
            option_string="fail_on=error",
        )
        return _render(largest.copy_memory(), width=width, height=height, source=data)
    except pyvips.Error:
        raise MediaRejected("MEDIA_UNDECODABLE", "The image could not be decoded") from None


def _srgb(image: pyvips.Image) -> pyvips.Image:
    if image.interpretation not in ("srgb", "b-w"):
        image = image.colourspace("srgb")
    if image.format != "uchar":
        image = image.cast("uchar")
    return image


def _render(largest: pyvips.Image, *, width: int, height: int, source: bytes) -> ProcessedImage:
    """Every rendition and the placeholder from the largest one, already in memory."""
    largest = _srgb(largest)
    variants: list[Variant] = []
    # Never upscale: a source narrower than a width has fewer renditions.
    for target in sorted({min(each, largest.width) for each in VARIANT_WIDTHS}, reverse=True):
        # thumbnail_image bounds both sides by its width unless told the height: a portrait
        # photo would come out narrower than the width it is named for.
        image = (
            largest
            if target == largest.width
            else largest.thumbnail_image(target, height=largest.height)
        )
        variants.extend(_encode(image))
    return ProcessedImage(
        width=width,
        height=height,
        variants=variants,
        placeholder=_placeholder(largest),
        content_sha256=hashlib.sha256(source).hexdigest(),
    )


def _encode(image: pyvips.Image) -> list[Variant]:
    opaque = image.flatten(background=[255, 255, 255]) if image.hasalpha() else image
    webp = image.webpsave_buffer(Q=WEBP_QUALITY, effort=WEBP_EFFORT, keep="none")
    jpeg = opaque.jpegsave_buffer(Q=JPEG_QUALITY, interlace=True, optimize_coding=True, keep="none")
    return [
        Variant(image.width, image.height, "webp", "image/webp", webp),
        Variant(image.width, image.height, "jpeg", "image/jpeg", jpeg),
    ]


def _placeholder(image: pyvips.Image) -> str:
    small = image.thumbnail_image(PLACEHOLDER_SIZE, height=PLACEHOLDER_SIZE)
    if small.bands == 1:
        small = small.colourspace("srgb")
    if not small.hasalpha():
        small = small.bandjoin(255)
    small = small.cast("uchar")
    encoded = fast_thumbhash.rgba_to_thumb_hash(
        small.width, small.height, bytes(small.write_to_memory())
    )
    return base64.b64encode(bytes(encoded)).decode()


# Videos ---------------------------------------------------------------------------------


def process_video(data: bytes, *, declared_type: str, limits: Limits) -> ProcessedVideo:
    if len(data) > limits.max_bytes_video:
        raise MediaRejected("MEDIA_TOO_LARGE", f"Videos are at most {limits.max_bytes_video} bytes")
    _check_declared(data, declared_type, VIDEO_TYPES)
    # Imported on first use: PyAV and the FFmpeg it loads cost a process some 18 MiB, and
    # most processes that import this module (web processes, image-only workers) never
    # decode a video.
    import av  # noqa: PLC0415

    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            demuxers = set(container.format.name.split(","))
            if not demuxers & set(_DEMUXERS[declared_type]):
                raise MediaRejected("MEDIA_TYPE_MISMATCH", f"The bytes are not {declared_type}")
            if not container.streams.video:
                raise MediaRejected("MEDIA_UNDECODABLE", "The file has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            duration = _duration(container, stream)
            if duration > limits.max_video_seconds:
                raise MediaRejected(
                    "MEDIA_TOO_LONG", f"Videos are at most {limits.max_video_seconds:g} s"
                )
            if width * height > limits.max_video_pixels or not width or not height:
                raise MediaRejected("MEDIA_TOO_MANY_PIXELS", f"{width}x{height} is too large")
            frame = next(container.decode(stream), None)
            if frame is None:
                raise MediaRejected("MEDIA_UNDECODABLE", "No frame of the video decodes")
            rgb = frame.to_rgb()
            pixels = bytes(rgb.planes[0])
            line = rgb.planes[0].line_size
            codec = stream.codec_context.name
            container_name = container.format.name.split(",")[0]
        stored = _without_metadata(data, muxer=_MUXERS[declared_type])
    except MediaRejected:
        raise
    except (av.FFmpegError, StopIteration, ValueError):
        raise MediaRejected("MEDIA_UNDECODABLE", "The video could not be decoded") from None
    poster = pyvips.Image.new_from_memory(pixels, line // 3, height, 3, "uchar")
    if line // 3 != width:
        poster = poster.crop(0, 0, width, height)
    if poster.width > VARIANT_WIDTHS[0]:
        poster = poster.thumbnail_image(VARIANT_WIDTHS[0])
    poster_image = _render(poster.copy_memory(), width=width, height=height, source=stored)
    return ProcessedVideo(
        duration_seconds=duration,
        width=width,
        height=height,
        video_codec=codec,
        container=container_name,
        poster=poster_image,
        data=stored,
        content_sha256=poster_image.content_sha256,
    )


def _without_metadata(data: bytes, *, muxer: str) -> bytes:
    """The first video stream and the first audio stream of ``data``, their packets
    copied as they are into a new container: the upload's tags (title, comment, a
    QuickTime ``©xyz`` or ``mdta`` location, XMP), its chapters and every other stream
    (timecode, data, subtitles, cover art) stay behind, and so do the streams' own tags.
    What playback needs travels in each stream's codec parameters: a rotation, too."""
    import av  # noqa: PLC0415  (see process_video)

    output = io.BytesIO()
    with av.open(io.BytesIO(data), mode="r") as source:
        kept = [source.streams.video[0], *source.streams.audio[:1]]
        # bitexact: no "encoder" tag naming our FFmpeg either.
        with av.open(output, mode="w", format=muxer, options={"fflags": "+bitexact"}) as copy:
            targets = {}
            for stream in kept:
                target = targets[stream.index] = copy.add_stream_from_template(stream)
                # The muxer would pick its default tag: an iPhone's HEVC (hvc1) would turn
                # hev1, which Apple's players refuse.
                if stream.codec_context.codec_tag.strip("\0"):
                    target.codec_context.codec_tag = stream.codec_context.codec_tag
            for packet in source.demux(kept):
                if packet.dts is None:
                    continue  # the empty packet that ends each stream
                packet.stream = targets[packet.stream.index]
                copy.mux(packet)
    return output.getvalue()


def _duration(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    import av  # noqa: PLC0415  (see process_video)

    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    raise MediaRejected("MEDIA_UNDECODABLE", "The video's duration is unknown")


# Demo media -----------------------------------------------------------------------------

_PALETTES = [
    ((255, 94, 58), (255, 205, 112)),
    ((38, 70, 83), (42, 157, 143)),
    ((106, 76, 147), (255, 166, 158)),
    ((20, 33, 61), (252, 163, 17)),
    ((0, 119, 182), (144, 224, 239)),
    ((88, 129, 87), (218, 215, 205)),
]


def _scene(*, seed: int, width: int, height: int, shift: float = 0.0) -> pyvips.Image:
    """A gradient sky with soft circles: deterministic by ``seed``, cheap to make."""
    rng = random.Random(seed)
    top, bottom = _PALETTES[seed % len(_PALETTES)]
    ramp = pyvips.Image.xyz(width, height)[1] / max(1, height - 1)
    bands = [ramp * (b - t) + t for t, b in zip(top, bottom, strict=True)]
    image = bands[0].bandjoin(bands[1:]).cast("uchar").copy(interpretation="srgb")
    image = image.copy_memory()
    for _ in range(rng.randint(3, 6)):
        colour = [rng.randint(40, 255) for _ in range(3)]
        radius = rng.randint(min(width, height) // 12, min(width, height) // 4)
        x = int((rng.random() + shift * rng.uniform(0.05, 0.2)) % 1.0 * width)
        y = rng.randint(0, height)
        image = image.draw_circle(colour, x, y, radius, fill=True)
    return image


def generate_demo_image(*, seed: int, width: int, height: int, noise: float = 6.0) -> bytes:
    """A JPEG that reads as a picture (gradient, shapes, film grain), with EXIF."""
    image = _scene(seed=seed, width=width, height=height)
    if noise:
        grain = pyvips.Image.gaussnoise(width, height, sigma=noise, mean=0)
        image = (image + grain).cast("uchar")
    return bytes(image.jpegsave_buffer(Q=88))


def generate_demo_video(
    *, seed: int, seconds: float, width: int, height: int, fps: int = 24
) -> bytes:
    """An H.264 MP4 of shapes drifting across a gradient."""
    import av  # noqa: PLC0415  (see process_video)

    output = io.BytesIO()
    with av.open(output, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "30"}
        stream.codec_context.time_base = Fraction(1, fps)
        for index in range(max(1, round(seconds * fps))):
            scene = _scene(seed=seed, width=width, height=height, shift=index / fps)
            frame = av.VideoFrame.from_bytes(
                bytes(scene.bandjoin(255).write_to_memory()), width, height, format="rgba"
            )
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return output.getvalue()
