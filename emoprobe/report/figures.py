"""Figures of the notebooks, written to config.figures_dir() ($EMOPROBE_FIGURES, default analysis/figures).

A few plot shapes serve every notebook: horizontal bars, grouped bars with intervals, curves with
interval bands in panels, heat maps, paired fold lines and scatter grids. Each takes a plain table and
the figure's key in FIGURES (the findings link the same names) and returns the figure. Scores are
drawn as given (the notebooks pass percent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import config

# figure key -> file name (analysis/figures/<name>.png); the prefix is the notebook that makes it
FIGURES = {"silhouette": "01_silhouette", "pca": "01_pca", "tsne": "01_tsne",
           "systems": "02_systems", "fusion_methods": "02_fusion_methods", "paired_folds": "02_paired_folds",
           "shapley_modalities": "02_shapley_modalities",
           "recall_sets": "03_recall_sets", "recall_modalities": "03_recall_modalities", "shapley_sets": "03_shapley_sets",
           "confusions": "03_confusions", "confusion_differences": "03_confusion_differences",
           "pooling": "05_pooling", "variants": "05_variant_layers", "temporal_probe": "04_temporal_probe",
           "frame_order": "04_frame_order",
           "layers": "05_layers", "twins": "05_twins", "objectives": "05_objectives",
           "per_speaker": "06_per_speaker", "attributes": "06_attributes",
           "duration": "07_duration", "transfer": "07_transfer",
           "protocols": "08_protocols", "enrolment": "08_enrolment"}


def setup() -> None:
    """Small inline figures (the saved PNGs get a higher dpi) and wide tables."""
    import matplotlib

    matplotlib.rcParams.update({"figure.dpi": 72, "savefig.dpi": 130, "font.size": 9,
                                "axes.spines.top": False, "axes.spines.right": False})
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 30)
    pd.set_option("display.max_colwidth", 80)


def save(fig, key: str, dpi: int | None = None):
    """Write FIGURES[key] as PNG (a lower dpi keeps many-point scatter grids small) and return fig."""
    folder = config.figures_dir()
    folder.mkdir(parents=True, exist_ok=True)
    fig.savefig(folder / f"{FIGURES[key]}.png", bbox_inches="tight", dpi=dpi)
    return fig


def _line(ax, at: float | None, vertical: bool = False) -> None:
    """A dashed reference line (chance, or a reference system's UA)."""
    if at is not None:
        (ax.axvline if vertical else ax.axhline)(at, ls="--", color="grey", lw=0.8)


def hbars(values: pd.Series, errors: pd.Series | None, key: str, xlabel: str, colours: pd.Series | None = None,
          line: float | None = None):
    """One horizontal bar per row (top to bottom in order), whiskers `errors`; colours: a category per
    row (legend by category)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.6 + 0.22 * len(values)))
    palette = {c: plt.cm.tab10(i % 10) for i, c in enumerate(dict.fromkeys(colours))} if colours is not None else {}
    ax.barh(range(len(values)), values, xerr=errors, height=0.75, error_kw={"lw": 0.6},
            color=[palette[c] for c in colours] if colours is not None else "tab:blue")
    ax.set_yticks(range(len(values)), values.index, fontsize=7)
    ax.invert_yaxis()
    _line(ax, line, vertical=True)
    ax.set_xlabel(xlabel)
    if palette:
        ax.legend([plt.Rectangle((0, 0), 1, 1, color=c) for c in palette.values()], list(palette), fontsize=7,
                  frameon=False, loc="lower right")
    return save(fig, key)


def grouped(mean: pd.DataFrame, key: str, ylabel: str, low: pd.DataFrame | None = None,
            high: pd.DataFrame | None = None, line: float | None = None, zero: bool = False):
    """Grouped bars: one group per row of `mean`, one bar per column; low/high (same shape): an
    interval drawn as whiskers."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(5.0, 0.5 + 0.22 * mean.size), 3.2))
    width = 0.8 / mean.shape[1]
    x = np.arange(len(mean))
    for i, column in enumerate(mean.columns):
        errors = None if low is None else np.abs(np.stack([mean[column] - low[column], high[column] - mean[column]]))
        ax.bar(x + (i - (mean.shape[1] - 1) / 2) * width, mean[column], width, yerr=errors, label=str(column),
               error_kw={"lw": 0.6, "capsize": 1.5})
    ax.set_xticks(x, mean.index, rotation=30, ha="right", fontsize=7)
    _line(ax, line)
    if zero:
        ax.axhline(0, color="black", lw=0.5)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=6, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    return save(fig, key)


def curves(table: pd.DataFrame, x: str, series: str, key: str, ylabel: str, panel: str | None = None,
           line: float | None = None, xlabel: str | None = None, band: tuple[str, str] = ("ci_low", "ci_high"),
           logx: bool = False):
    """Lines of `mean` against x, one per value of `series`, with a band between the two `band`
    columns (when the table has them); one panel per value of `panel`; logx: x on a log2 scale."""
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys(table[panel])) if panel else [None]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.2), squeeze=False, sharey=True)
    for ax, name in zip(axes[0], panels):
        part = table if name is None else table[table[panel] == name]
        for label, rows in part.groupby(series, sort=False):
            ax.plot(rows[x], rows["mean"], "-o", ms=3, label=str(label))
            if set(band) <= set(rows):
                ax.fill_between(rows[x], rows[band[0]], rows[band[1]], alpha=0.15)
        _line(ax, line)
        if logx:
            ax.set_xscale("log", base=2)
        elif np.all(np.mod(part[x], 1) == 0):  # layers: whole ticks only
            ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.set_xlabel(xlabel or x)
        ax.set_title("" if name is None else str(name), fontsize=8)
        ax.legend(fontsize=6, frameon=False)
    axes[0, 0].set_ylabel(ylabel)
    fig.tight_layout()
    return save(fig, key)


def heatmaps(panels: dict[str, pd.DataFrame], key: str, diverging: bool = False, label: str = "%"):
    """One annotated heat map per panel (title -> rows x columns); diverging: centred on zero."""
    import matplotlib.pyplot as plt

    first = next(iter(panels.values()))
    fig, axes = plt.subplots(1, len(panels), squeeze=False,
                             figsize=(1.2 + 0.55 * first.shape[1] * len(panels), 0.9 + 0.3 * first.shape[0]))
    for ax, (title, table) in zip(axes[0], panels.items()):
        values = table.to_numpy(dtype=float)
        limit = max(1.0, np.nanmax(np.abs(values))) if diverging else 100
        image = ax.imshow(values, cmap="RdBu_r" if diverging else "viridis", vmin=-limit if diverging else 0,
                          vmax=limit, aspect="auto")
        ax.set_xticks(range(table.shape[1]), table.columns, rotation=45, ha="right", fontsize=7)
        ax.set_yticks(range(table.shape[0]), table.index, fontsize=7)
        for (i, j), v in np.ndenumerate(values):
            dark = not diverging and v < 0.55 * limit  # viridis is dark below about half its range
            ax.text(j, i, f"{v:+.0f}" if diverging else f"{v:.0f}", ha="center", va="center", fontsize=6,
                    color="white" if dark else "black")
        ax.set_title(title, fontsize=8)
    fig.colorbar(image, ax=axes[0].tolist(), label=label, shrink=0.8)
    return save(fig, key)


def paired_folds(panels: dict[str, pd.DataFrame], key: str):
    """Per comparison (title -> folds x [b, a] scores in %), one line per fold from b to a: green
    where a is ahead."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(2.8 * len(panels), 3), squeeze=False, sharey=True)
    for ax, (title, scores) in zip(axes[0], panels.items()):
        b, a = scores.columns
        for _, row in scores.iterrows():
            ax.plot([0, 1], [row[b], row[a]], "-o", ms=3, color="tab:green" if row[a] > row[b] else "grey")
        ax.set_xticks([0, 1], [b, a], fontsize=6, rotation=15)
        ax.set_title(title, fontsize=7)
    axes[0, 0].set_ylabel("UA % per fold")
    fig.tight_layout()
    return save(fig, key)


def scatter_grid(views: dict[str, tuple[np.ndarray, pd.DataFrame]], columns: list[str], key: str):
    """One row per view (name -> (2-D points, their clips' attributes)), one panel per attribute column,
    points coloured by its value; a legend for few categories."""
    import matplotlib
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(views), len(columns), squeeze=False,
                             figsize=(2.6 * len(columns), 2.4 * len(views)))
    for row, (name, (xy, attributes)) in zip(axes, views.items()):
        for ax, column in zip(row, columns):
            values = attributes[column].astype(str).to_numpy()
            categories = sorted(set(values))
            cmap = matplotlib.colormaps["tab20" if len(categories) > 10 else "tab10"]
            for i, c in enumerate(categories):
                ax.scatter(*xy[values == c].T, s=5, color=cmap(i % cmap.N), label=c, alpha=0.8, linewidths=0)
            if len(categories) <= 10:
                ax.legend(fontsize=5, markerscale=2, frameon=False)
            ax.set_title(f"{name}: {column}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    return save(fig, key, dpi=80)
