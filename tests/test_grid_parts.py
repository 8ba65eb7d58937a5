"""The grid's parts: a re-run reuses them, any change of input recomputes, and a grid killed with
kill -9 midway then re-run ends with exactly the results of an uninterrupted run (the real script,
in subprocesses, on the synthetic fixture stores)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_probes import synthetic

from emoprobe import probes
from emoprobe.probes import FeatureSet, grid, parts

REPO = Path(__file__).resolve().parents[1]
FIXTURE = REPO / "tests" / "fixtures" / "results_small" / "embeddings"
FEATURES = ["fx-functionals", "fx-frames", "fx-au-means", "fx-encoder-randinit"]
SUBPROCESS_ENV = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
SLOW_WRAPPER = """
import runpy, sys, time
from emoprobe.probes import grid
original = grid._made
def slow_made(*args):  # every part takes a while, so that the kill lands midway
    time.sleep({delay})
    return original(*args)
grid._made = slow_made
sys.argv = ["train_probes.py", *sys.argv[1:]]
runpy.run_path({script!r}, run_name="__main__")
"""


def sets_of(clips, X):
    return [FeatureSet("audio/a", list(clips.key), X[:, :6]), FeatureSet("face/b", list(clips.key), X[:, 6:])]


def run(clips, sets, folder, **kwargs):
    return probes.run_grid(clips, sets, seeds=(0,), probes=("linear",), log=lambda *_: None, parts_dir=folder,
                           **kwargs)


def test_a_rerun_reuses_every_part_and_changed_inputs_are_recomputed(tmp_path, monkeypatch):
    clips, X = synthetic()
    first, predictions, *_ = run(clips, sets_of(clips, X), tmp_path)
    n_parts = len(list(tmp_path.glob("*" + parts.SUFFIX)))
    assert n_parts == 6 * 3  # two sets and one chunk of fusions, in each of six folds

    def computed(*_):
        raise AssertionError("a part with unchanged inputs was computed again")
    monkeypatch.setattr(grid, "single_part", computed)
    monkeypatch.setattr(grid, "fusion_part", computed)
    again, again_predictions, *_ = run(clips, sets_of(clips, X), tmp_path)
    pd.testing.assert_frame_equal(first, again)
    pd.testing.assert_frame_equal(predictions, again_predictions)
    monkeypatch.undo()

    changed = X.copy()
    changed[0, 7] += 1.0  # one value of one clip of set b: b's parts and the fusions are new, a's are not
    made = []
    original = grid._made
    monkeypatch.setattr(grid, "_made", lambda store, key, make, *args: made.append(make.__name__)
                        or original(store, key, make, *args))
    run(clips, sets_of(clips, changed), tmp_path)
    assert sorted(made) == sorted(["single_part"] * 6 + ["fusion_part"] * 6)
    assert len(list(tmp_path.glob("*" + parts.SUFFIX))) == n_parts  # the unused parts were pruned


def test_shards_make_every_part_once_and_a_run_without_shard_only_assembles(tmp_path, monkeypatch):
    """What a job array of the grid does (experiments/slurm/grid.sbatch, then findings.sbatch)."""
    clips, X = synthetic()
    whole, predictions, *_ = run(clips, sets_of(clips, X), tmp_path / "whole")
    kept = [6, 12, 15, 18]  # after each shard: 3 parts per fold; 6 folds in 4 shards hold 2, 2, 1 and 1 folds
    for i in range(4):
        assert run(clips, sets_of(clips, X), tmp_path / "array", shard=(i, 4)) is None
        assert len(list((tmp_path / "array").glob("*" + parts.SUFFIX))) == kept[i]

    def computed(*_):
        raise AssertionError("the shards left a part to compute")
    monkeypatch.setattr(grid, "single_part", computed)
    monkeypatch.setattr(grid, "fusion_part", computed)
    assembled, assembled_predictions, *_ = run(clips, sets_of(clips, X), tmp_path / "array")
    pd.testing.assert_frame_equal(whole, assembled)
    pd.testing.assert_frame_equal(predictions, assembled_predictions)


def test_digests_see_values_shapes_and_order():
    a = np.arange(6, dtype=np.float32)
    assert parts.digest(a) == parts.digest(a.copy())
    assert parts.digest(a) != parts.digest(a.reshape(2, 3))
    assert parts.digest(a) != parts.digest(a.astype(np.float64))
    assert parts.digest("x", 1) != parts.digest(1, "x")
    assert parts.digest([(0, 1)]) != parts.digest([(0,), (1,)])


@pytest.fixture(scope="module")
def empty_tree(tmp_path_factory):
    """Empty files named as RAVDESS names them, for the fixture's keys: the labels are in the names."""
    root = tmp_path_factory.mktemp("tree") / "ravdess"
    keys = pd.read_csv(REPO / "tests" / "fixtures" / "results_small" / "results" / "clips.csv").key
    for key in keys:
        path = root / f"Actor_{key[-2:]}" / f"03-{key}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    return root


def grid_command(tree: Path, out: Path, folder: Path | None, delay: float = 0.0) -> list[str]:
    wrapper = out.parent / f"slow_{delay}.py"
    wrapper.write_text(SLOW_WRAPPER.format(delay=delay, script=str(REPO / "experiments" / "train_probes.py")))
    return [sys.executable, str(wrapper), "--data-root", str(tree), "--embeddings-dir", str(FIXTURE), "--out", str(out),
            "--features", *FEATURES, "--seeds", "0", "--jobs", "1", "--no-progress",
            *(["--parts", str(folder)] if folder else ["--no-parts"])]


def test_kill_9_mid_grid_then_rerun_gives_the_uninterrupted_results(empty_tree, tmp_path):
    reference = subprocess.run(grid_command(empty_tree, tmp_path / "reference", None), env=SUBPROCESS_ENV,
                               capture_output=True, text=True)
    assert reference.returncode == 0, reference.stderr[-2000:]

    folder = tmp_path / "parts"
    proc = subprocess.Popen(grid_command(empty_tree, tmp_path / "killed", folder, delay=0.3), env=SUBPROCESS_ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(list(folder.glob("*" + parts.SUFFIX))) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = len(list(folder.glob("*" + parts.SUFFIX)))
    assert proc.returncode == -signal.SIGKILL and n_done >= 8, "the kill must land midway"
    assert not (tmp_path / "killed" / "probes.csv").exists()

    rerun = subprocess.run(grid_command(empty_tree, tmp_path / "killed", folder), env=SUBPROCESS_ENV,
                           capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    n_parts = len(list(folder.glob("*" + parts.SUFFIX)))
    assert n_done < n_parts, "the kill must land before the last part"
    for name in ("probes.csv", "probes_summary.csv", "shapley.csv", "feature_sets.csv"):
        assert (tmp_path / "killed" / name).read_text() == (tmp_path / "reference" / name).read_text(), name
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "killed" / "predictions.parquet"),
                                  pd.read_parquet(tmp_path / "reference" / "predictions.parquet"))


def test_adding_a_single_only_set_gives_what_the_whole_grid_gives(empty_tree, tmp_path):
    """train_probes --add: a random control probed on its own and put into results made without it
    ends with every results file a whole run with it writes (rows compared in any order)."""
    base_sets, control = FEATURES[:-1], FEATURES[-1]

    def grid(out, features, *options):
        command = [*grid_command(empty_tree, out, None)[:-1], *options]  # no parts: every row computed here
        at = command.index("--features")
        command[at + 1:at + 1 + len(FEATURES)] = features
        return subprocess.run(command, env=SUBPROCESS_ENV, capture_output=True, text=True)

    assert grid(tmp_path / "whole", FEATURES, "--no-parts").returncode == 0
    folder = tmp_path / "parts"
    assert grid(tmp_path / "added", base_sets, "--parts", str(folder)).returncode == 0
    base_parts = set(folder.glob("*" + parts.SUFFIX))
    added = grid(tmp_path / "added", [control], "--parts", str(folder), "--add")
    assert added.returncode == 0, added.stderr[-2000:]
    assert base_parts < set(folder.glob("*" + parts.SUFFIX))  # the grid's own parts kept for its next run

    def rows(folder, name):
        table = pd.read_parquet(folder / name) if name.endswith(".parquet") else pd.read_csv(folder / name)
        return table.astype(str).sort_values(list(table.columns)).reset_index(drop=True)
    for name in ("probes.csv", "recalls.parquet", "probes_summary.csv", "feature_sets.csv", "predictions.parquet",
                 "shapley.csv", "stores.csv", "poolings.csv"):
        pd.testing.assert_frame_equal(rows(tmp_path / "added", name), rows(tmp_path / "whole", name), obj=name)
    whole, merged = (json.loads((tmp_path / f / "settings.json").read_text()) for f in ("whole", "added"))
    assert [a["sets"] for a in merged.pop("added")] == [[f"audio/{control}"]]
    assert merged == whole

    refused = grid(tmp_path / "added", [base_sets[0]], "--no-parts", "--add")  # a base set: its fusions would change
    assert refused.returncode == 2 and "re-run the whole grid" in refused.stderr
    refused = grid(tmp_path / "added", [control], "--no-parts", "--add", "--seeds", "0", "1")  # other settings
    assert refused.returncode == 2 and "mlp_seeds" in refused.stderr
