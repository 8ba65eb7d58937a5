"""Probe metrics, the torch logistic regression against sklearn, key-based joins and fold handling."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from emoprobe import folds, labels, probes
from emoprobe.probes import FeatureSet

torch.set_num_threads(1)  # tiny problems: one thread avoids oversubscription on a busy 2-core machine


def synthetic(n_per_actor=16, dim=12, seed=0, signal=1.5):
    """A RAVDESS-shaped table (24 actors x 8 emotions x 2) with features that carry the emotion."""
    rng = np.random.default_rng(seed)
    rows = [{"key": f"01-{e:02d}-01-01-{r:02d}-{a:02d}", "emotion": e, "actor": a}
            for a in range(1, 25) for e in labels.EMOTIONS for r in (1, 2)][: 24 * n_per_actor]
    clips = pd.DataFrame(rows).sort_values("key").reset_index(drop=True)
    centres = rng.normal(size=(9, dim)) * signal
    X = centres[clips.emotion] + rng.normal(size=(len(clips), dim))
    return clips, X.astype(np.float32)


def test_scores_on_a_known_case():
    y_true = np.array([1, 1, 1, 1, 2, 2, 3, 3])
    y_pred = np.array([1, 1, 1, 2, 2, 2, 1, 3])
    s = probes.scores(y_true, y_pred)
    assert s["wa"] == pytest.approx(6 / 8)
    assert s["ua"] == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)  # classes absent from y_true do not count
    assert s["recall_neutral"] == pytest.approx(0.75) and s["recall_happy"] == pytest.approx(0.5)
    assert np.isnan(s["recall_sad"])


def test_linear_probe_matches_sklearn_logistic_regression():
    clips, X = synthetic(signal=0.6)
    y, actors = clips.emotion.to_numpy(), clips.actor.to_numpy()
    train, test = folds.split(actors, [1, 11, 20, 21])
    out = probes.linear_probe(X[None], y, actors, train, test)
    scaler = StandardScaler().fit(X[train])
    ref = LogisticRegression(C=out["C"][0], max_iter=5000).fit(scaler.transform(X[train]), y[train])
    agree = (ref.predict(scaler.transform(X[test])) == out["pred"][0]).mean()
    assert agree >= 0.95
    assert out["inner_ua"][0] > 0.3  # well above chance (0.125) on this separable problem


def test_training_span_projection_leaves_predictions_unchanged():
    rng = np.random.default_rng(1)
    clips, X = synthetic(n_per_actor=4, dim=6)
    wide = np.concatenate([X, rng.normal(size=(len(X), 300))], axis=1).astype(np.float32)  # dim > rows
    y, actors = clips.emotion.to_numpy(), clips.actor.to_numpy()
    train, test = folds.split(actors, [1, 2, 3, 4])
    Xs = probes.standardise(wide[None], train)
    projected = probes.training_span(Xs, train)
    assert projected.shape[2] <= len(train) < Xs.shape[2]
    weights = np.zeros((1, len(y)), dtype=np.float32)
    weights[0, train] = 1
    C = torch.tensor([0.1])
    raw = probes.predict_softmax(Xs, *probes.fit_softmax(Xs, y, torch.tensor(weights), C, 500))
    proj = probes.predict_softmax(projected, *probes.fit_softmax(projected, y, torch.tensor(weights), C, 500))
    assert (raw[0, 0, test] == proj[0, 0, test]).mean() >= 0.95


def test_grid_joins_by_key_not_row_order_and_is_deterministic():
    clips, X = synthetic()
    a = FeatureSet("audio/a", list(clips.key), X[:, :6])
    order = np.random.default_rng(0).permutation(len(clips))  # same data, rows shuffled
    b_sorted = FeatureSet("face/b", list(clips.key), X[:, 6:])
    b_shuffled = FeatureSet("face/b", list(clips.key[order]), X[order, 6:])
    kwargs = dict(seeds=(0,), log=lambda *_: None)
    r1, p1 = probes.run_grid(clips, [a, b_sorted], **kwargs)
    r2, p2 = probes.run_grid(clips, [a, b_shuffled], **kwargs)
    pd.testing.assert_frame_equal(r1, r2)
    assert set(r1.features) == {"audio/a", "face/b", "audio/a+face/b"}
    assert {"features", "layer", "probe", "fold", "seed", "n_train", "n_test", "ua", "wa", "macro_f1"} <= set(r1.columns)
    assert (r1.groupby(["features", "probe", "seed"]).fold.nunique() == 6).all()
    for fold, test_actors in folds.load_folds().items():  # predictions only ever on the fold's test actors
        keys = p1[p1.fold == fold].key
        assert set(clips.set_index("key").loc[keys, "actor"]) <= set(test_actors)
    fusion = r1[(r1.features == "audio/a+face/b") & (r1.probe == "linear")].ua.mean()
    single = r1[(r1.features == "audio/a") & (r1.probe == "linear")].ua.mean()
    assert fusion > single  # the second set carries extra signal


def test_layered_sets_get_a_probe_per_layer_and_an_inner_cv_choice():
    clips, X = synthetic()
    noise = np.random.default_rng(2).normal(size=X.shape).astype(np.float32)
    layered = FeatureSet("audio/l", list(clips.key), np.stack([noise, X], axis=1))  # layer 1 informative
    results, _ = probes.run_grid(clips, [layered], probes=("linear",), log=lambda *_: None)
    per_layer = results[results.layer.isin([0, 1])].groupby("layer").ua.mean()
    assert per_layer[1] > per_layer[0] + 0.2
    chosen = results[results.layer == "inner-best"]
    assert len(chosen) == 6 and (chosen.layers_used == "1").all()


def test_partial_coverage_uses_the_intersection_and_skips_untrainable_folds():
    clips, X = synthetic()
    few = clips[clips.actor.isin([1, 4])]  # like the 4 real videos: two actors only
    video = FeatureSet("video/v", list(few.key), X[few.index])
    audio = FeatureSet("audio/a", list(clips.key), X)
    logged = []
    results, _ = probes.run_grid(clips, [audio, video], seeds=(0,), log=logged.append)
    assert not results[results.features.str.contains("video")].shape[0]
    assert any("skipped" in line for line in logged)
    assert (results[results.features == "audio/a"].fold.nunique()) == 6


def test_leave_one_actor_out_folds_are_disjoint():
    actors = np.repeat(np.arange(1, 25), 3)
    for fold, test_actors in folds.load_folds("loao").items():
        train, test = folds.split(actors, test_actors)
        assert not set(actors[train]) & set(actors[test]) and len(test) == 3
