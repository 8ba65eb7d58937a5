"""The embedding store: one folder per encoder, shared by every extractor and probe.

    data/embeddings/<modality>/<name>/
        clips/<clip>.npz     per-clip cache, written atomically; a rerun skips clips found here
        <pooling>.npy        float32, clips x layers x dim (layered encoders) or clips x dim
        keys.txt             the clip key of each row, in row order
        meta.json            the encoder's facts (modality, weights, layers, default pooling...),
                             its provenance, clip and failure counts, seconds per stage
        failures.json        clips that could not be embedded, with the reason

Per-clip files make a run resumable and kill-safe: a clip is either fully written or absent.
`finalize` assembles the arrays; a store is COMPLETE only when its meta, keys and every pooling's
array exist and agree (`problem()` says what is wrong otherwise), and only complete stores are
listed by `available_stores`. Nothing under data/embeddings/ is committed: what readers need to
know about the stores behind the results is written beside them (results/stores.csv).
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
from typing import TYPE_CHECKING

import numpy as np

from .. import config

if TYPE_CHECKING:  # pandas is imported where a table is made: extraction does not need it
    import pandas as pd

SEQUENCE = "sequence"  # per-clip array of per-frame / per-window features, kept in clips/ only
SECONDS = "seconds"  # per-clip extraction time, summed into meta.json
IDENTITY = "identity"  # per-clip JSON (as bytes) of its source and encoder configuration (store.identity)
NOT_POOLINGS = (SEQUENCE, SECONDS, IDENTITY)


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
    def __init__(self, modality: str, name: str, root: str | os.PathLike | None = None):
        self.modality, self.name = modality, name
        self.dir = config.embeddings_dir(root) / modality / name
        self.clip_dir = self.dir / "clips"

    @property
    def id(self) -> str:
        """'modality/name': how results and figures refer to this store."""
        return f"{self.modality}/{self.name}"

    def __repr__(self) -> str:
        return f"EmbeddingStore({self.id})"

    # -- writing ---------------------------------------------------------------------------
    def done_keys(self) -> set[str]:
        if not self.clip_dir.exists():
            return set()
        return {p.name[:-4] for p in self.clip_dir.glob("*.npz") if not p.name.startswith(".")}

    def put(self, key: str, arrays: dict[str, np.ndarray], seconds: float = 0.0, identity: dict | None = None) -> None:
        """Cache one clip's arrays (float32) atomically, with the identity of what made them."""
        data = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
        data[SECONDS] = np.float32(seconds)
        if identity is not None:
            data[IDENTITY] = np.frombuffer(json.dumps(identity, sort_keys=True).encode(), dtype=np.uint8)
        atomic_write_bytes(self.clip_dir / f"{key}.npz", lambda f: np.savez(f, **data))

    def identities(self, keys=None) -> dict[str, dict | None]:
        """key -> the identity its cache file records (None: cached before identities were recorded),
        for the cached clips among `keys` (default: all)."""
        done = self.done_keys()
        out = {}
        for key in sorted(done if keys is None else done & set(keys)):
            with np.load(self.clip_dir / f"{key}.npz") as z:
                out[key] = json.loads(z[IDENTITY].tobytes()) if IDENTITY in z.files else None
        return out

    def forget(self, keys) -> None:
        """Drop these clips' cache files (before embedding them again: a failed redo serves nothing stale)."""
        for key in keys:
            (self.clip_dir / f"{key}.npz").unlink(missing_ok=True)

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
        poolings = [k for k in first.files if k not in NOT_POOLINGS]
        stacks = {p: [] for p in poolings}
        seconds, sources = 0.0, {}
        for key in keys:
            with np.load(self.clip_dir / f"{key}.npz") as z:
                for p in poolings:
                    stacks[p].append(z[p])
                seconds += float(z[SECONDS])
                root = json.loads(z[IDENTITY].tobytes()).get("data_root") if IDENTITY in z.files else None
                sources[root] = sources.get(root, 0) + 1
        (self.dir / "meta.json").unlink(missing_ok=True)  # incomplete until every file below is written
        shapes = {}
        for p, rows in stacks.items():
            array = np.stack(rows).astype(np.float32)
            shapes[p] = list(array.shape)
            atomic_write_bytes(self.dir / f"{p}.npy", lambda f, a=array: np.save(f, a))
        atomic_write_text(self.dir / "keys.txt", "\n".join(keys) + "\n")
        failures = self.failures()
        atomic_write_text(self.dir / "failures.json", json.dumps(failures, indent=1))
        self._failure_log().unlink(missing_ok=True)
        recorded = {str(root): n for root, n in sorted(sources.items(), key=lambda kv: str(kv[0])) if root is not None}
        if recorded:  # every data root this store holds clips of (one run may have added to another's)
            meta = {**meta, "data_sources": recorded, "data_root": " + ".join(recorded)}
        if None in sources:
            meta = {**meta, "n_clips_without_recorded_source": sources[None]}
        meta = {**meta, "modality": self.modality, "name": self.name, "n_clips": len(keys),
                "keys_sha256_16": keys_digest(keys), "poolings": shapes,
                "has_sequences": SEQUENCE in first.files, "n_failures": len(failures),
                "seconds_extracting": round(seconds, 2),
                "finalized": dt.datetime.now().isoformat(timespec="seconds")}
        atomic_write_text(self.dir / "meta.json", json.dumps(meta, indent=1, default=str))
        return meta

    # -- reading ---------------------------------------------------------------------------
    def meta(self) -> dict:
        return json.loads((self.dir / "meta.json").read_text())

    def problem(self) -> str | None:
        """Why this store cannot be read (None: it is complete). Cheap: arrays are only memory-mapped."""
        if not (self.dir / "meta.json").exists():
            cached = len(self.done_keys())
            return (f"not finalized ({cached} clip(s) cached): rerun its extractor or merge_shards.py"
                    if cached else "no meta.json")
        meta = self.meta()
        keys_file = self.dir / "keys.txt"
        if not keys_file.exists():
            return "keys.txt is missing"
        keys = keys_file.read_text().split()
        if keys_digest(keys) != meta.get("keys_sha256_16"):
            return "keys.txt changed since the store was finalized"
        for pooling in meta.get("poolings", {}):
            path = self.dir / f"{pooling}.npy"
            if not path.exists():
                return f"{pooling}.npy is missing"
            if len(np.load(path, mmap_mode="r")) != len(keys):
                return f"{pooling}.npy does not have one row per key"
        return None

    def load(self, pooling: str = "mean") -> tuple[list[str], np.ndarray]:
        """(keys, array) for one pooling, verified: one row per key, keys as finalized."""
        problem = self.problem()
        if problem:
            raise ValueError(f"{self}: {problem}")
        keys = (self.dir / "keys.txt").read_text().split()
        return keys, np.load(self.dir / f"{pooling}.npy")

    def sequence(self, key: str) -> np.ndarray:
        with np.load(self.clip_dir / f"{key}.npz") as z:
            return z[SEQUENCE]


def available_stores(root: str | os.PathLike | None = None, log=print) -> list[EmbeddingStore]:
    """Every COMPLETE store under the embeddings root. Folders that are stores in the making or broken
    are reported with one line each (log=None: silently) and left out."""
    root = config.embeddings_dir(root)
    complete = []
    for folder in sorted(p for p in root.glob("*/*") if p.is_dir()):
        store = EmbeddingStore(folder.parent.name, folder.name, root)
        problem = store.problem()
        if problem is None:
            complete.append(store)
        elif log:
            log(f"[stores] {store.id} left out: {problem}")
    return complete


PROVENANCE_COLUMNS = ["store", "modality", "encoder", "weights", "objective", "twin_of", "variant", "first_seconds",
                      "base_set", "layered", "n_layers", "default_pooling", "n_clips", "n_failures",
                      "model_id", "data_root", "precision", "seconds_extracting", "date", "finalized"]


def provenance(stores: list[EmbeddingStore]) -> pd.DataFrame:
    """One row per store: what results/stores.csv tells readers about the stores behind the results
    (the stores themselves are not committed). Paths are relative, as the extractors wrote them."""
    import pandas as pd

    rows = []
    for store in stores:
        meta = store.meta()
        rows.append({**{c: meta.get(c) for c in PROVENANCE_COLUMNS}, "store": store.id})
    return pd.DataFrame(rows, columns=PROVENANCE_COLUMNS)


def pooling_shapes(stores: list[EmbeddingStore]) -> pd.DataFrame:
    """One row per store x pooling: its per-clip shape, n_layers (empty when not layered) and dim."""
    import pandas as pd

    rows = [{"store": store.id, "pooling": pooling, "n_layers": shape[1] if len(shape) == 3 else None, "dim": shape[-1]}
            for store in stores for pooling, shape in store.meta().get("poolings", {}).items()]
    return pd.DataFrame(rows, columns=["store", "pooling", "n_layers", "dim"])
