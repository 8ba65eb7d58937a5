"""Execute the analysis notebooks in place (make findings, and the notebook tests)."""

from __future__ import annotations

from pathlib import Path

from .. import config, timing

NOTEBOOKS = config.REPO / "analysis"
JOBS = 2  # notebooks executed at once, each in its own kernel (most of a notebook's time is one core's)


def execute(names=None, folder: Path = NOTEBOOKS, keep_images: bool = False, timeout: int = 1800,
            quiet: bool = False, jobs: int = JOBS) -> list[Path]:
    """Run folder/*.ipynb (those whose name contains one of `names`) on the current results and stores,
    `jobs` at a time. Image outputs are dropped by default: figures are saved to analysis/figures/, and
    the notebooks stay small to commit. Returns the notebooks run, in name order."""
    from joblib import Parallel, delayed

    chosen = [p for p in sorted(Path(folder).glob("*.ipynb")) if not names or any(n in p.name for n in names)]
    bar = timing.progress(len(chosen), "notebooks", quiet, unit="notebook")
    for path in Parallel(n_jobs=min(jobs, len(chosen)) or 1, return_as="generator_unordered")(
            delayed(execute_one)(path, keep_images, timeout) for path in chosen):
        bar.update()
        if not quiet:
            bar.write(f"executed {path.name}")
    bar.close()
    return chosen


def execute_one(path: Path, keep_images: bool = False, timeout: int = 1800) -> Path:
    """Execute one notebook in place (in the worker process that runs it)."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    if not keep_images:
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs = [o for o in cell.outputs if not any(k.startswith("image/") for k in o.get("data", {}))]
    nbformat.write(nb, path)
    return path
