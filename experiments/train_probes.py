"""Train the probe grid on every finalized embedding store and write results/.

    python experiments/train_probes.py --data-root ../shared/data/ravdess

One run trains, per outer fold: a linear probe per layer of every feature set, the linear probe on
every fusion (concatenation by clip key) of the sets' default poolings, and the MLP on every set and
on the fusion of all of them.
Writes results/probes.csv (one row per features x layer x probe x fold x seed),
results/probes_summary.csv (mean and std over folds and seeds) and results/predictions/*.csv.gz.
"""

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from emoprobe import paths, probes, ravdess

SCHEME = "emobox6"  # actor-disjoint folds: emobox6 (comparable with EmoBox) or loao
CHANNEL = "speech"  # the folds and all committed results are on the speech channel
MAX_SUBSET = 2  # fusions: every pair, plus all sets together; 0 = every non-empty subset (hours on 2 cores)
JOBS = 2  # folds trained in parallel processes (one torch thread each); set to your core count


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="RAVDESS folder, for labels and actors (default: $RAVDESS_ROOT or data/raw)")
    p.add_argument("--features", nargs="*", help="only stores whose 'modality/model' contains one of these")
    p.add_argument("--scheme", default=SCHEME, choices=["emobox6", "loao"])
    p.add_argument("--seeds", type=int, nargs="+", default=list(probes.SEEDS))
    p.add_argument("--probes", nargs="+", default=["linear", "mlp"], choices=["linear", "mlp"])
    p.add_argument("--max-subset", type=int, default=MAX_SUBSET)
    p.add_argument("--mlp-on-every-subset", action="store_true",
                   help="also train the MLP on every fusion (default: single sets and all sets together)")
    p.add_argument("--no-extra-poolings", dest="extra_poolings", action="store_false",
                   help="probe only each store's default pooling")
    p.add_argument("--jobs", type=int, default=JOBS)
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    p.add_argument("--out", default=paths.RESULTS)
    args = p.parse_args(argv)

    clips = ravdess.load_clips(paths.data_root(args.data_root), CHANNEL)
    base, extra = probes.discover_feature_sets(args.embeddings_dir, args.features, args.extra_poolings)
    if not base:
        raise SystemExit(f"no finalized embeddings under {args.embeddings_dir}: run experiments/extract_*.py first")
    print(f"{len(base)} feature sets: {', '.join(fs.name for fs in base)}; {len(extra)} extra poolings")
    started = time.perf_counter()
    results, predictions = probes.run_grid(clips, base, extra, args.scheme, args.seeds, args.probes,
                                           args.max_subset or None, args.mlp_on_every_subset, args.jobs)
    out = Path(args.out)
    (out / "predictions").mkdir(parents=True, exist_ok=True)
    results.to_csv(out / "probes.csv", index=False, float_format="%.5f")
    summary = probes.summarise(results)
    summary.to_csv(out / "probes_summary.csv", index=False, float_format="%.5f")
    for (features, probe), part in predictions.groupby(["features", "probe"]):
        slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", features)
        part.to_csv(out / "predictions" / f"{slug}__{probe}.csv.gz", index=False)
    print(f"{len(results)} probe results in {time.perf_counter() - started:.0f} s -> {out}/probes.csv")
    print(summary.head(15).to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
