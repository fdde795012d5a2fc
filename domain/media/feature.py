"""Media: uploads, processing, delivery through signed or public URLs, and lifecycle."""

from __future__ import annotations

from db.base import tables_of
from db.media.caches import MediaCaches
from domain.features import DomainFeature, caches
from domain.media.delivery import MediaUrls, UrlSigner
from domain.state import AppState


def _media_urls(state: AppState) -> MediaUrls:
    settings = state.runtime.settings
    return MediaUrls(
        base_url=settings.cdn_base_url or f"http://{settings.host}:{settings.port}/media",
        signer=UrlSigner(state.runtime.secret_key, settings.media_url_ttl_seconds),
    )


FEATURE = DomainFeature(
    name="media",
    tables=tables_of("db.media"),
    services={MediaCaches: caches(MediaCaches), MediaUrls: _media_urls},
)
