"""Tables over one results folder, shared by the generated findings and the notebooks.

Every file is optional (`Results.missing` says which command makes an absent one). A row of results
is identified by explicit columns: a SYSTEM is (features, probe, fusion) at its headline layer
(probes.linear.HEADLINE_LAYERS); what a features label is made of comes from feature_sets.csv and
what a store is from stores.csv, by joins. The `features` label and store names are only displayed.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .. import config, encoders, probes
from .. import results as results_schema
from ..data import clips as clip_table
from ..data import labels
from ..data.manifest import FIELDS
from ..errors import NoDataError
from ..probes import normalise
from ..probes.linear import HEADLINE_CANDIDATES
from ..store.store import PROVENANCE_COLUMNS
from . import stats


SYSTEM = ["features", "probe", "fusion"]  # with a headline layer: one row of results per fold (and seed)
REFERENCE = {"features": probes.BEST_SINGLE, "probe": "linear", "fusion": "none"}
STORE_COLUMNS = PROVENANCE_COLUMNS  # stores.csv; columns an older file lacks read as NaN
HUB_REASON = "pretrained weights come from the model hub, unreachable where these results were made"
MADE_BY = results_schema.MADE_BY  # each results file's command, for the lines saying one is absent
NORMALISED = tuple(name for name, f in results_schema.FILES.items()  # the tables with a row per protocol (the
                   if "normalisation" in f.names and name != results_schema.PREDICTIONS)  # predictions: Results.predictions)
# RAVDESS codes of clip attributes, shown as names (other corpora's attributes are shown as they are)
READABLE = {"intensity": labels.INTENSITIES, "statement": labels.STATEMENTS, "repetition": labels.REPETITIONS}


@dataclass
class Results:
    """The files of one results folder, each None when absent: the CSV files as tables, the
    predictions as a PredictionsFile (Results.predictions gives one system's; every view shares it)."""

    dir: Path
    tables: dict[str, pd.DataFrame | PredictionsFile | None] = field(default_factory=dict)
    derived: dict = field(default_factory=dict)  # costly tables computed from the files, kept by name
    normalisation: str | None = None  # set by `under`: every NORMALISED table holds that protocol's rows only

    def under(self, normalisation: str) -> "Results":
        """The same folder seen under one protocol (probes.normalise): its rows of every NORMALISED
        file (a file without the protocol's rows reads as absent) and its predictions."""
        tables = dict(self.tables)
        for name in NORMALISED:
            table = tables.get(name)
            if table is not None:
                kept = table[table.normalisation == normalisation].reset_index(drop=True)
                tables[name] = kept if len(kept) else None
        return Results(self.dir, tables, normalisation=normalisation)

    @property
    def normalisations(self) -> list[str]:
        """The protocols probes.csv holds, in normalise.DEFAULT order (then any other)."""
        present = set(self.tables["probes.csv"].normalisation) if self.has("probes.csv") else set()
        return [n for n in normalise.NORMALISATIONS if n in present]

    def memo(self, name: str, compute):
        """compute() once per Results: for a table more than one section of the report needs."""
        if name not in self.derived:
            self.derived[name] = compute()
        return self.derived[name]

    def __getitem__(self, file: str) -> pd.DataFrame | None:
        return self.tables.get(file)

    def has(self, *files: str) -> bool:
        return all(self.tables.get(f) is not None for f in files)

    def missing_file(self, name: str) -> str:
        """'not available: <file> is absent (made by `<command>`)' for any results file by name."""
        return f"not available: {config.relative(self.dir / name)} is absent (made by `{MADE_BY[name]}`)"

    def missing(self, *files: str) -> str:
        """'not available: <file> is absent (made by `<command>`)' for the first absent file."""
        return self.missing_file(next(f for f in files if not self.has(f)))

    def predictions(self, system: dict) -> pd.DataFrame:
        """Per-clip test predictions of one system (headline layer), every fold and seed (under `normalisation`)."""
        file = self.tables["predictions.parquet"]
        by_protocol = self.normalisation and "normalisation" in file.columns  # older files: one protocol
        return headline(file.rows({**system, **({"normalisation": self.normalisation} if by_protocol else {})}))


class PredictionsFile:
    """predictions.parquet, read whole on first use and indexed by `features`: a report asks for one
    system's predictions about 1500 times, and a filtered read scans the file each time (most of the
    findings' minutes, measured). Text columns are held as categories (millions of rows); the rows
    handed out are exactly what probes.read_predictions(path, **where) reads."""

    def __init__(self, path: Path):
        self.path, self.schema = Path(path), pq.read_schema(path)
        self.columns = self.schema.names
        self.text = [f.name for f in self.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
        self.table, self.at = None, {}

    def rows(self, where: dict) -> pd.DataFrame:
        if self.table is None:  # text read straight into categories: never millions of Python strings at once
            self.dtypes = self.schema.empty_table().to_pandas().dtypes[self.text]  # what a plain read gives the text
            self.table = pq.read_table(self.path, read_dictionary=self.text).to_pandas()
            self.at = self.table.groupby("features", observed=True, sort=False).indices
        rows = self.table.iloc[self.at.get(where.get("features"), []) if "features" in where else slice(None)]
        mask = np.ones(len(rows), dtype=bool)
        for column, value in where.items():
            mask &= (rows[column] == value).to_numpy()
        return rows[mask].astype(self.dtypes.to_dict()).reset_index(drop=True)


def same_stores(table, stores, name: str):
    """The rows of a results file made from the stores stores.csv describes (same store, same
    `finalized` stamp): a file left from other stores (a committed one, an older extraction) must
    not stand in for one made from these. Files without the stamp are taken as they are."""
    if table is None or stores is None or "finalized" not in table or stores.finalized.isna().all():
        return table
    made = set(zip(stores.store, stores.finalized.astype(str)))
    kept = table[[(s, str(f)) in made for s, f in zip(table.store, table.finalized)]]
    if len(kept) < len(table):
        print(f"[results] {name}: {len(table) - len(kept)} row(s) left out, made from other stores than stores.csv's")
    return kept if len(kept) else None


def same_systems(table, probes_table, name: str):
    """The rows of a file made after the grid from its systems (enrolment.csv) whose features label the
    grid in this folder probed: a file left from another grid (the committed one, beside a user's first
    own run) must not stand in for one made from it."""
    if table is None:
        return None
    probed = set() if probes_table is None else set(probes_table.features)
    kept = table[table.features.isin(probed)]
    if len(kept) < len(table):
        print(f"[results] {name}: {len(table) - len(kept)} row(s) left out, of systems probes.csv does not hold")
    return kept if len(kept) else None


def load(results_dir=None, data_root=None, normalisation: str | None = "global") -> Results:
    """Read every results file present, seen under one protocol (Results.under; None: every protocol,
    for documents that set them side by side). Clip attributes come from clips.csv, else from the
    clips table of data_root when one is given."""
    folder = config.results_dir(results_dir)
    tables = {name: results_schema.read(folder, name) for name in results_schema.FILES if name != results_schema.PREDICTIONS}
    predictions = folder / results_schema.PREDICTIONS  # large: read on first use (Results.predictions)
    tables[results_schema.PREDICTIONS] = PredictionsFile(predictions) if predictions.exists() else None
    if tables["stores.csv"] is not None:
        stores = tables["stores.csv"].reindex(columns=STORE_COLUMNS)
        text = ["store", "modality", "encoder", "weights", "objective", "twin_of", "variant", "model_id"]
        tables["stores.csv"] = stores.astype({c: object for c in text})  # an all-empty column reads as float
    for name in ("transfer.csv", "duration.csv"):
        tables[name] = same_stores(tables[name], tables["stores.csv"], name)
    tables["enrolment.csv"] = same_systems(tables["enrolment.csv"], tables["probes.csv"], "enrolment.csv")
    for name in NORMALISED:  # files made before the protocols existed hold the speaker-independent one
        if tables[name] is not None and "normalisation" not in tables[name]:
            tables[name] = tables[name].assign(normalisation="global")
    if tables["clips.csv"] is None and data_root is not None:
        try:
            tables["clips.csv"] = clip_table.load(data_root, verbose=False).drop(columns=["audio", "video"])
        except NoDataError:
            pass
    res = Results(folder, tables)
    return res if normalisation is None else res.under(normalisation)


# -- systems and their scores ------------------------------------------------------------------
def headline(table: pd.DataFrame) -> pd.DataFrame:
    """The rows that stand for a system: its one block ('all') or the candidate inner CV chose ('inner-best')."""
    return table[table.candidate.isin(HEADLINE_CANDIDATES)]


def where(table: pd.DataFrame, system: dict) -> pd.DataFrame:
    """The rows of one system (its SYSTEM columns equal)."""
    mask = np.ones(len(table), dtype=bool)
    for column, value in system.items():
        mask &= table[column].to_numpy() == value
    return table[mask]


def systems(res: Results) -> pd.DataFrame:
    """One row per system at its headline layer: mean and std over folds (x seeds) of UA, WA and
    macro-F1, the pooled UA with its speaker-bootstrap interval (when probes_summary.csv has them),
    and the test clips summed over folds."""
    table = res["probes_summary.csv"]
    table = probes.summarise(res["probes.csv"]) if table is None else table
    clips = headline(res["probes.csv"]).groupby([*SYSTEM, "candidate", "fold"]).n_test.first().groupby([*SYSTEM, "candidate"]).sum()
    return headline(table).join(clips.rename("clips"), on=[*SYSTEM, "candidate"]).reset_index(drop=True)


def fold_scores(res: Results, metric: str = "ua") -> pd.DataFrame:
    """One row per system x fold at the headline layer: the metric averaged over seeds."""
    return headline(res["probes.csv"]).groupby([*SYSTEM, "fold"], sort=False)[metric].mean().reset_index()


def compare(res: Results, a: dict, b: dict) -> dict:
    """System a minus system b: the mean difference over the folds both have and the folds a wins,
    and, from the predictions, the difference of pooled UA with its paired speaker-bootstrap
    interval and p (report.stats.paired_bootstrap)."""
    folds = fold_scores(res)
    diff = (where(folds, a).set_index("fold").ua - where(folds, b).set_index("fold").ua).dropna()
    out = {"fold_diff": diff.mean(), "wins": int((diff > 0).sum()), "n_folds": len(diff)}
    if res.has("predictions.parquet"):
        out.update(stats.paired_bootstrap(res.predictions(a), res.predictions(b)))
    return out


# -- what a label is made of -------------------------------------------------------------------
def sets(res: Results) -> pd.DataFrame:
    """One row per single feature set (a store at one pooling): feature_sets.csv's facts, and its
    store's twin_of, variant, first_seconds, default pooling and extraction seconds from stores.csv."""
    fs = res["feature_sets.csv"]
    singles = fs[fs.n_members == 1].drop(columns=["n_members", "member", "set"])
    if not res.has("stores.csv"):
        return singles
    facts = res["stores.csv"][["store", "twin_of", "variant", "first_seconds", "default_pooling", "seconds_extracting"]]
    return singles.merge(facts, on="store", how="left")


def main_set(res: Results) -> dict[str, str]:
    """Store -> the features label of its default pooling (the set that stands for the store)."""
    table = sets(res)
    table = table[table.role != "extra pooling"]
    if "default_pooling" in table:  # every set of a random control has its role: keep its default pooling's
        table = table[table.default_pooling.isna() | (table.pooling == table.default_pooling)]
    return dict(zip(table.store, table.features))


def single(features: str) -> dict:
    """The linear probe of one feature set, as a system."""
    return {"features": features, "probe": "linear", "fusion": "none"}


def as_system(row) -> dict:
    """The SYSTEM columns of a table row (a namedtuple or a Series)."""
    return {k: getattr(row, k) for k in SYSTEM}


def name(res: Results, system: dict) -> str:
    """How a system is shown: its features label, or 'all <modalities> base sets (n)' for the fusion of
    every base set of some modalities; then the fusion method and a probe other than linear."""
    ms = modality_systems(res)
    ms = ms[(ms.features == system["features"]) & (ms.n_sets > 1)]
    label = f"all {ms.modalities.iloc[0]} base sets ({ms.n_sets.iloc[0]})" if len(ms) else system["features"]
    label += f", {system['fusion']} fusion" if system["fusion"] != "none" else ""
    return label if system["probe"] == "linear" else f"{label} [{system['probe']}]"


def coalition_labels(res: Results) -> dict[frozenset, str]:
    """Frozenset of base stores -> the features label of their fusion (or of the base set alone)."""
    base = res["feature_sets.csv"]
    base = base[base.role == "base"]
    return {stores: label for label, stores in base.groupby("features").store.agg(frozenset).items()}


def modality_systems(res: Results) -> pd.DataFrame:
    """Per combination of modalities, the system that stands for it without any choice made on test
    data: the auto fusion of ALL its base sets (the set alone when there is one). Shapley values of
    modalities are computed from these same systems. Columns: modalities, n_modalities, n_sets, SYSTEM."""
    base = sets(res)
    base = base[base.role == "base"]
    label_of = coalition_labels(res)
    modalities = sorted(base.modality.unique())
    rows = []
    for k in range(1, len(modalities) + 1):
        for combo in itertools.combinations(modalities, k):
            stores = frozenset(base[base.modality.isin(combo)].store)
            if stores in label_of:
                rows.append({"modalities": "+".join(combo), "n_modalities": k, "n_sets": len(stores),
                             "features": label_of[stores],
                             "probe": "linear", "fusion": "auto" if len(stores) > 1 else "none"})
    return pd.DataFrame(rows, columns=["modalities", "n_modalities", "n_sets", *SYSTEM])


def all_sets(res: Results) -> dict | None:
    """The auto fusion of every base set, or None when there is none (one base set, or not run)."""
    base = sets(res)
    stores = frozenset(base[base.role == "base"].store)
    label = coalition_labels(res).get(stores)
    return {"features": label, "probe": "linear", "fusion": "auto"} if label and len(stores) > 1 else None


# -- fusions -----------------------------------------------------------------------------------
def fusion_gaps(res: Results) -> pd.DataFrame:
    """Every fusion and method against its best member (report.stats.fusion_vs_members), with the
    fusion's modalities."""
    gaps = stats.fusion_vs_members(res["probes.csv"], res["feature_sets.csv"])
    modalities = res["probes.csv"].drop_duplicates("features").set_index("features").modalities
    return gaps.assign(modalities=gaps.features.map(modalities))


def fusion_methods(res: Results) -> pd.DataFrame:
    """The fusion of all base sets and every pair: UA (mean over folds) of each method side by side,
    the best member's, and auto minus the best member (points)."""
    gaps = fusion_gaps(res)
    n_base = gaps.n_members.max()
    gaps = gaps[(gaps.n_members == 2) | (gaps.n_members == n_base)]
    table = gaps.pivot_table(index=["n_members", "features", "modalities", "best_member", "best_member_ua"],
                             columns="fusion", values="ua").reset_index()
    table["auto_gap"] = table["auto"] - table.best_member_ua
    return table.sort_values(["n_members", "auto"], ascending=[False, False], ignore_index=True)


def never_loses(res: Results) -> pd.DataFrame:
    """Per method, over every fusion run: how often it falls below its best member, the mean and
    the worst gap (fusion minus best member, points)."""
    g = fusion_gaps(res).groupby("fusion", sort=False).gap
    return pd.DataFrame({"fusions": g.size(), "below best member": g.apply(lambda s: int((s < 0).sum())),
                         "mean gap": g.mean().round(1), "worst gap": g.min().round(1)}).reset_index()


def losses_beyond_noise(res: Results, method: str = "auto") -> tuple[pd.DataFrame, float]:
    """The fusions (by `method`) that fall below their best member, each with the paired
    speaker-bootstrap difference and interval (`compare`); and how many of all the method's fusions
    would fall below beyond that interval by chance alone if every one equalled its best member
    (the interval's lower tail, (1 - LEVEL) / 2, times their number; fusions sharing members are not
    independent, so "about")."""
    gaps = fusion_gaps(res)
    gaps = gaps[gaps.fusion == method]

    def losses() -> pd.DataFrame:
        return pd.DataFrame([{"features": g.features, "best_member": g.best_member, "gap": g.gap,
                              **compare(res, {"features": g.features, "probe": "linear", "fusion": method},
                                        {"features": g.best_member, "probe": "linear", "fusion": "none"})}
                             for g in gaps[gaps.gap < 0].itertuples()] if res.has("predictions.parquet") else [])
    return res.memo(f"losses beyond noise, {method}", losses), len(gaps) * (1 - stats.LEVEL) / 2


def inner_vs_test(res: Results) -> pd.DataFrame:
    """Per fusion method, over every fusion and fold: the mean inner-CV UA (what auto compares), the
    mean test UA, their difference (points: negative = inner CV underrates the method), and how often
    auto chose the method."""
    rows = res["probes.csv"]
    rows = rows[(rows.n_members > 1) & (rows.probe == "linear")]
    chosen = rows[rows.fusion == "auto"].chosen_method.value_counts()
    g = rows[rows.fusion != "auto"].groupby("fusion", sort=False)
    table = pd.DataFrame({"fusion-folds": g.size(), "inner-CV UA": (g.inner_ua.mean() * 100).round(1),
                          "test UA": (g.ua.mean() * 100).round(1),
                          "inner minus test": ((g.inner_ua.mean() - g.ua.mean()) * 100).round(1)})
    table["auto chose it"] = chosen.reindex(table.index).fillna(0).astype(int)
    return table.reset_index()


# -- layers, emotions, Shapley values ----------------------------------------------------------
def layer_rows(res: Results, probe: str = "linear") -> pd.DataFrame:
    """probes.csv's rows of single layers (layer 0, 1, ...) of the layered single sets."""
    rows = res["probes.csv"]
    return rows[(rows.probe == probe) & (rows.n_members == 1) & (rows.candidate == "layer")].astype({"layer": int})


def layer_scores(res: Results, probe: str = "linear") -> pd.DataFrame:
    """UA per layer of every layered single set: mean, std and t-interval over folds (long format:
    features, layer, mean, std, ci_low, ci_high, n_folds)."""
    return stats.over_folds(layer_rows(res, probe), ["features", "layer"], "ua")


def concat_scores(res: Results, probe: str = "linear") -> pd.DataFrame:
    """UA of every layered single set on all its layers concatenated (probes.CONCAT), in
    layer_scores' format without the layer column."""
    rows = res["probes.csv"]
    rows = rows[(rows.probe == probe) & (rows.n_members == 1) & (rows.candidate == probes.CONCAT)]
    return stats.over_folds(rows, ["features"], "ua")


def chosen_layers(res: Results) -> pd.DataFrame:
    """What inner CV chose in each fold (linear probe, layered single sets), shown as a layer ('3') or
    probes.CONCAT; features x fold."""
    rows = res["probes.csv"]
    rows = rows[(rows.candidate == "inner-best") & (rows.probe == "linear") & (rows.n_members == 1)
                & (rows.features != probes.BEST_SINGLE)]
    shown = rows.chosen_layer.astype(str).where(rows.chosen_candidate == "layer", rows.chosen_candidate)
    return rows.assign(chosen=shown).pivot_table(index="features", columns="fold", values="chosen", aggfunc="first")


def emotions(res: Results) -> list[str]:
    return results_schema.classes(res[results_schema.RECALLS])


def recall(res: Results, chosen: list[dict]) -> pd.DataFrame:
    """Recall per emotion (mean over folds and seeds) of the chosen systems: one row each, indexed
    by features label."""
    long = headline(res[results_schema.RECALLS])
    means = long.groupby([*SYSTEM, "class"], observed=True, sort=False).recall.mean().unstack("class").reset_index()
    rows = pd.concat([where(means, s) for s in chosen])
    return rows.set_index("features")[emotions(res)].rename_axis(columns=None)


SHAPLEY_METHOD = "auto"  # the fusion whose Shapley values the documents lead with (train_probes.SHAPLEY_METHOD)


def shapley(res: Results, method: str | None = SHAPLEY_METHOD) -> pd.DataFrame:
    """shapley.csv as mean over folds with its t-interval (summarised here when it holds per-fold
    values), of one fusion method's coalition values (None: every method's)."""
    table = res["shapley.csv"]
    table = stats.shapley_summary(table) if "fold" in table else table
    return table if method is None else table[table.method == method].reset_index(drop=True)


def shapley_matrix(res: Results, level: str, value: str = "shapley_mean", method: str = SHAPLEY_METHOD) -> pd.DataFrame:
    """One column of the Shapley summary for one level ('modality' or 'feature set'): metrics (UA, then
    each emotion's recall) x players."""
    table = shapley(res, method)
    table = table[table.level == level]
    table = table.assign(row=table["class"].where(table.metric == "recall", "UA"))  # UA, then each class's recall
    matrix = table.pivot(index="row", columns="player", values=value)
    return matrix.reindex([m for m in ["UA", *emotions(res)] if m in matrix.index]).rename_axis("metric")


# -- pairs of stores -----------------------------------------------------------------------------
def pooling_pairs(res: Results) -> list[tuple[str, str]]:
    """(set at its store's default pooling, set at another pooling of the same store), random
    controls left out (their poolings say nothing about what pretraining put in time)."""
    table = sets(res)
    main = main_set(res)
    other = table[(table.role == "extra pooling") & (table.weights != "random control")]
    return [(main[store], features) for store, features in zip(other.store, other.features) if store in main]


def twin_pairs(res: Results) -> pd.DataFrame:
    """Each probed pretrained store and the random-init store whose twin_of names it: columns
    pretrained, random (stores), and their sets."""
    stores, main = res["stores.csv"], main_set(res)
    twins = stores[stores.twin_of.notna()]
    pairs = pd.DataFrame({"pretrained": twins.modality + "/" + twins.twin_of, "random": twins.store})  # store ids
    pairs["pretrained_set"], pairs["random_set"] = pairs.pretrained.map(main), pairs.random.map(main)
    return pairs.dropna().reset_index(drop=True)


def variant_pairs(res: Results) -> pd.DataFrame:
    """Stores made with an encoder option changed (stores.csv `variant`, e.g. a longer context) and
    the same encoder's store without it; columns store, plain, variant, both sets and the extraction
    seconds of both. A variant with more than one candidate is left out (ambiguous)."""
    stores, main = res["stores.csv"], main_set(res)
    own = stores.twin_of.isna() & stores.first_seconds.isna()
    plain = stores[own & stores.variant.isna()][["modality", "encoder", "store", "seconds_extracting"]]
    pairs = stores[own & stores.variant.notna()].merge(plain, on=["modality", "encoder"], suffixes=("", "_plain"))
    pairs = pairs.groupby("store").filter(lambda g: len(g) == 1)
    pairs = pairs.rename(columns={"store_plain": "plain", "seconds_extracting_plain": "plain_seconds"})
    pairs["set"], pairs["plain_set"] = pairs.store.map(main), pairs.plain.map(main)
    return pairs[["store", "plain", "variant", "set", "plain_set", "seconds_extracting", "plain_seconds"]].dropna(
        subset=["set", "plain_set"]).reset_index(drop=True)


def not_run(res: Results) -> pd.DataFrame:
    """Every registered encoder with no store of its own weights in stores.csv, with the reason from
    its card, and its random twin's store when that ran."""
    stores = res["stores.csv"]
    own = set(stores[stores.weights != encoders.RANDOM].encoder)
    twins = stores[stores.weights == encoders.RANDOM].groupby("encoder").store.agg(", ".join)
    cards = pd.DataFrame(encoders.cards())
    cards = cards[~cards.name.isin(own)]
    return pd.DataFrame({"encoder": cards.name, "modality": cards.modality, "weights": cards.weights,
                         "objective": cards.objective,
                         "reason": np.where(cards.needs_hub, HUB_REASON, "not extracted"),
                         "random twin run": cards.name.map(twins)}).reset_index(drop=True)


# -- failures ------------------------------------------------------------------------------------
def ua(preds: pd.DataFrame) -> float:
    """UA of per-clip predictions (y_true, y_pred), over the classes present in y_true."""
    classes = sorted(set(preds.y_true.astype(str)) | set(preds.y_pred.astype(str)))
    y, pred = (pd.Categorical(preds[c].astype(str), categories=classes).codes for c in ("y_true", "y_pred"))
    return float(probes.balanced_accuracy(np.asarray(y), np.asarray(pred)))


def confused_pairs(preds: pd.DataFrame, top: int = 5) -> pd.DataFrame:
    """Most frequent errors (true -> predicted) as a share of the true class's test predictions."""
    truth, pred = preds.y_true.astype(str), preds.y_pred.astype(str)
    errors = pd.DataFrame({"true": truth, "predicted": pred})[truth != pred]
    counts = errors.value_counts().rename("errors").reset_index()
    counts["share"] = counts.errors / counts["true"].map(truth.value_counts()).astype(float)
    return counts.sort_values("share", ascending=False, ignore_index=True).head(top)


def attributes(clips: pd.DataFrame) -> list[str]:
    """The clip attributes worth splitting errors by: columns other than the manifest's own fields
    that take more than one value and are not just another name for the label or the speaker (a
    RAVDESS emotion code, an actor number); sex, which each speaker has one of, stays."""
    def renames(column, of):
        pairs = clips[[column, of]].astype(str).drop_duplicates()
        return pairs[column].is_unique and pairs[of].is_unique

    return [c for c in clips.columns if c not in FIELDS and clips[c].nunique() > 1
            and not renames(c, "label") and not renames(c, "speaker")]


def ua_by(preds: pd.DataFrame, clips: pd.DataFrame, column: str) -> pd.DataFrame:
    """UA within each value of a clip attribute of `clips` (or of the predictions' speaker): value, ua, clips."""
    joined = preds if column in preds else preds.merge(clips[["key", column]].drop_duplicates("key"), on="key")
    rows = [{"value": READABLE.get(column, {}).get(value, value), "ua": ua(part), "clips": part.key.nunique()}
            for value, part in joined.groupby(column)]
    return pd.DataFrame(rows)


# -- protocols (probes.normalise) and the enrolment curve ------------------------------------------
def protocol_systems(res: Results) -> list[dict]:
    """The systems set side by side under every protocol: the reference, every base set and random
    control alone, each combination of modalities (auto fusion of all its base sets) and the MLP on
    the early fusion of all base sets, in that order."""
    table = sets(res)
    singles = [single(f) for f in table[table.role.isin(["base", "random control"])].features]
    combos = [as_system(s) for s in modality_systems(res).itertuples() if s.n_sets > 1]
    everything = all_sets(res)
    mlp = [{**everything, "probe": "mlp", "fusion": "early"}] if everything else []
    return [REFERENCE, *singles, *combos, *mlp]


def protocol_table(res: Results, systems: list[dict]) -> pd.DataFrame:
    """Per system, under each protocol the results hold: UA mean over folds (x seeds) and std; long
    format (system index, normalisation, ua_mean, ua_std)."""
    rows = []
    for normalisation in res.normalisations:
        scores = probes.summarise(headline(res.under(normalisation)["probes.csv"]))
        for i, system in enumerate(systems):
            row = where(scores, system)
            if len(row):
                rows.append({"system": i, "normalisation": normalisation, "ua_mean": row.ua_mean.iloc[0],
                             "ua_std": row.ua_std.iloc[0]})
    return pd.DataFrame(rows, columns=["system", "normalisation", "ua_mean", "ua_std"])


def compare_protocols(res: Results, system: dict, a: str, b: str = "global") -> dict:
    """One system under protocol a minus under protocol b: `compare`'s figures (fold means, and the
    paired speaker bootstrap on the same clips when predictions are at hand)."""
    folds = {n: where(fold_scores(res.under(n)), system).set_index("fold").ua for n in (a, b)}
    diff = (folds[a] - folds[b]).dropna()
    out = {"fold_diff": diff.mean(), "wins": int((diff > 0).sum()), "n_folds": len(diff)}
    if res.has("predictions.parquet") and len(diff):
        out.update(stats.paired_bootstrap(res.under(a).predictions(system), res.under(b).predictions(system)))
    return out


def enrolment_curve(res: Results) -> pd.DataFrame:
    """enrolment.csv as a curve: per features x enrolment x k, UA mean over folds of each draw, then
    the mean and std over draws; with the same system's UA under `global` and under `speaker` with
    every clip (probes.csv), and the share of that gain the k clips reach."""
    table = res["enrolment.csv"]
    per_draw = table.groupby(["features", "fusion", "enrolment", "k", "draw"], dropna=False).ua.mean()
    curve = per_draw.groupby(["features", "fusion", "enrolment", "k"], dropna=False).agg(["mean", "std"]).reset_index()
    references = {}
    for normalisation in ("global", "speaker"):
        if normalisation in res.normalisations:
            scores = probes.summarise(headline(res.under(normalisation)["probes.csv"]))
            references[normalisation] = scores[scores.probe == "linear"].set_index(["features", "fusion"]).ua_mean
    for normalisation, column in (("global", "ua_global"), ("speaker", "ua_all_clips")):
        ref = references.get(normalisation)
        curve[column] = [np.nan if ref is None else ref.get((f, m), np.nan) for f, m in zip(curve.features, curve.fusion)]
    curve["share_of_gain"] = (curve["mean"] - curve.ua_global) / (curve.ua_all_clips - curve.ua_global)
    return curve


def clips_for_share(curve: pd.DataFrame, share: float) -> pd.Series:
    """Per features (random draws): the fewest clips k whose mean UA reaches `share` of the gain
    from `global` to `speaker` with every clip (NaN: none of the k tried)."""
    drawn = curve[curve.k.notna()].sort_values("k")
    return drawn.groupby("features").apply(
        lambda g: g.k[g.share_of_gain >= share].min() if (g.share_of_gain >= share).any() else np.nan)


def shapley_estimators(res: Results, level: str = "feature set", metric: str = "ua") -> pd.DataFrame:
    """Each player's Shapley value (mean over folds) by every method shapley.csv holds, players x
    methods, with each method's estimator in the column name (e.g. 'late (exact, every subset)')."""
    table = shapley(res, None).query("level == @level and metric == @metric")
    table = table.assign(column=table.method + " (" + table.estimator + ")")
    return table.pivot(index="player", columns="column", values="shapley_mean")
