"""Fusion of feature sets, every method fitted on the training actors of the outer fold only.

- early: the members' z-scored (training-rotated) blocks concatenated and one linear probe fitted,
  its C by inner CV. The SCALING of the members (EARLY_SCALINGS): "blocks" (the default) rescales
  each member to an equal share of the concatenation's total variance, whatever its width, so
  ComParE's 6373 columns do not drown AUs' 35; "columns" keeps every z-scored column at unit variance
  (a weak narrow member then has little say). With both in EARLY_SCALINGS, inner CV chooses per fusion
  and fold (tried on the committed stores: early fusion's mean UA rose a little, auto's did not move,
  and early fusion took two thirds longer). Both keep the same total variance: one C grid serves.
  Coordinates: an early fusion's Gram matrix on the training rows is the weighted sum of its
  members' (`MemberGrams`), so a fusion wider than its training rows costs one eigendecomposition
  per inner split and one for the final fit (solver.gram_coordinates); its features are never formed.
- late: each member's own tuned probe (its inner-CV C and layer); class log-probabilities averaged.
- stack: a multinomial logistic regression on the members' out-of-fold (OOF) class log-probabilities,
  i.e. each training row scored by the member probe that did not see its actor. Test rows get the
  members' all-training-actors probes' log-probabilities, as in late fusion. Its C is chosen by the
  same actor-grouped inner splits, and that inner CV is NESTED: when the stacker holds out split s,
  its training rows of split t are scored by member probes fitted without splits s and t
  (linear.pair_models), so no member fit behind the stacker's training inputs saw the actors it is
  scored on. (Without it, inner CV underrated stacking against the other methods by several points,
  so auto seldom chose it; findings.md, "Does inner CV judge the methods fairly?", shows the gap now.)
- select: the member whose own probe has the best inner-CV UA (a fusion that may weigh all but one
  member at zero: what keeps `auto` from losing to its best member when the others add nothing).
- auto: per outer fold, the method with the best inner-CV UA on the training actors.

The inner-CV UA of a method is always a mean over the same actor-grouped inner splits, on OOF
predictions, so the methods are compared on equal terms.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .linear import C_GRID, InnerCV, LinearFit, final_fit, inner_cv, oof_ua
from .solver import Rotated, eigen_coordinates, gram_coordinates, matmul, rotation

EARLY_SCALINGS = {"blocks": 1.0}  # exponent a: member m's variance times (mean v / v_m)^a; add "columns": 0.0 to let inner CV choose
EARLY_C_GRID = C_GRID  # both scalings keep the z-scored concatenation's total variance
STACK_C_GRID = C_GRID  # the stacker's inputs are z-scored like a single set's
LOG_PROB_FLOOR = np.log(1e-4)  # stacker inputs: log-probabilities floored, so one confident miss is not an outlier


@dataclass
class System:
    """A probe or fusion in one outer fold: what inner CV saw and what it predicts.

    inner_ua: mean UA over the inner splits (OOF); oof_logp (n_train, K) and test_logp (n_test, K):
    class log-probabilities; C: the C kept (nan for late fusion); method: the method auto chose;
    member: the member select chose (an index into the fusion's members); scaling: the member scaling
    early fusion chose (EARLY_SCALINGS); pair_logp (S, S, n_train, K): a single probe's pair models
    (LinearFit.pair_logp) on the training rows, for a stacker's nested inner CV."""

    inner_ua: float
    oof_logp: np.ndarray
    test_logp: np.ndarray
    C: float = np.nan
    method: str = ""
    member: int | None = None
    scaling: str = ""
    pair_logp: np.ndarray | None = None
    features: Rotated | None = None  # an early fusion's features under the scaling it chose (the MLP reuses them)

    @property
    def pred(self) -> np.ndarray:
        return self.test_logp.argmax(-1)

    @classmethod
    def from_linear(cls, fit: LinearFit, layer: int = 0, train: np.ndarray | None = None) -> "System":
        """The fit's given layer; with `train`, the training rows of its pair models (nested fits)."""
        pairs = None if fit.pair_logp is None or train is None else fit.pair_logp[:, :, train]
        return cls(float(fit.best_inner_ua[layer]), fit.oof_logp[layer], fit.test_logp[layer], float(fit.C[layer]),
                   pair_logp=pairs)


@dataclass
class Fusions:
    """What every fusion method sees: the fusions of one outer fold over the same rows (train, test:
    their positions; split: inner split of each training row; y: class index of every row), per
    fusion its members' blocks (`Rotated`, at their inner-best candidate), their tuned probes
    (`System`, with pair models for nested stacking) and their Gram matrices with the training rows
    (gram[f](i), `MemberGrams.of`)."""

    blocks: list[list[Rotated]]
    systems: list[list[System]]
    grams: list[Callable[[int], torch.Tensor]]
    y: np.ndarray
    n_classes: int
    train: np.ndarray
    test: np.ndarray
    split: np.ndarray


@dataclass(frozen=True)
class Method:
    """A registered fusion method: fit(Fusions) -> one System per fusion; part: the part of the
    grid's timing its seconds go to."""

    name: str
    fit: Callable[[Fusions], list[System]]
    part: str


METHODS: dict[str, Method] = {}  # name -> method, in registration order: auto picks among them, the first of ties


def fusion_method(name: str, part: str = "fusions, late and stack"):
    """Register a fusion method: a function Fusions -> one System per fusion (its inner-CV UA on the
    same inner splits as every other method, OOF log-probabilities and test log-probabilities).
    The grid, auto, the results' allowed values and the findings read METHODS."""
    def register(fit: Callable[[Fusions], list[System]]):
        if name in METHODS or name in ("none", "auto"):
            raise ValueError(f"fusion method {name!r} is already registered or reserved")
        METHODS[name] = Method(name, fit, part)
        return fit
    return register


def select(members: list[System]) -> System:
    """The member with the best inner-CV UA (the first of ties)."""
    best = max(range(len(members)), key=lambda i: members[i].inner_ua)
    m = members[best]
    return System(m.inner_ua, m.oof_logp, m.test_logp, m.C, member=best)


class MemberGrams:
    """Member blocks' Gram matrices with the training rows (rows, n_train), each computed once per
    outer fold and on first use: an early fusion's Gram matrix is their weighted sum."""

    def __init__(self, train: np.ndarray):
        self.train, self.cache = train, {}

    def of(self, names: list, blocks: list[Rotated]) -> Callable[[int], torch.Tensor]:
        """Member i's Gram matrix, for a fusion of the members with these names and blocks."""
        def gram(i: int) -> torch.Tensor:
            if names[i] not in self.cache:
                X = torch.from_numpy(blocks[i].X)
                self.cache[names[i]] = matmul(X, X[self.train].T)
            return self.cache[names[i]]
        return gram


def scaling_weights(members: list[Rotated], exponent: float) -> np.ndarray:
    """Per member, the factor its variance is multiplied by: (mean v / v_m) ** exponent, v_m its
    total training variance (after z-scoring, its number of non-constant columns)."""
    v = np.array([m.variance for m in members])
    return np.where(v > 0, (v.mean() / np.where(v > 0, v, 1.0)) ** exponent, 0.0)  # a member with no variance: none


def early(members: list[Rotated], y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray,
          split: np.ndarray, gram: Callable[[int], torch.Tensor] | None = None) -> tuple[System, Rotated]:
    """The early fusion with the scaling and C inner CV prefers, and its features under that scaling
    (coordinates uncorrelated on the training rows, largest variance first). gram(i): member i's Gram
    matrix with the training rows (MemberGrams.of; computed here when not given)."""
    gram = gram or MemberGrams(train).of(list(range(len(members))), members)
    S = split.max() + 1
    fit_pos = [np.flatnonzero(split != s) for s in range(S)]  # positions within the training rows
    width = sum(m.X.shape[1] for m in members)

    # Per scaling: the fusion's features when they are no wider than the training rows, its Gram
    # matrix with the training rows when an inner split's rows are fewer than its columns (the
    # features are then never needed). Each inner split's fits get coordinates of its own rows.
    sources, groups = [], []
    for exponent in EARLY_SCALINGS.values():
        w = scaling_weights(members, exponent)
        features = (torch.from_numpy(np.concatenate([m.X * np.float32(np.sqrt(f)) for m, f in zip(members, w)], 1))
                    if width <= len(train) else None)
        if width <= min(map(len, fit_pos)):
            groups.append([eigen_coordinates(features[train], rows)[0] for rows in fit_pos])
            K = None
        else:
            K = sum(float(f) * gram(i) for i, f in enumerate(w))
            groups.append([gram_coordinates(K[train][:, rows], rows) for rows in fit_pos])
        sources.append((features, K))
    cv = inner_cv(groups, y[train], n_classes, split, EARLY_C_GRID)
    chosen = int(cv.inner_ua.max(1).argmax())
    C = EARLY_C_GRID[cv.best_C[chosen]]
    features, K = sources[chosen]
    coords = eigen_coordinates(features, train)[0] if features is not None else gram_coordinates(K, train)
    test_logp = final_fit(coords[None], y, n_classes, train, test, np.array([C]),
                          inner_start(cv, chosen, groups[chosen], coords[train]))[0]
    system = System(float(cv.inner_ua[chosen].max()), cv.oof[chosen, cv.best_C[chosen]], test_logp, float(C),
                    scaling=list(EARLY_SCALINGS)[chosen])
    return system, Rotated(coords.numpy(), float(sum(m.variance for m in members)))


def inner_start(cv: InnerCV, candidate: int, split_coords: list[torch.Tensor], coords: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """A warm start for a final fit in `coords` (the training rows' coordinates, uncorrelated): the
    inner splits' fits of one candidate at its chosen C, averaged as functions of the training rows
    (their logits least-squares mapped into `coords`; split_coords[s]: the training rows in split s's
    coordinates). It starts the final fit near its optimum: about a third fewer iterations (measured)."""
    C = cv.best_C[candidate]
    logits = torch.stack([x @ cv.W[candidate, s, C, :x.shape[1]] for s, x in enumerate(split_coords)]).mean(0)
    W = (coords.T @ logits) / coords.square().sum(0).clamp_min(1e-30)[:, None]  # columns of coords: orthogonal
    return W[None, None], cv.b[candidate, :, C].mean(0)[None, None]


def late(members: list[System], y_train: np.ndarray, split: np.ndarray) -> System:
    """Average of the members' class log-probabilities (OOF on training rows, test from full fits)."""
    oof = np.mean([m.oof_logp for m in members], axis=0)
    return System(float(oof_ua(y_train, oof, split)), oof, np.mean([m.test_logp for m in members], axis=0))


def stack_inputs(members: list[System], train: np.ndarray, test: np.ndarray) -> np.ndarray:
    """(rows, members x K) stacker inputs: OOF log-probabilities on the training rows, the full-fit
    probes' on the test rows (rows indexed as train and test)."""
    X = np.zeros((len(train) + len(test), sum(m.oof_logp.shape[1] for m in members)), dtype=np.float32)
    X[train] = np.concatenate([m.oof_logp for m in members], axis=1)
    X[test] = np.concatenate([m.test_logp for m in members], axis=1)
    return np.maximum(X, LOG_PROB_FLOOR)


def nested_inputs(members: list[System], split: np.ndarray) -> np.ndarray:
    """(S, n_train, members x K): the stacker's training inputs as its inner fit holding out split s
    sees them: rows of split s keep their OOF log-probabilities (what it is scored on), rows of any
    other split t come from the member probes fitted without splits s and t."""
    S = split.max() + 1
    out = np.stack([np.concatenate([m.oof_logp for m in members], axis=1)] * S)
    for s in range(S):
        for t in set(range(S)) - {s}:
            out[s, split == t] = np.concatenate([m.pair_logp[s, t, split == t] for m in members], axis=1)
    return np.maximum(out, LOG_PROB_FLOOR)


def stack(member_sets: list[list[System]], y: np.ndarray, n_classes: int, train: np.ndarray,
          test: np.ndarray, split: np.ndarray) -> list[System]:
    """One stacker per member list (fusions over the same rows), all fitted in one batch; every
    member needs its pair models (System.pair_logp) for the nested inner CV."""
    blocks, groups = [], []
    for members in member_sets:
        block, to_coordinates = rotation(stack_inputs(members, train, test), train)
        blocks.append(torch.from_numpy(block.X))
        groups.append([torch.from_numpy(to_coordinates(x)) for x in nested_inputs(members, split)])
    cv = inner_cv(groups, y[train], n_classes, split, STACK_C_GRID)
    width = max(b.shape[1] for b in blocks)
    X = torch.stack([torch.nn.functional.pad(b, (0, width - b.shape[1])) for b in blocks])
    best = cv.best_C
    test_logp = final_fit(X, y, n_classes, train, test, STACK_C_GRID[best])
    return [System(float(cv.inner_ua[i, best[i]]), cv.oof[i, best[i]], test_logp[i], float(STACK_C_GRID[best[i]]))
            for i in range(len(blocks))]


# The registered methods, in the order auto breaks ties in (select first: a fusion never loses to its
# best member unless another method's inner-CV UA is higher).
@fusion_method("select")
def _select(f: Fusions) -> list[System]:
    return [select(systems) for systems in f.systems]


@fusion_method("early", part="fusions, early")
def _early(f: Fusions) -> list[System]:
    out = []
    for blocks, gram in zip(f.blocks, f.grams):
        system, features = early(blocks, f.y, f.n_classes, f.train, f.test, f.split, gram)
        system.features = features
        out.append(system)
    return out


@fusion_method("late")
def _late(f: Fusions) -> list[System]:
    return [late(systems, f.y[f.train], f.split) for systems in f.systems]


@fusion_method("stack")
def _stack(f: Fusions) -> list[System]:
    return stack(f.systems, f.y, f.n_classes, f.train, f.test, f.split)


def auto(candidates: dict[str, System]) -> System:
    """The candidate with the best inner-CV UA (the first of ties, in METHODS order)."""
    method = max(METHODS, key=lambda m: candidates[m].inner_ua)  # max keeps the first of equal keys
    chosen = candidates[method]
    return System(chosen.inner_ua, chosen.oof_logp, chosen.test_logp, chosen.C, method, chosen.member, chosen.scaling)
