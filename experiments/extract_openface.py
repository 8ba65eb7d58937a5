"""OpenFace action units as face features for every clip, into data/embeddings/face/.

    python experiments/extract_openface.py --csv-dir /path/to/facial_landmark_tracking   # per-frame CSVs
    python experiments/extract_openface.py --au-means ../shared/data/ravdess_openface_au/au_means_per_clip.csv

Per-frame CSVs (the official "RAVDESS Facial Landmark Tracking" set, Zenodo record 3255102) give
store `openface-au` (mean, mean+std and per-frame sequences); the per-clip means file gives
`openface-au-means`. Unreadable files and clips with no confident frame are recorded, not fatal.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import pandas as pd

from emoprobe import openface, paths, ravdess
from emoprobe.extract import add_shard_argument, run_extraction
from emoprobe.store import EmbeddingStore

MIN_CONFIDENCE = openface.MIN_CONFIDENCE  # drop frames OpenFace tracked with less confidence


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv-dir", help="folder of per-frame OpenFace CSVs named like the videos")
    p.add_argument("--au-means", help="per-clip AU means CSV (default: the developers' shared copy, if present)")
    p.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE)
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    add_shard_argument(p)
    args = p.parse_args(argv)

    if args.csv_dir:
        csvs = sorted(Path(args.csv_dir).rglob("*.csv"))
        rows = []
        for path in csvs:
            try:
                rows.append({"key": ravdess.parse_name(path).clip, "source": str(path)})
            except ValueError as err:
                print(f"[openface] skipped {err}")
        clips = pd.DataFrame(rows, columns=["key", "source"]).drop_duplicates("key")
        store = EmbeddingStore("face", "openface-au", args.embeddings_dir)
        run_extraction(clips, store,
                       load=lambda path: openface.read_tracking_csv(path, args.min_confidence),
                       encode=lambda frames: [openface.encode_tracking(f) for f in frames],
                       meta={"model_id": "OpenFace 2 action units (per-frame tracking CSVs)",
                             "random_init": False, "columns": openface.AU_COLUMNS,
                             "min_confidence": args.min_confidence, "packages": ["pandas"],
                             "pooling": "mean / mean+std over confident frames; sequence = per-frame AUs"},
                       shard=args.shard)
        return
    if args.shard:
        raise SystemExit("--shard applies to --csv-dir; the per-clip means file is read in seconds")
    means = args.au_means or (paths.SHARED_OPENFACE_AU if paths.SHARED_OPENFACE_AU.exists() else None)
    if means is None:
        raise SystemExit("give --csv-dir (per-frame OpenFace CSVs, Zenodo record 3255102) or --au-means")
    meta = openface.write_au_means(means, args.embeddings_dir)
    print(f"[face/openface-au-means] {meta['n_clips']} clips, {len(openface.AU_COLUMNS)} AUs each")


if __name__ == "__main__":
    main()
