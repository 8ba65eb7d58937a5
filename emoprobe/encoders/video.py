"""Video encoders: transformers video models turning sampled RGB frames into layer-wise embeddings.

Per clip, every hidden layer (embedding output, then each transformer block) pooled as float32:
    cls       (layers, D)        the CLS token, where the model has one (TimeSformer; not VideoMAE)
    mean      (layers, D)        mean of the patch tokens (the CLS token excluded)
    meanstd   (layers, 2D)       mean and standard deviation of the patch tokens
    sequence  (layers, T, D)     patch-token mean per temporal position, in the order fed to the model
                                 (TimeSformer: one per frame; VideoMAE: one per 2-frame tubelet)

Token layouts, read from transformers' modeling code (5.x):
    TimeSformer  [CLS] + patches ordered (row, column, frame): patch-major, frame fastest. The
                 embedding reshapes (B, T, P, D) -> (B, P, T, D) and each block keeps that order.
    VideoMAE     no CLS; a Conv3d with a (2, 16, 16) kernel flattened over (T/2, rows, columns):
                 tubelet-major.
Preprocessing is the checkpoint's own image processor (resize the short side, centre crop, normalise);
offline it falls back to the values registered below (TimeSformer: mean 0.45 / std
0.225, the original repository's DATA.MEAN/STD; VideoMAE: ImageNet 0.485,0.456,0.406 / 0.229,0.224,0.225,
the original VideoMAE transforms; VideoMAEImageProcessor's own defaults, 0.5 / 0.5, match neither).
"""

from __future__ import annotations

import numpy as np
import torch

from .base import FRAMES, PRETRAINED, Encoder, register
from .hub import load_transformers_model

FRAME_ORDERS = ("original", "reversed", "shuffled")


def frame_permutation(n: int, order: str = "original", seed: int = 0) -> np.ndarray:
    """The order in which n sampled frames are fed to the model.

    "shuffled" is ONE fixed permutation (from `seed`) used for every clip, so a resumed run gives the
    same result; it is drawn again until it is neither the original nor the reversed order.
    """
    if order == "original":
        return np.arange(n)
    if order == "reversed":
        return np.arange(n)[::-1].copy()
    if order != "shuffled":
        raise ValueError(f"frame_order must be one of {FRAME_ORDERS}, not {order!r}")
    rng = np.random.default_rng(seed)
    while True:
        perm = rng.permutation(n)
        if n < 3 or (np.any(perm != np.arange(n)) and np.any(perm != np.arange(n)[::-1])):
            return perm


_VIDEO = dict(modality="video", input=FRAMES, weights=PRETRAINED, needs_hub=True, random_twin=True, layered=True)


@register("timesformer-k400", **_VIDEO, objective="action recognition (Kinetics-400)",
          model_id="facebook/timesformer-base-finetuned-k400", offline_config=("TimesformerConfig", {}),
          offline_processor=("VideoMAEImageProcessor", {"image_mean": [0.45] * 3, "image_std": [0.225] * 3}))
@register("videomae-k400", **_VIDEO, objective="action recognition (Kinetics-400, after masked-video pretraining)",
          model_id="MCG-NJU/videomae-base-finetuned-kinetics", offline_config=("VideoMAEConfig", {}),
          offline_processor=("VideoMAEImageProcessor", {"image_mean": [0.485, 0.456, 0.406],
                                                        "image_std": [0.229, 0.224, 0.225]}))
class VideoEncoder(Encoder):
    """Every hidden layer of a transformers video model (TimeSformer, VideoMAE and compatible)."""

    bf16 = True
    def __init__(self, model_id: str, offline_config=None, offline_processor=None, frame_order: str = "original",
                 n_frames: int | None = None, config=None, **common):
        super().__init__(**common)
        self.model_id, self.frame_order = model_id, frame_order
        self.model, self.processor, self.config_source = load_transformers_model(
            model_id, random_init=self.random_init, offline_config=offline_config,
            offline_processor=offline_processor, seed=self.seed, processor="AutoImageProcessor", config=config)
        self.model.to(self.device)
        cfg = self.model.config
        self.kind = cfg.model_type
        if self.kind not in ("timesformer", "videomae"):
            raise ValueError(f"{model_id}: model type {self.kind!r} is not supported (timesformer, videomae)")
        self.image_size, native_frames = cfg.image_size, cfg.num_frames
        self.n_frames = n_frames or native_frames
        if self.n_frames != native_frames:
            if self.kind != "timesformer":  # VideoMAE's position table is fixed to its num_frames
                raise ValueError(f"{model_id} takes exactly {cfg.num_frames} frames, not {self.n_frames}")
            cfg.num_frames = self.n_frames  # TimeSformer interpolates its time embeddings (nearest)
        self.tubelet = getattr(cfg, "tubelet_size", 1)
        if self.n_frames % self.tubelet:
            raise ValueError(f"{model_id}: frames must be a multiple of the tubelet size {self.tubelet}")
        self.permutation = frame_permutation(self.n_frames, frame_order, self.seed)
        self.n_layers = cfg.num_hidden_layers + 1
        self.variant = "".join(f"-{p}" for p in (f"{self.n_frames}f" if self.n_frames != native_frames else None,
                                                  None if frame_order == "original" else frame_order) if p)

    @property
    def decode_size(self) -> int:
        """Short side to decode frames at: the processor's resize then changes (almost) nothing."""
        return self.image_size

    @torch.inference_mode()
    def encode(self, clips: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """clips: uint8 RGB frames (T, H, W, 3), T = self.n_frames, sampled uniformly in time order."""
        for frames in clips:
            if len(frames) != self.n_frames:
                raise ValueError(f"{self.name} takes {self.n_frames} frames per clip, got {len(frames)}")
        s = self.image_size
        inputs = self.processor([list(frames[self.permutation]) for frames in clips], return_tensors="pt",
                                size={"shortest_edge": s}, crop_size={"height": s, "width": s})
        with self.autocast():
            states = self.model(inputs["pixel_values"].to(self.device), output_hidden_states=True).hidden_states
        hidden = torch.stack(states, 1).float().cpu().numpy()  # (B, layers, tokens, D)
        return [self._pool(h) for h in hidden]

    def _pool(self, hidden: np.ndarray) -> dict[str, np.ndarray]:
        layers, _, dim = hidden.shape
        t = self.n_frames // self.tubelet
        if self.kind == "timesformer":
            cls, patches = hidden[:, 0], hidden[:, 1:].reshape(layers, -1, t, dim)  # (L, P, T, D)
            per_time = patches.mean(axis=1)
        else:
            cls, patches = None, hidden.reshape(layers, t, -1, dim)  # (L, T', P, D)
            per_time = patches.mean(axis=2)
        flat = hidden[:, 1:] if cls is not None else hidden
        mean, std = flat.mean(axis=1), flat.std(axis=1)
        out = {"mean": mean, "meanstd": np.concatenate([mean, std], axis=-1)}
        if cls is not None:
            out["cls"] = cls
        if self.sequences:
            out["sequence"] = per_time
        return out

    def meta(self) -> dict:
        import transformers

        cfg = self.model.config
        p = self.processor
        return {"model_id": self.model_id, "revision": getattr(cfg, "_commit_hash", None),
                "config_source": self.config_source,
                "transformers": transformers.__version__, "architecture": type(self.model).__name__,
                "layers": "hidden_states[0..L]: embedding output then each transformer layer (before the final norm)",
                "pooling": "mean / mean+std over patch tokens" + (", cls = CLS token" if self.kind == "timesformer" else ""),
                "frames": self.n_frames, "frame_sampling": "uniform, centre of n equal segments of the clip",
                "frame_order": self.frame_order, "permutation": self.permutation.tolist(),
                "image_size": self.image_size,
                "preprocessing": {"processor": type(p).__name__, "image_mean": list(p.image_mean),
                                  "image_std": list(p.image_std), "resize": f"short side {self.image_size}",
                                  "crop": f"centre {self.image_size}x{self.image_size}"},
                "sequence": ("patch mean per frame" if self.kind == "timesformer" else
                             f"patch mean per {self.tubelet}-frame tubelet") + ", in model input order",
                "batch_size": self.batch_size, "device": self.device}
