"""Stage timings (decode, detect, forward, write...) that the extraction loop reports and the benchmark reads.

    with timing.stage("decode"):
        frames = ...

Seconds accumulate per stage name across threads (the loop reads ahead in a thread) until `take()`
returns and clears them. Nothing is patched: the code that does the work names its own stage.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from contextlib import contextmanager

_lock = threading.Lock()
_seconds: Counter = Counter()
_counts: Counter = Counter()


@contextmanager
def stage(name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        with _lock:
            _seconds[name] += elapsed
            _counts[name] += 1


def take() -> dict[str, dict[str, float]]:
    """{stage: {"seconds": total, "calls": n}} since the last take(), then reset."""
    with _lock:
        out = {k: {"seconds": round(v, 4), "calls": _counts[k]} for k, v in sorted(_seconds.items())}
        _seconds.clear()
        _counts.clear()
    return out


def progress(total: int, desc: str, quiet: bool = False, unit: str = "it"):
    """A progress bar with counts and an ETA (off with quiet or --quiet: config.quiet); in a log file
    rather than a terminal it writes a line every 30 s."""
    from tqdm.auto import tqdm

    from . import config

    return tqdm(total=total, desc=desc, unit=unit, disable=quiet or config.quiet(), smoothing=0.1,
                mininterval=1 if sys.stderr.isatty() else 30)
