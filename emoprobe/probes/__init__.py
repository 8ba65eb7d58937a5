"""Probes on frozen features: linear (logistic regression), a small MLP, and fusions of feature sets.

Protocol (what makes the numbers comparable and leak-free):
- outer folds: speaker-disjoint (EmoBox's six for RAVDESS); nothing about a test speaker is seen in
  training;
- scaling, C, the layer of a layered encoder (or all its layers) and the fusion method are chosen
  on the training speakers only, by speaker-grouped inner cross-validation (the same inner splits
  for every probe);
- feature sets are joined by clip key, never by row order;
- headline metric: unweighted average recall (UA = balanced accuracy), with WA and macro-F1 beside it.

Modules: features (feature sets from stores), solver (batched L-BFGS softmax regression, rotation
onto training eigenvectors), linear (the probe with its inner CV), mlp, fusion (early, late, stack,
auto), shapley (contributions of sets and modalities), grid (the whole grid and its tables).
"""

from .features import FeatureSet, discover_feature_sets, join, load_feature_set
from .fusion import EARLY_C_GRID, EARLY_SCALINGS, METHODS, System
from .grid import BEST_SINGLE, read_predictions, run_grid, scores, summarise, targets
from .linear import (C_GRID, CANDIDATES, CONCAT, INNER_FOLDS, LinearFit, balanced_accuracy, inner_splits, layer_blocks,
                     linear_probe)
from .mlp import SEEDS, mlp_probe
from . import normalise
from .shapley import shapley_table
from .solver import Rotated, fit_softmax, rotate, standardise

__all__ = ["BEST_SINGLE", "C_GRID", "CANDIDATES", "CONCAT", "EARLY_C_GRID", "EARLY_SCALINGS", "INNER_FOLDS", "METHODS", "SEEDS",
           "FeatureSet", "LinearFit", "Rotated", "System", "balanced_accuracy", "discover_feature_sets", "fit_softmax",
           "inner_splits", "join", "layer_blocks", "linear_probe", "load_feature_set", "mlp_probe", "normalise", "read_predictions",
           "rotate", "run_grid", "scores", "shapley_table", "standardise", "summarise", "targets"]
