"""Image processing throughput and memory: 12-megapixel JPEGs through the worker's own
``process_image`` (decode, three widths in WebP and JPEG, ThumbHash), in 1 and 2
processes, against Pillow doing the same renditions, in the same run; and a 1080p
video's poster time through ``process_video``.

It measures the CPU stage only: storing the variants (about 300 KB per photo to the
object store) is not in these figures.

    .venv/bin/python -m bench.media_pipeline [--photos 40] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from PIL import Image

from domain.media.processing import (
    VARIANT_WIDTHS,
    Limits,
    generate_demo_image,
    generate_demo_video,
    process_image,
    process_video,
)

WIDTH, HEIGHT = 4000, 3000  # 12 MP


def _photo() -> bytes:
    return generate_demo_image(seed=7, width=WIDTH, height=HEIGHT)


def _pyvips(count: int) -> tuple[float, int]:
    data = _photo()
    started = time.perf_counter()
    for _ in range(count):
        process_image(data, declared_type="image/jpeg", limits=Limits())
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _pillow(count: int) -> tuple[float, int]:
    data = _photo()
    started = time.perf_counter()
    for _ in range(count):
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
    return time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _throughput(worker: str, *, photos: int, processes: int) -> tuple[float, int]:
    """Photos per second over ``processes`` processes, and the largest peak RSS (KiB)."""
    function = _pyvips if worker == "pyvips" else _pillow
    share = photos // processes
    with ProcessPoolExecutor(processes) as pool:
        pool.submit(function, 1).result()  # warm: imports, libvips' caches
        started = time.perf_counter()
        results = list(pool.map(function, [share] * processes))
        elapsed = time.perf_counter() - started
    return share * processes / elapsed, max(rss for _, rss in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    print(f"12 MP JPEG ({WIDTH}x{HEIGHT}), {arguments.photos} photos per run, median of runs")
    for worker in ("pyvips", "pillow"):
        for processes in (1, 2):
            rates, peaks = [], []
            for _ in range(arguments.runs):
                rate, peak = _throughput(worker, photos=arguments.photos, processes=processes)
                rates.append(rate)
                peaks.append(peak)
            print(
                f"{worker:7} {processes} process(es): {statistics.median(rates):5.1f} photos/s "
                f"(runs {', '.join(f'{rate:.1f}' for rate in rates)}), "
                f"peak RSS per process {max(peaks) / 1024:.0f} MiB"
            )
    clip = generate_demo_video(seed=3, width=1920, height=1080, seconds=5)
    timings = []
    for _ in range(5):
        started = time.perf_counter()
        process_video(clip, declared_type="video/mp4", limits=Limits())
        timings.append(time.perf_counter() - started)
    print(
        f"1080p 5 s clip, probe + poster frames: median {statistics.median(timings) * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
