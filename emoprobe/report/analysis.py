"""What the notebooks compute beyond the results tables: embedding geometry, a temporal probe on the
per-window sequences, and the video frame-order control, read from the embedding stores
($EMOPROBE_EMBEDDINGS, default data/embeddings). The only training here is the grid's own linear
probe (probes.transfer.transfer: the same scaling, inner-CV C and layer, speaker-disjoint folds).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config, probes
from ..probes.transfer import transfer
from ..store.store import EmbeddingStore, available_stores
from . import stats
from . import tables as t


def locations(res: t.Results) -> str:
    """Where a notebook reads and writes."""
    return (f"results: {config.relative(res.dir)}; embeddings: {config.relative(config.embeddings_dir())}; "
            f"figures: {config.relative(config.figures_dir())}")


def need(res: t.Results, *files: str) -> bool:
    """Whether the results have these files; prints which command makes the first absent one."""
    if not res.has(*files):
        print(res.missing(*files))
    return res.has(*files)


def stores() -> dict[str, EmbeddingStore]:
    """Every complete store, by its id ('modality/name')."""
    return {s.id: s for s in available_stores(log=None)}


def store_table(clips: pd.DataFrame | None) -> pd.DataFrame:
    """One row per complete store, from its meta.json: what the notebooks pick stores by, and how many
    of its clips the clips table labels."""
    labelled = set() if clips is None else set(clips.key)
    rows = []
    for name, store in stores().items():
        meta = store.meta()
        keys = (store.dir / "keys.txt").read_text().split()
        rows.append({"store": name, "modality": meta.get("modality"), "encoder": meta.get("encoder"),
                     "weights": meta.get("weights"), "variant": meta.get("variant"), "layered": bool(meta.get("layered")),
                     "n_layers": meta.get("n_layers"), "sequences": bool(meta.get("has_sequences")),
                     "frame_order": meta.get("frame_order"), "clips": len(keys),
                     "labelled clips": len(labelled.intersection(keys))})
    return pd.DataFrame(rows)


def typical_layer(res: t.Results, store: str, n_layers: int | None) -> int | None:
    """For a layered store: the single layer of its main set with the best inner-CV UA, averaged over
    folds (no test label; inner CV may prefer all layers concatenated, but a view needs one layer);
    the middle layer when it was not probed. None for a store without layers."""
    if pd.isna(n_layers) or not n_layers:
        return None
    if res.has("probes.csv", "feature_sets.csv"):
        rows = t.layer_rows(res)
        rows = rows[rows.features == t.main_set(res).get(store)]
        if len(rows):
            return int(rows.groupby("layer").inner_ua.mean().idxmax())
    return int(n_layers) // 2


def labelled_matrix(store: str, clips: pd.DataFrame, layer: int | None = None) -> tuple[np.ndarray, pd.DataFrame]:
    """A store's default pooling (one layer of a layered store) for the clips the table labels: (X,
    the clips table's rows in the same order)."""
    fs = probes.load_feature_set(stores()[store])
    X = fs.X[:, layer] if fs.layered else fs.X
    row_of = {k: i for i, k in enumerate(fs.keys)}
    table = clips[clips.key.isin(row_of)].reset_index(drop=True)
    return np.asarray(X[[row_of[k] for k in table.key]], dtype=np.float64), table


# -- geometry ----------------------------------------------------------------------------------
def _standardise(X: np.ndarray) -> np.ndarray:
    std = X.std(0)
    return (X - X.mean(0)) / np.where(std > 1e-8, std, 1)


def silhouettes(X: np.ndarray, clips: pd.DataFrame, columns: list[str]) -> dict:
    """Silhouette (cosine, on z-scored features) of the clips grouped by each column, and of the
    label after z-scoring each speaker's clips apart (speaker normalisation): above zero, clips sit
    closer to their own group than to the nearest other one."""
    from sklearn.metrics import silhouette_score

    Z = _standardise(X)
    out = {c: silhouette_score(Z, clips[c].astype(str), metric="cosine") for c in columns if clips[c].nunique() > 1}
    per_speaker = np.zeros_like(Z)
    for speaker in clips.speaker.unique():
        rows = (clips.speaker == speaker).to_numpy()
        per_speaker[rows] = _standardise(X[rows])
    out["label, speaker-normalised"] = silhouette_score(per_speaker, clips.label.astype(str), metric="cosine")
    return out


def project(X: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D view of z-scored features: PCA, or t-SNE on the first 50 principal components."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    Z = _standardise(X)
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(Z)
    Z = PCA(min(50, *Z.shape), random_state=seed).fit_transform(Z)
    return TSNE(2, perplexity=min(30, (len(Z) - 1) / 3), init="pca", random_state=seed).fit_transform(Z)


# -- temporal probe ----------------------------------------------------------------------------
def temporal_views(store: str, clips: pd.DataFrame, layer: int | None, seed: int = 0):
    """Clip vectors from the per-window sequences a store kept (one layer of a layered store), for the
    labelled clips that have one: (views, those clips' rows). Views: the mean; mean and std; the
    means of the first, middle and last third (order kept); the same thirds after shuffling the
    windows (as many values, no order)."""
    rng = np.random.default_rng(seed)
    source = stores()[store]
    table = clips[[(source.clip_dir / f"{k}.npz").exists() for k in clips.key]].reset_index(drop=True)
    sequences = [s[layer] if s.ndim == 3 else s for s in map(source.sequence, table.key)]

    def thirds(s):
        s = np.repeat(s, 3, axis=0) if len(s) < 3 else s  # a clip shorter than three windows
        return np.concatenate([part.mean(0) for part in np.array_split(s, 3)])

    views = {"mean": np.stack([s.mean(0) for s in sequences]),
             "mean+std": np.stack([np.concatenate([s.mean(0), s.std(0)]) for s in sequences]),
             "thirds (in order)": np.stack([thirds(s) for s in sequences]),
             "thirds (windows shuffled)": np.stack([thirds(s[rng.permutation(len(s))]) for s in sequences])}
    return views, table


def probe_views(views: dict[str, np.ndarray], clips: pd.DataFrame) -> pd.DataFrame:
    """The grid's linear probe on each view (rows as `clips`), speaker-disjoint folds: per-clip
    predictions (view, key, speaker, fold, y_true, y_pred as label names)."""
    classes = list(clips.label.astype(str).unique())
    table = clips.assign(label=clips.label.astype(str))
    out = []
    for name, X in views.items():
        preds, _, _ = transfer(table, table, X.astype(np.float32), X.astype(np.float32), classes)
        named = {"y_true": np.asarray(classes)[preds.y_true], "y_pred": np.asarray(classes)[preds.y_pred]}
        out.append(preds.assign(view=name, **named).merge(clips[["key", "speaker"]], on="key"))
    return pd.concat(out, ignore_index=True)


def fold_ua(preds: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """UA of per-clip predictions per group of `by` and fold: columns by, fold, ua."""
    return preds.groupby([*by, "fold"], sort=False).apply(t.ua, include_groups=False).rename("ua").reset_index()


def view_comparisons(preds: pd.DataFrame, pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """View a minus view b: pooled UA difference with its paired speaker-bootstrap interval, and the
    folds a wins."""
    per_fold = fold_ua(preds, ["view"]).pivot(index="fold", columns="view", values="ua")
    rows = []
    for a, b in pairs:
        diff = (per_fold[a] - per_fold[b]).dropna()
        rows.append({"a": a, "b": b, **stats.paired_bootstrap(preds[preds.view == a], preds[preds.view == b]),
                     "folds won": f"{(diff > 0).sum()}/{len(diff)}"})
    return pd.DataFrame(rows)


# -- frame order -------------------------------------------------------------------------------
def frame_order_pairs(table: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(original store, permuted store, order) for stores of one encoder that differ in frame order."""
    video = table[table.frame_order.notna()]
    original = video[video.frame_order == "original"].set_index(["modality", "encoder"]).store
    return [(original[(r.modality, r.encoder)], r.store, r.frame_order) for r in video.itertuples()
            if r.frame_order != "original" and (r.modality, r.encoder) in original.index]


def frame_order_similarity(original: str, permuted: str) -> pd.DataFrame:
    """Per layer: cosine between a clip's embeddings with original and permuted frames, beside the
    cosine between different clips (what 'different' looks like in that layer)."""
    a, b = probes.load_feature_set(stores()[original]), probes.load_feature_set(stores()[permuted])
    common = sorted(set(a.keys) & set(b.keys))
    Xa, Xb = (fs.X[[fs.keys.index(k) for k in common]] for fs in (a, b))
    Xa, Xb = (X if X.ndim == 3 else X[:, None] for X in (Xa, Xb))
    rows = []
    for layer in range(Xa.shape[1]):
        A, B = (X[:, layer] / np.linalg.norm(X[:, layer], axis=1, keepdims=True) for X in (Xa, Xb))
        cos = A @ B.T
        off = ~np.eye(len(common), dtype=bool)
        rows.append({"layer": layer, "same clip, other order": np.diag(cos).mean(),
                     "different clips": cos[off].mean() if off.any() else np.nan, "clips": len(common)})
    return pd.DataFrame(rows)


# -- confusions --------------------------------------------------------------------------------
def confusion(preds: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Row-normalised confusion matrix (% of each true class), classes in the given order."""
    table = pd.crosstab(preds.y_true.astype(str), preds.y_pred.astype(str), normalize="index") * 100
    return table.reindex(index=classes, columns=classes, fill_value=0)
