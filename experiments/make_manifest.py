"""Write a manifest (JSON lines, one clip per line) for a RAVDESS folder, or check one you wrote.

    python experiments/make_manifest.py --data-root ../shared/data/ravdess --out data/ravdess_speech.jsonl
    python experiments/make_manifest.py --check my_corpus.jsonl      # read it as every script would
    python experiments/make_manifest.py --from-emobox EmoBox/data/ravdess --audio-root ~/EmoBox --out data/ravdess_emobox.jsonl

Every script takes a manifest wherever it takes a RAVDESS folder (--data-root corpus.jsonl), so any
corpus enters the pipeline through one: key, audio and/or video, label, speaker, optionally fold or
split (see emoprobe/data/manifest.py). Media paths are written relative to the manifest's folder.
--from-emobox reads a corpus folder of EmoBox's metadata (its keys, labels, speakers and folds:
emoprobe/data/emobox.py), finding each audio file under --audio-root whatever its layout or extension.
"""

from emoprobe import cli, config
from emoprobe.data import clips as clip_table
from emoprobe.data import emobox, folds, manifest
from emoprobe.errors import UserError
from emoprobe.probes.linear import INNER_FOLDS

CHANNEL = "speech"  # speech | song | all


def main(argv=None):
    p = cli.parser(__doc__, embeddings=False)
    p.add_argument("--out", metavar="JSONL", help="where to write the manifest")
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--check", metavar="JSONL", help="read and summarise a manifest instead")
    p.add_argument("--from-emobox", metavar="FOLDER", help="an EmoBox corpus folder (its <corpus>.jsonl, "
                   "data.seg.wrd.stm, label_map.json, fold_K/) to write a manifest from")
    p.add_argument("--audio-root", metavar="DIR", help="with --from-emobox: where the corpus's audio was "
                   "downloaded (EmoBox's downloads/<corpus>/..., or any folder holding the files)")
    p.add_argument("--emobox-labels", action="store_true", help="with --from-emobox: EmoBox's shared label "
                   "names (its label_map.json), which cross-corpus transfer matches on")
    args = p.parse_args(argv)
    if args.from_emobox:
        return from_emobox(args)
    if args.check:
        clips = clip_table.load(args.check, channel=None)
        fold_table = folds.load_folds(clips)
        folds.check_trainable(fold_table, clips.speaker, INNER_FOLDS)  # what the grid will require
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


def from_emobox(args) -> None:
    if not (args.out and args.audio_root):
        raise UserError("--from-emobox needs --audio-root (where the audio is) and --out (the manifest to write)")
    corpus = emobox.read(args.from_emobox)
    records, resolution = emobox.records(corpus, args.audio_root, args.emobox_labels)
    for line in resolution.summary(len(corpus.utterances)):
        print(f"[emobox] {corpus.name}: {line}" if not line.startswith(" ") else line)
    if not records:
        raise UserError(f"no audio of {corpus.name} under {args.audio_root}: give --audio-root the folder the "
                        f"corpus was downloaded into (EmoBox's paths start {corpus.utterances[0]['wav']!r})")
    if corpus.speaker_independent:
        kind = "train/test split" if len(corpus.folds) == 1 else f"{len(corpus.folds)} folds"
        print(f"[emobox] {corpus.name}: EmoBox's {kind} written as the manifest's (speaker-independent)")
    else:
        shared = ", ".join(f"fold_{k}: {n}" for k, n in corpus.shared_speakers.items() if n)
        print(f"[emobox] {corpus.name}: EmoBox's folds share speakers between train and test ({shared} speakers): "
              "left out, so the grid makes speaker-disjoint folds of its own")
    path = manifest.write(records, args.out)
    print(f"wrote {config.relative(path)}: {len(records)} clips, {len({r['speaker'] for r in records})} speakers, "
          f"labels {', '.join(sorted({r['label'] for r in records}))}")


if __name__ == "__main__":
    cli.run(main)
