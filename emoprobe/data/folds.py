"""Actor-independent folds: loaded from data files, never built ad hoc, and checked for leaks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .. import config
from . import labels

EMOBOX_FOLDS = config.SPLITS / "ravdess_emobox_6fold.json"


def load_folds(scheme: str = "emobox6") -> dict[str, list[int]]:
    """Fold name -> TEST actors. `emobox6` (from the committed JSON) or `loao` (leave one actor out)."""
    if scheme == "emobox6":
        folds = json.loads(Path(EMOBOX_FOLDS).read_text())["folds"]
    elif scheme == "loao":
        folds = {f"actor_{a:02d}": [a] for a in range(1, labels.N_ACTORS + 1)}
    else:
        raise ValueError(f"unknown fold scheme {scheme!r}: use emobox6 or loao")
    tested = [a for actors in folds.values() for a in actors]
    assert len(tested) == len(set(tested)), "an actor is in the test set of two folds"
    return folds


def split(actors: np.ndarray, test_actors: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) for one fold; asserts no actor is on both sides."""
    is_test = np.isin(actors, test_actors)
    train, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    assert not set(actors[train]) & set(actors[test]), "actor leak between train and test"
    return train, test
