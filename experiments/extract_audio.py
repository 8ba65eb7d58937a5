"""Extract audio embeddings for every clip into data/embeddings/audio/<encoder>/.

    python experiments/extract_audio.py --data-root ../shared/data/ravdess              # every offline encoder
    python experiments/extract_audio.py --encoders egemaps whisper-tiny.en whisper-tiny.en-randinit
    python experiments/extract_audio.py --encoders hub                                  # needs the model hub
    python experiments/extract_audio.py --list

--encoders takes registered names (a random-init twin is NAME-randinit, or --random-init for all
listed) and the groups offline, hub, controls (twins of the offline pretrained encoders) and all.
A rerun skips clips already embedded; bad clips are recorded in the store's failures, not fatal.
"""

from emoprobe import cli, config, encoders
from emoprobe.data import clips as clip_table
from emoprobe.errors import HubUnavailableError
from emoprobe.media.audio import duration, load_audio
from emoprobe.store.extract import run_extraction

ENCODERS = ["offline"]  # every audio encoder that needs no model hub
CHANNEL = "speech"  # speech | song | all


def main(argv=None):
    p = cli.parser(__doc__, extraction=True)
    p.add_argument("--encoders", nargs="+", default=ENCODERS, metavar="NAME", help="names or groups (see above)")
    p.add_argument("--random-init", action="store_true", help="the random-init twins of the encoders listed")
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--no-sequences", dest="sequences", action="store_false",
                   help="do not keep per-window sequences (saves disk)")
    p.add_argument("--first-seconds", type=float, metavar="S",
                   help="embed only each clip's first S seconds, into stores named <encoder>-firstSs (the "
                   "clip-duration experiment, experiments/duration.py)")
    p.add_argument("--list", action="store_true", help="list the audio encoders and exit")
    args = p.parse_args(argv)
    if args.list:
        return print(encoders.describe(modality="audio"))
    names = encoders.expand(args.encoders, modality="audio", input=encoders.WAVEFORM)
    clips = clip_table.load(args.data_root, None if args.channel == "all" else args.channel, "audio", args.limit)
    clips["seconds"] = [duration(s) for s in clips.source]  # batches of similar length
    not_run = []
    for name in names:
        try:
            encoder = encoders.get_encoder(name, args.random_init, dict(args.settings), device=args.device,
                                           sequences=args.sequences, batch_size=args.batch_size,
                                           precision=args.precision, first_seconds=args.first_seconds)
        except HubUnavailableError as err:  # offline: the other encoders still run
            print(f"[audio/{name}] not run: {err}")
            not_run.append(name)
            continue
        rate = encoder.card.sample_rate
        keep = int(args.first_seconds * rate) if args.first_seconds else None  # samples fed (None: all)
        run_extraction(clips, [encoder], load=lambda path: load_audio(path, rate)[:keep], root=args.embeddings_dir,
                       meta={"data_root": config.relative(config.data_root(args.data_root)), "channel": args.channel,
                             "packages": ["transformers", "torchaudio", "soundfile"]},
                       batch_size=args.batch_size, sort_column="seconds", shard=args.shard)
    if not_run:
        print(f"not run (no model hub): {', '.join(not_run)}")


if __name__ == "__main__":
    cli.run(main)
