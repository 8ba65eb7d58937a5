"""Probes on frozen features: linear (logistic regression) and a small MLP, actor-independent folds.

Protocol (what makes the numbers comparable and leak-free):
- outer folds: actor-disjoint (EmoBox's six by default); nothing about a test actor is seen in training;
- scaling and C are fitted on the training actors only, C by actor-grouped inner cross-validation;
- for a layered encoder every layer gets its own linear probe, and the layer used in fusions and by
  the MLP is the one with the best INNER-CV score in that outer fold (never the test score);
- feature sets are joined by clip key, never by row order;
- headline metric: unweighted average recall (UA = balanced accuracy), with WA and macro-F1 beside it.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, recall_score
from sklearn.model_selection import GroupKFold

from . import folds as folds_mod
from . import labels
from .store import EmbeddingStore, available_stores

C_GRID = np.logspace(-3, 1, 5)  # inverse L2 strength for the linear probe, picked by inner CV
INNER_FOLDS = 3  # actor-grouped inner CV on the training actors (6-7 actors per inner fold)
MLP_HIDDEN = 256  # one hidden layer of 256 ReLU units: the "small MLP"
MLP_DROPOUT = 0.5  # strong regularisation: 1200 training clips, up to 1200-d inputs
MLP_WEIGHT_DECAY = 1e-2  # AdamW decoupled weight decay; fixed, not tuned
MLP_LR = 1e-3
MLP_STEPS = 200  # full-batch steps; the best step is chosen on held-out training actors
MLP_VAL_EVERY = 5  # every 5th training actor (4 of 20) is the MLP's early-stopping set
LBFGS_ITERATIONS = 150  # enough for the probes to agree with sklearn (tested); more costs minutes
SEEDS = (0, 1, 2)  # MLP seeds; the linear probe (lbfgs) is deterministic, so it runs once (seed 0)
CLASSES = np.array(sorted(labels.EMOTIONS))
DEFAULT_POOLING = ("functionals", "mean")  # the pooling a store contributes to fusions, first found


@dataclass
class FeatureSet:
    """One store's features for one pooling; X is (clips, layers, dim) for layered encoders."""

    name: str
    keys: list[str]
    X: np.ndarray

    @property
    def layered(self) -> bool:
        return self.X.ndim == 3

    @property
    def n_layers(self) -> int:
        return self.X.shape[1] if self.layered else 1


def load_feature_set(store: EmbeddingStore, pooling: str | None = None) -> FeatureSet:
    poolings = store.meta()["poolings"]
    pooling = pooling or next(p for p in (*DEFAULT_POOLING, *poolings) if p in poolings)
    keys, X = store.load(pooling)
    name = f"{store.modality}/{store.model}" + ("" if pooling in DEFAULT_POOLING else f":{pooling}")
    return FeatureSet(name, keys, X)


def discover_feature_sets(root=None, include: list[str] | None = None, extra_poolings: bool = True):
    """Every finalized store (optionally filtered by 'modality/model' substrings): its default pooling,
    plus, for non-layered stores, its other poolings as separate single sets (mean vs mean+std)."""
    base, extra = [], []
    for store in available_stores(root):
        label = f"{store.modality}/{store.model}"
        if include and not any(pattern in label for pattern in include):
            continue
        base.append(load_feature_set(store))
        if extra_poolings and not base[-1].layered:  # layered: one probe per layer is enough cost
            for pooling in store.meta()["poolings"]:
                if pooling not in DEFAULT_POOLING:
                    extra.append(load_feature_set(store, pooling))
    return base, extra


# ---------------------------------------------------------------------------------------------
# The probes. Both are trained in torch so that one pass fits a whole grid at once (DINOv2's
# linear evaluation): every layer x every inner fold x every C for the linear probe, every seed for
# the MLP. The objective is sklearn's LogisticRegression's, so C means the same thing.
# ---------------------------------------------------------------------------------------------
def standardise(X: np.ndarray, train: np.ndarray) -> torch.Tensor:
    """z-score with the TRAINING rows' statistics; X is (layers, clips, dim)."""
    X = torch.from_numpy(np.array(X, dtype=np.float32))  # a copy: stores are read-only memory maps
    mean, std = X[:, train].mean(1, keepdim=True), X[:, train].std(1, keepdim=True)
    return (X - mean) / torch.where(std > 1e-8, std, torch.ones_like(std))


def training_span(X: torch.Tensor, train: np.ndarray) -> torch.Tensor:
    """Project (1, clips, dim) features onto the span of the training rows when dim > rows.

    Exact for an L2-penalised linear model: its optimal weights lie in that span (representer
    theorem), so the predictions do not change; it makes 6373-d ComParE as cheap as 1200-d.
    """
    if X.shape[0] != 1 or X.shape[2] <= len(train):
        return X
    # Via the training Gram matrix (rows x rows), much cheaper than an SVD of the wide matrix:
    # if X_train X_train^T = U diag(e) U^T, the right singular vectors are X_train^T U / sqrt(e).
    X64 = X[0].double()
    gram_all = X64 @ X64[train].T  # (clips, train rows)
    e, U = torch.linalg.eigh(gram_all[train])
    keep = e > e.max() * 1e-10
    return (gram_all @ (U[:, keep] / e[keep].sqrt())).float()[None]


def fit_softmax(X: torch.Tensor, y: np.ndarray, row_weights: torch.Tensor, C: torch.Tensor,
                max_iter: int = LBFGS_ITERATIONS) -> tuple[torch.Tensor, torch.Tensor]:
    """Multinomial logistic regression for many problems at once, by L-BFGS.

    X (layers, clips, dim); row_weights (problems, clips): 1 on a problem's training rows, else 0;
    C (problems,). Problem p minimises C_p * sum(cross-entropy) + ||W_p||^2 / 2 (sklearn's
    objective), rescaled by 1 / (C_p * n_p) for conditioning. Returns W (L, P, D, K), b (L, P, K).
    """
    L, N, D = X.shape
    P, K = len(C), len(CLASSES)
    onehot = torch.as_tensor(y[:, None] == CLASSES[None, :], dtype=torch.float32)
    n = row_weights.sum(1)
    weights = (row_weights / n[:, None])[None]  # mean cross-entropy per problem
    l2 = (1.0 / (2 * C * n))[None, :, None, None]
    W = torch.zeros(L, P, D, K, requires_grad=True)
    b = torch.zeros(L, P, K, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, history_size=10,
                            tolerance_grad=1e-6, tolerance_change=1e-10, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        logits = torch.einsum("lnd,lpdk->lpnk", X, W) + b[:, :, None]
        ce = -(torch.log_softmax(logits, -1) * onehot).sum(-1)
        loss = (ce * weights).sum() + (l2 * W.square()).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return W.detach(), b.detach()


def predict_softmax(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Class codes (layers, problems, clips)."""
    with torch.no_grad():
        logits = torch.einsum("lnd,lpdk->lpnk", X, W) + b[:, :, None]
    return CLASSES[logits.argmax(-1).numpy()]


def linear_probe(X: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray,
                 test: np.ndarray) -> dict:
    """Linear probes for every layer of X (layers, clips, dim), C picked per layer by inner CV.

    One L-BFGS run fits (inner folds + 1) x len(C_GRID) problems per layer: each C on each
    actor-grouped inner split, and each C on the whole training fold (the one kept is the best C's).
    Returns test predictions (layers, n_test), the chosen C and its inner-CV UA per layer.
    """
    Xt = training_span(standardise(X, train), train)
    inner = list(GroupKFold(n_splits=INNER_FOLDS).split(train, groups=groups[train]))
    fits = [train[fit_rows] for fit_rows, _ in inner] + [train]
    row_weights = torch.zeros(len(fits) * len(C_GRID), X.shape[1])
    for i, rows in enumerate(fits):
        row_weights[i * len(C_GRID):(i + 1) * len(C_GRID), rows] = 1
    C = torch.tensor(np.tile(C_GRID, len(fits)), dtype=torch.float32)
    W, b = fit_softmax(Xt, y, row_weights, C)
    pred = predict_softmax(Xt, W, b).reshape(Xt.shape[0], len(fits), len(C_GRID), -1)
    inner_ua = np.zeros((Xt.shape[0], len(C_GRID)))
    for f, (_, val_rows) in enumerate(inner):
        val = train[val_rows]
        for layer in range(Xt.shape[0]):
            for c in range(len(C_GRID)):
                inner_ua[layer, c] += balanced_accuracy_score(y[val], pred[layer, f, c, val]) / len(inner)
    best = inner_ua.argmax(1)
    return {"pred": np.stack([pred[layer, -1, c, test] for layer, c in enumerate(best)]),
            "C": C_GRID[best], "inner_ua": inner_ua.max(1)}


def mlp_probe(X: np.ndarray, y: np.ndarray, groups: np.ndarray, train: np.ndarray, test: np.ndarray,
              seeds=SEEDS) -> np.ndarray:
    """A one-hidden-layer MLP per seed, trained side by side; returns test predictions (seeds, n_test).

    Full-batch Adam; the step kept is the one with the best UA on held-out TRAINING actors
    (early stopping without touching the test fold). Inputs as for the linear probe.
    """
    Xt = training_span(standardise(X[None] if X.ndim == 2 else X, train), train)[0]
    val_actors = np.unique(groups[train])[::MLP_VAL_EVERY]  # every 5th training actor validates
    is_val = np.isin(groups[train], val_actors)
    fit, val = train[~is_val], train[is_val]
    S, D, H, K = len(seeds), Xt.shape[1], MLP_HIDDEN, len(CLASSES)
    params = []
    for seed in seeds:  # each seed: its own initialisation (PyTorch's default Linear init)
        torch.manual_seed(seed)
        first, last = torch.nn.Linear(D, H), torch.nn.Linear(H, K)
        params.append([first.weight.T, first.bias, last.weight.T, last.bias])
    W1, b1, W2, b2 = (torch.stack([p[i].detach() for p in params]).requires_grad_() for i in range(4))
    opt = torch.optim.AdamW([W1, b1, W2, b2], lr=MLP_LR, weight_decay=MLP_WEIGHT_DECAY)
    target = torch.as_tensor(np.searchsorted(CLASSES, y[fit]))
    generator = torch.Generator().manual_seed(seeds[0])

    def forward(rows, train_mode=False):
        h = torch.relu(torch.einsum("nd,sdh->snh", Xt[rows], W1) + b1[:, None])
        if train_mode:
            h = h * (torch.rand(h.shape, generator=generator) > MLP_DROPOUT) / (1 - MLP_DROPOUT)
        return torch.einsum("snh,shk->snk", h, W2) + b2[:, None]

    best_ua, best_pred = np.full(S, -1.0), np.zeros((S, len(test)), dtype=int)
    for step in range(MLP_STEPS):
        opt.zero_grad()
        logits = forward(fit, train_mode=True)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, K), target.repeat(S), reduction="sum") / len(fit)
        loss.backward()
        opt.step()
        if step % 10 == 9:
            with torch.no_grad():
                val_pred = CLASSES[forward(val).argmax(-1).numpy()]
                test_pred = CLASSES[forward(test).argmax(-1).numpy()]
            for s in range(S):
                ua = balanced_accuracy_score(y[val], val_pred[s])
                if ua > best_ua[s]:
                    best_ua[s], best_pred[s] = ua, test_pred[s]
    return best_pred


def scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """UA (headline), WA, macro-F1 and per-emotion recall over the eight RAVDESS classes."""
    out = {"ua": balanced_accuracy_score(y_true, y_pred), "wa": accuracy_score(y_true, y_pred),
           "macro_f1": f1_score(y_true, y_pred, labels=CLASSES, average="macro", zero_division=0)}
    recalls = recall_score(y_true, y_pred, labels=CLASSES, average=None, zero_division=0)
    present = set(y_true)
    for code, r in zip(CLASSES, recalls):
        out[f"recall_{labels.EMOTIONS[code]}"] = r if code in present else np.nan
    return out


# ---------------------------------------------------------------------------------------------
def join(sets: list[FeatureSet], clips: pd.DataFrame) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """Rows of `clips` present in every set, and each set's rows aligned to them BY CLIP KEY."""
    common = set(clips.key)
    for fs in sets:
        common &= set(fs.keys)
    rows = clips[clips.key.isin(common)].reset_index(drop=True)
    aligned = []
    for fs in sets:
        index = {k: i for i, k in enumerate(fs.keys)}
        aligned.append(fs.X[[index[k] for k in rows.key]])
    return rows, aligned


def _rows(features, layer, probe, fold, seed, n_train, keys, y, pred, extra_cols=None):
    """One results row and the per-clip predictions behind it (test clips only)."""
    row = {"features": features, "n_sets": features.count("+") + 1, "layer": layer, "probe": probe,
           "fold": fold, "seed": seed, "n_train": n_train, "n_test": len(y), **scores(y, pred),
           **(extra_cols or {})}
    return row, pd.DataFrame({"features": features, "layer": layer, "probe": probe, "fold": fold,
                              "seed": seed, "key": keys, "y_true": y, "y_pred": pred})


def _single_set_fold(name, layered, X, y, keys, actors, fold, train, test):
    """Step 1 for one set and fold: a linear probe per layer (+ the inner-CV layer choice)."""
    torch.set_num_threads(1)
    out = linear_probe(X, y, actors, train, test)
    rows = [_rows(name, layer if layered else "all", "linear", fold, 0, len(train), keys[test], y[test], out["pred"][layer],
                  {"inner_ua": out["inner_ua"][layer], "C": out["C"][layer]}) for layer in range(len(out["pred"]))]
    best = int(out["inner_ua"].argmax()) if layered else None
    if layered:  # the headline for a layered encoder: the layer inner CV picked
        rows.append(_rows(name, "inner-best", "linear", fold, 0, len(train), keys[test], y[test], out["pred"][best],
                          {"inner_ua": out["inner_ua"][best], "C": out["C"][best], "layers_used": str(best)}))
    return rows, best


def _subset_fold(names, X, y, keys, actors, fold, train, test, label, used, linear, seeds):
    """Step 2 for one subset and fold: the linear probe on a fusion, and/or the MLP per seed."""
    torch.set_num_threads(1)
    rows = []
    if linear:
        out = linear_probe(X[None], y, actors, train, test)
        rows.append(_rows(names, label, "linear", fold, 0, len(train), keys[test], y[test], out["pred"][0],
                          {"inner_ua": out["inner_ua"][0], "C": out["C"][0], **used}))
    for seed, pred in zip(seeds, mlp_probe(X, y, actors, train, test, seeds) if seeds else []):
        rows.append(_rows(names, label, "mlp", fold, seed, len(train), keys[test], y[test], pred, used))
    return rows


def run_grid(clips: pd.DataFrame, base: list[FeatureSet], extra: list[FeatureSet] = (),
             scheme: str = "emobox6", seeds=SEEDS, probes=("linear", "mlp"), max_subset: int | None = None,
             mlp_on_every_subset: bool = False, n_jobs: int = 1, log=print) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train the whole probe grid; return (results: one row per features x layer x probe x fold x
    seed, predictions: one row per test clip of each of those).

    1. every single set (and extra pooling): a linear probe per layer; the layer with the best
       inner-CV UA in each fold is remembered;
    2. fusions of `base` sets (every subset of up to max_subset sets, and all sets together): the
       linear probe on the concatenation of each set's chosen layer;
    3. the MLP on every single base set and on the fusion of all of them (on every subset with
       mlp_on_every_subset: several times the linear probe's cost, so off by default on 2 cores).
    Folds run in `n_jobs` processes.
    """
    from joblib import Parallel, delayed

    fold_actors = folds_mod.load_folds(scheme)
    parallel = Parallel(n_jobs=n_jobs)

    def folds_for(name, rows):
        actors = rows.actor.to_numpy()
        for fold, test_actors in fold_actors.items():
            train, test = folds_mod.split(actors, test_actors)
            if len(test) == 0 or len(set(actors[train])) < INNER_FOLDS + 1:
                log(f"  {name} {fold}: skipped, cannot train ({len(set(actors[train]))} training actors, "
                    f"{len(test)} test clips)")
                continue
            yield fold, train, test, actors

    out_rows, chosen_layer = [], {}
    for fs in [*base, *extra]:
        rows, (X,) = join([fs], clips)
        log(f"[probe] {fs.name}: {len(rows)} clips, {fs.n_layers} layer(s) x {fs.X.shape[-1]} dims")
        X = X.transpose(1, 0, 2) if fs.layered else X[None]
        tasks = list(folds_for(fs.name, rows))
        done = parallel(delayed(_single_set_fold)(fs.name, fs.layered, X, rows.emotion.to_numpy(),
                                                  rows.key.to_numpy(), actors, fold, train, test)
                        for fold, train, test, actors in tasks)
        for (fold, *_), (rows_out, best) in zip(tasks, done):
            out_rows += rows_out
            chosen_layer[(fs.name, fold)] = best

    trained = {name for name, _ in chosen_layer}
    untrainable = [fs.name for fs in base if fs.name not in trained]
    if untrainable:
        log(f"[probe] no fold could be trained on {', '.join(untrainable)} (too few actors): left out of fusions")
    base = [fs for fs in base if fs.name in trained]
    sizes = sorted({k for k in range(1, len(base) + 1) if max_subset is None or k <= max_subset} | {len(base)})
    for subset in (s for k in sizes for s in itertools.combinations(base, k)):
        names = "+".join(fs.name for fs in subset)
        linear = len(subset) > 1 and "linear" in probes
        mlp_seeds = seeds if "mlp" in probes and (mlp_on_every_subset or len(subset) in (1, len(base))) else ()
        if not linear and not mlp_seeds:
            continue
        rows, Xs = join(list(subset), clips)
        if len(subset) > 1:
            log(f"[probe] {names}: {len(rows)} clips in all {len(subset)} sets")
        tasks = []
        for fold, train, test, actors in folds_for(names, rows):
            layers = [chosen_layer.get((fs.name, fold)) for fs in subset]
            X = np.concatenate([x if l is None else x[:, l] for x, l in zip(Xs, layers)], axis=1)
            label = "inner-best" if any(l is not None for l in layers) else "all"
            used = {"layers_used": ",".join("-" if l is None else str(l) for l in layers)}
            tasks.append(delayed(_subset_fold)(names, X, rows.emotion.to_numpy(), rows.key.to_numpy(),
                                               actors, fold, train, test, label, used, linear, mlp_seeds))
        for rows_out in parallel(tasks):
            out_rows += rows_out
    return pd.DataFrame([r for r, _ in out_rows]), pd.concat([p for _, p in out_rows], ignore_index=True)


def summarise(results: pd.DataFrame, metrics=("ua", "wa", "macro_f1")) -> pd.DataFrame:
    """Mean and std over folds (and seeds) per feature set x layer x probe, best UA first."""
    grouped = results.groupby(["features", "layer", "probe"], sort=False)
    table = grouped[list(metrics)].agg(["mean", "std"])
    table.columns = [f"{m}_{s}" for m, s in table.columns]
    table["n_folds"] = grouped.fold.nunique()
    table["n_seeds"] = grouped.seed.nunique()
    return table.reset_index().sort_values("ua_mean", ascending=False)
