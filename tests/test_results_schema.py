"""Every committed results file matches its declaration in emoprobe/results.py, and writing checks it."""

import pandas as pd
import pytest

from emoprobe import config
from emoprobe import results as results_schema

COMMITTED = config.REPO / "results"
FIXTURE = config.REPO / "tests" / "fixtures" / "results_small" / "results"


@pytest.mark.parametrize("folder", [COMMITTED, FIXTURE], ids=["committed", "fixture"])
@pytest.mark.parametrize("name", sorted(results_schema.FILES))
def test_each_results_file_matches_its_declaration(folder, name):
    table = results_schema.read(folder, name)
    if table is None:
        pytest.skip(f"{name} is not in {folder.name}")
    assert results_schema.problems(table, name) == []


def test_every_csv_in_the_results_folder_is_declared():
    assert {p.name for p in COMMITTED.glob("*.csv")} <= set(results_schema.FILES)


def test_writing_refuses_a_value_outside_the_declaration(tmp_path):
    table = results_schema.read(COMMITTED, "probes.csv").head(3).copy()
    table.loc[0, "fusion"] = "median"  # not a fusion method
    with pytest.raises(ValueError, match="fusion: 'median' is not one of none, select, early, late, stack, auto"):
        results_schema.write(table, "probes.csv", tmp_path / "probes.csv")
    table.loc[0, "fusion"] = "auto"
    shuffled = table[list(reversed(table.columns))]
    path = results_schema.write(shuffled, "probes.csv", tmp_path / "probes.csv")
    assert list(pd.read_csv(path).columns) == list(pd.read_csv(COMMITTED / "probes.csv", nrows=0).columns)


@pytest.mark.parametrize("folder", [COMMITTED, FIXTURE], ids=["committed", "fixture"])
def test_a_layer_index_is_a_typed_column_only_where_a_row_is_one_layer(folder):
    """The block a row scores is a candidate kind; `layer` holds an index (a nullable integer) only
    beside the kind "layer" (and chosen_layer only beside chosen_candidate "layer")."""
    checked = 0
    for name, prefixes in (("probes.csv", ("", "chosen_")), ("probes_summary.csv", ("",)),
                           ("transfer_folds.csv", ("chosen_",)), ("duration_folds.csv", ("chosen_",))):
        table = results_schema.read(folder, name)
        if table is None:
            continue
        for prefix in prefixes:
            kind, index = table[f"{prefix}candidate"], table[f"{prefix}layer"]
            assert str(index.dtype) == "Int64"
            assert index.notna().equals(kind == "layer"), f"{name}: {prefix}layer"
            checked += 1
    assert checked >= 3


def test_the_benchmark_reads_an_older_grids_text_layers_as_typed_candidates(tmp_path):
    """benchmarks/grid_speed.py compares this grid with an older commit's, whose probes.csv had one text
    column `layer` ("0", "concat", "all", "inner-best") and `chosen_layer` ("3" or "concat")."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("grid_speed", config.REPO / "benchmarks" / "grid_speed.py")
    grid_speed = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(grid_speed)
    old = pd.DataFrame({"features": ["a", "a", "a", "a", "b", "c"], "layer": ["0", "1", "concat", "inner-best", "inner-best", "all"],
                        "chosen_layer": ["", "", "", "1", "concat", ""], "probe": "linear", "fusion": "none",
                        "fold": "fold_1", "seed": 0, "ua": 0.5, "C": 1.0, "chosen_method": "", "chosen_set": ""})
    old.to_csv(tmp_path / "old.csv", index=False)
    typed = grid_speed.read_probes(tmp_path / "old.csv")
    assert list(typed.candidate) == ["layer", "layer", "concat", "inner-best", "inner-best", "all"]
    assert typed.layer.tolist()[:2] == [0, 1] and typed.layer[2:].isna().all()
    assert typed.chosen_candidate[3:5].tolist() == ["layer", "concat"] and typed.chosen_layer[3] == 1
    new = typed.assign(ua=typed.ua + 0.01)  # the same rows, one point better
    agreement = grid_speed.agreement(typed, new)
    assert agreement["rows_both"] == 6 and agreement["systems"] == 6  # each layer is a system of its own
    assert agreement["abs_d_ua_row_quantiles"]["1.0"] == 1.0 and agreement["systems_over_0.5_ua"] == 6
    assert {s["layer"] for s in agreement["worst_systems"]} == {0, 1, None}  # JSON: an empty layer is null


@pytest.mark.parametrize("folder", [COMMITTED, FIXTURE], ids=["committed", "fixture"])
def test_each_probes_row_has_its_recall_of_every_class_in_long_rows(folder):
    """recalls.parquet: one row per probes.csv row x class, the class in data (in the labels' order)."""
    probes_table, recalls = (results_schema.read(folder, n) for n in ("probes.csv", results_schema.RECALLS))
    keys = [c.name for c in results_schema.ROW_KEYS]
    classes = results_schema.classes(recalls)
    assert len(classes) >= 2 and len(recalls) == len(probes_table) * len(classes)
    per_row = recalls.groupby(keys, dropna=False, observed=True)["class"].agg(list)
    assert len(per_row) == len(probes_table) and all(c == classes for c in per_row)
    assert [c for c in results_schema.read(folder, "probes.csv") if c.startswith("recall")] == []


def test_recall_columns_become_long_rows_with_the_class_in_data():
    wide = pd.DataFrame({"features": ["a", "b"], "ua": [0.5, 0.25], "recall_sad": [1 / 3, 0.0],
                         "recall_happy": [0.5, float("nan")]})
    rest, long = results_schema.split_recalls(wide, ["features"])
    assert list(rest.columns) == ["features", "ua"]
    assert results_schema.classes(long) == ["sad", "happy"]  # the columns' order, not the alphabet
    assert list(long.features) == ["a", "a", "b", "b"] and list(long["class"]) == ["sad", "happy", "sad", "happy"]
    assert long.recall.tolist()[:3] == [0.33333, 0.5, 0.0] and long.recall.isna().tolist()[3]


def test_writing_keeps_the_corpus_attributes_that_end_clips_csv(tmp_path):
    clips = results_schema.read(FIXTURE, "clips.csv")
    assert {"sex", "actor"} <= set(clips.columns)  # RAVDESS's own attributes, after key, label, speaker
    path = results_schema.write(clips, "clips.csv", tmp_path / "clips.csv")
    assert list(pd.read_csv(path, nrows=0).columns) == list(clips.columns)


def test_the_settings_name_the_data_of_every_feature_set_probed():
    """settings.json, beside the code digest: a digest of each probed feature set's keys and values."""
    import json

    settings = json.loads((FIXTURE / results_schema.SETTINGS).read_text())
    probed = set(results_schema.read(FIXTURE, "feature_sets.csv").set)
    digests = settings["input_digests"]
    assert probed <= set(digests) and all(len(d) == 32 for d in digests.values())
