"""How much of a clip does a probe need? UA when only each test clip's first seconds are heard.

    for s in 1 1.5 2 2.5 3; do python experiments/extract_audio.py --encoders egemaps whisper-tiny.en \\
        --first-seconds $s; done                     # re-encode the cut audio (not averaged windows)
    python experiments/duration.py

For every encoder with cut stores (<encoder>-firstSs): a probe trained on whole clips and tested on
the first S seconds of each test clip, and a probe trained and tested on cuts of the same length,
over the speaker-disjoint folds (each fold's test speakers never trained on); the whole-clip probe
on whole clips is the reference. Rows go to results/duration.csv (mean and std of UA over folds), what
inner CV chose in each fold to results/duration_folds.csv.
"""

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

from emoprobe import cli, config, timing
from emoprobe import results as results_schema
from emoprobe.data import clips as clip_table
from emoprobe.errors import UserError
from emoprobe.probes.transfer import transfer
from emoprobe.store.store import available_stores

CHANNEL = "speech"


def main(argv=None):
    p = cli.parser(__doc__)
    p.add_argument("--encoders", nargs="*", help="only these encoders' stores (default: every one with cuts)")
    p.add_argument("--out", help="results CSV (default: results/duration.csv)")
    cli.add_normalisations(p)
    args = p.parse_args(argv)
    clips = clip_table.load(args.data_root, CHANNEL, verbose=False)
    classes = list(clips.label.cat.categories)
    stores = {s.name: s for s in available_stores(args.embeddings_dir, log=None) if s.modality == "audio"}
    cuts = {}  # whole-clip store name -> {seconds: cut store}
    for store in stores.values():
        meta = store.meta()
        if meta.get("first_seconds") and meta.get("base_name") in stores:
            cuts.setdefault(meta["base_name"], {})[meta["first_seconds"]] = store
    if args.encoders:
        cuts = {name: c for name, c in cuts.items() if name in args.encoders}
    if not cuts:
        raise UserError("no cut stores: run extract_audio.py --first-seconds S for the encoders first")

    rows, chosen, by_key = [], [], clips.set_index("key")
    bar = timing.progress(sum(1 + len(c) for c in cuts.values()), "duration", args.quiet, unit="store")
    say = (lambda line: None) if args.quiet else bar.write
    for name, by_seconds in sorted(cuts.items()):
        whole = _load(stores[name])
        for seconds, store in [(None, stores[name]), *sorted(by_seconds.items())]:
            bar.update()
            cut = _load(store)
            keys = sorted(set(whole[0]) & set(cut[0]) & set(by_key.index))
            table = by_key.loc[keys].reset_index()
            X_whole, X_cut = (X[[row_of[k] for k in keys]] for row_of, X in (whole, cut))
            conditions = {"whole clips": X_whole} if seconds is None else {"whole clips": X_whole, "same cut": X_cut}
            for (trained_on, X_train), normalisation in itertools.product(conditions.items(), args.normalisations):
                _, s, folds = transfer(table, table, X_train, X_cut, classes, normalisation)
                rows.append({"encoder": name, "store": stores[name].id, "finalized": stores[name].meta().get("finalized"),
                             "seconds": seconds if seconds else "whole", "trained_on": trained_on,
                             "normalisation": normalisation,
                             "ua": s["ua"], "ua_fold_mean": s["ua_fold_mean"], "ua_fold_std": s["ua_fold_std"],
                             "wa": s["wa"], "macro_f1": s["macro_f1"], "n_folds": s["n_folds"],
                             "n_test": s["n_test"]})
                chosen.append(folds.assign(**{k: rows[-1][k] for k in ("encoder", "seconds", "trained_on", "normalisation")}))
                say(f"{name} {rows[-1]['seconds']} s, trained on {trained_on}, {normalisation}: UA {100 * s['ua_fold_mean']:.1f} "
                      f"± {100 * s['ua_fold_std']:.1f}")
    bar.close()
    out = Path(args.out) if args.out else config.results_dir() / "duration.csv"
    results_schema.write(pd.DataFrame(rows), "duration.csv", out, float_format="%.5f")
    folds_out = results_schema.write(pd.concat(chosen, ignore_index=True), "duration_folds.csv",
                                     out.with_name(out.stem + "_folds.csv"), float_format="%.5f")
    print(f"-> {config.relative(out)}, {config.relative(folds_out)}")


def _load(store) -> tuple[dict, np.ndarray]:
    """({clip key: row}, the store's default pooling)."""
    keys, X = store.load(store.meta().get("default_pooling", "mean"))
    return {k: i for i, k in enumerate(keys)}, X


if __name__ == "__main__":
    cli.run(main)
