"""Configuration in one place: where things live, and every environment variable the package reads.

Variables are read when a function is called, not at import, so a test or a notebook can set them.
    RAVDESS_ROOT          the dataset (else --data-root, else data/raw)
    EMOPROBE_EMBEDDINGS   the embedding stores (default data/embeddings)
    EMOPROBE_RESULTS      probe results (default results)
    EMOPROBE_GRID_PARTS   the probe grid's finished parts, for resuming (default <results>/.grid_parts)
    EMOPROBE_FIGURES      figures written by the notebooks (default analysis/figures)
    EMOPROBE_QUIET        1: no progress bars (what every script's --quiet sets)
    RANK/WORLD_SIZE, SLURM_ARRAY_TASK_ID/COUNT/MIN, SLURM_PROCID/NTASKS   --shard auto
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
RAW = DATA / "raw"  # where the downloader unpacks RAVDESS
SPLITS = DATA / "splits"  # folds, as data files


def _path(cli_value, variable: str, default: Path) -> Path:
    return Path(cli_value or os.environ.get(variable) or default).expanduser().resolve()


def data_root(cli_value: str | os.PathLike | None = None) -> Path:
    """The RAVDESS root: `--data-root`, else $RAVDESS_ROOT, else data/raw."""
    return _path(cli_value, "RAVDESS_ROOT", RAW)


def embeddings_dir(cli_value: str | os.PathLike | None = None) -> Path:
    return _path(cli_value, "EMOPROBE_EMBEDDINGS", DATA / "embeddings")


def results_dir(cli_value: str | os.PathLike | None = None) -> Path:
    return _path(cli_value, "EMOPROBE_RESULTS", REPO / "results")


def grid_parts_dir(cli_value: str | os.PathLike | None = None, results: str | os.PathLike | None = None) -> Path:
    """Where the grid keeps its finished parts: beside the results they make (each results folder has
    its own, so that one grid's clean-up never touches another's)."""
    return _path(cli_value, "EMOPROBE_GRID_PARTS", results_dir(results) / ".grid_parts")


def figures_dir(cli_value: str | os.PathLike | None = None) -> Path:
    return _path(cli_value, "EMOPROBE_FIGURES", REPO / "analysis" / "figures")


def quiet() -> bool:
    """Whether progress bars are off (--quiet, or $EMOPROBE_QUIET=1)."""
    return os.environ.get("EMOPROBE_QUIET") == "1"


def relative(path: str | os.PathLike) -> str:
    """A path as committed files show it: relative to the repository (e.g. ../shared/data/ravdess),
    never an absolute path of the machine it was made on."""
    return os.path.relpath(Path(path).resolve(), REPO)


# (index variable, count variable, first-index variable) of the launchers --shard auto understands
SHARD_ENV = [("RANK", "WORLD_SIZE", None),  # torchrun
             ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_COUNT", "SLURM_ARRAY_TASK_MIN"),  # sbatch --array
             ("SLURM_PROCID", "SLURM_NTASKS", None)]  # srun -n


def shard_from_environment() -> tuple[int, int] | None:
    """(i, n) from torchrun's or SLURM's variables, or None when none is set."""
    env = os.environ
    for index, count, first in SHARD_ENV:
        if index in env and count in env:
            return int(env[index]) - int(env.get(first, 0) if first else 0), int(env[count])
    return None
