"""How many clips of a new speaker does the speaker-normalised protocol need?

    python experiments/enrolment.py --data-root ../shared/data/ravdess      # after train_probes.py

Under the `speaker` normalisation (emoprobe.probes.normalise) each test speaker is z-scored with
statistics of its own unlabelled clips. Here those statistics come from only K of them, drawn at
random (DRAWS draws per K), or from the speaker's ENROLMENT_EMOTIONS clips only (a new user reads a
few sentences calmly: every speaker, training ones too, is then measured against its calm baseline);
with random draws training speakers keep all their clips. Every test clip is scored. The
systems: the audio base set and the face base set with the best inner-CV UA under `speaker` in
results/probes.csv (chosen without test labels), and their fusion (`auto`, the method inner CV
prefers). Writes results/enrolment.csv: one row per system x enrolment x K x draw x fold.
"""

import numpy as np
import pandas as pd

from emoprobe import cli, config, probes, timing
from emoprobe import results as results_schema
from emoprobe.data import clips as clip_table
from emoprobe.errors import UserError

CHANNEL = "speech"  # the grid's clips
K = (1, 2, 4, 8, 16, 32)  # clips of each test speaker its statistics come from (all of them: the grid's rows)
DRAWS = 3  # random draws of the K clips per K (each draw: every test speaker's own clips)
ENROLMENT_EMOTIONS = ("neutral", "calm")  # the realistic enrolment: a new speaker reads a few sentences calmly
NORMALISATION = "speaker"
SYSTEM = {"probe": "linear", "candidate": probes.linear.HEADLINE_CANDIDATES}  # the rows kept: headline linear probes


def strongest(summary: pd.DataFrame, modality: str) -> str | None:
    """The base set of a modality with the best mean inner-CV UA under NORMALISATION (no test label)."""
    rows = summary[(summary.normalisation == NORMALISATION) & (summary.n_members == 1) & (summary.fusion == "none")
                   & (summary.probe == "linear") & summary.candidate.isin(SYSTEM["candidate"])
                   & (summary.modalities == modality) & summary.role.eq("base")]
    return None if rows.empty else rows.groupby("features").inner_ua.mean().idxmax()


def enrolments(clips: pd.DataFrame, seed: int, ks=K, draws: int = DRAWS
               ) -> dict[tuple[str, int | None, int], tuple[np.ndarray, bool]]:
    """(enrolment, K, draw) -> (per clip, may it stand for its speaker; do training speakers enrol the
    same way): K random clips per test speaker per draw (training speakers: all their clips), and
    every speaker's ENROLMENT_EMOTIONS clips (training speakers too: every speaker is then measured
    against its own calm baseline)."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in ks:
        for draw in range(draws):
            mask = np.zeros(len(clips), dtype=bool)
            for _, rows in clips.groupby("speaker", observed=True).indices.items():
                mask[rng.choice(rows, size=min(k, len(rows)), replace=False)] = True
            out[("random clips", k, draw)] = mask, False
    calm = clips.label.astype(str).isin(ENROLMENT_EMOTIONS).to_numpy()
    if calm.any():
        out[(" and ".join(ENROLMENT_EMOTIONS) + " clips", None, 0)] = calm, True
    return out


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--out", help="results folder (default: $EMOPROBE_RESULTS or results)")
    p.add_argument("--jobs", type=cli.positive(int), default=2)
    p.add_argument("--seed", type=int, default=0, help="of the random draws")
    p.add_argument("--k", type=cli.positive(int), nargs="+", default=list(K), help="clips per test speaker")
    p.add_argument("--draws", type=cli.positive(int), default=DRAWS, help="random draws per k")
    args = p.parse_args(argv)
    out = config.results_dir(args.out)
    results, feature_sets = (results_schema.read(out, n) for n in ("probes.csv", "feature_sets.csv"))
    if results is None or "normalisation" not in results or NORMALISATION not in set(results.normalisation):
        raise UserError(f"no '{NORMALISATION}' rows in {config.relative(out / 'probes.csv')}: run "
                        "experiments/train_probes.py first")
    roles = feature_sets.drop_duplicates("features").set_index("features").role
    results = results.assign(role=results.features.map(roles))
    chosen = [name for name in (strongest(results, m) for m in ("audio", "face")) if name]
    clips = clip_table.load(args.data_root, CHANNEL, verbose=False)
    base, _ = probes.discover_feature_sets(args.embeddings_dir, [n.split("/", 1)[1] for n in chosen], False, log=None)
    base = [fs for fs in base if fs.name in chosen]
    print(f"enrolment curve for {', '.join(fs.name for fs in base)} and their fusion")
    draws = enrolments(clips, args.seed, args.k, args.draws)
    rows = []
    bar = timing.progress(len(draws), "enrolment", args.quiet, unit="draw")
    for (enrolment, k, draw), (mask, training_too) in draws.items():
        table, *_ = probes.run_grid(clips, base, [], probes=("linear",), n_jobs=args.jobs, log=lambda *a: None,
                                    normalisations=(NORMALISATION,), enrolment=mask,
                                    enrol_training_speakers=training_too)
        table = table[(table.probe == SYSTEM["probe"]) & table.candidate.isin(SYSTEM["candidate"])
                      & table.fusion.isin(["none", "auto"]) & (table.features != probes.BEST_SINGLE)]
        rows.append(table[["features", "normalisation", "n_members", "fusion", "fold", "ua", "wa", "macro_f1"]]
                    .assign(enrolment=enrolment, k=k, draw=draw))
        bar.update()
    bar.close()
    table = pd.concat(rows, ignore_index=True).astype({"k": "Int64"})
    path = results_schema.write(table, "enrolment.csv", out / "enrolment.csv", float_format="%.5f")
    print(table.groupby(["features", "enrolment", "k"], dropna=False).ua.mean().round(3).to_string())
    print(f"-> {config.relative(path)}")


if __name__ == "__main__":
    cli.run(main)
