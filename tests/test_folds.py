"""Speaker-independent folds (emoprobe/data/folds.py and data/splits/ravdess_emobox_6fold.json)."""

import numpy as np
import pandas as pd
import pytest
from corpus import ravdess_tree

from emoprobe.data import clips as clip_table
from emoprobe.data import folds, labels
from emoprobe.errors import UserError

# EmoBox (Ma et al., Interspeech 2024), RAVDESS speech: the test actors of each fold.
EMOBOX = {
    "fold_1": [1, 11, 20, 21],
    "fold_2": [4, 10, 12, 14],
    "fold_3": [8, 9, 19, 23],
    "fold_4": [3, 5, 7, 24],
    "fold_5": [2, 15, 16, 18],
    "fold_6": [6, 13, 17, 22],
}
ACTORS = np.repeat(np.arange(1, labels.N_ACTORS + 1), 60)  # one row per clip, as in the real table
CLIPS = pd.DataFrame({"key": [f"clip{i:04d}" for i in range(len(ACTORS))], "speaker": ACTORS,
                      "corpus": "ravdess-speech"})


def test_emobox_folds_are_the_published_ones(tmp_path):
    assert folds.load_folds(CLIPS, "emobox6") == EMOBOX
    # a RAVDESS folder: its index gives each clip its actor's EmoBox fold, which "auto" reads
    clips = clip_table.load(ravdess_tree(tmp_path, actors=range(1, 25), emotions=(1,), seconds=0.2, videos=0))
    assert folds.load_folds(clips) == EMOBOX and folds.describe(clips) == "EmoBox folds"


@pytest.mark.parametrize("scheme, n_folds", [("emobox6", 6), ("loso", 24)])
def test_every_actor_is_tested_exactly_once(scheme, n_folds):
    scheme_folds = folds.load_folds(CLIPS, scheme)
    tested = sorted(a for actors in scheme_folds.values() for a in actors)
    assert len(scheme_folds) == n_folds and tested == list(range(1, labels.N_ACTORS + 1))


@pytest.mark.parametrize("scheme", ["emobox6", "loso"])
def test_split_is_actor_disjoint_and_covers_every_row(scheme):
    rng = np.random.default_rng(0)
    actors = rng.permutation(ACTORS)  # row order must not matter
    for name, test_actors in folds.load_folds(CLIPS, scheme).items():
        train, test = folds.split(actors, test_actors)
        assert not set(actors[train]) & set(actors[test]), name
        assert set(actors[test]) == set(test_actors)
        assert len(set(actors[train])) == labels.N_ACTORS - len(test_actors)
        assert sorted(np.concatenate([train, test])) == list(range(len(actors)))


def test_unknown_scheme_is_an_error():
    with pytest.raises(UserError, match="unknown fold scheme 'kfold'"):
        folds.load_folds(CLIPS, "kfold")


def test_a_folds_file_with_an_actor_in_two_test_sets_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "folds.json"
    bad.write_text('{"folds": {"a": [1, 2], "b": [2, 3]}}')
    monkeypatch.setattr(folds, "EMOBOX_FOLDS", bad)
    with pytest.raises(UserError, match="a speaker is in the test set of two folds"):
        folds.load_folds(CLIPS, "emobox6")


def test_generated_speaker_folds_are_saved_and_then_loaded(tmp_path):
    """Another corpus: speaker-disjoint folds made once, written as data, read back unchanged."""
    other = pd.DataFrame({"speaker": [f"s{i % 10}" for i in range(50)], "corpus": "my corpus"})
    made = folds.load_folds(other, "auto", splits_dir=tmp_path)  # not RAVDESS speakers: speaker6
    saved = tmp_path / "my_corpus_speaker6.json"
    assert saved.exists() and len(made) == 6
    assert sorted(s for test in made.values() for s in test) == sorted(set(other.speaker))
    assert {len(test) for test in made.values()} == {1, 2}  # 10 speakers dealt round-robin into 6 folds
    assert folds.load_folds(other.sample(frac=1, random_state=1), "speaker6", splits_dir=tmp_path) == made


def test_manifest_folds_and_split():
    clips = pd.DataFrame({"speaker": ["a", "a", "b", "c"], "fold": [1, 1, 2, 2],
                          "split": ["train", "train", "test", "test"]})
    assert folds.load_folds(clips) == {"fold_1": ["a"], "fold_2": ["b", "c"]}  # auto: the manifest's folds
    assert folds.load_folds(clips, "split") == {"split": ["b", "c"]}
    clips.loc[3, "speaker"] = "a"  # speaker a now on both sides of the split
    with pytest.raises(UserError, match="in both train and test"):
        folds.load_folds(clips, "split")
