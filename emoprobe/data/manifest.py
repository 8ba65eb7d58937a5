"""Manifests: any corpus as JSON lines, one clip per line (in the spirit of EmoBox's data files).

    {"key": "1001_DFA_ANG_XX", "audio": "AudioWAV/1001_DFA_ANG_XX.wav", "label": "angry", "speaker": "1001"}
    {"key": "01-05-02-01-02-12", "audio": "Actor_12/03-01-05-02-01-02-12.wav", "video": null,
     "label": "angry", "speaker": 12, "attributes": {"intensity": 2, "sex": "female", ...}}

Fields: key (unique), label, speaker (required); audio and/or video (paths, relative to the manifest's
folder or absolute); fold (speaker-disjoint test fold, optional: every clip or none), split
(train/test, optional), fold_source (optional: where the folds or split come from, e.g. "EmoBox";
written in results/folds.csv and the findings), corpus (optional name), attributes (an object of any further per-clip facts,
which become columns). Anything else is an error, as are a missing file, an empty label, a key twice
and a speaker in two folds: the message names the line. Labels are trimmed and lower-cased, known
aliases read as the project's names (labels.ALIASES: "Fear" -> fearful); a label close to a known name
but not one ("angy") is an error that names the likely one; others (codes such as CREMA-D's ANG, a
corpus's own label set) are kept as they are. The RAVDESS index produces the same records
(ravdess.records), so a RAVDESS folder and its manifest give identical clips tables.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import UserError
from . import labels

FIELDS = ("key", "audio", "video", "label", "speaker", "fold", "split", "fold_source", "corpus", "attributes")
REQUIRED = ("key", "label", "speaker")
SPLITS = ("train", "test")
SUFFIX = ".jsonl"


class ManifestError(UserError):
    """A manifest line that cannot be used; the message names the file and the line."""


def is_manifest(path: str | os.PathLike) -> bool:
    return Path(path).suffix.lower() == SUFFIX


def read(path: str | os.PathLike) -> list[dict]:
    """The manifest's records, checked, with media paths made absolute."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    records, numbers = [], []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ManifestError(f"{where}: not JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise ManifestError(f"{where}: expected an object like {{\"key\": ..., \"label\": ...}}")
        records.append(check_record(record, where, path.parent))
        numbers.append(number)
    if not records:
        raise ManifestError(f"{path}: no clips in the manifest")
    check_records(records, path.name, numbers)
    return records


def check_record(record: dict, where: str, base: Path) -> dict:
    """One record, checked; media paths resolved against `base`."""
    unknown = sorted(set(record) - set(FIELDS))
    if unknown:
        raise ManifestError(f"{where}: unknown field(s) {', '.join(unknown)}; fields are {', '.join(FIELDS)} "
                            "(put other facts in \"attributes\")")
    for field in REQUIRED:
        if record.get(field) in (None, ""):
            raise ManifestError(f"{where}: empty or missing {field!r}")
    if not record.get("audio") and not record.get("video"):
        raise ManifestError(f"{where}: neither \"audio\" nor \"video\" is given")
    out = dict(record)
    for field in ("audio", "video"):
        if record.get(field):
            media = Path(record[field]).expanduser()
            media = media if media.is_absolute() else base / media
            if not media.is_file():
                raise ManifestError(f"{where}: {field} file {record[field]} not found")
            out[field] = str(media)
    if record.get("split") not in (None, *SPLITS):
        raise ManifestError(f"{where}: split must be one of {', '.join(SPLITS)}, not {record['split']!r}")
    if not isinstance(record.get("attributes", {}), dict):
        raise ManifestError(f"{where}: attributes must be an object")
    guesses = labels.misspelt(record["label"])
    if guesses:
        raise ManifestError(f"{where}: label {record['label']!r} is not a known emotion name: did you mean "
                            f"{' or '.join(guesses)}?")
    out["label"] = labels.normalise(record["label"])
    return out


def check_records(records: list[dict], source: str, lines: list[int] | None = None) -> None:
    """Checks across lines: unique keys; folds given for all clips or none, one fold per speaker.
    lines: each record's line in the file, which messages name (default 1, 2, ...: no blank lines)."""
    seen, fold_of = {}, {}
    with_fold = sum(r.get("fold") is not None for r in records)
    if with_fold not in (0, len(records)):
        raise ManifestError(f"{source}: {with_fold} of {len(records)} clips have a fold; give every clip one or none")
    for number, r in zip(lines or range(1, len(records) + 1), records):
        if r["key"] in seen:
            raise ManifestError(f"{source} line {number}: key {r['key']!r} already used on line {seen[r['key']]}")
        seen[r["key"]] = number
        if r.get("fold") is not None:
            first = fold_of.setdefault(r["speaker"], (r["fold"], number))
            if first[0] != r["fold"]:
                raise ManifestError(f"{source} line {number}: speaker {r['speaker']!r} is in fold {r['fold']!r} "
                                    f"here and in fold {first[0]!r} on line {first[1]}: folds must be speaker-disjoint")


def to_clips(records: list[dict], label_order: list[str] | None = None) -> pd.DataFrame:
    """The clips table: key, label (categorical, in label_order or sorted), speaker, audio, video,
    fold, split, corpus, and one column per attribute."""
    rows = [{**{f: r.get(f) for f in FIELDS if f != "attributes"}, **r.get("attributes", {})} for r in records]
    clips = pd.DataFrame(rows).sort_values("key").reset_index(drop=True)
    for column in ("audio", "video"):
        clips[column] = clips[column].where(clips[column].notna(), np.nan).astype(object)
    present = list(dict.fromkeys(clips.label))
    order = [label for label in (label_order or sorted(present)) if label in present]
    order += sorted(set(present) - set(order))
    clips["label"] = pd.Categorical(clips.label, categories=order)
    return clips


def write(records: list[dict], path: str | os.PathLike) -> Path:
    """Write records as a manifest; media paths inside the manifest's folder become relative to it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    base = path.parent.resolve()
    lines = []
    for r in records:
        r = {k: v for k, v in r.items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
        for field in ("audio", "video"):
            if field in r:
                r[field] = os.path.relpath(Path(r[field]).resolve(), base)
        lines.append(json.dumps(r, default=_plain))
    path.write_text("\n".join(lines) + "\n")
    return path


def _plain(value):
    """numpy scalars in attributes -> JSON numbers."""
    return value.item() if isinstance(value, np.generic) else str(value)
