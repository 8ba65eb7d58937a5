"""Shapley values: exact on known games, sampled within their standard error, and from grid tables."""

import itertools

import numpy as np
import pandas as pd
import pytest

from emoprobe.probes import shapley
from emoprobe.report import stats


def game(players, weights, synergy=0.0):
    """Additive values plus a bonus when the first two players are both in."""
    value = {}
    for k in range(len(players) + 1):
        for c in itertools.combinations(players, k):
            value[frozenset(c)] = sum(weights[p] for p in c) + synergy * ({players[0], players[1]} <= set(c))
    return value


def test_exact_shapley_of_an_additive_game_with_a_shared_synergy():
    players = ["a", "b", "c"]
    phi = shapley.exact(game(players, {"a": 0.3, "b": 0.1, "c": 0.0}, synergy=0.2), players)
    assert phi == pytest.approx({"a": 0.4, "b": 0.2, "c": 0.0})  # the synergy is split equally


def test_sampled_shapley_is_close_to_exact_within_its_standard_error():
    players = list("abcdefgh")
    value = game(players, dict(zip(players, np.linspace(0, 0.2, 8))), synergy=0.3)
    exact = shapley.exact(value, players)
    estimate, se = shapley.sampled(value, players, shapley.permutations(len(players), 400))
    for p in players:
        assert abs(estimate[p] - exact[p]) <= 4 * se[p] + 1e-12
    assert sum(estimate.values()) == pytest.approx(value[frozenset(players)])  # efficiency holds per order


def test_coalitions_are_the_power_set_up_to_the_limit_then_permutation_prefixes():
    assert len(shapley.coalitions(4, max_exact=4)) == 15
    sampled = shapley.coalitions(12, required=[(0, 1, 2)], max_exact=10, n_permutations=8)
    assert len(sampled) < 2 ** 12 - 1
    assert (0, 1, 2) in sampled and tuple(range(12)) in sampled and all((i,) in sampled for i in range(12))
    for order in shapley.permutations(12, 8):  # every prefix the estimator will ask for is fitted
        assert all(tuple(sorted(order[:k])) in sampled for k in range(1, 13))


def tables(values_by_fold):
    """probes.csv- and feature_sets.csv-shaped frames for three base sets (two audio, one face)."""
    sets = {"audio/a": "audio", "audio/b": "audio", "face/f": "face"}
    rows, members = [], []
    for k in range(1, 4):
        for c in itertools.combinations(sets, k):
            label = " + ".join(c)
            members += [{"features": label, "n_members": k, "set": s, "store": s, "modality": sets[s], "role": "base"}
                        for s in c]
            for fold, value in values_by_fold.items():
                for fusion in (["none"] if k == 1 else ["early", "auto"]):
                    rows.append({"features": label, "n_members": k, "probe": "linear", "candidate": "all", "fusion": fusion,
                                 "fold": fold, "ua": value[frozenset(c)] - (0.05 if fusion == "early" else 0),
                                 "recall_x": 0.5, "recall_y": 0.5})
    return pd.DataFrame(rows), pd.DataFrame(members)


def test_shapley_table_from_grid_results_is_efficient_per_fold_for_sets_and_modalities():
    players = ["audio/a", "audio/b", "face/f"]
    by_fold = {f"fold_{i}": game(players, {"audio/a": 0.2 + 0.01 * i, "audio/b": 0.05, "face/f": 0.1}, synergy=0.02)
               for i in range(1, 4)}
    for v in by_fold.values():  # the grid's values include chance for the empty coalition
        v.update({c: x + 0.5 for c, x in v.items()})
    results, feature_sets = tables(by_fold)
    table = shapley.shapley_table(results, feature_sets, [], "auto", n_classes=2)  # no class: UA only
    for fold, part in table.groupby("fold"):
        grand = by_fold[fold][frozenset(players)]
        for level in ("feature set", "modality"):
            assert part[part.level == level].shapley.sum() == pytest.approx(grand - 0.5)
    modality = table[(table.level == "modality") & (table.fold == "fold_1")].set_index("player").shapley
    assert modality["face"] == pytest.approx(0.1)  # the synergy is within audio: face just adds its own
    summary = stats.shapley_summary(table)
    assert {"shapley_mean", "shapley_std", "ci_low", "ci_high", "n_folds", "sampling_se"} <= set(summary.columns)
    a = summary[(summary.level == "feature set") & (summary.player == "audio/a")].iloc[0]
    assert a.shapley_mean == pytest.approx(0.22 + 0.01) and a.ci_low < a.shapley_mean < a.ci_high
