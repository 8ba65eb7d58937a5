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
