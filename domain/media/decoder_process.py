"""A media decoder process (``python -m domain.media.decoder_process``), started and fed
by ``domain.media.decoders.DecoderPool``: it reads one pickled call at a time on stdin and
answers each with its outcome on stdout, until stdin ends."""

from __future__ import annotations

import os
import pickle
import sys
from typing import IO, Any

from domain.media.decoders import read_frame, write_frame
from infra.malloc import limit_malloc_arenas


def _answer(call: bytes) -> tuple[str, Any]:
    try:
        work, args, kwargs = pickle.loads(call)
        return ("returned", work(*args, **kwargs))
    except Exception as error:  # the caller decides what it means; it is raised there
        return ("raised", error)


def _encode(outcome: tuple[str, Any]) -> bytes:
    try:
        return pickle.dumps(outcome, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as error:
        failure = RuntimeError(f"unpicklable outcome of a decoder call: {error!r}")
        return pickle.dumps(("raised", failure))


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    while (call := read_frame(requests)) is not None:
        write_frame(answers, _encode(_answer(call)))


def main() -> None:
    # One call at a time: more arenas would only keep freed photos resident.
    limit_malloc_arenas(1)
    # Answers go on a copy of stdout; whatever a C library prints goes to stderr instead
    # of into the stream of answers.
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    # Imported only now, under the arena limit and with stdout moved aside: whatever
    # libvips prints as it loads cannot land in the stream of answers.
    import pyvips  # noqa: PLC0415

    import domain.media.processing  # noqa: F401, PLC0415  (loaded once, before the first call)

    pyvips.concurrency_set(1)  # the pool is the parallelism
    serve(sys.stdin.buffer, answers)


if __name__ == "__main__":
    main()
