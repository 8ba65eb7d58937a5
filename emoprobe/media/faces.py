"""Faces in video frames: MTCNN detection, alignment, and the checks a person can look at.

Per clip: `load_face_track` decodes N frames (16 by default) at full resolution; MTCNN detects on copies
downscaled to `detect_width` (640 px: a quarter of 720p's pixels, several times faster) and the boxes
and 5 landmarks are mapped back, so crops are cut from the full-resolution frames. Each crop is aligned:
rotated about the box centre so the eyes are level, square, with a per-model margin.

Frames without a face are recorded (FaceTrack.detected) and left out of pooling; a clip with no face
in any sampled frame raises NoFaceError (a BadMediaError), which the extraction loop records as a
failure of that clip, never a crash. Which frames had a face goes to results/face_detection.csv
(write_detections), and `contact_sheet` draws the aligned crops.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from .. import timing
from . import BadMediaError, video

N_FRAMES = 16  # frames sampled per clip (RAVDESS speech clips are 3-5 s: ~4 per second)
DETECT_WIDTH = 640  # detection resolution; RAVDESS faces are ~450 px tall at 720p, ~225 px here
MIN_FACE_SIZE = 60  # MTCNN's smallest face, in pixels of the detection image (speed: fewer scales)
MIN_PROB = 0.9  # detections below this MTCNN probability count as no face (real faces score > 0.99)
CONTACT_SHEET_ROWS = 8  # clips drawn in the contact sheet


class NoFaceError(BadMediaError):
    """No face in any sampled frame of a clip."""


# ---------------------------------------------------------------------------------------------
# Detection and alignment
# ---------------------------------------------------------------------------------------------
@dataclass
class FaceTrack:
    """One clip's sampled frames and the face found in each (NaN / 0 where none)."""

    frames: np.ndarray  # uint8 (N, H, W, 3) RGB, the frames crops are cut from
    boxes: np.ndarray  # float (N, 4) x1, y1, x2, y2 in `frames` pixels
    landmarks: np.ndarray  # float (N, 5, 2) MTCNN points: eyes (image left, right), nose, mouth corners
    probs: np.ndarray  # float (N,) MTCNN face probability, 0 without a face
    timestamps: np.ndarray | None = None  # seconds, when the frames came from a video

    @property
    def detected(self) -> np.ndarray:
        return self.probs > 0

    def crops(self, size: int, margin: float = 0.0) -> np.ndarray:
        """(F, size, size, 3) uint8 aligned crops of the F frames with a face, in time order."""
        idx = np.flatnonzero(self.detected)
        return np.stack([align_face(self.frames[i], self.boxes[i], self.landmarks[i], size, margin)
                         for i in idx]) if len(idx) else np.zeros((0, size, size, 3), np.uint8)


def align_face(frame: np.ndarray, box, landmarks, size: int, margin: float = 0.0) -> np.ndarray:
    """A square crop around `box`, side max(w, h) * (1 + margin), rotated about the box centre so the
    eyes are level, resized to size x size. Out-of-frame parts are black (as in facenet-pytorch)."""
    x1, y1, x2, y2 = box
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    side = max(2, round(max(x2 - x1, y2 - y1) * (1 + margin)))
    (lx, ly), (rx, ry) = landmarks[0], landmarks[1]
    angle = math.degrees(math.atan2(ry - ly, rx - lx))  # eye line vs horizontal, image y down
    m = cv2.getRotationMatrix2D(centre, angle, 1.0)
    m[:, 2] += (side / 2 - centre[0], side / 2 - centre[1])
    crop = cv2.warpAffine(frame, m, (side, side), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    # Resize in a second step: warpAffine has no area filter, and crops shrink 2-3x here.
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if side > size else cv2.INTER_CUBIC)


class FaceDetector:
    """MTCNN (facenet-pytorch; weights ship in the wheel) on downscaled frames; the largest face wins."""

    def __init__(self, detect_width: int = DETECT_WIDTH, min_face_size: int = MIN_FACE_SIZE,
                 min_prob: float = MIN_PROB, device: str = "cpu"):
        from facenet_pytorch import MTCNN

        self.detect_width, self.min_face_size, self.min_prob = detect_width, min_face_size, min_prob
        self.mtcnn = MTCNN(min_face_size=min_face_size, select_largest=True, device=device)

    def __call__(self, frames: np.ndarray, timestamps=None, source: str = "frames") -> FaceTrack:
        """Detect in (N, H, W, 3) uint8 RGB frames. Raises NoFaceError when no frame has a face."""
        from PIL import Image

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
            raise BadMediaError(f"{source}: expected (N, H, W, 3) RGB frames, got {frames.shape}")
        n, h, w = frames.shape[:3]
        scale = min(1.0, self.detect_width / w)  # never upscale
        dsize = (round(w * scale), round(h * scale))
        # PIL input: with numpy input facenet-pytorch crops through another code path (cv2 / object arrays).
        small = [Image.fromarray(cv2.resize(f, dsize, interpolation=cv2.INTER_AREA) if scale < 1 else f)
                 for f in frames]
        batch_boxes, batch_probs, batch_points = self.mtcnn.detect(small, landmarks=True)
        boxes, points, probs = np.full((n, 4), np.nan), np.full((n, 5, 2), np.nan), np.zeros(n)
        for i in range(n):
            if batch_boxes[i] is None:  # object arrays under numpy 2: None or an array per frame
                continue
            b = np.asarray(batch_boxes[i], dtype=float)
            p = np.asarray(batch_probs[i], dtype=float)
            k = np.flatnonzero(p >= self.min_prob)
            if len(k):
                j = k[np.argmax((b[k, 2] - b[k, 0]) * (b[k, 3] - b[k, 1]))]  # the largest confident face
                boxes[i], probs[i] = b[j] / scale, p[j]
                points[i] = np.asarray(batch_points[i], dtype=float)[j] / scale
        track = FaceTrack(frames, boxes, points, probs, timestamps)
        if not track.detected.any():
            raise NoFaceError(f"{source}: no face found in any of the {n} sampled frames "
                              f"(MTCNN at {dsize[0]}x{dsize[1]}, min face {self.min_face_size} px, "
                              f"p >= {self.min_prob})")
        return track

    def meta(self) -> dict:
        from importlib import metadata

        return {"detector": f"MTCNN (facenet-pytorch {metadata.version('facenet-pytorch')})",
                "detect_width": self.detect_width, "min_face_size": self.min_face_size,
                "min_prob": self.min_prob, "face_choice": "largest face with p >= min_prob",
                "alignment": "square crop around the box, rotated about its centre so the eyes are level"}


def load_face_track(path, detector: FaceDetector, n_frames: int = N_FRAMES) -> FaceTrack:
    """Decode n_frames full-resolution frames of a video and detect the face in each."""
    clip = video.decode_frames(path, n_frames, None)  # names its own "decode" stage
    with timing.stage("detect"):
        return detector(clip.frames, clip.timestamps, source=str(path))


def detection_row(track: FaceTrack) -> dict:
    n = len(track.probs)
    found = track.detected
    return {"n_frames": n, "n_faces": int(found.sum()),
            "frames_with_face": "".join("1" if d else "0" for d in found),
            "prob_min": round(float(track.probs[found].min()), 5),
            "face_height_px": round(float(np.median(track.boxes[found, 3] - track.boxes[found, 1])), 1),
            "frame_width": track.frames.shape[2], "frame_height": track.frames.shape[1]}


def write_detections(csv_path, rows: dict[str, dict], n_frames: int) -> None:
    """Per-clip detection counts (rows: clip key -> detection_row); rows of clips not in this run are kept."""
    import fcntl

    from ..store.store import atomic_write_text

    csv_path = Path(csv_path)
    new = pd.DataFrame([{"key": key, "n_frames": n_frames, **row} for key, row in rows.items()])
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    folder = os.open(csv_path.parent, os.O_RDONLY)  # locked, so shards finishing together keep all rows
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        if csv_path.exists():
            old = pd.read_csv(csv_path, dtype={"frames_with_face": str})
            new = pd.concat([old[~old.key.isin(new.key)], new])
        atomic_write_text(csv_path, new.sort_values("key").to_csv(index=False))
    finally:
        os.close(folder)  # releases the lock


# ---------------------------------------------------------------------------------------------
# Contact sheet: the aligned crops, one row per clip, to check detection and alignment by eye
# ---------------------------------------------------------------------------------------------
def contact_sheet(tracks: dict[str, FaceTrack], out_path, thumb: int = 96, margin: float = 0.2) -> Path:
    """PNG grid: a row per clip (labelled), a tile per sampled frame; grey tiles had no face."""
    from PIL import Image, ImageDraw

    label_w, pad = 150, 2
    n_cols = max(len(t.probs) for t in tracks.values())
    sheet = Image.new("RGB", (label_w + n_cols * (thumb + pad), len(tracks) * (thumb + pad)), "white")
    draw = ImageDraw.Draw(sheet)
    for r, (label, track) in enumerate(tracks.items()):
        y = r * (thumb + pad)
        crops = iter(track.crops(thumb, margin))
        draw.text((4, y + thumb // 2 - 12), f"{label}\n{int(track.detected.sum())}/{len(track.probs)} faces",
                  fill="black")
        for c, found in enumerate(track.detected):
            tile = Image.fromarray(next(crops)) if found else Image.new("RGB", (thumb, thumb), (160, 160, 160))
            sheet.paste(tile, (label_w + c * (thumb + pad), y))
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out_path)
    return out_path
