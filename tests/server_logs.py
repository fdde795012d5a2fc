"""What a server running in this process logged at ERROR or above while a test ran.

uvicorn's own loggers do not propagate to the root logger (its logging config stops them
at ``uvicorn``), so both are watched: an exception that escapes the app is logged there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

WATCHED = ("", "uvicorn")


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if not any(seen is record for seen in self.records):
            self.records.append(record)


@contextmanager
def errors_logged() -> Iterator[list[logging.LogRecord]]:
    """The ERROR records logged inside the block (a record reaching both watched loggers
    counts once)."""
    collector = _Collector()
    loggers = [logging.getLogger(name) for name in WATCHED]
    for logger in loggers:
        logger.addHandler(collector)
    try:
        yield collector.records
    finally:
        for logger in loggers:
            logger.removeHandler(collector)


def describe(records: list[logging.LogRecord]) -> list[str]:
    return [f"{record.name}: {record.getMessage()[:300]}" for record in records]
