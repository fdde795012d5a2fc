"""Uploads are decoded in child processes (domain/media/decoders.py): what the worker
gets back from them, what a crashing decoder costs, and what a worker does not load."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from domain.media import decoders as decoders_module
from domain.media.decoders import DecoderCrashed, DecoderPool
from domain.media.processing import Limits, MediaRejected, generate_demo_image, process_image


@pytest.fixture
def pool() -> Iterator[DecoderPool]:
    decoders = DecoderPool(2)
    yield decoders
    decoders.close()


async def test_decoding_happens_in_another_process(pool: DecoderPool) -> None:
    photo = generate_demo_image(seed=3, width=1600, height=1200)
    processed = await pool.run(process_image, photo, declared_type="image/jpeg", limits=Limits())
    assert [v.width for v in processed.variants] == [1080, 1080, 640, 640, 320, 320]
    assert await pool.run(os.getpid) != os.getpid()


async def test_a_rejection_comes_back_with_its_code(pool: DecoderPool) -> None:
    with pytest.raises(MediaRejected) as rejected:
        await pool.run(
            process_image,
            b"\xff\xd8\xff" + b"\x00" * 64,
            declared_type="image/jpeg",
            limits=Limits(),
        )
    assert rejected.value.code == "MEDIA_UNDECODABLE"


async def test_a_crashing_decoder_refuses_only_its_own_call(
    pool: DecoderPool, caplog: pytest.LogCaptureFixture
) -> None:
    # A decoder that dies (as one would on bytes that crash libjpeg or FFmpeg) fails the
    # call it was running, and nothing else: the other decoder's call finishes.
    slow = asyncio.ensure_future(pool.run(time.sleep, 0.5))
    await asyncio.sleep(0.2)
    with (
        caplog.at_level(logging.ERROR, logger="domain.media.decoders"),
        pytest.raises(DecoderCrashed, match="exited with 3"),
    ):
        await pool.run(os._exit, 3)
    await slow  # returned normally
    assert "during a call" in caplog.text
    # A new decoder takes the dead one's place.
    assert await pool.run(os.getpid) != os.getpid()


async def test_a_call_past_its_time_is_stopped() -> None:
    decoders = DecoderPool(1, task_timeout_seconds=0.5)
    try:
        started = time.monotonic()
        with pytest.raises(DecoderCrashed, match="killed by signal"):
            await decoders.run(time.sleep, 30)
        assert time.monotonic() - started < 5
        assert await decoders.run(os.getpid) != os.getpid()
    finally:
        decoders.close()


async def test_output_of_the_work_does_not_corrupt_answers(pool: DecoderPool) -> None:
    # Printing (as a C library's warnings might, on stdout) goes to stderr, not into the
    # stream the answers travel on.
    await pool.run(print, "noise on stdout " * 100)
    assert await pool.run(divmod, 7, 2) == (3, 1)


async def test_decoders_are_replaced_after_their_share_of_calls(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(decoders_module, "RECYCLE_AFTER", 2)
    single = DecoderPool(1)
    try:
        pids = [await single.run(os.getpid) for _ in range(4)]
    finally:
        single.close()
    assert pids[0] == pids[1] != pids[2] == pids[3]


def test_a_worker_loads_no_numeric_or_video_stack() -> None:
    # Every job registry import stays light: the recommender's numpy, scipy and implicit
    # (about 60 MiB) and PyAV (about 18 MiB) load only where Explore or a video needs them.
    code = (
        "import sys\n"
        "from domain.jobs import load_features\n"
        "load_features()\n"
        "print(' '.join(m for m in ('numpy', 'scipy', 'implicit', 'av') if m in sys.modules))\n"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert found.stdout.strip() == ""
