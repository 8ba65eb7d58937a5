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

The fusions that need no fit of their own (EVERY_SUBSET_METHODS: select and late, which reuse each
member's own probe) are scored on EVERY subset of up to EVERY_SUBSET_MAX_PLAYERS base sets
(`every_subset`), so their Shapley values are exact however many base sets are sampled for the
others: 4095 coalitions of 12 base sets take seconds, where one early fusion takes about a second.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from . import solver
from .linear import HEADLINE_CANDIDATES

RECALL = "recall_"  # + a class name: the results column of that class's recall (grid.scores writes them)

MAX_EXACT_PLAYERS = 10  # 2^10 - 1 = 1023 coalitions; more base sets: permutation sampling
N_PERMUTATIONS = 16  # sampled player orders past MAX_EXACT_PLAYERS (each adds up to one coalition per size)
SEED = 0
EVERY_SUBSET_METHODS = ("select", "late")  # scored on the power set from the members' own probabilities
EVERY_SUBSET_MAX_PLAYERS = 16  # 65535 coalitions; more base sets: those methods are sampled like the others
EVERY_SUBSET = "exact, every subset"  # the estimator column of those values


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


def metrics(classes: list[str]) -> list[tuple[str, str | None, str]]:
    """What Shapley values are computed of: (metric, class, the results column holding it), UA first,
    then each class's recall (the class a value is of stays in data, its own column)."""
    return [("ua", None, "ua"), *(("recall", c, f"{RECALL}{c}") for c in classes)]


def coalition_values(results: pd.DataFrame, feature_sets: pd.DataFrame, metric: str, method: str) -> pd.DataFrame:
    """Per fold and features: the coalition (frozenset of member stores) and its value (the results
    column `metric`). Rows: the linear probe's headline rows, single sets' and `method` fusions'."""
    members = feature_sets.groupby("features").store.agg(frozenset)
    rows = results[(results.probe == "linear") & results.candidate.isin(HEADLINE_CANDIDATES)
                   & (((results.n_members == 1) & (results.fusion == "none")) | (results.fusion == method))]
    rows = rows[rows.features.isin(members.index)]
    return pd.DataFrame({"fold": rows.fold.to_numpy(), "coalition": rows.features.map(members).to_numpy(),
                         "value": rows[metric].to_numpy()})


def shapley_table(results: pd.DataFrame, feature_sets: pd.DataFrame, classes: list[str], method: str = "auto",
                  n_classes: int | None = None, max_exact: int = MAX_EXACT_PLAYERS,
                  n_permutations: int = N_PERMUTATIONS, seed: int = SEED) -> pd.DataFrame:
    """Shapley values per fold: one row per level (feature set / modality) x player x metric (UA, or a
    class's recall: `metric`, `class`) x fold, with the estimator and its sampling standard error (0 when exact).

    results, feature_sets: the grid's tables (probes.csv and feature_sets.csv as data frames).
    """
    base = feature_sets[feature_sets.role == "base"].drop_duplicates("store")
    stores = sorted(base.store)
    modality_of = dict(zip(base.store, base.modality))
    modalities = sorted(set(modality_of.values()))
    chance = 1 / (n_classes or len(classes))
    out = []
    if "normalisation" in results and results.normalisation.nunique() > 1:  # each normalisation on its own
        return pd.concat([shapley_table(part, feature_sets, classes, method, n_classes, max_exact, n_permutations,
                                        seed).assign(normalisation=n)
                          for n, part in results.groupby("normalisation", sort=False)], ignore_index=True)
    normalisation = results.normalisation.iloc[0] if "normalisation" in results and len(results) else "global"
    for metric, of_class, column in metrics(classes):
        values = coalition_values(results, feature_sets, column, method)
        for fold, part in values.groupby("fold"):
            value = {frozenset(): chance, **dict(zip(part.coalition, part.value))}
            if len(stores) <= max_exact:
                phi, se, estimator = exact(value, stores), dict.fromkeys(stores, 0.0), "exact"
            else:
                phi, se = sampled(value, stores, permutations(len(stores), n_permutations, seed))
                estimator = f"{n_permutations} permutations"
            out += [{"level": "feature set", "player": p, "metric": metric, "class": of_class, "method": method, "fold": fold,
                     "shapley": phi[p], "sampling_se": se[p], "estimator": estimator} for p in stores]
            # modalities: a coalition of modalities is worth the fusion of all their base sets
            by_modality = {frozenset(ms): value[frozenset(s for s in stores if modality_of[s] in ms)]
                           for k in range(len(modalities) + 1) for ms in itertools.combinations(modalities, k)}
            phi = exact(by_modality, modalities)
            out += [{"level": "modality", "player": m, "metric": metric, "class": of_class, "method": method, "fold": fold,
                     "shapley": phi[m], "sampling_se": 0.0, "estimator": "exact"} for m in modalities]
    return pd.DataFrame(out).assign(normalisation=normalisation)


def subset_scores(test_logp: np.ndarray, inner_ua: np.ndarray, y: np.ndarray, n_classes: int,
                  chunk: int = 512) -> dict[str, np.ndarray]:
    """Per EVERY_SUBSET_METHODS method, the (2^M, 1 + K) test scores of every coalition of M members:
    UA, then each class's recall (nan for a class absent from y); row m is the coalition whose
    members are the set bits of m, row 0 (no member) is chance. What fusion.select and fusion.late
    predict, from each member's test log-probabilities test_logp (M, n, K) and inner-CV UA (M,)."""
    M = len(test_logp)
    masks = np.arange(2 ** M)
    bits = (masks[:, None] >> np.arange(M)) & 1  # (2^M, M): member i in coalition m
    truth = np.eye(n_classes, dtype=np.float32)[y]  # (n, K)
    counts = truth.sum(0)
    present = counts > 0

    def score(pred: np.ndarray) -> np.ndarray:
        hits = (pred == y).astype(np.float32) @ truth  # (masks, K): correct predictions per class
        recall = np.where(present, hits / np.maximum(counts, 1), np.nan)
        return np.concatenate([recall[:, present].mean(1, keepdims=True), recall], 1)

    member_pred = test_logp.argmax(-1)  # (M, n)
    best = np.where(bits, inner_ua[None], -np.inf).argmax(1)  # select: the best inner UA, the first of ties
    late = np.empty((len(masks), len(y)), dtype=np.int64)
    flat = test_logp.reshape(M, -1)
    for start in range(0, len(masks), chunk):  # late: the mean log-probabilities' argmax (the sum's)
        block = bits[start:start + chunk].astype(np.float32) @ flat
        late[start:start + chunk] = block.reshape(len(block), len(y), n_classes).argmax(-1)
    solver.FLOPS[0] += 2.0 * len(masks) * M * flat.shape[1]  # the late sums: the arithmetic of the power set
    out = {"select": score(member_pred[best]), "late": score(late)}
    for table in out.values():
        table[0] = 1 / n_classes
    return out


def exact_every(values: np.ndarray) -> np.ndarray:
    """Exact Shapley values (M, ...) from the values (2^M, ...) of every coalition (row m: the
    coalition of the set bits of m), as `exact` computes them from a dict."""
    M = int(np.log2(len(values)))
    masks = np.arange(len(values))
    size = np.array([bin(m).count("1") for m in masks])
    weight = np.array([math.factorial(k) * math.factorial(M - k - 1) / math.factorial(M) if k < M else 0.0
                       for k in range(M + 1)])
    out = []
    for i in range(M):
        without = masks[(masks >> i) & 1 == 0]
        gain = values[without | (1 << i)] - values[without]
        out.append(np.tensordot(weight[size[without]], gain, axes=1))
    return np.stack(out)


def every_subset(test_logp: np.ndarray, inner_ua: np.ndarray, y: np.ndarray, classes: list[str],
                 players: list[str], modalities: list[str]) -> pd.DataFrame:
    """Exact Shapley values of the base sets (players, with their modalities) and of the modalities,
    for UA and every class's recall, by every EVERY_SUBSET_METHODS method, in one fold: rows as
    shapley_table's (without fold and normalisation)."""
    kinds = sorted(set(modalities))
    out = []
    for method, values in subset_scores(test_logp, inner_ua, y, len(classes)).items():
        phi = exact_every(values)
        out += [{"level": "feature set", "player": p, "metric": metric, "class": of_class, "method": method,
                 "shapley": phi[i, j]} for i, p in enumerate(players) for j, (metric, of_class, _) in enumerate(metrics(classes))]
        # modalities: a coalition of modalities is worth the fusion of all their base sets
        of_kinds = np.array([sum(1 << i for i, m in enumerate(modalities) if (k >> kinds.index(m)) & 1)
                             for k in range(2 ** len(kinds))])
        phi = exact_every(values[of_kinds])
        out += [{"level": "modality", "player": m, "metric": metric, "class": of_class, "method": method,
                 "shapley": phi[i, j]} for i, m in enumerate(kinds) for j, (metric, of_class, _) in enumerate(metrics(classes))]
    return pd.DataFrame(out).assign(sampling_se=0.0, estimator=EVERY_SUBSET)
