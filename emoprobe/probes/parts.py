"""The grid's finished parts on disk, so that a killed grid resumes where it stopped.

A part (one feature set in one fold, or a chunk of fusions in one fold) is stored under the digest
of everything that decides its result: the features themselves (their bytes, rows and role), the
clips' labels, speakers and keys, the fold's test speakers, the probe options and the source code of
this package. The same inputs give the same digest, so a part is reused only where recomputing it
would give the same result; any change (a re-extracted store, another C grid, an edited solver) is a
new digest and is computed afresh. Files are written whole (a temporary file, then a rename), so a
kill never leaves a half-written part behind.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = Path(__file__).resolve().parent
SUFFIX = ".part.pkl"


def digest(*values) -> str:
    """A hex digest of arrays, strings, numbers and (nested) tuples/lists of them."""
    h = hashlib.blake2b(digest_size=16)

    def feed(v):
        if isinstance(v, np.ndarray):
            v = np.ascontiguousarray(v)
            h.update(f"array{v.dtype}{v.shape}".encode())
            h.update(v.view(np.uint8).reshape(-1) if v.dtype != object else repr(v.tolist()).encode())
        elif isinstance(v, (list, tuple)):
            h.update(f"seq{len(v)}".encode())
            for x in v:
                feed(x)
        elif isinstance(v, dict):
            feed(sorted(v.items(), key=lambda kv: str(kv[0])))
        else:
            h.update(f"{type(v).__name__}:{v!r};".encode())

    for v in values:
        feed(v)
    return h.hexdigest()


def code_digest() -> str:
    """The digest of this package's source (the probes): an edited solver invalidates every part."""
    return digest(*[(p.name, p.read_bytes()) for p in sorted(PACKAGE.glob("*.py"))])


class Parts:
    """A folder of finished parts, keyed by digest. `folder=None`: nothing is kept (every part computed)."""

    def __init__(self, folder: str | os.PathLike | None):
        self.folder = Path(folder) if folder is not None else None
        self.used: set[str] = set()
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.folder / f"{key}{SUFFIX}"

    def get(self, key: str):
        """The stored part, or None (also for an unreadable file, which is then computed again)."""
        self.used.add(key)
        if self.folder is None or not self.path(key).exists():
            return None
        try:
            with open(self.path(key), "rb") as f:
                return pickle.load(f)
        except (OSError, EOFError, pickle.UnpicklingError):
            return None

    def put(self, key: str, value) -> None:
        self.used.add(key)
        if self.folder is None:
            return
        fd, tmp = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, self.path(key))

    def prune(self) -> int:
        """Remove the parts (and stray temporary files) this grid did not use; returns how many."""
        if self.folder is None:
            return 0
        stale = [p for p in self.folder.iterdir()
                 if p.name.endswith(".tmp") or (p.name.endswith(SUFFIX) and p.name[:-len(SUFFIX)] not in self.used)]
        for p in stale:
            p.unlink(missing_ok=True)
        return len(stale)
