"""Every results file, declared once: its name, the command that makes it, its columns with their
types and allowed values. Writers and readers go through `write` and `read`; `problems` checks a
table against its declaration (tests/test_results_schema.py checks every committed file).

Allowed values are imported from where they are defined (fusion methods, member scalings, layer
labels, weights, modalities, roles), so a new method or role is declared in one place. A value per
class (each emotion's recall) is a row of a long table with the class in a column (recalls.parquet,
transfer_recalls.csv): the classes come from the data, not from column names.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .encoders.base import MODALITIES, WEIGHTS
from .probes.features import ROLES
from .probes.fusion import EARLY_SCALINGS, METHODS
from .probes.linear import CANDIDATES, CONCAT
from .probes.normalise import NORMALISATIONS
from .probes.shapley import RECALL  # + class name: the recall of that class, one column per class

PROBES = ("linear", "mlp")

def fusion_labels() -> tuple[str, ...]:
    """The `fusion` column's values, read when a table is checked (a method registered later counts):
    "none" (a single set), every registered fusion method (the MLP on the early fusion says "early"), "auto"."""
    return ("none", *METHODS, "auto")


def method_labels() -> tuple[str, ...]:
    """The registered fusion methods, which auto chooses among (`chosen_method`)."""
    return tuple(METHODS)

TRAIN = "python experiments/train_probes.py"


@dataclass(frozen=True)
class Column:
    """dtype: str | int | Int64 (a whole number or empty) | float | bool | any (a corpus's own type, e.g. speakers); allowed: the values a cell may hold
    (None: any; a function returning them when they come from a registry that may grow, e.g. fusion methods); parts: the
    cell is several allowed values joined by this separator (e.g. 'audio+face')."""

    name: str
    dtype: str = "str"
    allowed: tuple | Callable[[], tuple] | None = None
    parts: str | None = None


@dataclass(frozen=True)
class ResultsFile:
    name: str
    made_by: str
    columns: tuple[Column, ...]
    optional: tuple[str, ...] = field(default=())  # columns an older file may lack

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def parquet(self) -> bool:  # a long table (one row per row x class, per clip, ...): compressed, typed
        return self.name.endswith(".parquet")

    @property
    def dtypes(self) -> dict[str, str]:
        return {c.name: c.dtype for c in self.columns}


def _c(name, dtype="str", **kw) -> Column:
    return Column(name, dtype, **kw)


LAYER = (_c("candidate", allowed=CANDIDATES), _c("layer", "Int64"))  # the block: its kind, and a layer's index
NORMALISATION = _c("normalisation", allowed=tuple(NORMALISATIONS))
CHOSEN = (_c("chosen_candidate", allowed=("all", "layer", CONCAT)), _c("chosen_layer", "Int64"))  # inner CV's choice
FOLD_SCORES = (_c("fold"), _c("n_train", "int"), _c("n_test", "int"), _c("ua", "float"), *CHOSEN, _c("C", "float"),
               _c("inner_ua", "float"))  # a transferred probe's fold: its score and what inner CV chose
CLASS_RECALL = (_c("class"), _c("recall", "float"))  # a class (label) in data, and its recall
SYSTEM_KEYS = (_c("features"), NORMALISATION, _c("n_members", "int"), _c("modalities", allowed=MODALITIES, parts="+"),
               _c("weights", allowed=WEIGHTS, parts="+"), _c("pooling"), *LAYER, _c("probe", allowed=PROBES),
               _c("fusion", allowed=fusion_labels))
ROW_KEYS = (_c("features"), NORMALISATION, *LAYER, _c("probe", allowed=PROBES), _c("fusion", allowed=fusion_labels),
            _c("fold"), _c("seed", "int"))  # what names a probes.csv row
FILES = {f.name: f for f in [
    ResultsFile("probes.csv", TRAIN, (
        *SYSTEM_KEYS, _c("fold"), _c("seed", "int"), _c("n_train", "int"), _c("n_test", "int"),
        _c("inner_ua", "float"), _c("C", "float"), _c("ua", "float"), _c("wa", "float"), _c("macro_f1", "float"),
        *CHOSEN,
        _c("chosen_method", allowed=method_labels), _c("chosen_set"), _c("early_scaling", allowed=tuple(EARLY_SCALINGS)))),
    ResultsFile("recalls.parquet", TRAIN, (*ROW_KEYS, *CLASS_RECALL)),  # each probes.csv row's recall of each class
    ResultsFile("predictions.parquet", TRAIN, (  # each headline row's test clips: read one system at a time
        _c("features"), NORMALISATION, _c("probe", allowed=PROBES), _c("fusion", allowed=fusion_labels),
        _c("candidate", allowed=CANDIDATES), _c("fold"), _c("seed", "int"), _c("key"), _c("speaker", "any"),
        _c("y_true"), _c("y_pred"))),
    ResultsFile("probes_summary.csv", TRAIN, (
        *SYSTEM_KEYS, *(_c(f"{m}_{s}", "float") for m in ("ua", "wa", "macro_f1") for s in ("mean", "std")),
        _c("n_folds", "int"), _c("n_seeds", "int"), _c("ua_pooled", "float"), _c("ua_boot_low", "float"),
        _c("ua_boot_high", "float"))),
    ResultsFile("feature_sets.csv", TRAIN, (
        _c("features"), _c("n_members", "int"), _c("member", "int"), _c("set"), _c("store"),
        _c("modality", allowed=MODALITIES), _c("encoder"), _c("pooling"), _c("weights", allowed=WEIGHTS),
        _c("objective"), _c("layered", "bool"), _c("n_layers", "float"), _c("dim", "int"), _c("role", allowed=ROLES))),
    ResultsFile("shapley.csv", TRAIN, (
        NORMALISATION, _c("level", allowed=("feature set", "modality")), _c("player"), _c("metric", allowed=("ua", "recall")),
        _c("class"), _c("method", allowed=fusion_labels),
        _c("estimator"), _c("shapley_mean", "float"), _c("shapley_std", "float"), _c("ci_low", "float"),
        _c("ci_high", "float"), _c("n_folds", "int"), _c("sampling_se", "float"))),
    ResultsFile("stores.csv", TRAIN, (
        _c("store"), _c("modality", allowed=MODALITIES), _c("encoder"), _c("weights", allowed=WEIGHTS),
        _c("objective"), _c("twin_of"), _c("variant"), _c("first_seconds", "float"), _c("base_set", "bool"),
        _c("layered", "bool"), _c("n_layers", "float"), _c("default_pooling"), _c("n_clips", "int"),
        _c("n_failures", "int"), _c("model_id"), _c("data_root"), _c("precision", allowed=("fp32", "bf16")),
        _c("seconds_extracting", "float"), _c("date"), _c("finalized"))),
    ResultsFile("poolings.csv", TRAIN, (  # each store's poolings (arrays) and their shape per clip
        _c("store"), _c("pooling"), _c("n_layers", "Int64"), _c("dim", "int"))),
    ResultsFile("clips.csv", TRAIN, (_c("key"), _c("label"), _c("speaker", "any"))),  # then the corpus's attributes
    ResultsFile("folds.csv", TRAIN, (_c("fold"), _c("speaker", "any"), _c("source"))),
    ResultsFile("transfer.csv", "python experiments/transfer.py --train A --test B", (
        _c("train"), _c("test"), _c("train_channel"), _c("test_channel"), _c("store"), NORMALISATION,
        _c("probe", allowed=PROBES), _c("ua", "float"), _c("wa", "float"), _c("macro_f1", "float"), _c("ua_fold_mean", "float"),
        _c("ua_fold_std", "float"), _c("n_folds", "int"), _c("n_train", "int"), _c("n_test", "int"),
        _c("ua_within_test", "float"), _c("finalized"))),
    ResultsFile("transfer_recalls.csv", "python experiments/transfer.py --train A --test B", (  # each shared label's
        _c("train"), _c("test"), _c("store"), NORMALISATION, _c("probe", allowed=PROBES), *CLASS_RECALL)),
    ResultsFile("transfer_folds.csv", "python experiments/transfer.py --train A --test B", (  # what each fold chose
        _c("train"), _c("test"), _c("store"), NORMALISATION, _c("probe", allowed=PROBES), *FOLD_SCORES)),
    ResultsFile("duration.csv", "python experiments/duration.py (after extract_audio.py --first-seconds S)", (
        _c("encoder"), _c("store"), _c("finalized"), _c("seconds"), _c("trained_on", allowed=("whole clips", "same cut")),
        NORMALISATION,
        _c("ua", "float"), _c("ua_fold_mean", "float"), _c("ua_fold_std", "float"), _c("wa", "float"),
        _c("macro_f1", "float"), _c("n_folds", "int"), _c("n_test", "int"))),
    ResultsFile("duration_folds.csv", "python experiments/duration.py (after extract_audio.py --first-seconds S)", (
        _c("encoder"), _c("seconds"), _c("trained_on", allowed=("whole clips", "same cut")), NORMALISATION, *FOLD_SCORES)),
    ResultsFile("enrolment.csv", "python experiments/enrolment.py (after train_probes.py)", (
        _c("features"), NORMALISATION, _c("n_members", "int"), _c("fusion", allowed=fusion_labels), _c("enrolment"),
        _c("k", "int"), _c("draw", "int"), _c("fold"), _c("ua", "float"), _c("wa", "float"), _c("macro_f1", "float"))),
    ResultsFile("face_detection.csv", "python experiments/extract_face.py", (
        _c("key"), _c("n_frames", "int"), _c("source"), _c("n_faces", "int"), _c("frames_with_face"),
        _c("prob_min", "float"), _c("face_height_px", "float"), _c("frame_width", "int"), _c("frame_height", "int"))),
]}
RECALLS = "recalls.parquet"  # the per-class recall of every probes.csv row (split_recalls), written by train_probes
PREDICTIONS = "predictions.parquet"  # per-clip predictions (probes.read_predictions reads one system's)
SETTINGS = "settings.json"  # every probe setting behind the numbers (grid.settings), written by train_probes
MADE_BY = {**{name: f.made_by for name, f in FILES.items()}, SETTINGS: TRAIN}


def split_recalls(table: pd.DataFrame, keys: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A table as the probes score it, one recall column per class (RECALL + class), -> (the table
    without them, and one row per row x class: keys, class (categorical, classes in column order),
    recall to 5 decimals as the CSV files hold numbers)."""
    columns = [c for c in table if c.startswith(RECALL)]
    classes = [c[len(RECALL):] for c in columns]
    long = table[keys].loc[table.index.repeat(len(columns))].reset_index(drop=True)
    long["class"] = pd.Categorical(np.tile(classes, len(table)), categories=classes)
    long["recall"] = np.round(table[columns].to_numpy(dtype=float).ravel(), 5)
    return table.drop(columns=columns), long


def replace_rows(old: pd.DataFrame, new: pd.DataFrame, key: str) -> pd.DataFrame:
    """old's rows whose `key` value new does not have, then new's rows: what a results file becomes when
    rows of some feature sets (or stores) are made again, every other row kept as it was. Categorical
    columns (a parquet file's classes) keep old's categories, new's values added after them."""
    kept = old[~old[key].isin(set(new[key]))]
    for column in old.columns:
        if isinstance(old[column].dtype, pd.CategoricalDtype) and column in new:
            categories = list(old[column].cat.categories)
            categories += [c for c in pd.unique(new[column].astype(object)) if c not in categories and pd.notna(c)]
            kept = kept.astype({column: pd.CategoricalDtype(categories)})
            new = new.astype({column: pd.CategoricalDtype(categories)})
    return pd.concat([kept, new], ignore_index=True)


def classes(recalls: pd.DataFrame) -> list[str]:
    """The classes of a long per-class table (recalls.parquet's class order; a CSV's in order of appearance)."""
    column = recalls["class"]
    return [str(c) for c in (column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column.unique())]


def _read_dtype(column: Column) -> str:
    # every text column is read as text (an all-empty one would otherwise read as float); numbers and
    # flags are checked, not forced, so a missing value stays missing
    return {"str": "str", "Int64": "Int64"}.get(column.dtype)


def read(folder: str | os.PathLike, name: str) -> pd.DataFrame | None:
    """A results file as a table (None when absent), text columns read as text."""
    return read_as(Path(folder) / name, name)


def read_as(path: str | os.PathLike, name: str) -> pd.DataFrame | None:
    """The file at path, read as the results file declared as `name` (None when absent)."""
    if not Path(path).exists():
        return None
    spec = FILES[name]
    if spec.parquet:
        return pd.read_parquet(path)
    return pd.read_csv(path, dtype={c.name: _read_dtype(c) for c in spec.columns if _read_dtype(c)})


def write(table: pd.DataFrame, name: str, path: str | os.PathLike, **to_csv) -> Path:
    """Write the results file declared as `name` to path, after checking the table against the
    declaration (columns in file order; to_csv: pandas' options, e.g. float_format)."""
    found = problems(table, name)
    if found:
        raise ValueError(f"{name} does not match its declaration in emoprobe/results.py: {'; '.join(found[:5])}")
    spec = FILES[name]
    whole = {c.name: "Int64" for c in spec.columns if c.dtype == "Int64" and c.name in table}
    order = [c for c in spec.names if c in table]  # then what a file may add (clips.csv: the corpus's attributes)
    table = table.astype(whole)[[*order, *(c for c in table if c not in order)]]  # Int64: a whole number, never 3.0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if spec.parquet:
        table.to_parquet(path, index=False, compression="zstd")
    else:
        table.to_csv(path, index=False, **to_csv)
    return path


def problems(table: pd.DataFrame, name: str) -> list[str]:
    """What in a table breaks its file's declaration: missing or unknown columns, cells of another
    type or outside the allowed values."""
    spec = FILES[name]
    out = [f"column {c} is missing" for c in spec.names if c not in table and c not in spec.optional]
    extra = [c for c in table if c not in spec.names]
    if name != "clips.csv":  # clips.csv ends with the corpus's own attributes
        out += [f"column {c} is not declared" for c in extra]
    for column in spec.columns:
        if column.name in table:
            out += _cell_problems(table[column.name], column)
    return out


def _cell_problems(values: pd.Series, column: Column) -> list[str]:
    present = values.dropna()
    if column.dtype == "any":
        return []
    if column.dtype in ("int", "Int64", "float"):
        numbers = pd.to_numeric(present, errors="coerce")
        bad = present[numbers.isna()]
        if column.dtype in ("int", "Int64"):
            bad = pd.concat([bad, present[numbers.notna() & (numbers % 1 != 0)]])
        return [f"{column.name}: {bad.iloc[0]!r} is not a{'n integer' if column.dtype == 'int' else ' number'}"] if len(bad) else []
    if column.dtype == "bool":
        bad = present[~present.astype(str).str.lower().isin(["true", "false", "1", "0", "1.0", "0.0"])]
        return [f"{column.name}: {bad.iloc[0]!r} is not true/false"] if len(bad) else []
    if column.allowed is None:
        return []
    allowed = column.allowed() if callable(column.allowed) else column.allowed
    cells = present.astype(str)
    values_ = cells.str.split(column.parts).explode() if column.parts else cells
    ok = values_.isin([str(a) for a in allowed])
    bad = values_[~ok]
    return [f"{column.name}: {bad.iloc[0]!r} is not one of {', '.join(map(str, allowed))}"
            ] if len(bad) else []
