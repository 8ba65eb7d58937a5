"""Fusion of feature sets, every method fitted on the training actors of the outer fold only.

- early: each member z-scored (on the training rows) and divided by the square root of its total
  training variance (the trace of its covariance; after z-scoring, its number of non-constant
  columns), so every member carries the same total variance whatever its width; the blocks are
  concatenated and one linear probe is fitted, its C by inner CV (EARLY_C_GRID: a member's columns
  are ~width times smaller than a z-scored set's, so the useful C is ~100 times larger).
- late: each member's own tuned probe (its inner-CV C and layer); class log-probabilities averaged.
- stack: a multinomial logistic regression on the members' out-of-fold (OOF) class log-probabilities,
  i.e. each training row scored by the member probe that did not see its actor. Its C is chosen by
  the same actor-grouped inner splits, applied to those OOF inputs. This is not a second, nested
  level of member refits: the member probe that scored a row of inner split s was fitted on actors
  that include other splits' held-out actors, which the stacker's inner CV then scores; the stacker
  sees no label of its own held-out actors, but their features came from member fits that saw them.
  Test rows get the members' all-training-actors probes' log-probabilities, as in late fusion.
- select: the member whose own probe has the best inner-CV UA (a fusion that may weigh all but one
  member at zero: what keeps `auto` from losing to its best member when the others add nothing).
- auto: per outer fold, the method with the best inner-CV UA on the training actors.

The inner-CV UA of a method is always a mean over the same actor-grouped inner splits, on OOF
predictions, so the three are compared on equal terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linear import C_GRID, LinearFit, linear_probe, oof_ua
from .solver import Rotated, rotate

EARLY_C_GRID = np.logspace(-1, 3, 5)  # early fusion's C grid (members scaled to unit total variance)
STACK_C_GRID = C_GRID  # the stacker's inputs are z-scored like a single set's
LOG_PROB_FLOOR = np.log(1e-4)  # stacker inputs: log-probabilities floored, so one confident miss is not an outlier
METHODS = ("select", "early", "late", "stack")  # auto picks among these, the first of ties


@dataclass
class System:
    """A probe or fusion in one outer fold: what inner CV saw and what it predicts.

    inner_ua: mean UA over the inner splits (OOF); oof_logp (n_train, K) and test_logp (n_test, K):
    class log-probabilities; C: the C kept (nan for late fusion); method: the method auto chose;
    member: the member select chose (an index into the fusion's members)."""

    inner_ua: float
    oof_logp: np.ndarray
    test_logp: np.ndarray
    C: float = np.nan
    method: str = ""
    member: int | None = None

    @property
    def pred(self) -> np.ndarray:
        return self.test_logp.argmax(-1)

    @classmethod
    def from_linear(cls, fit: LinearFit, layer: int = 0) -> "System":
        return cls(float(fit.best_inner_ua[layer]), fit.oof_logp[layer], fit.test_logp[layer], float(fit.C[layer]))


def select(members: list[System]) -> System:
    """The member with the best inner-CV UA (the first of ties)."""
    best = max(range(len(members)), key=lambda i: members[i].inner_ua)
    m = members[best]
    return System(m.inner_ua, m.oof_logp, m.test_logp, m.C, member=best)


def early_block(members: list[Rotated]) -> Rotated:
    """Members concatenated, each divided by the root of its total training variance."""
    return Rotated(np.concatenate([m.X / np.float32(np.sqrt(m.variance)) for m in members], axis=1),
                   float(len(members)))


def early(members: list[Rotated], y: np.ndarray, n_classes: int, train: np.ndarray, test: np.ndarray,
          split: np.ndarray) -> System:
    return System.from_linear(linear_probe([early_block(members)], y, n_classes, train, test, split, EARLY_C_GRID,
                                           decorrelate=True))


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


def stack(member_sets: list[list[System]], y: np.ndarray, n_classes: int, train: np.ndarray,
          test: np.ndarray, split: np.ndarray) -> list[System]:
    """One stacker per member list (fusions over the same rows), all fitted in one batch."""
    blocks = [rotate(stack_inputs(members, train, test), train) for members in member_sets]
    fit = linear_probe(blocks, y, n_classes, train, test, split, STACK_C_GRID)
    return [System.from_linear(fit, i) for i in range(len(blocks))]


def auto(candidates: dict[str, System]) -> System:
    """The candidate with the best inner-CV UA (the first of ties, in METHODS order)."""
    method = max(METHODS, key=lambda m: candidates[m].inner_ua)  # max keeps the first of equal keys
    chosen = candidates[method]
    return System(chosen.inner_ua, chosen.oof_logp, chosen.test_logp, chosen.C, method, chosen.member)
