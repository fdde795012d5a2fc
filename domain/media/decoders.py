"""Decoding runs in child processes of the worker, not in its threads.

Three reasons, each measured or plain (docs/benchmarks.md, "Media", worker memory):

- Memory stays bounded per process. A decoder holds one photo at a time, in one malloc
  arena, with libvips on one thread: about 70 MiB at its peak on a 12-megapixel JPEG,
  where two decoding threads inside a worker add about 60 MiB to a process that already
  holds SQLAlchemy, boto3 and the job runner, and keep it.
- Throughput. Two decoder processes render 12 MP photos faster than two threads of one
  process (glibc's arenas and libvips' own thread pool contend there).
- Hostile bytes reach the decoders (libjpeg, libwebp, libpng, FFmpeg). A decoder that
  crashes on them, or runs past ``task_timeout_seconds``, takes only its own process
  down: the job that sent them is told so, and every other job goes on.

Each decoder is ``python -m domain.media.decoder_process``, which imports only
``domain.media.processing``, fed one pickled call at a time over a pipe. Not
``concurrent.futures.ProcessPoolExecutor``: its children import the parent's
``__main__`` (for ``aperture worker``, the whole CLI: 18 MiB more in each), a crash in
one breaks the calls in flight in all the others, and it cannot stop a call that hangs.

Each decoder is owned by one thread of the pool's executor, so a call waits in the
executor's queue (not on an event loop) and the pool serves any loop of the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import IO, Any, ParamSpec, TypeVar

log = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

# A decoder is replaced after this many calls, so that fragmentation cannot build up.
RECYCLE_AFTER = 200
FRAME = struct.Struct("<Q")


class DecoderCrashed(Exception):
    """The decoder process died, or was stopped for running too long, on this call."""


def write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(FRAME.pack(len(payload)))
    stream.write(payload)
    stream.flush()


def read_frame(stream: IO[bytes]) -> bytes | None:
    """The next frame, or None at the end of the stream (the other side is gone)."""
    header = stream.read(FRAME.size)
    if len(header) < FRAME.size:
        return None
    (size,) = FRAME.unpack(header)
    payload = stream.read(size)
    return payload if len(payload) == size else None


class _Decoder:
    """One child process, the count of calls it has answered, and whether it is on one."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "domain.media.decoder_process"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            # Its own session: a Ctrl-C in the terminal reaches the worker, which stops
            # its decoders itself; and the decoder never outlives the worker (it exits at
            # the end of its stdin).
            start_new_session=True,
        )
        self.calls = 0
        self.busy = False

    def call(self, payload: bytes, *, timeout_seconds: float) -> tuple[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        timer = threading.Timer(timeout_seconds, self.process.kill)
        timer.start()
        self.busy = True
        try:
            write_frame(self.process.stdin, payload)
            answer = read_frame(self.process.stdout)
        except (BrokenPipeError, OSError):
            answer = None
        finally:
            self.busy = False
            timer.cancel()
        self.calls += 1
        if answer is None:
            self.stop()
            raise DecoderCrashed(self._death())
        outcome: tuple[str, Any] = pickle.loads(answer)
        return outcome

    def _death(self) -> str:
        code = self.process.poll()
        if code is not None and code < 0:
            return f"killed by signal {-code}"
        return f"exited with {code}"

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.stdin is not None:
            with contextlib.suppress(OSError):
                self.process.stdin.close()  # the decoder's loop ends at the end of stdin
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class DecoderPool:
    """``processes`` decoder processes, each started on first use; ``run`` from any loop."""

    def __init__(self, processes: int, *, task_timeout_seconds: float = 120.0) -> None:
        self.processes = processes
        self.task_timeout_seconds = task_timeout_seconds
        self._threads = ThreadPoolExecutor(processes, thread_name_prefix="media-decoder")
        self._owned = threading.local()
        self._all: set[_Decoder] = set()
        self._lock = threading.Lock()
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._turns = weakref.WeakKeyDictionary()

    @asynccontextmanager
    async def turn(self) -> AsyncIterator[None]:
        """Held from fetching an input to handing its results on: as many at once as there
        are decoders (per event loop), so that a worker running many jobs holds only the
        photos being decoded, not every queued one, in its memory."""
        loop = asyncio.get_running_loop()
        with self._lock:
            turns = self._turns.get(loop)
            if turns is None:
                turns = self._turns[loop] = asyncio.Semaphore(self.processes)
        async with turns:
            yield

    async def run(self, work: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """``work(*args, **kwargs)`` in a decoder process; what it raises is raised here,
        and ``DecoderCrashed`` if the process died or ran out of time. ``work`` must be a
        module-level function, its arguments and result picklable."""
        payload = pickle.dumps((work, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)
        loop = asyncio.get_running_loop()
        status, value = await loop.run_in_executor(
            self._threads, functools.partial(self._call, payload)
        )
        if status == "raised":
            raise value
        result: T = value
        return result

    def _call(self, payload: bytes) -> tuple[str, Any]:
        decoder: _Decoder | None = getattr(self._owned, "decoder", None)
        if decoder is None or not decoder.alive() or decoder.calls >= RECYCLE_AFTER:
            if decoder is not None:
                self._forget(decoder)
            decoder = _Decoder()
            with self._lock:
                self._all.add(decoder)
            self._owned.decoder = decoder
        try:
            return decoder.call(payload, timeout_seconds=self.task_timeout_seconds)
        except DecoderCrashed as crashed:
            self._forget(decoder)
            self._owned.decoder = None
            log.error("a media decoder process %s during a call; the call is refused", crashed)
            raise

    def _forget(self, decoder: _Decoder) -> None:
        decoder.stop()
        with self._lock:
            self._all.discard(decoder)

    def pids(self) -> list[int]:
        """The decoder processes running now (for measurements)."""
        with self._lock:
            return [decoder.process.pid for decoder in self._all if decoder.alive()]

    def busy_pids(self) -> list[int]:
        """The decoder processes in the middle of a call now (to watch, or stop, one)."""
        with self._lock:
            return [decoder.process.pid for decoder in self._all if decoder.busy]

    def close(self) -> None:
        self._threads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            decoders, self._all = list(self._all), set()
        for decoder in decoders:
            decoder.stop()


_pools: dict[int, DecoderPool] = {}
_pools_lock = threading.Lock()


def decoder_pool(processes: int | None = None) -> DecoderPool:
    """This process's decoders (one pool per process, whatever the apps in it): the first
    caller's ``processes`` decides its size, one per core by default."""
    with _pools_lock:
        pool = _pools.get(os.getpid())
        if pool is None:
            pool = _pools[os.getpid()] = DecoderPool(processes or os.cpu_count() or 1)
        return pool
