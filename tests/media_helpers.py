"""Uploading media the way a client does: createUpload, a multipart POST straight to the
object store, finalizeUpload, then the worker."""

from __future__ import annotations

import time
from typing import Any

import httpx

from domain.state import AppState
from tests.helpers import Account, GraphQLClient
from workers.runner import drain_jobs

CREATE_UPLOAD = """
mutation($kind: MediaKind!, $type: String!, $size: Int!) {
  createUpload(input: {kind: $kind, contentType: $type, byteSize: $size}) {
    upload { url method maxBytes expiresAt fields { name value } media { id status } }
  }
}
"""

FINALIZE = """
mutation($id: ID!) { finalizeUpload(mediaId: $id) { media { id status } } }
"""

MEDIA = """
query($id: ID!) {
  media(id: $id) {
    id kind status width height aspectRatio placeholder durationSeconds
    url(width: 640) videoUrl error { code message }
    variants { width height format byteSize url }
  }
}
"""


async def request_upload(
    gql: GraphQLClient, owner: Account, *, kind: str, content_type: str, size: int
) -> dict[str, Any]:
    result = await gql(
        CREATE_UPLOAD, {"kind": kind, "type": content_type, "size": size}, token=owner.token
    )
    upload: dict[str, Any] = result.ok()["createUpload"]["upload"]
    return upload


async def send_bytes(upload: dict[str, Any], data: bytes, *, content_type: str) -> httpx.Response:
    """What a browser's form POST does: the policy's fields, then the file, last. The
    store checks the form's ``Content-Type`` field against the policy, so a client that
    lies about the type sends its own value there."""
    fields = {field["name"]: field["value"] for field in upload["fields"]}
    fields["Content-Type"] = content_type
    async with httpx.AsyncClient(timeout=30) as client:
        return await client.post(
            upload["url"], data=fields, files={"file": ("upload", data, content_type)}
        )


async def upload_media(
    gql: GraphQLClient,
    state: AppState,
    owner: Account,
    data: bytes,
    *,
    content_type: str = "image/jpeg",
    kind: str = "IMAGE",
    declared_type: str | None = None,
) -> dict[str, Any]:
    """The whole path; returns the media as ``MEDIA`` reads it once processed."""
    upload = await request_upload(
        gql, owner, kind=kind, content_type=declared_type or content_type, size=len(data)
    )
    sent = await send_bytes(upload, data, content_type=declared_type or content_type)
    assert sent.status_code in (200, 201, 204), sent.text
    return await finalize_and_process(gql, state, owner, upload["media"]["id"])


async def finalize_and_process(
    gql: GraphQLClient, state: AppState, owner: Account, media_id: str
) -> dict[str, Any]:
    """Finalize an upload whose bytes are in storage, and run the worker until the media
    is ready or failed; returns it as ``MEDIA`` reads it."""
    (await gql(FINALIZE, {"id": media_id}, token=owner.token)).ok()
    # On a loaded machine a drain can end before the job does (saq cancels it at its
    # grace period; the job is retried): drain again until the media is settled.
    deadline = time.monotonic() + 60
    while True:
        await drain_jobs(state, ["media"])
        media: dict[str, Any] = (await gql(MEDIA, {"id": media_id}, token=owner.token)).ok()[
            "media"
        ]
        if media["status"] in ("READY", "FAILED") or time.monotonic() > deadline:
            return media


async def publish(
    gql: GraphQLClient, author: Account, media_ids: list[str], caption: str = ""
) -> Any:
    return await gql(
        """mutation($c: String!, $m: [ID!]!) {
          createPost(input: {caption: $c, mediaIds: $m}) {
            post { id isReel media { id url(width: 640) placeholder width height } }
          }
        }""",
        {"c": caption, "m": media_ids},
        token=author.token,
    )
