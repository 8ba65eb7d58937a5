"""Stage timings (decode, detect, forward, write...) that the extraction loop reports and the benchmark reads.

    with timing.stage("decode"):
        frames = ...

Seconds accumulate per stage name across threads (the loop reads ahead in a thread) until `take()`
returns and clears them. Nothing is patched: the code that does the work names its own stage.
"""

from __future__ import annotations

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
