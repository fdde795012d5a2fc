"""Typed errors: every failure a client can act on carries ``extensions.code``.

graphql-core copies ``extensions`` from the original exception into the error it
reports, so raising one of these anywhere in a resolver is enough.
"""

from __future__ import annotations

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


def is_client_error(error: BaseException | None) -> bool:
    return isinstance(error, ApertureError)
