"""GET /media/<key>: media bytes with ETag, Range and Cache-Control, for a CDN to pull
from (or a browser, in embedded mode). ``domain/media/serving.py`` decides who may."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from db.media.storage import ObjectStoreUnavailable, RangeNotSatisfiable
from domain.errors import ApertureError, NotFound
from domain.media.serving import MediaRefused, open_media
from domain.state import AppState

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 256


def _error(status: int, code: str, message: str, **extensions: object) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]},
        status_code=status,
        headers={"Cache-Control": "no-store"},
    )


class MediaEndpoint:
    def __init__(self, state: AppState) -> None:
        self.state = state

    async def serve(self, request: Request) -> Response:
        key = request.path_params["key"]
        if len(key) > MAX_KEY_LENGTH:
            return _error(404, "NOT_FOUND", "No such media")
        query = request.query_params
        budget = self.state.runtime.settings.operation_timeout_seconds
        try:
            # The same budget as an operation: a store that hangs costs a client a 503,
            # not a request held for the S3 client's own timeouts and retries.
            async with asyncio.timeout(budget):
                served = await open_media(
                    self.state,
                    key=key,
                    expires=query.get("exp"),
                    signature=query.get("sig"),
                    byte_range=request.headers.get("range"),
                    if_none_match=request.headers.get("if-none-match"),
                )
        except TimeoutError:
            log.warning("object store did not answer within %ss for %s", budget, key)
            return _error(503, "TIMEOUT", "Media storage did not answer in time; retry")
        except MediaRefused as refused:
            log.info("media %s refused: %s", key, refused.extensions.get("reason"))
            return _error(403, "FORBIDDEN", str(refused), reason=refused.extensions.get("reason"))
        except NotFound as missing:
            return _error(404, "NOT_FOUND", str(missing))
        except RangeNotSatisfiable:
            return _error(416, "RANGE_NOT_SATISFIABLE", "The requested range is not in the file")
        except ObjectStoreUnavailable:
            log.warning("object store unavailable while serving %s", key)
            return _error(503, "SERVICE_UNAVAILABLE", "Media storage is unavailable; retry")
        except ApertureError as error:
            return _error(400, error.code, str(error))
        stored = served.stored
        headers = {
            **stored.headers,
            "Cache-Control": served.cache_control,
            # Pages of any origin (the app's frontends) embed these images and videos.
            "Cross-Origin-Resource-Policy": "cross-origin",
        }
        if request.method == "HEAD" or stored.status == 304:
            await stored.close()
            return Response(status_code=stored.status, headers=headers)

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in stored.body:
                    yield chunk
            finally:
                await stored.close()

        return StreamingResponse(body(), status_code=stored.status, headers=headers)
