"""Shapley values of feature sets and of modalities, from the grid's fusion results.

A coalition's value in a fold is the test score (UA, or one class's recall) of the fusion of its
members in that fold: the single set's probe for one member, the fusion (by default the inner-CV
`auto` method) for more; the empty coalition is worth chance, 1 / number of classes (a uniform
random guess's expected UA and recall). For modalities the players are the modalities and a
coalition's value is that of the fusion of ALL base sets of those modalities. Values come per fold,
so the intervals are over folds (report.stats).

Up to MAX_EXACT_PLAYERS base sets the grid fits every subset and the values are exact. Past that,
2^k subsets are too many: the grid fits only the prefixes of N_PERMUTATIONS random player orders
(`permutations`), and every pair, and the values are permutation-sampled, with their sampling
standard error.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .linear import HEADLINE_LAYERS

MAX_EXACT_PLAYERS = 10  # 2^10 - 1 = 1023 coalitions; more base sets: permutation sampling
N_PERMUTATIONS = 16  # sampled player orders past MAX_EXACT_PLAYERS (each adds up to one coalition per size)
SEED = 0


def permutations(n_players: int, n: int = N_PERMUTATIONS, seed: int = SEED) -> np.ndarray:
    """(n, n_players) random player orders; the grid and the estimator draw the same ones."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n_players) for _ in range(n)])


def coalitions(n_players: int, required: list[tuple[int, ...]] = (), max_exact: int = MAX_EXACT_PLAYERS,
               n_permutations: int = N_PERMUTATIONS, seed: int = SEED) -> list[tuple[int, ...]]:
    """The non-empty coalitions (sorted player indices) that the grid must fit: every one up to
    max_exact players; else every prefix of the sampled orders, plus `required` (the modality
    coalitions), every single player and every pair (the fusions a reader compares most)."""
    if n_players <= max_exact:
        return [c for k in range(1, n_players + 1) for c in itertools.combinations(range(n_players), k)]
    prefixes = {tuple(sorted(order[:k])) for order in permutations(n_players, n_permutations, seed)
                for k in range(1, n_players + 1)}
    prefixes |= {tuple(sorted(c)) for c in required} | {(i,) for i in range(n_players)}
    prefixes |= set(itertools.combinations(range(n_players), 2))
    return sorted(prefixes, key=lambda c: (len(c), c))


def exact(value: dict[frozenset, float], players: list) -> dict:
    """Exact Shapley values from the value of every coalition (frozensets of players, the empty
    one included)."""
    k = len(players)
    out = {}
    for p in players:
        others = [q for q in players if q != p]
        total = 0.0
        for size in range(k):
            weight = math.factorial(size) * math.factorial(k - size - 1) / math.factorial(k)
            for coalition in itertools.combinations(others, size):
                c = frozenset(coalition)
                total += weight * (value[c | {p}] - value[c])
        out[p] = total
    return out


def sampled(value: dict[frozenset, float], players: list, orders: np.ndarray) -> tuple[dict, dict]:
    """Permutation-sampled Shapley values and their standard errors (over the sampled orders)."""
    gains = {p: [] for p in players}
    for order in orders:
        coalition = frozenset()
        for i in order:
            gains[players[i]].append(value[coalition | {players[i]}] - value[coalition])
            coalition = coalition | {players[i]}
    return ({p: float(np.mean(g)) for p, g in gains.items()},
            {p: float(np.std(g, ddof=1) / np.sqrt(len(g))) for p, g in gains.items()})


def coalition_values(results: pd.DataFrame, feature_sets: pd.DataFrame, metric: str, method: str) -> pd.DataFrame:
    """Per fold and features: the coalition (frozenset of member stores) and its value. Rows: the
    linear probe's headline rows, single sets' and `method` fusions'."""
    members = feature_sets.groupby("features").store.agg(frozenset)
    rows = results[(results.probe == "linear") & results.layer.astype(str).isin(HEADLINE_LAYERS)
                   & (((results.n_members == 1) & (results.fusion == "none")) | (results.fusion == method))]
    rows = rows[rows.features.isin(members.index)]
    return pd.DataFrame({"fold": rows.fold.to_numpy(), "coalition": rows.features.map(members).to_numpy(),
                         "value": rows[metric].to_numpy()})


def shapley_table(results: pd.DataFrame, feature_sets: pd.DataFrame, metrics: list[str], method: str = "auto",
                  n_classes: int | None = None, max_exact: int = MAX_EXACT_PLAYERS,
                  n_permutations: int = N_PERMUTATIONS, seed: int = SEED) -> pd.DataFrame:
    """Shapley values per fold: one row per level (feature set / modality) x player x metric x fold,
    with the estimator and its sampling standard error (0 when exact).

    results, feature_sets: the grid's tables (probes.csv and feature_sets.csv as data frames).
    """
    base = feature_sets[feature_sets.role == "base"].drop_duplicates("store")
    stores = sorted(base.store)
    modality_of = dict(zip(base.store, base.modality))
    modalities = sorted(set(modality_of.values()))
    chance = 1 / (n_classes or results.filter(like="recall_").shape[1])
    out = []
    if "normalisation" in results and results.normalisation.nunique() > 1:  # each normalisation on its own
        return pd.concat([shapley_table(part, feature_sets, metrics, method, n_classes, max_exact, n_permutations,
                                        seed).assign(normalisation=n)
                          for n, part in results.groupby("normalisation", sort=False)], ignore_index=True)
    normalisation = results.normalisation.iloc[0] if "normalisation" in results and len(results) else "global"
    for metric in metrics:
        values = coalition_values(results, feature_sets, metric, method)
        for fold, part in values.groupby("fold"):
            value = {frozenset(): chance, **dict(zip(part.coalition, part.value))}
            if len(stores) <= max_exact:
                phi, se, estimator = exact(value, stores), dict.fromkeys(stores, 0.0), "exact"
            else:
                phi, se = sampled(value, stores, permutations(len(stores), n_permutations, seed))
                estimator = f"{n_permutations} permutations"
            out += [{"level": "feature set", "player": p, "metric": metric, "method": method, "fold": fold,
                     "shapley": phi[p], "sampling_se": se[p], "estimator": estimator} for p in stores]
            # modalities: a coalition of modalities is worth the fusion of all their base sets
            by_modality = {frozenset(ms): value[frozenset(s for s in stores if modality_of[s] in ms)]
                           for k in range(len(modalities) + 1) for ms in itertools.combinations(modalities, k)}
            phi = exact(by_modality, modalities)
            out += [{"level": "modality", "player": m, "metric": metric, "method": method, "fold": fold,
                     "shapley": phi[m], "sampling_se": 0.0, "estimator": "exact"} for m in modalities]
    return pd.DataFrame(out).assign(normalisation=normalisation)
