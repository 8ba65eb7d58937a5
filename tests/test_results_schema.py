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
    recalls = [c for c in table if c.startswith(results_schema.RECALL)]  # in class order
    shuffled = table[[*reversed([c for c in table if c not in recalls]), *recalls]]
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
