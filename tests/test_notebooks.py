"""The analysis notebooks run top to bottom on the committed fixture (tests/fixtures/results_small/).

Each notebook is executed with nbclient from a temporary copy, with $EMOPROBE_RESULTS /
$EMOPROBE_EMBEDDINGS pointing at the fixture and $EMOPROBE_FIGURES at a temporary folder, so the
committed notebooks and figures are never touched. Part of the default `pytest -q` (one to two minutes
on two busy cores); `pytest -k "not notebook"` skips them. Rebuild the fixture with
`python experiments/make_fixture.py`.
"""

import re
import shutil
import time

import nbformat
import pandas as pd
import pytest
from nbclient import NotebookClient

from emoprobe import config

ANALYSIS = config.REPO / "analysis"
FIXTURE = config.REPO / "tests" / "fixtures" / "results_small"
NOTEBOOKS = sorted(ANALYSIS.glob("*.ipynb"))
CELL_TIMEOUT_S = 300  # generous per cell: CI cores are shared; a whole notebook takes seconds to a minute
FIXTURE_MAX_BYTES = 2_000_000  # the fixture is committed: keep it small


def test_there_are_notebooks_and_a_fixture_with_every_case():
    assert len(NOTEBOOKS) >= 7
    size = sum(f.stat().st_size for f in FIXTURE.rglob("*") if f.is_file())
    assert size < FIXTURE_MAX_BYTES, f"fixture is {size / 1e6:.1f} MB"
    results = FIXTURE / "results"
    for name in ("probes.csv", "probes_summary.csv", "feature_sets.csv", "shapley.csv", "stores.csv", "clips.csv",
                 "predictions.parquet", "transfer.csv", "duration.csv"):
        assert (results / name).exists(), name
    stores = pd.read_csv(results / "stores.csv")
    sets = pd.read_csv(results / "feature_sets.csv")
    assert stores.twin_of.notna().any() and stores.variant.notna().any()  # a random twin, a variant
    assert (stores.n_clips < 10).any()  # stores too small to probe
    assert set(stores.modality) == {"audio", "face", "video"}
    assert (sets.role == "extra pooling").any()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"notebook-{p.stem}")
def test_notebook_runs_on_the_fixture(path, tmp_path, monkeypatch):
    work = tmp_path / "analysis"
    work.mkdir()
    shutil.copy(path, work / path.name)
    figures = tmp_path / "figures"
    for name, value in {"EMOPROBE_RESULTS": FIXTURE / "results", "EMOPROBE_EMBEDDINGS": FIXTURE / "embeddings",
                        "EMOPROBE_FIGURES": figures, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                        "HF_HUB_OFFLINE": "1"}.items():
        monkeypatch.setenv(name, str(value))  # the kernel inherits this process's environment
    nb = nbformat.read(work / path.name, as_version=4)
    started = time.perf_counter()
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                   resources={"metadata": {"path": str(work)}}).execute()
    print(f"{path.name}: {time.perf_counter() - started:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors
    saved = sorted(p.name for p in figures.glob("*.png"))
    assert saved and all(name.startswith(path.stem[:2]) for name in saved), saved


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"notebook-{p.stem}")
def test_notebook_markdown_has_no_hard_coded_numbers_and_code_no_path_edits(path):
    """Every number a reader sees is computed in a cell; markdown explains, it does not report.
    (Digits inside `code spans`, e.g. file names, are allowed.) The package is installed: no sys.path."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            prose = re.sub(r"`[^`]*`", "", cell.source)
            assert not re.search(r"\d", prose), f"{path.name}: digits in markdown: {cell.source[:80]!r}"
        else:
            assert "sys.path" not in cell.source
