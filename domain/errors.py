"""Typed errors: every failure a client can act on carries ``extensions.code``.

graphql-core copies ``extensions`` from the original exception into the error it
reports, so raising one of these anywhere in a resolver is enough.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar


class ApertureError(Exception):
    code: ClassVar[str] = "INTERNAL_SERVER_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.extensions: dict[str, Any] = {"code": self.code, **details}


class Unauthenticated(ApertureError):
    code = "UNAUTHENTICATED"

    def __init__(
        self, message: str = "Log in first: send 'Authorization: Bearer <token>'."
    ) -> None:
        super().__init__(message)


class Forbidden(ApertureError):
    code = "FORBIDDEN"


class NotFound(ApertureError):
    code = "NOT_FOUND"


class BadUserInput(ApertureError):
    code = "BAD_USER_INPUT"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        if field is None:
            super().__init__(message)
        else:
            super().__init__(message, field=field)


class Conflict(ApertureError):
    code = "CONFLICT"


class RateLimited(ApertureError):
    """Too many requests: ``extensions.retryAfter`` is whole seconds to wait (at least 1)."""

    code = "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: float) -> None:
        wait = math.ceil(retry_after) if math.isfinite(retry_after) else 3600
        self.retry_after = max(1, wait)
        super().__init__(message, retryAfter=self.retry_after)


class ServiceUnavailable(ApertureError):
    """The server is overloaded or a dependency is down; retrying later may work."""

    code = "SERVICE_UNAVAILABLE"


class MediaNotReady(ApertureError):
    """Media that is still processing, failed, or already published cannot be used."""

    code = "MEDIA_NOT_READY"
