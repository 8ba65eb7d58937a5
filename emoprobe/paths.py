"""Where things live. Every script resolves paths here, so one flag or variable moves them all."""

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
RAW = DATA / "raw"  # where the downloader unpacks RAVDESS
SPLITS = DATA / "splits"
EMBEDDINGS = Path(os.environ.get("EMOPROBE_EMBEDDINGS", DATA / "embeddings"))
RESULTS = Path(os.environ.get("EMOPROBE_RESULTS", REPO / "results"))
FIGURES = REPO / "analysis" / "figures"

# A copy of the dataset already on disk, e.g. `../shared/data/ravdess` on the developers' machines.
SHARED_RAVDESS = REPO.parent / "shared" / "data" / "ravdess"
SHARED_OPENFACE_AU = REPO.parent / "shared" / "data" / "ravdess_openface_au" / "au_means_per_clip.csv"


def data_root(cli_value: str | os.PathLike | None = None) -> Path:
    """The RAVDESS root: `--data-root`, else $RAVDESS_ROOT, else data/raw."""
    root = cli_value or os.environ.get("RAVDESS_ROOT") or RAW
    return Path(root).expanduser().resolve()
