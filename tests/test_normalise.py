"""The protocols of emoprobe.probes.normalise: what each removes, that none reads a test label, that
a test speaker's statistics come from its enrolment clips only, and the grid's normalisation column."""

import numpy as np
import pandas as pd
import pytest
from test_probes import fold_rows, synthetic

from emoprobe import probes
from emoprobe.probes import FeatureSet, normalise


def hidden_by_speakers(seed=0):
    """The synthetic RAVDESS-shaped clips with a weak emotion signal under a large per-speaker offset
    and scale: what the speaker-independent protocol cannot see through."""
    clips, X = synthetic(signal=1.5, seed=seed)
    rng = np.random.default_rng(seed + 1)
    speakers = clips.speaker.to_numpy()
    offset = {s: rng.normal(size=X.shape[1]) * 10 for s in np.unique(speakers)}
    scale = {s: np.exp(rng.normal(size=X.shape[1]) * 0.5) for s in np.unique(speakers)}
    X = np.stack([x * scale[s] + offset[s] for x, s in zip(X, speakers)]).astype(np.float32)
    return clips, X


def grid_ua(clips, X, normalisations):
    results, *_ = probes.run_grid(clips, [FeatureSet("audio/a", list(clips.key), X)], seeds=(0,), probes=("linear",),
                                  log=lambda *_: None, normalisations=normalisations)
    rows = results[results.candidate == "all"]
    return rows.groupby("normalisation").ua.mean(), results


def test_speaker_normalisation_recovers_a_signal_that_speaker_offsets_hide():
    clips, X = hidden_by_speakers()
    ua, results = grid_ua(clips, X, normalise.DEFAULT)
    assert set(results.normalisation) == set(normalise.DEFAULT)
    assert ua["speaker"] > 0.9
    assert ua["global"] < 0.35
    assert ua["speaker"] - ua["global"] > 0.5


@pytest.mark.parametrize("name", normalise.DEFAULT)
def test_no_normalisation_reads_a_test_label(name):
    clips, X = hidden_by_speakers()
    y, speakers, train, test = fold_rows(clips)
    shuffled = y.copy()
    shuffled[test] = np.random.default_rng(0).permutation(y[test])
    shuffled[test[:5]] = (y[test[:5]] + 1) % 8
    a = normalise.apply(name, X, speakers, train, y)
    b = normalise.apply(name, X, speakers, train, shuffled)
    np.testing.assert_array_equal(a, b)


def test_grid_predictions_do_not_move_when_a_folds_test_labels_are_perturbed():
    """Every statistic of a fold is fitted without its test labels: perturbing the labels of one fold's
    test speakers leaves that fold's predictions under every protocol unchanged."""
    clips, X = hidden_by_speakers()
    sets = [FeatureSet("audio/a", list(clips.key), X[:, :6]), FeatureSet("face/b", list(clips.key), X[:, 6:])]
    run = lambda c: probes.run_grid(c, sets, seeds=(0,), probes=("linear",), log=lambda *_: None,  # noqa: E731
                                    normalisations=normalise.DEFAULT)[1]
    _, _, _, test = fold_rows(clips)  # one fold's test speakers
    perturbed = clips.copy()
    perturbed.loc[test, "label"] = np.random.default_rng(1).permutation(clips.label.to_numpy()[test])
    keys = ["features", "normalisation", "probe", "fusion", "candidate", "key"]
    before, after = run(clips), run(perturbed)
    (fold,) = before[before.key.isin(clips.key[test])].fold.unique()
    a, b = (p[p.fold == fold].sort_values(keys).reset_index(drop=True) for p in (before, after))
    assert len(a) and set(a.normalisation) == set(normalise.DEFAULT)
    pd.testing.assert_series_equal(a.y_pred, b.y_pred)
    assert not (a.y_true == b.y_true).all()  # the labels did move


def test_a_test_speakers_statistics_come_from_its_enrolment_clips_only():
    clips, X = hidden_by_speakers()
    y, speakers, train, test = fold_rows(clips)
    reference = np.ones(len(X), dtype=bool)
    left_out = np.concatenate([test[speakers[test] == s][1::2] for s in np.unique(speakers[test])])
    reference[left_out] = False  # half of each test speaker's clips are not enrolled
    a = normalise.apply("speaker", X, speakers, train, y, reference)
    X_moved = X.copy()
    X_moved[left_out] += 100.0  # what is not enrolled cannot move anyone's statistics
    b = normalise.apply("speaker", X_moved, speakers, train, y, reference)
    np.testing.assert_allclose(a[reference], b[reference], rtol=1e-5, atol=1e-5)


def test_speaker_normalisation_z_scores_each_speaker_and_shrinks_few_clips_toward_the_pool():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)) * 3 + 5
    speakers = np.repeat(["a", "b", "c", "d"], 10)
    train = np.arange(30)
    out = normalise.apply("speaker", X, speakers, train, np.zeros(40, dtype=int))
    for s in "abcd":
        part = out[speakers == s]
        np.testing.assert_allclose(part.mean(0), 0, atol=1e-5)
        # 10 clips: the variance is (10 var + SHRINK_CLIPS pooled) / (10 + SHRINK_CLIPS), close to one
        assert np.all(np.abs(part.std(0) - 1) < 0.35)
    one = np.zeros(40, dtype=bool)
    one[:30] = True
    one[30] = True  # speaker d enrols a single clip: its mean is that clip, its scale the training pool's
    single = normalise.apply("speaker", X, speakers, train, np.zeros(40, dtype=int), one)
    np.testing.assert_allclose(single[30], 0, atol=1e-6)


def test_speaker_subspace_shrinks_the_directions_speakers_differ_along_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    speakers = np.repeat(np.arange(12), 20)
    y = np.tile(np.arange(4), 60)
    X = rng.normal(size=(240, 4))
    X[:, 0] += rng.normal(size=12)[speakers] * 5  # column 0: mostly speaker
    X[:, 1] += y * 2.0  # column 1: emotion
    out = normalise.apply("speaker-subspace", X, speakers, np.arange(240), y)
    between = lambda Z, col: np.var([Z[speakers == s, col].mean() for s in range(12)])  # noqa: E731
    z = (X - X.mean(0)) / X.std(0)
    assert between(out, 0) < 0.2 * between(z, 0)
    np.testing.assert_allclose(np.corrcoef(out[:, 1], y)[0, 1], np.corrcoef(X[:, 1], y)[0, 1], atol=0.05)


def test_an_unknown_normalisation_is_refused_by_name():
    with pytest.raises(ValueError, match="unknown normalisation 'nope'"):
        normalise.check(["global", "nope"])


def test_a_set_with_nothing_left_after_normalisation_gets_chance_not_a_crash():
    """Every clip of a speaker alike (e.g. one clip per speaker): under `speaker` no column is left, so
    every probe, fusion and the MLP fall back to an intercept (chance UA) instead of failing."""
    clips, X = synthetic()
    speakers = clips.speaker.to_numpy()
    same = np.stack([X[speakers == s][0] for s in speakers]).astype(np.float32)
    sets = [FeatureSet("audio/a", list(clips.key), same[:, :6]), FeatureSet("face/b", list(clips.key), same[:, 6:])]
    results, *_ = probes.run_grid(clips, sets, seeds=(0,), probes=("linear", "mlp"), log=lambda *_: None,
                                  normalisations=("speaker",))
    assert set(results.fusion) >= {"none", "early", "late", "stack", "auto"} and set(results.probe) == {"linear", "mlp"}
    assert results.ua.between(0.0, 0.2).all()  # chance is 1/8
