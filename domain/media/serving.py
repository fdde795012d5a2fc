"""Serving a media key to whoever holds its URL (the CDN's origin, or a browser in
embedded mode): who may fetch what is decided here, the bytes come from the object store.

A public account's media is served to anyone with the key, cacheable for
``media_public_max_age_seconds`` (a day by default: the longest a CDN or browser may go on
showing media after it was deleted, or after its account turned private). A private
account's needs a valid, unexpired signature, and is cacheable only privately until the
signature expires. Nothing else under the bucket (raw uploads, other prefixes)
is reachable at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from db.media.storage import StoredObject
from db.session import ShardSessions
from domain.accounts.relations import load_user
from domain.errors import ApertureError, NotFound
from domain.media.delivery import MediaUrls, owner_of_key
from domain.state import AppState
from domain.visibility import media_urls_signed


class MediaRefused(ApertureError):
    """The URL is not one this server signed, or its signature has expired."""

    code = "FORBIDDEN"


@dataclass(frozen=True)
class MediaResponse:
    stored: StoredObject
    cache_control: str


async def open_media(
    state: AppState,
    *,
    key: str,
    expires: str | None,
    signature: str | None,
    byte_range: str | None,
    if_none_match: str | None,
) -> MediaResponse:
    owner_id = owner_of_key(key)
    if owner_id is None:
        raise NotFound("No such media")
    now = state.clock()
    signed = expires is not None and signature is not None
    if expires is not None and signature is not None:
        refusal = state.of(MediaUrls).signer.verify(
            key, expires=expires, signature=signature, now=now
        )
        if refusal is not None:
            raise MediaRefused(
                "This media link has expired: fetch the post again for a fresh one"
                if refusal == "URL_EXPIRED"
                else "This media link is not valid",
                reason=refusal,
            )
    else:
        owner = await load_user(state, ShardSessions(state.runtime.databases), owner_id)
        if owner is None or owner.deleted_at is not None:
            raise NotFound("No such media")
        if media_urls_signed(owner):
            raise MediaRefused(
                "This account is private: its media needs a signed link", reason="UNSIGNED"
            )
    stored = await state.runtime.object_store.open(
        key, byte_range=byte_range, if_none_match=if_none_match
    )
    if stored is None:
        raise NotFound("No such media")
    if expires is not None and signed:
        remaining = max(0, int(expires) - int(now.timestamp()))
        cache_control = f"private, max-age={remaining}"
    else:
        max_age = state.runtime.settings.media_public_max_age_seconds
        cache_control = f"public, max-age={max_age}, immutable"
    return MediaResponse(stored=stored, cache_control=cache_control)
