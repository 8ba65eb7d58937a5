"""Execute the analysis notebooks in place (make findings, and the notebook tests)."""

from __future__ import annotations

from pathlib import Path

from .. import config, timing

NOTEBOOKS = config.REPO / "analysis"


def execute(names=None, folder: Path = NOTEBOOKS, keep_images: bool = False, timeout: int = 1800,
            quiet: bool = False) -> list[Path]:
    """Run folder/*.ipynb (those whose name contains one of `names`) on the current results and stores.
    Image outputs are dropped by default: figures are saved to analysis/figures/, and the notebooks
    stay small to commit. Returns the notebooks run."""
    import nbformat
    from nbclient import NotebookClient

    done = []
    chosen = [p for p in sorted(Path(folder).glob("*.ipynb")) if not names or any(n in p.name for n in names)]
    bar = timing.progress(len(chosen), "notebooks", quiet, unit="notebook")
    for path in chosen:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(path.parent)}}).execute()
        if not keep_images:
            for cell in nb.cells:
                if cell.cell_type == "code":
                    cell.outputs = [o for o in cell.outputs if not any(k.startswith("image/") for k in o.get("data", {}))]
        nbformat.write(nb, path)
        bar.update()
        if not quiet:
            bar.write(f"executed {path.name}")
        done.append(path)
    bar.close()
    return done
