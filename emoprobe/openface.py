"""OpenFace 2 action units as a face feature set, written to the embedding store.

Two sources, one output format (store modality `face`):
- the per-clip AU means shared with the developers (`au_means_per_clip.csv`: 17 intensities
  AU*_r and 18 presences AU*_c per clip) -> store `openface-au-means`, pooling `mean` (35-d);
- the official per-frame tracking CSVs ("RAVDESS Facial Landmark Tracking", Zenodo 3255102, one
  OpenFace CSV per video) -> store `openface-au`, poolings `mean` and `meanstd` of the same 35 AU
  columns over confident frames, and the per-frame AU sequence for temporal analysis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .audio import BadMediaError
from .ravdess import parse_name
from .store import EmbeddingStore

AU_INTENSITY = [f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)]
AU_PRESENCE = [f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)]
AU_COLUMNS = AU_INTENSITY + AU_PRESENCE  # the order of every AU feature vector in this repo
MIN_CONFIDENCE = 0.8  # OpenFace's tracking confidence below which a frame's AUs are unreliable


def read_tracking_csv(path: str | Path, min_confidence: float = MIN_CONFIDENCE) -> pd.DataFrame:
    """Confident, successfully tracked frames of one OpenFace CSV (header spaces stripped)."""
    try:
        frames = pd.read_csv(path, skipinitialspace=True)
    except Exception as err:
        raise BadMediaError(f"{path}: unreadable OpenFace CSV ({err})") from err
    frames.columns = frames.columns.str.strip()
    missing = [c for c in ["success", "confidence", *AU_COLUMNS] if c not in frames.columns]
    if missing:
        raise BadMediaError(f"{path}: not an OpenFace 2 AU file (missing {', '.join(missing[:4])}...)")
    kept = frames[(frames.success == 1) & (frames.confidence >= min_confidence)]
    if kept.empty:
        raise BadMediaError(f"{path}: no frame tracked with confidence >= {min_confidence} "
                            f"(of {len(frames)}): no face found")
    return kept


def encode_tracking(frames: pd.DataFrame) -> dict[str, np.ndarray]:
    """Clip statistics and the per-frame sequence of the 35 AU values."""
    au = frames[AU_COLUMNS].to_numpy(dtype=np.float32)
    mean = au.mean(0)
    return {"mean": mean, "meanstd": np.concatenate([mean, au.std(0)]), "sequence": au}


def write_au_means(csv_path: str | Path, embeddings_dir=None) -> dict:
    """The shared per-clip AU means -> store face/openface-au-means, keyed by clip key."""
    table = pd.read_csv(csv_path)
    store = EmbeddingStore("face", "openface-au-means", embeddings_dir)
    means = [c + "_mean" for c in AU_COLUMNS]
    for row in table.itertuples(index=False):
        try:
            key = parse_name(row.clip_id).clip
        except ValueError as err:
            store.record_failure(str(row.clip_id), str(csv_path), str(err))
            continue
        store.put(key, {"mean": np.array([getattr(row, m) for m in means], dtype=np.float32)})
    duplicated = table.loc[table.duplicate_of_other_row == 1, "clip_id"].tolist()
    return store.finalize({
        "model_id": "OpenFace 2 action units, per-clip means (third-party, from the RAVDESS videos)",
        "source": str(csv_path), "random_init": False, "columns": AU_COLUMNS,
        "pooling": "mean over the clip's frames (done by the source); no sequences available",
        "frames_per_clip": {"min": int(table.n_frames.min()), "median": float(table.n_frames.median()),
                            "max": int(table.n_frames.max())},
        "rows_flagged_duplicate_in_source": duplicated})
