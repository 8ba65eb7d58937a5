"""Extract video embeddings for every RAVDESS clip with video into data/embeddings/video/<model>/.

    python experiments/extract_video.py --data-root ../shared/data/ravdess
    python experiments/extract_video.py --models timesformer --random-init          # random-weights control
    python experiments/extract_video.py --frame-order shuffled                       # does order matter?

Models: timesformer (facebook/timesformer-base-finetuned-k400), videomae
(MCG-NJU/videomae-base-finetuned-kinetics) or any TimeSformer/VideoMAE model id; they need the model
hub unless --random-init. A clip's video is its video-only mp4 (02-) if present, else its
audio-video mp4 (01-). A rerun skips clips already embedded; failures are recorded, not fatal.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import torch

from emoprobe import paths, ravdess, video
from emoprobe.extract import add_shard_argument, run_extraction
from emoprobe.store import EmbeddingStore
from emoprobe.video_encoders import FRAME_ORDERS, VideoEncoder

MODELS = ["timesformer"]  # the card's default video model
CHANNEL = "speech"  # speech | song | all
FRAME_ORDER = "original"  # reversed / shuffled feed the same frames in another order (research question 3)
BATCH_SIZE = 1  # batching did not help on 2 CPU cores; use 8-16 on a GPU
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def video_source(clip_row) -> str | None:
    """The video-only mp4 of a clip, else its audio-video mp4 (same recording, same frames)."""
    return ravdess.source_path(clip_row, "video")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="RAVDESS folder (default: $RAVDESS_ROOT or data/raw)")
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--frames", type=int, help="frames per clip (default: the model's own, 8 or 16)")
    p.add_argument("--frame-order", default=FRAME_ORDER, choices=FRAME_ORDERS)
    p.add_argument("--random-init", action="store_true", help="same architecture, random weights (control)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (~2x on CPUs with avx512_bf16, GPUs)")
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--device", default=DEVICE)
    p.add_argument("--no-sequences", dest="sequences", action="store_false",
                   help="do not keep per-frame sequences (saves disk)")
    p.add_argument("--limit", type=int, help="only the first N clips with video (a quick try)")
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    add_shard_argument(p)
    args = p.parse_args(argv)

    root = paths.data_root(args.data_root)
    clips = ravdess.load_clips(root, None if args.channel == "all" else args.channel)
    clips["source"] = [video_source(r) for r in clips.itertuples()]
    if args.limit:
        clips = clips[clips.source.notna()].head(args.limit)
    for name in args.models:
        encoder = VideoEncoder(name, random_init=args.random_init, device=args.device,
                               batch_size=args.batch_size, frame_order=args.frame_order,
                               n_frames=args.frames, bf16=args.bf16, sequences=args.sequences)
        store = EmbeddingStore("video", encoder.name, args.embeddings_dir)
        meta = {**encoder.meta(), "data_root": str(root), "channel": args.channel,
                "source": "video-only mp4 (02-) if present, else audio-video mp4 (01-)",
                "packages": ["transformers", "av"]}
        n, size = encoder.n_frames, encoder.decode_size
        run_extraction(clips, store, load=lambda path: video.decode_frames(path, n, size).frames,
                       encode=encoder.encode, meta=meta, batch_size=args.batch_size, shard=args.shard)


if __name__ == "__main__":
    main()
