"""Statistics over the grid's results: intervals over folds, speaker-cluster bootstraps, paired tests.

Clips of one speaker are not independent (same voice, same face), so resampling clips understates
the uncertainty; the bootstraps here resample SPEAKERS with replacement (all clips of a drawn
speaker, as many times as drawn) and recompute the pooled UA from the per-clip predictions. Two
systems are compared on the same resampled speakers (paired). Fold-level intervals use the t
distribution over folds (six values: read them as rough).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as st

from ..probes.linear import HEADLINE_CANDIDATES

N_BOOT = 2000  # speaker resamples: stable 95 % percentile intervals in well under a second per system
LEVEL = 0.95
SEED = 0
SYSTEM = ["features", "normalisation", "probe", "fusion", "candidate"]  # what identifies a system in predictions


def fold_interval(values, level: float = LEVEL) -> dict:
    """Mean, std and t-interval of per-fold values."""
    values = np.asarray(values, dtype=float)
    n, mean = len(values), values.mean()
    std = values.std(ddof=1) if n > 1 else np.nan
    half = st.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n) if n > 1 else np.nan
    return {"mean": mean, "std": std, "ci_low": mean - half, "ci_high": mean + half, "n_folds": n}


def over_folds(table: pd.DataFrame, by: list[str], value: str, level: float = LEVEL) -> pd.DataFrame:
    """fold_interval of `value` per group of `by` (one row per group)."""
    rows = [{**dict(zip(by, key if isinstance(key, tuple) else (key,))), **fold_interval(part[value], level)}
            for key, part in table.groupby(by, sort=False, dropna=False)]
    return pd.DataFrame(rows)


def shapley_summary(per_fold: pd.DataFrame, level: float = LEVEL) -> pd.DataFrame:
    """shapley.csv: per level x player x metric (and class) x method, the mean Shapley value over folds with its
    t-interval over folds, and the sampling standard error of that mean (0 for exact values)."""
    keys = ["normalisation", "level", "player", "metric", "class", "method", "estimator"]
    table = over_folds(per_fold, keys, "shapley", level).rename(columns={"mean": "shapley_mean", "std": "shapley_std"})
    se = per_fold.groupby(keys, sort=False, dropna=False).sampling_se.apply(lambda s: float(np.sqrt((s ** 2).sum()) / len(s)))
    return table.merge(se.rename("sampling_se").reset_index(), on=keys)


def _speaker_counts(preds: pd.DataFrame, speakers: np.ndarray, classes: list) -> tuple[np.ndarray, np.ndarray]:
    """Per speaker x class: (correct predictions, clips) of predictions with columns speaker,
    y_true, y_pred."""
    truth = preds.y_true.astype(str)
    s = pd.Categorical(preds.speaker, categories=speakers).codes
    c = pd.Categorical(truth, categories=classes).codes
    hits, totals = np.zeros((len(speakers), len(classes))), np.zeros((len(speakers), len(classes)))
    np.add.at(totals, (s, c), 1)
    np.add.at(hits, (s, c), (truth == preds.y_pred.astype(str)).to_numpy())
    return hits, totals


def _ua(hits: np.ndarray, totals: np.ndarray) -> np.ndarray:
    """UA over the classes present, along the last axis."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.nanmean(np.where(totals > 0, hits / totals, np.nan), axis=-1)


def speaker_resamples(n_speakers: int, n_boot: int = N_BOOT, seed: int = SEED) -> np.ndarray:
    """(n_boot, n_speakers): how many times each speaker is drawn in each resample."""
    return np.random.default_rng(seed).multinomial(n_speakers, np.full(n_speakers, 1 / n_speakers), size=n_boot)


def _pooled_and_boot(preds: pd.DataFrame, draws: np.ndarray, speakers: np.ndarray, classes: list):
    hits, totals = _speaker_counts(preds, speakers, classes)
    return float(_ua(hits.sum(0), totals.sum(0))), _ua(draws @ hits, draws @ totals)


def _universe(predictions: pd.DataFrame) -> tuple[np.ndarray, list]:
    return np.array(sorted(predictions.speaker.unique())), sorted(predictions.y_true.astype(str).unique())


def bootstrap_intervals(predictions: pd.DataFrame, n_boot: int = N_BOOT, level: float = LEVEL,
                        seed: int = SEED) -> pd.DataFrame:
    """Per system (SYSTEM columns): pooled UA over all its test predictions (every fold, every
    seed) and its speaker-bootstrap percentile interval."""
    speakers, classes = _universe(predictions)
    draws = speaker_resamples(len(speakers), n_boot, seed)
    rows = []
    for key, part in predictions.groupby(SYSTEM, sort=False, observed=True):
        pooled, boot = _pooled_and_boot(part, draws, speakers, classes)
        rows.append({**dict(zip(SYSTEM, key)), "ua_pooled": pooled, "ua_boot_low": np.quantile(boot, (1 - level) / 2),
                     "ua_boot_high": np.quantile(boot, (1 + level) / 2)})
    return pd.DataFrame(rows)


def paired_bootstrap(a: pd.DataFrame, b: pd.DataFrame, n_boot: int = N_BOOT, level: float = LEVEL,
                     seed: int = SEED) -> dict:
    """Pooled UA(a) - UA(b) over the clips both predicted, on the same resampled speakers: the
    difference, its percentile interval and a two-sided bootstrap p (twice the share of resamples
    on the far side of zero)."""
    common = set(a.key) & set(b.key)
    a, b = a[a.key.isin(common)], b[b.key.isin(common)]
    speakers, classes = _universe(a)
    draws = speaker_resamples(len(speakers), n_boot, seed)
    (ua_a, boot_a), (ua_b, boot_b) = (_pooled_and_boot(x, draws, speakers, classes) for x in (a, b))
    diff = boot_a - boot_b
    return {"diff": ua_a - ua_b, "ci_low": np.quantile(diff, (1 - level) / 2),
            "ci_high": np.quantile(diff, (1 + level) / 2),
            "p": min(1.0, 2 * min((diff <= 0).mean(), (diff >= 0).mean())), "n_speakers": len(speakers)}


def fusion_vs_members(results: pd.DataFrame, feature_sets: pd.DataFrame, probe: str = "linear") -> pd.DataFrame:
    """Every fusion (each method) against its best member: mean UA over folds of both, and the gap
    (fusion minus best member, UA points). Members are found through feature_sets.csv; a member's
    score is its single-set headline row (inner-best layer)."""
    headline = results[(results.probe == probe) & results.candidate.isin(HEADLINE_CANDIDATES)]
    singles = headline[(headline.n_members == 1) & (headline.fusion == "none")].groupby("features").ua.mean()
    fused = headline[headline.n_members > 1].groupby(["features", "fusion"]).ua.mean().rename("ua").reset_index()
    members = feature_sets[feature_sets.n_members > 1][["features", "set"]]
    best = members.assign(member_ua=members.set.map(singles)).sort_values("member_ua").groupby("features").last()
    out = fused.join(best, on="features").rename(columns={"set": "best_member", "member_ua": "best_member_ua"})
    out["n_members"] = out.features.map(feature_sets.groupby("features").n_members.first())
    out["gap"] = 100 * (out.ua - out.best_member_ua)
    return out.sort_values(["n_members", "features", "fusion"], ignore_index=True)
