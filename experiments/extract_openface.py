"""OpenFace action units as face features for every clip, into data/embeddings/face/.

    python experiments/extract_openface.py --csv-dir /path/to/FacialTracking   # per-frame CSVs (or their zip)
    python experiments/extract_openface.py --au-means ../shared/data/ravdess_openface_au/au_means_per_clip.csv

Per-frame CSVs (the official "RAVDESS Facial Landmark Tracking" set, Zenodo record 3255102: unzipped,
or the zip itself) give store `openface-au`: AU mean, mean+std, normalised-landmark mean+std and
per-frame AU sequences; frames kept/total per clip go to its frames.jsonl. The per-clip means file
gives `openface-au-means` (35 AU means, no sequences). Unreadable files and clips with no confident
frame are recorded, not fatal; a rerun skips clips already embedded.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from emoprobe import openface, paths
from emoprobe.extract import add_shard_argument
from emoprobe.store import EmbeddingStore

MIN_CONFIDENCE = openface.MIN_CONFIDENCE  # drop frames OpenFace tracked with less confidence
CHANNEL = "speech"  # speech | song | all: the tracking set also covers the 1012 song videos


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--csv-dir", help="folder of per-frame OpenFace CSVs (or zips of them) named like the videos")
    p.add_argument("--au-means", help="per-clip AU means CSV (default: the developers' shared copy, if present)")
    p.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE)
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--no-landmarks", dest="landmarks", action="store_false",
                   help="AUs only (for CSVs written without 2D landmarks)")
    p.add_argument("--limit", type=int, help="only the first N clips (a quick try)")
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    add_shard_argument(p)
    args = p.parse_args(argv)

    if args.csv_dir:
        clips = openface.tracking_sources(args.csv_dir, None if args.channel == "all" else args.channel)
        if clips.empty:
            raise SystemExit(f"no RAVDESS-named OpenFace CSV under {args.csv_dir}")
        if args.limit:
            clips = clips.head(args.limit)
        openface.extract_tracking(clips, args.embeddings_dir, args.min_confidence, args.landmarks,
                                  args.shard, meta={"csv_dir": str(args.csv_dir), "channel": args.channel})
        counts = openface.frame_counts(EmbeddingStore("face", openface.OpenFaceEncoder.name, args.embeddings_dir))
        if len(counts):
            read = counts.dropna(subset=["total"])
            print(f"[face/openface-au] frames kept: {read.kept.sum()} of {read.total.sum():.0f} in the "
                  f"{len(read)} readable clip(s); {(counts.kept == 0).sum()} clip(s) with none kept")
        return
    if args.shard:
        raise SystemExit("--shard applies to --csv-dir; the per-clip means file is read in seconds")
    means = args.au_means or (paths.SHARED_OPENFACE_AU if paths.SHARED_OPENFACE_AU.exists() else None)
    if means is None:
        raise SystemExit("give --csv-dir (per-frame OpenFace CSVs, Zenodo record 3255102) or --au-means")
    if not Path(means).exists():
        raise SystemExit(f"--au-means {means}: no such file")
    meta = openface.write_au_means(means, args.embeddings_dir)
    print(f"[face/openface-au-means] {meta['n_clips']} clips, {len(openface.AU_COLUMNS)} AUs each, "
          f"{meta['n_failures']} failure(s); rows flagged duplicate in the source (kept): "
          f"{', '.join(meta['rows_flagged_duplicate_in_source']) or 'none'}")


if __name__ == "__main__":
    main()
