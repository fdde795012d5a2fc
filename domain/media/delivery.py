"""Where media is fetched from: CDN-style URLs on immutable, content-addressed keys.

A variant's key is ``m/<owner id>/<sha-256 of the upload>/<width>.<format>`` (a video's
``.../video.<ext>``): the same bytes always get the same key, so every response may be
cached for a year. The owner id in the key lets the edge tell whose media it serves
without a lookup by key.

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


def variant_key(*, owner_id: int, content_sha256: str, name: str, extension: str) -> str:
    return f"m/{owner_id}/{content_sha256[:32]}/{name}.{extension}"


def upload_key(*, owner_id: int, token: str) -> str:
    """Where a client's raw upload lands; never served, deleted once processed."""
    return f"uploads/{owner_id}/{token}"


def owner_of_key(key: str) -> int | None:
    """The owner a media key belongs to, or None for anything that is not a media key
    (uploads, traversal attempts, junk)."""
    match = _KEY_PATTERN.match(key)
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
        if not expires.isdigit() or len(expires) > 12:
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
