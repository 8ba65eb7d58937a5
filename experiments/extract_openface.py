"""OpenFace action units as face features for every clip, into data/embeddings/face/.

    python experiments/extract_openface.py --csv-dir /path/to/FacialTracking   # per-frame CSVs (or their zips)
    python experiments/extract_openface.py --au-means au_means_per_clip.csv    # per-clip means

Per-frame CSVs (the official "RAVDESS Facial Landmark Tracking" set, Zenodo record 3255102: unzipped,
or the zips themselves) give store `openface-au`: AU mean, mean+std, normalised-landmark mean+std and
per-frame AU sequences; frames kept/total per clip go to its frames.jsonl. A per-clip means table
gives `openface-au-means` (35 AU means, no sequences). Unreadable files and clips with no confident
frame are recorded, not fatal; a rerun skips clips already embedded.
"""

from pathlib import Path

from emoprobe import cli, config, encoders
from emoprobe.encoders import openface
from emoprobe.errors import UserError
from emoprobe.store.extract import run_extraction
from emoprobe.store.store import EmbeddingStore

MIN_CONFIDENCE = openface.MIN_CONFIDENCE  # drop frames OpenFace tracked with less confidence


def main(argv=None):
    p = cli.parser(__doc__, data=False, extraction=True)
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--csv-dir", help="folder of per-frame OpenFace CSVs (or zips of them) named like the videos")
    source.add_argument("--au-means", help="per-clip AU means CSV (clip_id, AU01_r_mean, ...)")
    p.add_argument("--min-confidence", type=float, default=MIN_CONFIDENCE)
    p.add_argument("--no-landmarks", dest="landmarks", action="store_false",
                   help="AUs only (for CSVs written without 2D landmarks)")
    args = p.parse_args(argv)

    for given in (args.csv_dir, args.au_means):
        if given and not Path(given).exists():
            raise UserError(f"{given}: no such file or folder")
    if args.csv_dir:
        clips = openface.tracking_sources(args.csv_dir, None if args.channel == "all" else args.channel)
        if clips.empty:
            raise UserError(f"no RAVDESS-named OpenFace CSV under {args.csv_dir}")
        encoder = encoders.get_encoder("openface-au", landmarks=args.landmarks, min_confidence=args.min_confidence)
        metas = openface.extract_tracking(clips.head(args.limit) if args.limit else clips, encoder, args.embeddings_dir,
                                          args.shard, meta={"csv_dir": config.relative(args.csv_dir), "channel": args.channel})
        counts = openface.frame_counts(EmbeddingStore("face", encoder.name, args.embeddings_dir))
        if len(counts):
            read = counts.dropna(subset=["total"])
            print(f"[face/openface-au] frames kept: {read.kept.sum()} of {read.total.sum():.0f} in the "
                  f"{len(read)} readable clip(s); {(counts.kept == 0).sum()} clip(s) with none kept")
        return cli.check_outcome(metas, args.strict)
    table, flagged = openface.au_means_table(args.au_means)
    encoder = encoders.get_encoder("openface-au-means", source=Path(args.au_means).name, flagged=flagged)
    metas = run_extraction(table.head(args.limit) if args.limit else table, [encoder],
                           load=openface.au_means_loader(table),
                           root=args.embeddings_dir, batch_size=64, shard=args.shard)
    for meta in metas.values():
        print(f"[face/openface-au-means] {meta['n_clips']} clips, {len(openface.AU_COLUMNS)} AUs each, "
              f"{meta['n_failures']} failure(s); rows flagged duplicate in the source (kept): {', '.join(flagged) or 'none'}")
    cli.check_outcome(metas, args.strict)


if __name__ == "__main__":
    cli.run(main)
