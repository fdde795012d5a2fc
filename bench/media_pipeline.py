"""Image processing throughput and memory: 12-megapixel JPEGs through the worker's own
``process_image`` (decode, three widths in WebP and JPEG, ThumbHash), against Pillow
doing the same renditions, in the same run; and a 1080p video's poster time through
``process_video``.

The parent generates the photo once and writes it to a file. Each measurement runs in
fresh spawned processes that read it, warm up on one photo, then time the rest: in one
process with 1 or 2 threads, and in 2 single-threaded processes; and through the worker's
own ``DecoderPool`` (how ``aperture worker`` decodes: one decoder process per core, one
photo at a time each, every photo queued at once). Peak RSS is each process's high-water
mark, generation excluded. Storing the variants is not in these figures (``bench.media``
measures the whole path, store included).

    .venv/bin/python -m bench.media_pipeline [--photos 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import multiprocessing
import resource
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from domain.media.decoders import DecoderPool
from domain.media.processing import (
    VARIANT_WIDTHS,
    Limits,
    generate_demo_image,
    generate_demo_video,
    process_image,
    process_video,
)

WIDTH, HEIGHT = 4000, 3000  # 12 MP
MODES = ((1, 1), (1, 2), (2, 1))  # (processes, threads per process)


def _with_pyvips(data: bytes) -> None:
    process_image(data, declared_type="image/jpeg", limits=Limits())


def _with_pillow(data: bytes) -> None:
    opened = Image.open(io.BytesIO(data))
    # Pillow's counterpart of libvips' shrink-on-load: a JPEG decoded at 1/2 or 1/4.
    opened.draft("RGB", (VARIANT_WIDTHS[0], VARIANT_WIDTHS[0]))
    image = opened.convert("RGB")
    for width in VARIANT_WIDTHS:
        height = round(image.height * width / image.width)
        resized = image.resize((width, height), Image.Resampling.LANCZOS)
        resized.save(io.BytesIO(), "WEBP", quality=80, method=2)
        resized.save(io.BytesIO(), "JPEG", quality=80)
    image.resize((100, 75)).tobytes()


def _process(library: str, path: str, count: int, threads: int) -> tuple[float, int]:
    """In a spawned process: seconds for ``count`` photos over ``threads`` threads, after
    one warm-up photo, and the process's peak RSS (KiB)."""
    function = _with_pyvips if library == "pyvips" else _with_pillow
    data = Path(path).read_bytes()
    function(data)
    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(function, [data] * count))
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _throughput(
    library: str, path: Path, *, photos: int, processes: int, threads: int
) -> tuple[float, int]:
    """Photos per second over all processes, and the largest peak RSS (KiB)."""
    share = photos // processes
    spawn = multiprocessing.get_context("spawn")  # a fork would copy the parent's libvips
    with ProcessPoolExecutor(processes, mp_context=spawn) as pool:
        futures = [
            pool.submit(_process, library, str(path), share, threads) for _ in range(processes)
        ]
        results = [future.result() for future in futures]
    slowest = max(seconds for seconds, _ in results)
    return share * processes / slowest, max(rss for _, rss in results)


async def _through_decoders(data: bytes, *, photos: int, processes: int) -> tuple[float, int]:
    """Photos per second through a fresh ``DecoderPool``, after one warm-up photo per
    decoder, and the largest decoder's peak RSS (KiB)."""
    # Here, not at the top: the spawned processes import this module again, and the
    # harness would bring the whole application into the memory they measure.
    from bench.harness import status_kib

    pool = DecoderPool(processes)
    try:

        async def one() -> None:
            await pool.run(process_image, data, declared_type="image/jpeg", limits=Limits())

        await asyncio.gather(*(one() for _ in range(processes)))
        started = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(photos)))
        seconds = time.perf_counter() - started
        return photos / seconds, max(status_kib(pid, "VmHWM") for pid in pool.pids())
    finally:
        pool.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    print(f"12 MP JPEG ({WIDTH}x{HEIGHT}), {arguments.photos} photos per run, median of runs")
    with tempfile.TemporaryDirectory() as directory:
        photo = Path(directory) / "photo.jpg"
        photo.write_bytes(generate_demo_image(seed=7, width=WIDTH, height=HEIGHT))
        for library in ("pyvips", "pillow"):
            for processes, threads in MODES:
                rates, peaks = [], []
                for _ in range(arguments.runs):
                    rate, peak = _throughput(
                        library,
                        photo,
                        photos=arguments.photos,
                        processes=processes,
                        threads=threads,
                    )
                    rates.append(rate)
                    peaks.append(peak)
                _report(f"{library:7} {processes} process(es) x {threads} thread(s)", rates, peaks)
        rates, peaks = [], []
        for _ in range(arguments.runs):
            rate, peak = asyncio.run(
                _through_decoders(photo.read_bytes(), photos=arguments.photos, processes=2)
            )
            rates.append(rate)
            peaks.append(peak)
        _report("DecoderPool, 2 decoder processes", rates, peaks)
    clip = generate_demo_video(seed=3, width=1920, height=1080, seconds=5)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        process_video(clip, declared_type="video/mp4", limits=Limits())
        timings.append(time.perf_counter() - started)
    print(
        f"1080p 5 s clip, probe + poster frames: median {statistics.median(timings) * 1000:.0f} ms"
    )


def _report(label: str, rates: list[float], peaks: list[int]) -> None:
    print(
        f"{label}: {statistics.median(rates):5.1f} photos/s "
        f"(runs {', '.join(f'{rate:.1f}' for rate in rates)}), "
        f"peak RSS per process {max(peaks) / 1024:.0f} MiB"
    )


if __name__ == "__main__":
    main()
