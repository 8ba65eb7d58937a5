"""The protocols side by side (probes.normalise): the findings' headline table, the research
question on what changes between protocols, and the one on how many clips a new speaker needs.

The documents render every other results section once per protocol (document.section); these
sections read every protocol at once, from a Results that holds them all (tables.load(...,
normalisation=None)).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..probes.normalise import NORMALISATIONS
from . import tables as t
from . import text
from .document import LEVEL_TEXT, figure, protocol_title

BASELINE = "global"  # the speaker-independent protocol every other is compared with


def others(res: t.Results) -> list[str]:
    return [n for n in res.normalisations if n != BASELINE]


def protocols(res: t.Results) -> list[str]:
    """Findings: what each protocol is, and the headline systems under each, with the difference."""
    lines = [f"- {protocol_title(n)}." for n in res.normalisations]
    if BASELINE not in res.normalisations or not others(res):
        return lines + ["", "Only one protocol was run: nothing to set side by side."]
    view = res.under(BASELINE)
    systems = t.protocol_systems(view)
    scores = t.protocol_table(res, systems)
    systems = [s for i, s in enumerate(systems) if i in set(scores.system)]  # those run
    scores = t.protocol_table(res, systems)
    table = pd.DataFrame({"system": [t.name(view, s) for s in systems]})
    for n in res.normalisations:
        part = scores[scores.normalisation == n].set_index("system")
        table[f"{n} UA %"] = [text.pm(part.ua_mean[i], part.ua_std[i]) if i in part.index else "" for i in range(len(systems))]
    for n in others(res):
        table[f"{n} minus {BASELINE}"] = [text.brief_comparison(t.compare_protocols(res, s, n)) for s in systems]
    transductive = [n for n in res.normalisations if NORMALISATIONS[n].transductive]
    return lines + ["", "UA % mean ± std over folds under each protocol; the difference is pooled UA points with its",
                    f"{LEVEL_TEXT} paired speaker-bootstrap interval (the same clips scored under both), folds won.", "",
                    text.markdown(table), "",
                    *([f"{', '.join(f'`{n}`' for n in transductive)} assumes that several clips of each test speaker are "
                       "at hand, unlabelled, when it is scored (see limitations.md); the inductive protocols use no "
                       "clip of a test speaker."] if transductive else [])]


def changes(res: t.Results) -> list[str]:
    """Research question: which conclusions of RQ1, RQ2 and RQ4 change with the protocol."""
    if BASELINE not in res.normalisations or not others(res):
        return ["Not available: the results hold one protocol (train_probes.py --normalisations)."]
    lines = ["**Experiment.** Each answer above, re-derived under every protocol: the ranking of the single",
             "sets, the modality that carries each emotion (Shapley values of its recall), the all-sets fusion",
             "against the reference, and each pretrained encoder against its random twin.",
             f"**Figures.** {figure('protocols')}.", "", "**Answer.**"]
    views = {n: res.under(n) for n in res.normalisations}
    ranking = {n: t.systems(v).query("probe == 'linear' and fusion == 'none' and n_members == 1")
               .set_index("features").ua_mean for n, v in views.items()}
    base_sets = t.sets(views[BASELINE]).query("role == 'base'").features
    for n in others(res):
        a, b = ranking[BASELINE].reindex(base_sets), ranking[n].reindex(base_sets)
        rho = a.rank().corr(b.rank())
        lines.append(f"- Ranking of the {len(base_sets)} base sets, `{n}` against `{BASELINE}`: Spearman {rho:.2f}; best "
                     f"set {b.idxmax()} ({text.pct(b.max())}) against {a.idxmax()} ({text.pct(a.max())}); mean gain "
                     f"{text.pct((b - a).mean(), True)} points, from {text.pct((b - a).min(), True)} ({(b - a).idxmin()}) to "
                     f"{text.pct((b - a).max(), True)} ({(b - a).idxmax()}).")
    lines += carrier_changes(views)
    everything = t.all_sets(views[BASELINE])
    if everything:
        for n, v in views.items():
            lines.append(f"- `{n}`: {t.name(v, everything)} minus the reference: "
                         f"{text.brief_comparison(t.compare(v, everything, t.REFERENCE))}.")
    pairs = t.twin_pairs(views[BASELINE])
    for p in pairs.itertuples():
        a, b = t.single(p.pretrained_set), t.single(p.random_set)
        verdicts = {n: t.compare(v, a, b) for n, v in views.items()}
        cells = "; ".join(f"`{n}` {text.brief_comparison(d)}" for n, d in verdicts.items())
        ahead = {n: d.get("ci_low", d["fold_diff"]) > 0 for n, d in verdicts.items()}
        changed = " (the verdict changes)" if len(set(ahead.values())) > 1 else ""
        lines.append(f"- {p.pretrained_set} minus its random twin: {cells}{changed}.")
    lines += ["", "**Caveats.** A transductive protocol's gain is bought with an assumption, not only with a",
              "better probe: several clips of the test speaker must be at hand (RQ7 asks how many). Differences",
              "between protocols are paired on the same clips, so they are tighter than either protocol's interval."]
    return lines


def carrier_changes(views: dict[str, t.Results]) -> list[str]:
    """Per emotion, the modality with the largest Shapley value of its recall under each protocol;
    the emotions whose carrier differs from BASELINE's."""
    tops = {}
    for n, v in views.items():
        if v.has("shapley.csv"):
            table = t.shapley(v).query("level == 'modality' and metric == 'recall'")
            tops[n] = table.sort_values("shapley_mean").groupby("class").player.last()
    if BASELINE not in tops or len(tops) < 2 or tops[BASELINE].index.size == 0:
        return []
    lines = []
    for n in (m for m in tops if m != BASELINE):
        differs = [f"{emotion} ({tops[BASELINE][emotion]} -> {tops[n][emotion]})"
                   for emotion in tops[BASELINE].index if emotion in tops[n] and tops[n][emotion] != tops[BASELINE][emotion]]
        lines.append(f"- Modality carrying most of each emotion's recall, `{n}` against `{BASELINE}`: " +
                     (f"changes for {', '.join(differs)}" if differs else "the same for every emotion") + ".")
    return lines


def enrolment(res: t.Results) -> list[str]:
    """Research question: how many unlabelled clips of a new speaker the `speaker` protocol needs."""
    lines = ["**Experiment.** Under `speaker` normalisation each test speaker's statistics come from only k of",
             "its unlabelled clips (random draws, `experiments/enrolment.py`; training speakers keep all theirs),",
             "or every speaker's from its neutral and calm clips only (a new user reads a few sentences calmly;",
             "every speaker, training ones too, is measured against its calm baseline). Systems: the",
             "audio and the face base set with the best inner-CV UA under `speaker` (no test label), and their",
             "auto fusion. Every test clip is scored, the enrolment clips included.",
             f"**Figure.** {figure('enrolment')}.", ""]
    if not res.has("enrolment.csv"):
        return lines + [f"**Answer.** {res.missing('enrolment.csv')}."]
    curve = t.enrolment_curve(res)
    drawn = curve[curve.k.notna()]
    table, spread = (drawn.pivot(index="k", columns="features", values=v) for v in ("mean", "std"))
    cells = pd.DataFrame({f: [text.pct(m) if pd.isna(s) else text.pm(m, s) for m, s in zip(table[f], spread[f])]
                          for f in table}, index=table.index.astype(int))
    ends = curve.drop_duplicates("features").set_index("features")
    cells.loc["all clips"] = [text.pct(ends.ua_all_clips[f]) for f in cells.columns]
    cells.loc["global (no clip)"] = [text.pct(ends.ua_global[f]) for f in cells.columns]
    for enrolment_kind, part in curve[curve.k.isna()].groupby("enrolment"):
        cells.loc[enrolment_kind] = [text.pct(part.set_index("features")["mean"].get(f, np.nan)) for f in cells.columns]
    draws = res["enrolment.csv"].query("k.notna()").draw.nunique()
    lines += ["**Answer.** UA % against k (mean ± std over draws of the mean over folds; "
              f"{draws} draws), beside `speaker` with every clip and `global`:", "",
              text.markdown(cells.rename_axis("k clips per test speaker"), index=True), ""]
    even, half, most = (t.clips_for_share(curve, share) for share in (0.0, 0.5, 0.9))
    fewest = int(drawn.k.min())

    def below(k) -> str:
        if pd.isna(k):
            return f"`speaker` stays below `global` with up to {int(drawn.k.max())} clips"
        return ("`speaker` is above `global` from one clip" if k == fewest
                else f"`speaker` is below `global` with fewer than {int(k)} clips")
    for f in cells.columns:
        reach = lambda s: (f"more than the {int(drawn.k.max())} clips tried" if pd.isna(s.get(f))  # noqa: E731
                           else f"{int(s[f])} clip{'s' if s[f] > 1 else ''}")
        calm = curve[(curve.features == f) & curve.k.isna()]
        calm_line = "".join(f"; {r.enrolment}: {text.pct(r.share_of_gain)} % of the gain"
                            for r in calm.itertuples() if np.isfinite(r.share_of_gain))
        lines.append(f"- {f}: the gain over `global` is {text.pct(ends.ua_all_clips[f] - ends.ua_global[f], True)} points "
                     f"with every clip; {below(even.get(f))}, reaches half of the gain "
                     f"with {reach(half)}, 90 % with {reach(most)}{calm_line}.")
    lines += ["", "**Caveats.** Draws are of each test speaker's clips of every emotion in RAVDESS's proportions;",
              "a real user's first clips need not be. The enrolment clips are also scored, as in the grid."]
    return lines
