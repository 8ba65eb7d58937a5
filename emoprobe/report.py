"""Tables for the findings and notebooks, computed from results/ and the stores' meta.json only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from . import labels, paths
from .store import available_stores

# Published frozen-encoder UA on these same six folds (EmoBox, Ma et al. 2024, RAVDESS table).
# Quoted for scale only: NOT produced by this repository.
EMOBOX_PUBLISHED_UA = {"wav2vec2-base": 54.3, "HuBERT-base": 65.4, "WavLM-large": 72.0, "Whisper-large-v3": 75.3}


def load_results(results_dir=None) -> pd.DataFrame:
    results = pd.read_csv(Path(results_dir or paths.RESULTS) / "probes.csv")
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
        handcrafted = model.startswith(("openSMILE", "torchaudio", "OpenFace"))
        rows.append({"store": f"{store.modality}/{store.model}", "model": model,
                     "weights": "random (control)" if meta.get("random_init") else
                                "none (hand-crafted)" if handcrafted else "pretrained",
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
