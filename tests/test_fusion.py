"""Fusion that never loses: noise members cost (almost) nothing, no method looks at test rows; and
the speaker bootstrap that compares a fusion with its members."""

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import balanced_accuracy_score
from test_probes import fold_rows, synthetic

from emoprobe import probes
from emoprobe.probes import FeatureSet, Rotated, fusion
from emoprobe.probes.solver import eigen_coordinates, gram_coordinates
from emoprobe.report import stats


def auto_vs_alone(clips, informative, noise):
    results, *_ = probes.run_grid(clips, [informative, noise], seeds=(0,), probes=("linear",), log=lambda *_: None)
    alone = results[results.features == informative.name].ua.mean()
    fused = results[(results.n_members == 2) & (results.fusion == "auto")]
    return alone, fused.ua.mean(), results


@pytest.mark.parametrize("width", [30, 6000])
def test_a_pure_noise_member_costs_the_auto_fusion_at_most_one_point(width):
    clips, X = synthetic(dim=30, signal=0.5)
    rng = np.random.default_rng(width)
    informative = FeatureSet("audio/informative", list(clips.key), X)
    noise = FeatureSet("face/noise", list(clips.key), rng.normal(size=(len(clips), width)).astype(np.float32))
    alone, fused, results = auto_vs_alone(clips, informative, noise)
    assert alone > 0.4  # a real signal to lose
    assert fused >= alone - 0.01


def test_early_fusion_scalings_share_the_total_variance_and_blocks_share_it_equally():
    clips, X = synthetic(dim=40)
    _, _, train, _ = fold_rows(clips)
    wide = np.concatenate([X] * 50, axis=1)  # 2000 columns
    members = [probes.rotate(X[:, :5], train), probes.rotate(wide, train)]
    total = sum(m.variance for m in members)
    blocks, columns = (fusion.scaling_weights(members, exponent) for exponent in (1.0, 0.0))
    variances = np.array([m.variance for m in members])
    assert (blocks * variances).sum() == pytest.approx(total, rel=1e-6)
    assert blocks * variances == pytest.approx([total / 2] * 2, rel=1e-6)  # equal shares
    assert columns == pytest.approx([1, 1])  # z-scored columns as they are
    assert fusion.EARLY_SCALINGS["blocks"] == 1.0


def test_coordinates_from_a_gram_matrix_are_the_features_coordinates_up_to_a_rotation():
    """Early fusion never forms a wide fusion's features: its coordinates come from the members'
    summed Gram matrices. They must give the same Gram matrix and the same probe as the features'."""
    clips, X = synthetic(dim=40)
    y, speakers, train, test = fold_rows(clips)
    split = probes.inner_splits(speakers, train)
    features = torch.from_numpy(probes.standardise(X, train).numpy())
    direct, _, _ = eigen_coordinates(features, train)
    from_gram = gram_coordinates(features @ features[train].T, train)
    assert from_gram.shape == direct.shape
    kernel = direct @ direct[train].T
    torch.testing.assert_close(from_gram @ from_gram[train].T, kernel, rtol=1e-3, atol=1e-3 * kernel.abs().max().item())
    fits = [probes.linear_probe([Rotated(c.numpy(), 40.0)], y, 8, train, test, split) for c in (direct, from_gram)]
    assert fits[0].C == fits[1].C
    assert (fits[0].pred == fits[1].pred).mean() > 0.98


def test_early_fusion_chooses_its_scaling_on_training_actors(monkeypatch):
    monkeypatch.setattr(fusion, "EARLY_SCALINGS", {"columns": 0.0, "blocks": 1.0})
    clips, X = synthetic(dim=30, signal=0.5)
    y, speakers, train, test = fold_rows(clips)
    split = probes.inner_splits(speakers, train)
    wide_noise = np.random.default_rng(3).normal(size=(len(X), 3 * len(train)))
    members = [probes.rotate(X, train), probes.rotate(wide_noise, train)]
    system, block = fusion.early(members, y, 8, train, test, split)
    assert system.scaling == "blocks"  # columns would give the noise 99 % of the variance
    assert len(block.X) == len(X) and block.X.shape[1] <= len(train)  # the fusion's coordinates, every row
    assert balanced_accuracy_score(y[test], system.pred) > 0.4


def test_nested_stacking_inputs_of_a_held_out_split_never_saw_its_labels():
    """Relabelling the training actors of inner split 0 leaves every input the stacker's inner fit
    that holds out split 0 trains and is scored on unchanged (one C: its choice would see them)."""
    clips, X = synthetic()
    y, speakers, train, test = fold_rows(clips)
    split = probes.inner_splits(speakers, train)
    relabelled = y.copy()
    held = train[split == 0]
    relabelled[held] = np.random.default_rng(2).permutation(y[held])
    inputs = []
    for labels in (y, relabelled):
        systems = []
        for part in (X[:, :6], X[:, 6:]):
            fit = probes.linear_probe([probes.rotate(part, train)], labels, 8, train, test, split, np.array([1.0]),
                                      nested=True)
            systems.append(fusion.System.from_linear(fit, train=train))
        inputs.append(fusion.nested_inputs(systems, split))
    np.testing.assert_allclose(inputs[0][0], inputs[1][0], atol=1e-4)
    assert not np.allclose(inputs[0][1], inputs[1][1], atol=1e-3)  # the other held-out splits' inputs did see them


def members_of(clips, X, train, test, split):
    """Two tuned member probes (a layer each) and their rotated blocks, as the grid builds them."""
    y = clips.label.cat.codes.to_numpy()
    out = []
    for part in (X[:, :6], X[:, 6:]):
        block = probes.rotate(part, train)
        fit = probes.linear_probe([block], y, 8, train, test, split, nested=True)
        out.append((block, fusion.System.from_linear(fit, train=train)))
    return y, out


def test_late_stacked_and_auto_fusion_use_no_test_rows():
    """Perturbing half of the test rows changes nothing that was chosen (C, inner UA, method) and
    no prediction on the other half: the fitted models, weights included, never saw a test row."""
    clips, X = synthetic()
    y, speakers, train, test = fold_rows(clips)
    split = probes.inner_splits(speakers, train)
    perturbed = X.copy()
    changed = test[::2]
    perturbed[changed] = np.random.default_rng(5).normal(size=(len(changed), X.shape[1])) * 10
    untouched = np.isin(test, test[1::2])
    runs = []
    for features in (X, perturbed):
        y, members = members_of(clips, features, train, test, split)
        systems = [s for _, s in members]
        candidates = {"select": fusion.select(systems),
                      "early": fusion.early([b for b, _ in members], y, 8, train, test, split)[0],
                      "late": fusion.late(systems, y[train], split),
                      "stack": fusion.stack([systems], y, 8, train, test, split)[0]}
        runs.append({**candidates, "auto": fusion.auto(candidates)})
    for method, system in runs[0].items():
        other = runs[1][method]
        assert (system.inner_ua, system.method, system.member) == (other.inner_ua, other.method, other.member), method
        assert system.C == other.C or (np.isnan(system.C) and np.isnan(other.C)), method
        np.testing.assert_allclose(system.oof_logp, other.oof_logp, atol=1e-5, err_msg=method)
        np.testing.assert_allclose(system.test_logp[untouched], other.test_logp[untouched], atol=1e-4, err_msg=method)
        assert not np.allclose(system.test_logp[~untouched], other.test_logp[~untouched], atol=1e-3)


def test_auto_takes_the_method_with_the_best_inner_score():
    def system(inner):
        return fusion.System(inner, np.zeros((2, 3)), np.zeros((1, 3)))

    scores = {"select": 0.4, "early": 0.5, "late": 0.7, "stack": 0.6}
    assert fusion.auto({m: system(v) for m, v in scores.items()}).method == "late"
    assert fusion.auto({m: system(v) for m, v in {**scores, "early": 0.7}.items()}).method == "early"  # first of ties
    assert fusion.select([system(0.4), system(0.6), system(0.6)]).member == 1


def test_speaker_bootstrap_pools_ua_and_pairs_two_systems_on_the_same_speakers():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 4, 480)
    frame = {"key": [f"k{i}" for i in range(480)], "speaker": np.repeat(np.arange(24), 20), "y_true": truth,
             "features": "x", "normalisation": "global", "probe": "linear", "fusion": "none", "candidate": "all"}
    good = pd.DataFrame({**frame, "y_pred": np.where(rng.random(480) < 0.8, truth, rng.integers(0, 4, 480))})
    bad = pd.DataFrame({**frame, "y_pred": rng.integers(0, 4, 480), "features": "y"})
    table = stats.bootstrap_intervals(pd.concat([good, bad]), n_boot=500).set_index("features")
    assert table.loc["x", "ua_pooled"] == pytest.approx(balanced_accuracy_score(truth, good.y_pred))
    assert table.loc["x", "ua_boot_low"] < table.loc["x", "ua_pooled"] < table.loc["x", "ua_boot_high"]
    diff = stats.paired_bootstrap(good, bad, n_boot=500)
    assert diff["ci_low"] > 0 and diff["p"] < 0.01 and diff["n_speakers"] == 24
    assert stats.paired_bootstrap(good, good, n_boot=200)["diff"] == 0


def test_a_new_fusion_method_is_one_function_and_one_registration():
    """A toy method (the members' log-probabilities weighted by their inner-CV UA) registered once
    gets rows in the grid, may be chosen by auto, and is an allowed value of the results files."""
    from emoprobe import results as results_schema

    @fusion.fusion_method("ua-weighted")
    def ua_weighted(f: fusion.Fusions) -> list[fusion.System]:
        out = []
        for systems in f.systems:
            w = np.array([s.inner_ua for s in systems]) / sum(s.inner_ua for s in systems)
            oof = sum(wi * s.oof_logp for wi, s in zip(w, systems))
            out.append(fusion.System(float(probes.linear.oof_ua(f.y[f.train], oof, f.split)), oof,
                                     sum(wi * s.test_logp for wi, s in zip(w, systems))))
        return out

    try:
        with pytest.raises(ValueError, match="already registered"):
            fusion.fusion_method("late")(ua_weighted)
        clips, X = synthetic(dim=12)
        sets = [FeatureSet("audio/a", list(clips.key), X[:, :6], weights="pretrained"),
                FeatureSet("face/b", list(clips.key), X[:, 6:], weights="pretrained")]
        results, *_ = probes.run_grid(clips, sets, seeds=(0,), probes=("linear",), log=lambda *_: None)
        fused = results[results.n_members == 2]
        assert set(fused.fusion) == {"select", "early", "late", "stack", "ua-weighted", "auto"}
        toy = fused[fused.fusion == "ua-weighted"]
        assert len(toy) == 6 and toy.inner_ua.notna().all()
        auto = fused[fused.fusion == "auto"].set_index("fold")
        best = fused[fused.fusion != "auto"].loc[lambda d: d.groupby("fold").inner_ua.idxmax()].set_index("fold")
        assert (auto.chosen_method == best.fusion).all()  # auto compares the new method like any other
        table, recalls = results_schema.split_recalls(results, [c.name for c in results_schema.ROW_KEYS])
        assert not results_schema.problems(table, "probes.csv") and not results_schema.problems(recalls, "recalls.parquet")
    finally:
        del fusion.METHODS["ua-weighted"]
