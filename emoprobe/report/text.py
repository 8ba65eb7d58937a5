"""How numbers read in the documents: percent and points, intervals, pipe tables, one-line scores
and comparisons. The queries that produce the numbers are in tables.py."""

from __future__ import annotations

import numpy as np
import pandas as pd

from . import tables as t


def markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A pipe table; empty cells for missing values."""
    if index:
        df = df.reset_index()
    cell = lambda v: "" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)  # noqa: E731
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns), *rows])


def pct(value: float, sign: bool = False) -> str:
    """A share as percent (or a difference of shares as points), one decimal."""
    return "n/a" if value is None or np.isnan(value) else f"{100 * value:{'+' if sign else ''}.1f}"


def pm(mean: float, std: float) -> str:
    return f"{pct(mean)} ± {pct(std)}"


def interval(low: float, high: float, sign: bool = False) -> str:
    return f"[{pct(low, sign)}, {pct(high, sign)}]"


def score_line(res: t.Results, system: dict) -> str:
    """'UA 71.4 ± 6.7 (pooled 71.2 [64.9, 77.0])' for one system."""
    row = t.where(t.systems(res), system)
    if row.empty:
        return "not run"
    row = row.iloc[0]
    pooled = f" (pooled {pct(row.ua_pooled)} {interval(row.ua_boot_low, row.ua_boot_high)})" if "ua_pooled" in row else ""
    return f"UA {pm(row.ua_mean, row.ua_std)}{pooled}"


def describe_comparison(d: dict) -> str:
    """'+10.2 UA points pooled [5.1, 15.0], bootstrap p = 0.001; +10.4 mean over folds, ahead in 6 of 6 folds'."""
    p = "p < 0.001" if d.get("p", 1) < 0.001 else f"p = {d.get('p', np.nan):.3f}"
    pooled = (f"{pct(d['diff'], True)} UA points pooled over speakers {interval(d['ci_low'], d['ci_high'], True)}, "
              f"paired speaker-bootstrap {p}; " if "diff" in d else "")
    return f"{pooled}{pct(d['fold_diff'], True)} mean over folds, ahead in {d['wins']} of {d['n_folds']} folds"


def brief_comparison(d: dict) -> str:
    """'+10.2 [+5.1, +15.0] (6/6 folds)': pooled difference (fold mean without predictions), folds won."""
    diff = f"{pct(d['diff'], True)} {interval(d['ci_low'], d['ci_high'], True)}" if "diff" in d else pct(d["fold_diff"], True)
    return f"{diff} ({d['wins']}/{d['n_folds']} folds)"


def shapley_grid(res: t.Results, level: str, method: str = t.SHAPLEY_METHOD) -> pd.DataFrame:
    """Shapley values as 'mean [low, high]' in points (t-interval over folds): players x metrics."""
    mean, low, high = (t.shapley_matrix(res, level, v, method) for v in ("shapley_mean", "ci_low", "ci_high"))
    return pd.DataFrame({p: [f"{pct(m, True)} {interval(lo, hi, True)}" for m, lo, hi in zip(mean[p], low[p], high[p])]
                         for p in mean}, index=mean.index).T.rename_axis("player")


def versus_handcrafted(res: t.Results) -> pd.DataFrame:
    """Each base set that is not hand-crafted minus each hand-crafted base set (rows minus columns),
    as brief_comparison cells; empty when either side has none."""
    base = t.sets(res)
    base = base[base.role == "base"]
    handcrafted, learned = (base[m].features for m in (base.weights == "hand-crafted", base.weights != "hand-crafted"))
    return pd.DataFrame({h: [brief_comparison(t.compare(res, t.single(f), t.single(h))) for f in learned]
                         for h in handcrafted}, index=pd.Index(learned, name="features"))
