"""The README's cluster recipe, submitted to a real single-node SLURM cluster (tests/slurm_cluster.py).

On 24 real clips (one per actor, every emotion three times) of ../shared/data/ravdess, in a clean
checkout: eGeMAPS and Whisper tiny.en extracted by a 4-task job array, one task killed while it runs
(its merge job is then cancelled by SLURM) and re-submitted alone with a new merge; the whole array
re-submitted skips every clip; the merged stores equal a single-process extraction. Then the grid as
a 6-task array (one fold each) and the job that assembles it and writes the findings: its results
equal one process's on the same stores. Skips where slurmctld/munge are not installed or the shared
data is absent. The commands are the README's own, checked verbatim.
"""

import re
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_RAVDESS
from corpus import REPO, clean_checkout

import slurm_cluster

ENCODERS = "--encoders egemaps whisper-tiny.en"
EXTRACT = [f"JOB=$(sbatch --parsable --array=0-3 experiments/slurm/extract.sbatch audio 4 {ENCODERS})",
           "sbatch --dependency=afterok:$JOB experiments/slurm/merge.sbatch"]
RETRY = [f"RETRY=$(sbatch --parsable --array=1 experiments/slurm/extract.sbatch audio 4 {ENCODERS})",
         "sbatch --dependency=afterok:$RETRY experiments/slurm/merge.sbatch"]
RESUBMIT = f"sbatch --array=0-3 experiments/slurm/extract.sbatch audio 4 {ENCODERS}"
GRID = ["JOB=$(sbatch --parsable --array=0-5 experiments/slurm/grid.sbatch 6)",
        "sbatch --dependency=afterok:$JOB experiments/slurm/findings.sbatch"]
STORES = ["audio/egemaps", "audio/whisper-tiny.en"]
JOB_TIMEOUT_S = 900

pytestmark = [pytest.mark.skipif(slurm_cluster.missing() is not None, reason=str(slurm_cluster.missing())),
              pytest.mark.skipif(not SHARED_RAVDESS.is_dir(), reason="../shared/data/ravdess is absent")]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    running = slurm_cluster.Cluster(tmp_path_factory.mktemp("slurm"))
    try:
        yield running.start()
    finally:
        running.stop()


def real_subset(dest: Path) -> Path:
    """24 real clips as symlinks: actor a's clip of emotion ((a - 1) mod 8) + 1, normal intensity."""
    for actor in range(1, 25):
        emotion = (actor - 1) % 8 + 1
        name = f"03-01-{emotion:02d}-01-01-01-{actor:02d}.flac"
        (dest / f"Actor_{actor:02d}").mkdir(parents=True, exist_ok=True)
        (dest / f"Actor_{actor:02d}" / name).symlink_to(SHARED_RAVDESS / f"Actor_{actor:02d}" / name)
    return dest


def submit(cluster, block: list[str], checkout: Path, env: dict) -> dict:
    """Run README lines in bash (from the checkout's root, as a user would); returns their variables
    and the ids of the jobs they submitted."""
    script = "set -euo pipefail\n" + "\n".join(block) + '\necho "VARS JOB=${JOB:-} RETRY=${RETRY:-}"'
    out = cluster.run("bash", "-c", script, cwd=checkout, env=env).stdout
    found = dict(re.findall(r"(\w+)=(\d*)", out.split("VARS")[1]))
    found["submitted"] = re.findall(r"Submitted batch job (\d+)", out)
    return found


def log(checkout: Path, job: str, task: int) -> str:
    path = checkout / f"slurm-{job}_{task}.out"
    return path.read_text() if path.exists() else ""


def run_python(cluster, checkout: Path, env: dict, *args: str) -> float:
    started = time.perf_counter()
    done = cluster.run(sys.executable, *args, cwd=checkout, env=env, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return time.perf_counter() - started


def assert_same_stores(a: Path, b: Path) -> None:
    for store in STORES:
        assert (a / store / "keys.txt").read_text() == (b / store / "keys.txt").read_text()
        arrays = sorted(p.name for p in (a / store).glob("*.npy"))
        assert arrays and arrays == sorted(p.name for p in (b / store).glob("*.npy"))
        for name in arrays:
            np.testing.assert_allclose(np.load(a / store / name), np.load(b / store / name), rtol=1e-6, atol=1e-6)


def test_readme_cluster_recipe_on_a_real_slurm_cluster(cluster, tmp_path):
    readme = (REPO / "README.md").read_text()
    for line in [*EXTRACT, *RETRY, RESUBMIT, *GRID]:
        assert line in readme, f"the README's cluster section lacks: {line}"
    checkout = clean_checkout(tmp_path / "repo")
    env = {"PYTHON": sys.executable, "PYTHONPATH": str(checkout), "RAVDESS_ROOT": str(real_subset(tmp_path / "data")),
           "PYTHONUNBUFFERED": "1", "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    for variable in ("EMOPROBE_EMBEDDINGS", "EMOPROBE_RESULTS", "EMOPROBE_GRID_PARTS", "EMOPROBE_FIGURES"):
        env[variable] = ""  # defaults: inside the checkout
    timings = {}

    # 1. the extraction array, and one task killed while it runs
    started = time.perf_counter()
    first = submit(cluster, EXTRACT, checkout, env)
    job, merge = first["JOB"], first["submitted"][0]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while "[audio/egemaps] shard 1/4" not in log(checkout, job, 1):
        assert time.monotonic() < deadline, "task 1 never started"
        time.sleep(0.1)
    cluster.run("scancel", f"{job}_1")
    cluster.wait(JOB_TIMEOUT_S)
    assert cluster.state(f"{job}_1") == "CANCELLED", "task 1 finished before it could be killed"
    assert cluster.state(merge) == "CANCELLED", "the merge ran although a task of its array was killed"
    assert not (checkout / "data/embeddings/audio/whisper-tiny.en/keys.txt").exists()

    # 2. the killed task re-submitted alone, with a new merge job
    retry = submit(cluster, RETRY, checkout, env)
    cluster.wait(JOB_TIMEOUT_S)
    timings["extraction, array of 4 (a task killed and re-submitted)"] = time.perf_counter() - started
    retried = log(checkout, retry["RETRY"], 1)
    assert "[audio/whisper-tiny.en] shard 1/4: 6 clip(s)" in retried
    assert "[audio/whisper-tiny.en] 0 clip(s) cached, 6 to embed" in retried

    # 3. the whole array re-submitted: every clip is skipped
    again = cluster.run("bash", "-c", RESUBMIT, cwd=checkout, env=env).stdout.split()[-1]
    cluster.wait(JOB_TIMEOUT_S)
    for task in range(4):
        for store in STORES:
            assert f"[{store}] 6 clip(s) cached, 0 to embed" in log(checkout, again, task)

    # 4. the same extraction by one process
    single = tmp_path / "single"
    timings["extraction, one process"] = run_python(
        cluster, checkout, env, "experiments/extract_audio.py", *ENCODERS.split(), "--embeddings-dir", str(single))
    assert_same_stores(checkout / "data/embeddings", single)

    # 5. the grid as an array, then the job that assembles it and writes the findings
    started = time.perf_counter()
    grid = submit(cluster, GRID, checkout, env)
    cluster.wait(JOB_TIMEOUT_S)
    timings["grid + findings, array of 6 + 1"] = time.perf_counter() - started
    assert all(f"shard {i}/6" in log(checkout, grid["JOB"], i) for i in range(6))
    assert cluster.state(grid["submitted"][0]) == "COMPLETED"
    findings = (checkout / "findings.md").read_text()
    assert findings != (REPO / "findings.md").read_text() and "egemaps" in findings

    started = time.perf_counter()
    one = tmp_path / "one"
    run_python(cluster, checkout, env, "experiments/train_probes.py", "--out", str(one), "--jobs", "1", "--no-progress")
    run_python(cluster, checkout, env, "experiments/make_findings.py", "--results", str(one),
               "--out", str(one / "findings.md"), "--questions-out", str(one / "research_questions.md"))
    timings["grid + findings, one process"] = time.perf_counter() - started
    array_results = pd.read_csv(checkout / "results/probes.csv")
    assert len(array_results) > 0
    pd.testing.assert_frame_equal(array_results, pd.read_csv(one / "probes.csv"))
    report = "\n".join(f"{k}: {v:.0f} s" for k, v in timings.items())
    print(report)  # the README's cluster section quotes these (pytest -s tests/test_slurm.py)
