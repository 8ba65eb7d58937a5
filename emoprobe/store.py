"""The embedding store: one folder per (modality, model), shared by every extractor and probe.

    data/embeddings/<modality>/<model>/
        clips/<clip>.npz     per-clip cache, written atomically; a rerun skips clips found here
        <pooling>.npy        float32, clips x layers x dim (layered models) or clips x dim
        keys.txt             the clip key of each row, in row order
        meta.json            model id and revision, pooling, rate, versions, date, seconds taken
        failures.json        clips that could not be embedded, with the reason

Per-clip files make a run resumable and kill-safe: a clip is either fully written or absent.
`finalize` assembles the arrays; `load` refuses arrays whose rows do not match their keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

import numpy as np

from . import paths

SEQUENCE = "sequence"  # per-clip array of per-frame / per-window features, kept in clips/ only
SECONDS = "seconds"  # per-clip extraction time, summed into meta.json


def atomic_write_bytes(path: Path, write) -> None:
    """Write via a temporary file in the same folder and rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(Path(path), lambda f: f.write(text.encode()))


def keys_digest(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:16]


def package_versions(*names: str) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in ("numpy", "torch", *names):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


class EmbeddingStore:
    def __init__(self, modality: str, model: str, root: str | os.PathLike | None = None):
        self.modality, self.model = modality, model
        self.dir = Path(root or paths.EMBEDDINGS) / modality / model
        self.clip_dir = self.dir / "clips"

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.modality}/{self.model} at {self.dir})"

    # -- writing ---------------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        if not self.clip_dir.exists():
            return set()
        return {p.name[:-4] for p in self.clip_dir.glob("*.npz") if not p.name.startswith(".")}

    def put(self, key: str, arrays: dict[str, np.ndarray], seconds: float = 0.0) -> None:
        """Cache one clip's arrays (float32) atomically."""
        data = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        data[SECONDS] = np.float32(seconds)
        atomic_write_bytes(self.clip_dir / f"{key}.npz", lambda f: np.savez(f, **data))

    def _failure_log(self) -> Path:
        return self.dir / "failures.jsonl"

    def record_failure(self, key: str, source: str | None, message: str) -> None:
        """Append one failure; a line is written in one call so a kill cannot leave half of it."""
        self.dir.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"clip": key, "source": source, "error": message,
                           "time": dt.datetime.now().isoformat(timespec="seconds")})
        with open(self._failure_log(), "a") as f:
            f.write(line + "\n")

    def failures(self) -> list[dict]:
        """Failures of clips that have not been embedded since (the latest message per clip)."""
        latest = {}
        for log in (self.dir / "failures.json", self._failure_log()):
            if log.exists():
                text = log.read_text()
                records = json.loads(text) if log.suffix == ".json" else [
                    json.loads(line) for line in text.splitlines() if line.strip()]
                latest.update({r["clip"]: r for r in records})
        done = self.done_keys()
        return [r for k, r in sorted(latest.items()) if k not in done]

    def finalize(self, meta: dict) -> dict:
        """Stack the per-clip cache into <pooling>.npy + keys.txt + meta.json; return the meta."""
        keys = sorted(self.done_keys())
        if not keys:
            raise RuntimeError(f"{self}: nothing was embedded; see {self._failure_log()}")
        first = np.load(self.clip_dir / f"{keys[0]}.npz")
        poolings = [k for k in first.files if k not in (SEQUENCE, SECONDS)]
        stacks = {p: [] for p in poolings}
        seconds = 0.0
        for key in keys:
            with np.load(self.clip_dir / f"{key}.npz") as z:
                for p in poolings:
                    stacks[p].append(z[p])
                seconds += float(z[SECONDS])
        shapes = {}
        for p, rows in stacks.items():
            array = np.stack(rows).astype(np.float32)
            shapes[p] = list(array.shape)
            atomic_write_bytes(self.dir / f"{p}.npy", lambda f, a=array: np.save(f, a))
        atomic_write_text(self.dir / "keys.txt", "\n".join(keys) + "\n")
        failures = self.failures()
        atomic_write_text(self.dir / "failures.json", json.dumps(failures, indent=1))
        self._failure_log().unlink(missing_ok=True)
        meta = {**meta, "modality": self.modality, "name": self.model, "n_clips": len(keys),
                "keys_sha256_16": keys_digest(keys), "poolings": shapes,
                "has_sequences": SEQUENCE in first.files, "n_failures": len(failures),
                "seconds_extracting": round(seconds, 2),
                "finalized": dt.datetime.now().isoformat(timespec="seconds")}
        atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=1, default=str))
        return meta

    # -- reading ---------------------------------------------------------------------------
    def meta(self) -> dict:
        return json.loads((self.dir / "meta.json").read_text())

    def load(self, pooling: str = "mean") -> tuple[list[str], np.ndarray]:
        """(keys, array) for one pooling, verified: one row per key, keys as finalized."""
        keys = (self.dir / "keys.txt").read_text().split()
        array = np.load(self.dir / f"{pooling}.npy", mmap_mode="r")
        meta = self.meta()
        if len(array) != len(keys) or keys_digest(keys) != meta["keys_sha256_16"]:
            raise ValueError(f"{self}: {pooling}.npy has {len(array)} rows for {len(keys)} keys "
                             "or keys.txt changed since finalize; rerun the extractor")
        return keys, np.asarray(array)

    def sequence(self, key: str) -> np.ndarray:
        with np.load(self.clip_dir / f"{key}.npz") as z:
            return z[SEQUENCE]


def available_stores(root: str | os.PathLike | None = None) -> list[EmbeddingStore]:
    """Every finalized store under the embeddings root, as (modality, model)."""
    root = Path(root or paths.EMBEDDINGS)
    return [EmbeddingStore(m.parent.parent.name, m.parent.name, root)
            for m in sorted(root.glob("*/*/meta.json"))]
