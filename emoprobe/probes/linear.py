"""The linear probe with its inner cross-validation: every layer x inner split x C in one batched fit.

Per outer fold, the training actors are split once into INNER_FOLDS actor-disjoint groups
(`inner_splits`), and every probe, fusion and stacker of that fold uses the same split, so the
out-of-fold (OOF) probabilities of different feature sets line up row by row. For each layer and C
a probe is fitted on each inner split's other actors and scored (UA) on its held-out actors; the C
(and, for a layered set, the layer) with the best mean inner UA is kept, and one more probe per layer
is fitted on all training actors at that C, warm-started from the inner fits, to predict the test
actors. Nothing here looks at a test label.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.model_selection import GroupKFold

from .solver import Rotated, eigen_coordinates, fit_softmax, log_proba, one_hot

C_GRID = np.logspace(-3, 1, 5)  # inverse L2 strength of a single set's probe (z-scored columns), by inner CV
INNER_FOLDS = 3  # actor-grouped inner CV on the training actors (6-7 actors per inner fold)
SELECTION_REL_TOL = 1e-3  # inner fits only choose C and feed OOF scores: a looser stop (final fits: solver.REL_TOL)
HEADLINE_LAYERS = ("all", "inner-best")  # results' layer labels that stand for a set without test data


@dataclass
class LinearFit:
    """One feature set's (or fusion's) linear probe in one outer fold, per layer.

    inner_ua (layers, C grid): mean UA over the inner splits; C (layers,): the C kept;
    oof_logp (layers, n_train, K): each training row's class log-probabilities from the inner fit
    that did not see it, at the kept C; test_logp (layers, n_test, K): the all-training-actors fit.
    """

    inner_ua: np.ndarray
    C: np.ndarray
    oof_logp: np.ndarray
    test_logp: np.ndarray

    @property
    def best_inner_ua(self) -> np.ndarray:
        return self.inner_ua.max(1)

    @property
    def pred(self) -> np.ndarray:
        """Test predictions (layers, n_test), class indices."""
        return self.test_logp.argmax(-1)

    @property
    def best_layer(self) -> int:
        """The layer with the best inner-CV UA (the first of ties)."""
        return int(self.best_inner_ua.argmax())


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


def linear_probe(blocks: list[Rotated], y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray,
                 split: np.ndarray, c_grid: np.ndarray = C_GRID, decorrelate: bool = False) -> LinearFit:
    """Linear probes on each block (a layer, or a fusion's block-scaled concatenation), C by inner CV.

    blocks: rotated features of every clip; y: class index of every clip; train / test: row indices
    of the outer fold; split: inner split of each training row (`inner_splits`). decorrelate: the
    blocks' columns are correlated on the training rows (a fusion's concatenated members), so each
    inner split gets its own uncorrelated coordinates (solver.eigen_coordinates); a block wider than
    an inner split's rows always does.
    """
    width = max(b.X.shape[1] for b in blocks)
    X = torch.from_numpy(np.stack([np.pad(b.X, ((0, 0), (0, width - b.X.shape[1]))) for b in blocks]))
    L, S, P = len(blocks), split.max() + 1, len(c_grid)
    fit_pos = [np.flatnonzero(split != s) for s in range(S)]  # positions within `train`
    held_out = [np.flatnonzero(split == s) for s in range(S)]

    # Stage 1: every layer x inner split x C in one batch (wider matrix products beat warm starts
    # along the C path, measured). The groups of the batch are (layer, split) pairs, each with its
    # own fitted rows (zero-padded to the longest split) and, when asked, its own coordinates.
    X_train = X[:, train]
    bases = []  # (coordinates of the training rows, map from weights in them to the block's columns)
    for layer, s in itertools.product(range(L), range(S)):
        if decorrelate or width > min(map(len, fit_pos)):
            coords, _, to_columns = eigen_coordinates(X_train[layer], fit_pos[s])
            bases.append((coords, to_columns))
        else:
            bases.append((X_train[layer], lambda W: W))
    r = max(coords.shape[1] for coords, _ in bases)
    coords = torch.stack([torch.nn.functional.pad(c, (0, r - c.shape[1])) for c, _ in bases])  # (L * S, n_train, r)
    n_max = max(map(len, fit_pos))
    pad = np.stack([np.pad(f, (0, n_max - len(f))) for f in fit_pos])
    mask = torch.tensor(np.stack([np.arange(n_max) < len(f) for f in fit_pos]), dtype=torch.float32)
    group_rows = np.tile(pad, (L, 1))  # (L * S, n_max): each group's fitted rows
    X1 = coords[np.arange(L * S)[:, None], group_rows]
    Y1 = one_hot(y[train][group_rows], n_classes)
    W, b = fit_softmax(X1, Y1, mask.repeat(L, 1), torch.tensor(c_grid, dtype=torch.float32).repeat(L * S, 1),
                       rel_tol=SELECTION_REL_TOL)

    oof = np.zeros((L, P, len(train), n_classes), dtype=np.float32)
    for s in range(S):
        groups = np.arange(L) * S + s
        oof[:, :, held_out[s]] = log_proba(coords[groups][:, held_out[s]], W[groups], b[groups]).numpy()
    inner_ua = oof_ua(y[train], oof, split)  # (L, P)
    best = inner_ua.argmax(1)
    layers = np.arange(L)

    # Stage 2: each layer's probe on all training actors at its chosen C, from the inner fits' mean
    # (mapped back to the block's own columns).
    def inner_weights(layer: int, s: int) -> torch.Tensor:
        """Split s's fit at the layer's chosen C, in the block's own columns."""
        coords, to_columns = bases[layer * S + s]
        return to_columns(W[layer * S + s, best[layer], :coords.shape[1]])

    C2 = torch.tensor(c_grid[best], dtype=torch.float32)[:, None]
    W0 = torch.stack([torch.stack([inner_weights(layer, s) for s in range(S)]).mean(0) for layer in layers])
    start = W0[:, None], b.reshape(L, S, P, -1)[layers, :, best].mean(1, keepdim=True)
    W2, b2 = fit_softmax(X_train, one_hot(y[train], n_classes).expand(L, -1, -1), torch.ones(L, len(train)), C2, start)
    test_logp = log_proba(X[:, test], W2, b2)[:, 0].numpy()
    return LinearFit(inner_ua, c_grid[best], oof[layers, best], test_logp)
