"""Probes trained on one set of clips and tested on another: across channels (speech -> song),
corpora, speaker groups, or clip lengths (whole clips -> their first seconds).

The probe is the grid's linear probe (linear.linear_probe): features z-scored and rotated on the
training rows only, C and, for a layered encoder, the layer or all layers concatenated
(linear.layer_blocks) chosen by speaker-grouped inner CV on the training rows. When the two sides
share speakers (RAVDESS speech and song: the same 24 actors), the test speakers of each fold are
held out of training, so no test speaker is ever trained on.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score

from ..data import folds as folds_mod
from . import normalise
from .grid import scores  # the grid's UA, WA, macro-F1 and per-class recall
from .linear import INNER_FOLDS, candidate, inner_splits, layer_blocks, linear_probe

MIN_TRAIN_SPEAKERS = INNER_FOLDS + 1  # the inner CV needs INNER_FOLDS speaker groups to choose C


def fit_predict(X_train: np.ndarray, y_train: np.ndarray, speakers_train: np.ndarray, X_test: np.ndarray,
                n_classes: int, speakers_test: np.ndarray | None = None,
                normalisation: str = "global") -> tuple[np.ndarray, dict]:
    """Train on (X_train, y_train: class indices), predict X_test; X is (n, D) or (n, layers, D).
    normalisation (normalise.NORMALISATIONS): a transductive one normalises each test speaker
    (speakers_test) with its own test-side clips, unlabelled; the two sides' speakers are kept apart
    (one actor's song clips are not normalised with its speech clips).
    Returns (predicted class indices, {chosen_candidate, chosen_layer, C, inner_ua} as chosen on the
    training rows; linear.candidate)."""
    X = np.concatenate([X_train, X_test])
    train, test = np.arange(len(X_train)), np.arange(len(X_train), len(X))
    y = np.concatenate([y_train, np.zeros(len(X_test), dtype=int)])  # test labels are never read
    test_side = np.full(len(X_test), "-") if speakers_test is None else np.asarray(speakers_test).astype(str)
    speakers = np.concatenate([np.char.add("train:", np.asarray(speakers_train).astype(str)),
                               np.char.add("test:", test_side)])
    X = normalise.apply(normalisation, X, speakers, train, y)
    blocks, names = layer_blocks(X, train)
    fit = linear_probe(blocks, y, n_classes, train, test, inner_splits(speakers, train))
    best = fit.best_layer
    return fit.pred[best], {**candidate(names[best], "chosen_"), "C": float(fit.C[best]),
                            "inner_ua": float(fit.best_inner_ua[best])}


def speaker_folds(train: pd.DataFrame, test: pd.DataFrame) -> dict[str, list]:
    """Test speakers per fold: the test side's folds when the two sides share a speaker, else one
    fold holding every test speaker (nothing to hold out)."""
    if set(train.speaker) & set(test.speaker):
        return folds_mod.load_folds(test)
    return {"all": sorted(set(test.speaker))}


def transfer(train: pd.DataFrame, test: pd.DataFrame, X_train: np.ndarray, X_test: np.ndarray,
             classes: list[str], normalisation: str = "global") -> tuple[pd.DataFrame, dict, pd.DataFrame]:
    """Train on `train` rows, test on `test` rows (clips tables aligned with X_train / X_test; their
    `label` columns hold names in `classes`), fold by fold (speaker_folds).

    Returns (per-clip predictions: key, fold, y_true, y_pred as class indices; the pooled scores with
    the folds' UA mean and std and n_train as the mean over folds; per fold: its UA, clips and what
    inner CV chose (fold, n_train, n_test, ua, chosen_candidate, chosen_layer, C, inner_ua))."""
    index = {c: i for i, c in enumerate(classes)}
    y_train, y_test = train.label.map(index).to_numpy(int), test.label.map(index).to_numpy(int)
    rows, fold_ua, chosen = [], [], []
    for fold, test_speakers in speaker_folds(train, test).items():
        fit_rows = np.flatnonzero(~train.speaker.isin(test_speakers))
        test_rows = np.flatnonzero(test.speaker.isin(test_speakers))
        if len(test_rows) == 0 or train.speaker.iloc[fit_rows].nunique() < MIN_TRAIN_SPEAKERS:
            continue
        pred, info = fit_predict(X_train[fit_rows], y_train[fit_rows], train.speaker.to_numpy()[fit_rows],
                                 X_test[test_rows], len(classes), test.speaker.to_numpy()[test_rows], normalisation)
        rows.append(pd.DataFrame({"key": test.key.to_numpy()[test_rows], "fold": fold,
                                  "y_true": y_test[test_rows], "y_pred": pred}))
        fold_ua.append(balanced_accuracy_score(y_test[test_rows], pred))
        chosen.append({"fold": fold, "n_train": len(fit_rows), "n_test": len(test_rows), "ua": fold_ua[-1], **info})
    if not rows:
        return pd.DataFrame(columns=["key", "fold", "y_true", "y_pred"]), {}, pd.DataFrame(chosen)
    preds, per_fold = pd.concat(rows, ignore_index=True), pd.DataFrame(chosen)
    summary = {**scores(preds.y_true, preds.y_pred, classes), "ua_fold_mean": float(np.mean(fold_ua)),
               "ua_fold_std": float(np.std(fold_ua, ddof=1)) if len(fold_ua) > 1 else np.nan,
               "n_folds": len(fold_ua), "n_train": int(per_fold.n_train.mean()), "n_test": len(preds)}
    return preds, summary, per_fold
