"""EmoBox's metadata for one corpus, read as EmoBox ships it, turned into manifest records.

    <corpus>/<corpus>.jsonl                        one utterance a line: key, wav, length, emo, ...
    <corpus>/data.seg.wrd.stm                      `<key> <channel> <speaker> <start> <end> <tags> <label>`
    <corpus>/label_map.json                        the corpus's labels -> EmoBox's shared names
    <corpus>/fold_K/<corpus>_{train,test}_fold_K.jsonl   EmoBox's speaker-independent folds

Records keep EmoBox's keys; the speaker comes from the .stm (a number where every speaker is one, as
RAVDESS's actors are in the RAVDESS index); labels are the corpus's own or, with emobox_labels,
EmoBox's shared names (what cross-corpus transfer matches on), lower-cased either way; EmoBox's folds
become each clip's test `fold` (several folds) or its train/test `split` (one fold); the length in
seconds is the attribute `duration`. EmoBox's `wav` paths start where the user downloaded
(`downloads/<corpus>/...`): `resolve` finds each file under the user's audio root even when the
layout or the extension differs, and says how.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UserError

STM = "data.seg.wrd.stm"
LABEL_MAP = "label_map.json"
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg", ".m4a")  # tried when the given one is not on disk
SHOWN_MISSING = 10  # unresolved files listed one a line; the rest are counted


class EmoBoxError(UserError):
    """An EmoBox file that cannot be used; the message names the file and the line."""


@dataclass
class Corpus:
    """One corpus's EmoBox metadata. utterances: the <corpus>.jsonl rows in order, each with the line
    it came from (`line`); speaker: key -> speaker; folds: K -> the keys of its test set."""

    folder: Path
    name: str
    utterances: list[dict]
    speaker: dict
    label_map: dict
    folds: dict[int, set] = field(default_factory=dict)
    shared_speakers: dict[int, int] = field(default_factory=dict)  # fold K -> speakers in its train AND test

    @property
    def speaker_independent(self) -> bool:
        return not any(self.shared_speakers.values())


def _jsonl(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise EmoBoxError(f"{path}: no such file")
    out = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise EmoBoxError(f"{path.name} line {number}: not JSON ({err.msg})") from None
            if not isinstance(row, dict) or "key" not in row:
                raise EmoBoxError(f"{path.name} line {number}: expected an object with a \"key\"")
            out.append((number, row))
    return out


def _number_if_digits(value: str):
    return int(value) if value.isdigit() else value


def read(folder: str | os.PathLike) -> Corpus:
    """A corpus folder of EmoBox's data/ (the one holding <corpus>.jsonl), checked across its files."""
    folder = Path(folder)
    main = sorted(p for p in folder.glob("*.jsonl"))
    if not folder.is_dir() or len(main) != 1:
        raise EmoBoxError(f"{folder}: not an EmoBox corpus folder (expected one <corpus>.jsonl beside "
                          f"{STM}, {LABEL_MAP} and fold_K/ folders)")
    name = main[0].stem
    rows = _jsonl(main[0])
    if not (folder / STM).is_file():
        raise EmoBoxError(f"{folder}: no {STM} (EmoBox gives each utterance's speaker there)")
    speaker = {}
    for number, line in enumerate((folder / STM).read_text().splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 3:
            raise EmoBoxError(f"{STM} line {number}: expected '<key> <channel> <speaker> ...'")
        speaker[fields[0]] = fields[2]
    if all(s.isdigit() for s in speaker.values()):
        speaker = {k: int(s) for k, s in speaker.items()}
    if not (folder / LABEL_MAP).is_file():
        raise EmoBoxError(f"{folder}: no {LABEL_MAP}")
    try:
        label_map = json.loads((folder / LABEL_MAP).read_text())
    except json.JSONDecodeError as err:
        raise EmoBoxError(f"{LABEL_MAP} line {err.lineno}: not JSON ({err.msg})") from None
    utterances, seen = [], {}
    for number, row in rows:
        where = f"{main[0].name} line {number}"
        for needed in ("wav", "emo"):
            if row.get(needed) in (None, ""):
                raise EmoBoxError(f"{where}: no {needed!r}")
        if row["key"] in seen:
            raise EmoBoxError(f"{where}: key {row['key']!r} already on line {seen[row['key']]}")
        seen[row["key"]] = number
        if row["key"] not in speaker:
            raise EmoBoxError(f"{where}: key {row['key']!r} is not in {STM} (no speaker)")
        if row["emo"] not in label_map:
            raise EmoBoxError(f"{where}: label {row['emo']!r} is not in {LABEL_MAP} ({', '.join(label_map)})")
        utterances.append({**row, "line": number})
    corpus = Corpus(folder, name, utterances, speaker, label_map)
    corpus.folds, corpus.shared_speakers = read_folds(corpus)
    return corpus


def read_folds(corpus: Corpus) -> tuple[dict[int, set], dict[int, int]]:
    """(K -> test keys of fold_K, K -> how many speakers are in both its train and test sets), every
    key checked against the corpus. Not every EmoBox fold is speaker-independent (CREMA-D's is not)."""
    folds, shared = {}, {}
    known = {u["key"] for u in corpus.utterances}
    numbered = [p for p in corpus.folder.glob("fold_*") if p.is_dir() and p.name[5:].isdigit()]
    for fold_dir in sorted(numbered, key=lambda p: int(p.name[5:])):
        k = int(fold_dir.name[5:])
        sides = {side: {row["key"]: number for number, row in _jsonl(fold_dir / f"{corpus.name}_{side}_fold_{k}.jsonl")}
                 for side in ("train", "test")}
        for side, keys in sides.items():
            unknown = [(n, key) for key, n in keys.items() if key not in known]
            if unknown:
                n, key = min(unknown)
                raise EmoBoxError(f"{fold_dir.name}/{corpus.name}_{side}_fold_{k}.jsonl line {n}: key {key!r} "
                                  f"is not in {corpus.name}.jsonl")
        both = set(sides["train"]) & set(sides["test"])
        if both:
            raise EmoBoxError(f"{fold_dir.name}: {len(both)} key(s) in both train and test, e.g. {sorted(both)[0]!r}")
        leaked = {corpus.speaker[key] for key in sides["train"]} & {corpus.speaker[key] for key in sides["test"]}
        folds[k], shared[k] = set(sides["test"]), len(leaked)
    if not folds:
        raise EmoBoxError(f"{corpus.folder}: no fold_K/ folder (EmoBox's speaker-independent folds)")
    tested = Counter(key for keys in folds.values() for key in keys)
    twice = [key for key, n in tested.items() if n > 1]
    if len(folds) > 1 and twice:
        raise EmoBoxError(f"{corpus.folder.name}: key {twice[0]!r} is in the test set of more than one fold")
    return folds, shared


@dataclass
class Resolution:
    """How the audio files were found: `how` counts each way (e.g. "dropped 'downloads/ravdess/',
    .flac for .wav"); missing: (jsonl line, EmoBox's wav path) of the files not found."""

    how: Counter
    missing: list[tuple[int, str]]

    def summary(self, total: int) -> list[str]:
        """Lines for the user: how many were found and how, then what was not (a count past a few)."""
        lines = [f"{total - len(self.missing)} of {total} audio files found"
                 + (": " + "; ".join(f"{n} {way}" for way, n in self.how.most_common()) if self.how else "")]
        if len(self.missing) == total:
            return lines  # nothing found: listing every file says no more than the count
        for number, wav in self.missing[:SHOWN_MISSING]:
            lines.append(f"  not found: {wav} (line {number})")
        if len(self.missing) > SHOWN_MISSING:
            lines.append(f"  ... and {len(self.missing) - SHOWN_MISSING} more not found")
        return lines


def resolve(wav: str, audio_root: Path) -> tuple[Path, str] | None:
    """The file EmoBox's `wav` path names, under audio_root: the path as given, else with leading folders
    dropped (the user unpacked elsewhere), each with the given extension, then the other audio ones."""
    parts = Path(wav).parts
    given = Path(wav).suffix.lower()
    for drop in range(len(parts)):
        rest = Path(*parts[drop:])
        for suffix in (given, *(s for s in AUDIO_SUFFIXES if s != given)):
            candidate = audio_root / rest.with_suffix(suffix)
            if candidate.is_file():
                ways = ([f"dropped '{Path(*parts[:drop]).as_posix()}/'"] if drop else ["as given"]) + (
                    [f"{suffix} for {given}"] if suffix != given else [])
                return candidate, ", ".join(ways)
    return None


def records(corpus: Corpus, audio_root: str | os.PathLike, emobox_labels: bool = False) -> tuple[list[dict], Resolution]:
    """Manifest records of the utterances whose audio is found under audio_root, and how they were found.
    EmoBox's folds are written only when they are speaker-independent (the protocol here never trains
    and tests on one speaker): otherwise the grid makes speaker-disjoint folds of its own."""
    audio_root = Path(audio_root)
    out, how, missing = [], Counter(), []
    single = len(corpus.folds) == 1
    use_folds = corpus.speaker_independent
    fold_of = {key: k for k, keys in corpus.folds.items() for key in keys}
    for u in corpus.utterances:
        found = resolve(u["wav"], audio_root)
        if found is None:
            missing.append((u["line"], u["wav"]))
            continue
        how[found[1]] += 1
        label = corpus.label_map[u["emo"]] if emobox_labels else u["emo"]
        record = {"key": u["key"], "audio": str(found[0]), "label": str(label).lower(),
                  "speaker": corpus.speaker[u["key"]], "corpus": corpus.name,
                  "attributes": {"duration": u.get("length")}}
        if use_folds and single:
            record.update(split="test" if u["key"] in fold_of else "train", fold_source="EmoBox")
        elif use_folds:
            if u["key"] not in fold_of:
                raise EmoBoxError(f"{corpus.name}.jsonl line {u['line']}: key {u['key']!r} is in no fold's test set")
            record.update(fold=fold_of[u["key"]], fold_source="EmoBox")
        out.append(record)
    return out, Resolution(how, missing)
