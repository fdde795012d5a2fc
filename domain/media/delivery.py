"""Where media is fetched from: CDN-style URLs on immutable keys that belong to one media.

A variant's key is ``m/<owner id>/<object segment>/<width>.<format>`` (a video's
``.../video.<ext>``), the segment a hash of the media's id and of its content: what is
behind a key never changes, so a response may be cached, and no two media share a key,
so deleting one media's objects never takes another's (two uploads of the same bytes
used to share them). The segment is unguessable without the content; the owner id in the
key lets the edge tell whose media it serves without a lookup by key.

A private account's media is reachable only through a signed URL: ``?exp=<unix>&sig=<mac>``,
an HMAC over the key and expiry under a key derived from the cluster's secret. Expiries
are rounded up to a window, so the URLs a client gets stay the same for a while and
caches keep working; a URL stays valid for between half and all of ``ttl_seconds``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime

_KEY_PATTERN = re.compile(r"^m/(?P<owner>[0-9]{1,20})/[0-9a-f]{32}/[a-z0-9]{1,16}\.[a-z0-9]{2,5}$")


def variant_key(
    *, owner_id: int, media_id: int | None, content_sha256: str, name: str, extension: str
) -> str:
    """The key of one rendition. ``media_id`` None shares keys between every media of the
    owner with the same bytes: only the demo seeder does that, to store each picture once
    per owner; deleting media checks for such sharers (``domain/media/lifecycle.py``)."""
    segment = object_segment(media_id=media_id, content_sha256=content_sha256)
    return f"m/{owner_id}/{segment}/{name}.{extension}"


def object_segment(*, media_id: int | None, content_sha256: str) -> str:
    if media_id is None:
        return content_sha256[:32]
    return hashlib.sha256(f"{media_id}:{content_sha256}".encode()).hexdigest()[:32]


def upload_key(*, owner_id: int, token: str) -> str:
    """Where a client's raw upload lands; never served, deleted once processed."""
    return f"uploads/{owner_id}/{token}"


def owner_of_key(key: str) -> int | None:
    """The owner a media key belongs to, or None for anything that is not a media key
    (uploads, traversal attempts, junk)."""
    # fullmatch: "$" alone also matches before a trailing newline, another spelling.
    match = _KEY_PATTERN.fullmatch(key)
    return int(match["owner"]) if match else None


@dataclass(frozen=True)
class UrlSigner:
    secret: str
    ttl_seconds: int

    def _mac(self, key: str, expires: int) -> str:
        derived = hashlib.sha256(b"aperture-media-url-v1:" + self.secret.encode()).digest()
        digest = hmac.new(derived, f"{key}\n{expires}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode()

    def expiry(self, now: datetime) -> int:
        window = max(1, self.ttl_seconds // 2)
        return (int(now.timestamp()) // window + 2) * window

    def query(self, key: str, now: datetime) -> str:
        expires = self.expiry(now)
        return f"exp={expires}&sig={self._mac(key, expires)}"

    def verify(self, key: str, *, expires: str, signature: str, now: datetime) -> str | None:
        """None when the signature holds; otherwise why not (a short, stable reason)."""
        # isdigit() alone admits "²", which int() refuses; compare_digest refuses
        # non-ASCII text. Both are a client's junk, not our failure.
        if not (expires.isascii() and expires.isdigit()) or len(expires) > 12:
            return "BAD_SIGNATURE"
        if not signature.isascii():
            return "BAD_SIGNATURE"
        if not hmac.compare_digest(self._mac(key, int(expires)), signature):
            return "BAD_SIGNATURE"
        if int(expires) <= now.timestamp():
            return "URL_EXPIRED"
        return None


@dataclass(frozen=True)
class MediaUrls:
    """Builds the URL of a stored object for a reader."""

    base_url: str
    signer: UrlSigner

    def url(self, key: str, *, signed: bool, now: datetime) -> str:
        url = f"{self.base_url.rstrip('/')}/{key}"
        return f"{url}?{self.signer.query(key, now)}" if signed else url
