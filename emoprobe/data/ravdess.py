"""Find RAVDESS media under any folder layout and build one table of clips.

A *clip key* names a recording independently of how it is stored: the file name without its first
(modality) field, e.g. `01-05-02-01-02-12` for `03-01-05-02-01-02-12.wav` (audio only) and
`01-01-05-02-01-02-12.mp4` (audio-video). Every modality and embedding joins on it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import NoDataError
from . import folds, labels

MEDIA_SUFFIXES = {".wav": "audio", ".flac": "audio", ".mp4": "video"}
# Which column of the clips table a file fills, by its modality field.
PATH_COLUMN = {1: "path_av", 2: "path_video", 3: "path_audio"}
# Which container a modality may come in (an audio-only recording is never an mp4 and so on).
ALLOWED_KIND = {1: "video", 2: "video", 3: "audio"}
# Where each modality's input comes from, in order of preference (the 01- audio-video mp4 holds both).
SOURCE_COLUMNS = {"audio": ("path_audio", "path_av"), "video": ("path_video", "path_av")}
CLIP_COLUMNS = ["key", "emotion", "emotion_name", "intensity", "statement", "repetition", "actor",
                "sex", "channel", "path_audio", "path_av", "path_video"]


@dataclass(frozen=True)
class RavdessName:
    modality: int
    channel: int
    emotion: int
    intensity: int
    statement: int
    repetition: int
    actor: int

    @property
    def clip(self) -> str:
        return "-".join(f"{v:02d}" for v in (self.channel, self.emotion, self.intensity,
                                             self.statement, self.repetition, self.actor))


def parse_name(filename: str | os.PathLike) -> RavdessName:
    """Parse the seven fields of a RAVDESS file name; raise ValueError saying what is wrong."""
    stem = Path(filename).name.split(".")[0]
    fields = stem.split("-")
    if len(fields) != 7 or not all(len(f) == 2 and f.isascii() and f.isdigit() for f in fields):
        raise ValueError(f"{Path(filename).name}: expected 7 two-digit fields like 03-01-05-02-01-02-12")
    name = RavdessName(*map(int, fields))
    checks = [
        (name.modality in labels.MODALITIES, "modality must be 01-03"),
        (name.channel in labels.CHANNELS, "vocal channel must be 01 or 02"),
        (name.emotion in labels.EMOTIONS, "emotion must be 01-08"),
        (name.intensity in labels.INTENSITIES, "intensity must be 01 or 02"),
        (name.statement in labels.STATEMENTS, "statement must be 01 or 02"),
        (name.repetition in labels.REPETITIONS, "repetition must be 01 or 02"),
        (1 <= name.actor <= labels.N_ACTORS, f"actor must be 01-{labels.N_ACTORS}"),
        (not (name.emotion == 1 and name.intensity == 2), "neutral has no strong intensity"),
        (name.channel == 1 or name.emotion in labels.SONG_EMOTIONS, "song has emotions 01-06 only"),
        (name.channel == 1 or name.actor not in labels.SONG_MISSING_ACTORS, "actor 18 has no song"),
    ]
    for ok, why in checks:
        if not ok:
            raise ValueError(f"{Path(filename).name}: {why}")
    return name


def find_media(root: str | os.PathLike) -> list[Path]:
    """Every .wav/.flac/.mp4 under root, following symlinks once (no loops), sorted."""
    found, seen_dirs = [], set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen_dirs:
            dirnames[:] = []
            continue
        seen_dirs.add(real)
        dirnames.sort()
        found += [Path(dirpath) / f for f in filenames if Path(f).suffix.lower() in MEDIA_SUFFIXES]
    return sorted(found)


def index_clips(root: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Index RAVDESS under root.

    Returns (clips, problems): one row per clip key with its labels and one path per modality
    (NaN where that modality is absent), and one row per file that was skipped, with the reason.
    """
    rows: dict[str, dict] = {}
    problems = []
    for path in find_media(root):
        try:
            name = parse_name(path)
        except ValueError as err:
            problems.append({"path": str(path), "problem": str(err)})
            continue
        kind = MEDIA_SUFFIXES[path.suffix.lower()]
        if ALLOWED_KIND[name.modality] != kind:
            problems.append({"path": str(path), "problem": f"{path.name}: modality "
                             f"{labels.MODALITIES[name.modality]} cannot be a {path.suffix} file"})
            continue
        row = rows.setdefault(name.clip, {
            "key": name.clip, "emotion": name.emotion, "emotion_name": labels.EMOTIONS[name.emotion],
            "intensity": name.intensity, "statement": name.statement, "repetition": name.repetition,
            "actor": name.actor, "sex": labels.actor_sex(name.actor),
            "channel": labels.CHANNELS[name.channel]})
        column = PATH_COLUMN[name.modality]
        if column in row:  # same recording twice (e.g. .wav and .flac copies): keep the first
            problems.append({"path": str(path), "problem": f"{path.name}: duplicate of {row[column]}"})
            continue
        row[column] = str(path)
    clips = pd.DataFrame(list(rows.values()), columns=CLIP_COLUMNS)
    clips = clips.sort_values("key").reset_index(drop=True)
    return clips, pd.DataFrame(problems, columns=["path", "problem"])


def records(root: str | os.PathLike, channel: str | None = "speech", verbose: bool = True) -> list[dict]:
    """Manifest records (see data.manifest) of the RAVDESS clips under root, for one vocal channel
    (None: both), reporting skipped files. The RAVDESS labels go into each record's attributes, and
    each clip gets the EmoBox fold of its actor (the benchmark's folds, for both channels)."""
    clips, problems = index_clips(root)
    if verbose and len(problems):
        print(f"[index] skipped {len(problems)} file(s) under {root}:")
        for p in problems.itertuples():
            print(f"  {p.problem}")
    others = clips[clips.channel != channel] if channel is not None else clips.iloc[:0]
    if channel is not None:
        clips = clips[clips.channel == channel]
    if clips.empty and len(others):
        held = ", ".join(f"{n} {name}" for name, n in others.channel.value_counts().items())
        raise NoDataError(f"no RAVDESS {channel} clips under {root}, which holds {held} clip(s): "
                          f"--channel {others.channel.iloc[0]} (or all) reads them")
    if clips.empty:
        raise NoDataError(f"no RAVDESS {channel or ''} media found under {root}; "
                          "download it (experiments/download_ravdess.py) or pass --data-root")
    attributes = ["emotion", "intensity", "statement", "repetition", "actor", "sex", "channel"]
    fold_of = folds.emobox_fold_of()  # EmoBox's six actor-disjoint folds (data/splits), as data of each clip
    return [{"key": row.key, "audio": source_path(row, "audio"), "video": source_path(row, "video"),
             "label": row.emotion_name, "speaker": row.actor, "fold": fold_of[row.actor], "fold_source": "EmoBox",
             "corpus": f"ravdess-{row.channel}", "attributes": {a: getattr(row, a) for a in attributes}}
            for row in clips.itertuples()]


def source_path(clip_row, modality: str) -> str | None:
    """The file a modality's extractor reads for one clip (see SOURCE_COLUMNS), or None if absent."""
    for column in SOURCE_COLUMNS[modality]:
        value = getattr(clip_row, column, None)
        if isinstance(value, str):
            return value
    return None
