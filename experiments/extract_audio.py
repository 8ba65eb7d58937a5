"""Extract audio embeddings for every RAVDESS clip into data/embeddings/audio/<model>/.

    python experiments/extract_audio.py --data-root ../shared/data/ravdess --encoders egemaps whisper-ct2
    python experiments/extract_audio.py --encoders wav2vec2 --random-init     # the random-weights control

Encoders: egemaps, compare, logmel, mfcc, whisper-ct2 (run offline), wav2vec2, hubert, wavlm,
data2vec, whisper, ast, or any transformers speech model id (these need the model hub unless
--random-init). A rerun skips clips already embedded; failures are recorded, not fatal.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import soundfile as sf
import torch

from emoprobe import audio, paths, ravdess
from emoprobe.audio_encoders import RATE, make_encoder
from emoprobe.extract import add_shard_argument, run_extraction
from emoprobe.store import EmbeddingStore

ENCODERS = ["wav2vec2"]  # the card's default audio model
CHANNEL = "speech"  # speech | song | all
BATCH_SIZE = 1  # batching did not help on 2 CPU cores; use 8-16 on a GPU (length-bucketed)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="RAVDESS folder (default: $RAVDESS_ROOT or data/raw)")
    p.add_argument("--encoders", nargs="+", default=ENCODERS)
    p.add_argument("--random-init", action="store_true", help="same architecture, random weights (control)")
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    p.add_argument("--device", default=DEVICE)
    p.add_argument("--no-sequences", dest="sequences", action="store_false",
                   help="do not keep per-window sequences (saves disk)")
    p.add_argument("--limit", type=int, help="only the first N clips (a quick try)")
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    add_shard_argument(p)
    args = p.parse_args(argv)

    root = paths.data_root(args.data_root)
    clips = ravdess.load_clips(root, None if args.channel == "all" else args.channel)
    clips["source"] = [audio.audio_source(r) for r in clips.itertuples()]
    clips["seconds"] = [_duration(s) for s in clips.source]
    if args.limit:
        clips = clips.head(args.limit)
    for name in args.encoders:
        encoder = make_encoder(name, args)
        store = EmbeddingStore("audio", encoder.name, args.embeddings_dir)
        meta = {**encoder.meta(), "data_root": str(root), "channel": args.channel,
                "packages": ["transformers", "torchaudio", "opensmile", "ctranslate2", "soundfile"]}
        run_extraction(clips, store, load=lambda path: audio.load_audio(path, RATE), encode=encoder.encode,
                       meta=meta, batch_size=args.batch_size, sort_column="seconds", shard=args.shard)


def _duration(path) -> float:
    try:
        return sf.info(path).duration
    except Exception:  # mp4s and unreadable files: order does not matter for them
        return 0.0


if __name__ == "__main__":
    main()
