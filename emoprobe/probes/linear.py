"""The linear probe with its inner cross-validation: every layer x inner split x C in one batched fit.

Per outer fold, the training actors are split once into INNER_FOLDS actor-disjoint groups
(`inner_splits`), and every probe, fusion and stacker of that fold uses the same split, so the
out-of-fold (OOF) probabilities of different feature sets line up row by row. A layered set's
candidates are its layers and their concatenation (`layer_blocks`). For each candidate and C a
probe is fitted on each inner split's other actors and scored (UA) on its held-out actors; the C
(and, for a layered set, the candidate) with the best mean inner UA is kept, and one more probe per
candidate is fitted on all training actors at that C, warm-started from the inner fits, to predict
the test actors. Nothing here looks at a test label.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from .solver import Rotated, eigen_coordinates, fit_softmax, log_proba, one_hot, rotate

C_GRID = np.logspace(-3, 1, 5)  # inverse L2 strength of a single set's probe (z-scored columns), by inner CV
INNER_FOLDS = 3  # actor-grouped inner CV on the training actors (6-7 actors per inner fold)
WIDTH_BATCH_RATIO = 1.5  # blocks up to this many times a batch's narrowest share its batched fit (padded)
SELECTION_REL_TOL = 1e-3  # inner fits only choose C and feed OOF scores: a looser stop (final fits: solver.REL_TOL)
CONCAT = "concat"  # a layered set's last candidate: all its layers z-scored and concatenated (every depth at once)
# what a results row's block is (its `candidate` column; `layer` holds the index of a "layer" row):
# a set's one block, one layer of a layered set, its layers concatenated, or the one inner CV chose
CANDIDATES = ("all", "layer", CONCAT, "inner-best")
HEADLINE_CANDIDATES = ("all", "inner-best")  # the candidates that stand for a set without test data


def candidate(name, prefix: str = "") -> dict:
    """A layer_blocks label as typed results columns: {candidate, layer}, layer an index or None
    (prefix "chosen_" for what inner CV chose)."""
    is_layer = isinstance(name, (int, np.integer))
    return {f"{prefix}candidate": "layer" if is_layer else name, f"{prefix}layer": int(name) if is_layer else None}


@dataclass
class LinearFit:
    """One feature set's (or fusion's) linear probe in one outer fold, per layer.

    inner_ua (layers, C grid): mean UA over the inner splits; C (layers,): the C kept;
    oof_logp (layers, n_train, K): each training row's class log-probabilities from the inner fit
    that did not see it, at the kept C; test_logp (layers, n_test, K): the all-training-actors fit.
    pair_logp (S, S, n, K), asked for with nested=True: the best layer's probe at its kept C fitted
    without the actors of inner splits s and t ([s, t] = [t, s]; the diagonal is unused), scoring
    every row: what a stacker's inner CV needs (fusion.stack).
    """

    inner_ua: np.ndarray
    C: np.ndarray
    oof_logp: np.ndarray
    test_logp: np.ndarray
    pair_logp: np.ndarray | None = None

    @property
    def best_inner_ua(self) -> np.ndarray:
        return self.inner_ua.max(1)

    @property
    def pred(self) -> np.ndarray:
        """Test predictions (layers, n_test), class indices."""
        return self.test_logp.argmax(-1)

    @property
    def best_layer(self) -> int:
        """The block (a layer or the layers' concatenation: layer_blocks) with the best inner-CV UA (the
        first of ties)."""
        return int(self.best_inner_ua.argmax())


def layer_blocks(X: np.ndarray, train: np.ndarray) -> tuple[list[Rotated], list]:
    """A set's candidates for its linear probe, rotated on the training rows, and their labels: X
    (clips, dim) is one block ("all"); X (clips, layers, dim) gives each layer (0, 1, ...) and, last,
    their concatenation (CONCAT). In it every layer is z-scored, so layers of one width carry equal
    variance; inner CV then chooses between one layer and all of them, without test data."""
    if X.ndim == 2:
        return [rotate(X, train)], ["all"]
    layers = [X[:, layer] for layer in range(X.shape[1])]
    blocks = [*(rotate(x, train) for x in layers), rotate(np.concatenate(layers, 1), train)]
    return blocks, [*range(len(layers)), CONCAT]


def inner_splits(actors: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Inner split index (0..INNER_FOLDS-1) of each training row, by actor (GroupKFold)."""
    split = np.empty(len(train), dtype=int)
    for i, (_, held_out) in enumerate(GroupKFold(n_splits=INNER_FOLDS).split(train, groups=actors[train])):
        split[held_out] = i
    return split


def balanced_accuracy(y: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """UA of predictions pred (..., n) against class indices y (n,), over the classes present in y;
    sklearn's balanced_accuracy_score, vectorised over the leading axes (tested equal)."""
    truth = y[:, None] == np.arange(max(y.max(), pred.max()) + 1)  # (n, K)
    present = truth.any(0)
    hits = ((pred == y)[..., None] & truth).sum(-2)  # (..., K)
    return (hits[..., present] / truth.sum(0)[present]).mean(-1)


def oof_ua(y: np.ndarray, logp: np.ndarray, split: np.ndarray) -> np.ndarray:
    """Mean over inner splits of the UA of OOF log-probabilities logp (..., n_train, K)."""
    pred = logp.argmax(-1)
    return np.mean([balanced_accuracy(y[split == s], pred[..., split == s]) for s in np.unique(split)], axis=0)


@dataclass
class InnerCV:
    """Stage 1 of a probe: every candidate (a layer, a scaling...) x inner split x C, fitted at once.

    inner_ua (L, P): mean UA over the inner splits; oof (L, P, n_train, K): each training row's class
    log-probabilities from the fit that held it out; W (L, S, P, r, K), b (L, S, P, K): the fits,
    in each group's own coordinates (zero-padded to the widest)."""

    inner_ua: np.ndarray
    oof: np.ndarray
    W: torch.Tensor
    b: torch.Tensor

    @property
    def best_C(self) -> np.ndarray:
        """Index of the best C of each candidate (the first of ties)."""
        return self.inner_ua.argmax(1)


def inner_cv(groups: list[list[torch.Tensor]], y_train: np.ndarray, n_classes: int, split: np.ndarray,
             c_grid: np.ndarray) -> InnerCV:
    """Fit every candidate x inner split x C in one batch (wider matrix products beat warm starts
    along the C path, measured) and score each on its held-out split.

    groups[l][s] (n_train, r): the training rows' features as candidate l's fit that holds out split
    s sees them: their columns should be uncorrelated on the fitted rows (solver.fit_softmax)."""
    L, S, P = len(groups), split.max() + 1, len(c_grid)
    fit_pos = [np.flatnonzero(split != s) for s in range(S)]  # positions within the training rows
    # at least one (zero) column: a block with no variance left (e.g. every clip of a speaker alone under
    # the speaker protocol) gets an intercept-only probe, not a shapeless tensor
    r = max(1, *(g.shape[1] for candidate in groups for g in candidate))
    coords = torch.stack([torch.nn.functional.pad(g, (0, r - g.shape[1])) for candidate in groups for g in candidate])
    n_max = max(map(len, fit_pos))
    pad = np.stack([np.pad(f, (0, n_max - len(f))) for f in fit_pos])
    mask = torch.tensor(np.stack([np.arange(n_max) < len(f) for f in fit_pos]), dtype=torch.float32)
    group_rows = np.tile(pad, (L, 1))  # (L * S, n_max): each group's fitted rows
    X1 = coords[np.arange(L * S)[:, None], group_rows]
    Y1 = one_hot(y_train[group_rows], n_classes)
    W, b = fit_softmax(X1, Y1, mask.repeat(L, 1), torch.tensor(c_grid, dtype=torch.float32).repeat(L * S, 1),
                       rel_tol=SELECTION_REL_TOL)
    oof = np.zeros((L, P, len(y_train), n_classes), dtype=np.float32)
    for s in range(S):
        held_out = split == s
        at = np.arange(L) * S + s
        oof[:, :, held_out] = log_proba(coords[at][:, held_out], W[at], b[at]).numpy()
    return InnerCV(oof_ua(y_train, oof, split), oof, W.reshape(L, S, P, r, -1), b.reshape(L, S, P, -1))


def final_fit(X: torch.Tensor, y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray, C: np.ndarray,
              start: tuple[torch.Tensor, torch.Tensor] | None = None) -> np.ndarray:
    """Stage 2: each candidate's probe on all training rows at its chosen C; X (L, rows, r), C (L,).
    Returns the test rows' class log-probabilities (L, n_test, K)."""
    L = len(X)
    W, b = fit_softmax(X[:, train], one_hot(y[train], n_classes).expand(L, -1, -1), torch.ones(L, len(train)),
                       torch.tensor(C, dtype=torch.float32)[:, None], start)
    return log_proba(X[:, test], W, b)[:, 0].numpy()


def linear_probe(blocks: list[Rotated], y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray,
                 split: np.ndarray, c_grid: np.ndarray = C_GRID, nested: bool = False) -> LinearFit:
    """Linear probes on each block (a layer, all layers, or one stacker's inputs), C by inner CV.

    blocks: features of every clip, in coordinates uncorrelated on the training rows (`rotate`); y:
    class index of every clip; train / test: row indices of the outer fold; split: inner split of
    each training row (`inner_splits`). A block wider than an inner split's fitted rows gets
    coordinates of those rows for that split's fits (solver.eigen_coordinates: fewer dimensions).
    Blocks of similar width are fitted in one batch (`width_batches`). nested: also fit the pair
    models of LinearFit.pair_logp, for the block with the best inner-CV UA.
    """
    batches = width_batches([b.X.shape[1] for b in blocks])
    fits = [batch_probe([blocks[i] for i in batch], y, n_classes, train, test, split, c_grid) for batch in batches]
    order = np.argsort(np.concatenate(batches))  # back to the blocks' order
    fit = LinearFit(*(np.concatenate([getattr(f, name) for f in fits])[order]
                      for name in ("inner_ua", "C", "oof_logp", "test_logp")))
    if nested:
        top = fit.best_layer
        fit.pair_logp = pair_models(torch.from_numpy(blocks[top].X), y, n_classes, train, split, fit.C[top])
    return fit


def width_batches(widths: list[int]) -> list[np.ndarray]:
    """Indices of blocks to fit together, narrowest first: a batch is padded to its widest block, so
    a block more than WIDTH_BATCH_RATIO times as wide as a batch's narrowest starts a batch of its own."""
    batches = []
    for i in np.argsort(widths, kind="stable"):
        if batches and widths[i] <= WIDTH_BATCH_RATIO * widths[batches[-1][0]]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return [np.array(batch) for batch in batches]


def batch_probe(blocks: list[Rotated], y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray,
                split: np.ndarray, c_grid: np.ndarray) -> LinearFit:
    """`linear_probe` on blocks fitted in one batch (padded to the widest), without pair models."""
    width = max(1, *(b.X.shape[1] for b in blocks))  # one zero column at least (see inner_cv)
    X = torch.from_numpy(np.stack([np.pad(b.X, ((0, 0), (0, width - b.X.shape[1]))) for b in blocks]))
    L, S = len(blocks), split.max() + 1
    fit_pos = [np.flatnonzero(split != s) for s in range(S)]
    X_train = X[:, train]
    groups, projections = [], []  # per layer, per split: coordinates of the training rows and their projection
    for layer in range(L):
        if width > min(map(len, fit_pos)):
            per_split = [eigen_coordinates(X_train[layer], rows) for rows in fit_pos]
            groups.append([coords for coords, _, _ in per_split])
            projections.append([projection for _, _, projection in per_split])
        else:
            groups.append([X_train[layer]] * S)
            projections.append([None] * S)
    cv = inner_cv(groups, y[train], n_classes, split, c_grid)
    best = cv.best_C

    # Stage 2 starts from the mean of the inner fits at the chosen C, in the block's own columns.
    def inner_weights(layer: int, s: int) -> torch.Tensor:
        weights = cv.W[layer, s, best[layer], :groups[layer][s].shape[1]]
        projection = projections[layer][s]
        return weights if projection is None else projection @ weights

    layers = np.arange(L)
    W0 = torch.stack([torch.stack([inner_weights(layer, s) for s in range(S)]).mean(0) for layer in layers])
    start = W0[:, None], cv.b[layers, :, best].mean(1)[:, None]
    test_logp = final_fit(X, y, n_classes, train, test, c_grid[best], start)
    return LinearFit(cv.inner_ua, c_grid[best], cv.oof[layers, best], test_logp)


def pair_models(X: torch.Tensor, y: np.ndarray, n_classes: int, train: np.ndarray, split: np.ndarray,
                C: float) -> np.ndarray:
    """(S, S, n, K) log-probabilities of every row under the probe fitted at C without the actors of
    inner splits s and t, for every pair s != t (LinearFit.pair_logp). Started from zero: a warm start
    from a fit that saw those actors would leave a trace of them in a fit stopped at a tolerance."""
    S = split.max() + 1
    pairs = list(itertools.combinations(range(S), 2))
    # each pair model is fitted on its own rows only (zero-padded to the most), not on every training
    # row with the others weighted zero: the same objective, at a third of the products for S = 3
    fit_pos = [np.flatnonzero(~np.isin(split, pair)) for pair in pairs]  # positions within the training rows
    n_max = max(map(len, fit_pos))
    pad = np.stack([np.pad(f, (0, n_max - len(f))) for f in fit_pos])
    mask = torch.tensor(np.stack([np.arange(n_max) < len(f) for f in fit_pos]), dtype=torch.float32)
    G = len(pairs)
    W, b = fit_softmax(X[train][pad], one_hot(y[train][pad], n_classes), mask, torch.full((G, 1), float(C)))
    logp = log_proba(X.expand(G, -1, -1), W, b)[:, 0].numpy()
    out = np.zeros((S, S, len(X), n_classes), dtype=np.float32)
    for (s, t), pair_logp in zip(pairs, logp):
        out[s, t] = out[t, s] = pair_logp
    return out
