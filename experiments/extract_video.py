"""Extract video embeddings for every clip with video into data/embeddings/video/<encoder>/.

    python experiments/extract_video.py --data-root ../shared/data/ravdess      # TimeSformer (model hub)
    python experiments/extract_video.py --encoders timesformer-k400-randinit    # random-weights control
    python experiments/extract_video.py --frame-order shuffled                  # does order matter?

A clip's video is its video-only mp4 (02-) if present, else its audio-video mp4 (01-). A rerun skips
clips already embedded; failures are recorded, not fatal. --list shows the video encoders.
"""

from emoprobe import cli
from emoprobe.encoders import FRAMES
from emoprobe.encoders.video import FRAME_ORDERS
from emoprobe.media import video
from emoprobe.store.extract import run_extraction

ENCODERS = ["timesformer-k400"]  # the design card's video model
FRAME_ORDER = "original"  # reversed / shuffled feed the same frames in another order (research question 3)


def main(argv=None):
    p = cli.parser(__doc__, extraction=True)
    p.set_defaults(encoders=ENCODERS)
    p.add_argument("--frames", type=cli.positive(int), help="frames per clip (default: the model's own, 8 or 16)")
    p.add_argument("--frame-order", default=FRAME_ORDER, choices=FRAME_ORDERS)
    args = p.parse_args(argv)
    plan = cli.extraction_plan(args, "video", FRAMES, "video")
    if plan is None:
        return
    names, clips = plan
    metas = {}
    for name in names:
        encoder = cli.build_encoder(name, args, frame_order=args.frame_order, n_frames=args.frames)
        if encoder is None:
            continue
        n, size = encoder.n_frames, encoder.decode_size
        metas |= run_extraction(clips, [encoder], load=lambda path: video.decode_frames(path, n, size).frames,
                       root=args.embeddings_dir, batch_size=args.batch_size, shard=args.shard,
                       meta={"data_root": cli.data_label(args), "channel": args.channel,
                             "source": "video-only mp4 (02-) if present, else audio-video mp4 (01-)",
                             "packages": ["transformers", "av"]})
    cli.check_outcome(metas, args.strict)


if __name__ == "__main__":
    cli.run(main)
