"""Extract video embeddings for every clip with video into data/embeddings/video/<encoder>/.

    python experiments/extract_video.py --data-root ../shared/data/ravdess      # TimeSformer (model hub)
    python experiments/extract_video.py --encoders timesformer-k400-randinit    # random-weights control
    python experiments/extract_video.py --frame-order shuffled                  # does order matter?

A clip's video is its video-only mp4 (02-) if present, else its audio-video mp4 (01-). A rerun skips
clips already embedded; failures are recorded, not fatal. --list shows the video encoders.
"""

from emoprobe import cli, config, encoders
from emoprobe.data import clips as clip_table
from emoprobe.encoders.video import FRAME_ORDERS
from emoprobe.errors import HubUnavailableError
from emoprobe.media import video
from emoprobe.store.extract import run_extraction

ENCODERS = ["timesformer-k400"]  # the design card's video model
CHANNEL = "speech"  # speech | song | all
FRAME_ORDER = "original"  # reversed / shuffled feed the same frames in another order (research question 3)


def main(argv=None):
    p = cli.parser(__doc__, extraction=True)
    p.add_argument("--encoders", nargs="+", default=ENCODERS, metavar="NAME")
    p.add_argument("--random-init", action="store_true", help="the random-init twins of the encoders listed")
    p.add_argument("--frames", type=int, help="frames per clip (default: the model's own, 8 or 16)")
    p.add_argument("--frame-order", default=FRAME_ORDER, choices=FRAME_ORDERS)
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--no-sequences", dest="sequences", action="store_false",
                   help="do not keep per-frame sequences (saves disk)")
    p.add_argument("--list", action="store_true", help="list the video encoders and exit")
    args = p.parse_args(argv)
    if args.list:
        return print(encoders.describe(modality="video"))
    names = encoders.expand(args.encoders, modality="video", input=encoders.FRAMES)
    clips = clip_table.load(args.data_root, None if args.channel == "all" else args.channel, "video", args.limit)
    for name in names:
        try:
            encoder = encoders.get_encoder(name, args.random_init, dict(args.settings), device=args.device, sequences=args.sequences,
                                           batch_size=args.batch_size, precision=args.precision,
                                           frame_order=args.frame_order, n_frames=args.frames)
        except HubUnavailableError as err:
            print(f"[video/{name}] not run: {err}")
            continue
        n, size = encoder.n_frames, encoder.decode_size
        run_extraction(clips, [encoder], load=lambda path: video.decode_frames(path, n, size).frames,
                       root=args.embeddings_dir, batch_size=args.batch_size, shard=args.shard,
                       meta={"data_root": config.relative(config.data_root(args.data_root)), "channel": args.channel,
                             "source": "video-only mp4 (02-) if present, else audio-video mp4 (01-)",
                             "packages": ["transformers", "av"]})


if __name__ == "__main__":
    cli.run(main)
