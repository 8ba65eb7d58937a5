"""The main job as a new user runs it, from a clean checkout, on a small generated RAVDESS tree.

A copy of the repository's files (tracked and new, none of the ignored outputs: no stores, no venv),
so the committed files are present and nothing made on this machine can stand in for an output.
`make offline` runs against the generated tree with this test's Python environment, then `make all`
(the README's main command, minus the download) in the same checkout: it must resume every finished
store, and the hub encoders, which cannot download here, must be reported as not run, never fail the job. Afterwards: the stores, results/probes.csv, the findings and
every executed notebook must have been made by that run.
"""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from corpus import clean_checkout, ravdess_tree

from emoprobe import encoders

REPO = Path(__file__).resolve().parents[1]
VENV = Path(sys.executable).parent.parent  # the environment running the tests (make setup's .venv in CI)
TREE = {"actors": range(1, 9), "emotions": range(1, 9), "seconds": 1.0, "videos": 2}  # 64 clips, 2 mp4s
# the RQ3/RQ5 extras on fewer encoders and cuts than the defaults (each is a full extraction), and fewer
# sampled coalitions of the 12 base sets (still past shapley.MAX_EXACT_PLAYERS: sampled Shapley values)
SMALLER = ["CONTEXT_VARIANTS=whisper-tiny.en", "CUT_ENCODERS=egemaps", "CUT_SECONDS=0.5", "ENROLMENT_K=1 4",
           "ENROLMENT_DRAWS=1", "PROBE_OPTIONS=--permutations 2"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return ravdess_tree(tmp_path_factory.mktemp("ravdess"), **TREE)


def run_make(target: str, checkout: Path, tree: Path) -> str:
    # PYTHONPATH: the copy's emoprobe, not the editable install of the repository it was copied from
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(checkout),
           "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    env.pop("RAVDESS_ROOT", None)
    done = subprocess.run(["make", target, f"RAVDESS_ROOT={tree}", f"VENV={VENV}", *SMALLER], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"make {target} failed:\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    return done.stdout


def check_outputs(checkout: Path, log: str, hub_tried: bool) -> None:
    metas = [json.loads(m.read_text()) for m in (checkout / "data" / "embeddings").glob("*/*/meta.json")]
    n_clips = len(TREE["actors"]) * len(TREE["emotions"])
    for name in encoders.encoder_names(modality="audio", offline=True):
        assert any(m["encoder"] == name and m["n_clips"] == n_clips for m in metas), f"no complete store of {name}"
    assert any(m["modality"] == "face" and m["n_clips"] == TREE["videos"] for m in metas)  # too few to probe
    if hub_tried:
        for name in encoders.encoder_names(modality="audio", offline=False):
            assert f"[audio/{name}] not run" in log  # the hub cannot be reached here: said, not fatal
    stores = pd.read_csv(checkout / "results" / "stores.csv")
    assert set(stores.n_clips) >= {n_clips}
    for name in ("probes.csv", "stores.csv", "transfer.csv", "duration.csv", "enrolment.csv"):  # made by this run
        made, committed = checkout / "results" / name, REPO / "results" / name
        assert made.exists() and len(pd.read_csv(made)), f"results/{name} missing or empty"
        assert not committed.exists() or made.read_bytes() != committed.read_bytes(), f"results/{name} is the committed one"
    results = pd.read_csv(checkout / "results" / "probes.csv")
    assert len(results) and results.n_test.sum() > 0
    assert results.ua.dropna().between(0, 1).all()
    for doc in ("findings.md", "research_questions.md"):
        text = (checkout / doc).read_text()
        assert text != (REPO / doc).read_text(), f"{doc} was not regenerated"
    for notebook in sorted((checkout / "analysis").glob("*.ipynb")):
        cells = [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]
        assert all(c["execution_count"] for c in cells), f"{notebook.name} was not executed"
        errors = [o for c in cells for o in c["outputs"] if o["output_type"] == "error"]
        assert not errors, f"{notebook.name}: {errors[0]['ename']}: {errors[0]['evalue']}"


@pytest.fixture(scope="module")
def checkout(tmp_path_factory):
    return clean_checkout(tmp_path_factory.mktemp("repo"))


def test_make_offline_from_a_clean_checkout(checkout, tree):
    check_outputs(checkout, run_make("offline", checkout, tree), hub_tried=False)


def test_make_all_then_resumes_and_reports_the_hub_encoders_it_cannot_run(checkout, tree):
    # the same checkout as `make offline` left it: every finished store is reused (the run resumes),
    # the hub encoders are tried and reported, and the grid, findings and notebooks are made again
    log = run_make("all", checkout, tree)
    offline_part = log.split("--encoders hub")[0]
    assert set(re.findall(r"(\d+) to embed", offline_part)) == {"0"}  # the offline stores were not re-extracted
    check_outputs(checkout, log, hub_tried=True)
