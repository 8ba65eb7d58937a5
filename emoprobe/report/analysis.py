"""Shared helpers of the analysis notebooks (analysis/*.ipynb): tables, paired tests, bootstraps, plots.

Everything is computed from results/ (probes.csv, predictions/) and the embedding stores. The only
training here is a handful of linear probes (probes.linear_probe: same scaling, inner-CV C and
actor-disjoint folds as the grid) for analyses the grid does not run: the temporal probe, the
speech->song transfer and the missing-modality test. Paths follow emoprobe.paths
($EMOPROBE_RESULTS, $EMOPROBE_EMBEDDINGS); figures go to $EMOPROBE_FIGURES (default analysis/figures).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .. import config, probes
from ..data import folds as folds_mod
from ..data import labels, ravdess
from ..store.store import EmbeddingStore, available_stores
from . import tables as report

FIGURES = Path(os.environ.get("EMOPROBE_FIGURES", config.FIGURES))
CLIP_ATTRIBUTES = ("emotion", "actor", "sex", "intensity")  # what the embedding geometry is coloured by
N_BOOT = 2000  # bootstrap resamples: enough for stable 95 % intervals, a second or two per table
SCHEME = "emobox6"  # the folds every analysis uses, as the grid
READABLE = {"emotion": labels.EMOTIONS, "intensity": labels.INTENSITIES, "statement": labels.STATEMENTS,
            "repetition": labels.REPETITIONS}


def setup_plots():
    """Small inline figures (the saved PNGs get a higher dpi) and wide tables."""
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": 72, "savefig.dpi": 130, "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False})
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)


def savefig(fig, name: str, dpi: int | None = None) -> None:
    """analysis/figures/<name>.png (a lower dpi keeps many-point scatter grids small to commit)."""
    FIGURES.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURES / f"{name}.png", bbox_inches="tight", dpi=dpi)  # None: rcParams["savefig.dpi"]


def locations() -> str:
    """Where the notebook reads and writes (relative to the repository when inside it)."""
    def show(path):
        path = Path(path).resolve()
        return str(path.relative_to(config.REPO)) if path.is_relative_to(config.REPO) else str(path)
    return f"results: {show(config.RESULTS)}; embeddings: {show(config.EMBEDDINGS)}; figures: {show(FIGURES)}"


# ---------------------------------------------------------------------------------------------
# Clips, stores and feature-set names
# ---------------------------------------------------------------------------------------------
def clips_from_keys(keys) -> pd.DataFrame:
    """The clips table (labels only, as ravdess.load_clips) from clip keys: a key names every label,
    so the analyses need no media on disk."""
    rows = []
    for key in sorted(set(keys)):
        n = ravdess.parse_name(f"03-{key}")  # the modality field is not part of the key
        rows.append({"key": key, "emotion": n.emotion, "emotion_name": labels.EMOTIONS[n.emotion],
                     "intensity": n.intensity, "statement": n.statement, "repetition": n.repetition,
                     "actor": n.actor, "sex": labels.actor_sex(n.actor), "channel": labels.CHANNELS[n.channel]})
    return pd.DataFrame(rows)


def all_clips(root=None) -> pd.DataFrame:
    """Every clip that any finalized store holds."""
    keys = set()
    for store in available_stores(root):
        keys |= set((store.dir / "keys.txt").read_text().split())
    return clips_from_keys(keys)


def store_table(root=None) -> pd.DataFrame:
    """One row per finalized store: what the notebooks need to pick and pair them."""
    rows = []
    provenance = report.store_provenance(root).set_index("store")
    for store in available_stores(root):
        meta, name = store.meta(), f"{store.modality}/{store.model}"
        keys = (store.dir / "keys.txt").read_text().split()
        shape = next(iter(meta["poolings"].values()))
        rows.append({"store": name, "modality": store.modality, "weights": provenance.loc[name, "weights"],
                     "random_init": bool(meta.get("random_init")),
                     "layers": shape[1] if len(shape) == 3 else None, "poolings": ", ".join(meta["poolings"]),
                     "sequences": bool(meta.get("has_sequences")),
                     "speech clips": sum(k.startswith("01-") for k in keys),
                     "song clips": sum(k.startswith("02-") for k in keys),
                     "frame order": meta.get("frame_order")})
    return pd.DataFrame(rows)


def readable(clips: pd.DataFrame, attribute: str) -> pd.Series:
    """A clip attribute with names instead of codes (emotion, intensity, statement, repetition)."""
    names = READABLE.get(attribute)
    return clips[attribute].map(names) if names else clips[attribute]


def short_name(features: str, max_sets: int = 3, models_only: bool = False) -> str:
    """A label that fits a plot: a fusion of many sets is named by its size and modalities;
    models_only drops the 'modality/' prefixes."""
    parts = members(features)
    if len(parts) > max_sets:
        return f"{len(parts)} sets ({modalities(features)})"
    return "+".join(p.split("/")[-1] for p in parts) if models_only else features


def store_keys(name: str, root=None, with_sequence: bool = False) -> list[str]:
    """A store's clip keys; with_sequence: only those whose per-clip file (with the sequence) exists."""
    store = load_store(name, root)
    keys = (store.dir / "keys.txt").read_text().split()
    return [k for k in keys if (store.clip_dir / f"{k}.npz").exists()] if with_sequence else keys


def load_store(name: str, root=None) -> EmbeddingStore:
    modality, model = name.split(":")[0].split("/")
    return EmbeddingStore(modality, model, root or config.EMBEDDINGS)


def members(features: str) -> list[str]:
    return features.split("+")


def modalities(features: str) -> str:
    """'audio', 'face', 'audio+face'...: the modalities a feature set (or fusion) draws on."""
    return "+".join(sorted({m.split("/")[0] for m in members(features)}))


# ---------------------------------------------------------------------------------------------
# Scores from results/
# ---------------------------------------------------------------------------------------------
def ranking(results: pd.DataFrame) -> pd.DataFrame:
    """Headline UA (%) per feature set and probe: mean and std over folds x seeds, best first."""
    rows = report.headline_rows(results)
    g = rows.groupby(["features", "probe"])
    out = pd.DataFrame({"ua": g.ua.mean() * 100, "ua_std": g.ua.std() * 100, "folds": g.fold.nunique(),
                        "seeds": g.seed.nunique()}).reset_index()
    out["n_sets"] = out.features.map(lambda f: len(members(f)))
    out["modalities"] = out.features.map(modalities)
    return out.sort_values("ua", ascending=False).reset_index(drop=True)


def best(results: pd.DataFrame, modality: str | None = None, probe: str = "linear", n_sets: int | None = 1,
         among=None) -> str | None:
    """The best feature set by mean UA, optionally of one modality (combination), among some names;
    extra poolings (':meanstd') count only when named in `among`."""
    table = ranking(results)
    table = table[table.probe == probe]
    if n_sets is not None:
        table = table[table.n_sets == n_sets]
    if modality is not None:
        table = table[table.modalities == modality]
    table = table[table.features.isin(among)] if among is not None else table[~table.features.str.contains(":")]
    return table.features.iloc[0] if len(table) else None


def fusion_of(results: pd.DataFrame, names) -> str | None:
    """The fused feature set made of exactly these sets, if the grid ran it."""
    wanted = set(names)
    return next((f for f in results.features.unique() if set(members(f)) == wanted), None)


def layer_curves(results: pd.DataFrame) -> pd.DataFrame:
    """Linear-probe UA (%) per layer of each layered set: mean and std over folds (long format)."""
    rows = results[(results.probe == "linear") & ~results.layer.isin(["all", "inner-best"])].copy()
    rows["layer"] = rows.layer.astype(int)
    g = rows.groupby(["features", "layer"]).ua
    return pd.DataFrame({"ua": g.mean() * 100, "ua_std": g.std() * 100}).reset_index()


def chosen_layers(results: pd.DataFrame) -> pd.DataFrame:
    """The layer inner CV picked in each fold (layered sets x folds), from the 'inner-best' rows."""
    rows = results[(results.layer == "inner-best") & (results.probe == "linear") & (results.n_sets == 1)]
    return rows.pivot_table(index="features", columns="fold", values="layers_used", aggfunc="first")


def chosen_layer(results: pd.DataFrame, features: str) -> int | None:
    """For a layered set: the layer inner CV picked most often across folds (None if not layered)."""
    rows = results[(results.features == features) & (results.layer == "inner-best") & (results.probe == "linear")]
    if rows.empty or "layers_used" not in rows:
        return None
    return int(float(rows.layers_used.astype(str).str.split(",").str[0].mode().iloc[0]))


# ---------------------------------------------------------------------------------------------
# Paired tests over folds, bootstrap over clips
# ---------------------------------------------------------------------------------------------
def ua(y_true, y_pred) -> float:
    """Unweighted average recall over the classes present in y_true (balanced accuracy, without
    sklearn's warning when a probe predicts a class the test set lacks, e.g. calm on song clips)."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean([(y_pred[y_true == c] == c).mean() for c in np.unique(y_true)]))


def sign_flip_p(diff) -> float:
    """Two-sided paired permutation test of mean(diff) = 0: every sign flip when there are at most
    16 pairs (exact), else 20000 random ones."""
    diff = np.asarray(diff, dtype=float)
    n = len(diff)
    if n == 0 or not np.any(diff):
        return np.nan
    if n <= 16:
        signs = 1 - 2 * ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1)
    else:
        signs = np.random.default_rng(0).choice([-1, 1], size=(20000, n))
    null = np.abs((signs * diff).mean(1))
    return float(np.mean(null >= abs(diff.mean()) - 1e-12))


def compare(results: pd.DataFrame, a: str, b: str, probe: str = "linear") -> dict:
    """a minus b, paired by fold (MLP seeds averaged within a fold: they share the test actors, so
    the fold is the independent unit): mean and std in UA points, folds won, Wilcoxon and
    sign-flip permutation p, and the smallest p the number of folds allows."""
    d = report.paired(results, a, b, probe)
    diff = (report.fold_scores(results, a, probe) - report.fold_scores(results, b, probe)).dropna()
    return {"a": a, "b": b, "probe": probe, "diff": 100 * d["mean"], "std": 100 * d["std"],
            "wins": f"{d['wins']}/{d['n']}", "wilcoxon_p": d["p"], "permutation_p": sign_flip_p(diff),
            "min_p": 2 / 2 ** d["n"] if d["n"] else np.nan}


def compare_table(results: pd.DataFrame, comparisons: dict, probes_=("linear", "mlp")) -> pd.DataFrame:
    """One row per named comparison (label -> (a, b)) and probe where both sides were run."""
    rows = []
    for label, (a, b) in comparisons.items():
        for probe in probes_:
            have = set(results[results.probe == probe].features)
            if a in have and b in have:
                rows.append({"comparison": label, **compare(results, a, b, probe)})
    return pd.DataFrame(rows).round(3)


def _unit(key: str, unit: str):
    return key if unit == "clip" else int(key[-2:])  # the actor is the key's last field


def bootstrap_ua(preds: dict[str, pd.DataFrame], unit: str = "clip", n_boot: int = N_BOOT, seed: int = 0) -> pd.DataFrame:
    """UA (%) of each system on the same resamples (n_boot x systems), over the clips all share.

    Resamples clips (unit='clip') or whole actors ('actor': clips of one actor are not independent,
    so this interval is the honest, wider one). A clip's rows from several seeds move together.
    """
    common = set.intersection(*(set(p.key) for p in preds.values()))
    units = sorted({_unit(k, unit) for k in common})
    index = {u: i for i, u in enumerate(units)}
    counts = np.random.default_rng(seed).multinomial(len(units), np.full(len(units), 1 / len(units)), size=n_boot)
    out = {}
    for name, p in preds.items():
        p = p[p.key.isin(common)]
        W = counts[:, [index[_unit(k, unit)] for k in p.key]].astype(np.float32)
        onehot = (p.y_true.to_numpy()[:, None] == probes.CLASSES[None, :]).astype(np.float32)
        hits = onehot * (p.y_true == p.y_pred).to_numpy()[:, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            recall = (W @ hits) / (W @ onehot)
        out[name] = 100 * np.nanmean(np.where(onehot.any(0), recall, np.nan), axis=1).astype(np.float64)
    return pd.DataFrame(out)


def pooled_ua(preds: pd.DataFrame) -> float:
    """UA (%) over all test predictions pooled across folds (and seeds)."""
    return 100 * ua(preds.y_true, preds.y_pred)


def ci_table(preds: dict[str, pd.DataFrame], n_boot: int = N_BOOT) -> pd.DataFrame:
    """Pooled UA with 95 % percentile intervals from clip and from actor resampling."""
    by_clip, by_actor = bootstrap_ua(preds, "clip", n_boot), bootstrap_ua(preds, "actor", n_boot)
    return pd.DataFrame({
        "UA pooled": [pooled_ua(p) for p in preds.values()],
        "clip CI low": by_clip.quantile(0.025), "clip CI high": by_clip.quantile(0.975),
        "actor CI low": by_actor.quantile(0.025), "actor CI high": by_actor.quantile(0.975)},
        index=list(preds)).round(1)


def diff_ci(preds: dict[str, pd.DataFrame], pairs: dict, n_boot: int = N_BOOT) -> pd.DataFrame:
    """Paired bootstrap of UA differences (label -> (a, b), names of `preds`): the same resampled
    clips (or actors) score both systems."""
    rows = []
    for unit in ("clip", "actor"):
        boot = bootstrap_ua(preds, unit, n_boot)
        for label, (a, b) in pairs.items():
            d = boot[a] - boot[b]
            rows.append({"comparison": label, "resampling": unit, "diff": d.mean(), "CI low": d.quantile(0.025),
                         "CI high": d.quantile(0.975), "share a <= b": (d <= 0).mean()})
    return pd.DataFrame(rows).round(3)


# ---------------------------------------------------------------------------------------------
# Per emotion
# ---------------------------------------------------------------------------------------------
def recall_table(results: pd.DataFrame, features, probe: str = "linear") -> pd.DataFrame:
    """Recall (%) per emotion, mean over folds (and seeds), for the given feature sets."""
    table = report.per_emotion_recall(results, probe, n_sets=None)
    return table.loc[[f for f in features if f in table.index]]


def fusion_gains(results: pd.DataFrame, probe: str = "linear") -> pd.DataFrame:
    """What adding a set to others gives per emotion: recall(fusion) - recall(fusion without it),
    for every fusion whose reduced version was also run. Index (added, to); columns emotions + UA."""
    recall = report.per_emotion_recall(results, probe, n_sets=None)
    overall = ranking(results).query("probe == @probe").set_index("features").ua
    rows = []
    for fusion in recall.index:
        parts = members(fusion)
        for added in parts if len(parts) > 1 else []:
            rest = "+".join(p for p in parts if p != added)
            if rest in recall.index:
                rows.append({"added": added, "to": rest, **(recall.loc[fusion] - recall.loc[rest]).round(1),
                             "UA": round(overall[fusion] - overall[rest], 1)})
    return pd.DataFrame(rows).set_index(["added", "to"]) if rows else pd.DataFrame()


def confusion(preds: pd.DataFrame) -> pd.DataFrame:
    """Row-normalised confusion matrix (% of each true emotion), emotions in label order."""
    table = pd.crosstab(preds.y_true, preds.y_pred, normalize="index") * 100
    table = table.reindex(index=probes.CLASSES, columns=probes.CLASSES, fill_value=0)
    table.index = table.columns = [labels.EMOTIONS[c] for c in probes.CLASSES]
    return table


def pair_confusion(preds: pd.DataFrame) -> pd.DataFrame:
    """Confusion between two emotions in either direction: (a taken for b + b taken for a) as a
    share (%) of both classes' test predictions; most confused pairs first."""
    counts = pd.crosstab(preds.y_true, preds.y_pred)
    totals = preds.groupby("y_true").size()
    rows = []
    for i, a in enumerate(probes.CLASSES):
        for b in probes.CLASSES[i + 1:]:
            ab = counts.at[a, b] if a in counts.index and b in counts.columns else 0
            ba = counts.at[b, a] if b in counts.index and a in counts.columns else 0
            rows.append({"pair": f"{labels.EMOTIONS[a]} / {labels.EMOTIONS[b]}", "a as b": ab, "b as a": ba,
                         "share %": 100 * (ab + ba) / (totals.get(a, 0) + totals.get(b, 0))})
    return pd.DataFrame(rows).sort_values("share %", ascending=False).round(1).reset_index(drop=True)


def plot_confusion(ax, cm: pd.DataFrame, title: str, diff: bool = False):
    limit = max(1.0, np.nanmax(np.abs(cm.to_numpy()))) if diff else 100
    image = ax.imshow(cm, cmap="RdBu_r" if diff else "Blues", vmin=-limit if diff else 0, vmax=limit)
    ax.set_xticks(range(len(cm)), cm.columns, rotation=60, ha="right")
    ax.set_yticks(range(len(cm)), cm.index)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    for (i, j), v in np.ndenumerate(cm.to_numpy()):
        if abs(v) >= (3 if diff else 10):
            ax.text(j, i, f"{v:+.0f}" if diff else f"{v:.0f}", ha="center", va="center", fontsize=7)
    return image


# ---------------------------------------------------------------------------------------------
# Embedding geometry
# ---------------------------------------------------------------------------------------------
def load_matrix(name: str, root=None, layer: int | None = None) -> tuple[list[str], np.ndarray]:
    """(keys, clips x dim) of a store's default pooling (or ':pooling'); one layer of a layered store
    (default: the middle one)."""
    pooling = name.split(":")[1] if ":" in name else None
    fs = probes.load_feature_set(load_store(name, root), pooling)
    X = fs.X
    if fs.layered:
        X = X[:, fs.n_layers // 2 if layer is None else layer]
    return fs.keys, np.asarray(X, dtype=np.float64)


def _standardise(X):
    std = X.std(0)
    return (X - X.mean(0)) / np.where(std > 1e-8, std, 1)


def silhouettes(X: np.ndarray, clips: pd.DataFrame, attributes=CLIP_ATTRIBUTES) -> dict:
    """Silhouette (cosine, on z-scored features) of the clips grouped by each attribute, plus emotion
    after z-scoring each actor's clips separately (speaker normalisation): positive = clips sit
    closer to their own group than to the nearest other one."""
    from sklearn.metrics import silhouette_score

    Z = _standardise(X)
    out = {a: silhouette_score(Z, clips[a].to_numpy(), metric="cosine") for a in attributes if clips[a].nunique() > 1}
    per_actor = np.zeros_like(Z)
    for actor in clips.actor.unique():
        rows = (clips.actor == actor).to_numpy()
        per_actor[rows] = _standardise(X[rows])
    out["emotion, actor-normalised"] = silhouette_score(per_actor, clips.emotion.to_numpy(), metric="cosine")
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


def scatter_by(ax, xy: np.ndarray, values: pd.Series, title: str):
    """Scatter coloured by a label; a legend for few categories, none for actors."""
    import matplotlib

    categories = sorted(values.unique())
    cmap = matplotlib.colormaps["tab20" if len(categories) > 10 else "tab10"]
    for i, c in enumerate(categories):
        rows = (values == c).to_numpy()
        ax.scatter(xy[rows, 0], xy[rows, 1], s=5, color=cmap(i % cmap.N), label=str(c), alpha=0.8, linewidths=0)
    if len(categories) <= 10:
        ax.legend(fontsize=6, markerscale=2, frameon=False, loc="best")
    ax.set_title(title, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])


# ---------------------------------------------------------------------------------------------
# Small linear probes for analyses the grid does not run
# ---------------------------------------------------------------------------------------------
def _linear(X: np.ndarray, y, actors, train, test) -> np.ndarray:
    import torch

    torch.set_num_threads(1)  # a busy shared machine; the problems are small
    return probes.linear_probe(np.asarray(X, dtype=np.float32)[None], y, actors, train, test)["pred"][0]


def fold_splits(actors: np.ndarray, scheme: str = SCHEME):
    for fold, test_actors in folds_mod.load_folds(scheme).items():
        train, test = folds_mod.split(actors, test_actors)
        if len(test):
            yield fold, train, test


def fold_probe(views: dict[str, np.ndarray], clips: pd.DataFrame, scheme: str = SCHEME) -> pd.DataFrame:
    """UA of a linear probe on each view (name -> clips x dim, rows as `clips`) per fold.

    The views go through one probe call per fold as if they were layers (zero-padded to one width:
    a zero column stays zero after scaling and gets zero weight), so each still gets its own C."""
    import torch

    torch.set_num_threads(1)
    y, actors = clips.emotion.to_numpy(), clips.actor.to_numpy()
    width = max(X.shape[1] for X in views.values())
    stacked = np.stack([np.pad(np.asarray(X, dtype=np.float32), ((0, 0), (0, width - X.shape[1])))
                        for X in views.values()])
    rows = []
    for fold, train, test in fold_splits(actors, scheme):
        pred = probes.linear_probe(stacked, y, actors, train, test)["pred"]
        rows += [{"view": name, "fold": fold, "ua": ua(y[test], p)} for name, p in zip(views, pred)]
    return pd.DataFrame(rows)


# -- temporal ---------------------------------------------------------------------------------
def sequences(name: str, keys, root=None, layer: int | None = None) -> list[np.ndarray]:
    """Per-window sequences (windows x dim) of some clips; one layer of a layered store."""
    store = load_store(name, root)
    out = []
    for key in keys:
        s = store.sequence(key)
        out.append(s[s.shape[0] // 2 if layer is None else layer] if s.ndim == 3 else s)
    return out


def temporal_views(seqs: list[np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """Clip vectors from window sequences: the mean; mean and std; the means of the first, middle and
    last third (order kept); the same thirds after shuffling each clip's windows (an order control:
    same numbers of values, no order)."""
    rng = np.random.default_rng(seed)

    def thirds(s):
        s = np.repeat(s, 3, axis=0) if len(s) < 3 else s  # a clip shorter than three windows
        return np.concatenate([part.mean(0) for part in np.array_split(s, 3)])

    return {"mean": np.stack([s.mean(0) for s in seqs]),
            "mean+std": np.stack([np.concatenate([s.mean(0), s.std(0)]) for s in seqs]),
            "thirds (in order)": np.stack([thirds(s) for s in seqs]),
            "thirds (windows shuffled)": np.stack([thirds(s[rng.permutation(len(s))]) for s in seqs])}


def frame_order_pairs(root=None) -> list[tuple[str, str, str]]:
    """(original store, permuted store, order) for video stores that differ only in frame order."""
    table = store_table(root)
    ordered = dict(zip(table.store, table["frame order"]))
    pairs = []
    for name, order in ordered.items():
        base = name.removesuffix(f"-{order}")  # the extractor appends a non-original order to the name
        if order not in (None, "original") and ordered.get(base) == "original":
            pairs.append((base, name, order))
    return pairs


def frame_order_similarity(original: str, permuted: str, root=None) -> pd.DataFrame:
    """Per layer: cosine between a clip's embedding with the original and with permuted frames, next
    to the cosine between different clips (what 'different' looks like in that layer)."""
    a, b = probes.load_feature_set(load_store(original, root)), probes.load_feature_set(load_store(permuted, root))
    common = sorted(set(a.keys) & set(b.keys))
    Xa = a.X[[a.keys.index(k) for k in common]]
    Xb = b.X[[b.keys.index(k) for k in common]]
    if Xa.ndim == 2:
        Xa, Xb = Xa[:, None], Xb[:, None]
    rows = []
    for layer in range(Xa.shape[1]):
        A = Xa[:, layer] / np.linalg.norm(Xa[:, layer], axis=1, keepdims=True)
        B = Xb[:, layer] / np.linalg.norm(Xb[:, layer], axis=1, keepdims=True)
        cos = A @ B.T
        off = ~np.eye(len(common), dtype=bool)
        rows.append({"layer": layer, "same clip, other order": np.diag(cos).mean(),
                     "different clips": cos[off].mean() if off.any() else np.nan, "clips": len(common)})
    return pd.DataFrame(rows).round(4)


# -- layers -----------------------------------------------------------------------------------
RANDOM_SUFFIX = "-randinit"  # the extractors name a random-weights control <model>-randinit
PRETRAINED = "pretrained"  # report.store_provenance's label for a neural encoder with trained weights


def twins(stores: pd.DataFrame) -> pd.DataFrame:
    """Every neural encoder and its random-init twin, with which of the two exists."""
    names = set(stores.store)
    original_order = stores["frame order"].isna() | (stores["frame order"] == "original")
    neural = stores[((stores.weights == PRETRAINED) | stores.random_init) & original_order].store
    rows = {}
    for name in neural:
        pretrained = name.removesuffix(RANDOM_SUFFIX)
        rows[pretrained] = {"pretrained": pretrained, "random-init": pretrained + RANDOM_SUFFIX,
                            "pretrained present": pretrained in names,
                            "random-init present": pretrained + RANDOM_SUFFIX in names}
    return pd.DataFrame(list(rows.values()))


# -- failure cases ----------------------------------------------------------------------------
def ua_by_attribute(preds: pd.DataFrame, clips: pd.DataFrame, attributes=("sex", "intensity", "statement", "repetition")) -> pd.DataFrame:
    """UA (%) within each value of clip attributes, with readable values and clip counts."""
    rows = []
    joined = preds.merge(clips[["key", *attributes]], on="key")
    for attribute in attributes:
        for value, part in joined.groupby(attribute):
            rows.append({"attribute": attribute, "value": READABLE.get(attribute, {}).get(value, value),
                         "UA": 100 * ua(part.y_true, part.y_pred),
                         "clips": part.key.nunique()})
    return pd.DataFrame(rows).round(1)


def song_transfer(name: str, clips: pd.DataFrame, root=None, layer: int | None = None,
                  scheme: str = SCHEME) -> pd.DataFrame | None:
    """Train on the speech of a fold's training actors, test on its test actors' speech and song
    (the song's emotions only, neutral..fearful). None when the store holds no song clips."""
    keys, X = load_matrix(name, root, layer)
    rows = clips.set_index("key").loc[keys].reset_index()
    song = (rows.channel == "song").to_numpy()
    if not song.any():
        return None
    y, actors = rows.emotion.to_numpy(), rows.actor.to_numpy()
    song_emotions = np.isin(y, rows.emotion[song].unique())
    out = []
    for fold, test_actors in folds_mod.load_folds(scheme).items():
        is_test = np.isin(actors, test_actors)
        train = np.flatnonzero(~is_test & ~song)
        tests = {"speech -> speech": np.flatnonzero(is_test & ~song & song_emotions),
                 "speech -> song": np.flatnonzero(is_test & song)}
        if not all(len(t) for t in tests.values()):
            continue
        pred = _linear(X, y, actors, train, np.concatenate(list(tests.values())))
        start = 0
        for condition, test in tests.items():
            out.append({"fold": fold, "condition": condition, "clips": len(test),
                        "ua": ua(y[test], pred[start:start + len(test)])})
            start += len(test)
    return pd.DataFrame(out)


def missing_modality(results: pd.DataFrame, fusion: str, clips: pd.DataFrame, root=None,
                     scheme: str = SCHEME) -> pd.DataFrame:
    """Refit the fusion's linear probe per fold (same layers as the grid) and test it with all
    inputs, then with each member's features replaced by their training mean (a sensor missing at
    test time: after z-scoring that block is all zeros). UA per fold and condition."""
    names = members(fusion)
    sets = [probes.load_feature_set(load_store(n, root)) for n in names]
    rows, Xs = probes.join(sets, clips[clips.channel == "speech"])
    y, actors = rows.emotion.to_numpy(), rows.actor.to_numpy()
    used = (results[(results.features == fusion) & (results.probe == "linear")]
            .drop_duplicates("fold").set_index("fold").layers_used.astype(str))
    out = []
    for fold, train, test in fold_splits(actors, scheme):
        if fold not in used:
            continue
        layers = used[fold].split(",")
        blocks = [x if layer in ("-", "nan") else x[:, int(float(layer))] for x, layer in zip(Xs, layers)]
        X = np.concatenate(blocks, axis=1).astype(np.float32)
        edges = np.cumsum([0] + [b.shape[1] for b in blocks])
        variants = [X[test]]
        for i in range(len(blocks)):  # the test rows again, with block i at its training mean
            v = X[test].copy()
            v[:, edges[i]:edges[i + 1]] = X[train, edges[i]:edges[i + 1]].mean(0)
            variants.append(v)
        big = np.concatenate([X, *variants[1:]])  # extra rows are only ever predicted, never fitted
        big_y = np.concatenate([y, *[y[test]] * len(blocks)])
        big_actors = np.concatenate([actors, *[actors[test]] * len(blocks)])
        extra = [len(X) + i * len(test) + np.arange(len(test)) for i in range(len(blocks))]
        pred = _linear(big, big_y, big_actors, train, np.concatenate([test, *extra]))
        for i, condition in enumerate(["all inputs"] + [f"{n} missing" for n in names]):
            out.append({"fold": fold, "condition": condition,
                        "ua": ua(y[test], pred[i * len(test):(i + 1) * len(test)])})
    return pd.DataFrame(out)


# ---------------------------------------------------------------------------------------------
