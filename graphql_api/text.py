"""Text the database and Redis cannot take, found before it reaches them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# NUL cannot be stored in PostgreSQL text; a lone surrogate cannot be encoded as UTF-8.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_VARIABLE_NESTING = 32


def invalid_text_reason(value: str) -> str | None:
    match = _UNSTORABLE.search(value)
    if match is None:
        return None
    return "a NUL character" if match.group() == "\x00" else "an unpaired UTF-16 surrogate"


def find_invalid_text(value: Any, path: str) -> tuple[str, str] | None:
    """The first string in a JSON value that cannot be stored, with its path and why."""
    for where, text in _strings(value, path, 0):
        if text is None:
            return where, f"values nested more than {MAX_VARIABLE_NESTING} deep"
        reason = invalid_text_reason(text)
        if reason is not None:
            return where, reason
    return None


def _strings(value: Any, path: str, depth: int) -> Iterator[tuple[str, str | None]]:
    """Every string (keys too); None where nesting goes past the limit."""
    if depth > MAX_VARIABLE_NESTING:
        yield path, None
    elif isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield path, key
            yield from _strings(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]", depth + 1)
