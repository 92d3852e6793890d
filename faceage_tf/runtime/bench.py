"""Latency and memory measurements for `faceage bench` and `benchmarks/runtime_latency.py`."""

from __future__ import annotations

import sys
import time
from typing import Callable

import numpy as np
from PIL import Image


def sample_face(size: int = 200, seed: int = 0) -> Image.Image:
    """A stand-in 200x200 face-crop image (smooth random texture): latency does not depend on content."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize((size, size), Image.BICUBIC)


def median_ms(run: Callable[[], object], runs: int = 200, warmup: int = 10) -> dict[str, float]:
    """Median and 90th percentile wall time of `run()` in milliseconds, after `warmup` calls."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    times_ms = np.array(times) * 1e3
    return {"median_ms": float(np.median(times_ms)), "p90_ms": float(np.percentile(times_ms, 90)), "runs": runs}


def peak_memory_mib() -> float | None:
    """Peak resident memory of this process so far, in MiB (None where the OS does not say)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes on macOS, KiB on Linux


def face_latency(predictor, image: Image.Image, runs: int = 200) -> dict[str, float]:
    """Per-face latency of `predictor.predict(image)` on a face crop: preprocessing (resize,
    normalise) and inference, as an application calling the runtime sees it."""
    return median_ms(lambda: predictor.predict(image), runs)
