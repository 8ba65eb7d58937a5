"""Write a manifest (JSON lines, one clip per line) for a RAVDESS folder, or check one you wrote.

    python experiments/make_manifest.py --data-root ../shared/data/ravdess --out data/ravdess_speech.jsonl
    python experiments/make_manifest.py --check my_corpus.jsonl      # read it as every script would

Every script takes a manifest wherever it takes a RAVDESS folder (--data-root corpus.jsonl), so any
corpus enters the pipeline through one: key, audio and/or video, label, speaker, optionally fold or
split (see emoprobe/data/manifest.py). Media paths are written relative to the manifest's folder.
"""

from emoprobe import cli, config
from emoprobe.data import clips as clip_table
from emoprobe.data import folds, manifest
from emoprobe.errors import UserError

CHANNEL = "speech"  # speech | song | all


def main(argv=None):
    p = cli.parser(__doc__, embeddings=False)
    p.add_argument("--out", metavar="JSONL", help="where to write the manifest")
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--check", metavar="JSONL", help="read and summarise a manifest instead")
    args = p.parse_args(argv)
    if args.check:
        clips = clip_table.load(args.check, channel=None)
        fold_table = folds.load_folds(clips)
        print(f"{config.relative(args.check)}: {len(clips)} clips, {clips.speaker.nunique()} speakers, labels "
              + ", ".join(f"{label} {n}" for label, n in clips.label.value_counts(sort=False).items())
              + f"; audio {clips.audio.notna().sum()}, video {clips.video.notna().sum()}; "
              f"{len(fold_table)} speaker-disjoint folds")
        return
    if not args.out:
        raise UserError("give --out (the manifest to write) or --check (one to read)")
    records = clip_table.records(args.data_root, None if args.channel == "all" else args.channel)
    path = manifest.write(records, args.out)
    print(f"wrote {config.relative(path)}: {len(records)} clips")


if __name__ == "__main__":
    cli.run(main)
