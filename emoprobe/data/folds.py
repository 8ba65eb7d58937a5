"""Speaker-independent folds: loaded from data files (or a manifest), never built ad hoc, checked for leaks.

Schemes:
    emobox6   the six actor-disjoint RAVDESS folds of the EmoBox benchmark (data/splits, committed)
    loso      leave one speaker out
    manifest  the `fold` column a manifest gives
    split     the manifest's train/test `split` as one fold (its test speakers must not be in train)
    speakerK  K speaker-grouped folds generated once per corpus and SAVED as data
              (data/splits/<corpus>_speakerK.json): later runs load the file, so they never move
    auto      the data's folds if given (a manifest's, or EmoBox's for RAVDESS, which its index assigns:
              data.ravdess), else the manifest's split, else speaker6
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..errors import UserError

EMOBOX_FOLDS = config.SPLITS / "ravdess_emobox_6fold.json"
SCHEMES = ("auto", "emobox6", "loso", "manifest", "split", "speakerK (e.g. speaker6)")


def load_folds(clips: pd.DataFrame, scheme: str = "auto", splits_dir=None) -> dict[str, list]:
    """Fold name -> TEST speakers, for the speakers of `clips`."""
    speakers = sorted(set(clips.speaker))
    scheme = resolve_scheme(clips, scheme)
    if scheme == "emobox6":
        folds = emobox_folds()
    elif scheme == "loso":
        folds = {f"speaker_{s}": [s] for s in speakers}
    elif scheme == "manifest":
        if "fold" not in clips or clips.fold.isna().any():
            raise UserError("--scheme manifest: the manifest gives no fold for every clip")
        folds = {f"fold_{f}": sorted(set(part.speaker)) for f, part in clips.groupby("fold", sort=True)}
    elif scheme == "split":
        if "split" not in clips or clips.split.isna().any():
            raise UserError("--scheme split: the manifest gives no train/test split for every clip")
        test, train = (set(clips.speaker[clips.split == side]) for side in ("test", "train"))
        if test & train:
            raise UserError(f"--scheme split: speaker(s) {sorted(test & train)[:5]} are in both train and test")
        folds = {"split": sorted(test)}
    elif re.fullmatch(r"speaker\d+", scheme):
        folds = generated_folds(clips, int(scheme[7:]), splits_dir)
    else:
        raise UserError(f"unknown fold scheme {scheme!r}: use one of {', '.join(SCHEMES)}")
    tested = [s for test in folds.values() for s in test]
    if len(tested) != len(set(tested)):
        raise UserError(f"fold scheme {scheme}: a speaker is in the test set of two folds")
    return folds


def resolve_scheme(clips: pd.DataFrame, scheme: str = "auto") -> str:
    """The scheme `auto` stands for with these clips (any other scheme as it is)."""
    if scheme != "auto":
        return scheme
    if "fold" in clips and clips.fold.notna().all():
        return "manifest"
    if "split" in clips and clips.split.notna().all():
        return "split"
    return "speaker6"


def describe(clips: pd.DataFrame, scheme: str = "auto") -> str:
    """Where the folds come from, in words for results and findings (e.g. 'EmoBox folds')."""
    scheme = resolve_scheme(clips, scheme)
    given = ("fold_source" in clips and clips.fold_source.notna().all()
             and clips.fold_source.nunique() == 1 and str(clips.fold_source.iloc[0]))
    if scheme == "emobox6":
        return f"EmoBox folds, {config.relative(EMOBOX_FOLDS)}"
    if scheme in ("manifest", "split"):
        what = "folds" if scheme == "manifest" else "train/test split"
        return f"{given} {what}" if given else f"the manifest's {what}"
    if scheme == "loso":
        return "leave one speaker out"
    return f"{scheme[7:]} speaker-disjoint folds generated once and saved in {config.relative(config.SPLITS)}"


def emobox_folds() -> dict[str, list]:
    """EmoBox's six RAVDESS folds: fold name -> test actors (data/splits)."""
    return json.loads(Path(EMOBOX_FOLDS).read_text())["folds"]


def emobox_fold_of() -> dict[int, int]:
    """RAVDESS actor -> the EmoBox fold (1-6) whose test set holds it (the RAVDESS index gives every
    clip its actor's fold)."""
    return {actor: int(name.removeprefix("fold_")) for name, actors in emobox_folds().items() for actor in actors}


def generated_folds(clips: pd.DataFrame, k: int, splits_dir=None) -> dict[str, list]:
    """k speaker-disjoint folds for the corpus of `clips`, saved on first use and loaded afterwards.
    Speakers are dealt round-robin in a seeded random order, so folds differ in size by one speaker."""
    named = "corpus" in clips and clips.corpus.notna().any()
    corpus = re.sub(r"[^A-Za-z0-9.-]+", "_", str(clips.corpus.dropna().iloc[0])) if named else "corpus"
    path = Path(splits_dir or config.SPLITS) / f"{corpus}_speaker{k}.json"
    speakers = sorted(set(clips.speaker))
    if path.exists():
        folds = json.loads(path.read_text())["folds"]
        saved = {s for test in folds.values() for s in test}
        if saved == set(speakers):
            return folds
        print(f"[folds] {config.relative(path)} was made for other speakers: left as it is, folds made afresh")
        path = path.with_name(f"{path.stem}_{len(speakers)}speakers.json")
    if len(speakers) < 2:
        raise UserError(f"{corpus}: {len(speakers)} speaker(s); speaker-independent folds need at least 2")
    if k > len(speakers):
        print(f"[folds] {corpus}: {len(speakers)} speakers, so {len(speakers)} folds instead of {k}")
        k = len(speakers)
    order = np.random.default_rng(0).permutation(len(speakers))
    folds = {f"fold_{i + 1}": sorted(speakers[j] for j in order[i::k]) for i in range(k)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"description": f"{k} speaker-disjoint folds of {corpus}, generated by "
                                "emoprobe.data.folds (seeded round-robin over speakers); test speakers per fold",
                                "folds": folds}, indent=1, default=_plain) + "\n")
    print(f"[folds] wrote {config.relative(path)}: {k} speaker-disjoint folds")
    return folds


def _plain(value):
    return value.item() if isinstance(value, np.generic) else str(value)


def check_trainable(folds: dict[str, list], speakers, inner_folds: int) -> None:
    """Every fold must leave at least `inner_folds` training speakers (inner CV splits them that many
    ways); the grid and make_manifest.py --check say the same when it does not."""
    speakers = set(speakers)
    short = {fold: len(speakers - set(test)) for fold, test in folds.items() if len(speakers - set(test)) < inner_folds}
    if short:
        fold, n = next(iter(short.items()))
        raise UserError(f"{len(speakers)} speaker(s) in {len(folds)} fold(s): {fold} leaves {n} training speaker(s), "
                        f"but inner cross-validation splits each fold's training speakers {inner_folds} ways: "
                        f"at least {inner_folds + 1} speakers are needed")


def split(speakers: np.ndarray, test_speakers: list) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) for one fold; asserts no speaker is on both sides."""
    is_test = np.isin(speakers, test_speakers)
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    assert not set(speakers[train]) & set(speakers[test]), "speaker leak between train and test"
    return train, test
