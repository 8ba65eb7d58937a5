"""The benchmarks run (on the committed fixture stores): a benchmark that no longer runs is found here,
not by the next person who needs its numbers. Their timings are not checked (machine-dependent)."""

import json
import runpy
import sys

import pytest
from test_grid_parts import FIXTURE, empty_tree  # noqa: F401 (a fixture: the fixture's clips as named files)

from emoprobe import config
from emoprobe.probes import fusion


def test_early_fusion_coordinates_runs_and_splits_its_time(empty_tree, tmp_path, monkeypatch):  # noqa: F811
    out = tmp_path / "early.json"
    monkeypatch.setattr(sys, "argv", ["early_fusion_coordinates.py", "--data-root", str(empty_tree), "--embeddings-dir",
                                      str(FIXTURE), "--sets", "fx-functionals", "fx-frames", "fx-au-means", "--out", str(out)])
    try:
        runpy.run_path(str(config.REPO / "benchmarks" / "early_fusion_coordinates.py"), run_name="__main__")
    except SystemExit as stopped:  # cli.run exits only on an error (status 2, one line on stderr)
        pytest.fail(f"the benchmark stopped with status {stopped.code}")
    report = json.loads(out.read_text())
    assert len(report["sets"]) == 3 and report["fusions"]
    for f in report["fusions"]:
        split = f["grid_split_s"]
        assert set(split) == {"eigendecompositions", "inner-CV fits", "final fit", "rest"}
        assert sum(split.values()) == pytest.approx(f["grid_s"], abs=0.01)
        assert f["C"][0] in fusion.EARLY_C_GRID
    assert 0 < report["widest_inner_fit"]["bmm_s"] <= report["widest_inner_fit"]["profiled_s"]
