"""What findings.md and research_questions.md share: sections, figure references, the line saying
which modality is absent, and the sentences both documents use (report.findings, report.questions).
Numbers that the text states (the interval level, the figures folder) come from where they are set."""

from __future__ import annotations

import pandas as pd

from .. import config
from ..encoders.base import MODALITIES
from ..probes.fusion import METHODS
from ..probes.normalise import NORMALISATIONS
from . import tables as t
from . import text
from .figures import FIGURES
from .stats import LEVEL

LEVEL_TEXT = f"{LEVEL * 100:.0f} %"  # the level of every interval the documents give


METHOD_COLUMNS = [*METHODS, "auto"]


TRAINING_FILES = ("probes.csv", "feature_sets.csv")


def figure(name: str) -> str:
    return f"`{figures_folder()}/{FIGURES[name]}.png`"


def figures_folder() -> str:
    """Where the notebooks write the figures (config.figures_dir), as the documents name it."""
    return config.relative(config.figures_dir())


def protocol_title(normalisation: str) -> str:
    """'speaker: TRANSDUCTIVE, each speaker z-scored ...': how a protocol is named in every document."""
    n = NORMALISATIONS[normalisation]
    kind = "TRANSDUCTIVE, uses unlabelled clips of the test speakers" if n.transductive else "inductive"
    return f"Under `{normalisation}` ({kind}): {n.description}"


def section(title: str, res: t.Results, files: tuple, body, per_protocol: bool = False) -> list[str]:
    """A titled section: body(res) lines, or the line saying which file is missing. per_protocol: the
    body once under each protocol the results hold (Results.under), each under its own heading, the
    body's own headings one level down."""
    if not per_protocol or len(res.normalisations) < 2:
        lines = body(res) if res.has(*files) else [res.missing(*files) + "."]
        return [f"## {title}", "", *lines, ""]
    lines = [f"## {title}", ""]
    for normalisation in res.normalisations:
        view = res.under(normalisation)
        inner = body(view) if view.has(*files) else [view.missing(*files) + "."]
        lines += [f"### {protocol_title(normalisation)}", "",
                  *(f"#{line}" if line.startswith("### ") else line for line in inner), ""]
    return lines


def render(res: t.Results, sections: list[tuple], progress=None) -> list[str]:
    """The sections (title, files they need, body[, per protocol]) one after another, calling
    progress() after each."""
    lines = []
    for title, files, body, *per_protocol in sections:
        lines += section(title, res, files, body, *per_protocol)
        if progress:
            progress()
    return lines


WHY_ABSENT = {"audio": "audio encoders need the audio files (`make audio-offline`)",
              "video": "video encoders need the mp4s and, for TimeSformer and VideoMAE, the model hub (`make video`)",
              "face": "face features need the mp4s (`make face`) or the OpenFace AU table (`make openface` with "
                      "OPENFACE_AU_MEANS or OPENFACE_CSV_DIR: README, 'Pipeline')"}


def modalities_note(res: t.Results) -> list[str]:
    """A line at the top when the results lack a modality: what is absent, and why where known."""
    stores = res["stores.csv"]
    if stores is None:
        return []
    present = set(stores[stores.base_set.fillna(False).astype(bool)].modality)
    absent = [m for m in MODALITIES if m not in present]
    if not absent:
        return []
    return [line for m in absent for line in
            (f"**Made without {m} features**: no complete {m} store was behind these results; {WHY_ABSENT[m]}.", "")]


def n_of(values: pd.Series) -> str:
    """'a in 4 of 6 folds, b in 2' for the value chosen in each fold."""
    counts = values.value_counts()
    return ", ".join(f"{v} in {n}" + (f" of {len(values)} folds" if i == 0 else "")
                     for i, (v, n) in enumerate(counts.items()))


def comparison_line(res: t.Results, a: dict, b: dict) -> str:
    return f"- {t.name(res, a)} minus {t.name(res, b)}: {text.describe_comparison(t.compare(res, a, b))}."


def beyond_noise(res: t.Results, named: bool = False) -> str:
    """', k of them beyond ... interval (...)': how many of auto's losses to its best member the paired
    speaker-bootstrap interval puts below zero, against how many chance alone would (empty without
    predictions). named: list them."""
    losses, by_chance = t.losses_beyond_noise(res)
    if "ci_high" not in losses:
        return ""
    beyond = losses[losses.ci_high < 0]
    names = "".join(f"; {r.features} {text.pct(r.diff, True)} {text.interval(r.ci_low, r.ci_high, True)} against "
                    f"{r.best_member}" for r in beyond.itertuples()) if named else ""
    return (f", {len(beyond)} of them beyond the {LEVEL_TEXT} paired speaker-bootstrap interval of the "
            f"difference, where about {round(by_chance, 1):g} would be by chance alone if every fusion equalled "
            f"its best member{names}")
