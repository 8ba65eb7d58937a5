"""Fusion that never loses: noise members cost (almost) nothing, no method looks at test rows; and
the speaker bootstrap that compares a fusion with its members."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score
from test_probes import fold_rows, synthetic

from emoprobe import probes
from emoprobe.probes import FeatureSet, fusion
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


def test_early_fusion_gives_every_member_the_same_total_variance():
    clips, X = synthetic(dim=40)
    _, _, train, _ = fold_rows(clips)
    wide = np.concatenate([X] * 50, axis=1)  # 2000 columns
    blocks = [probes.rotate(X[:, :5], train), probes.rotate(wide, train)]
    fused = fusion.early_block(blocks)
    per_member = [fused.X[train][:, :blocks[0].X.shape[1]], fused.X[train][:, blocks[0].X.shape[1]:]]
    assert [m.var(0).sum() for m in per_member] == pytest.approx([1.0, 1.0], rel=1e-3)


def members_of(clips, X, train, test, split):
    """Two tuned member probes (a layer each) and their rotated blocks, as the grid builds them."""
    y = clips.label.cat.codes.to_numpy()
    out = []
    for part in (X[:, :6], X[:, 6:]):
        block = probes.rotate(part, train)
        fit = probes.linear_probe([block], y, 8, train, test, split)
        out.append((block, fusion.System.from_linear(fit)))
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
                      "early": fusion.early([b for b, _ in members], y, 8, train, test, split),
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
             "features": "x", "probe": "linear", "fusion": "none", "layer": "all"}
    good = pd.DataFrame({**frame, "y_pred": np.where(rng.random(480) < 0.8, truth, rng.integers(0, 4, 480))})
    bad = pd.DataFrame({**frame, "y_pred": rng.integers(0, 4, 480), "features": "y"})
    table = stats.bootstrap_intervals(pd.concat([good, bad]), n_boot=500).set_index("features")
    assert table.loc["x", "ua_pooled"] == pytest.approx(balanced_accuracy_score(truth, good.y_pred))
    assert table.loc["x", "ua_boot_low"] < table.loc["x", "ua_pooled"] < table.loc["x", "ua_boot_high"]
    diff = stats.paired_bootstrap(good, bad, n_boot=500)
    assert diff["ci_low"] > 0 and diff["p"] < 0.01 and diff["n_speakers"] == 24
    assert stats.paired_bootstrap(good, good, n_boot=200)["diff"] == 0
