"""Tables for the findings and notebooks, computed from results/ and the stores' meta.json only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .. import config
from ..data import labels
from ..store.store import available_stores

# Published frozen-encoder UA on these same six folds (EmoBox, Ma et al. 2024, RAVDESS table).
# Quoted for scale only: NOT produced by this repository.
EMOBOX_PUBLISHED_UA = {"wav2vec2-base": 54.3, "HuBERT-base": 65.4, "WavLM-large": 72.0, "Whisper-large-v3": 75.3}


def load_results(results_dir=None) -> pd.DataFrame:
    results = pd.read_csv(Path(results_dir or config.RESULTS) / "probes.csv")
    results["layer"] = results["layer"].astype(str)
    return results


def pm(mean: float, std: float, scale: float = 100) -> str:
    return f"{mean * scale:.1f} ± {std * scale:.1f}"


def headline_rows(results: pd.DataFrame) -> pd.DataFrame:
    """The rows that stand for a feature set without looking at test data: for layered encoders the
    layer picked by inner CV ('inner-best'), otherwise the single layer ('all')."""
    return results[results.layer.isin(["all", "inner-best"])]


def summary_table(results: pd.DataFrame, n_sets: int | None = None) -> pd.DataFrame:
    """features x probe: UA/WA/macro-F1 mean ± std over folds (and seeds), best first."""
    rows = headline_rows(results)
    if n_sets is not None:
        rows = rows[rows.n_sets == n_sets]
    g = rows.groupby(["features", "probe"])
    stats = g[["ua", "wa", "macro_f1"]].agg(["mean", "std"])
    out = pd.DataFrame({
        "UA %": [pm(m, s) for m, s in stats["ua"].to_numpy()],
        "WA %": [pm(m, s) for m, s in stats["wa"].to_numpy()],
        "macro-F1 %": [pm(m, s) for m, s in stats["macro_f1"].to_numpy()],
        "clips": g.apply(lambda d: int(d.groupby("fold").n_test.first().sum()), include_groups=False).to_numpy()
        if len(rows) else [],
        "folds x seeds": [f"{f} x {s}" for f, s in zip(g.fold.nunique(), g.seed.nunique())],
        "_ua": stats["ua"]["mean"].to_numpy()}, index=stats.index)
    return out.sort_values("_ua", ascending=False).drop(columns="_ua").reset_index()


def layer_table(results: pd.DataFrame) -> pd.DataFrame:
    """Linear-probe UA (mean over folds, %) per layer of each layered feature set."""
    per_layer = results[(results.probe == "linear") & ~results.layer.isin(["all", "inner-best"])].copy()
    if per_layer.empty:
        return per_layer
    per_layer["layer"] = per_layer.layer.astype(int)
    return (per_layer.groupby(["features", "layer"]).ua.mean() * 100).unstack("layer").round(1)


def per_emotion_recall(results: pd.DataFrame, probe: str = "linear", n_sets: int | None = 1) -> pd.DataFrame:
    rows = headline_rows(results)
    rows = rows[(rows.probe == probe) & ((rows.n_sets == n_sets) if n_sets else True)]
    cols = [f"recall_{e}" for e in labels.EMOTION_NAMES]
    table = (rows.groupby("features")[cols].mean() * 100).round(1)
    table.columns = list(labels.EMOTION_NAMES)
    return table


def store_provenance(root=None) -> pd.DataFrame:
    """Which encoders were run: one row per finalized store, from its meta.json."""
    rows = []
    for store in available_stores(root):
        meta = store.meta()
        model = str(meta.get("model_id"))
        rows.append({"store": f"{store.modality}/{store.model}", "model": model,
                     "weights": "random (control)" if meta.get("random_init") else
                                "none (hand-crafted)" if model.startswith(("openSMILE", "torchaudio")) else
                                "OpenFace's trained AU detectors" if model.startswith("OpenFace") else "pretrained",
                     "clips": meta.get("n_clips"), "failures": meta.get("n_failures"),
                     "poolings": ", ".join(f"{k} {tuple(v[1:])}" for k, v in meta.get("poolings", {}).items()),
                     "extraction s": meta.get("seconds_extracting")})
    return pd.DataFrame(rows)


def markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table (no tabulate dependency)."""
    if index:
        df = df.reset_index()
    header = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join("" if (isinstance(v, float) and np.isnan(v)) else str(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([header, rule, *body])


# ---------------------------------------------------------------------------------------------
# Comparisons and failure analysis used by the written findings
# ---------------------------------------------------------------------------------------------
def fold_scores(results: pd.DataFrame, features: str, probe: str = "linear", metric: str = "ua") -> pd.Series:
    """Per-fold score (averaged over seeds) of one feature set's headline rows."""
    rows = headline_rows(results)
    rows = rows[(rows.features == features) & (rows.probe == probe)]
    return rows.groupby("fold")[metric].mean()


def paired(results: pd.DataFrame, a: str, b: str, probe: str = "linear") -> dict:
    """a minus b over the folds both have: mean, std, folds won, and a two-sided Wilcoxon p."""
    from scipy.stats import wilcoxon

    sa, sb = fold_scores(results, a, probe), fold_scores(results, b, probe)
    common = sa.index.intersection(sb.index)
    diff = (sa[common] - sb[common]).to_numpy()
    p = wilcoxon(diff).pvalue if len(diff) >= 5 and np.any(diff != 0) else np.nan
    return {"a": a, "b": b, "mean": diff.mean(), "std": diff.std(ddof=1) if len(diff) > 1 else np.nan,
            "wins": int((diff > 0).sum()), "n": len(diff), "p": p}


def describe_paired(d: dict) -> str:
    p = "n/a" if np.isnan(d["p"]) else f"{d['p']:.3f}"
    return (f"{d['a']} minus {d['b']}: {100 * d['mean']:+.1f} ± {100 * d['std']:.1f} UA points over "
            f"{d['n']} folds ({d['a']} higher in {d['wins']} of {d['n']}; Wilcoxon p = {p})")


def load_predictions(features: str, probe: str = "linear", results_dir=None) -> pd.DataFrame:
    import re

    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", features)
    return pd.read_csv(Path(results_dir or config.RESULTS) / "predictions" / f"{slug}__{probe}.csv.gz",
                       dtype={"layer": str})


def headline_predictions(features: str, probe: str = "linear", results_dir=None) -> pd.DataFrame:
    preds = load_predictions(features, probe, results_dir)
    return preds[preds.layer.isin(["all", "inner-best"])]


def confused_pairs(preds: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Most frequent (true -> predicted) errors as a share of the true class's clips."""
    errors = preds[preds.y_true != preds.y_pred]
    counts = errors.groupby(["y_true", "y_pred"]).size().rename("errors").reset_index()
    totals = preds.groupby("y_true").size()
    counts["share_pct"] = (100 * counts.errors / counts.y_true.map(totals)).round(1)
    counts["true"] = counts.y_true.map(labels.EMOTIONS)
    counts["predicted"] = counts.y_pred.map(labels.EMOTIONS)
    return counts.sort_values("share_pct", ascending=False).head(top)[["true", "predicted", "errors", "share_pct"]]


def ua_by(preds: pd.DataFrame, clips: pd.DataFrame, column: str) -> pd.Series:
    """UA (%) of the predictions within each value of a clip attribute (actor, intensity, sex...)."""
    from sklearn.metrics import balanced_accuracy_score

    import warnings

    joined = preds.merge(clips[["key", column]], on="key")
    with warnings.catch_warnings():  # a subgroup (e.g. strong intensity) lacks some classes: expected
        warnings.simplefilter("ignore", UserWarning)
        return joined.groupby(column).apply(
            lambda d: 100 * balanced_accuracy_score(d.y_true, d.y_pred), include_groups=False).round(1)
