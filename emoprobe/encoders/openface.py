"""OpenFace 2 action units (and 2D landmarks) as a face feature set, written to the embedding store.

Two sources, one column order (AU_COLUMNS: 17 intensities AU*_r, then 18 presences AU*_c), so
the two stores below are directly comparable:
- the official per-frame tracking CSVs ("RAVDESS Facial Landmark Tracking", Zenodo record 3255102:
  one OpenFace 2.1 CSV per video, loose or inside zip archives) -> store `face/openface-au`
  (OpenFaceEncoder): per clip, over the confidently tracked frames,
      mean               (35,)   AU means
      meanstd            (70,)   AU means and standard deviations
      landmarks_meanstd  (272,)  mean and std of the 68 2D landmarks, normalised per frame
                                 (normalize_landmarks: eyes level, inter-ocular distance 1)
      sequence           (T, 35) per-frame AUs (OpenFace runs at the video's 29.97 frames/s)
  and frames kept / total per clip in the store's frames.jsonl (frame_counts reads it);
- the per-clip AU means shared with the developers (`au_means_per_clip.csv`) -> store
  `face/openface-au-means`, pooling `mean` (35,) only: the source has no per-frame data.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ..data.ravdess import parse_name
from ..media import BadMediaError
from ..store.extract import run_extraction
from ..store.store import EmbeddingStore
from ..errors import UserError
from .base import OPENFACE, THIRD_PARTY, Encoder, register

AU_INTENSITY = [f"AU{n:02d}_r" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)]
AU_PRESENCE = [f"AU{n:02d}_c" for n in (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 28, 45)]
AU_COLUMNS = AU_INTENSITY + AU_PRESENCE  # the order of every AU feature vector in this repo
LANDMARKS = [f"x_{i}" for i in range(68)] + [f"y_{i}" for i in range(68)]  # OpenFace's 2D points, pixels
EYES = (range(36, 42), range(42, 48))  # 68-point scheme: the eye in the image's left half, then the right
MIN_CONFIDENCE = 0.8  # OpenFace's tracking confidence below which a frame's AUs are unreliable
ZIP_SEP = "::"  # a source "archive.zip::folder/01-01-....csv" is a member of a zip


def read_openface_csv(source: str | Path, min_confidence: float = MIN_CONFIDENCE) -> pd.DataFrame:
    """The frames of one OpenFace CSV with success == 1 and confidence >= min_confidence.

    Header names are stripped (OpenFace writes ", AU01_r"). `source` is a path or
    "archive.zip::member.csv". The result's attrs hold n_frames_total (before filtering) and source.
    """
    try:
        if ZIP_SEP in str(source):
            archive, member = str(source).split(ZIP_SEP, 1)
            with zipfile.ZipFile(archive) as z:
                frames = pd.read_csv(io.BytesIO(z.read(member)), skipinitialspace=True)
        else:
            frames = pd.read_csv(source, skipinitialspace=True)
    except Exception as err:
        raise BadMediaError(f"{source}: unreadable OpenFace CSV ({type(err).__name__}: {err})") from err
    frames.columns = frames.columns.str.strip()
    missing = [c for c in ["success", "confidence", *AU_COLUMNS] if c not in frames.columns]
    if missing:
        raise BadMediaError(f"{source}: not an OpenFace 2 AU file (missing {', '.join(missing[:4])}"
                            f"{' ...' if len(missing) > 4 else ''})")
    kept = frames[(frames.success == 1) & (frames.confidence >= min_confidence)].reset_index(drop=True)
    if kept.empty:
        err = BadMediaError(f"{source}: none of its {len(frames)} frame(s) tracked with "
                            f"success and confidence >= {min_confidence}")
        err.n_frames_total = len(frames)
        raise err
    kept.attrs.update(n_frames_total=len(frames), source=str(source))
    return kept


def normalize_landmarks(frames: pd.DataFrame) -> np.ndarray:
    """(T, 68, 2) OpenFace 2D landmarks, per frame: origin midway between the eye centres, rotated so
    the eyes are level, scaled so they are 1 apart. Removes position, in-plane rotation and size (the
    camera distance); yaw and pitch stay (2D points cannot undo them)."""
    xy = frames[LANDMARKS].to_numpy(np.float64).reshape(len(frames), 2, 68).transpose(0, 2, 1)
    left, right = (xy[:, list(eye)].mean(1) for eye in EYES)
    centre, axis = (left + right) / 2, right - left
    iod = np.linalg.norm(axis, axis=1)
    if not np.all(iod > 0):
        raise BadMediaError(f"{frames.attrs.get('source', 'frames')}: eye landmarks coincide")
    u = axis / iod[:, None]
    rotate = np.stack([u, np.stack([-u[:, 1], u[:, 0]], -1)], -1)  # columns: the new x and y axes
    return ((xy - centre[:, None]) @ rotate / iod[:, None, None]).astype(np.float32)


_OPENFACE = dict(modality="face", input=OPENFACE, weights=THIRD_PARTY,
                 objective="facial action units (OpenFace 2 detectors)")


@register("openface-au", **_OPENFACE)
class OpenFaceEncoder(Encoder):
    """Per-frame OpenFace tracking (read_openface_csv frames) -> per-clip AU and landmark statistics."""

    def __init__(self, landmarks: bool = True, min_confidence: float = MIN_CONFIDENCE, **common):
        super().__init__(**common)
        self.landmarks, self.min_confidence = landmarks, min_confidence

    def encode(self, clips: list[pd.DataFrame]) -> list[dict[str, np.ndarray]]:
        out = []
        for frames in clips:
            au = frames[AU_COLUMNS].to_numpy(np.float32)
            clip = {"mean": au.mean(0), "meanstd": np.concatenate([au.mean(0), au.std(0)]), "sequence": au}
            if self.landmarks:
                if not set(LANDMARKS) <= set(frames.columns):
                    raise BadMediaError(f"{frames.attrs.get('source', 'frames')}: no 2D landmarks "
                                        "(x_0..y_67); run without landmarks")
                points = normalize_landmarks(frames).reshape(len(frames), -1)
                clip["landmarks_meanstd"] = np.concatenate([points.mean(0), points.std(0)])
            out.append(clip)
        return out

    def meta(self) -> dict:
        meta = {"model_id": "OpenFace 2.1 action units (RAVDESS Facial Landmark Tracking, Zenodo 3255102)",
                "columns": AU_COLUMNS, "min_confidence": self.min_confidence,
                "pooling": "mean / mean+std over frames with success == 1 and confidence >= min_confidence",
                "sequence": "per-frame AUs (T, 35) of the kept frames, in time order, at the video's frame rate",
                "frame_counts": "frames kept and total per clip: frames.jsonl in this folder"}
        if self.landmarks:
            meta["landmarks_meanstd"] = ("mean and std of the 68 2D landmarks (x_0, y_0, x_1, ...) after "
                                         "emoprobe.encoders.openface.normalize_landmarks, 272-d")
        return meta


@register("openface-au-means", **_OPENFACE)
class OpenFaceMeansEncoder(Encoder):
    """Per-clip AU means computed elsewhere (a table with one row per clip): stored as they are."""

    def __init__(self, source: str | None = None, flagged: tuple = (), **common):
        super().__init__(**common)
        self.source, self.flagged = source, list(flagged)

    def encode(self, vectors: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        return [{"mean": np.asarray(v, dtype=np.float32)} for v in vectors]

    def meta(self) -> dict:
        return {"model_id": "OpenFace 2 action units, per-clip means (third-party, from the RAVDESS videos)",
                "source": self.source, "columns": AU_COLUMNS,
                "pooling": "mean over the clip's frames, computed by the source (frame filtering unknown)",
                "sequence": "none: the source has per-clip means only",
                "rows_flagged_duplicate_in_source": self.flagged,
                "duplicate_policy": "kept: the flagged rows hold identical values in the source (a defect); "
                                    "they stay so every clip has a row, and are listed here so an analysis can drop them"}


def tracking_sources(folder: str | Path, channel: str | None = "speech") -> pd.DataFrame:
    """(key, source) for every RAVDESS-named OpenFace CSV under folder, loose or inside a zip (one level).
    channel: "speech", "song" or None for both. A key found twice keeps its first source."""
    rows = []
    for path in sorted(Path(folder).rglob("*")):
        suffix = path.suffix.lower()
        if suffix == ".csv":
            rows.append((path.name, str(path)))
        elif suffix == ".zip":
            with zipfile.ZipFile(path) as z:
                rows += [(Path(m).name, f"{path}{ZIP_SEP}{m}") for m in sorted(z.namelist())
                         if m.lower().endswith(".csv") and not Path(m).name.startswith(".")]
    table = []
    for name, source in rows:
        try:
            parsed = parse_name(name)
        except ValueError as err:
            print(f"[openface] skipped {source}: {err}")
            continue
        if channel is None or parsed.channel == {"speech": 1, "song": 2}[channel]:
            table.append({"key": parsed.clip, "source": source})
    return pd.DataFrame(table, columns=["key", "source"]).drop_duplicates("key").reset_index(drop=True)


def extract_tracking(clips: pd.DataFrame, encoder: OpenFaceEncoder, embeddings_dir=None,
                     shard: str | None = None, meta: dict | None = None) -> dict:
    """Embed clips (key, source: OpenFace CSV) into face/openface-au, resumably; each clip read also
    appends {clip, source, kept, total} to the store's frames.jsonl (one write per line: shard-safe)."""
    store = EmbeddingStore("face", encoder.name, embeddings_dir)
    key_of = dict(zip(clips.source, clips.key))

    def log(source, kept, total):
        store.dir.mkdir(parents=True, exist_ok=True)
        with open(store.dir / "frames.jsonl", "a") as f:
            f.write(json.dumps({"clip": key_of[source], "source": Path(source).name, "kept": kept,
                                "total": total}) + "\n")

    def load(source):
        try:
            frames = read_openface_csv(source, encoder.min_confidence)
        except BadMediaError as err:  # unreadable (total unknown) or nothing kept; failures.json says which
            log(source, 0, getattr(err, "n_frames_total", None))
            raise
        log(source, len(frames), frames.attrs["n_frames_total"])
        return frames

    return run_extraction(clips, [encoder], load=load, meta={**(meta or {}), "packages": ["pandas"]},
                          root=embeddings_dir, batch_size=16, shard=shard)


def frame_counts(store: EmbeddingStore) -> pd.DataFrame:
    """Frames kept and total per clip (the latest read of each), from the store's frames.jsonl."""
    path = store.dir / "frames.jsonl"
    if not path.exists():
        return pd.DataFrame(columns=["clip", "source", "kept", "total"])
    return pd.read_json(path, lines=True).drop_duplicates("clip", keep="last").sort_values("clip")


def au_means_table(csv_path: str | Path) -> tuple[pd.DataFrame, list[str]]:
    """The per-clip AU means CSV as (table of key, source, vector, problem; clip ids the source flags as
    duplicate rows). A row whose clip_id is not a RAVDESS name keeps its clip_id as key, has no vector
    and says why in `problem`: au_means_loader raises it, so the store records it as a failure."""
    table = pd.read_csv(csv_path)
    means = [c + "_mean" for c in AU_COLUMNS]
    missing = [c for c in ["clip_id", *means] if c not in table.columns]
    if missing:
        raise UserError(f"{csv_path}: not a per-clip AU means file (missing {', '.join(missing[:4])})")
    rows = []
    for i, row in enumerate(table.itertuples(index=False)):
        source = f"{Path(csv_path).name}#{i + 2}"
        try:
            key = parse_name(row.clip_id).clip
        except ValueError as err:
            rows.append({"key": str(row.clip_id), "source": source, "vector": None, "problem": str(err)})
            continue
        rows.append({"key": key, "source": source, "problem": None,
                     "vector": np.array([getattr(row, m) for m in means], dtype=np.float32)})
    flagged = (table.loc[table.duplicate_of_other_row == 1, "clip_id"].tolist()
               if "duplicate_of_other_row" in table.columns else [])
    return pd.DataFrame(rows, columns=["key", "source", "vector", "problem"]), flagged


def au_means_loader(table: pd.DataFrame):
    """load(source) for run_extraction over an au_means_table: the row's vector, or BadMediaError."""
    rows = table.set_index("source")

    def load(source):
        problem = rows.at[source, "problem"]
        if isinstance(problem, str):  # pandas holds "no problem" as NaN
            raise BadMediaError(f"{source}: {problem}")
        return rows.at[source, "vector"]
    return load
