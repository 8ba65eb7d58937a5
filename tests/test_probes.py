"""The linear probe against sklearn, the solver's coordinates, key-based joins, folds and the grid's
explicit columns. Synthetic data (a RAVDESS-shaped table), plus one check on the real OpenFace AUs
when the developers' shared copy is there."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import SHARED_OPENFACE_AU
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score

from emoprobe import probes
from emoprobe import results as results_schema
from emoprobe.data import folds, labels
from emoprobe.probes import FeatureSet, solver

EMOBOX_FOLD_1 = [1, 11, 20, 21]  # test actors of EmoBox's first fold


def synthetic(n_per_actor=16, dim=12, seed=0, signal=1.5):
    """A RAVDESS-shaped clips table (24 actors x 8 emotions x 2, EmoBox's folds) and features that
    carry the emotion."""
    rng = np.random.default_rng(seed)
    rows = [{"key": f"01-{e:02d}-01-01-{r:02d}-{a:02d}", "label": labels.EMOTIONS[e], "speaker": a}
            for a in range(1, 25) for e in labels.EMOTIONS for r in (1, 2)][: 24 * n_per_actor]
    clips = pd.DataFrame(rows).sort_values("key").reset_index(drop=True)
    clips["label"] = pd.Categorical(clips.label, categories=labels.EMOTION_NAMES)
    clips["fold"] = clips.speaker.map(folds.emobox_fold_of())  # as the RAVDESS index gives them
    centres = rng.normal(size=(8, dim)) * signal
    X = centres[clips.label.cat.codes] + rng.normal(size=(len(clips), dim))
    return clips, X.astype(np.float32)


def fold_rows(clips, test_actors=EMOBOX_FOLD_1):
    y, speakers = clips.label.cat.codes.to_numpy(), clips.speaker.to_numpy()
    train, test = folds.split(speakers, test_actors)
    return y, speakers, train, test


def test_scores_on_a_known_case():
    classes = ["neutral", "calm", "happy", "sad"]
    y_true = np.array([0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 1, 1, 1, 0, 2])
    s = probes.scores(y_true, y_pred, classes)
    assert s["wa"] == pytest.approx(6 / 8)
    assert s["ua"] == pytest.approx((3 / 4 + 1 + 1 / 2) / 3)  # classes absent from y_true do not count
    assert s["recall_neutral"] == pytest.approx(0.75) and s["recall_happy"] == pytest.approx(0.5)
    assert np.isnan(s["recall_sad"])
    pred = np.stack([y_pred, y_true])
    assert probes.balanced_accuracy(y_true, pred) == pytest.approx([s["ua"], 1.0])
    assert probes.balanced_accuracy(y_true, y_pred) == pytest.approx(balanced_accuracy_score(y_true, y_pred))


@pytest.mark.parametrize("dim", [12, 500])  # narrow, and wider than the training rows (span projection)
def test_linear_probe_matches_sklearn_logistic_regression(dim):
    clips, X = synthetic(dim=dim, signal=0.6 if dim == 12 else 0.15)
    y, speakers, train, test = fold_rows(clips)
    fit = probes.linear_probe([probes.rotate(X, train)], y, 8, train, test, probes.inner_splits(speakers, train))
    Z = probes.standardise(X, train).numpy()
    ref = LogisticRegression(C=fit.C[0], max_iter=5000, tol=1e-8).fit(Z[train], y[train])
    assert (ref.predict(Z[test]) == fit.pred[0]).mean() >= 0.95
    assert np.abs(np.exp(ref.predict_log_proba(Z[test])) - np.exp(fit.test_logp[0])).max() < 0.05
    assert fit.best_inner_ua[0] > 0.3  # well above chance (0.125) on this separable problem


def test_rotation_changes_no_prediction_of_the_penalised_model():
    rng = np.random.default_rng(1)
    clips, X = synthetic(n_per_actor=4, dim=6)
    wide = np.concatenate([X, rng.normal(size=(len(X), 300))], axis=1).astype(np.float32)  # dim > rows
    y, _, train, test = fold_rows(clips, [1, 2, 3, 4])
    Z, rotated = probes.standardise(wide, train), probes.rotate(wide, train)
    assert rotated.X.shape[1] <= len(train) < Z.shape[1]
    assert rotated.variance == pytest.approx(wide.shape[1], rel=1e-4)  # z-scored: one unit per column
    preds = []
    for X in (Z, torch.from_numpy(rotated.X)):
        W, b = probes.fit_softmax(X[train][None], solver.one_hot(y[train], 8)[None], torch.ones(1, len(train)),
                                  torch.tensor([[0.1]]), rel_tol=1e-7, max_iter=1000)
        preds.append(solver.log_proba(X[test][None], W, b)[0, 0].argmax(-1).numpy())
    assert (preds[0] == preds[1]).mean() >= 0.95


def test_targets_follow_the_label_categories():
    clips, _ = synthetic(n_per_actor=2)
    y, classes, speakers = probes.targets(clips)
    assert classes == list(labels.EMOTION_NAMES) and (speakers == clips.speaker).all()
    assert (np.array(classes)[y] == clips.label.astype(str)).all()


def grid(clips, sets, **kwargs):
    return probes.run_grid(clips, sets, **{"seeds": (0,), "log": lambda *_: None, **kwargs})


def test_grid_joins_by_key_not_row_order_and_is_deterministic():
    clips, X = synthetic()
    a = FeatureSet("audio/a", list(clips.key), X[:, :6])
    order = np.random.default_rng(0).permutation(len(clips))  # same data, rows shuffled
    b_sorted = FeatureSet("face/b", list(clips.key), X[:, 6:])
    b_shuffled = FeatureSet("face/b", list(clips.key[order]), X[order, 6:])
    r1, p1, *_ = grid(clips, [a, b_sorted], probes=("linear",))
    r2, *_ = grid(clips, [a, b_shuffled], probes=("linear",))
    pd.testing.assert_frame_equal(r1, r2)
    for fold, test_actors in folds.load_folds(clips).items():  # predictions only ever on the fold's test actors
        assert set(p1[p1.fold == fold].speaker) <= set(test_actors)
    fused = r1[(r1.n_members == 2) & (r1.fusion == "auto")].ua.mean()
    assert fused > r1[r1.features == "audio/a"].ua.mean()  # the second set carries extra signal


def test_grid_rows_carry_explicit_columns_and_feature_sets_name_the_members(monkeypatch):
    monkeypatch.setattr(probes.mlp, "MLP_STEPS", 10)  # the MLP's rows are what is checked here, not its fit
    clips, X = synthetic()
    sets = [FeatureSet("audio/a", list(clips.key), X[:, :6], weights="pretrained"),
            FeatureSet("face/b", list(clips.key), X[:, 6:], weights="third-party features"),
            FeatureSet("audio/r", list(clips.key), X[:, :4], weights="random control")]
    results, predictions, feature_sets, seconds, every_subset = grid(clips, sets[:2], extra=sets[2:])
    assert set(results_schema.FILES["probes.csv"].names) <= set(results.columns)
    assert {f"recall_{e}" for e in labels.EMOTION_NAMES} <= set(results.columns)
    fused = results[results.n_members == 2]
    assert set(fused.fusion) == {"select", "early", "late", "stack", "auto"}
    assert (fused.modalities == "audio+face").all() and (fused.weights == "pretrained+third-party features").all()
    assert set(fused[fused.fusion == "auto"].chosen_method) <= set(probes.METHODS)
    assert set(fused[fused.fusion == "select"].chosen_set) <= {"audio/a", "face/b"}
    best = results[results.features == probes.BEST_SINGLE]
    assert len(best) == 6 and set(best.chosen_set) <= {"audio/a", "face/b"}
    members = feature_sets[feature_sets.features.isin(fused.features)]
    assert sorted(members.store) == ["audio/a", "face/b"] and set(members.role) == {"base"}
    assert feature_sets.set_index("set").loc["audio/r", "role"] == "random control"
    assert "audio/r" not in set(members.store)  # random controls are probed alone, never fused
    assert set(results[results.features == "audio/r"].probe) == {"linear", "mlp"}
    headline = results[results.candidate.isin(["all", "inner-best"])]
    assert len(predictions.groupby(["features", "probe", "fusion", "seed", "fold"])) == len(headline)
    assert set(seconds) >= {"single sets, linear", "fusions, early", "fusions, late and stack", "MLP",
                            probes.grid.EVERY_SUBSET_PART}
    assert set(every_subset.method) == set(probes.shapley.EVERY_SUBSET_METHODS)


def test_every_subset_shapley_equals_the_grids_own_fusions_of_every_subset():
    """select and late fusion scored on the power set (no fit of their own) give exactly the values and
    Shapley values of the grid's fitted fusion rows, when the grid itself fits every subset."""
    clips, X = synthetic(dim=16)
    sets = [FeatureSet(f"{m}/s{i}", list(clips.key), X[:, 4 * i:4 * i + 4]) for i, m in
            enumerate(["audio", "audio", "face", "video"])]
    results, _, feature_sets, _, every = grid(clips, sets, probes=("linear",))
    metrics = probes.shapley.metrics(list(labels.EMOTION_NAMES))
    keys = ["level", "player", "metric", "class", "method", "fold"]
    for method in probes.shapley.EVERY_SUBSET_METHODS:
        fitted = probes.shapley_table(results, feature_sets, list(labels.EMOTION_NAMES), method).set_index(keys).shapley
        power = every[every.method == method].set_index(keys).shapley
        assert len(power) == len(fitted) == 6 * (4 + 3) * len(metrics)  # folds x (sets + modalities) x metrics
        np.testing.assert_allclose(power.loc[fitted.index], fitted, atol=1e-9)
    assert set(every.estimator) == {probes.shapley.EVERY_SUBSET}
    # and still every subset when the fitted fusions are sampled (max_exact below the number of sets)
    *_, sampled_grid_every = grid(clips, sets, probes=("linear",), max_exact=2, n_permutations=2)
    pd.testing.assert_frame_equal(sampled_grid_every, every)
    # exact_every is the dict-based exact estimator, vectorised
    values = np.random.default_rng(0).normal(size=2 ** 4)
    as_dict = {frozenset(i for i in range(4) if m >> i & 1): v for m, v in enumerate(values)}
    np.testing.assert_allclose(probes.shapley.exact_every(values), list(probes.shapley.exact(as_dict, range(4)).values()))


def test_layered_sets_get_a_probe_per_layer_and_an_inner_cv_choice():
    clips, X = synthetic()
    noise = np.random.default_rng(2).normal(size=X.shape).astype(np.float32)
    layered = FeatureSet("audio/l", list(clips.key), np.stack([noise, X], axis=1))  # layer 1 informative
    results, *_ = grid(clips, [layered], probes=("linear",))
    per_layer = results[results.candidate == "layer"].groupby("layer").ua.mean()
    assert list(per_layer.index) == [0, 1] and per_layer[1] > per_layer[0] + 0.2
    chosen = results[(results.candidate == "inner-best") & (results.features == "audio/l")]
    assert len(chosen) == 6 and (chosen.chosen_candidate == "layer").all() and (chosen.chosen_layer == 1).all()
    assert results[results.candidate != "layer"].layer.isna().all()  # an index only where a row is one layer
    concat = results[results.candidate == probes.CONCAT]  # the layers concatenated: one more candidate per fold
    assert len(concat) == 6 and set(concat.features) == {"audio/l"}


def test_concatenated_layers_are_chosen_when_each_layer_holds_part_of_the_signal():
    """Layer 0 tells an emotion's parity, layer 1 which pair of emotions: only together do they name it."""
    clips, _ = synthetic()
    y, speakers, train, test = fold_rows(clips)
    rng = np.random.default_rng(3)
    parity, pair = rng.normal(size=(2, 12)) * 2, rng.normal(size=(4, 12)) * 2
    X = (np.stack([parity[y % 2], pair[y // 2]], axis=1) + rng.normal(size=(len(y), 2, 12))).astype(np.float32)
    blocks, names = probes.layer_blocks(X, train)
    fit = probes.linear_probe(blocks, y, 8, train, test, probes.inner_splits(speakers, train))
    assert names == [0, 1, probes.CONCAT] and names[fit.best_layer] == probes.CONCAT
    ua = probes.balanced_accuracy(y[test], fit.pred)
    assert ua[2] > max(ua[:2]) + 0.3  # one layer alone names at most a pair (UA near 0.5)
    assert probes.layer_blocks(X[:, 0], train)[1] == ["all"]  # a set without layers is one block


def test_a_much_wider_candidate_leaves_the_other_candidates_fits_unchanged():
    """Blocks are batched by width (a batch is padded to its widest), so adding the wide concatenation
    of a set's layers changes nothing about each layer's own probe."""
    clips, X = synthetic(dim=12)
    y, speakers, train, test = fold_rows(clips)
    rng = np.random.default_rng(4)
    narrow = [probes.rotate(X, train), probes.rotate(X + rng.normal(size=X.shape).astype(np.float32), train)]
    wide = probes.rotate(rng.normal(size=(len(X), 600)).astype(np.float32), train)
    split = probes.inner_splits(speakers, train)
    alone = probes.linear_probe(narrow, y, 8, train, test, split)
    beside = probes.linear_probe([narrow[0], wide, narrow[1]], y, 8, train, test, split)
    for field in ("inner_ua", "C", "oof_logp", "test_logp"):
        np.testing.assert_array_equal(getattr(beside, field)[[0, 2]], getattr(alone, field))


def test_partial_coverage_uses_the_intersection_and_skips_untrainable_folds():
    clips, X = synthetic()
    few = clips[clips.speaker.isin([1, 4])]  # like the 4 real videos: two actors only
    video = FeatureSet("video/v", list(few.key), X[few.index])
    audio = FeatureSet("audio/a", list(clips.key), X)
    logged = []
    results, *_ = grid(clips, [audio], extra=[video], log=logged.append, probes=("linear",))
    assert not results.features.str.contains("video").any()
    assert any("skipped" in line for line in logged)
    assert results[results.features == "audio/a"].fold.nunique() == 6


def test_leave_one_speaker_out_folds_are_disjoint():
    clips = pd.DataFrame({"speaker": np.repeat(np.arange(1, 25), 3)})
    for fold, test_speakers in folds.load_folds(clips, "loso").items():
        train, test = folds.split(clips.speaker.to_numpy(), test_speakers)
        assert not set(clips.speaker[train]) & set(clips.speaker[test]) and len(test) == 3


@pytest.mark.skipif(not SHARED_OPENFACE_AU.exists(), reason="needs the developers' shared OpenFace AU means")
def test_real_action_units_probe_agrees_with_sklearn():
    table = pd.read_csv(SHARED_OPENFACE_AU)
    X = table.filter(like="_mean").to_numpy(np.float32)
    emotion, actor = table.clip_id.str[6:8].astype(int), table.clip_id.str[-2:].astype(int)
    y, speakers = emotion.to_numpy() - 1, actor.to_numpy()
    train, test = folds.split(speakers, EMOBOX_FOLD_1)
    fit = probes.linear_probe([probes.rotate(X, train)], y, 8, train, test, probes.inner_splits(speakers, train))
    Z = probes.standardise(X, train).numpy()
    ref = LogisticRegression(C=fit.C[0], max_iter=5000, tol=1e-8).fit(Z[train], y[train])
    assert (ref.predict(Z[test]) == fit.pred[0]).mean() >= 0.95
    assert balanced_accuracy_score(y[test], fit.pred[0]) > 0.4  # committed AU probe: ~55 % UA


def test_an_eigendecomposition_that_fails_in_float32_is_done_in_float64(monkeypatch):
    """LAPACK's float32 eigh can fail to converge on many repeated eigenvalues (a stacker's inputs when
    classes are absent: constant columns); solver.eigh then decomposes in float64 instead of stopping."""
    import torch

    from emoprobe.probes import solver
    a = torch.diag(torch.tensor([0.0, 0.0, 0.0, 2.0, 5.0]))
    original = torch.linalg.eigh

    def fails_in_float32(m):
        if m.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge")
        return original(m)
    monkeypatch.setattr(torch.linalg, "eigh", fails_in_float32)
    e, vectors = solver.eigh(a)
    assert e.dtype == vectors.dtype == torch.float32
    assert torch.allclose(vectors @ torch.diag(e) @ vectors.T, a, atol=1e-6)
    with pytest.raises(torch.linalg.LinAlgError):  # float64 failing too is not hidden
        monkeypatch.setattr(torch.linalg, "eigh", lambda m: (_ for _ in ()).throw(torch.linalg.LinAlgError("no")))
        solver.eigh(a)
