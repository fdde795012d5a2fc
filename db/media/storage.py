"""Object storage through the S3 API (boto3), the one code path for media bytes in every
mode: the embedded SeaweedFS, or any S3-compatible store (AWS S3, MinIO, R2, Ceph, a
SeaweedFS cluster) named by ``APERTURE_S3_*``.

Keys are the caller's (``domain/media/delivery.py`` decides them); this class knows only
its bucket. boto3 blocks, so every call that touches the network runs in a thread.
Presigning is local computation and needs none; it signs for the *public* endpoint, the
one clients reach, which may differ from the one this process uses.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

CHUNK_BYTES = 64 * 1024
DELETE_BATCH = 1000
MAX_CONNECTIONS = 32


class ObjectStoreUnavailable(ConnectionError):
    """The object store could not be reached, or failed: a ConnectionError, so the API
    answers it as it does an unreachable database (SERVICE_UNAVAILABLE, ``db/errors.py``)."""


class RangeNotSatisfiable(Exception):
    """A Range header the object cannot satisfy (HTTP 416)."""


@dataclass(frozen=True)
class PresignedPost:
    """A multipart/form-data POST: send ``fields``, then the file as ``file``, to ``url``."""

    url: str
    fields: dict[str, str]


@dataclass(frozen=True)
class ObjectHead:
    size: int
    content_type: str
    etag: str
    last_modified: datetime | None


@dataclass
class StoredObject:
    """An object opened for an HTTP response: status 200, 206 or 304, its headers, and
    its body in chunks (empty for 304)."""

    status: int
    headers: dict[str, str]
    _body: Any = field(default=None, repr=False)
    _threads: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def body(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        if self._body is None:
            return
        while True:
            chunk: bytes = await _in_threads(self._threads, self._body.read, CHUNK_BYTES)
            if not chunk:
                return
            yield chunk

    async def close(self) -> None:
        if self._body is not None:
            body, self._body = self._body, None
            await _in_threads(self._threads, body.close)


async def _in_threads(
    threads: ThreadPoolExecutor | None, call: Callable[..., Any], *args: Any
) -> Any:
    """``call(*args)`` in the store's own threads: a store that hangs holds those, never the
    event loop's default executor that other work shares."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(threads, functools.partial(call, *args))


def _status(error: ClientError) -> int:
    status: int = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    return status


def _code(error: ClientError) -> str:
    code: str = error.response.get("Error", {}).get("Code", "")
    return code


class ObjectStore:
    def __init__(
        self,
        *,
        endpoint_url: str,
        public_endpoint_url: str | None,
        bucket: str,
        region: str,
        access_key_id: str | None,
        secret_access_key: str | None,
        addressing_style: str = "path",
        connect_timeout_seconds: float = 3.0,
        read_timeout_seconds: float = 30.0,
    ) -> None:
        self.bucket = bucket
        self.endpoint_url = endpoint_url
        config = Config(
            signature_version="s3v4",
            s3={"addressing_style": addressing_style},
            connect_timeout=connect_timeout_seconds,
            read_timeout=read_timeout_seconds,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=MAX_CONNECTIONS,
        )
        credentials = {
            "aws_access_key_id": access_key_id,
            "aws_secret_access_key": secret_access_key,
            "region_name": region,
        }
        self._client = boto3.client("s3", endpoint_url=endpoint_url, config=config, **credentials)
        # As many threads as the client has connections.
        self._threads = ThreadPoolExecutor(
            max_workers=MAX_CONNECTIONS, thread_name_prefix="object-store"
        )
        self._presigner = boto3.client(
            "s3", endpoint_url=public_endpoint_url or endpoint_url, config=config, **credentials
        )

    async def _call(self, operation: str, **arguments: Any) -> Any:
        method = getattr(self._client, operation)
        try:
            return await _in_threads(
                self._threads, functools.partial(method, Bucket=self.bucket, **arguments)
            )
        except (EndpointConnectionError, BotoCoreError) as error:
            raise ObjectStoreUnavailable(f"object store: {error}") from error
        except ClientError as error:
            if _status(error) >= 500 or _status(error) in (401, 403):
                raise ObjectStoreUnavailable(f"object store: {error}") from error
            raise

    # Presigned URLs, for clients ------------------------------------------------------

    def presigned_post(
        self, *, key: str, content_type: str, max_bytes: int, expires_seconds: int
    ) -> PresignedPost:
        post = self._presigner.generate_presigned_post(
            self.bucket,
            key,
            Fields={"Content-Type": content_type},
            Conditions=[
                {"Content-Type": content_type},
                ["content-length-range", 1, max_bytes],
            ],
            ExpiresIn=expires_seconds,
        )
        return PresignedPost(url=post["url"], fields=dict(post["fields"]))

    def presigned_put(self, *, key: str, content_type: str, expires_seconds: int) -> str:
        url: str = self._presigner.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
            ExpiresIn=expires_seconds,
        )
        return url

    def presigned_get(self, *, key: str, expires_seconds: int) -> str:
        url: str = self._presigner.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_seconds
        )
        return url

    # Objects --------------------------------------------------------------------------

    def ensure_bucket_now(self) -> None:
        """Make the bucket if it is missing (at start, before any event loop runs)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if _status(error) != 404:
                raise
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            if _code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise

    async def put(
        self, *, key: str, body: bytes, content_type: str, cache_control: str | None = None
    ) -> str:
        extra = {"CacheControl": cache_control} if cache_control else {}
        answer = await self._call(
            "put_object", Key=key, Body=body, ContentType=content_type, **extra
        )
        etag: str = answer["ETag"]
        return etag

    async def get(self, key: str) -> bytes:
        answer = await self._call("get_object", Key=key)
        data: bytes = await _in_threads(self._threads, answer["Body"].read)
        return data

    async def ping(self) -> None:
        """The bucket answers, with our credentials (for readiness)."""
        await self._call("head_bucket")

    async def head(self, key: str) -> ObjectHead | None:
        try:
            answer = await self._call("head_object", Key=key)
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise
        return ObjectHead(
            size=int(answer["ContentLength"]),
            content_type=answer.get("ContentType", "application/octet-stream"),
            etag=answer["ETag"],
            last_modified=answer.get("LastModified"),
        )

    async def delete(self, keys: Sequence[str]) -> None:
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), DELETE_BATCH):
            batch = unique[start : start + DELETE_BATCH]
            await self._call(
                "delete_objects",
                Delete={"Objects": [{"Key": key} for key in batch], "Quiet": True},
            )

    async def list_keys(self, *, prefix: str) -> list[str]:
        return [key for key, _ in await self.list_objects(prefix=prefix)]

    async def list_objects(self, *, prefix: str) -> list[tuple[str, datetime]]:
        """Every key under ``prefix`` with when it was last written."""
        found: list[tuple[str, datetime]] = []
        token: str | None = None
        while True:
            extra = {"ContinuationToken": token} if token else {}
            answer = await self._call("list_objects_v2", Prefix=prefix, **extra)
            found.extend((item["Key"], item["LastModified"]) for item in answer.get("Contents", []))
            if not answer.get("IsTruncated"):
                return found
            token = answer["NextContinuationToken"]

    async def open(
        self, key: str, *, byte_range: str | None = None, if_none_match: str | None = None
    ) -> StoredObject | None:
        """The object for an HTTP answer, or None when there is no such key."""
        arguments: dict[str, str] = {"Key": key}
        if byte_range:
            arguments["Range"] = byte_range
        if if_none_match:
            arguments["IfNoneMatch"] = if_none_match
        try:
            answer = await self._call("get_object", **arguments)
        except ClientError as error:
            status = _status(error)
            if status == 304:
                return StoredObject(status=304, headers={"ETag": if_none_match or ""})
            if status == 404:
                return None
            if status == 416 or _code(error) == "InvalidRange":
                raise RangeNotSatisfiable(byte_range) from None
            raise
        headers = {
            "ETag": answer["ETag"],
            "Content-Length": str(answer["ContentLength"]),
            "Content-Type": answer.get("ContentType", "application/octet-stream"),
            "Accept-Ranges": "bytes",
        }
        if answer.get("ContentRange"):
            headers["Content-Range"] = answer["ContentRange"]
        if answer.get("LastModified"):
            headers["Last-Modified"] = answer["LastModified"].strftime("%a, %d %b %Y %H:%M:%S GMT")
        status = 206 if answer.get("ContentRange") else 200
        return StoredObject(
            status=status, headers=headers, _body=answer["Body"], _threads=self._threads
        )

    def close(self) -> None:
        self._client.close()
        self._presigner.close()
        self._threads.shutdown(wait=False, cancel_futures=True)
