"""Actor-independent folds (emoprobe/folds.py and data/splits/ravdess_emobox_6fold.json)."""

import numpy as np
import pytest

from emoprobe import folds, labels

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


def test_emobox_folds_are_the_published_ones():
    assert folds.load_folds("emobox6") == EMOBOX
    assert folds.load_folds() == EMOBOX  # the default scheme


@pytest.mark.parametrize("scheme, n_folds", [("emobox6", 6), ("loao", 24)])
def test_every_actor_is_tested_exactly_once(scheme, n_folds):
    scheme_folds = folds.load_folds(scheme)
    tested = sorted(a for actors in scheme_folds.values() for a in actors)
    assert len(scheme_folds) == n_folds and tested == list(range(1, labels.N_ACTORS + 1))


@pytest.mark.parametrize("scheme", ["emobox6", "loao"])
def test_split_is_actor_disjoint_and_covers_every_row(scheme):
    rng = np.random.default_rng(0)
    actors = rng.permutation(ACTORS)  # row order must not matter
    for name, test_actors in folds.load_folds(scheme).items():
        train, test = folds.split(actors, test_actors)
        assert not set(actors[train]) & set(actors[test]), name
        assert set(actors[test]) == set(test_actors)
        assert len(set(actors[train])) == labels.N_ACTORS - len(test_actors)
        assert sorted(np.concatenate([train, test])) == list(range(len(actors)))


def test_unknown_scheme_is_an_error():
    with pytest.raises(ValueError, match="unknown fold scheme 'kfold'"):
        folds.load_folds("kfold")


def test_a_folds_file_with_an_actor_in_two_test_sets_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "folds.json"
    bad.write_text('{"folds": {"a": [1, 2], "b": [2, 3]}}')
    monkeypatch.setattr(folds, "EMOBOX_FOLDS", bad)
    with pytest.raises(AssertionError, match="two folds"):
        folds.load_folds("emobox6")
