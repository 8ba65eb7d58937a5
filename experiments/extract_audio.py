"""Extract audio embeddings for every clip into data/embeddings/audio/<encoder>/.

    python experiments/extract_audio.py --data-root ../shared/data/ravdess              # every offline encoder
    python experiments/extract_audio.py --encoders egemaps whisper-tiny.en whisper-tiny.en-randinit
    python experiments/extract_audio.py --encoders hub                                  # needs the model hub
    python experiments/extract_audio.py --encoders whisper-base --set context=30s       # an encoder option
    python experiments/extract_audio.py --list

A rerun skips clips already embedded; bad clips are recorded in the store's failures, not fatal.
"""

from emoprobe import cli
from emoprobe.encoders import WAVEFORM
from emoprobe.media.audio import duration, load_audio
from emoprobe.store.extract import run_extraction

ENCODERS = ["offline"]  # every audio encoder that needs no model hub


def main(argv=None):
    p = cli.parser(__doc__, extraction=True)
    p.set_defaults(encoders=ENCODERS)
    p.add_argument("--first-seconds", type=cli.positive(float), metavar="S",
                   help="embed only each clip's first S seconds, into stores named <encoder>-firstSs (the "
                   "clip-duration experiment, experiments/duration.py)")
    args = p.parse_args(argv)
    plan = cli.extraction_plan(args, "audio", WAVEFORM, "audio")
    if plan is None:
        return
    names, clips = plan
    clips["seconds"] = [duration(s) for s in clips.source]  # batches of similar length
    metas = {}
    for name in names:  # one model in memory at a time
        encoder = cli.build_encoder(name, args, first_seconds=args.first_seconds)
        if encoder is None:
            continue
        rate = encoder.card.sample_rate
        keep = int(args.first_seconds * rate) if args.first_seconds else None  # samples fed (None: all)
        metas |= run_extraction(clips, [encoder], load=lambda path: load_audio(path, rate)[:keep], root=args.embeddings_dir,
                       meta={"data_root": cli.data_label(args), "channel": args.channel,
                             "packages": ["transformers", "torchaudio", "soundfile"]},
                       batch_size=args.batch_size, sort_column="seconds", shard=args.shard)
    cli.check_outcome(metas, args.strict)


if __name__ == "__main__":
    cli.run(main)
